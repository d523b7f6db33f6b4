"""Streaming a run into a zarr store: checksums, a checkpoint at every chunk boundary, a lock.

Layout of a store written by ``simulate(..., store=PATH)`` (and, without a run state, by
``sd.save(ds, "x.zarr")``):

* the Dataset itself, as xarray writes it to zarr (format 3, consolidated metadata, so plain
  ``xarray.open_zarr`` and ``zarr.open`` read it without a warning), created full-size up front —
  records not yet computed are fill values (NaN). Every chunk of every array ends with a CRC-32C
  checksum (the zarr ``crc32c`` codec after ``zstd``), which every zarr reader verifies;
* ``.stochdyn-checkpoint.npz``: the step, the number of complete records, the elapsed time, the
  run's fingerprint, every checkpointable state array (positions, velocities, generator words,
  divergence steps, ...) and the store's *manifest*: the size of every chunk file written so far
  and the SHA-256 of every metadata file. It is written inside the store under a temporary name
  and renamed into place after each chunk's records, so it always describes a consistent moment
  of the run; the zip container checks a CRC-32 of each of its members. A first checkpoint (step 0)
  is part of the store from the moment the store appears, so a run killed at any moment —
  before its first chunk included — can be resumed.

Each chunk writes whole zarr chunks (the time-chunk of the store is the number of records per
simulation chunk, and the first chunk includes record 0), so a write interrupted at any moment,
SIGKILL included, can only touch records after the checkpoint — which the resumed run rewrites
and which :func:`stochdyn.open_dataset` never shows (it cuts an unfinished store at the last
complete record). The store directory appears atomically: it is created under a temporary name
and renamed. While a run writes a store it holds a lock (``.NAME.zarr.lock`` beside the store,
an advisory ``flock`` the kernel releases if the process dies), so a second writer is refused.

Verification (:func:`verify_store`): the cheap mode — used whenever a store is opened — checks the
checkpoint, the metadata checksums and that every chunk of a complete record exists with its
recorded size; the full mode (``stochdyn verify STORE``, and every resume) also recomputes the
CRC-32C of every chunk. A resumed run recomputes damaged chunks of complete records from the
start of their replicas (replicas are independent and bit-reproducible alone) and refuses a store
whose checkpoint or metadata is damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .._validation import ValidationError
from .._version import __version__
from ..integrators.base import State, Variable
from ..io.output import OutputError, check_free_space, make_temp_dir

if TYPE_CHECKING:
    import zarr

try:  # POSIX advisory locks; elsewhere stores are not locked (documented)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["ZarrRecorder", "fingerprint", "CHECKPOINT", "read_checkpoint", "verify_store", "store_lock",
           "StoreMismatchError", "DamagedStoreError", "StoreLockedError", "StoreWriteError", "RepairedStoreWarning",
           "Damage", "zarr_encoding", "records_per_chunk", "update_attrs", "write_dataset"]

CHECKPOINT = ".stochdyn-checkpoint.npz"
#: version of the store layout (1: before checksums and manifests)
FORMAT = 2
#: bytes of records buffered per chunk in store mode (memory stays bounded by about this much)
STORE_BUFFER_BYTES = 256 * 2**20
#: bytes per zarr chunk file (replica blocks are sized to about this)
ZARR_CHUNK_BYTES = 32 * 2**20
#: chunks rewritten when a run finishes (the per-replica results; the stop variables of a run with until)
_FINAL_ARRAYS = ("diverged/c/", "diverged_step/c/", "stopped/c/", "stop_step/c/", "stop_time/c/", "stop_rule/c/")


class StoreMismatchError(ValidationError):
    """A store exists but was written by a different run; it is not resumed."""


class StoreLockedError(ValidationError):
    """Another process is writing this store."""


class StoreWriteError(OutputError):
    """Writing a store failed during a run (disk full, I/O error); the store stays resumable."""


class RepairedStoreWarning(UserWarning):
    """A resumed run found damaged chunks of complete records and recomputed them."""


@dataclass(frozen=True)
class Damage:
    """One damaged item of a store: ``file`` (path inside the store) and what is wrong with it."""

    file: str
    reason: str

    @property
    def array(self) -> str | None:
        head, sep, _ = self.file.partition("/c/")
        return head if sep else (self.file.rsplit("/", 1)[0] if self.file.endswith("/zarr.json") else None)

    @property
    def chunk(self) -> tuple[int, ...] | None:
        _, sep, tail = self.file.partition("/c/")
        return tuple(int(p) for p in tail.split("/")) if sep else None

    def __str__(self) -> str:
        if self.chunk is not None:
            return f"array {self.array!r} chunk {self.chunk} ({self.file}): {self.reason}"
        if self.file == CHECKPOINT:
            return f"checkpoint ({CHECKPOINT}): {self.reason}"
        if self.file.endswith("zarr.json"):
            return f"metadata {self.file!r}: {self.reason}"
        return f"{self.file}: {self.reason}"


class DamagedStoreError(ValidationError):
    """A store (or file) is damaged: missing, truncated or altered chunks, metadata or checkpoint."""

    def __init__(self, path: str | os.PathLike, damage: list[Damage], advice: str = ""):
        self.path = str(path)
        self.damage = list(damage)
        shown = "; ".join(str(d) for d in damage[:3]) + (f"; and {len(damage) - 3} more" if len(damage) > 3 else "")
        super().__init__(f"Store {self.path!r} is damaged: {shown}." + (f" {advice}" if advice else ""))


# -- layout ----------------------------------------------------------------------------------------
def _codecs() -> list[Any]:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=0), Crc32cCodec()]


def record_bytes(variables: list[Variable], n_replicas: int) -> int:
    """Bytes of one record of every variable for ``n_replicas`` replicas."""
    return sum(n_replicas * int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in variables)


def records_per_chunk(per_record: int, n_replicas: int, record_every: int, n_records: int,
                      chunk_steps: int | None = None) -> int:
    """Records per chunk: as given by ``chunk_steps``, else enough work per chunk within the buffer budget."""
    from .driver import TARGET_CHUNK_WORK

    if chunk_steps is not None:
        return max(1, min(n_records, chunk_steps // record_every))
    by_memory = max(1, STORE_BUFFER_BYTES // max(1, per_record))
    by_work = max(1, -(-TARGET_CHUNK_WORK // (n_replicas * record_every)))
    return int(max(1, min(n_records, by_memory, by_work)))


def zarr_encoding(ds: Any, chunk_records: int | None = None) -> dict[str, dict[str, Any]]:
    """Zarr chunks and codecs of every variable: the same for ``sd.save`` and for streamed runs.

    Variables over ``(replica, time, ...)`` get time-chunks of ``chunk_records`` records (default:
    what a streamed run of this size would use) and replica blocks of about ``ZARR_CHUNK_BYTES``;
    trailing dimensions (``dim``, ``individual``) stay whole; dimensions before ``replica`` (sweep
    parameters) are chunked by one. Other arrays are one chunk, split along their first dimension
    when large. Every chunk carries a CRC-32C checksum.
    """
    sizes = dict(ds.sizes)
    if chunk_records is None:
        streamed = [v for v in ds.data_vars.values() if v.dims[:2] == ("replica", "time")]
        per_record = sum(int(v.dtype.itemsize) * int(np.prod(v.shape, dtype=np.int64)) // max(1, sizes["time"])
                         for v in streamed)
        chunk_records = (records_per_chunk(per_record, max(1, sizes.get("replica", 1)),
                                           max(1, int(ds.attrs.get("record_every", 1))), max(1, sizes["time"]))
                         if streamed else 1)
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "OUS":
            continue
        shape = tuple(int(s) for s in var.shape)
        chunks = [max(1, s) for s in shape]
        if "replica" in var.dims and "time" in var.dims:
            r, t = var.dims.index("replica"), var.dims.index("time")
            chunks[t] = max(1, min(chunk_records, shape[t]))
            for i in range(r):
                chunks[i] = 1
            per_rep = var.dtype.itemsize * int(np.prod([chunks[i] for i in range(len(shape)) if i != r], dtype=np.int64))
            chunks[r] = int(max(1, min(shape[r], ZARR_CHUNK_BYTES // max(1, per_rep))))
        elif shape:
            row = var.dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
            chunks[0] = int(max(1, min(shape[0], ZARR_CHUNK_BYTES // max(1, row))))
        enc[name] = {"chunks": tuple(chunks), "compressors": _codecs()}
    return enc


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    """Silence zarr's notes about consolidated metadata (written on purpose) and, when it lists a
    store's folder (consolidating), about the checkpoint file, which is not a zarr node."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        yield


def _consolidate(path: Path) -> None:
    import zarr

    with _quiet_zarr():
        zarr.consolidate_metadata(str(path))


# -- fingerprint -----------------------------------------------------------------------------------
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


# -- lock ------------------------------------------------------------------------------------------
class store_lock:
    """Exclusive, non-blocking lock of a store (or sweep folder) for one writer: ``with store_lock(p): ...``.

    A lock file ``.NAME.lock`` beside ``p`` holds an advisory ``flock`` (released by the kernel
    when the process ends, however it ends) and the holder's pid and host; it is removed on release.
    """

    def __init__(self, path: str | os.PathLike):
        p = Path(path)
        self.path = p
        self.file = p.parent / f".{p.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "store_lock":
        if fcntl is None:  # pragma: no cover
            return self
        self.file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                finally:
                    os.close(fd)
                raise StoreLockedError(
                    f"{str(self.path)!r} is being written by another process ({holder}); wait for it to finish, "
                    f"or stop it and resume. (Lock file: {str(self.file)!r}.)"
                ) from None
            try:  # the file we locked must still be the one at the path (a releasing holder unlinks it)
                same = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.file)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "store_lock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# -- manifest and checkpoint ----------------------------------------------------------------------
def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _crc_ok(path: Path) -> bool:
    import google_crc32c

    data = path.read_bytes()
    return len(data) >= 4 and int(google_crc32c.value(data[:-4])) == int.from_bytes(data[-4:], "little")


def _scan(root: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Metadata files (-> SHA-256) and chunk files (-> size) of a store."""
    meta: dict[str, str] = {}
    files: dict[str, int] = {}
    for dirpath, _, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if f == CHECKPOINT or f.endswith(".partial"):
                continue
            if f == "zarr.json":
                meta[rel] = _file_sha(Path(dirpath) / f)
            elif "/c/" in rel:
                files[rel] = (Path(dirpath) / f).stat().st_size
    return meta, files


def _chunk_file(var: str, coords: tuple[int, ...]) -> str:
    return f"{var}/c/" + "/".join(str(int(c)) for c in coords)


def _write_checkpoint(root: Path, fields: dict[str, Any]) -> None:
    """Write the checkpoint atomically inside the store (temporary name, fsync, rename)."""
    tmp = root / f"{CHECKPOINT}.{os.urandom(6).hex()}.partial"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **fields)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / CHECKPOINT)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _manifest_fields(meta: dict[str, str], files: dict[str, int], grids: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "meta_names": np.array(sorted(meta), dtype=str), "meta_sha": np.array([meta[k] for k in sorted(meta)], dtype=str),
        "file_names": np.array(sorted(files), dtype=str),
        "file_sizes": np.array([files[k] for k in sorted(files)], dtype=np.int64),
    }
    out.update({f"grid__{k}": v for k, v in grids.items()})
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint of a store (``None`` if it has none): step, records, fingerprint, state, manifest.

    Raises :class:`DamagedStoreError` if the checkpoint exists but cannot be read or fails its checksums.
    """
    f = Path(path) / CHECKPOINT
    if not f.is_file():
        return None
    try:
        with zipfile.ZipFile(f) as z:
            bad = z.testzip()  # reads every member and checks its CRC-32
        if bad is not None:
            raise ValueError(f"member {bad!r} fails its CRC-32")
        with np.load(f, allow_pickle=False) as z:
            files = set(z.files)
            kind = str(z["kind"]) if "kind" in files else "run"
            out: dict[str, Any] = {
                "format": int(z["format"]) if "format" in files else 1,
                "kind": kind,
                "complete": bool(z["complete"]),
                "finishing": bool(z["finishing"]) if "finishing" in files else False,
                "step": int(z["step"]) if "step" in files else 0,
                "records_complete": int(z["records_complete"]) if "records_complete" in files else 0,
                "elapsed": float(z["elapsed"]) if "elapsed" in files else 0.0,
                "fingerprint": json.loads(str(z["fingerprint"])) if "fingerprint" in files else None,
                "chunk_records": int(z["chunk_records"]) if "chunk_records" in files else None,
                "state": {k[len("state__"):]: z[k] for k in z.files if k.startswith("state__")},
                "meta": dict(zip(z["meta_names"].tolist(), z["meta_sha"].tolist())) if "meta_names" in files else None,
                "files": (dict(zip(z["file_names"].tolist(), (int(s) for s in z["file_sizes"])))
                          if "file_names" in files else None),
                "grids": {k[len("grid__"):]: z[k] for k in z.files if k.startswith("grid__")},
            }
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, TypeError) as exc:
        raise DamagedStoreError(path, [Damage(CHECKPOINT, f"unreadable ({type(exc).__name__}: {exc})")],
                                "It cannot be resumed or verified: remove the store to start the run again.") from None
    return out


def stored_seed(path: str | os.PathLike) -> dict[str, str] | None:
    ck = read_checkpoint(path)
    return None if ck is None or not ck["fingerprint"] else ck["fingerprint"]["seed"]


def verify_store(path: str | os.PathLike, full: bool = False, ck: dict[str, Any] | None = None) -> list[Damage]:
    """Check a stochdyn store against its manifest; return what is damaged (empty: intact).

    Cheap mode (``full=False``): every metadata file has its recorded SHA-256 and every chunk file
    of the manifest (all chunks of complete records) exists with its recorded size. Full mode
    also recomputes the CRC-32C of every chunk. Raises :class:`DamagedStoreError` if the checkpoint
    itself is unreadable, and :class:`ValidationError` for a store without one or from before
    checksums (format 1).
    """
    root = Path(path)
    ck = ck if ck is not None else read_checkpoint(root)
    if ck is None:
        raise ValidationError(f"{str(root)!r} holds no stochdyn checkpoint, so it cannot be verified.")
    if ck["format"] < FORMAT or ck["meta"] is None:
        raise ValidationError(f"Store {str(root)!r} was written by an older stochdyn without checksums; it cannot be verified.")
    damage: list[Damage] = []
    # while a run finishes (or gets attributes), the root metadata and the per-replica results are
    # rewritten before the manifest: then they must be readable, not equal to the manifest
    finishing = bool(ck.get("finishing"))
    for rel, sha in ck["meta"].items():
        f = root / rel
        if not f.is_file():
            damage.append(Damage(rel, "missing"))
        elif _file_sha(f) != sha and not (finishing and rel == "zarr.json" and _stored_fingerprint(root) is not None):
            damage.append(Damage(rel, "fails its SHA-256 checksum"))
    expected = dict(ck["files"])
    for var, grid in ck["grids"].items():  # grid: size of each chunk file of a streamed variable, -1 if not written
        for coords in zip(*np.nonzero(grid >= 0)):
            expected[_chunk_file(var, coords)] = int(grid[coords])
    for rel, size in sorted(expected.items()):
        f = root / rel
        try:
            actual = f.stat().st_size
        except FileNotFoundError:
            damage.append(Damage(rel, "missing"))
            continue
        if actual != size and not (finishing and rel.startswith(_FINAL_ARRAYS)):
            damage.append(Damage(rel, f"{actual} bytes, expected {size}"))
        elif full and not _crc_ok(f):
            damage.append(Damage(rel, "fails its CRC-32C checksum"))
    return damage


# -- writing a whole Dataset (sd.save) -----------------------------------------------------------
def write_dataset(ds: Any, tmp: Path) -> None:
    """Write ``ds`` as a finished zarr store into the empty folder ``tmp``, with checksums and a manifest."""
    enc = zarr_encoding(ds)
    ds = ds.copy()
    for v in ds.variables.values():
        v.encoding = {}
    for name, e in enc.items():  # dask-backed (a lazily opened store): align each array's blocks to its zarr chunks
        if name in ds.data_vars and getattr(ds[name].data, "chunks", None) is not None:
            ds[name] = ds[name].chunk(dict(zip(ds[name].dims, e["chunks"])))
    with _quiet_zarr():
        ds.to_zarr(tmp, mode="w", consolidated=True, encoding=enc, write_empty_chunks=True, zarr_format=3)
    meta, files = _scan(tmp)
    _write_checkpoint(tmp, {"format": np.int64(FORMAT), "kind": np.str_("saved"), "complete": np.bool_(True),
                            **_manifest_fields(meta, files, {})})


def update_attrs(path: str | os.PathLike, attrs: dict[str, Any]) -> None:
    """Add attributes to a finished run store, keeping its consolidated metadata and manifest true."""
    import zarr

    root = Path(path)
    with store_lock(root):
        ck = read_checkpoint(root)
        if ck is None or ck["meta"] is None:
            raise ValidationError(f"{str(root)!r} is not a stochdyn store with a checkpoint.")
        bad = [d for d in verify_store(root, ck=ck) if d.file == "zarr.json"]
        if bad:
            raise DamagedStoreError(root, bad)
        _rewrite_checkpoint(root, ck, finishing=True)  # a kill before the next line leaves a verifiable store
        with _quiet_zarr():
            zarr.open_group(str(root), mode="r+").attrs.update(attrs)
        _consolidate(root)
        _rewrite_checkpoint(root, ck, meta=dict(ck["meta"], **{"zarr.json": _file_sha(root / "zarr.json")}),
                            finishing=False)


def _rewrite_checkpoint(root: Path, ck: dict[str, Any], meta: dict[str, str] | None = None, finishing: bool = False) -> None:
    """The checkpoint ``ck`` again, with a new metadata manifest and ``finishing`` flag."""
    with np.load(root / CHECKPOINT, allow_pickle=False) as z:
        fields = {k: z[k] for k in z.files}
    fields.update(_manifest_fields(meta if meta is not None else ck["meta"], ck["files"], ck["grids"]))
    fields["finishing"] = np.bool_(finishing)
    _write_checkpoint(root, fields)


# -- the recorder ------------------------------------------------------------------------------------
class ZarrRecorder:
    """Stream records into a zarr store, checkpointing the state and manifest after every chunk.

    Create or resume with :meth:`open`; the recorder holds the store's lock until :meth:`close`.
    """

    def __init__(self, path: Path, variables: list[Variable], n_replicas: int, chunk_records: int,
                 fp: dict[str, Any], lock: store_lock, manifest: dict[str, Any], elapsed: float = 0.0):
        import zarr

        self.path = path
        self.variables = variables
        self.chunk_records = chunk_records
        self.fp = fp
        self.lock = lock
        self.meta: dict[str, str] = manifest["meta"]
        self.files: dict[str, int] = manifest["files"]
        self.grids: dict[str, np.ndarray] = manifest["grids"]
        self.elapsed_before = elapsed
        self._group = zarr.open_group(str(path), mode="r+")
        self._arrays = {v.name: self._array(v.name) for v in variables}
        self._rc = {v.name: int(self._arrays[v.name].chunks[0]) for v in variables}
        self._buf = {
            v.name: np.full((n_replicas, chunk_records) + tuple(v.shape),
                            np.nan if np.dtype(v.dtype).kind == "f" else 0, dtype=v.dtype)
            for v in variables
        }

    def _array(self, name: str) -> zarr.Array:
        """The store's array ``name``, writing every chunk (also one all at the fill value)."""
        import zarr

        arr = self._group[name]
        assert isinstance(arr, zarr.Array), f"{name!r} is a group, not an array"
        return arr.with_config({"write_empty_chunks": True})

    # -- creation and resumption ----------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, resume: bool, fp: dict[str, Any], state: State, variables: list[Variable],
             n_records: int, chunk_records: int, template: Callable[[], Any],
             recompute: Callable[[slice, set[int], int], dict[int, dict[str, np.ndarray]]]) -> tuple["ZarrRecorder", int]:
        """Create the store, or (``resume``) reopen, verify, repair and restore it; take its lock.

        Returns the recorder and the number of complete records.
        """
        lock = store_lock(path).acquire()
        try:
            _clean_partials(path)
            R = int(state.arrays["x"].shape[0])
            if path.exists():
                if not resume:
                    raise FileExistsError(f"Store {str(path)!r} exists: resume it (resume=True; on the command line "
                                          "--resume) or remove it to start again.")
                if not path.is_dir():
                    raise OutputError(f"{str(path)!r} exists and is a file, not a zarr store (a folder).")
                ck = read_checkpoint(path)
                if ck is not None:
                    check_free_space(path, record_bytes(variables, R) * (n_records - ck["records_complete"]),
                                     f"The rest of the run in {str(path)!r}")
                    return cls._resume(path, ck, lock, fp, state, variables, n_records, template, recompute)
                if any(path.iterdir()) and _stored_fingerprint(path) != json.loads(json.dumps(fp)):
                    raise StoreMismatchError(
                        f"{str(path)!r} exists but holds no stochdyn checkpoint and is not a store of this run, so it "
                        "is not resumed: remove it or choose another store."
                    )
                if any(path.iterdir()):
                    warnings.warn(f"Store {str(path)!r} of this run holds no checkpoint; starting the run over.",
                                  RepairedStoreWarning, stacklevel=4)
                shutil.rmtree(path)
            return cls._create(path, lock, fp, state, variables, n_records, chunk_records, template), 0
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _create(cls, path: Path, lock: store_lock, fp: dict[str, Any], state: State, variables: list[Variable],
                n_records: int, chunk_records: int, template: Callable[[], Any]) -> "ZarrRecorder":
        """Write the full-size, empty store and its first checkpoint under a temporary name, then rename it."""
        import dask.array as da

        R = int(state.arrays["x"].shape[0])
        check_free_space(path, record_bytes(variables, R) * n_records + 16 * R, f"The store {str(path)!r}")
        ds = template().copy()
        enc = zarr_encoding(ds, chunk_records)
        for v in variables:
            fill = np.nan if np.dtype(v.dtype).kind == "f" else 0
            ds[v.name] = (ds[v.name].dims, da.full(ds[v.name].shape, fill, dtype=v.dtype, chunks=enc[v.name]["chunks"]),
                          ds[v.name].attrs)
        ds.attrs["status"] = "running"
        ds.attrs["fingerprint"] = json.dumps(fp)
        tmp = make_temp_dir(path)
        try:
            with _quiet_zarr():
                ds.to_zarr(tmp, mode="w", compute=False, consolidated=True, encoding=enc, write_empty_chunks=True,
                           zarr_format=3)
            meta, files = _scan(tmp)  # metadata and coordinates; the records are not written yet
            grids = {v.name: np.full((-(-R // enc[v.name]["chunks"][0]), -(-n_records // chunk_records)) + (1,) * len(v.shape),
                                     -1, np.int64) for v in variables}
            rec_manifest = {"meta": meta, "files": files, "grids": grids}
            _write_checkpoint(tmp, _checkpoint_fields(fp, state, 0, 0.0, False, chunk_records, rec_manifest))
            os.rename(tmp, path)  # atomic; onto an existing empty folder too
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreWriteError(f"creating the store {str(path)!r} failed: {exc}; nothing was written",
                                  exc.errno) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path, variables, R, chunk_records, fp, lock, rec_manifest)

    @classmethod
    def _resume(cls, path: Path, ck: dict[str, Any], lock: store_lock, fp: dict[str, Any], state: State,
                variables: list[Variable], n_records: int, template: Callable[[], Any],
                recompute: Callable[[slice, set[int], int], dict[int, dict[str, np.ndarray]]]) -> tuple["ZarrRecorder", int]:
        if ck["kind"] != "run" or not ck["fingerprint"]:
            raise StoreMismatchError(f"{str(path)!r} is a saved Dataset, not the store of a run, so it cannot be resumed.")
        diff = _mismatch(ck["fingerprint"], fp)
        if diff:
            details = "; ".join(f"{k}: stored {ck['fingerprint'].get(k)!r}, now {fp.get(k)!r}" for k in diff)
            raise StoreMismatchError(f"Store {str(path)!r} was written by a different run and is not resumed ({details}).")
        if ck["format"] < FORMAT:
            raise StoreMismatchError(f"Store {str(path)!r} was written by an older stochdyn (no checksums) and cannot "
                                     "be resumed: remove it to start again.")
        for name, arr in ck["state"].items():
            if name not in state.arrays or state.arrays[name].shape != arr.shape:
                raise StoreMismatchError(f"Store {str(path)!r}: checkpoint array {name!r} does not fit this run.")
        damage = verify_store(path, full=True, ck=ck)
        fatal = [d for d in damage if d.chunk is None]
        if fatal:
            raise DamagedStoreError(path, fatal, "Its metadata cannot be recomputed from a checkpoint: remove the store "
                                                 "to start the run again.")
        manifest = {"meta": ck["meta"], "files": ck["files"], "grids": ck["grids"]}
        rec = cls(path, variables, int(state.arrays["x"].shape[0]), ck["chunk_records"], fp, lock, manifest,
                  elapsed=ck["elapsed"])
        if damage:  # before the state is restored: the initial state (x0) is still in it
            rec._repair(damage, template, recompute, n_records)
        for name, arr in ck["state"].items():
            state.arrays[name][...] = arr
        state.step = ck["step"]
        if damage:
            rec._checkpoint(state, ck["records_complete"], 0.0, complete=ck["complete"])
        return rec, ck["records_complete"]

    def _repair(self, damage: list[Damage], template: Callable[[], Any],
                recompute: Callable[[slice, set[int], int], dict[int, dict[str, np.ndarray]]], n_records: int) -> None:
        """Rewrite damaged chunks: coordinates from the template, records by recomputing their replicas."""
        c = self.chunk_records
        streamed: dict[tuple[int, int], dict[str, set[int]]] = {}
        static: set[str] = set()
        for d in damage:
            assert d.array is not None and d.chunk is not None
            if d.array in self._arrays:
                i, j = d.chunk[0], d.chunk[1]
                rc = self._rc[d.array]
                rows = (i * rc, min((i + 1) * rc, self._buf[d.array].shape[0]))
                streamed.setdefault(rows, {}).setdefault(d.array, set()).add(j)
            else:
                static.add(d.array)
        if static:
            ds = template()
            for name in sorted(static):
                arr = self._array(name)
                self._write(lambda: arr.__setitem__(Ellipsis, ds[name].values), f"array {name!r}")
                for rel in self.files:
                    if rel.startswith(f"{name}/c/"):
                        self.files[rel] = (self.path / rel).stat().st_size
        for (lo, hi), per_var in sorted(streamed.items()):
            wanted = set().union(*per_var.values())
            got = recompute(slice(lo, hi), wanted, c)
            for name, js in per_var.items():
                for j in sorted(js):
                    k0 = j * c
                    block = got[j][name]
                    self._write(lambda: self._arrays[name].__setitem__((slice(lo, hi), slice(k0, k0 + block.shape[1])),
                                                                       block), f"array {name!r}")
                    coords = (lo // self._rc[name], j) + (0,) * (self.grids[name].ndim - 2)
                    self.grids[name][coords] = (self.path / _chunk_file(name, coords)).stat().st_size
        warnings.warn(
            f"Store {str(self.path)!r} was damaged and has been repaired: "
            + "; ".join(str(d) for d in damage[:5]) + (f"; and {len(damage) - 5} more" if len(damage) > 5 else "")
            + ". Damaged records were recomputed from the start of their replicas (bit-identical).",
            RepairedStoreWarning, stacklevel=5,
        )

    # -- the recorder protocol -----------------------------------------------------------------
    def buffers(self, k0: int, n: int) -> tuple[dict[str, np.ndarray], int]:
        return self._buf, 0

    def _write(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except OSError as exc:
            raise StoreWriteError(
                f"writing {what} of the store {str(self.path)!r} failed: {exc.strerror or exc}. The store keeps its "
                "last checkpoint and can be resumed once the cause is fixed.", exc.errno) from exc

    def commit(self, k0: int, n: int, state: State, elapsed: float) -> None:
        """Write records ``k0 .. k0+n-1`` to the store, then the checkpoint (atomically)."""
        j = k0 // self.chunk_records
        for v in self.variables:
            self._write(lambda: self._arrays[v.name].__setitem__((slice(None), slice(k0, k0 + n)), self._buf[v.name][:, :n]),
                        f"records {k0}..{k0 + n - 1} of {v.name!r}")
            grid = self.grids[v.name]
            for i in range(grid.shape[0]):
                coords = (i, j) + (0,) * (grid.ndim - 2)
                rel = _chunk_file(v.name, coords)
                try:
                    grid[coords] = (self.path / rel).stat().st_size
                except OSError as exc:
                    raise StoreWriteError(f"chunk {rel!r} of the store {str(self.path)!r} is missing right after it "
                                          f"was written ({exc.strerror}).", exc.errno) from exc
        self._checkpoint(state, k0 + n, elapsed, complete=False)

    def _checkpoint(self, state: State, records: int, elapsed: float, complete: bool, finishing: bool = False) -> None:
        fields = _checkpoint_fields(self.fp, state, records, self.elapsed_before + elapsed, complete, self.chunk_records,
                                    {"meta": self.meta, "files": self.files, "grids": self.grids}, finishing)
        self._write(lambda: _write_checkpoint(self.path, fields), "the checkpoint")

    def finish(self, state: State, records: int, elapsed: float, attrs: dict[str, Any],
               extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the per-replica results (``diverged``, ``diverged_step`` and the arrays ``extra``, e.g. the
        stop variables of a run with ``until``, all in the template) and final attributes; mark the store
        complete."""
        diverged = state.arrays["diverged"]
        finals = {"diverged_step": diverged, "diverged": diverged >= 0, **(extra or {})}
        # a kill from here to the last checkpoint leaves the root metadata and the per-replica
        # results rewritten but not yet in the manifest: this flag tells verification to expect that
        self._checkpoint(state, records, elapsed, complete=False, finishing=True)

        def write() -> None:
            for name, values in finals.items():
                self._array(name)[:] = values
            self._group.attrs.update({**attrs, "elapsed_seconds": self.elapsed_before + elapsed, "status": "complete"})
            _consolidate(self.path)

        self._write(write, "the final results")
        self.meta["zarr.json"] = _file_sha(self.path / "zarr.json")
        for rel in self.files:
            if rel.startswith(_FINAL_ARRAYS):
                self.files[rel] = (self.path / rel).stat().st_size
        self._checkpoint(state, records, elapsed, complete=True)

    def close(self) -> None:
        """Release the store's lock."""
        self.lock.release()

    def result(self):
        from ..io.files import open_dataset

        return open_dataset(self.path, load=False)


def _checkpoint_fields(fp: dict[str, Any], state: State, records: int, elapsed: float, complete: bool,
                       chunk_records: int, manifest: dict[str, Any], finishing: bool = False) -> dict[str, Any]:
    return {
        "format": np.int64(FORMAT), "kind": np.str_("run"), "step": np.int64(state.step),
        "finishing": np.bool_(finishing),
        "records_complete": np.int64(records), "elapsed": np.float64(elapsed), "complete": np.bool_(complete),
        "chunk_records": np.int64(chunk_records), "fingerprint": np.str_(json.dumps(fp)),
        **{f"state__{k}": v for k, v in state.arrays.items()},
        **_manifest_fields(manifest["meta"], manifest["files"], manifest["grids"]),
    }


def _stored_fingerprint(path: Path) -> Any:
    """The fingerprint in a store's metadata (``None`` if unreadable)."""
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        return json.loads(attrs["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _clean_partials(path: Path) -> None:
    """Remove what a killed writer may have left: temporary stores beside ``path``, partial files inside."""
    if path.parent.is_dir():
        for p in path.parent.glob(f".{path.name}.*.tmp"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if path.is_dir():
        for p in path.rglob("*.partial"):
            p.unlink(missing_ok=True)


def recompute_chunks(integrator: Any, target: Any, x0: np.ndarray, key: Any, ids: np.ndarray, record_every: int,
                     variables: list[Variable], n_records: int, rows: slice, wanted: set[int],
                     chunk_records: int, until: Any = None) -> dict[int, dict[str, np.ndarray]]:
    """Records of the time-chunks ``wanted`` for replicas ``rows``, recomputed from their initial state
    (with the run's stopping rule ``until``, if any).

    Replicas are independent and draw from their own streams, so running a block of them alone
    reproduces their records bit for bit; memory holds one chunk of records for the block.
    """
    from ..stopping._run import StopTracker
    from .driver import _run_chunks, block_size
    from .recorder import WindowRecorder

    sub = ids[rows]
    state = integrator.init_state(target, np.array(x0[rows], copy=True), key.streams(sub))
    tracker = None if until is None else StopTracker(until, integrator, target, state, variables, sub.size)
    c = chunk_records
    rec = WindowRecorder(variables, sub.size, c, wanted)
    _run_chunks(integrator, target, state, rec, 0, min((max(wanted) + 1) * c, n_records), c, record_every,
                block_size(sub.size), None, tracker)
    return rec.kept

