"""First-passage analysis and the escape theory: exact 1-D MFPT by quadrature, Kramers, censored rates."""

import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import stochdyn as sd

A = sd.analysis
th = sd.theory


def test_mfpt_quadrature_matches_closed_forms():
    # free diffusion (D = T) on [0, b] with a reflecting wall at 0: (b^2 - x^2) / (2T)
    assert th.mfpt_1d(lambda s: 0.0 * s, 0.3, 2.0, 0.7, reflecting=0.0) == pytest.approx((4.0 - 0.09) / 1.4, rel=1e-11)
    # constant force F towards the wall: (1/F)[(T/F)(e^{Fb/T} - e^{Fx/T}) - (b - x)]
    F, T, x, b = 0.8, 0.5, 0.2, 1.5
    exact = ((T / F) * (math.exp(F * b / T) - math.exp(F * x / T)) - (b - x)) / F
    assert th.mfpt_1d(lambda s: F * s, x, b, T, reflecting=0.0) == pytest.approx(exact, rel=1e-11)
    assert th.mfpt_1d(lambda s: -F * s, -x, -b, T, reflecting=0.0) == pytest.approx(exact, rel=1e-11)  # mirrored
    # a landscape is taken along a coordinate; the natural boundary at -infinity is found automatically
    dw1, dw3 = sd.landscapes.DoubleWell(dim=1), sd.landscapes.DoubleWell(dim=3)
    assert th.mfpt_1d(dw3, -1.0, 1.0, 0.5) == pytest.approx(th.mfpt_1d(dw1, -1.0, 1.0, 0.5), rel=1e-12)
    assert th.mfpt_1d(dw1, 0.5, 0.5, 0.5) == 0.0


def test_kramers_formulas_and_high_barrier_limit():
    # 1-D: sqrt(U''(min) |U''(saddle)|) e^{-dU/T} / 2 pi; the double well has U'' = 8 and -4
    k = th.kramers_rate(0.2, 1.0, 8.0, -4.0)
    assert k == pytest.approx(math.sqrt(32.0) / (2 * math.pi) * math.exp(-5.0), rel=1e-12)
    assert th.kramers_rate_landscape(sd.landscapes.DoubleWell(dim=2), [-1, 0], [0, 0], 0.2) == pytest.approx(k, rel=1e-6)
    # MFPT from one well to the other tends to 1/k, with an O(T / dU) correction
    land = sd.landscapes.DoubleWell(dim=1)
    ratios = [th.mfpt_1d(land, -1.0, 1.0, T) * th.kramers_rate_landscape(land, [-1.0], [0.0], T) for T in (0.1, 0.05, 0.025)]
    assert abs(ratios[2] - 1) < abs(ratios[1] - 1) < abs(ratios[0] - 1) < 0.05
    assert abs(ratios[2] - 1) < 0.012
    # underdamped: large friction gamma gives the overdamped rate with mobility 1/gamma
    assert th.kramers_rate(0.2, 1.0, 8.0, -4.0, friction=200.0) * 200.0 == pytest.approx(k, rel=1e-3)
    with pytest.raises(ValueError, match="one negative"):
        th.kramers_rate(0.2, 1.0, np.eye(2), np.eye(2))


def test_simulated_mean_first_passage_time_of_a_double_well():
    # Euler-Maruyama from the left well to x >= 1 (the other well), T = 1, 2000 replicas, all arrive.
    # Passages are seen only at records (every 0.02): discrete monitoring moves the effective target
    # out by 0.5826 sigma sqrt(record spacing) (Broadie, Glasserman & Kou 1997, Math. Finance 7, 325),
    # sigma = sqrt(2T). SE of the mean ~ 2 %; the correction (+5 %) is 2.5 SE: tested against both.
    land = sd.landscapes.DoubleWell(dim=1)
    dt, every = 2e-3, 10
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=1.0), land, x0=[-1.0], n_replicas=2000, n_steps=22_000,
                     record_every=every, rng=5)
    fp = A.first_passage_times(ds, A.interval(0, low=1.0))
    assert bool(fp["reached"].all())
    m = A.mean_first_passage_time(fp)
    shift = 0.5826 * math.sqrt(2.0 * 1.0 * dt * every)
    exact = th.mfpt_1d(land, -1.0, 1.0 + shift, 1.0)
    assert abs(float(m["value"]) - exact) < 4 * float(m["standard_error"])
    # a factor-2 error in the diffusion would be far away
    assert abs(th.mfpt_1d(land, -1.0, 1.0 + shift, 2.0) - exact) > 10 * float(m["standard_error"])
    # lazily on Dask, identical
    lazy = A.first_passage_times(ds.chunk({"replica": 500}), A.interval(0, low=1.0))
    assert lazy["duration"].chunks is not None
    np.testing.assert_array_equal(lazy["duration"].values, fp["duration"].values)


def _censored_exponential(rate, n, horizon, seed):
    t = np.random.default_rng(seed).exponential(1 / rate, n)
    reached = t <= horizon
    return xr.Dataset({"duration": ("replica", np.minimum(t, horizon), {"units": "1"}),
                       "reached": ("replica", reached)})


def test_escape_rate_mle_with_censoring():
    p = _censored_exponential(2.0, 4000, 0.5, seed=1)  # about 37 % censored
    est = A.escape_rate(p)
    d = int(p["reached"].sum())
    E = float(p["duration"].sum())
    assert float(est["value"]) == pytest.approx(d / E)
    assert float(est["standard_error"]) == pytest.approx(d / E / math.sqrt(d))
    assert float(est["ci_low"]) == pytest.approx(stats.chi2.ppf(0.025, 2 * d) / (2 * E))
    assert float(est["ci_high"]) == pytest.approx(stats.chi2.ppf(0.975, 2 * d + 2) / (2 * E))
    assert abs(float(est["value"]) - 2.0) < 4 * float(est["standard_error"])
    # ignoring censoring (mean of the observed times) is biased by many SE
    naive = 1.0 / float(p["duration"].where(p["reached"]).mean())
    assert abs(naive - 2.0) > 10 * float(est["standard_error"])
    # the mean passage time is estimated despite censoring (exponential tail after half the horizon): 1/2 within 4 SE
    m = A.mean_first_passage_time(p)
    assert int(m["n_censored"]) == int((~p["reached"]).sum()) and abs(float(m["value"]) - 0.5) < 4 * float(m["standard_error"])
    assert float(m["restricted_mean"]) < 0.5 - 10 * float(m["standard_error"])  # the restricted mean is biased low


def test_confidence_interval_coverage():
    # 95 % intervals over 400 independent censored samples: coverage 0.95 +- 4 * 0.011
    hits = 0
    for seed in range(400):
        est = A.escape_rate(_censored_exponential(1.0, 60, 1.5, seed=1000 + seed))
        hits += float(est["ci_low"]) <= 1.0 <= float(est["ci_high"])
    assert abs(hits / 400 - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 400)


def test_first_and_repeated_passages_on_a_hand_made_path():
    x = np.array([[-1.0, -0.5, 0.2, 1.2, 0.0, -1.1, -1.2, 0.3, 1.5, 0.9],
                  [0.0, 0.0, -1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])[..., None]
    ds = xr.Dataset({"x": (("replica", "time", "dim"), x)},
                    coords={"replica": [7, 9], "time": np.arange(10) * 0.5, "dim": [0]})
    left, right = A.interval(0, high=-1.0), A.interval(0, low=1.0)
    fp = A.first_passage_times(ds, right)
    np.testing.assert_array_equal(fp["reached"].values, [True, False])
    np.testing.assert_allclose(fp["duration"].values, [1.5, 4.5])
    np.testing.assert_allclose(A.first_passage_times(ds["x"].sel(dim=0), right)["duration"].values, [1.5, 4.5])
    fp2 = A.first_passage_times(ds, right, start=left)  # clock starts on entering the left region
    np.testing.assert_allclose(fp2["duration"].values, [1.5, 3.5])
    np.testing.assert_array_equal(fp2["started"].values, [True, True])
    ev = A.passage_times(ds, left, right)
    # replica 7: stays in A from t=0 -> B at 1.5; back in A at 2.5 -> B at 4.0; replica 9: A at 1.0, censored
    np.testing.assert_array_equal(ev["replica"].values, [7, 7, 9])
    np.testing.assert_allclose(ev["duration"].values, [1.5, 1.5, 3.5])
    np.testing.assert_array_equal(ev["reached"].values, [True, True, False])
    rate = A.escape_rate(ev)
    assert float(rate["value"]) == pytest.approx(2 / 6.5)
    S = A.survival_function(ev)
    # Kaplan-Meier: at t = 1.5 all 3 at risk, 2 events -> 1/3
    np.testing.assert_allclose(S["value"].values, [1.0, 1.0 / 3.0])


def test_regions_and_bad_inputs():
    pts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    np.testing.assert_array_equal(A.halfspace([1.0, 1.0], 1.5)(pts), [False, True, False])
    np.testing.assert_array_equal(A.ball([1.0, 1.0], 0.5)(pts), [False, True, False])
    np.testing.assert_array_equal(A.interval(1, -0.5, 0.5)(pts), [True, False, False])
    with pytest.raises(sd.ValidationError, match="low < high"):
        A.interval(0, 1.0, 0.0)
    with pytest.raises(sd.ValidationError, match="zero vector"):
        A.halfspace([0.0, 0.0])
    ds = xr.Dataset({"x": (("replica", "time", "dim"), np.zeros((2, 3, 1)))}, coords={"time": [0.0, 1.0, 2.0]})
    with pytest.raises(sd.ValidationError, match="must be a region"):
        A.first_passage_times(ds, 1.0)
    with pytest.raises(sd.ValidationError, match="overlap"):
        A.passage_times(ds, A.interval(0, -1, 1), A.interval(0, 0, 2))
    with pytest.raises(sd.ValidationError, match="first_passage_times or passage_times"):
        A.escape_rate(ds)
