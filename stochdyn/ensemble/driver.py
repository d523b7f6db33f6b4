"""The ensemble driver: validate -> streams -> state -> chunk loop -> recorder -> Dataset."""

from __future__ import annotations

import os
import time as _time
import warnings
from contextlib import nullcontext
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numba
import numpy as np
import xarray as xr

from .._compile import CompileWatch
from .._faults import FaultWatch
from .._validation import ValidationError, check_int
from .._warnings import user_stacklevel
from ..integrators.base import Integrator
from ..io.schema import build_dataset, run_attrs
from ..random.streams import stream_key
from .progress import progress_bar
from .recorder import MemoryRecorder

__all__ = ["simulate", "DivergenceWarning", "TARGET_CHUNK_WORK"]

#: replica-steps per chunk (about 0.1-0.5 s of work): bounds the latency of Ctrl-C and progress
TARGET_CHUNK_WORK = 2**25
#: largest count accepted for n_replicas, n_steps, record_every, chunk_steps (steps are int64)
MAX_INT = 2**63 - 1


class DivergenceWarning(RuntimeWarning):
    """Some replicas became non-finite; they were frozen as NaN and flagged in ``diverged``."""


def block_size(n_replicas: int) -> int:
    """Replicas per unit of parallel work: up to 32, with at least ~4 units per thread."""
    return int(max(1, min(32, n_replicas // (4 * numba.get_num_threads()))))


def _count(name: str, value: Any) -> int:
    """An integer >= 1 that fits the int64 step and record counters."""
    v = check_int(name, value, "simulate", ge=1)
    if v > MAX_INT:
        raise ValidationError(f"The '{name}' parameter of simulate must be < 2**63 (steps are counted in int64). Got {v}.")
    return v


def _replica_count(n_replicas: Any, replicas: Any) -> int:
    """The number of replicas, validated without allocating anything of that size."""
    if replicas is None:
        if n_replicas is None:
            raise ValidationError("simulate needs 'n_replicas' (or an explicit list of 'replicas').")
        return _count("n_replicas", n_replicas)
    ids = np.asarray(replicas)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValidationError(f"The 'replicas' parameter of simulate must be a non-empty 1-D sequence of integers. Got {replicas!r}.")
    if np.any(ids < 0) or np.unique(ids).size != ids.size:
        raise ValidationError("The 'replicas' parameter of simulate must hold distinct non-negative replica ids.")
    if n_replicas is not None and check_int("n_replicas", n_replicas, "simulate", ge=1) != ids.size:
        raise ValidationError(
            f"The 'n_replicas' parameter of simulate ({n_replicas}) must equal len(replicas) ({ids.size}) when both are given."
        )
    return int(ids.size)


def _replica_ids(n_replicas: int, replicas: Any) -> np.ndarray:
    return np.arange(n_replicas, dtype=np.int64) if replicas is None else np.asarray(replicas).astype(np.int64)


def simulate(
    integrator: Integrator,
    target: Any,
    x0: Any = None,
    *,
    n_replicas: int | None = None,
    n_steps: int,
    record_every: int = 1,
    rng: Any = None,
    replicas: Any = None,
    chunk_steps: int | None = None,
    progress: bool | None = None,
    store: str | os.PathLike | None = None,
    resume: bool = False,
    until: Any = None,
    workers: int | str | None = None,
    client: Any = None,
    scheduler: str | None = None,
) -> xr.Dataset:
    """Run an ensemble of independent replicas of a stochastic dynamics and return a Dataset.

    Parameters
    ----------
    integrator : Integrator
        The dynamics and its hyper-parameters, e.g. ``EulerMaruyama(dt=1e-3, temperature=1/3)``.
    target : Landscape or problem
        Where it runs: a :class:`~stochdyn.landscapes.Landscape` (or, for the SGD family, a
        finite-sum problem).
    x0 : array_like, optional
        Initial state: one point ``(dim,)`` for every replica, or one per replica
        ``(n_replicas, dim)``. Default: the origin.
    n_replicas : int
        Number of replicas (>= 1). May be omitted when ``replicas`` is given.
    n_steps : int
        Steps to take (>= 1), a multiple of ``record_every``.
    record_every : int
        Record the state every this many steps (>= 1). The initial state (step 0) is recorded too,
        so ``n_steps // record_every + 1`` records are kept: memory is set by what is recorded,
        never by ``n_steps``.
    rng : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Seed material (SPEC 7). The same ``rng`` gives a bit-identical Dataset on any thread count,
        chunking or machine; ``None`` draws fresh entropy and records it in the attributes.
    replicas : sequence of int, optional
        Global ids of the replicas to run (default ``0 .. n_replicas-1``). Replica ``r`` has the
        same random stream whatever else runs, so a subset reproduces those replicas of a full run.
    chunk_steps : int, optional
        Steps per kernel call (a multiple of ``record_every``); affects speed, progress
        granularity and checkpoint frequency only, never results.
    progress : bool, optional
        Show a progress bar (True), never (False), or only for long runs on a terminal (None).
    store : path, optional
        Stream the records into this zarr store as the run goes (memory is bounded by one chunk)
        and checkpoint the state after every chunk; the returned Dataset is read lazily from it.
        Every chunk carries a CRC-32C checksum, the store is locked while written (a second
        writer is refused) and its file system must have room for the records (checked first).
        Needs the ``io`` extra.
    resume : bool
        Continue the run in ``store`` from its last checkpoint (or start it if the store does not
        exist), after a kill at any moment. The result is bit-identical to an uninterrupted run.
        Every checksum is verified first; damaged chunks of complete records are recomputed from
        the start of their replicas (with a warning), damaged metadata or checkpoints refused. A
        store written by a different run (other parameters, seed, x0, replicas or stochdyn
        version) is refused. With ``rng=None`` the stored seed is used.
    until : stopping rule, optional
        Stop each replica at the first step (checked after every step and on the initial state)
        at which this rule from :mod:`stochdyn.stopping` holds, e.g.
        ``sd.stopping.Fixation()`` or ``Region(coordinate=0, above=1.0) | Region(coordinate=0, below=-1.0)``.
        A stopped replica is frozen (state and random stream untouched; its later records repeat
        the record of its stop step). Adds the variables ``stopped``, ``stop_step``, ``stop_time``
        and ``stop_rule``.
    workers, client, scheduler
        Split the replicas into shards that run as Dask tasks, with the same choices as
        :func:`stochdyn.sweep`: ``workers`` an int (a local cluster of that many processes) or
        ``"serial"``/0, ``client`` an existing ``distributed.Client``, ``scheduler`` the address of a
        running scheduler. The result is bit-identical to the serial run (streams belong to global
        replica ids). Default: run in this process. See :mod:`stochdyn.ensemble.shards`.

    Returns
    -------
    xarray.Dataset
        Dimensions ``replica``, ``time`` and ``dim``; coordinates ``time`` and ``step``; variables
        ``x``, ``energy`` (and ``v`` for BAOAB, more for other families), ``diverged`` and
        ``diverged_step``; attributes with every parameter, the seed and the versions.

    Raises
    ------
    ValidationError
        For a bad argument, and for a run whose state and records exceed the memory available
        now (checked before anything of the run's size is allocated; the numbers are in the message).
    stochdyn.io.output.OutputError
        For a store that cannot be written where asked or would not fit on its file system
        (checked before the run); ``StoreWriteError`` (a subclass) for a write that fails during
        the run, which leaves the store resumable.

    Warns
    -----
    DivergenceWarning
        If replicas became non-finite: they are frozen as NaN from that step and flagged; the
        others are unaffected.

    Examples
    --------
    >>> import stochdyn as sd
    >>> ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1/3), sd.landscapes.DoubleWell(dim=2),
    ...                  x0=[-1.0, 0.0], n_replicas=1000, n_steps=1000, record_every=100, rng=0)
    >>> ds.x.sizes["replica"], ds.x.sizes["time"]
    (1000, 11)
    """
    if not isinstance(integrator, Integrator):
        raise ValidationError(
            f"The 'integrator' parameter of simulate must be a stochdyn integrator such as "
            f"sd.EulerMaruyama(dt=..., temperature=...). Got {type(integrator).__name__}."
        )
    integrator.check_target(target)
    from ..stopping._run import StopTracker, check_until

    until = check_until(until, integrator, target)
    R = _replica_count(n_replicas, replicas)
    n_steps = _count("n_steps", n_steps)
    record_every = _count("record_every", record_every)
    if n_steps % record_every:
        raise ValidationError(
            f"The 'n_steps' parameter of simulate ({n_steps}) must be a multiple of record_every ({record_every}), "
            "so that the final state is recorded."
        )
    integrator.check_run(target, n_steps)
    if chunk_steps is not None:
        chunk_steps = _count("chunk_steps", chunk_steps)
        if chunk_steps % record_every:
            raise ValidationError(
                f"The 'chunk_steps' parameter of simulate ({chunk_steps}) must be a multiple of record_every ({record_every})."
            )
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ValidationError(f"The 'progress' parameter of simulate must be True, False or None. Got {progress!r}.")
    if not isinstance(resume, (bool, np.bool_)):
        raise ValidationError(f"The 'resume' parameter of simulate must be True or False. Got {resume!r}.")
    if workers is not None or client is not None or scheduler is not None:
        from .shards import simulate_sharded

        return simulate_sharded(integrator, target, x0, ids=_replica_ids(R, replicas), replicas=replicas, n_steps=n_steps,
                                record_every=record_every, rng=rng, chunk_steps=chunk_steps, progress=progress,
                                store=store, resume=resume, until=until, workers=workers, client=client,
                                scheduler=scheduler)
    store_path = None
    if store is not None:
        from ..io.files import _require
        from ..io.output import check_output

        _require("zarr", "Streaming to a store")
        _require("dask", "Streaming to a store")
        if Path(store).suffix != ".zarr":
            raise ValidationError(f"The 'store' parameter of simulate must be a path ending in .zarr. Got {str(store)!r}.")
        store_path = check_output(store, store=True, resume=bool(resume),
                                  exists_hint="pass resume=True (CLI: --resume) to continue it, or remove it to start again")
        if rng is None and resume and store_path.exists():
            from .store import stored_seed
            from ..random.streams import seed_sequence_from_attrs

            seed = stored_seed(store_path)
            rng = seed_sequence_from_attrs(seed) if seed else None
    elif resume:
        raise ValidationError("The 'resume' parameter of simulate needs a 'store' to resume from.")
    variables = integrator.variables(target)
    n_records = n_steps // record_every + 1
    x0_arr = integrator.prepare_x0(x0, target, R) if x0 is not None and np.ndim(x0) >= 2 else None
    _check_memory(integrator, target, x0 if x0_arr is None else x0_arr, R, variables, n_records, record_every,
                  chunk_steps, store_path is not None)
    ids = _replica_ids(R, replicas)
    if x0_arr is None:
        x0_arr = integrator.prepare_x0(x0, target, R)
    key = stream_key(rng)

    # -- set up ------------------------------------------------------------------------------------
    run = {"n_replicas": int(R), "n_steps": int(n_steps), "record_every": int(record_every),
           "replicas": "all" if replicas is None else ids.tolist()}
    attrs = run_attrs(integrator, target, run, key.attrs())
    steps = np.arange(n_records, dtype=np.int64) * record_every
    times = integrator.time_of_step(steps)
    # a first run compiles kernels (in init_state and in the run loop): say so once, before it starts
    compiling = CompileWatch(f"{integrator.name} on {target.name}", integrator.family)
    # a fault in user code stops the run with UserCodeError naming the replica and step (stochdyn/_faults.py)
    initial = lru_cache(maxsize=1)(lambda: integrator.prepare_x0(x0, target, R))  # x0_arr becomes the state
    watch = FaultWatch(ids, partial(_rerun_one, integrator, target, initial, key, ids, variables, until), x0_arr)
    t0 = _time.perf_counter()
    with compiling, watch.initial():
        state = integrator.init_state(target, x0_arr, key.streams(ids))
    tracker = None if until is None else StopTracker(until, integrator, target, state, variables, R)
    if tracker is not None:
        run["until"] = until.to_dict()
        attrs.update(tracker.attrs())
    k = 0
    if store_path is None:
        recorder: Any = MemoryRecorder(variables, R, n_records)
        c = (chunk_steps if chunk_steps is not None else
             max(1, TARGET_CHUNK_WORK // (R * record_every)) * record_every) // record_every
    else:
        from .store import ZarrRecorder, fingerprint, record_bytes, recompute_chunks, records_per_chunk

        fp = fingerprint(integrator, target, run, key.attrs(), x0_arr, ids)
        if tracker is not None:
            fp["until"] = run["until"]
        recorder, k = ZarrRecorder.open(
            store_path, resume=resume, fp=fp, state=state,
            variables=variables, n_records=n_records,
            chunk_records=records_per_chunk(record_bytes(variables, R), R, record_every, n_records, chunk_steps),
            template=lambda: build_dataset(variables, _lazy_template(variables, R, n_records), ids, steps, times,
                                           integrator.time_long_name, integrator.time_units, state.arrays["diverged"],
                                           attrs, extra=None if tracker is None else tracker.data_vars(state)),
            recompute=partial(recompute_chunks, integrator, target, x0_arr, key, ids, record_every, variables, n_records,
                              until=until))
        c = recorder.chunk_records
    c = max(1, min(int(c), n_records))

    # -- run: chunk j holds records [j*c, (j+1)*c); the first one includes the initial state ------
    block = block_size(R)
    bar = progress_bar(progress, n_steps, float(R) * (n_steps - state.step), f"{integrator.name} on {target.name}")
    compiling.bar = bar
    bar.update(state.step)
    compiling.start()
    try:
        try:
            _run_chunks(integrator, target, state, recorder, k, n_records, c, record_every, block, bar, tracker, watch)
        finally:
            compiling.stop()
        elapsed = _time.perf_counter() - t0
        diverged = state.arrays["diverged"]
        n_div = int(np.count_nonzero(diverged >= 0))
        compile_seconds = round(compiling.seconds, 3)  # 0 when every kernel came from the cache
        n_stopped = None if tracker is None else int(np.count_nonzero(state.arrays["stop_step"] >= 0))
        if store_path is not None:
            final = {"n_diverged": n_div, "compile_seconds": compile_seconds}
            if n_stopped is not None:
                final["n_stopped"] = n_stopped
            recorder.finish(state, n_records, elapsed, final,
                            extra=None if tracker is None else {k: v.values for k, v in tracker.data_vars(state).items()})
    finally:
        bar.close()
        recorder.close()
    if n_div:
        warn_divergence(n_div, R, int(diverged[diverged >= 0].min()), integrator, target)
    attrs["n_diverged"] = n_div
    attrs["compile_seconds"] = compile_seconds
    if n_stopped is not None:
        attrs["n_stopped"] = n_stopped
    if store_path is not None:
        return recorder.result()
    attrs["elapsed_seconds"] = float(elapsed)
    return build_dataset(variables, recorder.data, ids, steps, times, integrator.time_long_name,
                         integrator.time_units, diverged, attrs, extra=None if tracker is None else tracker.data_vars(state))


def warn_divergence(n_div: int, n_replicas: int, first_step: int, integrator: Integrator, target: Any) -> None:
    """The one DivergenceWarning of a run (serial or sharded), at the user's line."""
    warnings.warn(
        f"{n_div} of {n_replicas} replicas became non-finite (the first at step {first_step}) and were frozen as NaN "
        f"(see the 'diverged' and 'diverged_step' variables); the other replicas are unaffected. "
        f"Likely cause: {integrator.divergence_hint(target)}.",
        DivergenceWarning,
        stacklevel=user_stacklevel(),
    )


def _run_chunks(integrator: Integrator, target: Any, state: Any, recorder: Any, k: int, n_records: int, c: int,
                record_every: int, block: int, bar: Any, tracker: Any = None, watch: Any = None) -> None:
    """Advance ``state`` from record ``k`` to ``n_records`` in chunks of ``c`` records, committing each
    (through the stopping-rule ``tracker`` when the run has one; a chunk in which user code faulted is
    not committed: ``watch`` raises UserCodeError)."""
    t0 = _time.perf_counter()
    while k < n_records:
        n_rec = min(c, n_records - k)
        out, off = recorder.buffers(k, n_rec)
        first = 1 if k == 0 else 0
        n = (n_rec - first) * record_every
        with _watching(watch, state, n, k, n_rec, record_every, out, off):
            if first:
                integrator.record(target, state, out, off)
                if tracker is not None:
                    tracker.initial(state, out, off)
            if n:
                if tracker is not None:
                    tracker.advance(state, n, record_every, out, off + first)
                else:
                    integrator.advance(target, state, n, record_every, out, off + first, block)
        state.step += n
        recorder.commit(k, n_rec, state, _time.perf_counter() - t0)
        k += n_rec
        if bar is not None:
            bar.update(n)


def _watching(watch: Any, state: Any, n: int, k: int, n_rec: int, record_every: int, out: dict, off: int) -> Any:
    """``watch.chunk(...)`` for the chunk of records ``k .. k + n_rec - 1`` (``n`` steps), or nothing."""
    if watch is None:
        return nullcontext()
    xs = out["x"][:, off:off + n_rec] if "x" in out else None
    lo = state.step if k == 0 else state.step + 1
    return watch.chunk(state, lo, state.step + n, xs, (k + np.arange(n_rec)) * record_every)


def _rerun_one(integrator: Integrator, target: Any, initial: Any, key: Any, ids: np.ndarray, variables: list,
               until: Any, rows: Any, s: int | None) -> None:
    """Run the replicas at positions ``rows`` (a slice) alone from their initial state (rows of
    ``initial()``) to step ``s`` (None: only set up the initial state), records discarded: subsets are
    bit-identical, so a fault of user code comes back where it was (see FaultWatch)."""
    from ..stopping._run import StopTracker

    state = integrator.init_state(target, initial()[rows].copy(), key.streams(ids[rows]))
    if s is None:
        return
    R = state.arrays["x"].shape[0]
    tracker = None if until is None else StopTracker(until, integrator, target, state, variables, R)
    n = max(int(s), 1)
    _run_chunks(integrator, target, state, MemoryRecorder(variables, R, 2), 0, 2, 2, n, block_size(R), None, tracker)


def _check_memory(integrator: Integrator, target: Any, x0: Any, R: int, variables: list, n_records: int,
                  record_every: int, chunk_steps: int | None, streamed: bool) -> None:
    """Refuse, before any allocation, a run whose state and records exceed the memory available."""
    from .resources import check_memory, state_nbytes

    if streamed:
        from .store import record_bytes, records_per_chunk

        per = record_bytes(variables, R)
        records = ("record buffer", per * records_per_chunk(per, R, record_every, n_records, chunk_steps))
        advice = "run fewer replicas (the records already stream to disk)"
    else:
        records = ("records", MemoryRecorder.nbytes(variables, R, n_records))
        advice = ("record less often (record_every), run fewer replicas, or stream the records to a zarr store "
                  "(store='run.zarr'; on the command line -o run.zarr), which keeps one chunk in memory")
    check_memory({"state": state_nbytes(integrator, target, x0, R), records[0]: records[1],
                  "time coordinates": 16 * n_records}, advice)


def _lazy_template(variables: list, n_replicas: int, n_records: int) -> dict[str, Any]:
    """Placeholder arrays (shape only, no memory) for the store template; ZarrRecorder rechunks them."""
    import dask.array as da

    return {v.name: da.empty((n_replicas, n_records) + tuple(v.shape), dtype=v.dtype,
                             chunks=(n_replicas, n_records) + tuple(v.shape)) for v in variables}
