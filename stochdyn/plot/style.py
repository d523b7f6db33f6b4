"""Shipped Matplotlib styles, selectable by name: ``"paper"`` (single- or two-column journal figures)
and ``"slides"`` (16:9, large type). Both use DejaVu Sans (bundled with Matplotlib, so figures look
the same everywhere and need no LaTeX), the Okabe–Ito colour-blind-safe palette, and embed TrueType
fonts in vector output (PDF/SVG)::

    sd.plot.use_style("paper")                 # for the rest of the session
    with sd.plot.style("paper", columns=2):    # for one block
        ax = sd.plot.trajectory_fan(ds)
        ax.figure.savefig("fan.pdf")
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from .._validation import ValidationError, check_choice

__all__ = ["PALETTE", "COLUMN_WIDTHS", "available_styles", "style_path", "use_style", "style", "figsize"]

#: Okabe & Ito (2008) colour-blind-safe palette: blue, vermillion, bluish green, reddish purple,
#: orange, sky blue, black, yellow (the order of the shipped styles' colour cycle)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

#: figure widths in inches of one and two journal columns
COLUMN_WIDTHS = {1: 3.4, 2: 7.0}

_DIR = Path(__file__).with_name("styles")


def available_styles() -> list[str]:
    """Names of the shipped styles."""
    return sorted(p.stem for p in _DIR.glob("*.mplstyle"))


def style_path(name: str) -> Path:
    """Path of a shipped ``.mplstyle`` file."""
    check_choice("name", name, available_styles(), "style")
    return _DIR / f"{name}.mplstyle"


def figsize(columns: int = 1, aspect: float = 0.74) -> tuple[float, float]:
    """``(width, height)`` in inches of a figure ``columns`` journal columns wide (height = aspect × width)."""
    check_choice("columns", columns, tuple(COLUMN_WIDTHS), "figsize")
    w = COLUMN_WIDTHS[columns]
    return (w, round(w * float(aspect), 3))


def _rc(name: str, columns: int | None) -> list[Any]:
    spec: list[Any] = [str(style_path(name))]
    if columns is not None:
        if name != "paper":
            raise ValidationError("The 'columns' parameter applies only to the 'paper' style.")
        spec.append({"figure.figsize": figsize(columns)})
    return spec


def use_style(name: str = "paper", columns: int | None = None) -> None:
    """Apply a shipped style globally (``columns=2`` for a two-column-wide paper figure)."""
    import matplotlib.style

    matplotlib.style.use(_rc(name, columns))


@contextlib.contextmanager
def style(name: str = "paper", columns: int | None = None) -> Iterator[None]:
    """Context manager applying a shipped style inside a ``with`` block."""
    import matplotlib.style

    with matplotlib.style.context(_rc(name, columns)):
        yield
