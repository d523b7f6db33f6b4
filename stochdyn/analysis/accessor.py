"""The ``.sd`` accessor: the common analyses as methods of a Dataset or DataArray.

Registered when :mod:`stochdyn` is imported::

    ds.sd.temperature()                 # kinetic with velocities, else configurational
    ds.sd.tau("energy")                 # integrated autocorrelation time
    ds.sd.histogram(coordinate=0)       # stationary histogram with the Gibbs density
    ds.x.sd.autocorrelation()

Each method is the function of :mod:`stochdyn.analysis` of the same name (or the one named in its
docstring) applied to the object; see there for parameters and formulas.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Concatenate, ParamSpec, TypeVar

import xarray as xr

from ..io.schema import run_info
from . import absorption, correlation, escape, stationarity, variance
from . import temperature as temp
from ._base import landscape_of
from .averages import average

__all__ = ["StochdynDatasetAccessor", "StochdynDataArrayAccessor"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _method(func: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[_Common, _P], _R]:
    """``func(obj, ...)`` as a method ``accessor.func(...)`` applied to the accessor's object."""
    @functools.wraps(func)
    def method(self: _Common, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return func(self._obj, *args, **kwargs)

    return method


class _Common:
    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    average = _method(average)
    autocorrelation = _method(correlation.autocorrelation)
    tau = _method(correlation.integrated_autocorrelation_time)
    ess = _method(correlation.effective_sample_size)
    burn_in = _method(stationarity.detect_burn_in)
    discard_burn_in = _method(stationarity.discard_burn_in)
    geweke = _method(stationarity.geweke_test)
    ensemble_mean = _method(variance.ensemble_mean)
    ensemble_variance = _method(variance.ensemble_variance)
    bands = _method(variance.quantile_bands)
    variance_decomposition = _method(variance.variance_decomposition)
    histogram = _method(stationarity.stationary_histogram)
    first_passage_times = _method(escape.first_passage_times)
    passage_times = _method(escape.passage_times)


@xr.register_dataset_accessor("sd")
class StochdynDatasetAccessor(_Common):
    """stochdyn analyses of a run's Dataset (``ds.sd.<method>``)."""

    _obj: xr.Dataset  # registered as the Dataset accessor: xarray passes the Dataset

    temperature = _method(temp.temperature)
    kinetic_temperature = _method(temp.kinetic_temperature)
    configurational_temperature = _method(temp.configurational_temperature)
    variance_temperature = _method(temp.variance_temperature)
    histogram_temperature = _method(temp.histogram_temperature)
    kl_divergence = _method(stationarity.kl_divergence)
    chi_square_test = _method(stationarity.chi_square_test)
    ks_test = _method(stationarity.ks_test)
    fixation_probability = _method(absorption.fixation_probability)
    hitting_times = _method(absorption.hitting_times)

    @property
    def info(self) -> dict[str, Any]:
        """Provenance parsed from the attributes (:func:`stochdyn.io.run_info`)."""
        return run_info(self._obj)

    @property
    def landscape(self) -> Any:
        """The landscape (or problem) the run was made on, rebuilt from the attributes."""
        return landscape_of(self._obj, None, "ds.sd.landscape")

    def escape_rate(self, target: Callable, *, start: Callable | None = None, **kwargs: Any) -> xr.Dataset:
        """:func:`~stochdyn.analysis.escape_rate` of :func:`~stochdyn.analysis.first_passage_times` to ``target``."""
        return escape.escape_rate(escape.first_passage_times(self._obj, target, start=start), **kwargs)


@xr.register_dataarray_accessor("sd")
class StochdynDataArrayAccessor(_Common):
    """stochdyn analyses of one variable (``ds.x.sd.<method>``)."""
