"""``simulate(..., until=RULE)``: the driver's side of stopping rules.

The kernels check the rule after every step and freeze a replica where it holds (the six
``until_*``/``stop_*`` kernel arguments; docs/design.md, "Stopping rules"). :class:`StopTracker` does
the rest, between kernel calls:

* the check of the initial state (step 0);
* the *stop record* of each replica that stopped: :meth:`Integrator.record` of its frozen state,
  which its later records repeat (written into every later record slot, since a stopped replica is
  no longer advanced, and may no longer be in the work at all);
* **cost follows the live replicas**: a chunk of steps runs in up to :data:`PIECES` kernel calls and,
  once stopped replicas are more than an eighth of the rows a call works on, the rows that have not
  stopped are gathered into a smaller state (rows of every per-replica array of ``State.arrays``;
  prefix views of the scratch, which every kernel call rebuilds) and scattered back at the end of the
  chunk, before the checkpoint.

The one-step path of phase 1 (:meth:`StopTracker._reference_steps`: one kernel call per step on the
live replicas, the rule evaluated outside the kernels) is kept as the reference the tests compare the
kernel path with, bit for bit; it is selected with ``REFERENCE = True``.
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
#: states smaller than this (numbers) are advanced on one thread in the reference per-step loop
_SMALL_STEP = 2**16
#: record_every of a kernel call that must write no record (larger than any step)
_NEVER = 2**62
#: kernel calls per chunk of steps (compaction happens between them) once a chunk is this much work
PIECES = 4
PIECE_WORK = 2**20
#: tests set this to run the phase-1 reference path (one kernel call per step, rule outside the kernels)
REFERENCE = False


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


def segments(a: int, b: int, record_every: int) -> list[tuple[int, int, int]]:
    """Kernel calls ``(step0, n_steps, record_every)`` that advance from step ``a`` to ``b`` and record
    exactly at the multiples of ``record_every`` in ``(a, b]``, for any ``a`` (kernels count records
    from a ``step0`` that is a multiple of their ``record_every``): steps without a record run with a
    ``record_every`` no step reaches, a record step reached from elsewhere as one step with 1."""
    re = record_every
    out = []
    first = (a // re + 1) * re  # the first record step after a
    if first > b:
        return [(a, b - a, _NEVER)]
    if a % re:
        if first - 1 > a:
            out.append((a, first - 1 - a, _NEVER))
        out.append((first - 1, 1, 1))
        a = first
    last = b // re * re
    if last > a:
        out.append((a, last - a, re))
    if b > last:
        out.append((last, b - last, _NEVER))
    return out


class StopTracker:
    """Stopping bookkeeping of one run: the stop arrays, the stop records, and live-replica compaction."""

    def __init__(self, rule: Rule, integrator: Any, target: Any, state: Any, variables: list, n_replicas: int,
                 reference: bool | None = None):
        self.rule = rule
        self.integrator = integrator
        self.target = target
        self.variables = variables
        self.reference = REFERENCE if reference is None else bool(reference)
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
        if not self.reference:
            state.until = self.compiled  # the kernels receive the rule (records of the initial state too)

    # -- what the rule sees --------------------------------------------------------------------
    def energy(self, arrays: dict, scratch: dict) -> np.ndarray | None:
        """The family's scalar for every replica (what the kernels pass the rule): U(x) for Langevin and
        SGD on a landscape; on a finite-sum problem the full-batch loss summed in example order (None,
        i.e. NaN, when the rule does not read it); the best U so far for the evolution strategies; the
        lowest U in the population for populations and the genetic algorithm."""
        x = arrays["x"]
        if "best" in arrays:
            return np.ascontiguousarray(arrays["best"], dtype=np.float64)
        if self.integrator.family in ("popgen", "evolution"):
            return np.min(scratch["u"][: x.shape[0]], axis=1)
        from ..problems.base import Problem

        if isinstance(self.target, Problem):
            return _full_batch_loss(self.target, x) if self.rule.needs_energy else None
        return np.asarray(self.target.value(np.nan_to_num(x)), dtype=np.float64)

    def _codes(self, arrays: dict, scratch: dict) -> np.ndarray:
        codes = self.compiled.evaluate(arrays["x"], self.energy(arrays, scratch))
        codes[arrays["diverged"] >= 0] = 0  # a diverged replica is frozen as NaN, never "stopped"
        return codes

    # -- the driver's calls --------------------------------------------------------------------
    def initial(self, state: Any, out: dict[str, np.ndarray], k: int) -> None:
        """Check the initial state (step 0, after its record ``k``): replicas already there stop at step 0,
        and all their records repeat that one."""
        codes = self._codes(state.arrays, state.scratch)
        hit = np.flatnonzero(codes > 0)
        if not hit.size:
            return
        state.arrays["stop_step"][hit] = state.step
        state.arrays["stop_rule"][hit] = codes[hit] - 1
        if "halted" in state.arrays:
            state.arrays["halted"][hit] = state.step
        for v in self.variables:
            state.arrays[_RECORD_PREFIX + v.name][hit] = out[v.name][hit, k]

    def advance(self, state: Any, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int) -> None:
        """Advance the replicas that have not stopped ``n_steps`` steps from ``state.step``, stopping each
        at its rule, and write records ``k0, k0 + 1, ...`` of every replica (stopped ones repeat their stop
        record). ``state.step`` itself is left to the caller."""
        if self.reference:
            import numba

            threads = numba.get_num_threads()
            try:
                self._reference_steps(state, n_steps, record_every, out, k0, threads)
            finally:
                numba.set_num_threads(threads)
            return
        from ..ensemble.driver import block_size

        ids = self._live(state)
        work = self._work(state, ids)
        pos, end, k = state.step, state.step + n_steps, k0
        rows = work.arrays["stop_step"].size
        piece = max(1, -(-n_steps // (PIECES if rows * n_steps >= PIECE_WORK else 1)))
        while pos < end:
            b = min(end, pos + piece)
            nrec = b // record_every - pos // record_every
            buf, off = (out, k) if ids is None else (self._buffers(ids.size, nrec), 0)
            for s0, n, rev in segments(pos, b, record_every):
                work.step = s0
                self.integrator.advance(self.target, work, n, rev, buf, off, block_size(rows))
                if rev != _NEVER:
                    off += (s0 + n) // record_every - s0 // record_every
            work.step = b
            if ids is not None and nrec:
                for name, a in buf.items():
                    out[name][ids, k:k + nrec] = a[:, :nrec]
            ws = work.arrays["stop_step"]
            new = np.flatnonzero(ws > pos)
            if new.size:
                self._stopped(state, work, ids, new)
            if nrec:
                self._write_stopped(state, out, k, pos, b, record_every)
            k += nrec
            pos = b
            if pos < end and 8 * np.count_nonzero(ws >= 0) > ws.size:  # compact: drop the stopped rows
                self._scatter(state, work, ids)
                ids = np.flatnonzero(state.arrays["stop_step"] < 0)
                work = self._work(state, ids)
                rows = ids.size
        self._scatter(state, work, ids)

    # -- the work set ----------------------------------------------------------------------------
    def _live(self, state: Any) -> np.ndarray | None:
        """Rows that have not stopped, or None (every row, in place) while at most an eighth have stopped."""
        live = np.flatnonzero(state.arrays["stop_step"] < 0)
        return None if 8 * (self.R - live.size) <= self.R else live

    def _work(self, state: Any, ids: np.ndarray | None) -> Any:
        """The state a kernel call works on: ``state`` itself (``ids`` None), or its rows ``ids`` (copies)
        with prefix views of the scratch."""
        from ..integrators.base import State

        if ids is None:
            return State(arrays=state.arrays, scratch=state.scratch, step=state.step, until=self.compiled)
        keys = self.array_keys + list(STOP_ARRAYS)
        arrays = {k: (v[ids] if k in keys else v) for k, v in state.arrays.items() if not k.startswith(_RECORD_PREFIX)}
        scratch = {k: (v[: ids.size] if k in self.scratch_keys else v) for k, v in state.scratch.items()}
        return State(arrays=arrays, scratch=scratch, step=state.step, until=self.compiled)

    def _scatter(self, state: Any, work: Any, ids: np.ndarray | None) -> None:
        if ids is not None:
            for k in self.array_keys + list(STOP_ARRAYS):
                state.arrays[k][ids] = work.arrays[k]

    def _buffers(self, n: int, nrec: int) -> dict[str, np.ndarray]:
        return {v.name: np.full((n, nrec) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype) for v in self.variables}

    # -- stop records ------------------------------------------------------------------------------
    def _stopped(self, state: Any, work: Any, ids: np.ndarray | None, rows: np.ndarray) -> None:
        """Rows ``rows`` of ``work`` stopped in the last call: keep their stop record (and, for a gathered
        work set, their stop step in the full state at once)."""
        g = rows if ids is None else ids[rows]
        if ids is not None:
            for k in STOP_ARRAYS:
                state.arrays[k][g] = work.arrays[k][rows]
        self._keep_record(state, self._frozen(state, work, rows), g)

    def _frozen(self, state: Any, work: Any, rows: np.ndarray) -> Any:
        """A State of the frozen rows ``rows`` of ``work`` for :meth:`Integrator.record` (no stop marks,
        so that kernels record them; scratch the record reads from the last step copied, the rest prefix
        views)."""
        from ..integrators.base import State

        n = rows.size
        keep = self.integrator.record_scratch
        arrays = {k: (v[rows] if k in self.array_keys else v) for k, v in work.arrays.items()
                  if k not in STOP_ARRAYS and not k.startswith(_RECORD_PREFIX)}
        arrays.update({k: np.full(n, -1, dtype=np.int64) for k in STOP_ARRAYS})
        scratch = {k: ((np.ascontiguousarray(work.scratch[k][rows]) if k in keep else v[:n]) if k in self.scratch_keys
                       else v) for k, v in state.scratch.items()}
        return State(arrays=arrays, scratch=scratch, step=work.step, until=None if self.reference else self.compiled)

    def _keep_record(self, state: Any, frozen: Any, g: np.ndarray) -> None:
        out = {v.name: np.full((g.size, 1) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype) for v in self.variables}
        self.integrator.record(self.target, frozen, out, 0)
        for v in self.variables:
            a = frozen.arrays.get(v.name)
            if a is not None and a.shape == (g.size,) + tuple(v.shape):  # a counter kept in the state
                out[v.name][:, 0] = a
            state.arrays[_RECORD_PREFIX + v.name][g] = out[v.name][:, 0]

    def _write_stopped(self, state: Any, out: dict[str, np.ndarray], k: int, a: int, b: int, re: int) -> None:
        """Write the stop record of every replica stopped before each record step in ``(a, b]`` (records
        ``k, k + 1, ...``)."""
        ss = state.arrays["stop_step"]
        nrec = b // re - a // re
        before = np.flatnonzero((ss >= 0) & (ss <= a))
        within = np.flatnonzero(ss > a)
        for v in self.variables:
            rec = state.arrays[_RECORD_PREFIX + v.name]
            if before.size:
                out[v.name][before, k:k + nrec] = rec[before][:, None]
            for j in range(nrec if within.size else 0):
                rows = within[ss[within] < (a // re + 1 + j) * re]
                out[v.name][rows, k + j] = rec[rows]

    # -- the phase-1 reference path ------------------------------------------------------------
    def _stop(self, state: Any, ids: np.ndarray, codes: np.ndarray, frozen: Any) -> None:
        """Mark ``ids`` stopped at ``frozen.step`` and keep the record of their frozen state ``frozen``."""
        state.arrays["stop_step"][ids] = frozen.step
        state.arrays["stop_rule"][ids] = codes - 1
        self._keep_record(state, frozen, ids)

    def _rows(self, work: Any, mask: np.ndarray) -> Any:
        """A State of the rows ``mask`` (indices or a boolean mask) of ``work`` (copies)."""
        from ..integrators.base import State

        return State(arrays={k: (v[mask] if k in self.array_keys else v) for k, v in work.arrays.items()},
                     scratch={k: (np.ascontiguousarray(v[mask]) if k in self.scratch_keys else v)
                              for k, v in work.scratch.items()}, step=work.step)

    def _reference_steps(self, state: Any, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
                         threads: int) -> None:
        """One kernel call per step on the live replicas (a record asked for exactly at the run's record
        steps), the rule evaluated after each step outside the kernels: the reference results."""
        import numba

        from ..ensemble.driver import block_size

        stop_step = state.arrays["stop_step"]
        ids = np.flatnonzero(stop_step < 0)  # rows of the work set (positions in the full state)
        alive = np.ones(ids.size, dtype=bool)  # stopped rows stay in the work set until it is compacted
        work = self._gather(state, ids)
        buf = {v.name: np.full((self.R, 1) + tuple(v.shape), _fill(v.dtype), dtype=v.dtype) for v in self.variables}
        k = k0
        for s in range(n_steps):
            # a small step runs on one thread (waking a second costs more than the step itself)
            numba.set_num_threads(1 if work.arrays["x"].size < _SMALL_STEP else threads)
            step = state.step + s + 1
            is_record = step % record_every == 0
            n = ids.size
            rec = {name: b[:n] for name, b in buf.items()}
            if n:
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
            codes = self._codes(work.arrays, work.scratch)
            hit = np.flatnonzero((codes > 0) & alive)
            if hit.size:
                numba.set_num_threads(1)
                self._stop(state, ids[hit], codes[hit], self._rows(work, hit))
                for key in self.array_keys:  # their final state, written once
                    state.arrays[key][ids[hit]] = work.arrays[key][hit]
                alive[hit] = False
            if 8 * (ids.size - np.count_nonzero(alive)) > ids.size:
                ids = ids[alive]
                for key in self.array_keys:
                    work.arrays[key] = np.ascontiguousarray(work.arrays[key][alive])
                for key in self.scratch_keys:
                    work.scratch[key] = state.scratch[key][: ids.size]
                alive = np.ones(ids.size, dtype=bool)
        for key in self.array_keys:
            state.arrays[key][ids[alive]] = work.arrays[key][alive]

    def _gather(self, state: Any, live: np.ndarray) -> Any:
        from ..integrators.base import State

        arrays = {k: (v[live] if k in self.array_keys else v) for k, v in state.arrays.items()
                  if k not in STOP_ARRAYS and not k.startswith(_RECORD_PREFIX)}
        scratch = {k: (v[: live.size] if k in self.scratch_keys else v) for k, v in state.scratch.items()}
        return State(arrays=arrays, scratch=scratch, step=state.step)

    # -- output --------------------------------------------------------------------------------
    def data_vars(self, state: Any) -> dict[str, xr.Variable]:
        """``stopped``, ``stop_step``, ``stop_time`` and ``stop_rule`` (dims ``replica``); ``stop_time`` is
        the ``time`` coordinate's own function of the step (exact to the decimal ``dt``). Made like the
        Dataset's other variables (:func:`~stochdyn.io.schema.fast_variable`: no ``dask.array`` import)."""
        from ..io.schema import fast_variable

        step = state.arrays["stop_step"]
        stopped = step >= 0
        time = np.where(stopped, self.integrator.time_of_step(np.maximum(step, 0)), np.nan)
        labels = self.compiled.labels
        units = self.integrator.time_units
        return {
            "stopped": fast_variable("replica", stopped, {
                "long_name": "the stopping rule held before the end of the run (False: censored)", "units": "1"}),
            "stop_step": fast_variable("replica", step.astype(np.int64), {
                "long_name": "first step at which the stopping rule held (-1: censored)", "units": "1"}),
            "stop_time": fast_variable("replica", np.asarray(time, dtype=np.float64), {
                "long_name": f"{self.integrator.time_long_name} at which the stopping rule held (NaN: censored)",
                "units": units}),
            "stop_rule": fast_variable("replica", state.arrays["stop_rule"].astype(np.int64), {
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


def _full_batch_loss(problem: Any, x: np.ndarray) -> np.ndarray:
    """U(x) = sum_i w_i l_i(x) in example order for each row of ``x``: the loop the SGD kernel runs for a
    rule (``integrators._kernels.sgd.full_loss``; quadratic problems' ``value`` uses a closed form instead,
    which can differ in the last bits)."""
    from ..integrators._kernels.sgd import full_losses

    pts = np.ascontiguousarray(np.nan_to_num(x), dtype=np.float64)
    values = np.empty(pts.shape[0])
    full_losses(problem.compiled, problem.rows, problem.weights, problem.hyper, pts, values)
    return values
