"""Theory added for the SGD studies (analyses/loss_fluctuations_batch_size, gradient_clipping_bias_variance,
max_stable_lr_batch_size, batch_size_warmup_snr): fourth moments of SGD on quadratics (loss fluctuations),
gradient-noise moments, the norm-test survival, clipping errors, the second-moment operator.

Exact results are checked exactly where they can be (enumeration of every mini-batch sequence, identities
between theory functions); Monte Carlo checks use 4 standard errors (a correct implementation fails under a
new seed with probability < 1e-4) and check that the alternative they rule out is many standard errors away.
"""

import itertools
import math

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory as th

P = sd.problems
Z = 4.0
TINY = P.LeastSquares.from_data(P.gaussian_regression(6, 2, noise=0.7, seed=1))


def _batches(prob, B, mode):
    """Every equally likely mini-batch as (indices, multipliers c_j) for one step."""
    N = prob.n
    if mode == "with_replacement":
        return [(list(b), [1.0 / B] * B) for b in itertools.product(range(N), repeat=B)]
    if mode == "without_replacement":
        return [(list(b), [1.0 / B] * B) for b in itertools.combinations(range(N), B)]
    order, starts, _ = prob.strata()  # stratified: n_h distinct draws per stratum, multipliers N_h / (N n_h)
    n_h = th.stratified_allocation(prob, B)
    per = [[(list(c), [(starts[h + 1] - starts[h]) / (N * n_h[h])] * n_h[h])
            for c in itertools.combinations(order[starts[h]:starts[h + 1]], n_h[h])] for h in range(n_h.size)]
    return [(sum((p[0] for p in combo), []), sum((p[1] for p in combo), [])) for combo in itertools.product(*per)]


def _enumerate(prob, lr, B, mode, x0, n_steps, momentum=0.0):
    """Exact E and E[.^2] of U(theta_n), the next mini-batch loss and |theta_n - theta*|^2 over every batch sequence."""
    ts = prob.minimizer()
    batches = _batches(prob, B, mode)
    losses = lambda th_: prob.per_sample(th_)[0]  # noqa: E731
    acc = np.zeros(6)
    for seq in itertools.product(batches, repeat=n_steps):
        x, v = np.array(x0, float), np.zeros(prob.dim)
        for idx, c in seq:
            g = np.asarray(c) @ prob.per_sample(x)[1][idx]  # c_j = w_i N_h / n_h
            v = momentum * v + g
            x = x - lr * v
        U = float(prob.value(x))
        e2 = float((x - ts) @ (x - ts))
        ell = losses(x)
        for idx, c in batches:  # the next batch's loss, independent of theta_n
            Lb = float(np.asarray(c) @ ell[idx])
            acc += np.array([U, U * U, Lb, Lb * Lb, e2, e2 * e2]) / len(batches)
    acc /= len(batches) ** n_steps
    return {"mean_loss": acc[0], "var_loss": acc[1] - acc[0] ** 2, "mean_batch_loss": acc[2],
            "var_batch_loss": acc[3] - acc[2] ** 2, "mean_sq_distance": acc[4], "var_sq_distance": acc[5] - acc[4] ** 2}


@pytest.mark.parametrize("mode,B,momentum", [("with_replacement", 2, 0.0), ("without_replacement", 3, 0.0),
                                             ("with_replacement", 1, 0.4), ("stratified", 3, 0.0)])
def test_fourth_moments_equal_enumeration_over_every_batch_sequence(mode, B, momentum):
    prob = TINY
    if mode == "stratified":
        prob = P.LeastSquares(TINY.rows[:, :-1], TINY.rows[:, -1], labels=[0, 0, 0, 1, 1, 1])
    x0 = prob.minimizer() + np.array([0.6, -0.4])
    samp = sd.Sampling(mode) if mode != "stratified" else sd.Sampling("stratified")
    got = th.sgd_loss_moments(prob, 0.3, B, x0=x0, n_steps=2, sampling=samp, momentum=momentum)
    want = _enumerate(prob, 0.3, B, mode, x0, 2, momentum)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_stationary_fourth_moments_agree_with_second_moments_and_a_schedule_of_steps():
    prob = P.LeastSquares.from_data(P.gaussian_regression(40, 2, noise=0.5, seed=3))
    for samp in ("with_replacement", "without_replacement"):
        r = th.sgd_loss_moments(prob, 0.2, 5, sampling=samp)
        C = th.sgd_stationary_covariance(prob, 0.2, 5, sampling=samp)
        np.testing.assert_allclose(r["mean_loss"], prob.value(prob.minimizer()) + 0.5 * np.trace(prob.hessian @ C),
                                   rtol=1e-11)
        np.testing.assert_allclose(r["mean_sq_distance"], np.trace(C), rtol=1e-11)
        # the transient converges to the stationary law (geometrically, at the fourth-moment radius)
        far = th.sgd_loss_moments(prob, 0.2, 5, x0=prob.minimizer() + 1.0, n_steps=400, sampling=samp)
        for k in r:
            np.testing.assert_allclose(far[k], r[k], rtol=1e-9)
    # B = N without replacement is full-batch gradient descent: at theta* nothing fluctuates
    r = th.sgd_loss_moments(prob, 0.2, prob.n, sampling="without_replacement")
    assert abs(r["var_loss"]) < 1e-20 and abs(r["var_batch_loss"]) < 1e-20


def test_loss_variance_against_simulation_and_the_gaussian_closure():
    # d = 1, B = 1, lr = 0.1: the stationary law of theta is far from Gaussian (kurtosis 2: multiplicative and
    # additive noise come from the same draw), so the Gaussian closure Var U = tr((HC)^2)/2 (twice the exact
    # value here) is the alternative to rule out (checked > 12 SE away)
    prob = P.LeastSquares.from_data(P.gaussian_regression(40, 1, noise=0.5, seed=3))
    lr, B = 0.1, 1
    r = th.sgd_loss_moments(prob, lr, B)
    ds = sd.simulate(sd.SGD(lr=lr, batch_size=B, record_extra=("batch_loss",)), prob, x0=prob.minimizer(),
                     n_replicas=40000, n_steps=200, record_every=200, rng=11)
    U = ds.energy.isel(time=-1).values
    L = ds.batch_loss.isel(time=-1).values
    for name, x, mean in (("loss", U, r["mean_loss"]), ("batch_loss", L, r["mean_batch_loss"])):
        dev2 = (x - mean) ** 2  # the exact mean is known, so the mean of dev2 is unbiased for the variance
        se = dev2.std(ddof=1) / math.sqrt(x.size)
        assert abs(dev2.mean() - r[f"var_{name}"]) < Z * se, (name, dev2.mean(), r[f"var_{name}"], se)
        if name == "loss":
            C = th.sgd_stationary_covariance(prob, lr, B)
            HC = prob.hessian @ C
            assert abs(0.5 * np.trace(HC @ HC) - r["var_loss"]) > 3 * Z * se


def test_fourth_moment_limit_lies_below_the_mean_square_limit():
    prob = P.LeastSquares.from_data(P.gaussian_regression(40, 2, noise=0.5, seed=3))
    eta = th.sgd_stability_limit(prob, 2)
    assert th.sgd_moment_operator_radius(prob, 0.99 * eta, 2) < 1.0 < th.sgd_fourth_moment_radius(prob, 0.99 * eta, 2)
    with pytest.raises(ValueError, match="fourth-moment operator is not stable"):
        th.sgd_loss_moments(prob, 0.99 * eta, 2)
    assert th.sgd_fourth_moment_radius(prob, 0.05, 2) < 1.0


def test_gradient_noise_moments_equal_the_average_over_a_set_of_points():
    prob = P.LeastSquares.from_data(P.gaussian_regression(30, 3, noise=0.5, seed=2))
    pts = prob.minimizer() + np.random.default_rng(0).normal(size=(7, 3))
    g2, tr = [], []
    for p in pts:
        _, gr = prob.per_sample(p)
        G = gr.mean(axis=0)
        g2.append(G @ G)
        tr.append(((gr - G) ** 2).sum(axis=1).mean())
    got = th.gradient_noise_moments(prob, pts.mean(axis=0), np.cov(pts.T, ddof=0))
    np.testing.assert_allclose(got, (np.mean(g2), np.mean(tr)), rtol=1e-11)
    # at theta*: no signal, and the one-draw covariance of gradient_noise_covariance
    g0, t0 = th.gradient_noise_moments(prob, prob.minimizer())
    assert g0 < 1e-25
    np.testing.assert_allclose(t0, np.trace(th.gradient_noise_covariance(prob, prob.minimizer(), 1)), rtol=1e-12)


def test_second_moment_operator():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(25, 2))
    prob = P.LeastSquares(X, X @ [1.0, -2.0])  # interpolation: no noise at theta*, the recursion is homogeneous
    T = th.sgd_second_moment_operator(prob, 0.3, 3)
    e0 = np.array([0.7, -0.2])
    m, C = th.sgd_moments(prob, 0.3, 3, prob.minimizer() + e0, 1)
    e1 = m - prob.minimizer()
    np.testing.assert_allclose((T @ np.outer(e0, e0).ravel()).reshape(2, 2), C + np.outer(e1, e1), rtol=1e-12)
    np.testing.assert_allclose(max(abs(np.linalg.eigvals(T))), th.sgd_moment_operator_radius(prob, 0.3, 3), rtol=1e-12)


def test_norm_test_survival_converges_and_matches_direct_sampling():
    x0, lr, B, kappa, n = 1.0, 0.1, 8, 0.9, 40
    S, lam = th.norm_test_survival(x0, lr, B, kappa, n, switch_snr=True)
    assert S[0] == 1.0 and np.all(np.diff(S) <= 0) and S[-1] < 1e-12
    S2, lam2 = th.norm_test_survival(x0, lr, B, kappa, n, points_per_width=24, switch_snr=True)
    np.testing.assert_allclose(S2, S, atol=1e-10)
    assert lam2 == pytest.approx(lam, rel=1e-9)
    # independent check: direct sampling of the model (Gaussian draws, the test, the step) with NumPy
    rng = np.random.default_rng(5)
    R = 100000
    x, alive, surv, at_switch = np.full(R, x0), np.ones(R, bool), [1.0], np.full(R, np.nan)
    for _ in range(n):
        g = x[:, None] + rng.normal(size=(R, B))
        gb = g.mean(axis=1)
        fired = alive & (g.var(axis=1, ddof=1) > B * kappa**2 * gb**2)
        at_switch[fired] = B * x[fired] ** 2  # the exact SNR at the parameters where the test fired
        alive &= ~fired
        surv.append(alive.mean())
        x = x - lr * gb
    surv = np.array(surv)
    for t in (3, 6, 10):
        se = math.sqrt(S[t] * (1 - S[t]) / R)
        assert abs(surv[t] - S[t]) < Z * se, (t, surv[t], S[t], se)
    assert abs(at_switch.mean() - lam) < Z * at_switch.std() / math.sqrt(R), (at_switch.mean(), lam)
    assert lam > 1 / kappa**2 + 3 * Z * at_switch.std() / math.sqrt(R)  # the test fires well above the threshold
    # the alternative: a test that fired exactly when the exact SNR B x_t^2 (mean path) fell below 1/kappa^2
    t_cross = math.ceil(math.log(math.sqrt(1 / (kappa**2 * B)) / x0) / math.log(1 - lr))
    assert S[t_cross - 1] < 0.5


def test_clipping_errors():
    rng = np.random.default_rng(6)
    for d, G, s, C in ((1, 1.0, 1.0, 0.8), (10, 1.0, 0.5, 0.7)):
        r = th.gaussian_clipping_error(C, G, s, d)
        g = rng.normal(size=(200000, d)) * s
        g[:, 0] += G
        n = np.linalg.norm(g, axis=1)
        err = ((g * np.minimum(1.0, C / n)[:, None] - np.eye(d)[0] * G) ** 2).sum(axis=1)
        der = 2 * (C - G * g[:, 0] / n) * (n > C)
        for sim, key in ((err, "mse"), (der, "dmse")):
            assert abs(sim.mean() - r[key]) < Z * sim.std() / math.sqrt(sim.size), (d, key, sim.mean(), r[key])
        assert r["mse"] == pytest.approx(r["bias_sq"] + r["variance"], rel=1e-12)
    # no clipping in effect: unbiased, MSE = d s^2
    r = th.gaussian_clipping_error(1e3, 1.0, 0.5, 4)
    assert r["bias_sq"] < 1e-20 and r["mse"] == pytest.approx(1.0, rel=1e-9) and r["dmse"] == pytest.approx(0.0, abs=1e-12)
    # exponential magnitudes: closed form against quadrature, and the derivative vanishes at the true magnitude
    from scipy import integrate

    mu, C = 2.0, 1.3
    f = lambda g: (min(g, C) - mu) ** 2 * math.exp(-g / mu) / mu  # noqa: E731
    quad = integrate.quad(f, 0, C, epsrel=1e-12)[0] + integrate.quad(f, C, np.inf, epsrel=1e-12)[0]
    assert th.exponential_clipping_mse(C, mu)[0] == pytest.approx(quad, rel=1e-10)
    assert th.exponential_clipping_mse(mu, mu)[1] == 0.0
    # finite sum, one example per step: clipping at a huge threshold leaves the one-draw covariance
    prob = P.LeastSquares.from_data(P.gaussian_regression(30, 3, noise=0.5, seed=2))
    th0 = prob.minimizer() + 0.3
    r = th.finite_sum_clipping_error(prob, th0, 1e6)
    assert r["bias_sq"] < 1e-25
    assert r["variance"] == pytest.approx(np.trace(th.gradient_noise_covariance(prob, th0, 1)), rel=1e-12)
    # 1-D non-negative gradients: the MSE is smallest at the true gradient (derivative 0 there, +/- around it)
    a = rng.exponential(1.0, size=50)
    prob1 = P.LeastSquares(np.ones((50, 1)), -a)
    at = [th.finite_sum_clipping_error(prob1, [0.0], c)["dmse"] for c in (0.8 * a.mean(), a.mean(), 1.25 * a.mean())]
    assert at[0] < 0 and at[1] == pytest.approx(0.0, abs=1e-14) and at[2] > 0


def test_fourth_moments_agree_with_the_one_dimensional_moment_recursion():
    # an independent derivation (binomial convolution of the affine map's moments, d = 1, with replacement)
    prob = P.LeastSquares.from_data(P.gaussian_regression(40, 1, noise=0.5, seed=3))
    for lr, B in ((0.1, 1), (0.3, 4)):
        m = th.sgd_stationary_moments_1d(prob, lr, B, order=4)
        r = th.sgd_loss_moments(prob, lr, B)
        np.testing.assert_allclose([r["mean_sq_distance"], r["var_sq_distance"]], [m[2], m[4] - m[2] ** 2], rtol=1e-10)


def test_lyapunov_exponent_in_one_dimension():
    rng = np.random.default_rng(7)
    x = rng.normal(size=12)
    prob = P.LeastSquares(x[:, None], np.zeros(12))  # theta* = 0, no noise: e_n = e_0 prod_t (1 - lr abar_t)
    a = x**2
    for B in (1, 2, 3):
        want = np.mean([np.log(abs(1 - 0.9 * np.mean(a[list(b)]))) for b in itertools.product(range(12), repeat=B)])
        assert th.sgd_lyapunov_exponent_1d(prob, 0.9, B) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(th.sgd_lyapunov_exponent_1d(prob, [0.5, 0.9], 2),
                               [th.sgd_lyapunov_exponent_1d(prob, e, 2) for e in (0.5, 0.9)], rtol=1e-14)
    # Jensen: 2 gamma <= log E alpha^2, so gamma < 0 at the mean-square limit (the almost-sure limit lies above it)
    eta = th.sgd_stability_limit(prob, 1)
    assert 2 * th.sgd_lyapunov_exponent_1d(prob, eta, 1) < np.log(th.sgd_moment_operator_radius(prob, eta, 1)) + 1e-9
    # against simulation: the mean of log|e_n| after n steps is n gamma (variance n Var log|alpha|: light tails)
    n, lr = 60, 1.2 * th.sgd_stability_limit(prob, 2)  # above the mean-square limit, below the almost-sure one
    ds = sd.simulate(sd.SGD(lr=lr, batch_size=2, record_extra=()), prob, x0=[1.0], n_replicas=20000, n_steps=n,
                     record_every=n, rng=3)
    lg = np.log(np.abs(ds.x.isel(time=-1).values[:, 0]))
    gamma = th.sgd_lyapunov_exponent_1d(prob, lr, 2)
    se = lg.std(ddof=1) / math.sqrt(lg.size)
    assert abs(lg.mean() - n * gamma) < Z * se
    assert n * gamma < -3 * Z * se and th.sgd_moment_operator_radius(prob, lr, 2) > 1  # runs decay, E e^2 grows
