"""Exact finite-step theory for SGD as Langevin dynamics: the Euler–Maruyama chain's stationary density
and mean first-passage time (Nyström), SGD's stationary moments on a 1-D quadratic, the configurational
temperature of a Gaussian law.

Monte Carlo checks allow 4 standard errors (SE): the seeds are fixed, so the tests are deterministic,
and under a new seed a correct implementation fails one such check with probability 6e-5. Each is set
up so that the answer it guards against (the Gibbs density, the continuous-time passage time, a
Gaussian kurtosis) is at least 5 SE away. SEs come from independent replicas.
"""

import math

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from stochdyn import theory as th

N_SE = 4
DW = sd.landscapes.DoubleWell(dim=1)


def per_replica_mean_and_se(values):
    """Mean over replicas (axis 0) of per-replica time averages, and its SE (replicas independent)."""
    per = values.mean(axis=1)
    return per.mean(), per.std(ddof=1) / math.sqrt(per.size)


# ------------------------------------------------------------------------------------------------
# stationary density of the Euler–Maruyama chain
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kdt", [0.1, 1.8])
def test_em_density_on_a_harmonic_well_is_the_exact_discrete_gaussian(kdt):
    k, T = 2.0, 0.7
    dt = kdt / k
    law = th.em_stationary_density_1d(lambda s: 0.5 * k * s * s, dt, T, gradient=lambda s: k * s)
    var = th.em_harmonic_variance(k, dt, T)  # T / (k (1 - k dt / 2)), not the Gibbs T / k
    s = np.linspace(-2.0, 2.0, 9)
    np.testing.assert_allclose(law(s), np.exp(-s * s / (2 * var)) / math.sqrt(2 * math.pi * var), rtol=1e-9, atol=1e-12)
    assert law.expectation(lambda x: x * x) == pytest.approx(var, rel=1e-10)
    assert law.probability(0.5) == pytest.approx(0.5 * math.erfc(0.5 / math.sqrt(2 * var)), rel=1e-10)
    assert abs(law.leak) < 1e-12


def test_em_density_of_a_landscape_converges_to_gibbs_linearly_in_the_step():
    gibbs = th.double_well_gibbs(0.5)["mean_x0_sq"]
    dev = [th.em_stationary_density_1d(DW, dt, 0.5).expectation(lambda x: x * x) - gibbs for dt in (1 / 64, 1 / 128)]
    assert dev[0] / dev[1] == pytest.approx(2.0, rel=0.05)  # weak order one (Talay & Tubaro 1990)
    fine = th.em_stationary_density_1d(DW, 1 / 64, 0.5, cells_per_sigma=4).expectation(lambda x: x * x)
    assert fine - gibbs == pytest.approx(dev[0], abs=1e-10)  # the quadrature has converged


def test_em_density_matches_simulation_and_not_gibbs():
    dt, T = 1 / 16, 0.5
    law = th.em_stationary_density_1d(DW, dt, T)
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), DW, x0=[-1.0], n_replicas=400, n_steps=2560,
                     record_every=8, rng=3)
    x = ds.x.isel(dim=0).values[:, 80:]  # after 40 time units (about 10 relaxation times of the two wells)
    m2, se = per_replica_mean_and_se(x**2)
    exact = law.expectation(lambda s: s * s)
    assert abs(m2 - exact) < N_SE * se, f"{m2:.6g} ± {se:.2g} vs exact {exact:.6g}"
    assert abs(exact - th.double_well_gibbs(T)["mean_x0_sq"]) > 10 * se  # Gibbs is far off at this step
    p_right, se_p = per_replica_mean_and_se((x > 0.0).astype(float))
    assert abs(p_right - law.probability(0.0)) < N_SE * se_p


def test_em_density_reports_the_leak_of_an_unstable_step():
    # at dt = 1/8 the quartic well's Euler-Maruyama chain overshoots to infinity at a measurable rate
    assert th.em_stationary_density_1d(DW, 1 / 8, 0.5).leak > 1e-6
    assert abs(th.em_stationary_density_1d(DW, 1 / 16, 0.5).leak) < 1e-12


# ------------------------------------------------------------------------------------------------
# mean first-passage time of the Euler–Maruyama chain seen at its records
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt, m, replicas", [(0.075, 1, 2000), (0.02, 25, 2000)])
def test_em_mfpt_matches_simulation_and_not_the_continuous_time_value(dt, m, replicas):
    # (0.075, 1): the chain's own finite-step bias makes escapes 16 % faster; (0.02, 25): records every
    # 0.5 time units see the passage late, +18 %. Both are more than 5 SE from mfpt_1d.
    T = 0.5
    exact = th.em_mfpt_1d(DW, -1.0, 1.0, T, dt, record_every=m)
    continuous = th.mfpt_1d(DW, -1.0, 1.0, T)
    n = int(round(14 * exact / dt / m)) * m  # e^-14 of the replicas are still censored
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), DW, x0=[-1.0], n_replicas=replicas, n_steps=n,
                     record_every=m, rng=7)
    fp = sd.analysis.first_passage_times(ds, sd.analysis.interval(0, low=1.0))
    assert bool(fp.reached.all())
    mean = sd.analysis.mean_first_passage_time(fp)
    v, se = float(mean.value), float(mean.standard_error)
    assert abs(v - exact) < N_SE * se, f"{v:.5g} ± {se:.2g} vs exact {exact:.5g}"
    assert abs(continuous - exact) > 5 * se


def test_em_mfpt_quadrature_has_converged_and_tends_to_the_continuous_limit():
    T = 0.5
    a = th.em_mfpt_1d(DW, -1.0, 1.0, T, 0.02, record_every=3)
    assert th.em_mfpt_1d(DW, -1.0, 1.0, T, 0.02, record_every=3, cells_per_sigma=4) == pytest.approx(a, rel=1e-9)
    # monitoring every step of size dt shifts the target by ~0.5826 sqrt(2 T dt); what remains is O(dt)
    gaps = []
    for dt in (0.01, 0.0025):
        shifted = th.mfpt_1d(DW, -1.0, 1.0 + 0.5826 * math.sqrt(2 * T * dt), T)
        gaps.append(th.em_mfpt_1d(DW, -1.0, 1.0, T, dt) - shifted)
    assert abs(gaps[1]) < abs(gaps[0]) / 3  # first order: a factor 4 for a 4 times smaller step
    # mirrored direction: from the right well to the left one, the same by symmetry
    assert th.em_mfpt_1d(DW, 1.0, -1.0, T, 0.02) == pytest.approx(th.em_mfpt_1d(DW, -1.0, 1.0, T, 0.02), rel=1e-9)


def _transition_rate(ds, source, target, window):
    """Transitions source -> target per unit time committed to source, counted like a long-run experiment:
    each replica's first stay is dropped, stays beginning before ``window`` are followed to their end (a
    stopping-time rule, so Wald's identity makes sum(durations) / sum(counts) consistent). A stay still
    running at the end counts with its observed duration: with 10 mean stays of margin, a bias < e^-10."""
    ev = sd.analysis.passage_times(ds, source, target)
    rep = ev.replica.values
    first = np.zeros(rep.size, dtype=bool)
    first[np.unique(rep, return_index=True)[1]] = True
    use = ~first & (ev.start_time.values < window)  # Euler-Maruyama's time coordinate is step * dt
    R = ds.sizes["replica"]
    n = np.bincount(rep[use], minlength=R).astype(float)
    t = np.bincount(rep[use], weights=ev.duration.values[use], minlength=R)
    est = sd.analysis.ratio(xr.DataArray(n, dims="replica"), xr.DataArray(t, dims="replica"), dims="replica")
    return float(est.value), float(est.standard_error)


def test_em_transition_rates_match_a_long_run_and_not_continuous_time():
    land = sd.landscapes.DoubleWell(dim=1, tilt=0.15)
    T, dt = 0.5, 0.075  # k dt = 0.6 in the wells: escapes are ~15 % faster than in continuous time
    k_lr, k_rl = th.em_transition_rates_1d(land, -1.0, 1.0, T, dt)
    window = 800.0
    n = int((window + 10 / min(k_lr, k_rl)) / dt)
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), land, x0=[-1.0], n_replicas=100, n_steps=n, rng=13)
    left, right = sd.analysis.interval(0, high=-1.0), sd.analysis.interval(0, low=1.0)
    for exact, source, target, a, b in ((k_lr, left, right, -1.0, 1.0), (k_rl, right, left, 1.0, -1.0)):
        v, se = _transition_rate(ds, source, target, window)
        assert abs(v - exact) < N_SE * se, f"{v:.5g} ± {se:.2g} vs exact {exact:.5g}"
        assert abs(1 / th.mfpt_1d(land, a, b, T) - exact) > 5 * se


def test_em_transition_rates_agree_with_the_mean_first_passage_from_the_minimum():
    # symmetric: equal rates; the mean stay differs from the MFPT from the minimum only through where
    # stays begin (the entrance records lie a little beyond the minimum), here by < 1 %
    k_lr, k_rl = th.em_transition_rates_1d(DW, -1.0, 1.0, 0.5, 0.02, record_every=3)
    assert k_lr == pytest.approx(k_rl, rel=1e-9)
    assert 1 / k_lr == pytest.approx(th.em_mfpt_1d(DW, -1.0, 1.0, 0.5, 0.02, record_every=3), rel=0.01)
    fine = th.em_transition_rates_1d(DW, -1.0, 1.0, 0.5, 0.02, record_every=3, cells_per_sigma=4)[0]
    assert fine == pytest.approx(k_lr, rel=1e-9)


def test_em_transition_rates_refuse_a_leaking_step():
    with pytest.raises(ValueError, match="leaves the interval"):
        th.em_transition_rates_1d(DW, -1.0, 1.0, 0.5, 0.14)


def test_em_mfpt_validates():
    with pytest.raises(ValueError, match="record_every"):
        th.em_mfpt_1d(DW, -1.0, 1.0, 0.5, 0.01, record_every=0)
    with pytest.raises(ValueError, match="dt"):
        th.em_mfpt_1d(DW, -1.0, 1.0, 0.5, -0.01)
    with pytest.raises(ValueError, match="too small"):
        th.em_mfpt_1d(DW, -1.0, 1.0, 0.5, 1e-7)
    assert th.em_mfpt_1d(DW, 1.0, 1.0, 0.5, 0.01) == 0.0


# ------------------------------------------------------------------------------------------------
# SGD on a one-parameter least-squares problem: exact stationary moments
# ------------------------------------------------------------------------------------------------
PROB1 = sd.problems.LeastSquares.from_data(sd.problems.gaussian_regression(256, 1, noise=1.0, seed=3))


@pytest.mark.parametrize("B", [1, 3])
def test_second_stationary_moment_is_the_exact_stationary_variance(B):
    eta = 0.5 * th.sgd_stability_limit(PROB1, B)
    m = th.sgd_stationary_moments_1d(PROB1, eta, B, order=4)
    assert m[0] == 1.0 and abs(m[1]) < 1e-14  # the stationary mean is the minimiser
    assert m[2] == pytest.approx(th.sgd_stationary_covariance(PROB1, eta, B)[0, 0], rel=1e-12)


def test_fourth_stationary_moment_matches_simulation_and_is_not_gaussian():
    B = 1
    eta = 0.2 * th.sgd_stability_limit(PROB1, B)
    m = th.sgd_stationary_moments_1d(PROB1, eta, B, order=8)  # the 8th moment is finite: the SE below is valid
    ts = PROB1.minimizer()
    relax = 5 * int(10 / (eta * PROB1.hessian[0, 0]) / 5)
    ds = sd.simulate(sd.SGD(lr=eta, batch_size=B, record_extra=()), PROB1, x0=ts, n_replicas=4000,
                     n_steps=relax + 500, record_every=5, rng=5)
    e = ds.x.isel(dim=0).values[:, relax // 5 + 1:] - ts[0]
    m4, se = per_replica_mean_and_se(e**4)
    assert abs(m4 - m[4]) < N_SE * se, f"{m4:.5g} ± {se:.2g} vs exact {m[4]:.5g}"
    # here the law is lighter-tailed than a Gaussian of the exact variance (excess kurtosis -0.27)
    assert 3 * m[2] ** 2 - m[4] > 5 * se


def test_moments_beyond_the_tail_index_are_refused():
    B = 1
    eta = 0.9 * th.sgd_stability_limit(PROB1, B)
    assert th.sgd_stationary_moments_1d(PROB1, eta, B, order=2)[2] > 0  # the variance is finite
    with pytest.raises(ValueError, match="order 3 is infinite"):
        th.sgd_stationary_moments_1d(PROB1, eta, B, order=4)


# ------------------------------------------------------------------------------------------------
# temperatures of a Gaussian law in a quadratic basin
# ------------------------------------------------------------------------------------------------
def test_configurational_temperature_of_a_gaussian_law():
    H = np.array([[3.0, 0.5], [0.5, 0.4]])
    assert th.configurational_temperature_quadratic(H, 0.7 * np.linalg.inv(H)) == pytest.approx(0.7, rel=1e-12)
    C = np.array([[0.2, 0.05], [0.05, 0.3]])  # not Gibbs: the two temperatures differ
    exact = th.configurational_temperature_quadratic(H, C)
    assert abs(exact - th.equipartition_temperature(H, C)) > 0.05
    x = np.random.default_rng(0).multivariate_normal([0.0, 0.0], C, size=(400, 50))
    land = sd.landscapes.Harmonic(hessian=H)
    ds = xr.Dataset({"x": (("replica", "time", "dim"), x)})
    est = sd.analysis.configurational_temperature(ds, land)
    assert abs(float(est.value) - exact) < N_SE * float(est.standard_error)
