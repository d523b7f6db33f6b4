"""Measure ensembles: temperature, stationarity and Gibbs agreement, correlation, escape, variance.

Every estimator is a function of xarray Datasets/DataArrays that keeps labels and coordinates,
works on Dask-backed data, and returns a Dataset with ``value`` and ``standard_error`` (statistical
tests return ``statistic`` and ``p_value``). Importing this package registers the ``.sd`` accessor.
See ``docs/analysis.md``.
"""

from . import _base as _m0, averages as _m1, correlation as _m2, stationarity as _m3
from . import temperature as _m4, escape as _m5, variance as _m6, noise as _m7, absorption as _m8
from . import interop as _m9
from . import accessor as _accessor  # noqa: F401  (registers ds.sd / da.sd)
from ._base import *  # noqa: F401,F403,E402
from .averages import *  # noqa: F401,F403,E402
from .correlation import *  # noqa: F401,F403,E402
from .stationarity import *  # noqa: F401,F403,E402
from .temperature import *  # noqa: F401,F403,E402
from .escape import *  # noqa: F401,F403,E402
from .variance import *  # noqa: F401,F403,E402
from .noise import *  # noqa: F401,F403,E402
from .absorption import *  # noqa: F401,F403,E402
from .interop import *  # noqa: F401,F403,E402

__all__ = [name for module in (_m0, _m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8, _m9) for name in module.__all__]
