"""Variance decomposition, ensemble bands, fluctuation amplitude, power-law fits and gradient-noise
statistics against exact expectations (4 standard errors per check)."""

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from analysis_data import EM_DT, EM_K, EM_T, em_harmonic

A = sd.analysis


def _hierarchical(G, n, sb, sw, seed):
    rng = np.random.default_rng(seed)
    x = 1.0 + rng.normal(0, np.sqrt(sb), (G, 1)) + rng.normal(0, np.sqrt(sw), (G, n))
    return xr.DataArray(x, dims=("example", "augmentation"))


def test_law_of_total_variance_components_have_their_exact_expectations():
    G, n, sb, sw = 400, 10, 2.0, 0.5
    da = _hierarchical(G, n, sb, sw, seed=0)
    vd = A.variance_decomposition(da, groups="example", dims=("example", "augmentation"))
    v, se = vd["value"], vd["standard_error"]
    # sample identity: total = between + within, exactly
    assert float(v.sel(component="total")) == pytest.approx(float(v.sel(component="between") + v.sel(component="within")))
    assert float(v.sel(component="total")) == pytest.approx(float(da.var()))
    # expectations of the (1/n) components: E within = sw (1 - 1/n); E between = (1 - 1/G)(sb + sw/n)
    assert abs(float(v.sel(component="within")) - sw * (1 - 1 / n)) < 4 * float(se.sel(component="within"))
    assert abs(float(v.sel(component="between")) - (1 - 1 / G) * (sb + sw / n)) < 4 * float(se.sel(component="between"))
    un = A.variance_decomposition(da, groups="example", dims=("example", "augmentation"), unbiased=True)
    assert abs(float(un["value"].sel(component="within")) - sw) < 4 * float(un["standard_error"].sel(component="within"))
    assert abs(float(un["value"].sel(component="between")) - sb) < 4 * float(un["standard_error"].sel(component="between"))
    # grouping by a coordinate label gives the same numbers
    flat = xr.DataArray(da.values.ravel(), dims="sample", coords={"example": ("sample", np.repeat(np.arange(G), n))})
    vd2 = A.variance_decomposition(flat, groups="example", dims="sample")
    np.testing.assert_allclose(vd2["value"].values, vd["value"].values)
    np.testing.assert_allclose(vd2["standard_error"].values, vd["standard_error"].values)


def test_replica_versus_time_decomposition_of_a_stationary_ensemble():
    x = em_harmonic()["x"]
    vd = A.variance_decomposition(x, groups="replica", dims=("replica", "time"))
    var = np.array([sd.theory.em_harmonic_variance(k, EM_DT, EM_T) for k in EM_K])
    total = vd["value"].sel(component="total")
    assert np.all(np.abs(total.values - var) < 4 * vd["standard_error"].sel(component="total").values)
    # an ergodic ensemble: the between-replica part is only the variance of the time averages, var tau / n
    assert np.all(vd["fraction_between"].values < 0.05)


def test_ensemble_mean_and_variance_follow_the_exact_transient():
    k, dt, T, x0 = 2.0, 0.02, 0.5, 1.5
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), sd.landscapes.Harmonic(stiffness=k), x0=[x0],
                     n_replicas=4000, n_steps=200, record_every=20, rng=3)
    m = A.ensemble_mean(ds)
    v = A.ensemble_variance(ds)
    n = ds["step"].values
    a = 1 - k * dt
    mean_exact = x0 * a**n
    var_exact = np.array([sd.theory.em_harmonic_second_moment(k, dt, T, x0, int(s)) for s in n]) - mean_exact**2
    # 10 records checked at once: 4.5 SE each keeps the family's false-failure rate below 1e-4
    assert np.all(np.abs(m["value"].sel(dim=0).values - mean_exact)[1:] < 4.5 * m["standard_error"].sel(dim=0).values[1:])
    assert np.all(np.abs(v["value"].sel(dim=0).values - var_exact)[1:] < 4.5 * v["standard_error"].sel(dim=0).values[1:])
    q = A.quantile_bands(ds, quantiles=(0.1, 0.5, 0.9))
    assert q.dims == ("quantile", "time", "dim")
    assert np.all(q.sel(quantile=0.1).values <= q.sel(quantile=0.9).values)


def test_fluctuation_amplitude_and_power_law_fit():
    # AR(1) "loss" with stationary sd s_B = c / sqrt(B): amplitude ~ B^(-1/2)
    rng = np.random.default_rng(4)
    runs = {}
    for B in (4, 16, 64, 256):
        e = np.empty((50, 400))
        e[:, 0] = rng.normal(size=50)
        for t in range(1, 400):
            e[:, t] = 0.8 * e[:, t - 1] + 0.6 * rng.normal(size=50)
        runs[B] = xr.Dataset({"batch_loss": (("replica", "time"), 1.0 + e / np.sqrt(B))},
                             coords={"time": np.arange(400.0)})
    amp = A.fluctuation_amplitude(runs, burn_in=None)
    assert amp["value"].dims == ("batch_size",)
    # removing each replica's time mean shrinks every amplitude by the same factor, so the exponent is exact
    fit = A.power_law_fit(amp, "batch_size")
    slope = fit.sel(parameter="exponent")
    assert abs(float(slope["value"]) + 0.5) < 4 * float(slope["standard_error"])
    assert abs(float(slope["value"]) + 1.0) > 10 * float(slope["standard_error"])


def test_gradient_noise_statistics_of_per_sample_gradients():
    rng = np.random.default_rng(6)
    G = np.array([0.3, 0.0, 0.1])
    g = rng.normal(0, 1, (20_000, 3)) + G  # tr Sigma = 3, |G|^2 = 0.1
    st = A.gradient_noise_statistics(g, batch_size=8)
    v, se = st["value"], st["standard_error"]
    for q, exact in (("gradient_norm_sq", 0.1), ("trace_covariance", 3.0), ("noise_scale", 30.0),
                     ("signal_to_noise", 8 * 0.1 / 3.0)):
        assert abs(float(v.sel(quantity=q)) - exact) < 4 * float(se.sel(quantity=q)), q


def test_gradient_noise_over_a_run_from_minibatch_records():
    # per-step records as an SGD run writes them: |g_B| with g_B = G + xi / sqrt(B), and an unbiased
    # estimate of tr Sigma; the noise scale is tr Sigma / |G|^2 = 3 / 0.25 = 12
    rng = np.random.default_rng(7)
    R, n, B = 200, 300, 4
    G = np.array([0.5, 0.0, 0.0])
    gB = G + rng.normal(0, 1, (R, n, 3)) / np.sqrt(B)
    tr = 3.0 * rng.chisquare(B - 1, (R, n)) / (B - 1)  # unbiased for tr Sigma = 3
    ds = xr.Dataset({"grad_norm": (("replica", "time"), np.linalg.norm(gB, axis=-1)),
                     "grad_var": (("replica", "time"), tr), "batch_size": (("replica", "time"), np.full((R, n), B))})
    st = A.gradient_noise(ds)
    v, se = st["value"], st["standard_error"]
    assert abs(float(v.sel(quantity="noise_scale")) - 12.0) < 4 * float(se.sel(quantity="noise_scale"))
    assert abs(float(v.sel(quantity="signal_to_noise")) - B / 12.0) < 4 * float(se.sel(quantity="signal_to_noise"))
    # the naive ratio tr Sigma / |g_B|^2 (the mini-batch noise inflates |g_B|^2) is far off
    naive = 3.0 / float((ds["grad_norm"] ** 2).mean())
    assert abs(naive - 12.0) > 10 * float(se.sel(quantity="noise_scale"))


def test_variance_bad_inputs():
    da = _hierarchical(10, 3, 1.0, 1.0, seed=1)
    with pytest.raises(sd.ValidationError, match="groups"):
        A.variance_decomposition(da, groups="nope", dims=("example", "augmentation"))
    with pytest.raises(sd.ValidationError, match="quantiles"):
        A.quantile_bands(da, quantiles=(0.5, 1.5), dim="example")
    with pytest.raises(sd.ValidationError, match="batch size"):
        A.gradient_noise(xr.Dataset({"grad_norm": da, "grad_var": da}), dims=("example", "augmentation"))
