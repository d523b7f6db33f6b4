"""stochdyn: stochastic dynamics on landscapes — Langevin, SGD and evolution as Numba-parallel ensembles.

>>> import stochdyn as sd
>>> land = sd.landscapes.DoubleWell(dim=2)
>>> ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1/3), land, x0=[-1.0, 0.0],
...                  n_replicas=1000, n_steps=1000, record_every=100, rng=0)
"""

from . import integrators, io, landscapes, random
from ._faults import UserCodeError
from ._validation import ValidationError
from ._version import __version__
from .ensemble import DivergenceWarning, open_sweep, simulate, sweep
from .integrators import BAOAB, EulerMaruyama, LeimkuhlerMatthews
from .io import open_dataset, save
from . import problems
from .integrators import SGD, SGLD, Adam, Augmentation, BatchSchedule, LRSchedule, Sampling, Workers

__all__ = [
    "__version__",
    "simulate",
    "sweep",
    "open_sweep",
    "landscapes",
    "integrators",
    "random",
    "theory",
    "io",
    "save",
    "open_dataset",
    "EulerMaruyama",
    "LeimkuhlerMatthews",
    "BAOAB",
    "ValidationError",
    "UserCodeError",
    "DivergenceWarning",
    "problems",
    "SGD",
    "Adam",
    "SGLD",
    "Sampling",
    "LRSchedule",
    "BatchSchedule",
    "Augmentation",
    "Workers",
]
from . import fitness  # noqa: E402
from .integrators import Moran, WrightFisher  # noqa: E402
__all__ += ["fitness", "WrightFisher", "Moran"]
from .integrators import CMAES, CSAES, SNES, XNES, GeneticAlgorithm, OnePlusOneES, OpenES, SepCMAES  # noqa: E402
__all__ += ["OnePlusOneES", "CSAES", "CMAES", "SepCMAES", "XNES", "SNES", "OpenES", "GeneticAlgorithm"]
from . import analysis, plot  # noqa: E402  (importing analysis registers the ds.sd accessor)
__all__ += ["analysis", "plot"]
from . import stopping  # noqa: E402
__all__ += ["stopping"]


def __getattr__(name: str):
    # stochdyn.theory (SciPy-heavy) is imported on first use, keeping `import stochdyn` fast
    if name == "theory":
        import importlib

        module = importlib.import_module(".theory", __name__)
        globals()["theory"] = module
        return module
    raise AttributeError(f"module 'stochdyn' has no attribute {name!r}")
