"""``simulate(..., until=RULE)`` at the driver level, without kernel hooks (phase 1 of issue 12).

:class:`StopTracker` advances the replicas that have not stopped one step per kernel call (a record is
asked for exactly at the run's record steps, so kernels compute what they compute for records at the
same steps as in a run without a rule), evaluates the compiled rule on each of them after every step,
and stops those whose rule holds: their state rows are written back once (so their random streams are
untouched), and their later records are :meth:`Integrator.record` of that final state at the stop
step. Stopped rows are dropped from the work set once they are an eighth of it (compaction copies the
set), so the cost follows the live replicas.

It defines the results that kernel-side stopping (phase 2) must reproduce bit for bit, and it is the
reference the tests compare against; it is slower per step than a check inside the kernels (one kernel
call and one rule evaluation per step).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from .._validation import ValidationError
from .rules import Rule

__all__ = ["StopTracker", "check_until", "STOP_ARRAYS"]

#: the per-replica arrays a stopped run keeps in ``State.arrays`` (checkpointed with the rest)
STOP_ARRAYS = ("stop_step", "stop_rule")
_RECORD_PREFIX = "stop_record__"
#: states smaller than this (numbers) are advanced on one thread in the per-step loop
_SMALL_STEP = 2**16
#: record_every of a kernel call that must write no record (larger than any step)
_NEVER = 2**62


def check_until(until: Any, integrator: Any, target: Any) -> Rule | None:
    """Validate ``simulate``'s ``until`` argument against the run (None passes)."""
    if until is None:
        return None
    if not isinstance(until, Rule):
        raise ValidationError(
            f"The 'until' parameter of simulate must be a stopping rule from sd.stopping (e.g. "
            f"sd.stopping.Region(coordinate=0, above=1.0)) or None. Got {type(until).__name__}.")
    until.check_target(integrator, target)
    return until


def _fill(dtype: Any) -> Any:
    return np.nan if np.dtype(dtype).kind == "f" else 0


class StopTracker:
    """Stopping bookkeeping of one run: the stop arrays, the frozen records and the live-replica stepping."""

    def __init__(self, rule: Rule, integrator: Any, target: Any, state: Any, variables: list, n_replicas: int):
        self.rule = rule
        self.integrator = integrator
        self.target = target
        self.variables = variables
        self.compiled = rule.compile(target, dim=integrator.dim(target))
        R = int(n_replicas)
        self.R = R
        # which arrays are per replica (first axis R); the others (e.g. (1, 1) placeholders) are shared
        self.array_keys = [k for k, v in state.arrays.items() if np.ndim(v) and v.shape[0] == R]
        self.scratch_keys = [k for k, v in state.scratch.items() if np.ndim(v) and v.shape[0] == R]
        state.arrays["stop_step"] = np.full(R, -1, dtype=np.int64)
        state.arrays["stop_rule"] = np.full(R, -1, dtype=np.int64)
        for v in variables:
            state.arrays[_RECORD_PREFIX + v.name] = np.full((R,) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype)
        self._buf = {v.name: np.full((R, 1) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype) for v in variables}

    # -- what the rule sees --------------------------------------------------------------------
    def energy(self, state: Any) -> np.ndarray | None:
        """The family's scalar for every replica of ``state`` (None if the rule does not read it): U(x)
        for Langevin and SGD (the full-batch loss on a problem), the best U so far for the evolution
        strategies, the lowest U in the population for populations and the genetic algorithm."""
        if not self.rule.needs_energy:
            return None
        x = state.arrays["x"]
        if "best" in state.arrays:
            return np.ascontiguousarray(state.arrays["best"], dtype=np.float64)
        if self.integrator.family in ("popgen", "evolution"):
            return np.min(state.scratch["u"][: x.shape[0]], axis=1)
        return np.asarray(self.target.value(np.nan_to_num(x)), dtype=np.float64)

    def _codes(self, state: Any) -> np.ndarray:
        codes = self.compiled.evaluate(state.arrays["x"], self.energy(state))
        codes[state.arrays["diverged"] >= 0] = 0  # a diverged replica is frozen as NaN, never "stopped"
        return codes

    def _stop(self, state: Any, ids: np.ndarray, codes: np.ndarray, frozen: Any) -> None:
        """Mark ``ids`` stopped at ``frozen.step`` and keep the record of their frozen state ``frozen``."""
        state.arrays["stop_step"][ids] = frozen.step
        state.arrays["stop_rule"][ids] = codes - 1
        out = {v.name: np.full((ids.size, 1) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype) for v in self.variables}
        self.integrator.record(self.target, frozen, out, 0)
        for v in self.variables:
            a = frozen.arrays.get(v.name)
            if a is not None and a.shape == (ids.size,) + tuple(v.shape):  # a counter kept in the state
                out[v.name][:, 0] = a
            state.arrays[_RECORD_PREFIX + v.name][ids] = out[v.name][:, 0]

    def _rows(self, work: Any, mask: np.ndarray) -> Any:
        """A State of the rows ``mask`` (indices or a boolean mask) of ``work`` (copies)."""
        from ..integrators.base import State

        return State(arrays={k: (v[mask] if k in self.array_keys else v) for k, v in work.arrays.items()},
                     scratch={k: (np.ascontiguousarray(v[mask]) if k in self.scratch_keys else v)
                              for k, v in work.scratch.items()}, step=work.step)

    # -- the driver's calls --------------------------------------------------------------------
    def initial(self, state: Any, out: dict[str, np.ndarray], k: int) -> None:
        """Check the initial state (step 0): replicas already there stop at step 0 (their records all repeat record 0)."""
        everyone = self._gather(state, np.arange(self.R))
        codes = self._codes(everyone)
        hit = codes > 0
        if hit.any():
            self._stop(state, np.flatnonzero(hit), codes[hit], self._rows(everyone, hit))

    def advance(self, state: Any, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int) -> None:
        """Advance the live replicas ``n_steps`` steps from ``state.step``, stopping each at its rule, and
        write records ``k0, k0 + 1, ...`` of every replica (the frozen ones repeat their stop record)."""
        import numba

        threads = numba.get_num_threads()
        try:
            self._steps(state, n_steps, record_every, out, k0, threads)
        finally:
            numba.set_num_threads(threads)

    def _steps(self, state: Any, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
               threads: int) -> None:
        import numba

        from ..ensemble.driver import block_size

        stop_step = state.arrays["stop_step"]
        ids = np.flatnonzero(stop_step < 0)  # rows of the work set (positions in the full state)
        alive = np.ones(ids.size, dtype=bool)  # stopped rows stay in the work set until it is compacted
        work = self._gather(state, ids)
        k = k0
        for s in range(n_steps):
            # one kernel call per step: a small one runs on one thread, as waking a second thread costs
            # more than the step itself (results never depend on the thread count)
            numba.set_num_threads(1 if work.arrays["x"].size < _SMALL_STEP else threads)
            step = state.step + s + 1
            is_record = step % record_every == 0
            n = ids.size
            rec = {name: b[:n] for name, b in self._buf.items()}
            if n:
                # records (and what kernels compute only for them) exactly at the run's record steps
                self.integrator.advance(self.target, work, 1, 1 if is_record else _NEVER, rec, 0, block_size(n))
                work.step += 1
            if is_record:
                frozen = np.flatnonzero(stop_step >= 0)
                for v in self.variables:
                    out[v.name][ids[alive], k] = rec[v.name][alive, 0]
                    out[v.name][frozen, k] = state.arrays[_RECORD_PREFIX + v.name][frozen]
                k += 1
            if not n:
                continue
            codes = self._codes(work)
            hit = np.flatnonzero((codes > 0) & alive)
            if hit.size:
                numba.set_num_threads(1)  # the record of a few stopped rows: not worth waking a thread
                self._stop(state, ids[hit], codes[hit], self._rows(work, hit))
                for key in self.array_keys:  # their final state, written once
                    state.arrays[key][ids[hit]] = work.arrays[key][hit]
                alive[hit] = False
            # stopped rows are advanced (and ignored) until they are an eighth of the work set: compacting
            # copies the whole set, so it is done only that often
            if 8 * (ids.size - np.count_nonzero(alive)) > ids.size:
                ids = ids[alive]
                work = self._take(state, work, alive)
                alive = np.ones(ids.size, dtype=bool)
        for key in self.array_keys:
            state.arrays[key][ids[alive]] = work.arrays[key][alive]

    def _gather(self, state: Any, live: np.ndarray) -> Any:
        from ..integrators.base import State

        arrays = {k: (v[live] if k in self.array_keys else v) for k, v in state.arrays.items()
                  if k not in STOP_ARRAYS and not k.startswith(_RECORD_PREFIX)}
        scratch = {k: (v[: live.size] if k in self.scratch_keys else v) for k, v in state.scratch.items()}
        return State(arrays=arrays, scratch=scratch, step=state.step)

    def _take(self, state: Any, work: Any, keep: np.ndarray) -> Any:
        n = int(keep.sum())
        for k in self.array_keys:
            work.arrays[k] = np.ascontiguousarray(work.arrays[k][keep])
        for k in self.scratch_keys:
            work.scratch[k] = state.scratch[k][:n]
        return work

    # -- output --------------------------------------------------------------------------------
    def data_vars(self, state: Any) -> dict[str, xr.DataArray]:
        """``stopped``, ``stop_step``, ``stop_time`` and ``stop_rule`` (dims ``replica``)."""
        step = state.arrays["stop_step"]
        stopped = step >= 0
        time = np.where(stopped, self.integrator.time_of_step(np.maximum(step, 0)), np.nan)
        labels = self.compiled.labels
        units = self.integrator.time_units
        return {
            "stopped": xr.DataArray(stopped, dims="replica", attrs={
                "long_name": "the stopping rule held before the end of the run (False: censored)", "units": "1"}),
            "stop_step": xr.DataArray(step.astype(np.int64), dims="replica", attrs={
                "long_name": "first step at which the stopping rule held (-1: censored)", "units": "1"}),
            "stop_time": xr.DataArray(np.asarray(time, dtype=np.float64), dims="replica", attrs={
                "long_name": f"{self.integrator.time_long_name} at which the stopping rule held (NaN: censored)",
                "units": units}),
            "stop_rule": xr.DataArray(state.arrays["stop_rule"].astype(np.int64), dims="replica", attrs={
                "long_name": "which stopping rule held first (-1: censored)", "units": "1",
                "flag_values": np.arange(len(labels), dtype=np.int64), "flag_meanings": " ".join(labels)}),
        }

    def attrs(self) -> dict[str, Any]:
        """Attributes describing the rule (:meth:`describe`)."""
        return self.describe(self.rule)

    @staticmethod
    def describe(rule: Rule) -> dict[str, Any]:
        """Attributes describing a rule: ``until`` (JSON of ``to_dict``) and ``until_rules`` (its parts, in words)."""
        return {"until": json.dumps(rule.to_dict()), "until_rules": json.dumps([str(r) for r in rule.rules])}

    def write_store(self, path: Any, state: Any) -> None:
        """Write the final stop variables into a zarr store created with :meth:`data_vars` in its template."""
        import zarr

        group = zarr.open_group(str(path), mode="r+")
        for name, da in self.data_vars(state).items():
            group[name][:] = da.values
