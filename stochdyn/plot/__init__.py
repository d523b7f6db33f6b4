"""Paper-ready figures of stochdyn Datasets. Every function draws on ``ax`` (or a new figure in the
current style), returns the Axes and never calls ``show``; Matplotlib is imported only when a
figure is drawn, so ``import stochdyn`` stays fast.

Styles: :func:`use_style` / :func:`style` (``"paper"``, one or two columns; ``"slides"``).
"""

from .distributions import autocorrelation, escape_time_distribution, histogram_vs_gibbs
from .landscape import animate_ensemble, ensemble_snapshot, landscape_contours
from .scans import temperature_scan
from .survival import survival_vs_theory
from .style import COLUMN_WIDTHS, PALETTE, available_styles, figsize, style, style_path, use_style
from .trajectories import loss_curves, trajectory_fan
from ._util import axis_label

__all__ = [
    "use_style",
    "style",
    "figsize",
    "available_styles",
    "style_path",
    "PALETTE",
    "COLUMN_WIDTHS",
    "axis_label",
    "trajectory_fan",
    "loss_curves",
    "landscape_contours",
    "ensemble_snapshot",
    "animate_ensemble",
    "histogram_vs_gibbs",
    "escape_time_distribution",
    "temperature_scan",
    "autocorrelation",
    "survival_vs_theory",
]
