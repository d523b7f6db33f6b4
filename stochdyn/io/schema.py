"""The Dataset layout every stochdyn run returns (names are part of the public contract).

Dimensions: ``replica``, ``time``, ``dim`` (and ``individual`` for populations). Coordinates:
``replica`` (global replica id), ``time`` (float; step*dt for Langevin, the step for SGD, the
generation for populations), ``step`` (int, along ``time``; indexed too, so ``ds.sel(step=700)``
works beside ``ds.sel(time=0.7)``), ``dim``. Variables carry ``long_name`` and ``units`` (UDUNITS
strings, ``"1"`` for counts such as generations, as CF requires). Global attributes hold the integrator and target as JSON (``integrator``,
``target``), each scalar parameter flattened (``integrator_dt``, ``target_barrier``, ...), the run
arguments, the seed (``seed``, ``seed_spawn_key``) and the versions of stochdyn, NumPy, Numba and
Python, and the CF provenance attributes ``history`` (the call or command line) and ``source``
(``references`` and ``comment`` come from a model card's ``reference`` and ``description``).
netCDF cannot store bool or dict attributes, so nested values are JSON strings.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from decimal import Decimal
from typing import Any, Iterable

import numpy as np
import pandas as pd
import xarray as xr
from xarray.indexes import PandasIndex

from .._version import __version__

__all__ = ["build_dataset", "run_attrs", "run_info", "step_times", "cf_units", "DIM_NAMES"]

#: the dimension names of a run's Dataset (code and checks address dimensions by name, never by position)
DIM_NAMES = ("replica", "time", "dim", "individual")
_INDEX_NAMES = {"dim": "coordinate index", "individual": "individual index"}
#: unit words that are counts, not UDUNITS units: stored as "1" (the word stays in the long name)
_COUNT_UNITS = {"generation", "generations", "step", "steps", "count", "evaluations"}


def cf_units(units: str) -> str:
    """A CF/UDUNITS-valid units string: counts such as ``"generation"`` become ``"1"``."""
    return "1" if units.strip().lower() in _COUNT_UNITS else units


def step_times(steps: np.ndarray, dt: float) -> np.ndarray:
    r"""Times ``step * dt`` exact to the decimal a user types: the double nearest to the exact product
    of the step and the decimal ``dt`` as written (its shortest repr).

    ``np.arange(n) * 0.01`` gives ``0.7000000000000001`` at step 70, so ``ds.sel(time=0.7)`` fails.
    Here ``dt = m / 10^e`` exactly as decimals (``0.01 = 1 / 10^2``), ``step * m`` is an exact
    integer and one IEEE division by the exact ``10^e`` rounds ``step * m / 10^e`` correctly, i.e. to
    ``float("0.70")``. Outside that exact range (``step * m >= 2^53`` or ``e > 22``) each time is
    rounded from Python's ``Decimal`` arithmetic instead, with the same result.
    """
    steps = np.asarray(steps, dtype=np.int64)
    d = Decimal(repr(float(dt)))
    _, digits, exp = d.as_tuple()
    m = int("".join(map(str, digits)) or "0") * (10 ** exp if isinstance(exp, int) and exp > 0 else 1)
    e = -exp if isinstance(exp, int) and exp < 0 else 0
    top = int(steps.max(initial=0))
    if e <= 22 and top * m < 2**53:
        return (steps * m).astype(np.float64) / float(10 ** e)
    return np.array([float(Decimal(int(k)) * d) for k in steps], dtype=np.float64)


def _flatten(prefix: str, params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k == "type" or v is None:
            continue
        if isinstance(v, bool):
            out[f"{prefix}_{k}"] = int(v)
        elif isinstance(v, (int, float, str, np.integer, np.floating)):
            out[f"{prefix}_{k}"] = v.item() if isinstance(v, np.generic) else v
    return out


def run_attrs(integrator: Any, target: Any, run: dict[str, Any], seed_attrs: dict[str, str]) -> dict[str, Any]:
    """Global attributes of a run: everything needed to trace and repeat it."""
    import numba

    integ = integrator.to_dict()
    targ = target.to_dict()
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs: dict[str, Any] = {
        "title": f"stochdyn: {integ['type']} on {targ['type']}",
        "stochdyn_version": __version__,
        "integrator": json.dumps(integ),
        "target": json.dumps(targ),
        "run": json.dumps(run),
        **seed_attrs,
        **_flatten("integrator", integ),
        **_flatten("target", targ),
        **{k: v for k, v in run.items() if isinstance(v, (int, float, str))},
        "family": getattr(integrator, "family", ""),
        "created": created,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "python_version": platform.python_version(),
        "Conventions": "CF-1.8",
        "source": f"stochdyn {__version__} ensemble simulation: {integ['type']} on {targ['type']}",
        "history": (f"{created}: stochdyn.simulate({integ['type']}, {targ['type']}, n_replicas={run.get('n_replicas')}, "
                    f"n_steps={run.get('n_steps')}, record_every={run.get('record_every')}, seed={seed_attrs.get('seed')})"),
    }
    return attrs


def run_info(ds: xr.Dataset) -> dict[str, Any]:
    """Parse a Dataset's provenance attributes back into dictionaries.

    Returns ``{"integrator": {...}, "target": {...}, "run": {...}, "seed": ..., "stochdyn_version": ...}``.
    """
    a = ds.attrs
    return {
        "integrator": json.loads(a.get("integrator", "{}")),
        "target": json.loads(a.get("target", "{}")),
        "run": json.loads(a.get("run", "{}")),
        "seed": json.loads(a["seed"]) if "seed" in a else None,
        "seed_spawn_key": json.loads(a.get("seed_spawn_key", "[]")),
        "stochdyn_version": a.get("stochdyn_version"),
    }


def fast_variable(dims: tuple | str, values: np.ndarray, attrs: dict[str, Any]) -> xr.Variable:
    """``xr.Variable(dims, values, attrs=attrs)`` for a plain NumPy array (or a dask placeholder) already
    in its final dtype, made with ``fastpath=True``: xarray then skips its checks for other array types,
    which import ``dask.array`` when dask is installed (~0.3 s of the first run in a process, more than
    everything else a cached run costs; docs/design.md)."""
    return xr.Variable(dims, values, attrs=attrs, fastpath=True)


def build_dataset(
    variables: Iterable[Any],
    data: dict[str, np.ndarray],
    replica_ids: np.ndarray,
    steps: np.ndarray,
    times: np.ndarray,
    time_long_name: str,
    time_units: str,
    diverged_step: np.ndarray,
    attrs: dict[str, Any],
    extra: dict[str, xr.Variable] | None = None,
) -> xr.Dataset:
    """Assemble the Dataset from recorded arrays ``data[name]`` of shape ``(replica, time, *var.shape)``.

    Variables are made with :func:`fast_variable` (the arrays are plain NumPy arrays, or the dask
    placeholders of a store template, already in their final dtype) and the coordinates' indexes
    from ``pandas.Index`` objects: xarray then skips its checks for other array types, which import
    ``dask.array`` when dask is installed. The Dataset is the same. ``extra``: more per-replica
    variables (the stopping rule's), made the same way.
    """
    data_vars: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for var in variables:
        dims = ("replica", "time") + tuple(var.dims)
        data_vars[var.name] = fast_variable(dims, data[var.name],
                                            {"long_name": var.long_name, "units": cf_units(var.units)})
        sizes.update(zip(var.dims, var.shape))
    data_vars["diverged"] = fast_variable(
        ("replica",), diverged_step >= 0, {"long_name": "replica became non-finite and was frozen", "units": "1"}
    )
    data_vars["diverged_step"] = fast_variable(
        ("replica",), diverged_step.astype(np.int64),
        {"long_name": "step at which the replica became non-finite (-1: never)", "units": "1"},
    )
    coords: dict[str, Any] = {
        "replica": fast_variable(("replica",), np.asarray(replica_ids, dtype=np.int64),
                                 {"long_name": "replica id", "units": "1"}),
        "time": fast_variable(("time",), np.asarray(times, dtype=np.float64),
                              {"long_name": time_long_name, "units": cf_units(time_units)}),
        "step": fast_variable(("time",), np.asarray(steps, dtype=np.int64), {"long_name": "step", "units": "1"}),
    }
    for name, size in sizes.items():
        coords[name] = fast_variable((name,), np.arange(size, dtype=np.int64),
                                     {"long_name": _INDEX_NAMES.get(name, f"{name} index"), "units": "1"})
    indexes = {name: PandasIndex(pd.Index(v.values, name=name), v.dims[0]) for name, v in coords.items()}
    ds = xr.Dataset(data_vars, coords=xr.Coordinates(coords, indexes=indexes), attrs=attrs)
    if extra:
        for k, v in extra.items():
            ds[k] = v
    return ds
