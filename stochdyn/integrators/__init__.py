"""Integrators: validated, frozen descriptions of a dynamics, run by :func:`stochdyn.simulate`."""

from .base import INTEGRATORS, Integrator, State, Variable, integrator_from_dict, register_integrator
from .langevin import BAOAB, EulerMaruyama, LeimkuhlerMatthews
from .sgd import SGD, SGLD, Adam, Augmentation, BatchSchedule, LRSchedule, Sampling, Workers

__all__ = ["INTEGRATORS", "integrator_from_dict", "register_integrator", "Integrator", "State", "Variable", "EulerMaruyama", "LeimkuhlerMatthews", "BAOAB",
           "SGD", "Adam", "SGLD", "Sampling", "LRSchedule", "BatchSchedule", "Augmentation", "Workers"]
from .popgen import Moran, WrightFisher  # noqa: E402
__all__ += ["WrightFisher", "Moran"]
from .evolution import GeneticAlgorithm, OnePlusOneES, OpenES  # noqa: E402
from .cma import CMAES, CSAES, SepCMAES  # noqa: E402
from .nes import SNES, XNES  # noqa: E402
__all__ += ["OnePlusOneES", "CSAES", "CMAES", "SepCMAES", "XNES", "SNES", "OpenES", "GeneticAlgorithm"]
