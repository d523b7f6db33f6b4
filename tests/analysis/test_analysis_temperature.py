"""Temperature estimators against exact finite-step answers (4 standard errors per check; the
alternative — the bath temperature where the scheme is biased — is required to be many SE away)."""

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from analysis_data import (BAOAB_DT, BAOAB_K, BAOAB_T, EM_DT, EM_K, EM_T, as_run, baoab_harmonic,
                           double_well_gibbs_samples, em_harmonic)

A = sd.analysis


def test_kinetic_temperature_of_baoab_is_the_exact_finite_step_value():
    est = A.kinetic_temperature(baoab_harmonic(), burn_in=25, per_coordinate=True)
    # recorded BAOAB velocities: <v^2> = (T/m)(1 - dt^2 k / (4m)) exactly (Leimkuhler & Matthews)
    exact = np.array([sd.theory.baoab_harmonic_variances(k, BAOAB_DT, BAOAB_T)[1] for k in BAOAB_K])
    se = est["standard_error"].values
    assert np.all(np.abs(est["value"].values - exact) < 4 * se)
    assert abs(exact[1] - BAOAB_T) > 10 * se[1]  # the bath temperature is resolved as wrong
    scalar = A.kinetic_temperature(baoab_harmonic(), burn_in=25)
    assert scalar["value"].ndim == 0
    assert abs(float(scalar["value"]) - exact.mean()) < 4 * float(scalar["standard_error"])


def test_configurational_and_variance_temperatures_of_euler_maruyama():
    ds = em_harmonic()
    exact = EM_T / (1.0 - EM_K * EM_DT / 2.0)  # k Var = T / (1 - k dt / 2): the EM bias
    for est in (A.configurational_temperature(ds, per_coordinate=True),
                A.variance_temperature(ds, per_coordinate=True)):
        se = est["standard_error"].values
        assert np.all(np.abs(est["value"].values - exact) < 4 * se)
        assert abs(exact[1] - EM_T) > 10 * se[1]
    # scalar configurational temperature: sum_i k_i^2 Var_i / sum_i k_i
    conf = A.configurational_temperature(ds)
    exact_c = np.sum(EM_K * exact) / EM_K.sum()
    assert abs(float(conf["value"]) - exact_c) < 4 * float(conf["standard_error"])
    pos = A.variance_temperature(ds)  # tr(HC)/d
    assert abs(float(pos["value"]) - exact.mean()) < 4 * float(pos["standard_error"])


def test_configurational_temperature_is_exact_for_gibbs_samples_of_a_double_well():
    T = 0.4
    x = double_well_gibbs_samples(200_000, T, seed=3).reshape(200, 1000, 1)
    land = sd.landscapes.DoubleWell(dim=1)
    ds = as_run(x, land, T)
    est = A.configurational_temperature(ds)
    assert abs(float(est["value"]) - T) < 4 * float(est["standard_error"])
    hist = A.histogram_temperature(ds, bins=60)
    assert abs(float(hist["value"]) - T) < 4 * float(hist["standard_error"])
    assert abs(float(hist["value"]) - 1.05 * T) > 4 * float(hist["standard_error"])


def test_histogram_temperature_standard_error_is_calibrated():
    # spread of the estimate over 100 independent data sets vs its reported standard error
    T = 0.5
    land = sd.landscapes.DoubleWell(dim=1)
    vals, ses = [], []
    for seed in range(100):
        x = double_well_gibbs_samples(2000, T, seed=100 + seed).reshape(20, 100, 1)
        est = A.histogram_temperature(as_run(x, land, T), bins=30)
        vals.append(float(est["value"]))
        ses.append(float(est["standard_error"]))
    ratio = np.std(vals, ddof=1) / np.mean(ses)
    # the sample sd of 100 draws has relative SE 1/sqrt(2*99) = 7 %: 4 SE -> [0.72, 1.28]
    assert 0.72 < ratio < 1.28
    assert abs(np.mean(vals) - T) < 4 * np.std(vals, ddof=1) / 10


def test_histogram_temperature_of_correlated_em_ensemble_along_each_coordinate():
    ds = em_harmonic()
    exact = EM_T / (1.0 - EM_K * EM_DT / 2.0)
    for c in (0, 1):
        est = A.histogram_temperature(ds, coordinate=c)
        assert abs(float(est["value"]) - exact[c]) < 4 * float(est["standard_error"])


def test_temperature_dispatch_accessor_and_dask():
    b = baoab_harmonic()
    assert b.sd.temperature(burn_in=25).attrs["temperature_method"] == "kinetic"
    assert em_harmonic().sd.temperature().attrs["temperature_method"] == "configurational"
    lazy = em_harmonic().chunk({"replica": 500})
    est = A.configurational_temperature(lazy)
    assert est["value"].chunks is not None
    np.testing.assert_allclose(float(est["value"]), float(A.configurational_temperature(em_harmonic())["value"]))
    np.testing.assert_allclose(A.variance_temperature(lazy, per_coordinate=True)["value"].values,
                               A.variance_temperature(em_harmonic(), per_coordinate=True)["value"].values)


def test_variance_temperature_with_a_full_hessian_and_explicit_stiffness():
    rng = np.random.default_rng(5)
    H = np.array([[2.0, 0.6], [0.6, 1.0]])
    T = 0.3
    x = rng.multivariate_normal([0, 0], T * np.linalg.inv(H), size=(100, 200))
    land = sd.landscapes.Harmonic(hessian=H)
    ds = as_run(x, land, T)
    for est in (A.variance_temperature(ds), A.variance_temperature(ds, hessian=H)):
        assert abs(float(est["value"]) - T) < 4 * float(est["standard_error"])
    per = A.variance_temperature(ds, per_coordinate=True)
    assert np.all(np.abs(per["value"].values - T) < 4 * per["standard_error"].values)
    # one coordinate alone (no 'dim' dimension): its marginal variance is T (H^-1)_00
    one = A.variance_temperature(ds["x"].sel(dim=0), stiffness=1.0 / np.linalg.inv(H)[0, 0])
    assert abs(float(one["value"]) - T) < 4 * float(one["standard_error"])


def test_temperature_bad_inputs():
    ds = em_harmonic()
    with pytest.raises(sd.ValidationError, match="method"):
        A.temperature(ds, method="thermometer")
    with pytest.raises(sd.ValidationError, match="'v'"):
        A.kinetic_temperature(ds)
    with pytest.raises(sd.ValidationError, match="not both"):
        A.variance_temperature(ds, stiffness=1.0, hessian=np.eye(2))
    bare = xr.Dataset({"x": ds["x"]})
    with pytest.raises(sd.ValidationError, match="needs the landscape"):
        A.configurational_temperature(bare)
    with pytest.raises(sd.ValidationError, match="burn_in"):
        A.kinetic_temperature(baoab_harmonic(), burn_in=-1)


def test_effective_temperature_on_a_finite_sum_problem_rebuilt_from_attributes():
    # the positional and configurational estimators read an SGD run's target (a least-squares problem,
    # rebuilt from its generator spec, with a constant Hessian); Gibbs samples at T return T
    spec = {"type": "LeastSquares", "data": {"generator": "gaussian_regression", "n": 256, "d": 3, "noise": 0.5,
                                             "seed": 0}}
    problem = sd.problems.problem_from_dict(spec)
    T = 0.01
    x = np.random.default_rng(9).multivariate_normal(problem.minimizer(), T * np.linalg.inv(problem.hessian),
                                                     size=(100, 200))
    ds = as_run(x, problem, T)
    for est in (A.variance_temperature(ds), A.configurational_temperature(ds)):
        assert abs(float(est["value"]) - T) < 4 * float(est["standard_error"])
