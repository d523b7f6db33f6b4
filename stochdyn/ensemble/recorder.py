"""Recorders: where the records of a run go while it runs.

The driver asks a recorder for the arrays a kernel writes a chunk's records into and tells it
when a chunk is complete. :class:`MemoryRecorder` keeps everything in NumPy arrays (the size of
what is recorded, never of ``n_steps``).
"""

from __future__ import annotations

import numpy as np

from ..integrators.base import Variable

__all__ = ["MemoryRecorder"]


class MemoryRecorder:
    """Keep all records in memory: ``data[name]`` of shape ``(R, n_records, *var.shape)``."""

    def __init__(self, variables: list[Variable], n_replicas: int, n_records: int):
        self.variables = variables
        self.data = {
            v.name: np.full((n_replicas, n_records) + tuple(v.shape), np.nan if np.dtype(v.dtype).kind == "f" else 0,
                            dtype=v.dtype)
            for v in variables
        }

    def buffers(self, k0: int, n: int) -> tuple[dict[str, np.ndarray], int]:
        """Arrays to write records ``k0 .. k0+n-1`` into, and the offset of record ``k0`` in them."""
        return self.data, k0

    def commit(self, k0: int, n: int, state, elapsed: float) -> None:
        """Records ``k0 .. k0+n-1`` are complete (nothing to do in memory)."""

    @staticmethod
    def nbytes(variables: list[Variable], n_replicas: int, n_records: int) -> int:
        return sum(
            n_replicas * n_records * int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
            for v in variables
        )
