"""SGD on quadratic problems against exact finite-step, finite-batch theory (stochdyn.theory.sgd)."""

import numpy as np
import pytest
from sgd_helpers import Z, assert_within, cov_se, mean_se

import stochdyn as sd
from stochdyn import theory as th

P = sd.problems
LS = P.LeastSquares.from_data(P.gaussian_regression(20, 2, noise=0.5, seed=3))
THETA = LS.minimizer()


def _stationary_sample(integ, prob, n_replicas, n_steps, rng):
    ds = sd.simulate(integ, prob, x0=prob.minimizer(), n_replicas=n_replicas, n_steps=n_steps, record_every=n_steps,
                     rng=rng)
    return ds.x.isel(time=-1).values


def _assert_cov(x, C, what, alternative=None):
    Cs, se = cov_se(x)
    iu = np.triu_indices(C.shape[0])
    assert_within(Cs[iu], se[iu], C[iu], what)
    if alternative is not None:  # the effect under test is resolved: the alternative is ruled out (> 12 SE off)
        far = np.abs(np.diag(alternative) - np.diag(C)) / np.diag(se)
        assert far.max() > 3 * Z, f"{what}: the alternative is only {far} SE away"


@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement"])
@pytest.mark.parametrize("opt", ["plain", "heavy_ball", "nesterov"])
def test_stationary_covariance_at_finite_step_and_batch(sampling, opt):
    # N = 20, B = 5: the finite-population correction (N-B)/(N-1) = 0.79 separates the two designs by > 12 SE;
    # started at theta* (the stationary mean); 150 steps make the covariance's transient (1 - lr*0.91)^300 negligible
    kw = {"plain": {}, "heavy_ball": {"momentum": 0.5}, "nesterov": {"momentum": 0.5, "nesterov": True}}[opt]
    lr = 0.1 if opt == "plain" else 0.05
    C = th.sgd_stationary_covariance(LS, lr, 5, sampling=sampling, **kw)
    other = "without_replacement" if sampling == "with_replacement" else "with_replacement"
    x = _stationary_sample(sd.SGD(lr=lr, batch_size=5, sampling=sd.Sampling(sampling), **kw), LS, 20000, 150, 1)
    _assert_cov(x, C, f"{sampling} {opt}", th.sgd_stationary_covariance(LS, lr, 5, sampling=other, **kw))
    assert_within(*mean_se(x), THETA, "stationary mean")


def test_multiplicative_noise_matters():
    # an additive-noise Lyapunov equation with the noise frozen at theta* misses the multiplicative part
    lr = 0.7 * th.sgd_stability_limit(LS, 1)
    C = th.sgd_stationary_covariance(LS, lr, 1)
    Sig = th.gradient_noise_covariance(LS, THETA, 1)
    C_add = th.stationary_covariance_linear(np.eye(2) - lr * LS.hessian, np.linalg.cholesky(lr * lr * Sig))
    assert np.all(np.diag(C) > 1.2 * np.diag(C_add))
    x = _stationary_sample(sd.SGD(lr=lr, batch_size=1), LS, 20000, 200, 2)
    _assert_cov(x, C, "B=1 near the stability limit", C_add)


def test_stratified_sampling_stationary_covariance():
    data = P.imbalanced_classes(30, 2, fractions=(0.6, 0.3, 0.1), separation=3.0, seed=4)
    prob = P.LeastSquares(data.X, data.X @ [1.0, -1.0] + data.labels * 1.5, labels=data.labels)
    for samp in (sd.Sampling("stratified"), sd.Sampling("stratified", "neyman",
                                                         stratum_std=th.stratum_gradient_std(prob, prob.minimizer()))):
        C = th.sgd_stationary_covariance(prob, 0.1, 6, sampling=samp)
        x = _stationary_sample(sd.SGD(lr=0.1, batch_size=6, sampling=samp), prob, 20000, 100, 3)
        _assert_cov(x, C, f"stratified {samp.allocation}", th.sgd_stationary_covariance(prob, 0.1, 6))


def test_sgld_and_extra_gradient_noise_on_minibatches():
    # SGLD: minibatch noise plus injected sqrt(2 lr T) noise; SGD: plus additive Gaussian gradient noise
    C = th.sgd_stationary_covariance(LS, 0.1, 4, temperature=0.01)
    x = _stationary_sample(sd.SGLD(lr=0.1, batch_size=4, temperature=0.01), LS, 20000, 150, 4)
    _assert_cov(x, C, "SGLD", th.sgd_stationary_covariance(LS, 0.1, 4))
    G = np.array([[0.5, 0.2], [0.2, 0.3]])
    C = th.sgd_stationary_covariance(LS, 0.1, 4, gradient_noise=G)
    x = _stationary_sample(sd.SGD(lr=0.1, batch_size=4, gradient_noise=G), LS, 20000, 150, 5)
    _assert_cov(x, C, "SGD + gradient noise", th.sgd_stationary_covariance(LS, 0.1, 4))
    # with momentum the noise enters through the gradient (v <- mu v + g + xi), not the update
    C = th.sgd_stationary_covariance(LS, 0.05, 4, momentum=0.5, gradient_noise=G)
    x = _stationary_sample(sd.SGD(lr=0.05, batch_size=4, momentum=0.5, gradient_noise=G), LS, 20000, 150, 12)
    _assert_cov(x, C, "heavy ball + gradient noise", th.sgd_stationary_covariance(LS, 0.05, 4, momentum=0.5))


def test_ritz_energy_quadrature_points_as_data():
    # lr * lambda_max = 0.44: far from the small-step (Ornstein-Uhlenbeck) limit, which is the alternative here
    prob = P.RitzEnergy1D(n_basis=3, n_quad=40, forcing="sine")
    C = th.sgd_stationary_covariance(prob, 0.01, 4)
    C_ou = th.small_step_covariance(prob.hessian, 0.01, th.gradient_noise_covariance(prob, prob.minimizer(), 4))
    x = _stationary_sample(sd.SGD(lr=0.01, batch_size=4), prob, 10000, 150, 6)
    _assert_cov(x, C, "Ritz", C_ou)


def test_transient_moments_under_a_warmup_cosine_schedule():
    sched = sd.LRSchedule.cosine(total_steps=60, warmup_steps=10, final_factor=0.1)
    n = 50
    lrs = 0.3 * sched.factor(np.arange(1, n + 1))
    x0 = THETA + np.array([1.5, -1.0])
    m, C = th.sgd_moments(LS, lrs, 3, x0, n, momentum=0.3)
    ds = sd.simulate(sd.SGD(lr=0.3, batch_size=3, momentum=0.3, lr_schedule=sched), LS, x0=x0, n_replicas=20000,
                     n_steps=n, record_every=n, rng=7)
    x = ds.x.isel(time=-1).values
    assert_within(*mean_se(x), m, "transient mean")
    _assert_cov(x, C, "transient covariance")
    np.testing.assert_allclose(ds.lr.isel(time=-1).values, lrs[-1], rtol=1e-15)


def test_mean_square_stability_limit():
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 1.5, size=40)
    prob = P.LeastSquares(x[:, None], 2 * x + 0.1 * rng.normal(size=40))
    H, varA = np.mean(x**2), np.var(x**2)
    for B in (1, 4):  # d = 1: E[(1 - lr M)^2] < 1  <=>  lr < 2H / (H^2 + Var(x^2)/B)
        np.testing.assert_allclose(th.sgd_stability_limit(prob, B), 2 * H / (H * H + varA / B), rtol=1e-9)
    eta_ms = th.sgd_stability_limit(prob, 1)
    assert th.sgd_moment_operator_radius(prob, 0.9 * eta_ms, 1) < 1 < th.sgd_moment_operator_radius(prob, 1.1 * eta_ms, 1)
    # the exact moment recursion behind the limit, against simulation on both sides of it. Few steps (5): the
    # product of random contractions is heavy-tailed, and its mean is estimable only over short horizons.
    ts = prob.minimizer()
    for f, grows in ((0.9, False), (1.1, True)):
        m, C = th.sgd_moments(prob, f * eta_ms, 1, ts + 1.0, 5)
        pred = C[0, 0] + (m[0] - ts[0]) ** 2
        ds = sd.simulate(sd.SGD(lr=f * eta_ms, batch_size=1), prob, x0=ts + 1.0, n_replicas=100000, n_steps=5,
                         record_every=5, rng=8)
        e2 = (ds.x.isel(time=-1).values[:, 0] - ts[0]) ** 2
        mu, se = mean_se(e2)
        assert_within(mu, se, pred, f"E e_5^2 at {f} x limit")
        assert (mu > 1.0 + Z * se) == grows


def test_small_step_limit_and_effective_temperature():
    Sig = th.gradient_noise_covariance(LS, THETA, 4)
    errs = []
    for eta in (1e-2, 1e-3, 1e-4):
        C = th.sgd_stationary_covariance(LS, eta, 4)
        C0 = th.small_step_covariance(LS.hessian, eta, Sig)
        errs.append(np.abs(C - C0).max() / np.abs(C0).max())
        # temperature read off the covariance (equipartition) -> eta tr(Sigma_B) / (2d)
        np.testing.assert_allclose(th.equipartition_temperature(LS.hessian, C0), th.effective_temperature(eta, Sig),
                                   rtol=1e-12)
    assert errs[0] > 5 * errs[1] > 25 * errs[2]  # the finite-step correction is O(eta)


def test_full_batch_gradient_descent_is_deterministic():
    ds = sd.simulate(sd.SGD(lr=0.2), LS, x0=[0.0, 0.0], n_replicas=3, n_steps=20, record_every=20, rng=0)
    x = np.zeros(2)
    for _ in range(20):
        x = x - 0.2 * LS.grad(x)
    np.testing.assert_allclose(ds.x.isel(time=-1).values, np.broadcast_to(x, (3, 2)), rtol=1e-12)
    assert int(ds.examples.isel(time=-1)[0]) == 20 * LS.n and int(ds.batch_size.isel(time=-1)[0]) == LS.n
