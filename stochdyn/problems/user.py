"""Your own per-sample losses and augmentations, through decorators in the style of landscapes.

* :func:`per_sample_loss` turns ``f(theta, row, grad, p1=default, ...) -> loss`` into a
  :class:`~stochdyn.problems.base.Problem` class whose instances hold the data rows (the generated
  wrapper lets ``f`` write its gradient into the scratch vector and adds ``scale * grad`` to the
  kernel's sum, the accumulate contract of :data:`~stochdyn.problems._compiled.SAMPLE_SIG`);
* :func:`augmentation` turns ``f(row, out, z, p1=default, ...)`` into an augmentation usable by
  ``sd.Augmentation(copies=A, transform=...)``; ``z`` holds fresh standard normals drawn by the
  kernel from the replica's own stream.

A per-sample loss is compiled twice (per-sample and batch form, the same arithmetic); both are compiled once as cfuncs with the fixed signatures of :mod:`stochdyn.problems._compiled`
(not cached on disk: they have no source file; about 0.2 s each), so the SGD kernels never
recompile for them.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import cfunc, njit

from .. import _faults
from .._faults import FaultCell, UserCodeError, guard, wrapper_globals
from .._validation import ValidationError, check_array, check_int, check_real
from ..landscapes.user import _numba_reason, check_gradient
from ._compiled import AUGMENT_SIG, BATCH_SIG, SAMPLE_SIG, augment_rows, per_sample
from .base import Problem, register_problem

__all__ = ["per_sample_loss", "augmentation", "AugmentFunction", "check_sample_gradient", "AUGMENTATIONS"]

#: name -> augmentation factory made by :func:`augmentation`
AUGMENTATIONS: dict[str, Callable[..., "AugmentFunction"]] = {}


class _OneRow:
    """A per-sample loss at one data row, seen as a landscape in theta (for the shared gradient check)."""

    def __init__(self, problem: Problem, i: int):
        self.problem, self.row, self.dim = problem, np.ascontiguousarray(problem.rows[i:i + 1]), problem.dim
        self.name = f"{problem.name} (row {i})"

    def value_and_grad(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        pts = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        values, grads = np.empty(pts.shape[0]), np.empty_like(pts)
        loss, g = np.empty(1), np.empty((1, self.dim))
        with guard(getattr(self.problem, "fault_cell", None), "when evaluated"):
            for p, th in enumerate(pts):
                per_sample(self.problem.compiled, self.row, self.problem.hyper, np.ascontiguousarray(th), loss, g)
                values[p], grads[p] = loss[0], g[0]
        return values, grads

    def value(self, theta: Any) -> np.ndarray:
        return self.value_and_grad(theta)[0]


def check_sample_gradient(problem: Problem, thetas: Any = None, *, n_rows: int = 8, rtol: float = 1e-4) -> None:
    """Compare per-sample gradients with central finite differences of per-sample losses.

    Checks the first ``n_rows`` rows at ``thetas`` (default: 4 seeded standard-normal points) with
    :func:`stochdyn.landscapes.check_gradient` (each row's loss seen as a function of theta);
    raises ValidationError naming the row, the point and the component.
    """
    pts = np.random.default_rng(20261128).normal(size=(4, problem.dim)) if thetas is None else np.atleast_2d(thetas)
    for i in range(min(max(1, n_rows), problem.n)):
        check_gradient(_OneRow(problem, i), pts, rtol=rtol)


def _signature_params(f: Callable, n_fixed: int, kind: str, form: str) -> tuple[list[str], dict[str, float]]:
    name = f.__name__
    sig = inspect.signature(f)
    args = list(sig.parameters.values())
    if len(args) < n_fixed or any(a.kind not in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD) for a in args):
        raise ValidationError(f"A {kind} function must have the form {form}. {name!r} has signature {sig}.")
    params = args[n_fixed:]
    for p in params:
        if p.default is inspect.Parameter.empty:
            raise ValidationError(f"Parameter {p.name!r} of {kind} {name!r} needs a numeric default value.")
        check_real(p.name, p.default, f"{kind} {name!r}")
    return [p.name for p in params], {p.name: float(p.default) for p in params}


def _compile(f: Callable, src: str, sig: Any, kind: str, cell: FaultCell) -> Any:
    # the user function with bounds checks, called through try_call: an exception (an out-of-range index
    # included) writes non-finite outputs and is counted in ``cell`` (see stochdyn/_faults.py)
    namespace: dict[str, Any] = {**wrapper_globals(cell), "_user": njit(boundscheck=_faults.BOUNDSCHECK)(f)}
    exec(textwrap.dedent(src), namespace)
    try:
        return cfunc(sig)(namespace["_wrapper"])
    except Exception as exc:
        raise ValidationError(
            f"{kind.capitalize()} {f.__name__!r} could not be compiled by Numba (it must use Numba's nopython subset): "
            f"{_numba_reason(exc)}"
        ) from None


def _values(name: str, pnames: list[str], defaults: dict[str, float], kwargs: dict[str, Any], kind: str) -> dict[str, float]:
    unknown = set(kwargs) - set(pnames)
    if unknown:
        raise ValidationError(f"Unknown parameter(s) {sorted(unknown)} for {kind} {name!r}; its parameters are {pnames}.")
    return {k: check_real(k, kwargs.get(k, defaults[k]), name) for k in pnames}


def per_sample_loss(func: Callable | None = None, *, dim: int | None = None, check: bool = True):
    """Turn one per-sample loss function into a finite-sum problem class.

    The function has the form ``f(theta, row, grad, p1=default1, ...) -> loss``: it reads the
    parameters ``theta`` (length d) and one data row ``row``, writes
    :math:`\\nabla_\\theta\\ell` into ``grad`` (every component) and returns :math:`\\ell`. It must be in
    Numba's nopython subset. Keyword parameters (floats with defaults) become hyper-parameters
    passed at run time.

    The returned class is called as ``Cls(rows, weights=None, labels=None, dim=None,
    n_features=None, **params)`` with ``rows`` an ``(N, m)`` array; :math:`U=\\sum_i w_i\\ell_i`
    (default :math:`w_i = 1/N`). At construction the gradient is checked against finite
    differences on the first rows (``check=False`` skips it).

    Examples
    --------
    >>> @sd.problems.per_sample_loss(dim=2)                      # doctest: +SKIP
    ... def huber(theta, row, grad, delta=1.0):
    ...     r = theta[0] * row[0] + theta[1] - row[1]
    ...     if abs(r) <= delta:
    ...         grad[0] = r * row[0]; grad[1] = r
    ...         return 0.5 * r * r
    ...     s = delta if r > 0 else -delta
    ...     grad[0] = s * row[0]; grad[1] = s
    ...     return delta * (abs(r) - 0.5 * delta)
    >>> prob = huber(np.column_stack([x, y]), delta=0.5)          # doctest: +SKIP
    """

    def wrap(f: Callable) -> type[Problem]:
        return _make_problem_class(f, dim, check)

    return wrap(func) if func is not None else wrap


def _make_problem_class(f: Callable, fixed_dim: int | None, check: bool) -> type[Problem]:
    name = f.__name__
    if fixed_dim is not None:
        fixed_dim = check_int("dim", fixed_dim, f"per-sample loss {name!r}", ge=1)
    pnames, defaults = _signature_params(f, 3, "per-sample loss", "f(theta, row, grad, p1=default, ...) -> loss")
    args = ", ".join(f"h[{i}]" for i in range(len(pnames)))
    more = ", " if pnames else ""
    nparams = len(pnames)
    cell = FaultCell("per-sample loss", name,
                     lambda a, b, c, d, e, k: f(a.copy(), b.copy(), np.zeros_like(a), *c[:nparams]),
                     lambda a, b, c, d, e, k: {"theta": a, "row": b, **dict(zip(pnames, c[:nparams].tolist()))})
    # on a fault: loss -inf and gradient NaN, so the kernel freezes the replica at that step
    block = _compile(f, f"""
        def _wrapper(tp, d, rp, m, hp, nh, gp, scale, wp):
            h = carray(hp, (nh,))
            g = carray(gp, (d,))
            w = carray(wp, (d,))
            ok, loss = _try(_user, (carray(tp, (d,)), carray(rp, (m,)), w{more}{args}))
            if not ok:
                for k in range(d):
                    g[k] = np.nan
                _note(_NOTE, (_CELL, tp, d, 1, rp, m, hp, nh, hp, 0, 0.0, 0))
                return -np.inf
            for k in range(d):
                g[k] += scale * w[k]
            return loss
        """, SAMPLE_SIG, "per-sample loss", cell)
    batch = _compile(f, f"""
        def _wrapper(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp, acc):
            h = carray(hp, (nh,))
            th = carray(tp, (d,))
            data = carray(dp, (N, m))
            idx = carray(ip, (n,))
            coef = carray(cp, (n,))
            g = carray(gp, (d,))
            w = carray(wp, (d,))
            for j in range(n):
                c = coef[j]
                ok, loss = _try(_user, (th, data[idx[j]], w{more}{args}))
                if not ok:
                    for k in range(d):
                        g[k] = np.nan
                    _note(_NOTE, (_CELL, tp, d, 1, ptr_at(dp, idx[j] * m), m, hp, nh, hp, 0, 0.0, 0))
                    return -np.inf
                for k in range(d):
                    g[k] += c * w[k]
                acc += c * loss
            return acc
        """, BATCH_SIG, "per-sample loss", cell)

    def __init__(self, rows: Any, weights: Any = None, labels: Any = None, dim: int | None = None,
                 n_features: int | None = None, source: dict[str, Any] | None = None, **kwargs: Any) -> None:
        rows = check_array("rows", rows, name, ndim=2, min_size=1)
        if fixed_dim is not None:
            if dim is not None and check_int("dim", dim, name, ge=1) != fixed_dim:
                raise ValidationError(f"The 'dim' parameter of {name} must be {fixed_dim}. Got {dim}.")
            d = fixed_dim
        elif dim is None:
            raise ValidationError(f"Problem {name!r} has no fixed dimension: pass dim=, e.g. {name}(rows, dim=3).")
        else:
            d = check_int("dim", dim, name, ge=1)
        nf = None if n_features is None else check_int("n_features", n_features, name, ge=0, le=rows.shape[1])
        values = _values(name, pnames, defaults, kwargs, "per-sample loss")
        Problem.__init__(self, rows, d, [values[k] for k in pnames], values, weights=weights, labels=labels,
                         n_features=nf, source=source,
                         arrays={k: np.asarray(v) for k, v in (("rows", rows), ("weights", weights), ("labels", labels))
                                 if v is not None})
        cell.reserve(d + rows.shape[1] + len(pnames) + 1)
        if check:
            try:
                check_sample_gradient(self)
            except UserCodeError as exc:
                raise ValidationError(f"{exc.what} in its gradient check: it must run on every data row without "
                                      "raising (return inf or NaN where the loss is undefined).") from None

    def value_and_grad(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        with guard(cell, "when evaluated"):
            return Problem.value_and_grad(self, theta)

    def per_sample(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        with guard(cell, "when evaluated"):
            return Problem.per_sample(self, theta)

    cls = type(name, (Problem,), {
        "__init__": __init__,
        "__doc__": f.__doc__ or f"User problem {name!r} (hyper-parameters: {', '.join(pnames) or 'none'}).",
        "__module__": getattr(f, "__module__", __name__),
        "_sample": block,
        "_batch": batch,
        "_data_keys": ("rows",),
        "param_names": tuple(pnames),
        "defaults": dict(defaults),
        "python_function": staticmethod(f),
        "fault_cell": cell,
        "value_and_grad": value_and_grad,
        "per_sample": per_sample,
    })
    return register_problem(cls)


@dataclass(frozen=True, eq=False)
class AugmentFunction:
    """A compiled augmentation with its parameter values (made by :func:`augmentation`).

    ``n_normals``: how many standard normals the kernel draws per augmented copy (None: the row length);
    ``fault_cell``: where faults of the function are counted (:mod:`stochdyn._faults`).
    """

    name: str
    compiled: Any
    params: tuple[float, ...]
    param_names: tuple[str, ...]
    n_normals: int | None = None
    fault_cell: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, **dict(zip(self.param_names, self.params))}

    def check(self, problem: Problem, n_rows: int = 8) -> None:
        """Run the augmentation on the first ``n_rows`` rows of ``problem`` with seeded normals; a
        ValidationError if it raises there (an out-of-range index included): the check at definition,
        made when an integrator first meets the problem (the row length is known only then)."""
        rows = np.ascontiguousarray(problem.rows[:max(1, n_rows)])
        self.fault_cell.reserve(2 * rows.shape[1] + len(self.params) + 1)
        z = np.random.default_rng(20261128).normal(size=rows.shape)
        out = np.empty_like(rows)
        try:
            with guard(self.fault_cell):
                augment_rows(self.compiled, rows, np.arange(rows.shape[0]),
                             np.asarray(self.params or (0.0,), dtype=np.float64), z, out)
        except UserCodeError as exc:
            raise ValidationError(f"{exc.what} in its check on rows of {problem.name} (length {rows.shape[1]}): it "
                                  "must run on every row without raising.") from None


def augmentation(func: Callable | None = None, *, n_normals: int | None = None):
    """Turn ``f(row, out, z, p1=default, ...)`` into an augmentation factory.

    ``f`` writes an augmented copy of ``row`` into ``out`` using ``z`` (standard normals drawn by
    the kernel, ``n_normals`` of them, default the row length). Call the result with parameter values
    to get an :class:`AugmentFunction` for ``sd.Augmentation(copies=A, transform=...)``.

    Examples
    --------
    >>> @sd.problems.augmentation(n_normals=1)                  # doctest: +SKIP
    ... def scale_jitter(row, out, z, s=0.1):
    ...     for j in range(row.shape[0] - 1):
    ...         out[j] = row[j] * (1.0 + s * z[0])
    ...     out[row.shape[0] - 1] = row[row.shape[0] - 1]
    """

    def wrap(f: Callable) -> Callable[..., AugmentFunction]:
        name = f.__name__
        pnames, defaults = _signature_params(f, 3, "augmentation", "f(row, out, z, p1=default, ...)")
        args = ", ".join(f"p[{i}]" for i in range(len(pnames)))
        nparams = len(pnames)
        cell = FaultCell("augmentation", name,
                         lambda a, b, c, d, e, k: f(a.copy(), np.zeros_like(a), c.copy(), *d[:nparams]),
                         lambda a, b, c, d, e, k: {"row": a, "z": c, **dict(zip(pnames, d[:nparams].tolist()))})
        # on a fault: the augmented row is NaN, so the loss and the replica become non-finite at that step
        compiled = _compile(f, f"""
            def _wrapper(rp, m, zp, op, pp, npar):
                p = carray(pp, (npar,))
                out = carray(op, (m,))
                if not _try(_user, (carray(rp, (m,)), out, carray(zp, (m,)){", " if pnames else ""}{args})):
                    for j in range(m):
                        out[j] = np.nan
                    _note(_NOTE, (_CELL, rp, m, 1, rp, 0, zp, m, pp, npar, 0.0, 0))
            """, AUGMENT_SIG, "augmentation", cell)
        nn = None if n_normals is None else check_int("n_normals", n_normals, f"augmentation {name!r}", ge=0)

        def make(**kwargs: Any) -> AugmentFunction:
            values = _values(name, pnames, defaults, kwargs, "augmentation")
            return AugmentFunction(name, compiled, tuple(values[k] for k in pnames), tuple(pnames), nn, cell)

        make.__name__ = name
        make.__doc__ = f.__doc__
        AUGMENTATIONS[name] = make
        return make

    return wrap(func) if func is not None else wrap
