"""Gradient estimators, one step at a time: theta1 = theta0 - g with lr = 1, so the ensemble of theta1 is a sample
of the estimator at theta0. Unbiasedness and exact variances of the stratified, augmented and compressed
estimators; the recorded noise statistics; epochs, batch schedules, clipping."""

import numpy as np
import pytest
from reference import linear_problem
from sgd_helpers import Z, assert_within, mean_se, one_step_gradients, trace_var_se

import stochdyn as sd
from stochdyn import theory as th

P = sd.problems
R = 20000


@pytest.fixture(scope="module")
def imbalanced():
    data = P.imbalanced_classes(60, 2, fractions=(0.7, 0.2, 0.1), separation=3.0, seed=5)
    return P.LogisticRegression.from_data(data, l2=0.01), np.array([0.3, -0.2, 0.5, 0.1, -0.4, 0.2])


def test_stratified_estimators_are_unbiased_with_the_exact_variance(imbalanced):
    prob, th0 = imbalanced
    std = th.stratum_gradient_std(prob, th0)
    v_uniform = np.trace(th.gradient_noise_covariance(prob, th0, 9, "without_replacement"))
    for samp in (sd.Sampling("stratified"), sd.Sampling("stratified", "neyman", stratum_std=std)):
        g = one_step_gradients(sd.SGD(lr=1.0, batch_size=9, sampling=samp), prob, th0, R, 1)
        assert_within(*mean_se(g), prob.grad(th0), f"{samp.allocation}: mean")
        v = th.stratified_variance(prob, th0, 9, samp.allocation, samp.stratum_std)
        vs, se = trace_var_se(g)
        assert_within(vs, se, v, f"{samp.allocation}: tr Cov")
        assert abs(v_uniform - v) > 3 * Z * se  # stratification's effect is resolved
    # Neyman allocation minimises the variance (up to integer rounding, checked exactly here)
    assert th.stratified_variance(prob, th0, 9, "neyman", std) < th.stratified_variance(prob, th0, 9)


def test_allocation_rounding():
    prob = P.LogisticRegression.from_data(P.imbalanced_classes(100, 2, fractions=(0.85, 0.1, 0.05), seed=1))
    assert th.stratified_allocation(prob, 10).tolist() == [8, 1, 1]  # 8.5, 1, 0.5 -> at least one each
    assert th.stratified_allocation(prob, 20).tolist() == [17, 2, 1]
    assert th.stratified_allocation(prob, 10, "neyman", [0.0, 1.0, 1.0]).tolist() == [1, 6, 3]
    assert th.stratified_allocation(prob, 100).tolist() == [85, 10, 5]


def test_augmented_estimator_unbiased_for_the_ridge_objective_with_two_variance_parts():
    ls = P.LeastSquares.from_data(P.gaussian_regression(30, 3, noise=0.5, seed=2))
    th0 = np.array([0.5, -1.0, 0.8])
    sigma, M, A = 0.6, 4, 3
    mean, sb2, sw2 = th.least_squares_augmentation_moments(ls, th0, sigma)
    np.testing.assert_allclose(mean, ls.grad(th0) + sigma**2 * th0, rtol=1e-12)  # Bishop (1995): + ridge
    g = one_step_gradients(sd.SGD(lr=1.0, batch_size=M, augmentation=sd.Augmentation(copies=A, noise=sigma)), ls, th0,
                           R, 3)
    assert_within(*mean_se(g), mean, "augmented mean")
    vs, se = trace_var_se(g)
    v = th.augmented_variance(sb2, sw2, M, A)
    assert_within(vs, se, v, "sigma_b^2/M + sigma_w^2/(MA)")
    assert abs(th.augmented_variance(sb2, sw2, M, 1) - v) > 3 * Z * se  # the copies' averaging is resolved


def _single_example(x, y, copies):
    """Least squares on one example repeated: every worker's local gradient is exactly the full gradient."""
    return P.LeastSquares.from_data(P.redundant(P.Data(np.atleast_2d(x), np.atleast_1d(y), None, None), copies))


def test_quantised_workers_are_unbiased_with_the_qsgd_variance():
    prob = _single_example([1.0, -2.0, 0.5, 3.0], [0.3], 8)
    th0 = np.array([0.2, 0.1, -0.4, 0.3])
    g0 = prob.grad(th0)
    K, s = 4, 2
    g = one_step_gradients(sd.SGD(lr=1.0, batch_size=8, workers=sd.Workers(K, "quantize", levels=s)), prob, th0, R, 4)
    assert_within(*mean_se(g), g0, "QSGD mean")
    vs, se = trace_var_se(g)
    v = th.compression_error(g0, "quantize", levels=s) / K  # K independent quantisations averaged
    assert_within(vs, se, v, "QSGD variance / K")
    assert v <= th.quantization_variance_bound(4, s) * (g0 @ g0) / K
    assert abs(v * K - v) > 3 * Z * se


def test_sign_and_topk_compression_are_deterministic_with_their_exact_error():
    prob = _single_example([1.0, -2.0, 0.5, 3.0], [0.3], 4)
    th0 = np.array([0.2, 0.1, -0.4, 0.3])
    g0 = prob.grad(th0)
    for comp, expected in (("sign", np.abs(g0).sum() / 4 * np.sign(g0)), ("topk", np.where(np.abs(g0) >= np.sort(np.abs(g0))[-2], g0, 0.0))):
        w = sd.Workers(2, comp, k=2, error_feedback=False)
        g = one_step_gradients(sd.SGD(lr=1.0, batch_size=4, workers=w), prob, th0, 3, 5)
        np.testing.assert_allclose(g, np.broadcast_to(expected, g.shape), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(((g[0] - g0) ** 2).sum(), th.compression_error(g0, comp, k=2), rtol=1e-12)


def test_error_feedback_makes_top1_track_the_full_gradient():
    prob = linear_problem([[3.0, 2.0, 1.0]])
    g = np.array([3.0, 2.0, 1.0])
    n = 60
    for ef in (False, True):
        ds = sd.simulate(sd.SGD(lr=1.0, batch_size=1, workers=sd.Workers(1, "topk", k=1, error_feedback=ef)), prob,
                         n_replicas=1, n_steps=n, rng=0)
        moved = -ds.x.isel(replica=0).values  # cumulative applied update after each step
        lag = moved - np.arange(n + 1)[:, None] * g  # = -(error memory) with feedback
        if ef:  # the cumulative update differs from n*g by the error memory, which stays bounded
            assert np.abs(lag).max() <= g.sum()
        else:  # without feedback only the largest coordinate ever moves
            np.testing.assert_array_equal(moved[:, 1:], 0.0)


def test_workers_without_compression_give_the_plain_minibatch_estimator():
    ls = P.LeastSquares.from_data(P.gaussian_regression(40, 3, seed=6))
    a = sd.simulate(sd.SGD(lr=0.1, batch_size=10, workers=sd.Workers(3)), ls, n_replicas=20, n_steps=50, rng=1)
    b = sd.simulate(sd.SGD(lr=0.1, batch_size=10), ls, n_replicas=20, n_steps=50, rng=1)
    np.testing.assert_allclose(a.x.values, b.x.values, rtol=1e-12, atol=1e-14)  # only the summation order differs


def test_recorded_noise_statistics():
    ls = P.LeastSquares.from_data(P.gaussian_regression(50, 3, noise=0.5, seed=7))
    th0 = np.array([1.0, 0.0, -1.0])
    B = 8
    ds = sd.simulate(sd.SGD(lr=0.05, batch_size=B), ls, x0=th0, n_replicas=R, n_steps=1, rng=9)
    one = ds.isel(time=1)
    # tr of the per-draw covariance: an unbiased estimate of B * tr Cov(g) (draws with replacement)
    sigma1 = B * np.trace(th.gradient_noise_covariance(ls, th0, B))
    assert_within(*mean_se(one.grad_var.values), sigma1, "E[grad_var]")
    g = (th0 - one.x.values) / 0.05
    np.testing.assert_allclose(one.grad_norm.values, np.linalg.norm(g, axis=1), rtol=1e-10)
    np.testing.assert_allclose(one.noise_scale.values, one.grad_var.values / np.sum(g * g, axis=1), rtol=1e-9)
    np.testing.assert_allclose(one.snr.values, B / one.noise_scale.values, rtol=1e-12)
    assert_within(*mean_se(one.batch_loss.values), ls.value(th0), "E[batch_loss]")
    assert one.lr.values[0] == 0.05 and one.batch_size.values[0] == B and one.examples.values[0] == B
    assert np.isnan(ds.grad_var.isel(time=0).values).all() and (ds.examples.isel(time=0) == 0).all()


def test_epochs_visit_every_example_exactly_once():
    @P.per_sample_loss(dim=2)
    def linear2(theta, row, grad):
        grad[0] = row[0]
        grad[1] = row[1]
        return row[0] * theta[0] + row[1] * theta[1]

    rows = np.random.default_rng(0).normal(size=(12, 2))
    prob = linear2(rows)
    ds = sd.simulate(sd.SGD(lr=1.0, batch_size=4, sampling=sd.Sampling("epoch")), prob, n_replicas=50, n_steps=9,
                     record_every=3, rng=2)
    # after each epoch of N/B = 3 steps: sum of g = sum_j (1/B) g_i = (N/B) grad U, whatever the shuffle
    for k in (1, 2, 3):
        np.testing.assert_allclose(-ds.x.isel(time=k).values, np.broadcast_to(k * 3 * prob.grad(np.zeros(2)), (50, 2)),
                                   rtol=1e-12, atol=1e-13)
    mid = sd.simulate(sd.SGD(lr=1.0, batch_size=4, sampling=sd.Sampling("epoch")), prob, n_replicas=50, n_steps=1, rng=2)
    assert np.unique(mid.x.isel(time=1).values.round(12), axis=0).shape[0] > 1  # while batches are random


def test_batch_size_plan_and_the_adaptive_norm_test():
    ls = P.LeastSquares.from_data(P.gaussian_regression(200, 3, noise=1.0, seed=8))
    plan = sd.BatchSchedule.plan(steps=[3, 6], sizes=[16, 64])
    ds = sd.simulate(sd.SGD(lr=0.05, batch_size=4, batch_schedule=plan), ls, n_replicas=2, n_steps=8, rng=0)
    assert ds.batch_size.values[0].tolist() == [0, 4, 4, 4, 16, 16, 16, 64, 64]
    assert ds.examples.values[0, -1] == 3 * 4 + 3 * 16 + 2 * 64
    theta_nt, bmax = 0.5, 150
    ds = sd.simulate(sd.SGD(lr=0.1, batch_size=4, batch_schedule=sd.BatchSchedule.norm_test(theta_nt, bmax)), ls,
                     x0=np.zeros(3), n_replicas=200, n_steps=60, rng=1)
    b = ds.batch_size.values[:, 1:]
    ns = ds.noise_scale.values[:, 1:]
    assert np.all(np.diff(b, axis=1) >= 0) and b.max() <= bmax and b.max() > 4
    # Byrd et al. (2012): next batch = ceil(tr Sigma / (theta^2 |g|^2)) = ceil(noise_scale / theta^2) when it fails
    want = np.minimum(bmax, np.maximum(b[:, :-1], np.ceil(ns[:, :-1] / theta_nt**2)))
    fails = ns[:, :-1] > b[:, :-1] * theta_nt**2
    np.testing.assert_array_equal(b[:, 1:][fails], want[fails])
    np.testing.assert_array_equal(b[:, 1:][~fails], b[:, :-1][~fails])


def test_clipping_by_global_norm():
    ls = P.LeastSquares.from_data(P.gaussian_regression(50, 3, noise=0.5, seed=9))
    th0 = np.array([3.0, -2.0, 1.0])
    ds = sd.simulate(sd.SGD(lr=1.0, batch_size=4, clip_norm=2.0), ls, x0=th0, n_replicas=500, n_steps=1, rng=3)
    step = np.linalg.norm(th0 - ds.x.isel(time=1).values, axis=1)
    gn = ds.grad_norm.isel(time=1).values
    assert (gn > 2.0).any() and (gn < 2.0).any()
    np.testing.assert_allclose(step, np.minimum(gn, 2.0), rtol=1e-12)


def test_user_augmentation_of_the_targets():
    @P.augmentation(n_normals=1)
    def label_noise(row, out, z, s=0.5):
        for j in range(row.shape[0] - 1):
            out[j] = row[j]
        out[row.shape[0] - 1] = row[row.shape[0] - 1] + s * z[0]

    ls = P.LeastSquares.from_data(P.gaussian_regression(30, 2, noise=0.5, seed=4))
    th0 = np.array([0.4, -0.7])
    s, M, A = 0.8, 4, 2
    # u = x (r - s z): E[u | i] = x_i r_i (unbiased for grad U), Var(u | i) = s^2 |x_i|^2
    X = ls.rows[:, :-1]
    _, grads = ls.per_sample(th0)
    sb2 = ((grads - grads.mean(axis=0)) ** 2).sum(axis=1).mean()
    sw2 = s * s * (X * X).sum(axis=1).mean()
    aug = sd.Augmentation(copies=A, transform=label_noise(s=s))
    g = one_step_gradients(sd.SGD(lr=1.0, batch_size=M, augmentation=aug), ls, th0, R, 10)
    assert_within(*mean_se(g), ls.grad(th0), "label-noise augmentation: mean")
    vs, se = trace_var_se(g)
    assert_within(vs, se, th.augmented_variance(sb2, sw2, M, A), "label-noise augmentation: variance")
    assert abs(th.augmented_variance(sb2, 0.0, M, A) - vs) > 3 * Z * se
