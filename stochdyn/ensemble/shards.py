"""One ensemble across a cluster: ``simulate(..., workers=N | client=... | scheduler=ADDRESS)``.

The replicas are split into *shards* of consecutive global ids; each shard is an ordinary
``simulate(..., replicas=ids)`` run on a Dask worker (the cluster choices and defaults are those of
:func:`stochdyn.sweep`, whose cluster code runs the shards). A replica's random stream is a function
of the seed and its global id only, so the gathered result is bit-identical to the serial run, for
any number of shards or workers.

With ``store=RUN.zarr`` each shard streams into its own store with checkpoints, in the directory
``RUN.zarr.shards`` beside it (with a manifest of the shard plan); when every shard is complete they
are copied into the one store ``RUN.zarr`` (chunk by chunk, atomically) and the shard directory is
removed. ``resume=True`` keeps finished shards, resumes unfinished ones from their checkpoints and
starts the others; a complete store of the same run is returned as it is.

Stopped replicas (``until=``) free their shard's work as they do in a serial run; shards are about
four per worker, so shards that finish early leave room for the others.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time as _time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .._validation import ValidationError
from ..io.schema import run_attrs
from ..random.streams import stream_key

if TYPE_CHECKING:
    from .sweeps import Job

__all__ = ["simulate_sharded", "shard_plan", "SHARDS_SUFFIX", "MANIFEST"]

SHARDS_SUFFIX = ".shards"
MANIFEST = "shards.json"
#: shards per worker: load balance for runs that stop early, against per-shard overhead
SHARDS_PER_WORKER = 4


def shard_plan(n_replicas: int, n_shards: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: positions in the replica list of each shard, equal sizes except the last."""
    n_shards = max(1, min(int(n_replicas), int(n_shards)))
    size = -(-int(n_replicas) // n_shards)
    return [(a, min(a + size, n_replicas)) for a in range(0, n_replicas, size)]


def _n_workers(mode: str, workers: Any, client: Any, ncores: int) -> int:
    if mode == "client":
        return max(1, len(client.scheduler_info().get("workers", {})))
    if mode == "local" and isinstance(workers, int) and workers > 0:
        return workers
    return ncores


def simulate_sharded(integrator: Any, target: Any, x0: Any = None, *, ids: np.ndarray, replicas: Any, n_steps: int,
                     record_every: int, rng: Any, chunk_steps: Any, progress: Any, store: Any, resume: bool,
                     until: Any, workers: Any, client: Any, scheduler: Any) -> xr.Dataset:
    """:func:`stochdyn.simulate` with its replicas (global ids ``ids``, run arguments already checked by it)
    split into shards run as Dask tasks (see the module docstring)."""
    from .driver import simulate
    from .sweeps import _mode

    mode, ncores = _mode(workers, scheduler, client, 2)
    if mode == "serial":
        return simulate(integrator, target, x0, n_replicas=ids.size if replicas is None else None, replicas=replicas,
                        n_steps=n_steps, record_every=record_every, rng=rng, chunk_steps=chunk_steps,
                        progress=progress, store=store, resume=resume, until=until)
    if resume and store is None:
        raise ValidationError("The 'resume' parameter of simulate needs a 'store' to resume from.")
    R = ids.size
    x0_arr = integrator.prepare_x0(x0, target, R)
    if rng is None and resume and store is not None:
        rng = _stored_seed(Path(store))
    key = stream_key(rng)
    run = {"n_replicas": int(R), "n_steps": int(n_steps), "record_every": int(record_every),
           "replicas": "all" if replicas is None else ids.tolist()}
    description = {"integrator": integrator.to_dict(), "target": target.to_dict(), "run": run, "seed": key.attrs(),
                   "until": None if until is None else until.to_dict(), "x0": _digest(x0_arr)}

    store_path = shard_dir = None
    if store is not None:
        store_path = Path(store)
        if store_path.suffix != ".zarr":
            raise ValidationError(f"The 'store' parameter of simulate must be a path ending in .zarr. Got {str(store)!r}.")
        shard_dir = store_path.with_name(store_path.name + SHARDS_SUFFIX)
        done = _finished_store(store_path, description, resume)
        if done is not None:
            return done
        if shard_dir.exists() and not resume:
            raise FileExistsError(f"{str(shard_dir)!r} holds the shards of an unfinished run: pass resume=True to "
                                  "continue it, or remove it to start again.")

    n_workers = _n_workers(mode, workers, client, ncores)
    plan = _load_or_write_plan(shard_dir, description, R, SHARDS_PER_WORKER * n_workers)
    # compile every kernel here once, so workers only read the disk cache (concurrent cache writes can crash)
    simulate(integrator, target, x0_arr[:1], replicas=ids[:1], n_steps=record_every, record_every=record_every,
             rng=0, until=until, progress=False)
    shard_run = {"n_steps": n_steps, "record_every": record_every, "chunk_steps": chunk_steps, "until": until}
    jobs = [(integrator, target, x0_arr[a:b], {**shard_run, "replicas": ids[a:b]}, key.seed_sequence,
             None if shard_dir is None else shard_dir / f"shard-{j:05d}.zarr", resume)
            for j, (a, b) in enumerate(plan)]
    t0 = _time.perf_counter()
    parts = _execute(jobs, mode, workers, scheduler, client, ncores)
    elapsed = _time.perf_counter() - t0

    attrs = run_attrs(integrator, target, run, key.attrs())
    if until is not None:
        from ..stopping._run import StopTracker

        attrs.update(StopTracker.describe(until))
    if shard_dir is not None:
        from ..io.files import open_dataset

        parts = [open_dataset(shard_dir / f"shard-{j:05d}.zarr", load=False) for j in range(len(plan))]
    out = xr.concat(parts, dim="replica", data_vars="all", coords="minimal", compat="override", join="exact",
                    combine_attrs="drop")
    n_div = int(out["diverged"].sum())
    attrs["n_diverged"] = n_div
    if until is not None:
        attrs["n_stopped"] = int(out["stopped"].sum())
    attrs["compile_seconds"] = round(sum(float(p.attrs.get("compile_seconds", 0.0)) for p in parts), 3)
    attrs["elapsed_seconds"] = float(elapsed)
    attrs["n_shards"] = len(plan)
    out.attrs = attrs
    if n_div:
        from .driver import warn_divergence

        warn_divergence(n_div, R, int(out["diverged_step"].where(out["diverged"]).min()), integrator, target)
    if store_path is None:
        return out
    assert shard_dir is not None  # set with store_path
    _assemble(out, store_path, plan, description)
    shutil.rmtree(shard_dir, ignore_errors=True)
    from ..io.files import open_dataset

    return open_dataset(store_path, load=False)


def _execute(jobs: list[Job], mode: str, workers: Any, scheduler: Any, client: Any, ncores: int) -> list[Any]:
    """Run the shard jobs on Dask (the cluster code of sd.sweep); returns their Datasets (None for stores)."""
    from .sweeps import _dask_client, run_jobs

    with _dask_client(mode, workers, scheduler, client, len(jobs), ncores) as cl:
        return run_jobs(cl, jobs, ncores)


def _digest(arr: np.ndarray) -> str:
    import hashlib

    return "sha256 " + hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def _load_or_write_plan(shard_dir: Path | None, description: dict, R: int, n_shards: int) -> list[tuple[int, int]]:
    """The shard plan: a resumed store keeps the one in its manifest (checked to be the same run)."""
    if shard_dir is None:
        return shard_plan(R, n_shards)
    manifest = shard_dir / MANIFEST
    now = json.loads(json.dumps(description))
    if manifest.is_file():
        stored = json.loads(manifest.read_text())
        if stored["run"] != now:
            diff = [k for k in now if stored["run"].get(k) != now[k]]
            raise ValidationError(f"{str(shard_dir)!r} holds the shards of a different run ({', '.join(diff)} differ); "
                                  "it is not resumed.")
        return [tuple(p) for p in stored["plan"]]
    plan = shard_plan(R, n_shards)
    shard_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard_dir.name}.", suffix=".tmp", dir=shard_dir.parent))
    try:
        (tmp / MANIFEST).write_text(json.dumps({"stochdyn_shards": 1, "run": now, "plan": plan}, indent=1))
        os.replace(tmp, shard_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return plan


def _stored_seed(path: Path) -> Any:
    """The seed of a sharded run in ``path`` (its manifest, or the finished store), to resume with ``rng=None``."""
    from ..random.streams import seed_sequence_from_attrs

    manifest = path.with_name(path.name + SHARDS_SUFFIX) / MANIFEST
    if manifest.is_file():
        return seed_sequence_from_attrs(json.loads(manifest.read_text())["run"]["seed"])
    if path.exists():
        import zarr

        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        if "seed" in attrs:
            return seed_sequence_from_attrs(attrs)
    return None


def _finished_store(path: Path, description: dict, resume: bool) -> xr.Dataset | None:
    """A complete sharded store of this run (returned when resuming), else None; refuses to overwrite."""
    if not path.exists():
        return None
    if not resume:
        raise FileExistsError(f"Store {str(path)!r} exists: pass resume=True (CLI: --resume) to continue it, or remove "
                              "it to start again.")
    import zarr

    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    fingerprint = attrs.get("shards_fingerprint")
    if attrs.get("status") != "complete" or not isinstance(fingerprint, str):  # a sharded run writes it as JSON text
        raise ValidationError(f"Store {str(path)!r} was not written by a sharded run (simulate with workers=, client= "
                              "or scheduler=); resume it without them, or remove it.")
    if json.loads(fingerprint) != json.loads(json.dumps(description)):
        raise ValidationError(f"Store {str(path)!r} was written by a different run and is not resumed.")
    from ..io.files import open_dataset

    return open_dataset(path, load=False)


def _assemble(ds: xr.Dataset, path: Path, plan: list[tuple[int, int]], description: dict) -> None:
    """Copy the gathered shards into one zarr store, chunk by chunk through Dask, atomically."""
    size = plan[0][1] - plan[0][0]
    ds = ds.copy()
    for v in ds.variables.values():
        v.encoding = {}
    chunks = {"replica": size}
    if "time" in ds.dims:
        first = ds[next(n for n, v in ds.data_vars.items() if "time" in v.dims)]
        tc = first.chunksizes.get("time", (ds.sizes["time"],))[0] if first.chunks else ds.sizes["time"]
        chunks["time"] = int(tc)
    ds = ds.chunk(chunks)
    ds.attrs.update(status="complete", shards_fingerprint=json.dumps(description))
    from ..io.files import _encodable

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _encodable(ds).to_zarr(tmp, mode="w", consolidated=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
