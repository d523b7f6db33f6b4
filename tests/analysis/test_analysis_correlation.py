"""Autocorrelation, integrated autocorrelation time, effective sample size and averages against the
exact discrete-time answers of an Euler-Maruyama Ornstein-Uhlenbeck ensemble.

Tolerances: 4 standard errors of the estimator for single checks (a correct implementation fails
with probability < 1e-4 under a new seed); for the maximum over L lags the per-lag bound is raised to
4.5 SE so that the family still fails with probability < 1e-4 (L = 30: 30 * 6.8e-6 = 2e-4 two-sided
for independent lags, less for the positively correlated lags here).
"""

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from analysis_data import EM_DT, EM_EVERY, EM_K, em_harmonic

A = sd.analysis


def test_acf_matches_exact_discrete_acf_not_continuous_one():
    ds = em_harmonic()
    acf = A.autocorrelation(ds, max_lag=30)
    assert acf["value"].dims == ("dim", "lag")
    assert list(acf["lag_step"].values[:3]) == [0, EM_EVERY, 2 * EM_EVERY]
    np.testing.assert_allclose(acf["lag"].values[1], EM_EVERY * EM_DT)
    for i, k in enumerate(EM_K):
        v = acf["value"].isel(dim=i).values[1:]
        se = acf["standard_error"].isel(dim=i).values[1:]
        exact = (1.0 - k * EM_DT) ** acf["lag_step"].values[1:]  # x_{n+1} = (1 - k dt) x_n + noise
        continuous = np.exp(-k * acf["lag"].values[1:])
        assert np.max(np.abs(v - exact) / se) < 4.5
        # the continuous-time ACF is many standard errors away: the test resolves the discretisation
        assert np.max(np.abs(continuous - exact) / se) > 7.0


def test_acf_standard_error_branches_agree():
    # few replicas -> Bartlett's formula; many -> spread over replicas; same order of magnitude
    x = em_harmonic()["x"].sel(dim=1)
    many = A.autocorrelation(x, max_lag=10)["standard_error"].values[1:]
    few = A.autocorrelation(x.isel(replica=slice(0, 4)), max_lag=10)
    assert few.attrs["method"] == "Bartlett's formula"
    ratio = few["standard_error"].values[1:] / (many * np.sqrt(1000 / 4))
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    assert few["standard_error"].values[0] == 0.0


@pytest.mark.parametrize("method", ["sokal", "geyer"])
def test_integrated_time_matches_ar1(method):
    ds = em_harmonic()
    tau = A.integrated_autocorrelation_time(ds, method=method)
    phi = (1.0 - EM_K * EM_DT) ** EM_EVERY
    exact = (1.0 + phi) / (1.0 - phi)  # sum over all lags of phi^|k|
    se_rec = tau["standard_error"].values / (EM_EVERY * EM_DT)
    assert np.all(np.abs(tau["records"].values - exact) < 4 * se_rec)
    np.testing.assert_allclose(tau["value"].values, tau["records"].values * EM_EVERY * EM_DT)
    assert bool(tau["converged"].all())
    # a wrong normalisation (missing factor 2) would be far off
    assert np.all(np.abs((1.0 + phi) / (2 * (1.0 - phi)) - exact) > 10 * se_rec)


def test_effective_sample_size_is_samples_over_tau():
    ds = em_harmonic()
    ess = A.effective_sample_size(ds)
    tau = A.integrated_autocorrelation_time(ds)
    N = ds.sizes["replica"] * ds.sizes["time"]
    np.testing.assert_allclose(ess["value"].values, N / tau["records"].values)
    assert int(ess["n_samples"].values[0]) == N


def test_average_standard_error_from_replicas_and_from_tau():
    x = em_harmonic()["x"]
    by_rep = A.average(x, dims=("replica", "time"))
    assert "replicas" in by_rep.attrs["method"]
    # the mean is exactly 0 in the stationary law
    assert np.all(np.abs(by_rep["value"].values) < 4 * by_rep["standard_error"].values)
    # variance of the mean of N correlated samples: Var * tau / N
    var = np.array([sd.theory.em_harmonic_variance(k, EM_DT, 0.5) for k in EM_K])
    phi = (1.0 - EM_K * EM_DT) ** EM_EVERY
    expected = np.sqrt(var * (1 + phi) / (1 - phi) / x.sizes["replica"] / x.sizes["time"])
    np.testing.assert_allclose(by_rep["standard_error"].values, expected, rtol=0.15)
    few = A.average(x.isel(replica=slice(0, 4)), dims=("replica", "time"))
    assert "autocorrelation" in few.attrs["method"]
    np.testing.assert_allclose(few["standard_error"].values, expected * np.sqrt(1000 / 4), rtol=0.3)


def test_dask_backed_input_gives_lazy_identical_results():
    ds = em_harmonic()
    lazy = ds.chunk({"replica": 250, "time": 500})
    tau = A.integrated_autocorrelation_time(lazy)
    assert tau["value"].chunks is not None  # still lazy
    np.testing.assert_allclose(tau["value"].values, A.integrated_autocorrelation_time(ds)["value"].values, rtol=1e-12)
    acf = A.autocorrelation(lazy["energy"], max_lag=5).compute()
    np.testing.assert_allclose(acf["value"].values, A.autocorrelation(ds["energy"], max_lag=5)["value"].values)
    av = A.average(lazy["x"])
    np.testing.assert_allclose(av["standard_error"].values, A.average(ds["x"])["standard_error"].values)


def test_ratio_estimator_and_summary():
    rng = np.random.default_rng(0)
    a = xr.DataArray(rng.normal(2.0, 1.0, (400, 50)), dims=("replica", "time"))
    b = xr.DataArray(rng.normal(4.0, 1.0, (400, 50)), dims=("replica", "time"))
    r = A.ratio(a, b)
    # independent samples: delta method SE = sqrt(Var a + r^2 Var b) / (mean b sqrt N)
    expected = np.sqrt(1.0 + 0.25) / (4.0 * np.sqrt(20000))
    np.testing.assert_allclose(float(r["standard_error"]), expected, rtol=0.1)
    assert abs(float(r["value"]) - 0.5) < 4 * expected
    assert A.summary(A.estimate(0.50123, 0.0031, long_name="t")) == "0.5012 ± 0.0031"


def test_bad_arguments_are_rejected():
    x = em_harmonic()["x"]
    with pytest.raises(sd.ValidationError, match="max_lag"):
        A.autocorrelation(x, max_lag=10_000)
    with pytest.raises(sd.ValidationError, match="'dim' parameter of autocorrelation"):
        A.autocorrelation(x, dim="nope")
    with pytest.raises(sd.ValidationError, match="method"):
        A.integrated_autocorrelation_time(x, method="magic")
    with pytest.raises(sd.ValidationError, match="at least 4 records"):
        A.autocorrelation(x.isel(time=slice(0, 3)))
    with pytest.raises(sd.ValidationError, match="variables"):
        A.average(em_harmonic(), "nope")
