"""Figures over time: trajectory fans with quantile bands, loss curves with fluctuation bands."""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_array, check_int
from ..analysis._base import select
from ..analysis.variance import _collect_runs, quantile_bands
from ._util import axis_label, coordinate_name, get_ax, label_of, select_coordinate

__all__ = ["trajectory_fan", "loss_curves"]


def _time_axis(da: xr.DataArray, x: str) -> tuple[np.ndarray, str]:
    if x not in da.coords:
        raise ValidationError(f"The data have no coordinate or variable {x!r} to plot against.")
    c = da[x]
    return np.asarray(c.values, dtype=float), label_of(c, x)


def trajectory_fan(ds: xr.Dataset | xr.DataArray, var: str | None = None, *, coordinate: int = 0,
                   quantiles: Sequence[float] = (0.05, 0.25), n_paths: int = 3, color: str | None = None,
                   label: str | None = None, ax: Any = None) -> Any:
    """Fan chart of an ensemble over time: median, quantile bands and a few single replicas.

    Bands span ``q`` to ``1 - q`` for each ``q`` in ``quantiles`` (default 5–95 % and 25–75 %),
    shaded lighter for wider bands; ``n_paths`` replicas are drawn as thin lines so the reader sees
    what one trajectory looks like. ``var`` defaults to ``x`` (``population_mean`` for populations
    without individuals); ``coordinate`` picks the component of variables with a ``dim`` dimension. Values that are
    not finite (e.g. an evolution strategy's ``best_energy`` before its first evaluation) are left out.
    Returns the Axes.
    """
    owner = "trajectory_fan"
    da = select(ds, var, ("x", "population_mean", "energy"), owner)
    per_coordinate = "dim" in da.dims
    da = select_coordinate(da, coordinate, owner)
    if "individual" in da.dims:
        da = da.mean("individual")
    da = da.where(np.isfinite(da))
    q = check_array("quantiles", quantiles, owner, ndim=1, ge=0.0, min_size=1)
    if np.any(q >= 0.5):
        raise ValidationError(f"The 'quantiles' parameter of {owner} must be lower tails < 0.5. Got {list(quantiles)}.")
    n_paths = check_int("n_paths", n_paths, owner, ge=0)
    ax = get_ax(ax)
    color = color or ax._get_lines.get_next_color()
    t, tlabel = _time_axis(da, "time")
    levels = sorted(set(np.round(np.concatenate([q, 1 - q, [0.5]]), 12)))
    bands = quantile_bands(da, quantiles=levels).transpose("quantile", "time")
    for i, lo in enumerate(sorted(q)):
        lo_v = bands.sel(quantile=lo, method="nearest").values
        hi_v = bands.sel(quantile=1 - lo, method="nearest").values
        ax.fill_between(t, lo_v, hi_v, color=color, alpha=0.18 + 0.17 * i, linewidth=0,
                        label=f"{100 * lo:g}–{100 * (1 - lo):g} %")
    if n_paths and "replica" in da.dims:
        for r in range(min(n_paths, da.sizes["replica"])):
            ax.plot(t, da.isel(replica=r).values, color=color, lw=0.4, alpha=0.6,
                    label="single replicas" if r == 0 else None)
    ax.plot(t, bands.sel(quantile=0.5, method="nearest").values, color=color, lw=1.4,
            label=label or "median")
    ax.set_xlabel(tlabel)
    name = coordinate_name(da, coordinate) if per_coordinate else da.attrs.get("long_name", da.name or "value")
    ax.set_ylabel(axis_label(name, da.attrs.get("units")))
    ax.set_xlim(t[0], t[-1])
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4, handlelength=1.2, columnspacing=1.0,
              borderaxespad=0.1, fontsize="small")
    return ax


_LOSS_NAMES: dict[Hashable, str] = {"batch_loss": "mini-batch loss", "loss": "loss", "energy": "full-batch loss"}


def loss_curves(runs: Any, var: str | None = None, *, by: str = "batch_size", x: str = "time",
                band: str = "sd", show_sample: bool = True, log: bool = True, ylabel: str | None = None,
                ax: Any = None) -> Any:
    """Loss against time for several batch sizes: ensemble mean, fluctuation band, one sample run.

    ``runs`` is a mapping ``{batch size: Dataset}``, a sequence of Datasets carrying ``by`` in their
    integrator attributes, or a sweep Dataset with a ``by`` dimension. ``var`` defaults to the
    mini-batch loss ``batch_loss`` (else ``loss``, else ``energy``). The band is the mean ± one
    standard deviation across replicas at each time (``band="sd"``) or the 10–90 % range
    (``band="quantile"``): both are the fluctuation of a single run, not the uncertainty of the mean.
    ``x`` may be any coordinate or variable along time, e.g. ``"examples"`` to compare at equal
    compute. Returns the Axes.
    """
    owner = "loss_curves"
    if band not in ("sd", "quantile"):
        raise ValidationError(f"The 'band' parameter of {owner} must be 'sd' or 'quantile'. Got {band!r}.")
    collected = _collect_runs(runs, by)
    if isinstance(collected, xr.Dataset):
        if by not in collected.dims:
            raise ValidationError(f"A sweep Dataset passed to {owner} must have a {by!r} dimension.")
        pairs = [(float(v), collected.sel({by: v})) for v in collected[by].values]
    else:
        pairs = sorted(collected, key=lambda kv: kv[0])
    ax = get_ax(ax)
    xlabel = None
    for k, ds in pairs:
        da = select(ds, var, ("batch_loss", "loss", "energy"), owner)
        if x in ds.data_vars:
            xv = np.asarray(ds[x].mean([d for d in ds[x].dims if d != "time"]).values, dtype=float)
            xlabel = label_of(ds[x], x)
        else:
            xv, xlabel = _time_axis(da, x)
        color = ax._get_lines.get_next_color()
        mean = da.mean("replica")
        if band == "sd":
            sd = da.std("replica")
            lo, hi = mean - sd, mean + sd
        else:
            qb = da.quantile([0.1, 0.9], dim="replica")
            lo, hi = qb.isel(quantile=0), qb.isel(quantile=1)
        if log:
            lo = lo.where(lo > 0)
        ax.fill_between(xv, np.asarray(lo), np.asarray(hi), color=color, alpha=0.25, linewidth=0)
        if show_sample:
            ax.plot(xv, da.isel(replica=0).values, color=color, lw=0.35, alpha=0.55)
        lab = f"B = {k:g}" if by == "batch_size" else f"{by} = {k:g}"
        ax.plot(xv, mean.values, color=color, lw=1.3, label=lab, zorder=3)
        ylabel = ylabel or axis_label(_LOSS_NAMES.get(da.name, da.attrs.get("long_name", "loss")), da.attrs.get("units"))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    return ax
