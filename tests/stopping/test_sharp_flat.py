"""The built-in SharpFlat landscape: its parameters are what they say, its gradient is right, the
exact 1-D theory applies, and Euler–Maruyama on it has the exact finite-step stationary law."""

import math

import numpy as np
import pytest

import stochdyn as sd

th = sd.theory


@pytest.mark.parametrize("kf,ks,dU", [(1.0, 9.0, 1.0), (2.0, 18.0, 1.5), (4.0, 1.0, 0.5)])
def test_curvatures_barrier_depths_and_gradient(kf, ks, dU):
    land = sd.landscapes.SharpFlat(dim=3, curvature_flat=kf, curvature_sharp=ks, barrier=dU, stiffness=2.0)
    np.testing.assert_allclose(land.value(land.minima), 0.0, atol=1e-14)  # equal depths
    np.testing.assert_allclose(land.grad(land.minima), 0.0, atol=1e-12)
    np.testing.assert_allclose(land.grad(land.saddle), 0.0, atol=1e-8)
    assert land.value(land.saddle) == pytest.approx(dU, rel=1e-12)
    H = land.hessian(land.minima)
    np.testing.assert_allclose(H[0], np.diag([kf, 2.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(H[1], np.diag([ks, 2.0, 2.0]), rtol=1e-6)
    assert land.hessian(land.saddle)[0, 0] < 0
    # the barrier is the highest point between the minima
    s = np.linspace(land.minima[0, 0], land.minima[1, 0], 2001)
    assert land.value(np.column_stack([s, np.zeros((s.size, 2))])).max() <= dU * (1 + 1e-12)
    # gradient against central finite differences, around the minima and far out
    pts = np.random.default_rng(1).normal(size=(40, 3)) * 2.0 * land.scale
    sd.landscapes.check_gradient(land, pts)
    assert sd.landscapes.landscape_from_dict(land.to_dict()) == land


def test_validation():
    with pytest.raises(sd.ValidationError, match="'curvature_sharp' parameter of SharpFlat must be > 0"):
        sd.landscapes.SharpFlat(curvature_sharp=0.0)
    with pytest.raises(sd.ValidationError, match="'barrier' parameter of SharpFlat"):
        sd.landscapes.SharpFlat(barrier=-1.0)


def test_exact_one_dimensional_theory_applies():
    land = sd.landscapes.SharpFlat(curvature_flat=1.0, curvature_sharp=9.0, barrier=1.0)
    flat, sharp = land.minima[:, 0]
    # the sharp minimum is left faster; 1/MFPT tends to Kramers' rate as the barrier grows (relative gap shrinks)
    gaps = []
    for T in (0.2, 0.1, 0.05):
        out_flat = th.mfpt_1d(land, flat, sharp, T)
        out_sharp = th.mfpt_1d(land, sharp, flat, T)
        assert out_sharp < out_flat
        k = th.kramers_rate_landscape(land, land.minima[1], land.saddle, T)
        gaps.append(abs(out_sharp * k - 1.0))
    assert gaps[2] < gaps[1] < gaps[0] < 0.3
    # occupation ratio of the basins tends to sqrt(k_flat / k_sharp) = 1/3 at low temperature (Laplace)
    gibbs = sd.analysis.gibbs_marginal(land, 0.02)
    p_sharp = 1.0 - float(gibbs.cdf(np.array([land.saddle[0]]))[0])
    assert (p_sharp / (1 - p_sharp)) == pytest.approx(1 / 3, rel=0.1)


def test_euler_maruyama_reaches_the_exact_finite_step_stationary_law():
    # T = 0.5, dt = 0.02, 2000 replicas from the flat minimum; after 30 time units (several relaxation times,
    # 1/(k_fs + k_sf) ~ 3) the fraction of time beyond the saddle over 30 more time units, against the exact
    # stationary law of the chain. SE from per-replica averages ~ 0.005; 4 SE. Gibbs differs by ~0.009 at this step.
    land = sd.landscapes.SharpFlat(curvature_flat=1.0, curvature_sharp=9.0, barrier=1.0)
    T, dt = 0.5, 0.02
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), land, land.minima[0], n_replicas=2000, n_steps=3000,
                     record_every=20, rng=21)
    inside = (ds["x"].isel(dim=0) > land.saddle[0]).astype(float).where(ds["time"] >= 30.0, drop=True)
    est = sd.analysis.average(inside, dims=("replica", "time"))
    exact = th.em_stationary_density_1d(land, dt, T).probability(land.saddle[0])
    assert abs(float(est["value"]) - exact) < 4 * float(est["standard_error"])
