"""Measure ensembles: temperature, stationarity and Gibbs agreement, correlation, escape, variance.

Every estimator is a function of xarray Datasets/DataArrays that keeps labels and coordinates,
works on Dask-backed data, and returns a Dataset with ``value`` and ``standard_error`` (statistical
tests return ``statistic`` and ``p_value``). See ``docs/analysis.md``.
"""

from ._base import estimate, summary
from .averages import average, ratio
from .correlation import autocorrelation, effective_sample_size, integrated_autocorrelation_time
from .stationarity import (GibbsMarginal, chi_square_test, detect_burn_in, discard_burn_in, geweke_test,
                           gibbs_marginal, kl_divergence, ks_test, stationary_histogram)
from .temperature import (configurational_temperature, histogram_temperature, kinetic_temperature, temperature,
                          variance_temperature)

__all__ = [
    "estimate",
    "summary",
    "average",
    "ratio",
    "autocorrelation",
    "integrated_autocorrelation_time",
    "effective_sample_size",
    "detect_burn_in",
    "discard_burn_in",
    "geweke_test",
    "GibbsMarginal",
    "gibbs_marginal",
    "stationary_histogram",
    "kl_divergence",
    "chi_square_test",
    "ks_test",
    "temperature",
    "kinetic_temperature",
    "configurational_temperature",
    "variance_temperature",
    "histogram_temperature",
]
