"""Numba kernels only: functions of arrays, parallel over blocks of replicas, allocation-free."""
