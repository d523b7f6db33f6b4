"""User landscapes from one Python function, through the :func:`landscape` decorator."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any, Callable, Protocol

import numpy as np
from numba import cfunc, njit

from .._numba_utils import LANDSCAPE_BLOCK_SIG, LANDSCAPE_COLUMNS_SIG, LazyCFunc, stack_scratch
from .. import _faults
from .._faults import FaultCell, UserCodeError, guard, wrapper_globals
from .._validation import ValidationError, check_int, check_real
from .base import Landscape, register

__all__ = ["landscape", "check_gradient"]


class Differentiable(Protocol):
    """What :func:`check_gradient` reads: a name, the dimension, and ``value``/``value_and_grad`` at points
    (a :class:`Landscape`, or e.g. one per-sample loss of a problem seen as a function of theta)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def value(self, x: Any) -> np.ndarray: ...

    def value_and_grad(self, x: Any) -> tuple[np.ndarray, np.ndarray]: ...


def check_gradient(land: Differentiable, points: Any, *, rtol: float = 1e-4) -> None:
    """Compare ``land.grad`` with central finite differences of ``land.value`` at ``points``.

    The step is :math:`h_j = \\epsilon^{1/3}\\max(1, |x_j|)`, whose truncation and rounding errors
    are both of order :math:`\\epsilon^{2/3} \\approx 4\\times10^{-11}` relative; a component fails when
    ``|grad - fd| > rtol * max(1, |grad|_inf, |fd|_inf, |U|)``. Raises ValidationError naming the
    landscape, the point, the component and both numbers.
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    value, grad = land.value_and_grad(pts)
    if not np.all(np.isfinite(value)) or not np.all(np.isfinite(grad)):
        i = int(np.flatnonzero(~(np.isfinite(value) & np.all(np.isfinite(grad), axis=-1)))[0])
        raise ValidationError(
            f"Landscape {land.name!r} is not finite at the check point x={pts[i].tolist()} "
            f"(U={float(value[i])!r}, grad={grad[i].tolist()}). Pass check_points= inside its domain."
        )
    eps = np.finfo(float).eps ** (1.0 / 3.0)
    for j in range(land.dim):
        h = eps * np.maximum(1.0, np.abs(pts[:, j]))
        xp = pts.copy()
        xm = pts.copy()
        xp[:, j] += h
        xm[:, j] -= h
        fd = (land.value(xp) - land.value(xm)) / (2.0 * h)
        scale = np.maximum.reduce([np.ones_like(fd), np.abs(grad).max(axis=-1), np.abs(fd), np.abs(value)])
        bad = np.abs(grad[:, j] - fd) > rtol * scale
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"The gradient of landscape {land.name!r} disagrees with finite differences of its value: "
                f"at x={pts[i].tolist()}, component {j}: grad={float(grad[i, j])!r}, finite difference={float(fd[i])!r}. "
                "Check that the function writes dU/dx into 'grad' for every component."
            )


def landscape(
    func: Callable | None = None,
    *,
    dim: int | None = None,
    check: bool = True,
    check_points: Any = None,
    plot_bounds: Any = None,
):
    """Turn one Python function into a landscape class usable by every integrator.

    The function has the form ``f(x, grad, p1=default1, p2=default2, ...) -> U``: it reads the
    point ``x`` (1-D float array of length dim), writes the gradient into ``grad`` and returns the
    value. It must be in Numba's nopython subset. Keyword parameters (floats, with defaults)
    become the landscape's parameters: they are passed at run time, so changing them never
    recompiles.

    The gradient is checked against finite differences of the value at ``check_points`` (default:
    8 standard-normal points, seeded) with the default parameters, at the dimension of use: at
    definition for a fixed ``dim``, otherwise the first time the landscape is made with each
    ``dim=``. A wrong gradient, or an exception there (an out-of-range index included: the
    function is compiled with bounds checks), raises a :class:`~stochdyn._validation.ValidationError`
    saying where. In a run, an exception stops the run with :class:`~stochdyn.UserCodeError` naming
    the replica and step, and a non-finite value freezes the replica as diverged (see "Faults in
    your code" in the getting-started guide).

    Parameters
    ----------
    dim : int, optional
        Fixed dimension. If omitted, the dimension is given when the landscape is created
        (``MyLandscape(dim=3)``), and the check runs then, at that dimension.
    check : bool
        Run the finite-difference check (default True).
    check_points : array (n, dim), optional
        Where to check (use points inside the domain if U is not defined everywhere).
    plot_bounds : sequence of (low, high), optional
        Default plotting window.

    Returns
    -------
    type
        A :class:`Landscape` subclass named after the function; call it with parameter values
        (and ``dim=`` if not fixed) to get a landscape.

    Examples
    --------
    >>> @sd.landscapes.landscape(dim=1)                        # doctest: +SKIP
    ... def quartic(x, grad, a=1.0):
    ...     grad[0] = 4.0 * a * x[0] ** 3
    ...     return a * x[0] ** 4
    >>> land = quartic(a=2.0)                                  # doctest: +SKIP
    """

    def wrap(f: Callable) -> type[Landscape]:
        return _make_landscape_class(f, dim, check, check_points, plot_bounds)

    return wrap(func) if func is not None else wrap


def _make_landscape_class(f, fixed_dim, check, check_points, plot_bounds) -> type[Landscape]:
    name = f.__name__
    if fixed_dim is not None:
        fixed_dim = check_int("dim", fixed_dim, f"landscape {name!r}", ge=1)
    sig = inspect.signature(f)
    args = list(sig.parameters.values())
    if len(args) < 2 or any(a.kind not in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD) for a in args):
        raise ValidationError(
            f"A landscape function must have the form f(x, grad, p1=default, ...). {name!r} has signature {sig}."
        )
    params = args[2:]
    for p in params:
        if p.default is inspect.Parameter.empty:
            raise ValidationError(f"Parameter {p.name!r} of landscape {name!r} needs a numeric default value.")
        check_real(p.name, p.default, f"landscape {name!r}")
    pnames = [p.name for p in params]
    defaults = {p.name: float(p.default) for p in params}

    np_ = len(pnames)
    # dims already checked (None: no check); a fixed dimension is checked here, any other on first use
    checked: set[int] | None = set() if check else None
    cell = FaultCell("landscape", name, lambda a, b, c, d, e, k: f(a.copy(), np.zeros_like(a), *c[:np_]),
                     lambda a, b, c, d, e, k: {"x": a, **dict(zip(pnames, c[:np_].tolist()))})
    call_args = ", ".join(f"th[{i}]" for i in range(len(pnames)))
    more = ", " if pnames else ""
    src = textwrap.dedent(
        f"""
        def _block(xp, gp, vp, n, d, tp, nt):
            x = carray(xp, (n, d))
            g = carray(gp, (n, d))
            v = carray(vp, (n,))
            th = carray(tp, (nt,))
            for r in range(n):
                ok, u = _try(_user, (x[r], g[r]{more}{call_args}))
                if ok:
                    v[r] = u
                else:
                    v[r] = -np.inf
                    for i in range(d):
                        g[r, i] = np.nan
                    _note(_NOTE, (_CELL, ptr_at(xp, r * d), d, 1, tp, 0, tp, nt, tp, 0, 0.0, 0))

        def _columns(xp, gp, vp, n, d, ld, tp, nt):
            x = carray(xp, (d, ld))
            g = carray(gp, (d, ld))
            v = carray(vp, (n,))
            th = carray(tp, (nt,))
            for r in range(n):
                ok, u = _try(_user, (x[:, r], g[:, r]{more}{call_args}))
                if ok:
                    v[r] = u
                else:
                    v[r] = -np.inf
                    for i in range(d):
                        g[i, r] = np.nan
                    _note(_NOTE, (_CELL, ptr_at(xp, r), d, ld, tp, 0, tp, nt, tp, 0, 0.0, 0))

        def _value_row(x, d{more}{", ".join(f"p{i}" for i in range(len(pnames)))}):
            g = stack_scratch(d)
            return _user_inline(x, g{more}{", ".join(f"p{i}" for i in range(len(pnames)))})

        def _value_block(xp, gp, vp, n, d, tp, nt):
            x = carray(xp, (n, d))
            v = carray(vp, (n,))
            th = carray(tp, (nt,))
            for r in range(n):
                ok, u = _try(_value_row_c, (x[r], d{more}{call_args}))
                if ok:
                    v[r] = u
                else:
                    v[r] = -np.inf
                    _note(_NOTE, (_CELL, ptr_at(xp, r * d), d, 1, tp, 0, tp, nt, tp, 0, 0.0, 0))
        """
    )
    # The user function is compiled with bounds checks (an out-of-range index raises IndexError, which
    # the wrappers catch like any exception: see stochdyn/_faults.py). The value-only block (evolution,
    # populations) inlines it into a row function whose gradient row lives on its stack and is never
    # read, so that LLVM drops the gradient computation; exceptions are caught around that row function.
    # Columns and value-only blocks are compiled on first use.
    namespace: dict[str, Any] = {**wrapper_globals(cell), "_user": njit(boundscheck=_faults.BOUNDSCHECK)(f),
                                 "_user_inline": njit(inline="always")(f), "stack_scratch": stack_scratch}
    exec(src, namespace)
    namespace["_value_row_c"] = njit(boundscheck=_faults.BOUNDSCHECK)(namespace["_value_row"])
    try:
        block = cfunc(LANDSCAPE_BLOCK_SIG)(namespace["_block"])
    except Exception as exc:
        short = _numba_reason(exc)
        raise ValidationError(
            f"Landscape {name!r} could not be compiled by Numba (it must use Numba's nopython subset and "
            f"return a float): {short}"
        ) from None

    def __init__(self, dim: int | None = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(pnames)
        if unknown:
            raise ValidationError(
                f"Unknown parameter(s) {sorted(unknown)} for landscape {name!r}; its parameters are {pnames}."
            )
        if fixed_dim is not None:
            if dim is not None and check_int("dim", dim, name, ge=1) != fixed_dim:
                raise ValidationError(f"The 'dim' parameter of {name} must be {fixed_dim}. Got {dim}.")
            d = fixed_dim
        else:
            if dim is None:
                raise ValidationError(f"Landscape {name!r} has no fixed dimension: pass dim=, e.g. {name}(dim=2).")
            d = check_int("dim", dim, name, ge=1)
        values = {k: check_real(k, kwargs.get(k, defaults[k]), name) for k in pnames}
        Landscape.__init__(self, d, np.array([values[k] for k in pnames]), values)
        cell.reserve(d + self.theta.size)
        if checked is not None and d not in checked:  # the definition check, at the dimension of use
            checked.add(d)
            try:
                _definition_check(type(self)(dim=d), check_points)
            except BaseException:
                checked.discard(d)
                raise

    def value_and_grad(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        with guard(cell, "when evaluated"):
            return Landscape.value_and_grad(self, x)

    def __reduce__(self):
        # the class is made at run time: rebuild it on the other side from the Python function
        # (cloudpickle, which Dask uses, ships a function defined in a script by value)
        return (_rebuild, (f, fixed_dim, plot_bounds, self.dim, self.params))

    attrs: dict[str, Any] = {
        "__init__": __init__,
        "__reduce__": __reduce__,
        "__doc__": f.__doc__ or f"User landscape {name!r} (parameters: {', '.join(pnames) or 'none'}).",
        "__module__": getattr(f, "__module__", __name__),
        "_block": block,
        # by coordinate, for the Langevin kernels: compiled on first use (the point is a strided view,
        # so the loop over points can vectorise when the function is simple)
        "_columns": LazyCFunc(namespace["_columns"], LANDSCAPE_COLUMNS_SIG, cache=False),
        "_value_block": LazyCFunc(namespace["_value_block"], cache=False),
        "param_names": tuple(pnames),
        "defaults": dict(defaults),
        "python_function": staticmethod(f),
        "fault_cell": cell,
        "value_and_grad": value_and_grad,
    }
    if plot_bounds is not None:
        attrs["plot_bounds"] = tuple(tuple(float(v) for v in b) for b in plot_bounds)
    cls = type(name, (Landscape,), attrs)
    register(cls)

    if check and fixed_dim is not None:
        try:
            cls()  # checks at the fixed dimension
        except BaseException:
            LANDSCAPES_REMOVE(name)
            raise
    return cls


def _definition_check(probe: Landscape, check_points: Any) -> None:
    """The gradient check of a new user landscape at ``probe``'s dimension (default parameters)."""
    name, d = probe.name, probe.dim
    if check_points is None:
        pts = np.random.default_rng(20261128).normal(size=(8, d))
    else:
        pts = np.atleast_2d(np.asarray(check_points, dtype=np.float64))
        if pts.ndim != 2 or pts.shape[-1] != d:
            raise ValidationError(f"The 'check_points' of landscape {name!r} must have shape (n, {d}) for dim {d}. "
                                  f"Got {pts.shape}.")
    try:
        check_gradient(probe, pts)
    except UserCodeError as exc:
        raise ValidationError(f"{exc.what} in its definition check at dim {d}: it must run at every point of "
                              f"dimension {d} without raising (return inf or NaN where U is undefined).") from None
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(
            f"Landscape {name!r} failed when evaluated (it must use Numba's nopython subset): {_numba_reason(exc)}"
        ) from None


def _rebuild(f, fixed_dim, plot_bounds, dim, params):
    """Unpickle a user landscape: reuse its registered class, or make it again (unchecked)."""
    from .base import LANDSCAPES

    cls = LANDSCAPES.get(f.__name__)
    if cls is None or getattr(cls, "python_function", None) is not f:
        cls = _make_landscape_class(f, fixed_dim, False, None, plot_bounds)
    return cls(dim=dim, **params)


def LANDSCAPES_REMOVE(name: str) -> None:
    from .base import LANDSCAPES

    LANDSCAPES.pop(name, None)


def _numba_reason(exc: Exception) -> str:
    """The informative line of a Numba compilation error (ANSI colours, pipeline noise and the layers
    added by the fault wrapper's ``try_call`` removed)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("<intrinsic try_call>" in ln for ln in lines):  # the user function failed inside the wrapper's call
        noise = ("No implementation of function", "There are ", "- Of which", "Intrinsic in function", "With argument",
                 "Rejected as the implementation", "TypingError: Failed in nopython", ">>> ", "raised from ")
        lines = [ln for ln in lines if not ln.startswith(noise)]
    for ln in lines:
        if not ln.startswith(("Failed in nopython", "During:", "File ", "<source", "^")):
            return ln
    return lines[0] if lines else repr(exc)
