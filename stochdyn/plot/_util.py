"""Helpers shared by the figure functions: axes creation and axis labels with units."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import ValidationError

#: Units on axes, one convention for every figure: ``name [units]``, with ``[a.u.]`` for the
#: landscape's own units (positions, U, time, temperature: stochdyn runs are dimensionless, k_B = 1),
#: ``[count]`` for things counted (steps, generations, examples, evaluations, sizes) and
#: ``[dimensionless]`` for ratios and probabilities.
MODEL_UNITS = "a.u."
COUNT_UNITS = "count"
RATIO_UNITS = "dimensionless"

#: quantities that count things: their units print as [count]
_COUNTS = ("step", "generation", "examples", "evaluations", "batch size", "population size", "replica", "number")


def _counts(name: str) -> bool:
    low = name.lower()
    return any(low.startswith(w) or f"cumulative {w}" in low for w in _COUNTS)


def axis_label(name: str, units: str | None = None) -> str:
    """``"name [units]"`` in the one convention of stochdyn figures: units ``"1"``/empty print as
    ``[count]`` for counted quantities (steps, generations, examples, ...) and ``[a.u.]`` otherwise
    (the landscape's own units); units that only repeat a counted name (a ``generation`` axis in
    units of ``generation``) print as ``[count]``; ``"dimensionless"`` prints as is."""
    if units in (None, "", "1") or (units.lower().rstrip("s") in _COUNTS and _counts(name)):
        units = COUNT_UNITS if _counts(name) else MODEL_UNITS
    return f"{name} [{units}]"


def label_of(da: Any, default: str, units: str | None = None) -> str:
    """Axis label from a DataArray's ``long_name``/``units`` attributes."""
    attrs = getattr(da, "attrs", {}) or {}
    return axis_label(attrs.get("long_name", default), attrs.get("units", units) if units is None else units)


def get_ax(ax: Any = None, **subplot_kw: Any) -> Any:
    """``ax``, or the axes of a new figure (sized by the current style)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(**subplot_kw)
    return ax


def select_coordinate(da: Any, coordinate: int, owner: str) -> Any:
    """``da`` at coordinate index ``coordinate`` of its ``dim`` dimension (if it has one)."""
    if "dim" in da.dims:
        if not 0 <= int(coordinate) < da.sizes["dim"]:
            raise ValidationError(f"The 'coordinate' parameter of {owner} must be in [0, {da.sizes['dim']}). "
                                  f"Got {coordinate}.")
        return da.isel(dim=int(coordinate))
    return da


def coordinate_name(da: Any, coordinate: int) -> str:
    """Label of one coordinate of a state variable, e.g. ``"position $x_0$"``, ``"population mean trait $x_1$"``."""
    base = (getattr(da, "attrs", {}) or {}).get("long_name", "x")
    return f"{base} $x_{{{coordinate}}}$"


def plain_log_ticks(axis: Any, low: float, high: float) -> None:
    """On a log-scaled ``axis`` spanning less than two decades, label 1-2-5 ticks with plain numbers
    (all of 1..9 below half a decade) and drop the crowded minor labels."""
    from matplotlib import ticker

    if not (low > 0 and high / low < 100):
        return
    subs = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0) if high / low < 5 else (1.0, 2.0, 5.0)
    axis.set_major_locator(ticker.LogLocator(subs=subs))
    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())


def log_axis(ax: Any, values: np.ndarray, top: float = 1.05) -> None:
    """Logarithmic y axis from just below the smallest positive value to ``top`` (plain tick labels
    when it spans less than two decades)."""
    ax.set_yscale("log")
    lo = max(float(values.min()) * 0.8 if values.size else 1e-3, 1e-6)
    ax.set_ylim(lo, top)
    plain_log_ticks(ax.yaxis, lo, top)
