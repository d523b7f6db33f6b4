"""Landscapes: potentials U(x) with gradients, shared by Langevin, SGD and evolution dynamics.

Built-in: :class:`Harmonic`, :class:`DoubleWell`, :class:`MuellerBrown`, :class:`Rosenbrock`,
:class:`Rastrigin`, :class:`GaussianMixture`, :class:`SharpFlat`. Your own: the :func:`landscape` decorator.
"""

from .base import LANDSCAPES, Landscape, landscape_from_dict
from .builtin import DoubleWell, GaussianMixture, Harmonic, MuellerBrown, Rastrigin, Rosenbrock, SharpFlat
from .user import check_gradient, landscape
from . import _value_blocks  # noqa: E402,F401  (value-only blocks of the built-ins)

__all__ = [
    "Landscape",
    "Harmonic",
    "DoubleWell",
    "MuellerBrown",
    "Rosenbrock",
    "Rastrigin",
    "GaussianMixture",
    "SharpFlat",
    "landscape",
    "check_gradient",
    "landscape_from_dict",
    "LANDSCAPES",
]
