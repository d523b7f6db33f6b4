"""The ensemble driver (:func:`simulate`) and its recorders."""

from .driver import DivergenceWarning, simulate
from .sweeps import open_sweep, sweep

__all__ = ["simulate", "sweep", "open_sweep", "DivergenceWarning"]
