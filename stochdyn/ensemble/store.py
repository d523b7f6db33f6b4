"""Streaming a run into a zarr store, with a checkpoint at every chunk boundary.

Layout of a store written by ``simulate(..., store=PATH)``:

* the Dataset itself, as xarray writes it to zarr (so ``xarray.open_zarr`` reads it), created
  full-size up front — records not yet computed are fill values (NaN);
* ``stochdyn-checkpoint.npz``: the step, the number of complete records, the elapsed time, the
  run's fingerprint and every checkpointable state array (positions, velocities, generator words,
  divergence steps, ...). It is written beside and renamed into place after each chunk's records,
  so it always describes a consistent moment of the run.

Each chunk writes whole zarr chunks (the time-chunk of the store is the number of records per
simulation chunk, and the first chunk includes record 0), so a write interrupted at any moment,
SIGKILL included, can only damage records after the checkpoint — which the resumed run rewrites
and which :func:`stochdyn.open_dataset` never shows (it cuts an unfinished store at the last
complete record). The store directory itself appears atomically: it is created under a temporary
name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ValidationError
from .._version import __version__
from ..integrators.base import State, Variable

__all__ = ["ZarrRecorder", "fingerprint", "CHECKPOINT", "read_checkpoint", "StoreMismatchError"]

CHECKPOINT = ".stochdyn-checkpoint.npz"
#: bytes of records buffered per chunk in store mode (memory stays bounded by about this much)
STORE_BUFFER_BYTES = 256 * 2**20
#: bytes per zarr chunk file (replica blocks are sized to about this)
ZARR_CHUNK_BYTES = 32 * 2**20


class StoreMismatchError(ValidationError):
    """A store exists but was written by a different run; it is not resumed."""


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def fingerprint(integrator: Any, target: Any, run: dict[str, Any], seed_attrs: dict[str, str],
                x0: np.ndarray, replica_ids: np.ndarray) -> dict[str, Any]:
    """What must be equal for a stored run to be resumed: everything that determines its numbers."""
    return {
        "stochdyn_version": __version__,
        "integrator": integrator.to_dict(),
        "target": target.to_dict(),
        "n_steps": int(run["n_steps"]),
        "record_every": int(run["record_every"]),
        "replicas": f"{replica_ids.size} ids, sha256 {_sha(replica_ids.astype(np.int64))}",
        "seed": seed_attrs,
        "x0": f"sha256 {_sha(x0)}",
    }


def _mismatch(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return [k for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint of a store (``None`` if it has none): step, records, fingerprint, state arrays."""
    f = Path(path) / CHECKPOINT
    if not f.is_file():
        return None
    with np.load(f, allow_pickle=False) as z:
        out: dict[str, Any] = {
            "step": int(z["step"]),
            "records_complete": int(z["records_complete"]),
            "elapsed": float(z["elapsed"]),
            "complete": bool(z["complete"]),
            "fingerprint": json.loads(str(z["fingerprint"])),
            "state": {k[len("state__"):]: z[k] for k in z.files if k.startswith("state__")},
        }
    return out


def stored_seed(path: str | os.PathLike) -> dict[str, str] | None:
    ck = read_checkpoint(path)
    return None if ck is None else ck["fingerprint"]["seed"]


class ZarrRecorder:
    """Stream records into a zarr store and checkpoint the state after every chunk."""

    def __init__(self, path: Path, variables: list[Variable], n_replicas: int, chunk_records: int,
                 fp: dict[str, Any], elapsed: float = 0.0):
        import zarr

        self.path = path
        self.variables = variables
        self.chunk_records = chunk_records
        self.fp = fp
        self.elapsed_before = elapsed
        self._group = zarr.open_group(str(path), mode="r+")
        self._buf = {
            v.name: np.full((n_replicas, chunk_records) + tuple(v.shape),
                            np.nan if np.dtype(v.dtype).kind == "f" else 0, dtype=v.dtype)
            for v in variables
        }

    # -- creation and resumption ----------------------------------------------------------------
    @classmethod
    def chunk_records_for(cls, variables: list[Variable], n_replicas: int, record_every: int, n_records: int,
                          chunk_steps: int | None, target_work: int) -> int:
        """Records per chunk: as given by ``chunk_steps``, else enough work per chunk, within the buffer budget."""
        if chunk_steps is not None:
            return max(1, min(n_records, chunk_steps // record_every))
        per_record = max(1, sum(n_replicas * int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
                                for v in variables))
        by_memory = max(1, STORE_BUFFER_BYTES // per_record)
        by_work = max(1, -(-target_work // (n_replicas * record_every)))
        return int(max(1, min(n_records, by_memory, by_work)))

    @classmethod
    def create(cls, path: Path, template: Any, variables: list[Variable], n_replicas: int, chunk_records: int,
               fp: dict[str, Any]) -> "ZarrRecorder":
        """Write the full-size, empty store for ``template`` (a Dataset of dask arrays) atomically."""
        import dask.array as da

        ds = template.copy()
        for v in variables:
            per_rep = max(1, int(np.prod(v.shape, dtype=np.int64)) * chunk_records * np.dtype(v.dtype).itemsize)
            rc = int(max(1, min(n_replicas, ZARR_CHUNK_BYTES // per_rep)))
            shape = ds[v.name].shape
            chunks = (rc, chunk_records) + tuple(shape[2:])
            fill = np.nan if np.dtype(v.dtype).kind == "f" else 0
            ds[v.name] = (ds[v.name].dims, da.full(shape, fill, dtype=v.dtype, chunks=chunks), ds[v.name].attrs)
        ds.attrs["status"] = "running"
        ds.attrs["fingerprint"] = json.dumps(fp)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            ds.to_zarr(tmp, mode="w", compute=False, consolidated=False)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path, variables, n_replicas, chunk_records, fp)

    @classmethod
    def resume(cls, path: Path, variables: list[Variable], n_replicas: int, fp: dict[str, Any],
               state: State) -> tuple["ZarrRecorder", int]:
        """Reopen a store, check it belongs to this run, and restore ``state`` from its checkpoint.

        Returns the recorder and the number of complete records.
        """
        ck = read_checkpoint(path)
        if ck is None:
            raise StoreMismatchError(
                f"{str(path)!r} exists but holds no stochdyn checkpoint, so it cannot be resumed; "
                "remove it or choose another store."
            )
        diff = _mismatch(ck["fingerprint"], fp)
        if diff:
            details = "; ".join(f"{k}: stored {ck['fingerprint'].get(k)!r}, now {fp.get(k)!r}" for k in diff)
            raise StoreMismatchError(
                f"Store {str(path)!r} was written by a different run and is not resumed ({details})."
            )
        for name, arr in ck["state"].items():
            if name not in state.arrays or state.arrays[name].shape != arr.shape:
                raise StoreMismatchError(f"Store {str(path)!r}: checkpoint array {name!r} does not fit this run.")
            state.arrays[name][...] = arr
        state.step = ck["step"]
        import zarr

        chunk_records = int(zarr.open_group(str(path), mode="r")[variables[0].name].chunks[1])
        return cls(path, variables, n_replicas, chunk_records, fp, elapsed=ck["elapsed"]), ck["records_complete"]

    # -- the recorder protocol -----------------------------------------------------------------
    def buffers(self, k0: int, n: int) -> tuple[dict[str, np.ndarray], int]:
        return self._buf, 0

    def commit(self, k0: int, n: int, state: State, elapsed: float) -> None:
        """Write records ``k0 .. k0+n-1`` to the store, then the checkpoint (atomically)."""
        for v in self.variables:
            self._group[v.name][:, k0:k0 + n] = self._buf[v.name][:, :n]
        self._checkpoint(state, k0 + n, elapsed, complete=False)

    def _checkpoint(self, state: State, records: int, elapsed: float, complete: bool) -> None:
        arrays = {f"state__{k}": v for k, v in state.arrays.items()}
        # written beside the store (same file system) and renamed in: zarr never sees a partial file
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.checkpoint.", suffix=".npz", dir=self.path.parent)
        os.close(fd)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, step=np.int64(state.step), records_complete=np.int64(records),
                         elapsed=np.float64(self.elapsed_before + elapsed), complete=np.bool_(complete),
                         fingerprint=np.str_(json.dumps(self.fp)), **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / CHECKPOINT)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def finish(self, state: State, records: int, elapsed: float, attrs: dict[str, Any]) -> None:
        """Write the per-replica results and final attributes; mark the store complete."""
        diverged = state.arrays["diverged"]
        self._group["diverged_step"][:] = diverged
        self._group["diverged"][:] = diverged >= 0
        total = self.elapsed_before + elapsed
        self._group.attrs.update({**attrs, "elapsed_seconds": total, "status": "complete"})
        self._checkpoint(state, records, elapsed, complete=True)

    def result(self):
        from ..io.files import open_dataset

        return open_dataset(self.path, load=False)
