"""fixation_probability and hitting_times on synthetic runs with known answers (exact binomial and
exponential laws), at stated standard errors."""

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import stochdyn as sd

A = sd.analysis


def _stopped_run(t, horizon, rule=None, dt=1.0):
    """A Dataset shaped like a run with until=: stop times t (censored beyond horizon)."""
    steps = np.round(np.asarray(t) / dt).astype(np.int64)
    stopped = steps <= round(horizon / dt)
    R = steps.size
    rule = np.zeros(R, np.int64) if rule is None else np.asarray(rule)
    return xr.Dataset({
        "stopped": ("replica", stopped),
        "stop_step": ("replica", np.where(stopped, steps, -1)),
        "stop_time": ("replica", np.where(stopped, steps * dt, np.nan)),
        "stop_rule": ("replica", np.where(stopped, rule, -1), {"flag_meanings": "first second"}),
        "diverged": ("replica", np.zeros(R, bool)),
    }, coords={"time": ("time", [0.0, horizon], {"units": "1"})})


def _populations(final, n_records=3):
    """allele_frequency (replica, time, dim, allele) of one biallelic site ending at the given frequencies."""
    f = np.asarray(final, float)
    fr = np.empty((f.size, n_records, 1, 2))
    fr[:, :, 0, 1] = 0.5
    fr[:, -1, 0, 1] = f
    fr[:, :, 0, 0] = 1.0 - fr[:, :, 0, 1]
    return xr.Dataset({"allele_frequency": (("replica", "time", "dim", "allele"), fr),
                       "diverged": ("replica", np.zeros(f.size, bool))}, coords={"time": np.arange(n_records) * 1.0})


def test_fixation_probability_binomial():
    rng = np.random.default_rng(1)
    fixed = rng.random(4000) < 0.3
    est = A.fixation_probability(_populations(fixed.astype(float)))
    k = int(fixed.sum())
    assert float(est["value"]) == k / 4000
    assert float(est["standard_error"]) == pytest.approx(math.sqrt(k / 4000 * (1 - k / 4000) / 4000))
    assert abs(float(est["value"]) - 0.3) < 4 * float(est["standard_error"])  # SE 0.0072
    # Clopper-Pearson bounds are Beta quantiles
    assert float(est["ci_low"]) == pytest.approx(stats.beta.ppf(0.025, k, 4000 - k + 1), rel=1e-10)
    assert float(est["ci_high"]) == pytest.approx(stats.beta.ppf(0.975, k + 1, 4000 - k), rel=1e-10)
    # exact intervals cover at least 95 %: 400 samples of 30 populations, 0.95 - 4 SE (SE 0.011)
    cover = 0
    for s in range(400):
        f = np.random.default_rng(100 + s).random(30) < 0.1
        e = A.fixation_probability(_populations(f.astype(float)))
        cover += float(e["ci_low"]) <= 0.1 <= float(e["ci_high"])
    assert cover / 400 > 0.95 - 4 * math.sqrt(0.95 * 0.05 / 400)
    # still polymorphic populations: a warning, and an interval covering every fate they could have
    final = np.concatenate([np.ones(20), np.zeros(60), np.full(20, 0.5)])
    with pytest.warns(UserWarning, match="20 of 100 populations were still polymorphic"):
        e = A.fixation_probability(_populations(final))
    assert int(e["n_censored"]) == 20 and float(e["value"]) == 0.25
    assert float(e["ci_low"]) <= 0.2 and float(e["ci_high"]) >= 0.4
    with pytest.raises(sd.ValidationError, match="'allele_frequency'"):
        A.fixation_probability(xr.Dataset())


def test_hitting_times_exponential_with_censoring():
    # T ~ Exp(rate 0.5) on a grid of 0.01, censored at 3: mean 2 (+0.005 for the grid's rounding)
    rng = np.random.default_rng(2)
    t = rng.exponential(2.0, 20000)
    ds = _stopped_run(t, 3.0, dt=0.01)
    ht = A.hitting_times(ds)
    assert int(ht["n_censored"]) == int((t > 3.005).sum()) > 4000
    assert abs(float(ht["value"]) - 2.0) < 4 * float(ht["standard_error"])  # SE ~ 0.016
    assert float(ht["restricted_mean"]) < 2.0 - 10 * float(ht["standard_error"])
    # Kaplan-Meier against the exact survival e^{-t/2}, within 4 Greenwood SE at a few times
    S = ht["survival"]
    for when in (0.5, 1.0, 2.0, 2.9):
        s = S.sel(duration=when, method="ffill")
        se = ht["survival_standard_error"].sel(duration=when, method="ffill")
        assert abs(float(s) - math.exp(-float(s["duration"]) / 2.0)) < 4 * float(se)
        assert float(ht["survival_ci_low"].sel(duration=when, method="ffill")) < float(s) < \
            float(ht["survival_ci_high"].sel(duration=when, method="ffill"))
    # the same numbers as survival_function on passages
    p = xr.Dataset({"duration": ("replica", np.where(ds["stopped"], ds["stop_time"], 3.0)),
                    "reached": ("replica", ds["stopped"].values)})
    np.testing.assert_array_equal(A.survival_function(p)["value"].values, S.values)


def test_hitting_times_shifted_exponential_and_rules():
    # T = 1 + Exp(mean 2): constant hazard after t = 1 <= tail start (horizon/2 = 3): E[T] = 3
    rng = np.random.default_rng(3)
    t = 1.0 + rng.exponential(2.0, 20000)
    ht = A.hitting_times(_stopped_run(t, 6.0, dt=1e-3))
    assert abs(float(ht["value"]) - 3.0) < 4 * float(ht["standard_error"])
    # competing risks: T = min(T1, T2), T1 ~ Exp(1), T2 ~ Exp(3); the rule that fires is independent of T,
    # so each conditional mean is 1/4 and rule 0 fires with probability 1/4
    a, b = rng.exponential(1.0, 8000), rng.exponential(1 / 3.0, 8000)
    ht = A.hitting_times(_stopped_run(np.minimum(a, b), 50.0, rule=(b < a).astype(int), dt=1e-4))
    assert int(ht["n_censored"]) == 0
    np.testing.assert_array_equal(ht["rule_name"].values, ["first", "second"])
    for k in (0, 1):
        assert abs(float(ht["conditional_mean"][k]) - 0.25) < 4 * float(ht["conditional_standard_error"][k])
    assert abs(int(ht["rule_count"][0]) / 8000 - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 8000)


def test_censored_mean_standard_error_is_calibrated():
    # 300 censored samples of 300 exponential times (horizon = 1.5 means): the z-scores are standard
    # normal if the delta-method SE is right; the fraction with |z| < 2 is 0.954 +- 4 * 0.012
    inside = 0
    for s in range(300):
        t = np.random.default_rng(500 + s).exponential(1.0, 300)
        r = A.censored_mean(np.minimum(t, 1.5), t <= 1.5)
        inside += abs(r["value"] - 1.0) < 2 * r["standard_error"]
    assert abs(inside / 300 - 0.9545) < 4 * math.sqrt(0.9545 * 0.0455 / 300)


def test_bad_inputs():
    with pytest.raises(sd.ValidationError, match="made with sd.simulate\\(..., until=RULE\\)"):
        A.hitting_times(xr.Dataset({"x": ("replica", [1.0])}))
    ds = _stopped_run(np.array([0.2, 5.0, 6.0, 7.0]), 1.0, dt=0.1)
    with pytest.warns(UserWarning, match="No event after the tail start"):
        ht = A.hitting_times(ds)
    assert np.isnan(float(ht["value"])) and int(ht["rule_count"][0]) == 1 and ht["survival"].size == 2
    with pytest.raises(sd.ValidationError, match="must not exceed the earliest censoring time"):
        A.censored_mean([1.0, 2.0, 3.0], [True, False, False], tail_start=2.5)
    # the accessor
    t = np.random.default_rng(4).exponential(1.0, 50)
    assert float(_stopped_run(t, 10.0, dt=0.01).sd.hitting_times()["value"]) > 0
