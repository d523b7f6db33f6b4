"""The ensemble driver (:func:`simulate`) and its recorders."""

from .driver import DivergenceWarning, simulate

__all__ = ["simulate", "DivergenceWarning"]
