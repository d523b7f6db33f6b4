"""Burn-in, Gibbs marginals, histograms and goodness-of-fit tests against exact answers."""

import numpy as np
import pytest
from scipy import stats

import stochdyn as sd
from analysis_data import EM_DT, EM_K, EM_T, as_run, double_well_gibbs_samples, em_harmonic

A = sd.analysis


def test_gibbs_marginal_matches_quadrature_theory():
    T = 0.5
    g = sd.theory.double_well_gibbs(T)
    for dim in (1, 2, 3):
        m = A.gibbs_marginal(sd.landscapes.DoubleWell(dim=dim), T, 0)
        np.testing.assert_allclose(m.expectation(lambda s: s * s), g["var_x0"], rtol=1e-9)
        np.testing.assert_allclose(1.0 - m.cdf(0.0), g["p_right"], rtol=1e-6)
    tr = A.gibbs_marginal(sd.landscapes.DoubleWell(dim=2), T, 1)  # exact 2-D marginal of the transverse coordinate
    np.testing.assert_allclose(tr.expectation(lambda s: s * s), T, rtol=1e-9)
    s = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(tr.pdf(s), stats.norm.pdf(s, scale=np.sqrt(T)), rtol=1e-9)


def test_two_dimensional_marginal_of_a_non_separable_landscape():
    land = sd.landscapes.Harmonic(hessian=[[2.0, 0.9], [0.9, 1.0]])
    T = 0.7
    m = A.gibbs_marginal(land, T, 0)
    var0 = T * np.linalg.inv(land.hessian_matrix)[0, 0]  # marginal of a Gaussian: T (H^-1)_00
    s = np.linspace(-2, 2, 7)
    np.testing.assert_allclose(m.pdf(s), stats.norm.pdf(s, scale=np.sqrt(var0)), rtol=1e-8)
    np.testing.assert_allclose(m.bin_probabilities([-1.0, 0.0, 0.5]),
                               np.diff(stats.norm.cdf([-1.0, 0.0, 0.5], scale=np.sqrt(var0))), rtol=1e-9)


def test_histogram_of_independent_gibbs_samples_agrees_and_its_errors_are_binomial():
    T = 0.4
    x = double_well_gibbs_samples(100_000, T, seed=7).reshape(100, 1000, 1)
    ds = as_run(x, sd.landscapes.DoubleWell(dim=1), T)
    h = A.stationary_histogram(ds, bins=40)
    assert h["value"].dims == ("bin",)
    np.testing.assert_allclose(float((h["value"] * (h["bin_upper"] - h["bin_lower"])).sum()), 1.0)
    # independent samples: design effect ~ 1, standard errors binomial
    p = h["counts"].values / h.attrs["n_samples"]
    binom = np.sqrt(p * (1 - p) / h.attrs["n_samples"]) / (h["bin_upper"] - h["bin_lower"]).values
    ok = h["counts"].values > 200
    np.testing.assert_allclose(h["standard_error"].values[ok] / binom[ok], 1.0, atol=0.35)
    assert 0.8 < h.attrs["design_effect"] < 1.2
    chi = A.chi_square_test(h)
    assert chi["p_value"] > 1e-4
    ks = A.ks_test(ds)
    assert ks["p_value"] > 1e-4
    np.testing.assert_allclose(float(ks["statistic"]), stats.kstest(x.ravel(), A.gibbs_marginal(
        sd.landscapes.DoubleWell(dim=1), T).cdf).statistic, atol=1e-6)


def test_correlation_correction_of_chi_square_and_ks():
    ds = em_harmonic()
    var = np.array([sd.theory.em_harmonic_variance(k, EM_DT, EM_T) for k in EM_K])
    T_eff = EM_K[0] * var[0]  # the exact EM stationary law of x0 is Gibbs at this temperature
    chi = A.chi_square_test(ds, temperature=T_eff, coordinate=0, bins=10)
    ks = A.ks_test(ds, temperature=T_eff, coordinate=0)
    assert chi["p_value"] > 1e-4 and ks["p_value"] > 1e-4
    assert chi["n_effective"] < 0.5 * ds.sizes["replica"] * ds.sizes["time"]
    # the bath temperature (not the EM law) is rejected along the stiff coordinate (k dt = 0.2)
    assert A.chi_square_test(ds, temperature=EM_T, coordinate=1)["p_value"] < 1e-6
    assert A.ks_test(ds, temperature=EM_T, coordinate=1)["p_value"] < 1e-6


def test_corrected_statistics_are_calibrated_on_correlated_data():
    # 100 independent data sets of 20 stationary AR(1) series (phi = 0.9, tau = 19) from N(0, 1):
    # the Rao-Scott corrected X^2 has mean K - 1 (sd of the mean sqrt(2 (K-1) / 100) = 0.42), the
    # naive one about design-effect times more; corrected KS p-values are uniform (mean 1/2, sd of
    # the mean 0.029), naive ones pile up near 0.
    rng = np.random.default_rng(8)
    land = sd.landscapes.Harmonic(stiffness=1.0)
    phi, R, n, K = 0.9, 20, 500, 10
    x2, x2_naive, p_ks, p_ks_naive = [], [], [], []
    for _ in range(100):
        x = np.empty((R, n))
        x[:, 0] = rng.normal(size=R)
        noise = rng.normal(size=(R, n)) * np.sqrt(1 - phi**2)
        for t in range(1, n):
            x[:, t] = phi * x[:, t - 1] + noise[:, t]
        ds = as_run(x[..., None], land, 1.0)
        h = A.stationary_histogram(ds, bins=np.linspace(-2.5, 2.5, K + 1))
        x2.append(float(A.chi_square_test(h)["statistic"]))
        naive = h.copy()
        naive.attrs["n_effective"] = naive.attrs["n_samples"]
        x2_naive.append(float(A.chi_square_test(naive)["statistic"]))
        ks = A.ks_test(ds)
        p_ks.append(float(ks["p_value"]))
        p_ks_naive.append(float(stats.kstwo.sf(float(ks["statistic"]), R * n)))
    dof = K - 1
    assert abs(np.mean(x2) - dof) < 4 * np.sqrt(2 * dof / 100)
    assert np.mean(x2_naive) > 3 * dof
    assert abs(np.mean(p_ks) - 0.5) < 4 * np.sqrt(1 / 12 / 100)
    assert np.mean(p_ks_naive) < 0.2


def test_binned_kl_divergence_of_a_shifted_gaussian():
    rng = np.random.default_rng(2)
    mu, T = 0.3, 1.0
    x = rng.normal(mu, 1.0, (100, 2000, 1))
    land = sd.landscapes.Harmonic(stiffness=1.0)
    ds = as_run(x, land, T)
    h = A.stationary_histogram(ds, bins=30, range=(-4.0, 4.0))
    kl = A.kl_divergence(h)
    e = np.linspace(-4, 4, 31)
    p = np.diff(stats.norm.cdf(e, loc=mu))
    q = np.diff(stats.norm.cdf(e))
    p, q = p / p.sum(), q / q.sum()
    exact = float(np.sum(p * np.log(p / q)))
    assert abs(float(kl["value"]) - float(kl["bias"]) - exact) < 4 * float(kl["standard_error"])
    assert abs(exact - mu**2 / 2) > 0  # binned KL differs from the continuous mu^2/2
    null = A.kl_divergence(as_run(rng.normal(0, 1, (100, 2000, 1)), land, T), bins=30, range=(-4.0, 4.0))
    # under H0, 2 N KL ~ chi2_{K-1}: mean (K-1)/(2N), sd sqrt(2(K-1))/(2N)
    assert abs(float(null["value"]) - float(null["bias"])) < 4 * np.sqrt(2 * 29) / (2 * 200_000)


def test_burn_in_detection_on_a_relaxing_ensemble():
    k, dt, T = 1.0, 0.01, 0.5
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), sd.landscapes.Harmonic(stiffness=k), x0=[5.0],
                     n_replicas=400, n_steps=20_000, record_every=20, rng=4)
    cut = A.detect_burn_in(ds, "x")
    t = float(ds["time"][cut])
    se_point = np.sqrt(T / k / 400)  # standard error of the ensemble mean at one record
    mean_left = 5.0 * (1 - k * dt) ** (cut * 20)
    assert mean_left < se_point  # what is left of the transient is below the noise
    assert t < 0.5 * float(ds["time"][-1])
    kept = A.discard_burn_in(ds)
    assert kept.attrs["burn_in_records"] == cut and kept.sizes["time"] == ds.sizes["time"] - cut
    assert A.geweke_test(ds, "x")["p_value"].item() < 1e-6
    assert A.geweke_test(kept, "x")["p_value"].item() > 1e-4


def test_stationary_histogram_with_few_replicas_uses_time_blocks_and_dask_input():
    x = em_harmonic()["x"].isel(replica=slice(0, 2))
    ds = em_harmonic().isel(replica=slice(0, 2))
    h = A.stationary_histogram(ds, coordinate=1, bins=20)
    assert "time blocks" in h.attrs["method"] and h.attrs["n_batches"] == 32
    h2 = A.stationary_histogram(ds.chunk({"time": 100}), coordinate=1, bins=20)
    np.testing.assert_allclose(h["value"].values, h2["value"].values)
    assert np.isfinite(h["gibbs"].values).all() and x.sizes["replica"] == 2


def test_stationarity_bad_inputs():
    ds = em_harmonic()
    with pytest.raises(sd.ValidationError, match="coordinate"):
        A.stationary_histogram(ds, coordinate=5)
    with pytest.raises(sd.ValidationError, match="must leave records"):
        A.discard_burn_in(ds, 10_000)
    with pytest.raises(sd.ValidationError, match="temperature"):
        A.gibbs_marginal(sd.landscapes.DoubleWell(dim=1), -1.0)
    with pytest.raises(sd.ValidationError, match="Gibbs density"):
        A.chi_square_test(A.stationary_histogram(ds, gibbs=False))
    with pytest.raises(sd.ValidationError, match="overlap"):
        A.geweke_test(ds, first=0.6, last=0.6)
