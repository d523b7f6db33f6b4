"""User stopping rules from one Python function, through the :func:`rule` decorator."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any, Callable

import numpy as np
from numba import cfunc, njit

from .. import _faults
from .._faults import FaultCell, UserCodeError, guard, wrapper_globals
from .._validation import ValidationError, check_int, check_real
from ..landscapes.user import _numba_reason
from . import _compiled as _c
from .rules import RULES, Rule, _state_dim, as_rows

__all__ = ["rule"]


def rule(func: Callable | None = None, *, dim: int | None = None, needs_energy: bool = True):
    """Turn a Python function into a stopping rule usable by every integrator.

    The function has the form ``f(x, energy, p1=default1, ...) -> bool``: ``x`` is the replica's
    state as a 2-D array of ``n`` rows and ``dim`` columns (one row for a point — Langevin, SGD, an
    evolution strategy's mean; the N individuals of a population, genotypes as allele indices),
    ``energy`` the family's scalar (see :mod:`stochdyn.stopping`). It must be in Numba's nopython
    subset. Keyword parameters (floats, with defaults) are passed at run time, so changing them never
    recompiles a kernel; the rule's own small function is compiled once at definition (~0.2 s, not
    cached: it has no source file), called through its address by the cached interpreter (one function for every combination), so a user
    rule combined with others with ``|`` compiles nothing more.

    Checked at definition: the function compiles and returns a truth value on a test state of one
    row and of three rows; otherwise a :class:`~stochdyn.ValidationError` says why.

    Parameters
    ----------
    dim : int, optional
        The state dimension the rule is written for (checked against the run); default any.
    needs_energy : bool
        Whether the rule reads ``energy`` (default True; say False to spare SGD on finite-sum problems a
        full-batch loss per step).

    Returns
    -------
    type
        A :class:`Rule` subclass named after the function; call it with parameter values.

    Examples
    --------
    >>> @sd.stopping.rule                                      # doctest: +SKIP
    ... def left_half_empty(x, energy, level=0.0):
    ...     return x[:, 0].max() > level
    >>> until = left_half_empty(level=0.5) | sd.stopping.EnergyBelow(-1.0)   # doctest: +SKIP
    """

    def wrap(f: Callable) -> type[Rule]:
        return _make_rule_class(f, dim, needs_energy, check=True)

    return wrap(func) if func is not None else wrap


def _make_rule_class(f: Callable, fixed_dim: int | None, needs_energy: bool, check: bool) -> type[Rule]:
    if not callable(f):
        raise ValidationError(f"sd.stopping.rule decorates a function f(x, energy, p1=default, ...). Got {f!r}.")
    name = f.__name__
    if fixed_dim is not None:
        fixed_dim = check_int("dim", fixed_dim, f"rule {name!r}", ge=1)
    sig = inspect.signature(f)
    args = list(sig.parameters.values())
    if len(args) < 2 or any(a.kind not in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD) for a in args):
        raise ValidationError(f"A stopping rule function must have the form f(x, energy, p1=default, ...). "
                              f"{name!r} has signature {sig}.")
    params = args[2:]
    for p in params:
        if p.default is inspect.Parameter.empty:
            raise ValidationError(f"Parameter {p.name!r} of stopping rule {name!r} needs a numeric default value.")
        check_real(p.name, p.default, f"stopping rule {name!r}")
    pnames = [p.name for p in params]
    defaults = {p.name: float(p.default) for p in params}
    if name in RULES and getattr(RULES[name], "python_function", None) is None:
        raise ValidationError(f"A stopping rule cannot be named {name!r}: that is a built-in rule.")

    call_args = ", ".join(f"th[{i}]" for i in range(len(pnames)))
    np_ = len(pnames)
    cell = FaultCell("stopping rule", name, lambda a, b, c, d, e, k: f(a.reshape(-1, k), e, *c[:np_]),
                     lambda a, b, c, d, e, k: {"x": a.reshape(-1, k), **({} if e != e else {"energy": e}),
                                               **dict(zip(pnames, c[:np_].tolist()))})
    # the user function with bounds checks, through try_call: on an exception (an out-of-range index
    # included) the rule "holds", which freezes the replica at that step, and the fault is counted in
    # ``cell`` so that the run stops with UserCodeError naming it (see stochdyn/_faults.py)
    src = textwrap.dedent(
        f"""
        def _rule(xp, n, d, e, tp, nt, ap, na, wp, nw):
            x = carray(xp, (n, d))
            th = carray(tp, (nt,))
            ok, hit = _try(_user, (x, e{", " if pnames else ""}{call_args}))
            if ok:
                return 1 if hit else 0
            _note(_NOTE, (_CELL, xp, n * d, 1, xp, 0, tp, nt, tp, 0, e, d))
            return 1
        """
    )
    namespace: dict[str, Any] = {**wrapper_globals(cell), "_user": njit(boundscheck=_faults.BOUNDSCHECK)(f)}
    exec(src, namespace)
    try:
        compiled = cfunc(_c.RULE_SIG)(namespace["_rule"])
    except Exception as exc:
        raise ValidationError(f"Stopping rule {name!r} could not be compiled by Numba (it must use Numba's nopython "
                              f"subset and return a truth value): {_numba_reason(exc)}") from None

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(pnames)
        if unknown:
            raise ValidationError(f"Unknown parameter(s) {sorted(unknown)} for stopping rule {name!r}; "
                                  f"its parameters are {pnames}.")
        self.params = {k: check_real(k, kwargs.get(k, defaults[k]), name) for k in pnames}

    def to_dict(self) -> dict[str, Any]:
        return {"type": name, **self.params}

    def __str__(self) -> str:
        return f"{name}({', '.join(f'{k}={v:g}' for k, v in self.params.items())})"

    def check_target(self, integrator: Any, target: Any) -> None:
        d = _state_dim(integrator, target)
        if fixed_dim is not None and d != fixed_dim:
            raise ValidationError(f"Stopping rule {name!r} is written for dimension {fixed_dim}; the run's state has "
                                  f"dimension {d}.")
        if checked is not None and d not in checked:  # the definition check, at the run's dimension
            _definition_check(self, d)
            checked.add(d)

    def holds(self, x: Any, energy: Any = None, target: Any = None) -> np.ndarray:
        rows = as_rows(x)
        e = np.full(rows.shape[0], np.nan) if energy is None else np.broadcast_to(np.asarray(energy, float), rows.shape[:1])
        return np.array([bool(f(rows[r], float(e[r]), *self.params.values())) for r in range(rows.shape[0])], dtype=bool)

    def _part(self, target, aux):
        aux.append(int(compiled.address))
        return _c.OP_USER, np.array([self.params[k] for k in pnames], dtype=np.float64), len(aux) - 1

    def __reduce__(self):
        # the class is made at run time: rebuild it on the other side from the Python function
        return (_rebuild, (f, fixed_dim, needs_energy, self.params))

    cls = type(name, (Rule,), {
        "__init__": __init__, "to_dict": to_dict, "__str__": __str__, "check_target": check_target,
        "holds": holds, "_part": _part, "__reduce__": __reduce__, "needs_energy": bool(needs_energy),
        "__doc__": f.__doc__ or f"User stopping rule {name!r} (parameters: {', '.join(pnames) or 'none'}).",
        "__module__": getattr(f, "__module__", __name__), "param_names": tuple(pnames), "defaults": dict(defaults),
        "python_function": staticmethod(f), "compiled": compiled, "fault_cell": cell,
    })
    # dims already checked (None: no check); a fixed dimension (or 2) is checked here, any other when a run uses it
    checked: set[int] | None = None
    if check:
        d = fixed_dim or 2
        _definition_check(cls(), d)
        checked = {d}
    RULES[name] = cls
    return cls


def _definition_check(probe: Any, d: int) -> None:
    """The rule compiles, runs without raising and agrees with its Python function on test states of one and
    three rows of dimension ``d`` (energies 0)."""
    name = type(probe).__name__
    rng = np.random.default_rng(20260512)
    for n in (1, 3):
        x = rng.normal(size=(2, n, d))
        try:
            with guard(probe.fault_cell):
                got = probe.compile(dim=d).evaluate(x, np.zeros(2))
            want = probe.reference(x, np.zeros(2))
        except UserCodeError as exc:
            raise ValidationError(f"{exc.what} in its definition check (test states of shape ({n}, {d})): it must run "
                                  "on every state without raising.") from None
        except ValidationError:
            raise
        except Exception as exc:
            raise ValidationError(f"Stopping rule {name!r} failed when evaluated on a test state of shape "
                                  f"({n}, {d}): {_numba_reason(exc)}") from None
        if not np.array_equal(got, want):
            raise ValidationError(f"Stopping rule {name!r} gives different answers compiled and in Python on a "
                                  f"test state: {got.tolist()} vs {want.tolist()}.")


def _rebuild(f: Callable, fixed_dim: int | None, needs_energy: bool, params: dict[str, float]) -> Rule:
    """Unpickle a user rule: reuse its registered class, or make it again (unchecked)."""
    cls = RULES.get(f.__name__)
    if cls is None or getattr(cls, "python_function", None) is not f:
        cls = _make_rule_class(f, fixed_dim, needs_energy, check=False)
    return cls(**params)
