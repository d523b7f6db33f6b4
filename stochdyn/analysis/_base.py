"""The one convention every estimator follows, and small helpers shared by the analysis modules.

Every estimator returns an :class:`xarray.Dataset` with two variables of the same dimensions:

* ``value`` — the estimate, labelled with the coordinates of the input that were not reduced;
* ``standard_error`` — its Monte Carlo standard error;

plus, where useful, further variables (``ci_low``/``ci_high``, ``n_effective``, ``window``, ...)
and attributes ``long_name``, ``units``, ``estimator`` (what was computed, with its formula) and
``method`` (how the standard error was obtained). Statistical tests return ``statistic`` and
``p_value`` instead. Nothing is computed eagerly that need not be: on Dask-backed input the
result is lazy as well (call ``.compute()``), except where the size of the output depends on the
data (passage events), which is said in the function's docstring.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, cast

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int

__all__ = ["estimate", "summary"]


def estimate(value: Any, standard_error: Any, *, long_name: str, units: str = "1", estimator: str = "",
             method: str = "", **extra: Any) -> xr.Dataset:
    """Assemble an estimate Dataset (``value``, ``standard_error`` and any ``extra`` variables).

    ``value`` and ``standard_error`` may be DataArrays (their coordinates are kept) or scalars.
    """
    value = value if isinstance(value, xr.DataArray) else xr.DataArray(value)
    se = standard_error if isinstance(standard_error, xr.DataArray) else xr.DataArray(standard_error)
    attrs = {"long_name": long_name, "units": units}
    data = {"value": value.rename(None).assign_attrs(attrs),
            "standard_error": se.rename(None).assign_attrs(long_name=f"standard error of {long_name}", units=units)}
    for k, v in extra.items():
        data[k] = v if isinstance(v, xr.DataArray) else xr.DataArray(v)
    ds = xr.Dataset(data)
    ds.attrs.update(long_name=long_name, units=units, estimator=estimator, method=method)
    return ds


def summary(est: xr.Dataset, digits: int = 2) -> str:
    """One line ``"value ± standard_error"`` for a scalar estimate, rounded to ``digits`` significant
    digits of the standard error (e.g. ``"0.5012 ± 0.0031"``)."""
    v = float(est["value"])
    s = float(est["standard_error"])
    if not np.isfinite(s) or s <= 0:
        return f"{v:.6g} ± {s:.2g}"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(s))))
    return f"{v:.{decimals}f} ± {s:.{decimals}f}"


# -- shared helpers -------------------------------------------------------------------------
def select(obj: xr.Dataset | xr.DataArray, var: str | None, default: str | Iterable[str], owner: str) -> xr.DataArray:
    """The DataArray to analyse: ``obj`` itself, or ``obj[var]`` (first of ``default`` present if None)."""
    if isinstance(obj, xr.DataArray):
        return obj
    if not isinstance(obj, xr.Dataset):
        raise ValidationError(f"{owner} takes an xarray Dataset or DataArray. Got {type(obj).__name__}.")
    if var is None:
        names = [default] if isinstance(default, str) else list(default)
        found = [n for n in names if n in obj.data_vars]
        if not found:
            raise ValidationError(
                f"{owner} needs one of the variables {', '.join(map(repr, names))} (or 'var='); "
                f"the Dataset has {', '.join(map(repr, obj.data_vars))}."
            )
        var = found[0]
    if var not in obj.variables:
        raise ValidationError(f"The 'var' parameter of {owner} must name a variable of the Dataset. Got {var!r}; "
                              f"variables: {', '.join(map(repr, obj.data_vars))}.")
    return obj[var]


def check_dims(name: str, dims: Any, da: xr.DataArray, owner: str, *, default: Iterable[str] | None = None) -> tuple[str, ...]:
    """Validate a dimension name or sequence of names against ``da``; ``None`` gives ``default``
    (the present ones among them) or all of ``da.dims``."""
    if dims is None:
        # xarray types dimension names as Hashable; stochdyn names them with strings, and like a name
        # passed in ``dims`` any other hashable is passed through unchanged
        out = tuple(d for d in default if d in da.dims) if default is not None else cast(tuple[str, ...], tuple(da.dims))
    else:
        out = (dims,) if isinstance(dims, str) else tuple(dims)
    bad = [d for d in out if d not in da.dims]
    if bad:
        raise ValidationError(f"The '{name}' parameter of {owner} must name dimensions of the data {tuple(da.dims)}. "
                              f"Got {bad[0]!r}.")
    return out


def record_spacing(da: xr.DataArray, dim: str = "time") -> tuple[float, int, str]:
    """``(spacing of the time coordinate, spacing in integrator steps, time units)`` for uniform records."""
    n = da.sizes[dim]
    units = "1"
    if dim in da.coords and n > 1:
        t = np.asarray(da[dim].values, dtype=float)
        units = da[dim].attrs.get("units", "1")
        dt = np.diff(t)
        if not np.allclose(dt, dt[0], rtol=1e-6, atol=1e-12 * max(1.0, abs(t[-1]))):
            raise ValidationError(f"The '{dim}' coordinate must be uniformly spaced for lag-based estimators.")
        h = float(dt[0])
    else:
        h = 1.0
    steps = 1
    if "step" in da.coords and da["step"].dims == (dim,) and n > 1:
        steps = int(np.asarray(da["step"].values[1] - da["step"].values[0]))
    return h, steps, units


def check_burn_in(burn_in: Any, owner: str) -> Any:
    """``None``, ``"auto"`` or a number of records >= 0."""
    if burn_in is None or burn_in == "auto":
        return burn_in
    return check_int("burn_in", burn_in, owner, ge=0)


def run_parameter(ds: xr.Dataset | xr.DataArray, key: str, default: Any = None) -> Any:
    """A parameter of the integrator that made ``ds`` (from the ``integrator`` JSON attribute)."""
    raw = ds.attrs.get("integrator")
    if not raw:
        return default
    return json.loads(raw).get(key, default)


def landscape_of(ds: xr.Dataset | xr.DataArray, landscape: Any, owner: str) -> Any:
    """``landscape`` if given, else the target rebuilt from ``ds.attrs["target"]``."""
    if landscape is not None:
        if not hasattr(landscape, "grad"):
            raise ValidationError(f"The 'landscape' parameter of {owner} must have a grad(x) method. "
                                  f"Got {type(landscape).__name__}.")
        return landscape
    from ..landscapes import LANDSCAPES, landscape_from_dict

    raw = ds.attrs.get("target")
    if not raw:
        raise ValidationError(f"{owner} needs the landscape: pass landscape=... (the data carry no 'target' attribute).")
    spec = json.loads(raw)
    try:
        if spec.get("type") in LANDSCAPES:
            return landscape_from_dict(spec)
        from ..problems import problem_from_dict  # finite-sum problems of the SGD family

        return problem_from_dict(spec)
    except (ValidationError, ImportError) as exc:
        raise ValidationError(f"{owner} could not rebuild the target from the data's 'target' attribute ({exc}); "
                              "pass landscape=... explicitly.") from None


def constant_hessian(target: Any) -> np.ndarray | None:
    """The Hessian matrix of a quadratic target (``hessian_matrix``, or a ``hessian`` array), else None."""
    H = getattr(target, "hessian_matrix", None)
    if H is None and isinstance(getattr(target, "hessian", None), np.ndarray):
        H = target.hessian
    return None if H is None else np.atleast_2d(np.asarray(H, dtype=float))


def run_temperature(ds: xr.Dataset | xr.DataArray, temperature: Any, owner: str) -> float:
    """``temperature`` if given, else the integrator's scalar temperature from the attributes."""
    from .._validation import check_real

    if temperature is None:
        temperature = run_parameter(ds, "temperature")
        if isinstance(temperature, (list, tuple)) and len(set(temperature)) == 1:
            temperature = temperature[0]
        if not isinstance(temperature, (int, float)):
            raise ValidationError(f"{owner} needs 'temperature' (the data's integrator has no single temperature).")
    return check_real("temperature", temperature, owner, gt=0.0)


def sqrt(da: xr.DataArray) -> xr.DataArray:
    """``np.sqrt(da)``: xarray's ufunc dispatch returns a DataArray, which NumPy's stubs type as an ndarray."""
    return cast(xr.DataArray, np.sqrt(da))


def apply_points(func: Callable[[np.ndarray], np.ndarray], x: xr.DataArray, *, dim: str = "dim",
                 out_core: bool = False) -> xr.DataArray:
    """Apply ``func`` (points ``(..., d)`` -> ``(...)`` or ``(..., d)``) along ``dim``, lazily on Dask data."""
    return xr.apply_ufunc(
        func, x, input_core_dims=[[dim]], output_core_dims=[[dim]] if out_core else [[]],
        dask="parallelized", output_dtypes=[float],
    )
