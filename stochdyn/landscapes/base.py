"""The :class:`Landscape` base class: a potential U(x) on R^d with its gradient.

A landscape has two faces that share one formula:

* a compiled block function (a ``numba.cfunc`` with the fixed signature
  :data:`stochdyn._numba_utils.LANDSCAPE_BLOCK_SIG`) that kernels call on blocks of replicas, with the
  landscape's parameters passed at run time in the float vector ``theta`` — so each integrator
  kernel compiles once for every landscape, and changing parameters never recompiles;
* the same function on blocks stored by coordinate (:data:`~stochdyn._numba_utils.LANDSCAPE_COLUMNS_SIG`,
  :attr:`Landscape.compiled_columns`), which Langevin kernels call: a loop over the points of a
  block is then contiguous and vectorises;
* NumPy-vectorised :meth:`Landscape.value`, :meth:`Landscape.grad` and
  :meth:`Landscape.value_and_grad` over the leading axes of ``x`` (shape ``(..., dim)``), which call
  the same compiled function.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from .._numba_utils import eval_block
from .._repr import HTMLRepr
from .._validation import ValidationError, check_int

__all__ = ["Landscape", "LANDSCAPES", "register", "landscape_from_dict"]

#: name -> Landscape subclass, for specs and for rebuilding a landscape from Dataset attributes
LANDSCAPES: dict[str, type["Landscape"]] = {}

_LandscapeType = TypeVar("_LandscapeType", bound=type["Landscape"])


def register(cls: _LandscapeType) -> _LandscapeType:
    """Class decorator: make a landscape class available to specs under its class name (returns the
    class itself, so the decorated name keeps its own type)."""
    LANDSCAPES[cls.__name__] = cls
    return cls


class Landscape(HTMLRepr):  # HTMLRepr: a table of the parameters in notebooks
    """A potential energy U: R^dim -> R with gradient, usable by every stochdyn integrator.

    Subclasses set the class attribute ``_block`` (the compiled block function), optionally
    ``_columns`` (the same by coordinate; if absent, one is generated that calls ``_block`` point by
    point), and call ``super().__init__(dim, theta, params)`` with the parameter vector they read.
    Temperatures elsewhere in stochdyn are in the units of U (k_B = 1).
    """

    _block: ClassVar[Any] = None
    _columns: ClassVar[Any] = None
    #: optional block function with the same signature that writes only U (the gradient slot is
    #: scratch); evolution and population methods call it through :attr:`compiled_value`
    _value_block: ClassVar[Any] = None
    #: the columns function generated from ``_block`` (set per class on first use, see compiled_columns)
    _columns_generated: ClassVar[Any]
    #: default plotting window, one (low, high) pair per shown coordinate
    plot_bounds: tuple[tuple[float, float], ...] = ((-2.0, 2.0), (-2.0, 2.0))

    def __init__(self, dim: int, theta: npt.ArrayLike, params: dict[str, Any]) -> None:
        self._dim = check_int("dim", dim, type(self).__name__, ge=1)
        theta = np.ascontiguousarray(theta, dtype=np.float64).ravel()
        if theta.size == 0:  # keep a valid pointer for parameter-free landscapes
            theta = np.zeros(1)
        theta.setflags(write=False)
        self._theta = theta
        self._params = dict(params)

    # -- identity -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension of the configuration space."""
        return self._dim

    @property
    def name(self) -> str:
        """The landscape's type name."""
        return type(self).__name__

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the landscape was built with (a copy)."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._params.items()}

    @property
    def theta(self) -> np.ndarray:
        """Read-only float vector of parameters, as the compiled block function reads them."""
        return self._theta

    @property
    def compiled(self) -> Any:
        """The compiled block function (``numba.cfunc``) kernels call (compiled on first use)."""
        block = type(self)._block
        return block.get() if hasattr(block, "get") else block

    @property
    def compiled_columns(self) -> Any:
        """The compiled block function on points stored by coordinate (``LANDSCAPE_COLUMNS_SIG``)."""
        # the columns function belongs with the block function of the same class (a subclass that
        # replaces ``_block`` and not ``_columns`` gets the generated one, never its parent's)
        owner = next(c for c in type(self).__mro__ if issubclass(c, Landscape) and "_block" in c.__dict__)
        block = owner.__dict__.get("_columns")
        if block is not None:
            try:
                return block.get() if hasattr(block, "get") else block
            except Exception:  # a user function that Numba cannot compile on strided points:
                owner._columns = None  # use the generated one from now on
        if owner.__dict__.get("_columns_generated") is None:
            owner._columns_generated = _columns_from_block(self.compiled)
        return owner.__dict__["_columns_generated"]

    @property
    def compiled_value(self) -> Any:
        """A compiled block function of the same signature that writes U only (the gradient slot is
        used as scratch), for methods that never read the gradient (evolution strategies,
        populations); the full :attr:`compiled` block when the landscape has no value-only one."""
        block = type(self)._value_block or type(self)._block
        return block.get() if hasattr(block, "get") else block

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready description: ``{"type": name, "dim": dim, **params}``."""
        out: dict[str, Any] = {"type": self.name, "dim": self.dim}
        for k, v in self._params.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.to_dict().items() if k != "type")
        return f"{self.name}({shown})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Landscape)  # implied by the next line; narrows ``other`` for type checkers
            and type(other) is type(self)
            and other.dim == self.dim
            and np.array_equal(other.theta, self.theta)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.dim, self.theta.tobytes()))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # cfuncs do not pickle; rebuild from the description on the other side (Dask workers)
        return (landscape_from_dict, (self.to_dict(),))

    # -- evaluation -------------------------------------------------------------------------
    def _as_points(self, x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValidationError(
                f"{self.name} has dim={self.dim}: 'x' must have shape (..., {self.dim}). Got shape {arr.shape}."
            )
        lead = arr.shape[:-1]
        return np.ascontiguousarray(arr.reshape(-1, self.dim)), lead

    def value_and_grad(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """U(x) and grad U(x) for points ``x`` of shape ``(..., dim)``: shapes ``(...)`` and ``(..., dim)``."""
        pts, lead = self._as_points(x)
        grad = np.empty_like(pts)
        value = np.empty(pts.shape[0])
        eval_block(self.compiled, self._theta, pts, grad, value)
        return value.reshape(lead), grad.reshape(lead + (self.dim,))

    def value(self, x: Any) -> np.ndarray:
        """U(x) for points of shape ``(..., dim)``; returns shape ``(...)``."""
        return self.value_and_grad(x)[0]

    def grad(self, x: Any) -> np.ndarray:
        """grad U(x) for points of shape ``(..., dim)``; returns shape ``(..., dim)``."""
        return self.value_and_grad(x)[1]

    def hessian(self, x: Any, eps: float = 1e-5) -> np.ndarray:
        """Hessian by central differences of the gradient, shape ``(..., dim, dim)``.

        Used for stability hints (the largest curvature bounds the stable step) and for theory in
        quadratic basins; exact for quadratics up to rounding.
        """
        pts, lead = self._as_points(x)
        d = self.dim
        hess = np.empty((pts.shape[0], d, d))
        for j in range(d):
            h = eps * np.maximum(1.0, np.abs(pts[:, j]))
            xp = pts.copy()
            xm = pts.copy()
            xp[:, j] += h
            xm[:, j] -= h
            hess[:, :, j] = (self.grad(xp) - self.grad(xm)) / (2.0 * h)[:, None]
        hess = 0.5 * (hess + np.swapaxes(hess, 1, 2))
        return hess.reshape(lead + (d, d))


_COLUMNS_FROM_BLOCK = """
def _columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    xr = np.empty((1, d))
    gr = np.empty((1, d))
    vr = np.empty(1)
    for r in range(n):
        for i in range(d):
            xr[0, i] = x[i, r]
        _block(row_ptr(xr, 0), row_ptr(gr, 0), row_ptr(vr, 0), 1, d, tp, nt)
        v[r] = vr[0]
        for i in range(d):
            g[i, r] = gr[0, i]
"""


def _columns_from_block(block: Any) -> Any:
    """A columns function for a landscape class that only defines the row block function: it copies
    each point into a row and calls ``block`` on it (correct, slower; compiled once per class and
    process). Built-in landscapes define their own."""
    from numba import carray, cfunc

    from .._numba_utils import LANDSCAPE_COLUMNS_SIG, row_ptr

    namespace: dict[str, Any] = {"carray": carray, "np": np, "row_ptr": row_ptr, "_block": block}
    exec(_COLUMNS_FROM_BLOCK, namespace)
    return cfunc(LANDSCAPE_COLUMNS_SIG)(namespace["_columns"])


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        arr = np.asarray(v)
        return np.array2string(arr, threshold=6, precision=4, separator=", ", max_line_width=10**6).replace("\n", "")
    return repr(v)


def landscape_from_dict(spec: dict[str, Any]) -> Landscape:
    """Rebuild a landscape from :meth:`Landscape.to_dict` output (or a spec table).

    Raises a :class:`~stochdyn._validation.ValidationError` naming the unknown type or key.
    """
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in LANDSCAPES:
        known = ", ".join(sorted(LANDSCAPES))
        raise ValidationError(f"Unknown landscape type {kind!r}; known types: {known}.")
    cls = LANDSCAPES[kind]
    try:
        return cls(**spec)
    except TypeError as exc:
        raise ValidationError(f"Bad parameters for landscape {kind}: {exc}") from None
