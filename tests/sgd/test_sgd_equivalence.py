"""The idealised model: SGD with additive Gaussian gradient noise of covariance 2T/eta is Euler-Maruyama."""

import numpy as np
import pytest

import stochdyn as sd

L = sd.landscapes
RUN = dict(n_replicas=64, n_steps=400, record_every=40, rng=11)


def test_sgd_with_gradient_noise_2T_over_eta_is_bit_identical_to_euler_maruyama():
    # eta = 2^-4 and T = 1/2 make 2T/eta = 16 and eta*sqrt(16) = sqrt(2 T eta) = 1/4 exact in binary, so the
    # kernels' arithmetic (x - lr*grad + (lr*sqrt(Sigma))*w vs x - dt*grad + sqrt(2 T dt)*w) agrees bit for bit
    land = L.DoubleWell(dim=2, tilt=0.1)
    eta, T = 0.0625, 0.5
    a = sd.simulate(sd.SGD(lr=eta, gradient_noise=2 * T / eta), land, x0=[-1.0, 0.3], **RUN)
    b = sd.simulate(sd.EulerMaruyama(dt=eta, temperature=T), land, x0=[-1.0, 0.3], **RUN)
    np.testing.assert_array_equal(a.x.values, b.x.values)
    np.testing.assert_array_equal(a.energy.values, b.energy.values)
    np.testing.assert_array_equal(a.time.values, a.step.values)  # SGD: time = step; EM: time = step * dt
    np.testing.assert_allclose(b.time.values, eta * b.step.values)


def test_generic_step_and_temperature_agree_to_rounding():
    land = L.DoubleWell(dim=2)
    eta, T = 0.013, 0.37
    a = sd.simulate(sd.SGD(lr=eta, gradient_noise=[2 * T / eta, 2 * T / eta]), land, x0=[-1.0, 0.0], **RUN)
    b = sd.simulate(sd.EulerMaruyama(dt=eta, temperature=T), land, x0=[-1.0, 0.0], **RUN)
    np.testing.assert_allclose(a.x.values, b.x.values, rtol=0, atol=1e-12)


def test_full_gradient_noise_covariance_matches_em_with_diffusion():
    land = L.Harmonic(stiffness=[1.0, 3.0])
    eta = 0.02
    D = np.array([[0.4, 0.1], [0.1, 0.2]])
    a = sd.simulate(sd.SGD(lr=eta, gradient_noise=2 * D / eta), land, x0=[1.0, -1.0], **RUN)
    b = sd.simulate(sd.EulerMaruyama(dt=eta, diffusion=D), land, x0=[1.0, -1.0], **RUN)
    np.testing.assert_allclose(a.x.values, b.x.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("T", [0.3, 0.0])
def test_sgld_with_the_exact_gradient_is_bit_identical_to_euler_maruyama(T):
    land = L.MuellerBrown()
    a = sd.simulate(sd.SGLD(lr=1e-4, temperature=T), land, x0=[-0.5, 1.5], **RUN)
    b = sd.simulate(sd.EulerMaruyama(dt=1e-4, temperature=T), land, x0=[-0.5, 1.5], **RUN)
    np.testing.assert_array_equal(a.x.values, b.x.values)


def test_momentum_sgd_on_a_landscape_is_the_heavy_ball_recursion():
    land = L.Harmonic(stiffness=[1.0, 3.0])
    ds = sd.simulate(sd.SGD(lr=0.1, momentum=0.9), land, x0=[1.0, -1.0], n_replicas=2, n_steps=30, rng=0)
    x, v = np.array([1.0, -1.0]), np.zeros(2)
    for t in range(30):
        v = 0.9 * v + np.array([1.0, 3.0]) * x
        x = x - 0.1 * v
        np.testing.assert_allclose(ds.x.isel(time=t + 1, replica=0).values, x, rtol=1e-13, atol=1e-15)
