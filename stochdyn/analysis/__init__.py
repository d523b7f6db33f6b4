"""Measure ensembles: temperature, stationarity and Gibbs agreement, correlation, escape, variance.

Every estimator is a function of xarray Datasets/DataArrays that keeps labels and coordinates,
works on Dask-backed data, and returns a Dataset with ``value`` and ``standard_error`` (statistical
tests return ``statistic`` and ``p_value``). See ``docs/analysis.md``.
"""

from . import accessor as _accessor  # noqa: F401  (registers ds.sd / da.sd)
from ._base import estimate, summary
from .averages import average, ratio
from .escape import (ball, escape_rate, first_passage_times, halfspace, interval, mean_first_passage_time,
                     passage_times, survival_function)
from .correlation import autocorrelation, effective_sample_size, integrated_autocorrelation_time
from .stationarity import (GibbsMarginal, chi_square_test, detect_burn_in, discard_burn_in, geweke_test,
                           gibbs_marginal, kl_divergence, ks_test, stationary_histogram)
from .noise import gradient_noise, gradient_noise_statistics
from .variance import (ensemble_mean, ensemble_variance, fluctuation_amplitude, power_law_fit, quantile_bands,
                       variance_decomposition)
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
    "interval",
    "halfspace",
    "ball",
    "first_passage_times",
    "passage_times",
    "escape_rate",
    "mean_first_passage_time",
    "survival_function",
    "temperature",
    "kinetic_temperature",
    "configurational_temperature",
    "variance_temperature",
    "histogram_temperature",
    "variance_decomposition",
    "ensemble_mean",
    "ensemble_variance",
    "quantile_bands",
    "fluctuation_amplitude",
    "power_law_fit",
    "gradient_noise_statistics",
    "gradient_noise",
]
