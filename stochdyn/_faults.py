"""Faults in user code: exceptions and out-of-range access in user functions, caught and named.

Every function a user hands to stochdyn — landscapes, per-sample losses, augmentations, fitness
maps, stopping rules — is called by kernels through a generated ``numba.cfunc`` wrapper with a
fixed C signature. The wrapper calls the user's function through :func:`try_call`, which reads the
error status of Numba's calling convention instead of propagating it (what ``try``/``except`` does
in nopython code, for a fraction of its compile time). The user function is compiled with
``boundscheck=True``, so reading or writing outside its arrays is an ``IndexError`` too, never a
memory corruption. On an exception the wrapper

* writes what makes the kernel freeze the replica at that very step: ``-inf`` as the value and NaN
  as the gradient of a landscape or loss (every kernel freezes a replica whose energy is ``-inf``),
  NaN as an augmented row or a fitness; a stopping rule answers "holds";
* and calls :func:`note_fault` (through its address, :data:`NOTE`), which counts the fault in the
  function's :class:`FaultCell` (a few numbers whose address is compiled into the wrapper) and
  keeps a copy of the first faulting call's inputs — if those inputs were finite: an exception at a
  non-finite input (a replica that had already diverged) is not a fault of the user's code.

Numba cannot bind the exception object, so the message is recovered by calling the user's Python
function on the kept inputs (:meth:`FaultCell.explain`). Outside runs (``land.value(x)``, the
definition checks) :class:`guard` raises :class:`UserCodeError` right after the evaluation. In a
run, :class:`FaultWatch` compares the counts around every chunk and, if one grew, finds the replica
and step — the first frozen replica, by step then replica id, whose run alone reproduces the fault;
else the recorded state at which an evaluation after the kernel (an energy) faulted; for a fault
while the initial state is set up, the replica found by halving the set — and stops the run with
:class:`UserCodeError` before the chunk is recorded.
"""

from __future__ import annotations

import math
import os
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._numba_utils import LazyCFunc
from ._validation import ValidationError

__all__ = ["UserCodeError", "FaultCell", "note_fault", "wrapper_globals", "guard", "FaultWatch", "CELLS"]

#: compile user functions with bounds checks (read when a function is defined). Measured cost on a
#: user DoubleWell under EulerMaruyama and a 16-dimensional loop landscape under Langevin and CMA-ES:
#: none beyond timing noise (see docs/getting-started.md, "Faults in your code")
BOUNDSCHECK = True

_PACKAGE = os.path.dirname(os.path.abspath(__file__))

#: every live :class:`FaultCell` (the driver compares their counts around each chunk)
CELLS: "weakref.WeakSet[FaultCell]" = weakref.WeakSet()

# slots of a cell's int64 array
_COUNT, _STATE, _ADDR, _CAP, _NEED = 0, 1, 2, 3, 4
_FREE, _WRITING, _KEPT, _TOO_BIG = 0, 1, 2, 3
#: numbers before the kept inputs: lengths of a, b, c, d; e; k
_HEAD = 6
#: reruns of single replicas spent looking for the one that raised
MAX_RERUNS = 8


class UserCodeError(RuntimeError):
    """A user function raised an exception (or read or wrote outside its arrays) during a run or an evaluation.

    The run is stopped at the end of the chunk in which it happened, before that chunk is recorded.
    Attributes: ``kind`` ("landscape", "per-sample loss", ...), ``function`` (its name), ``exception``
    (the exception the Python function raises at ``inputs``, or None if it does not), ``replica`` and
    ``step`` (None outside runs, or if they could not be found), ``inputs`` (dict of the arguments) and
    ``what`` (the message's first part: which function raised what, where).
    """

    def __init__(self, message: str, *, kind: str = "", function: str = "", exception: BaseException | None = None,
                 replica: int | None = None, step: int | None = None, inputs: dict[str, Any] | None = None,
                 what: str = ""):
        super().__init__(message)
        self.kind, self.function, self.exception = kind, function, exception
        self.replica, self.step, self.inputs, self.what = replica, step, inputs or {}, what or message

    def __reduce__(self):  # keyword attributes survive pickling (Dask workers)
        return (_rebuild_error, (str(self), self.kind, self.function, self.exception, self.replica, self.step,
                                 self.inputs, self.what))


def _rebuild_error(message, kind, function, exception, replica, step, inputs, what):
    return UserCodeError(message, kind=kind, function=function, exception=exception, replica=replica, step=step,
                         inputs=inputs, what=what)


# -- compiled side -------------------------------------------------------------------------------
@intrinsic
def _i64_ptr(typingctx, addr):
    """The int64 address ``addr`` as a ``int64*``."""
    sig = types.CPointer(types.int64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(64).as_pointer())

    return sig, codegen


@intrinsic
def _f64_ptr(typingctx, addr):
    """The int64 address ``addr`` as a ``double*``."""
    sig = types.CPointer(types.float64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.DoubleType().as_pointer())

    return sig, codegen


@intrinsic
def _atomic_add(typingctx, addr, value):
    """``*(int64*)addr += value`` atomically; returns the old value."""
    sig = types.int64(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", ptr, args[1], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_cas(typingctx, addr, expected, new):
    """Compare-and-swap on ``*(int64*)addr``; returns the old value (the swap happened if it equals ``expected``)."""
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        pair = builder.cmpxchg(ptr, args[1], args[2], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@intrinsic
def ptr_at(typingctx, ptr, i):
    """``ptr + i`` (elements) for a ``double*`` ``ptr``."""
    if not isinstance(ptr, types.CPointer):
        return None
    sig = ptr(ptr, types.intp)

    def codegen(context, builder, signature, args):
        return builder.gep(args[0], [args[1]])

    return sig, codegen


@intrinsic
def try_call(typingctx, fn, args):
    """``(ok, value) = try_call(f, (a, b, ...))``: call the jitted ``f`` and report instead of raising.

    ``ok`` is False if ``f`` raised (``value`` is then meaningless); for an ``f`` that returns
    nothing, just ``ok``. The error status of Numba's calling convention is read directly, as its
    ``try``/``except`` does, at a fraction of the compile time (measured: +0.03 s per wrapper instead
    of +0.2 s); the exception record of a raise with run-time arguments is freed (``try``/``except``
    leaks it).
    """
    if not isinstance(fn, types.Dispatcher) or not isinstance(args, types.BaseTuple):
        return None
    inner = typingctx.resolve_function_type(fn, tuple(args.types), {})
    if inner is None:
        return None
    returns = inner.return_type not in (types.none, types.void)
    sig = (types.Tuple((types.boolean, inner.return_type)) if returns else types.boolean)(fn, args)

    def codegen(context, builder, signature, llargs):
        cres = fn.dispatcher.get_compile_result(inner)
        context.add_linking_libs([cres.library])
        argvals = cgutils.unpack_tuple(builder, llargs[1], len(args))
        status, res = context.call_internal_no_propagate(builder, cres.fndesc, inner, argvals)
        with builder.if_then(status.is_user_exc, likely=False):
            _free_dynamic_exception(context, builder, status.excinfoptr)
        ok = builder.not_(status.is_error)
        return context.make_tuple(builder, signature.return_type, [ok, res]) if returns else ok

    return sig, codegen


def _free_dynamic_exception(context, builder, excinfo):
    """Free the record of a raise with run-time arguments (its args struct and itself), as raising it would."""
    try:
        from numba.core.callconv import ALLOC_FLAG_IDX, HASH_BUF_IDX
    except ImportError:  # pragma: no cover - Numba before dynamic exceptions: nothing allocated
        return
    if not context.enable_nrt:
        return
    rec = builder.load(excinfo)
    dynamic = builder.icmp_signed(">", builder.extract_value(rec, ALLOC_FLAG_IDX), ir.Constant(ir.IntType(32), 0))
    with builder.if_then(dynamic, likely=False):
        context.nrt.free(builder, builder.extract_value(rec, HASH_BUF_IDX))
        context.nrt.free(builder, builder.bitcast(excinfo, cgutils.voidptr_t))


_f8p = types.CPointer(types.float64)
#: ``void note(int64 cell, double *a, intp na, intp stride_a, double *b, intp nb, double *c, intp nc,
#: double *d, intp nd, double e, int64 k)``: :func:`note_fault` at the cell at address ``cell``
NOTE_SIG = types.void(types.int64, _f8p, types.intp, types.intp, _f8p, types.intp, _f8p, types.intp, _f8p,
                      types.intp, types.float64, types.int64)


@intrinsic
def call_note(typingctx, addr, args):
    """``call_note(address, (cell, a, na, ...))``: call the :data:`NOTE_SIG` function at ``address`` (so
    wrappers link none of its code); ``args`` is the tuple of its arguments."""
    if not isinstance(args, types.BaseTuple) or tuple(types.unliteral(t) for t in args.types) != NOTE_SIG.args:
        raise TypeError(f"call_note takes the arguments of {NOTE_SIG}; got {args}")  # a raw call must match exactly
    sig = types.void(types.int64, args)

    def codegen(context, builder, signature, llargs):
        fnty = ir.FunctionType(ir.VoidType(), [context.get_value_type(a) for a in NOTE_SIG.args])
        builder.call(builder.inttoptr(llargs[0], fnty.as_pointer()), cgutils.unpack_tuple(builder, llargs[1], len(args)))
        return context.get_dummy_value()

    return sig, codegen


def note_fault(addr, ap, na, sa, bp, nb, cp, nc, dp, nd, e, k):
    """Count a fault of the user function whose cell is at ``addr`` and keep the first one's inputs.

    ``a`` (``na`` numbers ``sa`` apart) and ``b`` are the inputs that vary (point, data row...): a
    fault at a non-finite one is not counted (the replica had diverged before). ``c``, ``d``
    (parameters, normals), the float ``e`` and the int ``k`` are kept as they are. Thread-safe: the
    count is atomic and one caller wins the buffer.
    """
    a = carray(ap, (na, sa))
    b = carray(bp, (nb,))
    for i in range(na):
        if not math.isfinite(a[i, 0]):
            return
    for i in range(nb):
        if not math.isfinite(b[i]):
            return
    _atomic_add(addr + 8 * _COUNT, 1)
    if _atomic_cas(addr + 8 * _STATE, _FREE, _WRITING) != _FREE:
        return
    cell = carray(_i64_ptr(addr), (_NEED + 1,))
    n = _HEAD + na + nb + nc + nd
    if n > cell[_CAP]:
        cell[_NEED] = n
        cell[_STATE] = _TOO_BIG
        return
    buf = carray(_f64_ptr(cell[_ADDR]), (n,))
    buf[0] = na
    buf[1] = nb
    buf[2] = nc
    buf[3] = nd
    buf[4] = e
    buf[5] = k
    o = _HEAD
    for i in range(na):
        buf[o + i] = a[i, 0]
    o += na
    for i in range(nb):
        buf[o + i] = b[i]
    o += nb
    c = carray(cp, (nc,))
    for i in range(nc):
        buf[o + i] = c[i]
    o += nc
    d = carray(dp, (nd,))
    for i in range(nd):
        buf[o + i] = d[i]
    cell[_STATE] = _KEPT


#: the compiled :func:`note_fault` (cached on disk); wrappers call it through its address
NOTE = LazyCFunc(note_fault, NOTE_SIG)


def wrapper_globals(cell: "FaultCell") -> dict[str, Any]:
    """Names the generated wrappers use: ``_try`` (:func:`try_call`), ``_note(_NOTE, (_CELL, ...))``
    (:func:`note_fault` of ``cell``), ``ptr_at``, ``carray``, ``np``."""
    return {"_try": try_call, "_note": call_note, "_NOTE": int(NOTE.get().address), "_CELL": cell.address,
            "ptr_at": ptr_at, "carray": carray, "np": np}


# -- Python side ---------------------------------------------------------------------------------
class FaultCell:
    """The fault count and the first faulting inputs of one user function.

    ``replay(a, b, c, d, e, k)`` calls the user's Python function on kept inputs (it raises what the
    function raises) and ``describe(a, b, c, d, e, k)`` returns them as a dict for messages.
    """

    def __init__(self, kind: str, name: str, replay: Callable[..., Any], describe: Callable[..., dict[str, Any]],
                 capacity: int = 1024):
        self.kind, self.name = kind, name
        self._replay, self._describe = replay, describe
        self.cell = np.zeros(_NEED + 1, dtype=np.int64)
        self._buffers: list[np.ndarray] = []  # every buffer ever handed out stays alive (a late writer is safe)
        self._grow(capacity)
        CELLS.add(self)

    @property
    def address(self) -> int:
        """Address of the cell, compiled into the wrapper as a constant."""
        return int(self.cell.ctypes.data)

    def _grow(self, n: int) -> None:
        buf = np.zeros(max(int(n), _HEAD))
        self._buffers.append(buf)
        self.cell[_ADDR] = buf.ctypes.data
        self.cell[_CAP] = buf.size

    @property
    def count(self) -> int:
        """Faults counted since the cell was made (never reset, so concurrent users can compare)."""
        return int(self.cell[_COUNT])

    def reserve(self, n: int) -> None:
        """Make room for kept inputs of ``n`` numbers (parameters included)."""
        if n + _HEAD > self.cell[_CAP]:
            self._grow(2 * (n + _HEAD))

    def release(self) -> None:
        """Free the kept inputs for the next fault (growing the buffer if the last ones did not fit)."""
        if self.cell[_STATE] == _TOO_BIG:
            self._grow(2 * int(self.cell[_NEED]))
        self.cell[_STATE] = _FREE

    def kept(self) -> tuple | None:
        """The inputs of the first fault since :meth:`release`: ``(a, b, c, d, e, k)``, or None."""
        if self.cell[_STATE] != _KEPT:
            return None
        buf = self._buffers[-1]
        sizes = [int(v) for v in buf[:4]]
        parts, o = [], _HEAD
        for n in sizes:
            parts.append(buf[o:o + n].copy())
            o += n
        return (*parts, float(buf[4]), int(buf[5]))

    def explain(self) -> tuple[BaseException | None, dict[str, Any]]:
        """The exception the Python function raises at the kept inputs (None if it does not), and the inputs."""
        kept = self.kept()
        if kept is None:
            return None, {}
        try:
            self._replay(*kept)
        except Exception as exc:  # noqa: BLE001 - whatever the user's function raises
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
                tb = tb.tb_next  # the traceback starts in the user's function, not in this replay
            return exc.with_traceback(tb), self._describe(*kept)
        return None, self._describe(*kept)

    def error(self, where: str = "", replica: int | None = None, step: int | None = None, advice: str = "",
              explained: tuple[BaseException | None, dict[str, Any]] | None = None) -> UserCodeError:
        """A :class:`UserCodeError` naming the function, the exception, the inputs and ``where``
        (``explained``: the result of :meth:`explain` made earlier)."""
        exc, inputs = self.explain() if explained is None else explained
        what = (f"raised {type(exc).__name__}: {exc}" if exc is not None else
                "raised an exception when compiled that its Python function does not raise at those inputs "
                "(so its message is unknown)" if inputs else "raised an exception")
        at = ", ".join(f"{k}={_short(v)}" for k, v in inputs.items())
        place = []
        if replica is not None:
            place.append(f"replica {replica}")
        if step is not None:
            place.append(f"step {step}")
        msg = f"{self.kind.capitalize()} {self.name!r} {what}"
        if at:
            msg += f" at {at}"
        if place:
            msg += f" ({', '.join(place)})"
        core = msg
        if where:
            msg += f" {where}"
        msg += "."
        if advice:
            msg += " " + advice
        err = UserCodeError(msg, kind=self.kind, function=self.name, exception=exc, replica=replica, step=step,
                            inputs=inputs, what=core)
        err.__cause__ = exc
        return err


def _short(v: Any) -> str:
    """An input for a message: in full (Python floats) when small, summarised when large."""
    if isinstance(v, np.ndarray):
        if v.size <= 8:
            return repr(v.tolist())
        return np.array2string(v, threshold=8, precision=6, separator=", ", max_line_width=10**6).replace("\n", "")
    return repr(v)


#: set while a run is watched: evaluations in Python (energies at records, stopping-rule energies) then
#: leave a fault to the FaultWatch, which names the replica and step, instead of raising at once
_QUIET: ContextVar[bool] = ContextVar("stochdyn_faults_quiet", default=False)


class guard:
    """``with guard(cell, where):`` raises :class:`UserCodeError` if the user function faulted inside the
    block (unless a run's :class:`FaultWatch` is watching: it reports the fault itself)."""

    def __init__(self, cell: FaultCell | None, where: str = ""):
        self.cell, self.where = cell, where

    def __enter__(self):
        self.quiet = _QUIET.get()
        if self.cell is not None and not self.quiet:
            self.cell.release()
            self.n0 = self.cell.count
        return self

    def __exit__(self, kind, value, tb):
        if kind is None and self.cell is not None and not self.quiet and self.cell.count != self.n0:
            raise self.cell.error(self.where)
        return False


@contextmanager
def _quiet():
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


STOP_ADVICE = ("The run was stopped. Fix the function, or make it return inf or NaN where it is undefined (see "
               "'Faults in your code' in the getting-started guide); a store keeps the chunks before this one, "
               "and resume=True continues from there.")


class FaultWatch:
    """Stops a run at the end of the chunk in which a user function faulted, naming the replica and step.

    ``rerun(rows, s)`` runs the replicas at positions ``rows`` (a slice of the run's replica ids ``ids``)
    alone from their initial state to step ``s`` (None: only sets the initial state up); a replica's
    run alone is bit-identical to its run in the ensemble, so the fault comes back exactly where it
    was, with the cell's kept inputs free for it. ``x0`` is the run's initial state (to name the
    replica of a fault while it is set up).
    """

    def __init__(self, ids: np.ndarray, rerun: Callable[[slice, int | None], None], x0: np.ndarray | None = None):
        self.ids, self.rerun, self.x0 = ids, rerun, x0
        self.counts: dict[FaultCell, int] = {}

    def _start(self) -> None:
        self.counts = {}
        for cell in list(CELLS):
            cell.release()
            self.counts[cell] = cell.count

    def _grown(self) -> list[FaultCell]:
        return [c for c, n in self.counts.items() if c.count != n]

    @contextmanager
    def initial(self):
        """Around the set-up of the initial state: a fault there is reported at step 0, with the replica
        whose initial state holds the faulting point (a check of the initial state may raise
        ValidationError about the non-finite value the fault left: the fault is reported instead)."""
        self._start()
        try:
            with _quiet():
                yield
        except ValidationError:
            self._raise_initial()
            raise
        self._raise_initial()

    def _raise_initial(self) -> None:
        grown = self._grown()
        if not grown:
            return
        cell = grown[0]
        explained = cell.explain()
        kept = cell.kept()
        hit = None
        if kept is not None and self.x0 is not None:  # the faulting point is an initial state given
            hit = _find_rows(self.x0.reshape(self.x0.shape[0], -1, self.x0.shape[-1]), kept[0])
        i = hit[0] if hit is not None else self._bisect_initial(cell)  # or one drawn: halve the replicas
        raise cell.error("" if i is not None else "at the initial state", replica=None if i is None else int(self.ids[i]),
                         step=0, advice=STOP_ADVICE, explained=explained)

    def _faults_in(self, cell: FaultCell, rows: slice, s: int | None) -> bool:
        """Whether ``cell`` faults when the replicas ``rows`` run alone to step ``s`` (quietly)."""
        cell.release()
        n0 = cell.count
        with _quiet():
            try:
                self.rerun(rows, s)
            except Exception:  # noqa: BLE001 - a check that the fault's non-finite output trips
                pass
        return cell.count != n0

    def _bisect_initial(self, cell: FaultCell) -> int | None:
        """The first replica whose initial state alone faults, by halving (set-ups only: cheap)."""
        lo, hi = 0, len(self.ids)
        if not self._faults_in(cell, slice(lo, hi), None):
            return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._faults_in(cell, slice(lo, mid), None):
                hi = mid
            else:
                lo = mid
        return lo

    @contextmanager
    def chunk(self, state: Any, lo: int, hi: int, xs: np.ndarray | None = None, steps: np.ndarray | None = None):
        """Around a chunk of steps ``lo..hi``: raise :class:`UserCodeError` after it if a user function
        faulted in it. ``xs`` (replica, record, ...) and ``steps``: the chunk's recorded states and their
        steps, where a fault in an evaluation at a record is found."""
        self._start()
        with _quiet():
            yield
            grown = self._grown()
            if grown:
                self._report(grown, state, lo, hi, xs, steps)

    def _report(self, grown: list[FaultCell], state: Any, lo: int, hi: int, xs: Any, steps: Any) -> None:
        first = {c: (c.explain(), c.kept()) for c in grown}  # what the run kept, before the reruns
        cand = self._candidates(state, lo, hi)
        for i, s in cand[:MAX_RERUNS]:
            for cell in grown:
                if self._faults_in(cell, slice(i, i + 1), s) and cell.kept() is not None:
                    raise cell.error(replica=int(self.ids[i]), step=s, advice=STOP_ADVICE)
        for c in grown:
            c.release()
        # not reproduced by a frozen replica: an evaluation at a record (an energy computed after the
        # kernel) finds its point among the recorded states
        cell = next((c for c in grown if first[c][1] is not None), grown[0])
        (explained, kept) = first[cell]
        if kept is not None and xs is not None and steps is not None and xs.ndim >= 3:
            hit = _find_rows(xs, kept[0])
            if hit is not None:
                return self._raise(cell, int(self.ids[hit[0]]), int(steps[hit[1]]), explained)
        raise cell.error(f"in steps {lo} to {hi}; the replica was not identified ({len(cand)} replicas froze in those "
                         f"steps, the first {min(len(cand), MAX_RERUNS)} run alone did not raise)",
                         advice=STOP_ADVICE, explained=explained)

    @staticmethod
    def _raise(cell: FaultCell, replica: int, step: int, explained: Any) -> None:
        raise cell.error(replica=replica, step=step, advice=STOP_ADVICE, explained=explained)

    @staticmethod
    def _candidates(state: Any, lo: int, hi: int) -> list[tuple[int, int]]:
        """(replica position, step) of every replica frozen (diverged or stopped) in steps ``lo..hi``, in order."""
        found: dict[int, int] = {}
        for key in ("diverged", "stop_step"):
            a = state.arrays.get(key)
            if a is None:
                continue
            a = np.asarray(a)
            for i in np.flatnonzero((a >= lo) & (a <= hi)):
                found[int(i)] = min(found.get(int(i), hi + 1), int(a[i]))
        return sorted(found.items(), key=lambda p: (p[1], p[0]))


def _find_rows(xs: np.ndarray, point: np.ndarray) -> tuple[int, int] | None:
    """The first (replica, j) with ``xs[replica, j] == point`` (``xs`` of shape (R, J, len(point))), by j then replica."""
    if xs.ndim != 3 or xs.shape[-1] != point.size:
        return None
    hit = np.argwhere(np.all(xs == point, axis=-1))
    if hit.size == 0:
        return None
    r, j = min(((int(r), int(j)) for r, j in hit), key=lambda p: (p[1], p[0]))
    return r, j
