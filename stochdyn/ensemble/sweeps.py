"""Parameter sweeps: one ensemble per grid point, combined into one Dataset with a dimension per
swept parameter; run serially, on a local Dask cluster, or on any Dask scheduler.

Seeds: the random streams of a point derive from (study seed, the point's own parameter values,
replica), so a point's numbers never depend on which other points ran, in what order, or where.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import time as _time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from .._validation import ValidationError
from .._warnings import call_collecting_warnings, reemit, user_stacklevel
from ..integrators.base import Integrator
from ..random.streams import StreamKey, stream_key
from .driver import simulate

__all__ = ["sweep", "open_sweep", "sweep_points", "point_key"]

MANIFEST = "sweep.json"
_PREFIXES = {"integrator": "integrator", "target": "target", "landscape": "target", "problem": "target"}


# -- the grid ------------------------------------------------------------------------------------
def _split_key(key: str) -> tuple[str, str]:
    head, _, name = key.partition(".")
    if head not in _PREFIXES or not name:
        raise ValidationError(
            f"Sweep key {key!r} must be 'integrator.<parameter>' or 'target.<parameter>' "
            "(also 'landscape.<parameter>' / 'problem.<parameter>')."
        )
    return _PREFIXES[head], name


def _plain(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(u) for u in np.asarray(v).tolist()] if isinstance(v, np.ndarray) else [_plain(u) for u in v]
    return v


def sweep_points(grid: Mapping[str, Sequence[Any]] | None = None,
                 points: Sequence[dict[str, Any]] | None = None) -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
    """Enumerate a sweep: ``(dims, coords, points)``.

    ``grid`` (a dict, or any mapping, of value lists) gives the Cartesian product in C order with one dimension per
    key; ``points`` (a list of dicts with the same keys) gives one dimension ``point``.
    """
    if (grid is None) == (points is None):
        raise ValidationError("sweep needs exactly one of 'grid' (dict of value lists) or 'points' (list of dicts).")
    if grid is not None:
        if not isinstance(grid, Mapping) or not grid:
            raise ValidationError(f"The 'grid' parameter of sweep must be a non-empty dict of value lists. Got {grid!r}.")
        keys = list(grid)
        values = []
        for k in keys:
            _split_key(k)
            vals = grid[k]
            if isinstance(vals, (str, bytes)) or not hasattr(vals, "__len__") or len(vals) == 0:
                raise ValidationError(f"Sweep values for {k!r} must be a non-empty list. Got {vals!r}.")
            vals = [_plain(v) for v in vals]
            if len({json.dumps(v) for v in vals}) != len(vals):
                raise ValidationError(f"Sweep values for {k!r} must be distinct. Got {vals!r}.")
            values.append(vals)
        pts = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
        return keys, values, pts
    if not isinstance(points, (list, tuple)) or not points or not all(isinstance(p, dict) for p in points):
        raise ValidationError("The 'points' parameter of sweep must be a non-empty list of dicts.")
    keys = list(points[0])
    for p in points:
        if list(p) != keys:
            raise ValidationError(f"Every sweep point must have the keys {keys}. Got {list(p)}.")
    for k in keys:
        _split_key(k)
    pts = [{k: _plain(v) for k, v in p.items()} for p in points]
    if len({json.dumps(p, sort_keys=True) for p in pts}) != len(pts):
        raise ValidationError("Sweep points must be distinct.")
    return ["point"], [list(range(len(pts)))], pts


def point_key(key: StreamKey, point: dict[str, Any]) -> StreamKey:
    """The stream key of one sweep point: the study key's child at the hash of the point's values."""
    digest = hashlib.sha256(json.dumps(point, sort_keys=True).encode()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32)
    return key.child(*(int(w) for w in words))


def _point_name(point: dict[str, Any]) -> str:
    return "point-" + hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:16]


def _apply(integrator: Integrator, target: Any, point: dict[str, Any]) -> tuple[Integrator, Any]:
    """The integrator and target of one point (validated by their constructors)."""
    integ_changes: dict[str, Any] = {}
    target_changes: dict[str, Any] = {}
    for k, v in point.items():
        where, name = _split_key(k)
        (integ_changes if where == "integrator" else target_changes)[name] = v
    fields = {f.name for f in dataclasses.fields(integrator)}
    unknown = sorted(set(integ_changes) - fields)
    if unknown:
        raise ValidationError(
            f"Sweep key 'integrator.{unknown[0]}': {integrator.name} has no parameter {unknown[0]!r}; "
            f"its parameters are {', '.join(sorted(fields))}."
        )
    try:
        integ = dataclasses.replace(integrator, **integ_changes) if integ_changes else integrator
    except ValidationError as exc:
        raise ValidationError(f"Sweep point {point}: {exc}") from None
    if target_changes:
        spec = target.to_dict()
        unknown = sorted(set(target_changes) - set(spec))
        if unknown:
            raise ValidationError(
                f"Sweep key 'target.{unknown[0]}': {target.name} has no parameter {unknown[0]!r}; "
                f"its parameters are {', '.join(k for k in spec if k != 'type')}."
            )
        spec.update(target_changes)
        spec.pop("type")
        try:
            target = type(target)(**spec)
        except ValidationError as exc:
            raise ValidationError(f"Sweep point {point}: {exc}") from None
    integ.check_target(target)
    return integ, target


# -- running one point ---------------------------------------------------------------------------
#: one ``simulate`` run of a sweep point or a shard: ``(integrator, target, x0, run arguments, seed
#: sequence, store or None, resume)``
Job = tuple[Integrator, Any, Any, dict[str, Any], Any, Path | None, bool]


def _run_point(integrator: Integrator, target: Any, x0: Any, run: dict[str, Any], ss: Any, store: Path | None,
               resume: bool, threads: int | None) -> xr.Dataset | None:
    import numba

    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]  # set at import
    ds = simulate(integrator, target, x0, rng=ss, store=store, resume=resume, progress=False, **run)
    if store is not None:
        return None
    return ds


def _warm_up(pairs: list[tuple[Integrator, Any]], x0: Any, record_every: int, until: Any = None) -> None:
    """Compile every kernel the sweep needs in this process, so workers only read the disk cache."""
    seen = set()
    for integ, target in pairs:
        kind = (type(integ).__name__, type(target).__name__)
        if kind in seen:
            continue
        seen.add(kind)
        x = None if x0 is None else np.asarray(x0)[:1] if np.ndim(x0) >= 2 else x0
        simulate(integ, target, x, n_replicas=1, n_steps=record_every, record_every=record_every, rng=0,
                 progress=False, until=until)


# -- combining -------------------------------------------------------------------------------------
def _combine(datasets: list[xr.Dataset], dims: list[str], coords: list[list[Any]], points: list[dict[str, Any]],
             keys: list[str]) -> xr.Dataset:
    shape = [len(c) for c in coords]
    same_time = all(np.array_equal(d["time"].values, datasets[0]["time"].values) for d in datasets)
    times = [d["time"] for d in datasets]
    parts = [d.drop_vars("time") if not same_time else d for d in datasets]
    parts = [p.drop_attrs() if hasattr(p, "drop_attrs") else p.assign_attrs({}) for p in parts]

    def nest(level: int, offset: int) -> xr.Dataset:
        stride = int(np.prod(shape[level + 1:], dtype=np.int64))
        items = [parts[offset + i * stride] if level == len(shape) - 1 else nest(level + 1, offset + i * stride)
                 for i in range(shape[level])]
        return xr.concat(items, dim=dims[level], join="exact", coords="minimal", compat="override",
                         combine_attrs="drop_conflicts")

    out = nest(0, 0)
    for name, vals in zip(dims, coords):
        out = out.assign_coords({name: (name, np.asarray(vals))})
    if dims == ["point"]:
        for k in keys:
            out = out.assign_coords({_dim_name(k, keys): ("point", np.asarray([p[k] for p in points]))})
    else:
        out = out.rename({k: _dim_name(k, keys) for k in dims if _dim_name(k, keys) != k})
    if not same_time:
        t = np.stack([tt.values for tt in times]).reshape(shape + [-1])
        tdims = [_dim_name(k, keys) if dims != ["point"] else "point" for k in dims]
        out = out.assign_coords(time=(tuple(tdims) + ("time",), t, times[0].attrs))
    return out


def _dim_name(key: str, keys: list[str]) -> str:
    """Dimension name of a swept parameter: its bare name, or 'integrator_x'/'target_x' if ambiguous."""
    if key == "point":
        return key
    where, name = _split_key(key)
    clash = sum(1 for k in keys if k != "point" and _split_key(k)[1] == name) > 1
    return f"{where}_{name}" if clash else name


# -- the public function -----------------------------------------------------------------------
def sweep(
    integrator: Integrator,
    target: Any,
    x0: Any = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    points: Sequence[dict[str, Any]] | None = None,
    n_replicas: int,
    n_steps: int,
    record_every: int = 1,
    rng: Any = None,
    workers: int | str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    store: str | os.PathLike | None = None,
    resume: bool = False,
    until: Any = None,
) -> xr.Dataset:
    """Run one ensemble per point of a parameter grid and return them as one Dataset.

    Parameters
    ----------
    integrator, target, x0
        The base run, as for :func:`stochdyn.simulate`.
    grid : dict (or any mapping), optional
        ``{"integrator.temperature": [0.1, 0.2], "target.barrier": [1, 2]}``: the Cartesian product,
        one Dataset dimension per key (named after the parameter; ``integrator_x``/``target_x``
        if both have an ``x``), with the values as coordinates.
    points : list of dict, optional
        An explicit list of points instead of a grid: one dimension ``point``, each swept
        parameter a coordinate along it.
    n_replicas, n_steps, record_every
        Run settings, the same for every point.
    rng : int, SeedSequence, Generator or None
        Study seed. Point ``p`` uses ``SeedSequence(seed, spawn_key=hash-words(p))``
        (:func:`point_key`), so its result does not depend on the other points.
    workers : int, "serial" or None
        ``None`` (default), ``"serial"`` or 0 run the points one after the other in this process,
        each ensemble on all cores (the kernels are parallel over replicas), so a sweep pasted into
        a script or a notebook just works. An int starts a local Dask cluster of that many worker
        processes; worker processes re-import the calling script, so from a script the call must
        sit under ``if __name__ == "__main__":`` — called outside such a guard it runs serially
        with a warning instead of failing. A cluster pays off across machines (``scheduler=``,
        ``client=``), or on one machine when each point is too small to keep all cores busy.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``"tcp://10.0.0.1:8786"``) to run on.
    client : distributed.Client, optional
        An existing Dask client to run on.
    store : path, optional
        A directory: each point streams into its own zarr store ``point-<hash>.zarr`` there, with
        checkpoints, and the result is read lazily (see :func:`open_sweep`).
    resume : bool
        With ``store``: skip finished points and resume interrupted ones.
    until : stopping rule, optional
        Stop each replica of every point at the first step this rule from :mod:`stochdyn.stopping` holds
        (as :func:`stochdyn.simulate` does; checked against every point before anything runs); the
        stop variables gain the sweep dimensions.

    Returns
    -------
    xarray.Dataset
        The point Datasets stacked along the sweep dimensions (before ``replica``). Attributes
        hold the base run, the sweep (``sweep`` JSON) and the seed; ``point_seed_spawn_key`` gives
        each point's spawn key. Serial, local-cluster and remote runs give identical Datasets.
    """
    from ..io.schema import run_attrs

    dims, coords, pts = sweep_points(grid, points)
    keys = list(grid) if grid is not None else list(pts[0])
    if not isinstance(integrator, Integrator):
        raise ValidationError(f"The 'integrator' parameter of sweep must be a stochdyn integrator. Got {type(integrator).__name__}.")
    pairs = [_apply(integrator, target, p) for p in pts]  # validates every point before anything runs
    if store is None and resume:
        raise ValidationError("The 'resume' parameter of sweep needs a 'store'.")
    from .._validation import check_int

    n_replicas = check_int("n_replicas", n_replicas, "sweep", ge=1)
    n_steps = check_int("n_steps", n_steps, "sweep", ge=1)
    record_every = check_int("record_every", record_every, "sweep", ge=1)
    if n_steps % record_every:
        raise ValidationError(f"The 'n_steps' parameter of sweep ({n_steps}) must be a multiple of record_every ({record_every}).")
    from ..stopping._run import StopTracker, check_until

    for integ, targ in pairs:
        integ.prepare_x0(x0, targ, n_replicas)
        integ.check_run(targ, n_steps)
        check_until(until, integ, targ)
    key = stream_key(rng)
    run = {"n_replicas": n_replicas, "n_steps": n_steps, "record_every": record_every}
    base = {"integrator": integrator.to_dict(), "target": target.to_dict(), **run}
    if until is not None:
        base["until"] = until.to_dict()
    manifest = {
        "stochdyn_sweep": 1,
        "base": base,
        "seed": key.attrs(),
        "dims": dims,
        "coords": coords,
        "keys": keys,
        "points": [{"name": _point_name(p), "values": p} for p in pts],
    }
    store_dir = None
    lock = None
    if store is not None:
        from ..io.output import check_free_space, check_output
        from .store import record_bytes, store_lock

        store_dir = check_output(store, store=True, resume=bool(resume),
                                 exists_hint="pass resume=True (CLI: --resume) to continue the sweep, or remove it")
        lock = store_lock(store_dir).acquire()
    try:
        mode, ncores = _mode(workers, scheduler, client, len(pts))
        with _dask_client(mode, workers, scheduler, client, len(pts), ncores) as cl:  # an unreachable scheduler fails here
            if store_dir is not None:
                _prepare_store(store_dir, manifest, resume)
                done = sum(1 for p in pts if (store_dir / f"{_point_name(p)}.zarr").exists())
                per_point = sum(record_bytes(integ.variables(targ), n_replicas) * (n_steps // record_every + 1)
                                for integ, targ in pairs) // len(pairs)
                check_free_space(store_dir, per_point * (len(pts) - done), f"The sweep store {str(store_dir)!r}")
            # one tiny run of each kernel here: validates run arguments and fills the disk cache
            _warm_up(pairs, x0, record_every, until)
            t0 = _time.perf_counter()
            jobs = [(integ, targ, x0, {**run, "until": until}, point_key(key, p).seed_sequence,
                     None if store_dir is None else store_dir / f"{_point_name(p)}.zarr", resume)
                    for (integ, targ), p in zip(pairs, pts)]
            results = run_jobs(cl, jobs, ncores)
            elapsed = _time.perf_counter() - t0
    finally:
        if lock is not None:
            lock.release()

    if store_dir is not None:
        return open_sweep(store_dir)
    out = _combine(results, dims, coords, pts, keys)
    out.attrs = _sweep_attrs(run_attrs(integrator, target, {**run, "replicas": "all"}, key.attrs()), manifest)
    if until is not None:
        out.attrs.update(StopTracker.describe(until))
    out.attrs["elapsed_seconds"] = elapsed
    _annotate(out, dims, keys, pts, key)
    return out


def _sweep_attrs(attrs: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Base-run attributes without the flattened values of swept parameters, plus the sweep."""
    swept = {f"{_split_key(k)[0]}_{_split_key(k)[1]}" for k in manifest["keys"]}
    out = {k: v for k, v in attrs.items() if k not in swept}
    out["sweep"] = json.dumps({k: manifest[k] for k in ("dims", "coords", "keys")})
    out["title"] = out.get("title", "stochdyn") + " (sweep)"
    return out


def _annotate(out: xr.Dataset, dims: list[str], keys: list[str], pts: list[dict[str, Any]], key: StreamKey) -> None:
    shape = [out.sizes[_dim_name(d, keys) if d != "point" else "point"] for d in dims]
    names = [_dim_name(d, keys) if d != "point" else "point" for d in dims]
    spawn = np.array([json.dumps(list(point_key(key, p).seed_sequence.spawn_key)) for p in pts]).reshape(shape)
    out["point_seed_spawn_key"] = (tuple(names), spawn.astype(str),
                                   {"long_name": "spawn key of the point's SeedSequence (with the study seed)",
                                    "units": "1"})
    for k in keys:
        name = _dim_name(k, keys) if dims != ["point"] else _dim_name(k, keys)
        if name in out.coords:
            where, param = _split_key(k)
            out[name].attrs.update({"long_name": f"{where} parameter {param}", "units": "1"})
    if "point" in out.dims:
        out["point"].attrs.update({"long_name": "sweep point", "units": "1"})


def _mode(workers, scheduler, client, n_points) -> tuple[str, int]:
    ncores = os.cpu_count() or 1
    if client is not None:
        return "client", ncores
    if scheduler is not None:
        return "scheduler", ncores
    if workers is None or workers in ("serial", 0):
        return "serial", ncores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValidationError(f"The 'workers' parameter of sweep must be an int >= 0, 'serial' or None. Got {workers!r}.")
    if _unguarded_script_call():
        warnings.warn(f"sweep(workers={workers}) runs serially: worker processes re-import the script that calls "
                      "it, so put the sweep under  if __name__ == \"__main__\":  to run it on a local cluster.",
                      RuntimeWarning, stacklevel=user_stacklevel())
        return "serial", ncores
    return "local", ncores


def _unguarded_script_call() -> bool:
    """True when sweep is called from the top level of a script outside ``if __name__ == "__main__":``
    (worker processes started by ``multiprocessing`` would re-import the script and run the call again)."""
    import ast
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return False  # interactive session, notebook, python -c, or a console-script entry point
    frame: FrameType | None = sys._getframe(1)  # the script's top-level frame: where the call chain leaves module level
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return False
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return False
    line = frame.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return False
    return True


#: seconds to wait for a Dask scheduler before reporting it unreachable
SCHEDULER_TIMEOUT = 10


def run_jobs(cl: Any, jobs: Sequence[Job], ncores: int) -> list[Any]:
    """Run ``simulate`` jobs ``(integrator, target, x0, run, seed, store, resume)`` here (``cl`` None) or
    as Dask tasks, each worker with its share of the cores; warnings raised on the workers come back
    with the results and are raised again here. Returns the Datasets (None for runs into stores)."""
    if cl is None:
        return [_run_point(*job, threads=None) for job in jobs]
    nworkers = max(1, len(cl.scheduler_info().get("workers", {})) or 1)
    threads = max(1, ncores // nworkers)
    futures = [cl.submit(call_collecting_warnings, _run_point, *job, threads=threads, pure=False) for job in jobs]
    results = []
    for result, caught in cl.gather(futures):
        reemit(caught)
        results.append(result)
    return results


@contextlib.contextmanager
def _dask_client(mode, workers, scheduler, client, n_jobs, ncores):
    """The Dask client to run on (``None`` for serial runs); a cluster or connection made here is closed after."""
    if mode == "serial":
        yield None
        return
    try:
        import distributed
    except ImportError:
        raise ImportError("Running a sweep on Dask needs: pip install 'stochdyn[parallel]'") from None
    own = None
    if mode == "client":
        cl = client
    elif mode == "scheduler":
        try:
            own = cl = distributed.Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler!r} (tried for {SCHEDULER_TIMEOUT} s: "
                                  f"{' '.join(str(exc).split())}); nothing was run") from None
    else:
        n = workers if isinstance(workers, int) and workers > 0 else min(n_jobs, ncores)
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        own = cl = distributed.Client(cluster)
    try:
        yield cl
    finally:
        if own is not None:
            cluster = getattr(own, "cluster", None)
            own.close()
            if cluster is not None:
                cluster.close()


# -- sweeps in a store ---------------------------------------------------------------------------
def _read_manifest(store_dir: Path) -> dict[str, Any]:
    from .store import Damage, DamagedStoreError

    try:
        return json.loads((store_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DamagedStoreError(store_dir, [Damage(MANIFEST, f"unreadable ({exc})")],
                                "Remove the sweep store to run the sweep again.") from None


def _prepare_store(store_dir: Path, manifest: dict[str, Any], resume: bool) -> None:
    from ..io.output import make_temp_dir

    m = store_dir / MANIFEST
    if store_dir.exists() and (m.is_file() or any(store_dir.iterdir())):
        if not resume:
            raise FileExistsError(f"Sweep store {str(store_dir)!r} exists: pass resume=True (CLI: --resume) or remove it.")
        if not m.is_file():
            raise ValidationError(f"{str(store_dir)!r} exists but is not a stochdyn sweep store (no {MANIFEST}).")
        stored = _read_manifest(store_dir)
        if stored != json.loads(json.dumps(manifest)):
            diff = [k for k in manifest if stored.get(k) != json.loads(json.dumps(manifest[k]))]
            raise ValidationError(f"Sweep store {str(store_dir)!r} holds a different sweep ({', '.join(diff)} differ).")
        return
    tmp = make_temp_dir(store_dir)  # permissions from the umask
    try:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.rename(tmp, store_dir)  # atomic (onto an empty folder too)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_sweep(store: str | os.PathLike) -> xr.Dataset:
    """Open a sweep store written by :func:`sweep` (lazily) as one Dataset."""
    from ..io.files import open_dataset
    from ..io.schema import run_attrs  # noqa: F401

    store_dir = Path(store)
    m = store_dir / MANIFEST
    if not m.is_file():
        raise FileNotFoundError(f"No sweep store at {str(store_dir)!r} (missing {MANIFEST}).")
    manifest = _read_manifest(store_dir)
    pts = [p["values"] for p in manifest["points"]]
    datasets = []
    for p in manifest["points"]:
        path = store_dir / f"{p['name']}.zarr"
        if not path.exists():
            raise ValidationError(f"Sweep store {str(store_dir)!r}: point {p['values']} has not run yet; resume the sweep.")
        datasets.append(open_dataset(path, load=False))
    out = _combine(datasets, manifest["dims"], manifest["coords"], pts, manifest["keys"])
    base = dict(datasets[0].attrs)
    base["integrator"] = json.dumps(manifest["base"]["integrator"])
    base["target"] = json.dumps(manifest["base"]["target"])
    base.update(manifest["seed"])
    for k in ("status", "fingerprint", "elapsed_seconds", "n_diverged", "n_stopped"):
        base.pop(k, None)
    out.attrs = _sweep_attrs(base, manifest)
    key = StreamKey(np.random.SeedSequence(json.loads(manifest["seed"]["seed"]),
                                           spawn_key=tuple(json.loads(manifest["seed"]["seed_spawn_key"]))))
    _annotate(out, manifest["dims"], manifest["keys"], pts, key)
    return out
