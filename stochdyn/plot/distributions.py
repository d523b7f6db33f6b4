"""Distributions against theory: stationary histogram vs Gibbs, escape-time survival, autocorrelation."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_real
from ..analysis._base import landscape_of, run_temperature
from ..analysis.escape import escape_rate, survival_function
from ..analysis.stationarity import gibbs_marginal, stationary_histogram
from ._util import axis_label, get_ax, log_axis

__all__ = ["histogram_vs_gibbs", "escape_time_distribution", "autocorrelation"]


def _is_histogram(obj: Any) -> bool:
    return isinstance(obj, xr.Dataset) and "bin" in obj.dims and "value" in obj


def histogram_vs_gibbs(data: Any, landscape: Any = None, temperature: float | None = None, *, coordinate: int = 0,
                       bins: Any = 40, range: tuple[float, float] | None = None, burn_in: Any = None,
                       potential: Callable | None = None, label: str | None = None, gibbs_label: str | None = None,
                       ax: Any = None) -> Any:
    """Stationary histogram of one coordinate (± one standard error) against the Gibbs marginal density.

    ``data`` is a run's Dataset, a histogram from :func:`stochdyn.analysis.stationary_histogram`, or a
    mapping ``{label: Dataset}`` to set several dynamics (Langevin, SGD, a population) beside one
    Gibbs density. The Gibbs curve is :func:`stochdyn.analysis.gibbs_marginal` (normalised by
    quadrature) at ``temperature`` (default: the integrator's) on ``landscape`` (default: the run's),
    or of a 1-D ``potential``. Returns the Axes.
    """
    owner = "histogram_vs_gibbs"
    items = [(label, data)] if isinstance(data, (xr.Dataset, xr.DataArray)) or not isinstance(data, Mapping) \
        else list(data.items())
    if not items:
        raise ValidationError(f"{owner} needs at least one Dataset.")
    ax = get_ax(ax)
    first = items[0][1]
    land = None
    if potential is None:
        land = landscape_of(first, landscape, owner) if landscape is not None or "target" in first.attrs else None
    if temperature is None and _is_histogram(first) and np.isfinite(first.attrs.get("temperature", np.nan)):
        temperature = float(first.attrs["temperature"])
    T = run_temperature(first, temperature, owner) if (land is not None or potential is not None) else None
    lo_all, hi_all = np.inf, -np.inf
    xname = None
    for k, (lab, ds) in enumerate(items):
        hist = ds if _is_histogram(ds) else stationary_histogram(ds, land, T, coordinate=coordinate, bins=bins,
                                                                  range=range, burn_in=burn_in, potential=potential,
                                                                  gibbs=False)
        color = ax._get_lines.get_next_color()
        edges = np.append(hist["bin_lower"].values, hist["bin_upper"].values[-1])
        v = hist["value"].values
        se = hist["standard_error"].values
        ax.stairs(v, edges, color=color, lw=0.9, label=lab if lab is not None else "simulation")
        ax.errorbar(hist["bin"].values, v, yerr=se, fmt="none", ecolor=color, elinewidth=0.6, capsize=0)
        lo_all, hi_all = min(lo_all, edges[0]), max(hi_all, edges[-1])
        xname = hist["bin"].attrs.get("long_name")
    if T is not None:
        marg = gibbs_marginal(land, T, coordinate, potential=potential)
        s = np.linspace(lo_all, hi_all, 600)
        ax.plot(s, marg.pdf(s), color="0.1", lw=1.1, ls="--",
                label=gibbs_label or f"Gibbs, T = {T:.3g}")
    name = f"position $x_{{{coordinate}}}$" if xname is None or xname.startswith("position") else xname
    ax.set_xlabel(axis_label(name))
    ax.set_ylabel(axis_label("probability density", "1/a.u."))
    ax.set_xlim(lo_all, hi_all)
    ax.set_ylim(bottom=0)
    n = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=n if n <= 3 else 2, borderaxespad=0.1,
              handlelength=1.4, columnspacing=1.0, fontsize="small")
    return ax


def escape_time_distribution(passages: xr.Dataset, *, theory_rate: float | None = None, fit: bool = True,
                             confidence: float = 0.95, log: bool = True, label: str | None = None,
                             ax: Any = None) -> Any:
    """Survival function of first-passage/escape times with the exponential fit and theory.

    Kaplan–Meier estimate (:func:`stochdyn.analysis.survival_function`) with a ±2 standard-error band,
    the censored exponential fit :math:`e^{-\\hat\\lambda t}` (:func:`stochdyn.analysis.escape_rate`)
    with its confidence band, and :math:`e^{-kt}` for a theory rate k (e.g. 1/``mfpt_1d`` or
    ``kramers_rate``). Logarithmic y by default, where exponential waiting is a straight line.
    Returns the Axes.
    """
    owner = "escape_time_distribution"
    ax = get_ax(ax)
    S = survival_function(passages)
    t = S["duration"].values
    v, se = S["value"].values, S["standard_error"].values
    color = ax._get_lines.get_next_color()
    ax.fill_between(t, np.clip(v - 2 * se, 1e-300, None), v + 2 * se, step="post", color=color, alpha=0.25, lw=0)
    ax.step(t, v, where="post", color=color, lw=1.0, label=label or "simulation (Kaplan–Meier)")
    tmax = float(np.nanmax(passages["duration"].values)) if passages["duration"].size else 0.0
    tt = np.linspace(0.0, tmax if tmax > 0 else 1.0, 300)
    if fit:
        est = escape_rate(passages, confidence=confidence)
        lam, lo, hi = (float(est[k]) for k in ("value", "ci_low", "ci_high"))
        c2 = ax._get_lines.get_next_color()
        ax.fill_between(tt, np.exp(-hi * tt), np.exp(-lo * tt), color=c2, alpha=0.2, lw=0)
        ax.plot(tt, np.exp(-lam * tt), color=c2, lw=1.0, label=f"exponential fit, rate {lam:.3g}")
    if theory_rate is not None:
        k = check_real("theory_rate", theory_rate, owner, gt=0.0)
        ax.plot(tt, np.exp(-k * tt), color="0.1", ls="--", lw=1.0, label=f"theory, rate {k:.3g}")
    if log:
        log_axis(ax, v[v > 0])
    units = passages["duration"].attrs.get("units")
    ax.set_xlabel(axis_label("passage time", units))
    ax.set_ylabel(axis_label("survival probability", "dimensionless"))
    ax.set_xlim(0, tt[-1])
    ax.legend(loc="best")
    return ax


def autocorrelation(acf: xr.Dataset, *, theory: Callable[[np.ndarray], np.ndarray] | None = None,
                    label: str | None = None, ax: Any = None) -> Any:
    """Autocorrelation function (± two standard errors) against lag, with an optional theory curve.

    ``acf`` comes from :func:`stochdyn.analysis.autocorrelation` (one curve: select other dimensions
    first); ``theory`` is a function of the lag in time units, e.g. ``lambda t: np.exp(-k * t)``.
    Returns the Axes.
    """
    if not isinstance(acf, xr.Dataset) or "lag" not in acf.dims:
        raise ValidationError("autocorrelation (plot) takes the output of sd.analysis.autocorrelation.")
    if acf["value"].ndim != 1:
        raise ValidationError(f"autocorrelation (plot) draws one curve: select dimensions other than 'lag' first. "
                              f"Got {acf['value'].dims}.")
    ax = get_ax(ax)
    lag = acf["lag"].values
    v, se = acf["value"].values, acf["standard_error"].values
    color = ax._get_lines.get_next_color()
    ax.fill_between(lag, v - 2 * se, v + 2 * se, color=color, alpha=0.25, lw=0)
    ax.plot(lag, v, color=color, lw=1.0, label=label or "simulation")
    if theory is not None:
        s = np.linspace(lag[0], lag[-1], 400)
        ax.plot(s, theory(s), color="0.1", ls="--", lw=1.0, label="theory")
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel(axis_label("lag", acf["lag"].attrs.get("units")))
    ax.set_ylabel(axis_label("autocorrelation", "dimensionless"))
    ax.set_xlim(lag[0], lag[-1])
    ax.legend(loc="best")
    return ax
