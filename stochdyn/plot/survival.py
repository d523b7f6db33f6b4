"""Runs that stop: the survival function of hitting times against theory."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from .._validation import ValidationError
from ..analysis.absorption import hitting_times
from ._util import COUNT_UNITS, _counts, axis_label, get_ax, log_axis

__all__ = ["survival_vs_theory"]


def _theory_curve(theory: Any, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if callable(theory):
        return t, np.asarray(theory(t), dtype=float)
    if isinstance(theory, (tuple, list)) and len(theory) == 2:
        tt, s = (np.asarray(v, dtype=float) for v in theory)
        if tt.shape != s.shape:
            raise ValidationError("A theory given as (times, survival) needs two arrays of one shape.")
        return tt, s
    raise ValidationError("Each theory of survival_vs_theory must be a function S(t) or a pair (times, survival). "
                          f"Got {type(theory).__name__}.")


def survival_vs_theory(data: Any, theory: Any = None, *, log: bool = True, label: str | None = None,
                       ax: Any = None) -> Any:
    r"""Kaplan–Meier survival :math:`P(T > t)` of the hitting times of a run made with ``until=``, against theory.

    Drawn: the Kaplan–Meier steps :math:`\hat S(t) = \prod_{t_i \le t} (1 - d_i / n_i)` (Kaplan & Meier
    1958, J. Am. Stat. Assoc. 53, 457) with their log-log confidence band, the end of the run (where the
    unfinished replicas are censored; their number is in the legend), and each theory. Logarithmic y by
    default, where an exponential tail is a straight line (the assumption behind the mean hitting time
    of censored runs, :func:`stochdyn.analysis.censored_mean`).

    Parameters
    ----------
    data : Dataset
        The Dataset of a run made with ``sd.simulate(..., until=RULE)``, or the output of
        :func:`stochdyn.analysis.hitting_times` for it.
    theory : callable, tuple or mapping, optional
        A function :math:`S(t)` of an array of times, a pair ``(times, survival)`` (e.g. from
        :func:`stochdyn.theory.absorption_times`), or a mapping ``{label: theory}`` for several.
    log : bool, default True
        Logarithmic y axis.
    label : str, optional
        Legend label of the simulation (default "simulation (Kaplan–Meier)").
    ax : Axes, optional
        Axes to draw on (default: a new figure).

    Returns
    -------
    Axes
    """
    ht = data if isinstance(data, xr.Dataset) and "survival" in data else hitting_times(data)
    ax = get_ax(ax)
    t = ht["duration"].values
    S = ht["survival"].values
    lo, hi = ht["survival_ci_low"].values, ht["survival_ci_high"].values
    horizon = float(ht["horizon"])
    units = ht["duration"].attrs.get("units", "1")
    tt = np.append(t, horizon)
    color = ax._get_lines.get_next_color()
    ax.fill_between(tt, np.append(np.clip(lo, 1e-300, None), lo[-1]), np.append(hi, hi[-1]), step="post",
                    color=color, alpha=0.25, lw=0)
    n_c = int(ht["n_censored"])
    ax.step(tt, np.append(S, S[-1]), where="post", color=color, lw=1.0,
            label=(label or "simulation (Kaplan–Meier)") + (f", {n_c} censored" if n_c else ""))
    if n_c:
        ax.axvline(horizon, color="0.55", lw=0.6, ls=":")
    theories = {} if theory is None else (dict(theory) if isinstance(theory, Mapping) else {"theory": theory})
    grid = np.linspace(0.0, horizon, 400)
    styles = ["--", "-.", ":"]
    for k, (name, th) in enumerate(theories.items()):
        x, y = _theory_curve(th, grid)
        ax.plot(x, y, color="0.1", ls=styles[k % 3], lw=1.0, label=name)
    if log:
        positive = S[S > 0]
        log_axis(ax, positive if positive.size else np.array([1e-3]))
    ax.set_xlim(0.0, horizon)
    # a run counted in generations or steps says so ("hitting time in generations [count]")
    clock = data["time"].attrs.get("long_name", "time") if isinstance(data, xr.Dataset) and "time" in data.coords else "time"
    name = ht["duration"].attrs.get("long_name", "hitting time")
    ax.set_xlabel(f"{name} in {clock}s [{COUNT_UNITS}]" if _counts(clock) else axis_label(name, units))
    ax.set_ylabel(axis_label("survival probability", "dimensionless"))
    ax.legend(loc="upper right", fontsize="small")  # the curves fall from the top left
    return ax
