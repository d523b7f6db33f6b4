"""Estimates against a swept parameter, with the theory line: temperature against learning rate or
batch size, and any other estimate Dataset (``value``/``standard_error``) along a sweep dimension."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_choice
from ._util import axis_label, get_ax, plain_log_ticks

__all__ = ["temperature_scan"]

_PRETTY = {"lr": "learning rate $\\eta$", "batch_size": "batch size $B$", "temperature": "temperature $T$",
           "dt": "time step $\\Delta t$", "population_size": "population size $N$"}


def _x_label(est: xr.Dataset, x: str) -> str:
    attrs = est[x].attrs if x in est.coords else {}
    name = attrs.get("long_name", _PRETTY.get(x, x))
    return axis_label(name, attrs.get("units"))


def temperature_scan(est: xr.Dataset, x: str, *, hue: str | None = None, theory: Callable | xr.DataArray | None = None,
                     xscale: str = "log", yscale: str = "log", ylabel: str = "temperature $T$",
                     units: str | None = None, theory_label: str = "theory", ax: Any = None) -> Any:
    """Measured temperature (or any estimate) against a swept parameter, with error bars and theory.

    ``est`` holds ``value`` and ``standard_error`` along dimension ``x`` (e.g. ``"lr"``) and optionally
    ``hue`` (e.g. ``"batch_size"``: one colour per value) — the output of any stochdyn.analysis
    estimator on a sweep, or estimates concatenated along a new dimension. ``theory`` is a function
    ``f(x)`` (``f(x, h)`` with ``hue``) drawn as a dashed line on a fine grid, or a DataArray on the same
    coordinates. Error bars are ±1 standard error. Returns the Axes.
    """
    owner = "temperature_scan"
    if not isinstance(est, xr.Dataset) or "value" not in est or x not in est["value"].dims:
        raise ValidationError(f"{owner} takes an estimate Dataset with 'value' along dimension {x!r}.")
    check_choice("xscale", xscale, ("log", "linear"), owner)
    check_choice("yscale", yscale, ("log", "linear"), owner)
    extra = [d for d in est["value"].dims if d not in (x, hue)]
    if extra:
        raise ValidationError(f"{owner} draws curves along {x!r}" + (f" per {hue!r}" if hue else "") +
                              f": select the other dimensions {extra} first.")
    ax = get_ax(ax)
    hues = [None] if hue is None else list(est[hue].values)
    xv_all = np.asarray(est[x].values, dtype=float)
    fine = (np.geomspace(xv_all.min(), xv_all.max(), 200) if xscale == "log" and xv_all.min() > 0
            else np.linspace(xv_all.min(), xv_all.max(), 200))
    for h in hues:
        sub = est if h is None else est.sel({hue: h})
        color = ax._get_lines.get_next_color()
        xv = np.asarray(sub[x].values, dtype=float)
        lab = None if hue is None else f"{_PRETTY.get(hue, hue).split(' $')[0]} = {h:g}"  # h is None iff hue is
        ax.errorbar(xv, sub["value"].values, yerr=sub["standard_error"].values, fmt="o", color=color,
                    ms=3.5, elinewidth=0.8, label=lab or "simulation")
        if theory is not None:
            if isinstance(theory, xr.DataArray):
                th = theory if h is None else theory.sel({hue: h})
                ax.plot(np.asarray(th[x].values, float), th.values, ls="--", color=color, lw=1.0)
            else:
                y = theory(fine) if h is None else theory(fine, h)
                ax.plot(fine, y, ls="--", color=color if h is not None else "0.1", lw=1.0)
    handles, labels = ax.get_legend_handles_labels()
    if theory is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], ls="--", color="0.1", lw=1.0))
        labels.append(theory_label)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    if xscale == "log":
        plain_log_ticks(ax.xaxis, float(xv_all.min()), float(xv_all.max()))
    ax.set_xlabel(_x_label(est, x))
    ax.set_ylabel(axis_label(ylabel, units if units is not None else est["value"].attrs.get("units")))
    ax.legend(handles, labels, loc="best")
    return ax
