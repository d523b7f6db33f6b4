"""Up-front validation of public arguments.

Every public entry point checks its arguments here before any kernel runs, so a bad value is
reported with the name of the argument, the value given and what is allowed, in the style
"The 'dt' parameter of EulerMaruyama must be > 0. Got -1.", instead of a traceback from inside
Numba or, worse, a silently wrong result.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "ValidationError",
    "check_real",
    "check_int",
    "check_bool",
    "check_choice",
    "check_array",
    "check_spd",
]


class ValidationError(ValueError):
    """A public argument is out of its allowed range or of the wrong type.

    Subclasses :class:`ValueError`, so ``except ValueError`` keeps working.
    """


_OPS = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}


def _who(name: str, owner: str | None) -> str:
    return f"The '{name}' parameter of {owner}" if owner else f"The '{name}' parameter"


def _fmt(value: Any) -> str:
    """The value as shown after "Got": Python reprs (``-1.0``, not NumPy's ``-1.`` that reads as a
    sentence end before the final full stop)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return repr(value.item())
        return np.array2string(value, threshold=8, precision=6, floatmode="maxprec_equal").replace(".]", ".0]").replace(". ", ".0 ")
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def _bounds_text(bounds: Mapping[str, float]) -> str:
    return " and ".join(f"{_OPS[k][1]} {v!r}" for k, v in bounds.items())


@overload
def check_real(name: str, value: Any, owner: str | None = None, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None, le: float | None = None, allow_none: Literal[False] = False) -> float: ...
@overload
def check_real(name: str, value: Any, owner: str | None = None, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None, le: float | None = None, allow_none: bool) -> float | None: ...
def check_real(
    name: str,
    value: Any,
    owner: str | None = None,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    allow_none: bool = False,
) -> float | None:
    """Check that ``value`` is a finite real number within the given bounds and return it as float."""
    if value is None and allow_none:
        return None
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"{_who(name, owner)} must be a real number"
            + (f" {_bounds_text(bounds)}" if bounds else "")
            + f". Got {_fmt(value)} of type {type(value).__name__}."
        )
    v = float(value)
    if not np.isfinite(v):
        raise ValidationError(f"{_who(name, owner)} must be finite. Got {_fmt(value)}.")
    for key, bound in bounds.items():
        op, sym = _OPS[key]
        if not op(v, bound):
            raise ValidationError(f"{_who(name, owner)} must be {_bounds_text(bounds)}. Got {_fmt(value)}.")
    return v


@overload
def check_int(name: str, value: Any, owner: str | None = None, *, ge: int | None = None, gt: int | None = None,
              le: int | None = None, lt: int | None = None, allow_none: Literal[False] = False) -> int: ...
@overload
def check_int(name: str, value: Any, owner: str | None = None, *, ge: int | None = None, gt: int | None = None,
              le: int | None = None, lt: int | None = None, allow_none: bool) -> int | None: ...
def check_int(
    name: str,
    value: Any,
    owner: str | None = None,
    *,
    ge: int | None = None,
    gt: int | None = None,
    le: int | None = None,
    lt: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Check that ``value`` is an integer (not bool, not float) within bounds and return it as int."""
    if value is None and allow_none:
        return None
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValidationError(
            f"{_who(name, owner)} must be an integer"
            + (f" {_bounds_text(bounds)}" if bounds else "")
            + f". Got {_fmt(value)} of type {type(value).__name__}."
        )
    v = int(value)
    for key, bound in bounds.items():
        op, _ = _OPS[key]
        if not op(v, bound):
            raise ValidationError(f"{_who(name, owner)} must be {_bounds_text(bounds)}. Got {_fmt(value)}.")
    return v


def check_bool(name: str, value: Any, owner: str | None = None) -> bool:
    """Check that ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValidationError(f"{_who(name, owner)} must be True or False. Got {_fmt(value)}.")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[Any], owner: str | None = None) -> Any:
    """Check that ``value`` is one of ``choices``."""
    if value not in tuple(choices):
        allowed = ", ".join(repr(c) for c in choices)
        raise ValidationError(f"{_who(name, owner)} must be one of {allowed}. Got {_fmt(value)}.")
    return value


def check_array(
    name: str,
    value: Any,
    owner: str | None = None,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple[int | None, ...] | None = None,
    dtype: type = np.float64,
    finite: bool = True,
    gt: float | None = None,
    ge: float | None = None,
    min_size: int = 0,
) -> npt.NDArray[Any]:
    """Convert ``value`` to a C-contiguous array of ``dtype`` and check its shape and entries.

    ``shape`` may contain ``None`` for "any length". Elementwise bounds ``gt``/``ge`` apply to every
    entry. Returns a fresh contiguous copy, so later changes to the caller's array cannot leak in.
    """
    try:
        arr: npt.NDArray[Any] = np.array(value, dtype=dtype, copy=True, order="C")
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{_who(name, owner)} must be convertible to an array of {np.dtype(dtype).name}. "
            f"Got {_fmt(value)} ({exc})."
        ) from None
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in ndims:
            want = " or ".join(str(n) for n in ndims)
            raise ValidationError(f"{_who(name, owner)} must be a {want}-dimensional array. Got shape {arr.shape}.")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValidationError(f"{_who(name, owner)} must have shape {want}. Got shape {arr.shape}.")
    if arr.size < min_size:
        raise ValidationError(f"{_who(name, owner)} must have at least {min_size} entries. Got {arr.size}.")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValidationError(f"{_who(name, owner)} must contain only finite values. Got {_fmt(arr)}.")
    for key, bound in (("gt", gt), ("ge", ge)):
        if bound is not None:
            op, sym = _OPS[key]
            bad = ~op(arr, bound)
            if np.any(bad):
                raise ValidationError(
                    f"{_who(name, owner)} must have every entry {sym} {bound!r}. Got {_fmt(value if np.ndim(value) else arr)}."
                )
    return arr


def check_spd(name: str, value: Any, owner: str | None = None, *, dim: int | None = None) -> npt.NDArray[np.float64]:
    """Check that ``value`` is a symmetric positive-definite matrix (optionally of size ``dim``)."""
    arr = check_array(name, value, owner, ndim=2)
    if arr.shape[0] != arr.shape[1] or (dim is not None and arr.shape[0] != dim):
        want = f"({dim}, {dim})" if dim is not None else "square"
        raise ValidationError(f"{_who(name, owner)} must be a {want} matrix. Got shape {arr.shape}.")
    scale = max(1.0, float(np.max(np.abs(arr))))
    if not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValidationError(f"{_who(name, owner)} must be symmetric. Got {_fmt(arr)}.")
    try:
        np.linalg.cholesky(arr)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(arr)
        raise ValidationError(
            f"{_who(name, owner)} must be positive definite. Got a matrix with smallest eigenvalue {eig[0]:.6g}."
        ) from None
    return 0.5 * (arr + arr.T)
