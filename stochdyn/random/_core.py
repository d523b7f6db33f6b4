"""Numba building blocks for per-replica random streams.

Every replica owns a xoroshiro128++ generator (Blackman & Vigna 2021, "Scrambled linear
pseudorandom number generators", ACM TOMS 47(4)) whose two 64-bit words live in row ``r`` of a
``uint64[R, 2]`` state array. Kernels load the two words into locals, draw with the functions
below (each returns the variate and the advanced words) and store them back; so a replica's
numbers depend only on its own seed and the order of its own draws, never on threads or chunking.

All functions are ``@njit(inline="always")`` except the rarely taken slow path of the ziggurat,
which is kept out of line so that the fast path stays small inside hot loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._ziggurat import ZIGGURAT_R, ziggurat_tables

_KI, _WI, _FI = ziggurat_tables()
_ZR = ZIGGURAT_R
_ZRINV = 1.0 / ZIGGURAT_R
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_MASK32 = np.uint64(0xFFFFFFFF)


@njit(inline="always", cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always", cache=True)
def splitmix64_mix(z):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixing function."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def seed_streams(k0, k1, replica_ids, out):
    """Fill ``out[j] = (s0, s1)``, the xoroshiro128++ state of global replica ``replica_ids[j]``.

    The replica seed is ``z = mix(k0 ^ mix(k1 + r * golden))``; the two state words are the next
    two outputs of SplitMix64 started at ``z``, the seeding recommended by the generator's authors.
    """
    for j in range(replica_ids.shape[0]):
        r = np.uint64(replica_ids[j])
        z = splitmix64_mix(k0 ^ splitmix64_mix(k1 + r * _GOLDEN))
        z = z + _GOLDEN
        s0 = splitmix64_mix(z)
        z = z + _GOLDEN
        s1 = splitmix64_mix(z)
        if s0 == 0 and s1 == 0:  # the one forbidden state; probability 2^-128
            s0 = _GOLDEN
        out[j, 0] = s0
        out[j, 1] = s1


@njit(inline="always", cache=True)
def next_u64(s0, s1):
    """One xoroshiro128++ step: return ``(u, s0, s1)`` with ``u`` uniform on 64 bits."""
    result = _rotl(s0 + s1, 17) + s0
    s1 = s1 ^ s0
    return result, _rotl(s0, 49) ^ s1 ^ (s1 << np.uint64(21)), _rotl(s1, 28)


@njit(inline="always", cache=True)
def uniform(s0, s1):
    """Uniform on [0, 1) with 53 random bits: ``(u >> 11) * 2^-53``."""
    u, s0, s1 = next_u64(s0, s1)
    return (u >> np.uint64(11)) * _TWO_M53, s0, s1


@njit(inline="always", cache=True)
def randbelow(n, s0, s1):
    """Uniform integer in ``[0, n)`` for ``1 <= n < 2^32``, exactly unbiased.

    Lemire's multiply-and-reject method on the upper 32 bits (Lemire 2019, "Fast random integer
    generation in an interval", ACM TOMS 29(1)).
    """
    nn = np.uint64(n)
    u, s0, s1 = next_u64(s0, s1)
    m = (u >> np.uint64(32)) * nn
    low = m & _MASK32
    if low < nn:
        t = (np.uint64(4294967296) - nn) % nn
        while low < t:
            u, s0, s1 = next_u64(s0, s1)
            m = (u >> np.uint64(32)) * nn
            low = m & _MASK32
    return np.int64(m >> np.uint64(32)), s0, s1


@njit(cache=True)
def _normal_slow(idx, rabs, x, s0, s1):
    # Rejected on the fast path: finish the ziggurat (tail or wedge test), redrawing as needed.
    while True:
        if idx == 0:
            while True:
                u1, s0, s1 = uniform(s0, s1)
                u2, s0, s1 = uniform(s0, s1)
                xx = -_ZRINV * math.log1p(-u1)
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(_ZR + xx), s0, s1
                    return _ZR + xx, s0, s1
        else:
            u, s0, s1 = uniform(s0, s1)
            if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < math.exp(-0.5 * x * x):
                return x, s0, s1
        r, s0, s1 = next_u64(s0, s1)
        idx = r & np.uint64(0xFF)
        r = r >> np.uint64(8)
        rabs = (r >> np.uint64(1)) & _MASK52
        x = rabs * _WI[idx]
        if r & np.uint64(1):
            x = -x
        if rabs < _KI[idx]:
            return x, s0, s1


@njit(inline="always", cache=True)
def normal(s0, s1):
    """Standard normal variate by the 256-layer ziggurat (Marsaglia & Tsang 2000).

    About 99% of draws take one 64-bit number and one table comparison; the rest go to an
    out-of-line slow path (wedges and the tail beyond ``R = 3.654...`` by Marsaglia's method).
    """
    r, s0, s1 = next_u64(s0, s1)
    idx = r & np.uint64(0xFF)
    r = r >> np.uint64(8)
    rabs = (r >> np.uint64(1)) & _MASK52
    x = rabs * _WI[idx]
    if r & np.uint64(1):
        x = -x
    if rabs < _KI[idx]:
        return x, s0, s1
    return _normal_slow(idx, rabs, x, s0, s1)


@njit(inline="always", cache=True)
def normal_boxmuller(s0, s1):
    """Standard normal by the Box–Muller transform (one of the pair): the slow reference sampler."""
    u1, s0, s1 = uniform(s0, s1)
    u2, s0, s1 = uniform(s0, s1)
    return math.sqrt(-2.0 * math.log1p(-u1)) * math.cos(2.0 * math.pi * u2), s0, s1


@njit(inline="always", cache=True)
def exponential(s0, s1):
    """Standard exponential variate by inversion, ``-log(1 - U)``."""
    u, s0, s1 = uniform(s0, s1)
    return -math.log1p(-u), s0, s1


_NORMAL, _UNIFORM, _BOXMULLER = 0, 1, 2


@njit(cache=True)
def _fill(kind, state, out):
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            if kind == _NORMAL:
                out[r, j], s0, s1 = normal(s0, s1)
            elif kind == _UNIFORM:
                out[r, j], s0, s1 = uniform(s0, s1)
            else:
                out[r, j], s0, s1 = normal_boxmuller(s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1


def fill_normal(state, out):
    """Fill ``out[r, :]`` with standard normals from replica ``r``'s stream (advances ``state``)."""
    _fill(_NORMAL, state, out)


def fill_uniform(state, out):
    """Fill ``out[r, :]`` with uniforms on [0, 1) from replica ``r``'s stream (advances ``state``)."""
    _fill(_UNIFORM, state, out)


def fill_normal_boxmuller(state, out):
    """As :func:`fill_normal` with the Box–Muller sampler (for tests and benchmarks)."""
    _fill(_BOXMULLER, state, out)


@njit(cache=True)
def fill_u64(state, out):
    """Fill ``out[r, :]`` with raw 64-bit outputs of replica ``r``'s stream (advances ``state``)."""
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            out[r, j], s0, s1 = next_u64(s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1
