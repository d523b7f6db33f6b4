"""Recorders: where the records of a run go while it runs.

The driver asks a recorder for the arrays a kernel writes a chunk's records into and tells it
when a chunk is complete. :class:`MemoryRecorder` keeps everything in NumPy arrays (the size of
what is recorded, never of ``n_steps``); :class:`WindowRecorder` keeps only chosen chunks (used to
recompute damaged chunks of a store); the zarr recorder is in :mod:`stochdyn.ensemble.store`.
"""

from __future__ import annotations

import numpy as np

from ..integrators.base import Variable

__all__ = ["MemoryRecorder", "WindowRecorder"]


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

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def nbytes(variables: list[Variable], n_replicas: int, n_records: int) -> int:
        return sum(
            n_replicas * n_records * int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
            for v in variables
        )


class WindowRecorder:
    """Keep only the records of the chunks numbered in ``wanted`` (chunk ``j`` = records ``[j*c, (j+1)*c)``).

    Memory: one chunk buffer plus the kept chunks. ``kept[j][name]`` has shape ``(R, n_j, *var.shape)``.
    """

    def __init__(self, variables: list[Variable], n_replicas: int, chunk_records: int, wanted: set[int]):
        self.chunk_records = chunk_records
        self.wanted = set(wanted)
        self.kept: dict[int, dict[str, np.ndarray]] = {}
        self._buf = {v.name: np.full((n_replicas, chunk_records) + tuple(v.shape),
                                     np.nan if np.dtype(v.dtype).kind == "f" else 0, dtype=v.dtype) for v in variables}

    def buffers(self, k0: int, n: int) -> tuple[dict[str, np.ndarray], int]:
        return self._buf, 0

    def commit(self, k0: int, n: int, state, elapsed: float) -> None:
        j = k0 // self.chunk_records
        if j in self.wanted:
            self.kept[j] = {k: v[:, :n].copy() for k, v in self._buf.items()}

    def close(self) -> None:
        """Nothing to release."""
