"""Theory added for the studies of issue 6 (stochdyn.theory.sgd): each formula against brute-force enumeration
of every mini-batch of a tiny problem (exact, to rounding), plus one Monte Carlo check of the compressed-worker
law against the SGD kernel (4 standard errors: a correct implementation fails with probability < 1e-4)."""

import itertools
import math

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory as th
from reference import linear_problem
from stochdyn._validation import ValidationError

P = sd.problems
Z = 4.0


def _tiny_least_squares(weights=None):
    X = np.array([[1.0, 0.3], [-0.5, 2.0], [0.7, -1.1], [2.0, 0.4], [-1.2, -0.6]])
    y = np.array([0.5, -1.0, 2.0, 0.3, 1.1])
    return P.LeastSquares(X, y, weights=weights, labels=[0, 0, 0, 1, 1])


def _batches(N, B):
    return np.array(list(itertools.product(range(N), repeat=B)))


@pytest.mark.parametrize("weights", [None, [0.1, 0.3, 0.2, 0.25, 0.15]])
def test_minibatch_loss_variance_by_enumeration(weights):
    prob = _tiny_least_squares(weights)
    theta = np.array([0.4, -0.3])
    losses, _ = prob.per_sample(theta)
    u = prob.n * prob.weights * losses
    for B in (1, 2, 3):
        means = u[_batches(prob.n, B)].mean(axis=1)  # every ordered batch, equally likely
        assert th.minibatch_loss_variance(prob, theta, B) == pytest.approx(means.var(), rel=1e-12)
        combos = np.array(list(itertools.combinations(range(prob.n), B)))  # without replacement
        assert th.minibatch_loss_variance(prob, theta, B, "without_replacement") == pytest.approx(
            u[combos].mean(axis=1).var(), rel=1e-12, abs=1e-15)
    assert th.minibatch_loss_variance(prob, theta, None) == 0.0
    assert np.mean(u) == pytest.approx(prob.value(theta), rel=1e-12)  # the estimate is unbiased


def test_stratum_variance_terms_sum_to_the_stratified_variance_and_match_enumeration():
    prob = _tiny_least_squares()
    theta = np.array([0.4, -0.3])
    B = 3  # allocation (2, 1) for strata of sizes (3, 2)
    terms = th.stratum_variance_terms(prob, theta, B)
    assert th.stratified_allocation(prob, B).tolist() == [2, 1]
    assert terms.sum() == pytest.approx(th.stratified_variance(prob, theta, B), rel=1e-12)
    _, g = prob.per_sample(theta)
    u = g * prob.n * prob.weights[:, None]
    est = [(3 / 5) * u[list(a)].mean(axis=0) + (2 / 5) * u[[b]].mean(axis=0)
           for a in itertools.combinations(range(3), 2) for b in (3, 4)]
    est = np.array(est)
    assert terms.sum() == pytest.approx(((est - est.mean(axis=0)) ** 2).sum(axis=1).mean(), rel=1e-12)
    assert est.mean(axis=0) == pytest.approx(prob.grad(theta), rel=1e-12)


def test_discrete_mean_law_by_enumeration():
    pts = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 3.0]])
    p = np.array([0.2, 0.5, 0.3])
    for n in (1, 2, 4):
        means, probs = th.discrete_mean_law(pts, p, n)
        assert probs.sum() == pytest.approx(1.0, rel=1e-12)
        tuples = _batches(3, n)
        w = np.prod(p[tuples], axis=1)
        brute = pts[tuples].mean(axis=1)
        for f in (lambda x: x, lambda x: x**2, lambda x: np.abs(x).max(axis=1, keepdims=True)):
            assert probs @ f(means) == pytest.approx(w @ f(brute), rel=1e-12)
    with pytest.raises(ValidationError, match="terms"):
        th.discrete_mean_law(np.eye(10), np.full(10, 0.1), 60)
    with pytest.raises(ValidationError, match="sum to 1"):
        th.discrete_mean_law(pts, [0.2, 0.2, 0.2], 2)


def _compressor(v, comp, s=1, k=1, rng=None):
    """A direct implementation (independent of the theory's vectorised one) of the kernel's compressors."""
    d = v.size
    if comp == "sign":
        return np.abs(v).sum() / d * np.sign(v)
    if comp == "topk":
        out = np.zeros(d)
        for i in sorted(range(d), key=lambda i: (-abs(v[i]), i))[:k]:
            out[i] = v[i]
        return out
    return v


@pytest.mark.parametrize("comp", ["none", "quantize", "sign", "topk"])
def test_compressed_gradient_moments_by_enumeration(comp):
    rows = np.array([[1.0, -2.0, 0.5], [0.2, 0.1, -1.5], [3.0, 0.0, 0.4]])
    prob = linear_problem(rows)
    B, K = 5, 2  # shares of 3 and 2 draws
    w = sd.Workers(K, comp, levels=2, k=1, error_feedback=False)
    mean, cov = th.compressed_gradient_moments(prob, np.zeros(3), B, w)
    batches = _batches(3, B)
    est, qvar = [], []
    for b in batches:
        parts = [rows[b[:3]].mean(axis=0), rows[b[3:]].mean(axis=0)]
        est.append(0.6 * _compressor(parts[0], comp, k=1) + 0.4 * _compressor(parts[1], comp, k=1))
        # QSGD adds independent zero-mean noise of total variance compression_error per worker
        qvar.append(sum(f * f * th.compression_error(g, "quantize", levels=2) for f, g in zip((0.6, 0.4), parts)))
    est = np.array(est)
    np.testing.assert_allclose(mean, est.mean(axis=0), rtol=1e-12, atol=1e-14)
    brute = ((est - est.mean(axis=0)) ** 2).sum(axis=1).mean() + (np.mean(qvar) if comp == "quantize" else 0.0)
    assert np.trace(cov) == pytest.approx(brute, rel=1e-12)
    np.testing.assert_allclose(cov, cov.T)
    if comp in ("none", "quantize"):
        np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-12)


def test_compressed_gradient_moments_match_the_kernel():
    # a least-squares problem with 4 distinct examples (repeated), top-2 of d = 3 on 3 workers (shares 3, 3, 2)
    X = np.array([[1.0, -0.5, 0.3], [0.2, 1.5, -0.7], [-1.0, 0.4, 0.9], [0.6, 0.6, -1.2]])
    y = np.array([0.3, -0.8, 1.1, 0.2])
    prob = P.LeastSquares(np.tile(X, (3, 1)), np.tile(y, 3))
    theta = np.array([0.5, -0.2, 0.4])
    w = sd.Workers(3, "topk", k=2, error_feedback=False)
    mean, cov = th.compressed_gradient_moments(prob, theta, 8, w)
    R = 40000
    ds = sd.simulate(sd.SGD(lr=1.0, batch_size=8, workers=w, record_extra=()), prob, x0=theta, n_replicas=R,
                     n_steps=1, rng=7)
    g = theta - ds.x.isel(time=1).values
    se = g.std(axis=0, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(g.mean(axis=0) - mean) < Z * se)
    s = ((g - g.mean(axis=0)) ** 2).sum(axis=1)
    assert abs(s.mean() - np.trace(cov)) < Z * s.std(ddof=1) / np.sqrt(R)
    bias = mean - prob.grad(theta)
    assert np.abs(bias / se).max() > 3 * Z  # top-k's bias is resolved by this test


def _meta_brute(prob, theta, alpha, B):
    """E over every ordered batch of the same-batch and independent-batch one-step meta-gradients."""
    A, b = prob.affine_gradients()
    c = prob.n * prob.weights
    At, bt = A * c[:, None, None], b * c[:, None]
    H, cbar = At.mean(axis=0), bt.mean(axis=0)
    I = np.eye(prob.dim)
    same, indep = 0.0, 0.0
    batches = _batches(prob.n, B)
    for S in batches:
        HS, cS = At[S].mean(axis=0), bt[S].mean(axis=0)
        phi = theta - alpha * (HS @ theta - cS)
        same = same + (I - alpha * HS) @ (HS @ phi - cS)
        indep = indep + (I - alpha * HS) @ (H @ phi - cbar)  # E over an independent S' is the full gradient
    return same / len(batches), indep / len(batches)


@pytest.mark.parametrize("weights", [None, [0.1, 0.3, 0.2, 0.25, 0.15]])
@pytest.mark.parametrize("B", [1, 2, 3])
def test_meta_gradient_bias_by_enumeration(weights, B):
    prob = _tiny_least_squares(weights)
    theta = np.array([0.8, -0.4])
    for alpha in (0.05, 0.3):
        same, indep = _meta_brute(prob, theta, alpha, B)
        np.testing.assert_allclose(th.meta_gradient_bias(prob, theta, alpha, B), same - indep, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(th.meta_gradient_expectation(prob, theta, alpha, B), indep, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(th.meta_gradient_expectation(prob, theta, alpha, B, same_batch=True), same,
                                   rtol=1e-10, atol=1e-13)


def test_meta_gradient_full_batch_limits_and_leading_order():
    prob = _tiny_least_squares()
    theta = np.array([0.8, -0.4])
    alpha = 0.1
    H = prob.hessian
    phi = theta - alpha * prob.grad(theta)
    # the full-batch meta-gradient is (I - alpha H) grad U(phi)
    np.testing.assert_allclose(th.meta_gradient_expectation(prob, theta, alpha, None),
                               (np.eye(2) - alpha * H) @ prob.grad(phi), rtol=1e-12)
    # leading order: b ~ -(2 alpha / B) M(theta), M = mean_i (A_i - H)(grad l_i(theta) - grad U(theta))
    A, b = prob.affine_gradients()
    _, g = prob.per_sample(theta)
    M = np.einsum("ikl,il->k", A - H, g - prob.grad(theta)) / prob.n
    small = th.meta_gradient_bias(prob, theta, 1e-6, 10**6)
    np.testing.assert_allclose(small * 10**6 / 1e-6, -2 * M, rtol=1e-5)


def test_no_meta_gradient_bias_when_per_example_curvature_is_constant():
    # x x^T + l2 I is the same for x and -x: every example has the same Hessian, so M = T = 0
    prob = P.LeastSquares(np.array([[1.0, 2.0], [-1.0, -2.0], [1.0, 2.0]]), np.array([0.5, 1.0, -2.0]), l2=0.5)
    np.testing.assert_allclose(th.meta_gradient_bias(prob, np.array([0.3, 0.1]), 0.2, 2), 0.0, atol=1e-15)


def test_temperature_expansion_is_the_derivative_of_the_exact_temperature():
    # T(eta) / (T1 eta) - 1 = c eta + O(eta^2): Richardson on the exact stationary covariance gives c to O(h^2)
    data = sd.problems.gaussian_regression(40, 3, noise=1.0, seed=4, scales=[1.0, 0.7, 0.4])
    prob = sd.problems.LeastSquares.from_data(data)
    H = prob.hessian
    for B, sampling in ((1, "with_replacement"), (4, "with_replacement"), (8, "without_replacement")):
        T1, c_step, c_mult = th.sgd_temperature_expansion(prob, B, sampling=sampling)
        S = th.gradient_noise_covariance(prob, prob.minimizer(), B, sampling)
        assert math.isclose(T1, th.effective_temperature(1.0, S), rel_tol=1e-12)

        def r(eta):
            return th.equipartition_temperature(H, th.sgd_stationary_covariance(prob, eta, B, sampling=sampling)) / (T1 * eta) - 1

        h = 1e-4
        assert math.isclose(c_step + c_mult, 2 * r(h) / h - r(2 * h) / (2 * h), rel_tol=1e-5)
    # the finite-step part does not depend on B; the multiplicative part scales as 1/B (with replacement)
    a, b = th.sgd_temperature_expansion(prob, 1), th.sgd_temperature_expansion(prob, 5)
    assert math.isclose(a[1], b[1], rel_tol=1e-12) and math.isclose(a[2], 5 * b[2], rel_tol=1e-12)
