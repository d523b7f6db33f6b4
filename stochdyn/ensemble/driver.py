"""The ensemble driver: validate -> streams -> state -> chunk loop -> recorder -> Dataset."""

from __future__ import annotations

import time as _time
import warnings
from typing import Any

import numba
import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int
from ..integrators.base import Integrator
from ..io.schema import build_dataset, run_attrs
from ..random.streams import stream_key
from .progress import progress_bar
from .recorder import MemoryRecorder

__all__ = ["simulate", "DivergenceWarning", "TARGET_CHUNK_WORK", "MAX_RECORD_BYTES"]

#: replica-steps per chunk (about 0.1-0.5 s of work): bounds the latency of Ctrl-C and progress
TARGET_CHUNK_WORK = 2**25
#: refuse in-memory runs whose records would exceed this many bytes
MAX_RECORD_BYTES = 16 * 2**30


class DivergenceWarning(RuntimeWarning):
    """Some replicas became non-finite; they were frozen as NaN and flagged in ``diverged``."""


def block_size(n_replicas: int) -> int:
    """Replicas per unit of parallel work: up to 32, with at least ~4 units per thread."""
    return int(max(1, min(32, n_replicas // (4 * numba.get_num_threads()))))


def _replica_ids(n_replicas: Any, replicas: Any) -> np.ndarray:
    if replicas is None:
        if n_replicas is None:
            raise ValidationError("simulate needs 'n_replicas' (or an explicit list of 'replicas').")
        n = check_int("n_replicas", n_replicas, "simulate", ge=1)
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(replicas)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValidationError(f"The 'replicas' parameter of simulate must be a non-empty 1-D sequence of integers. Got {replicas!r}.")
    if np.any(ids < 0) or np.unique(ids).size != ids.size:
        raise ValidationError("The 'replicas' parameter of simulate must hold distinct non-negative replica ids.")
    if n_replicas is not None and check_int("n_replicas", n_replicas, "simulate", ge=1) != ids.size:
        raise ValidationError(
            f"The 'n_replicas' parameter of simulate ({n_replicas}) must equal len(replicas) ({ids.size}) when both are given."
        )
    return ids.astype(np.int64)


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
        Steps per kernel call (a multiple of ``record_every``); affects speed and progress
        granularity only, never results. Default: about 3e7 replica-steps per chunk.
    progress : bool, optional
        Show a progress bar (True), never (False), or only for long runs on a terminal (None).

    Returns
    -------
    xarray.Dataset
        Dimensions ``replica``, ``time`` and ``dim``; coordinates ``time`` and ``step``; variables
        ``x``, ``energy`` (and ``v`` for BAOAB, more for other families), ``diverged`` and
        ``diverged_step``; attributes with every parameter, the seed and the versions.

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
    ids = _replica_ids(n_replicas, replicas)
    R = ids.size
    n_steps = check_int("n_steps", n_steps, "simulate", ge=1)
    record_every = check_int("record_every", record_every, "simulate", ge=1)
    if n_steps % record_every:
        raise ValidationError(
            f"The 'n_steps' parameter of simulate ({n_steps}) must be a multiple of record_every ({record_every}), "
            "so that the final state is recorded."
        )
    if chunk_steps is not None:
        chunk_steps = check_int("chunk_steps", chunk_steps, "simulate", ge=1)
        if chunk_steps % record_every:
            raise ValidationError(
                f"The 'chunk_steps' parameter of simulate ({chunk_steps}) must be a multiple of record_every ({record_every})."
            )
    else:
        per = max(1, TARGET_CHUNK_WORK // (R * record_every))
        chunk_steps = per * record_every
    chunk_steps = min(chunk_steps, n_steps)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ValidationError(f"The 'progress' parameter of simulate must be True, False or None. Got {progress!r}.")
    x0_arr = integrator.prepare_x0(x0, target, R)
    key = stream_key(rng)
    variables = integrator.variables(target)
    n_records = n_steps // record_every + 1
    need = MemoryRecorder.nbytes(variables, R, n_records)
    if need > MAX_RECORD_BYTES:
        raise ValidationError(
            f"Recording {n_records} states of {R} replicas would need {need / 2**30:.1f} GiB in memory "
            f"(limit {MAX_RECORD_BYTES / 2**30:.0f} GiB): record less often (record_every) or fewer replicas."
        )

    # -- run -----------------------------------------------------------------------------------
    state = integrator.init_state(target, x0_arr, key.streams(ids))
    recorder = MemoryRecorder(variables, R, n_records)
    out, off = recorder.buffers(0, 1)
    integrator.record(target, state, out, off)
    recorder.commit(0, 1)
    block = block_size(R)
    bar = progress_bar(progress, n_steps, float(R) * n_steps, f"{integrator.name} on {target.name}")
    t0 = _time.perf_counter()
    try:
        k = 1
        while state.step < n_steps:
            n = min(chunk_steps, n_steps - state.step)
            nrec = n // record_every
            out, off = recorder.buffers(k, nrec)
            integrator.advance(target, state, n, record_every, out, off, block)
            state.step += n
            recorder.commit(k, nrec)
            k += nrec
            bar.update(n)
    finally:
        bar.close()
    elapsed = _time.perf_counter() - t0

    diverged = state.arrays["diverged"]
    n_div = int(np.count_nonzero(diverged >= 0))
    if n_div:
        first = int(diverged[diverged >= 0].min())
        warnings.warn(
            f"{n_div} of {R} replicas became non-finite (the first at step {first}) and were frozen as NaN "
            f"(see the 'diverged' and 'diverged_step' variables); the other replicas are unaffected. "
            f"Likely cause: {integrator.divergence_hint(target)}.",
            DivergenceWarning,
            stacklevel=2,
        )

    steps = np.arange(n_records, dtype=np.int64) * record_every
    run = {"n_replicas": int(R), "n_steps": int(n_steps), "record_every": int(record_every),
           "replicas": "all" if replicas is None else ids.tolist()}
    attrs = run_attrs(integrator, target, run, key.attrs())
    attrs["n_diverged"] = n_div
    attrs["elapsed_seconds"] = float(elapsed)
    return build_dataset(variables, recorder.result(), ids, steps, integrator.time_of_step(steps),
                         integrator.time_long_name, integrator.time_units, diverged, attrs)
