"""Finite-sum problems: per-sample gradients, full-batch values, data generators, descriptions, user losses."""

import gc
import pickle

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.problems.base import Problem

P = sd.problems


def _problems():
    reg = P.gaussian_regression(120, 3, noise=0.5, seed=1)
    cls = P.imbalanced_classes(150, 3, fractions=(0.7, 0.2, 0.1), seed=2)
    return [
        P.LeastSquares.from_data(reg, l2=0.1),
        P.LogisticRegression.from_data(cls, l2=0.05),
        P.LogisticRegression(cls.X, (cls.labels > 0).astype(float)),
        P.OneHiddenLayer.from_data(reg, hidden=4, l2=0.01),
        P.RitzEnergy1D(n_basis=5, n_quad=30),
    ]


@pytest.mark.parametrize("prob", _problems(), ids=lambda p: p.name + str(p.dim))
def test_per_sample_gradients_match_finite_differences(prob):
    P.check_sample_gradient(prob, n_rows=16)


@pytest.mark.parametrize("prob", _problems(), ids=lambda p: p.name + str(p.dim))
def test_full_batch_value_is_the_weighted_sum_of_per_sample_losses(prob):
    theta = np.random.default_rng(0).normal(size=(3, prob.dim))
    losses, grads = prob.per_sample(theta[0])
    v, g = prob.value_and_grad(theta)
    np.testing.assert_allclose(v[0], prob.weights @ losses, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g[0], prob.weights @ grads, rtol=1e-10, atol=1e-12)
    # the quadratic forms (closed-form H, b, c) agree with the compiled per-sample sum
    vg, gg = Problem.value_and_grad(prob, theta)
    np.testing.assert_allclose(v, vg, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(g, gg, rtol=1e-10, atol=1e-10)


def test_a_quadratic_problems_value_at_a_point_does_not_depend_on_the_other_points():
    """U and grad U of a point are the same bits evaluated alone, in a batch of 1000 points, or in any
    part of it, and equal the index-order sums written out: a recorded energy must not depend on which
    replicas are recorded with it (a BLAS product ``pts @ H`` changed its last bits with the batch)."""
    ls = P.LeastSquares.from_data(P.gaussian_regression(500, 20, noise=0.5, seed=1), l2=0.1)
    pts = np.random.default_rng(3).normal(size=(1000, 20))
    v, g = ls.value_and_grad(pts)
    H, b, c = ls.hessian, ls.linear, ls.constant
    for i in (0, 17, 400, 999):
        vi, gi = ls.value_and_grad(pts[i])
        assert vi == v[i] and np.array_equal(gi, g[i])
        assert np.array_equal(ls.value(pts[i:i + 3]), v[i:i + 3])
        gref = [sum((H[k, j] * pts[i, j] for j in range(20)), 0.0) - b[k] for k in range(20)]
        assert gi.tolist() == gref
        assert vi == 0.5 * sum((pts[i, k] * (gref[k] - b[k]) for k in range(20)), 0.0) + c
    np.testing.assert_array_equal(ls.value(pts[::-1]), v[::-1])


def test_least_squares_is_the_mean_loss_and_its_minimiser_solves_the_normal_equations():
    data = P.gaussian_regression(200, 4, noise=0.3, seed=5)
    ls = P.LeastSquares.from_data(data)
    assert np.allclose(ls.weights, 1 / 200)
    ref = np.linalg.lstsq(data.X, data.y, rcond=None)[0]
    np.testing.assert_allclose(ls.minimizer(), ref, rtol=1e-10)
    np.testing.assert_allclose(ls.value(ref), 0.5 * np.mean((data.X @ ref - data.y) ** 2), rtol=1e-10)
    A, b = ls.affine_gradients()
    th = np.arange(4.0)
    np.testing.assert_allclose(A @ th - b, ls.per_sample(th)[1], rtol=1e-12, atol=1e-12)


def test_ritz_energy_recovers_the_solution_of_the_boundary_value_problem():
    x = np.linspace(0.05, 0.95, 7)
    sine = P.RitzEnergy1D(n_basis=6, n_quad=40, forcing="sine")
    np.testing.assert_allclose(sine.solution(x), np.sin(np.pi * x), atol=1e-10)
    const = P.RitzEnergy1D(n_basis=40, n_quad=200, forcing="constant")
    # -u'' = 1: u = x(1-x)/2; the 40-mode sine series truncation error is ~ 4/(pi^3 41^3) ~ 2e-6
    np.testing.assert_allclose(const.solution(x), x * (1 - x) / 2, atol=1e-5)
    assert abs(sine.weights.sum() - 1.0) < 1e-13


def test_generators_are_seeded_and_exact_in_their_counts():
    a = P.imbalanced_classes(101, 2, fractions=(0.9, 0.1), seed=3)
    b = P.imbalanced_classes(101, 2, fractions=(0.9, 0.1), seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert np.bincount(a.labels).tolist() == [91, 10]
    r = P.redundant(P.gaussian_regression(5, 2, seed=0), 3)
    assert r.X.shape == (15, 2) and np.array_equal(r.X[0], r.X[2]) and r.source["k"] == 3
    # redundancy leaves the mean loss unchanged
    base = P.LeastSquares.from_data(P.gaussian_regression(5, 2, seed=0))
    np.testing.assert_allclose(P.LeastSquares.from_data(r).value([0.3, -1.0]), base.value([0.3, -1.0]), rtol=1e-13)


@pytest.mark.parametrize("prob", _problems(), ids=lambda p: p.name + str(p.dim))
def test_descriptions_rebuild_the_same_problem(prob):
    again = P.problem_from_dict(prob.to_dict())
    assert again == prob and again.data_hash == prob.data_hash
    assert pickle.loads(pickle.dumps(prob)) == prob


def test_large_user_data_are_described_by_hash_only_and_files_rebuild_them(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3000, 2)), rng.normal(size=3000)
    ls = P.LeastSquares(X, y)
    desc = ls.to_dict()
    assert "X" not in desc and len(desc["data_sha256"]) == 64
    assert P.problem_from_dict(desc) is ls  # in the session that built it, the hash finds it
    del ls
    gc.collect()
    with pytest.raises(sd.ValidationError, match="X_file"):  # elsewhere: only files or a generator rebuild it
        P.problem_from_dict(desc)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    again = P.problem_from_dict({**desc, "X_file": str(tmp_path / "X.npy"), "y_file": str(tmp_path / "y.npy")})
    assert again.data_hash == desc["data_sha256"]
    with pytest.raises(sd.ValidationError, match="data_sha256"):
        P.problem_from_dict({**desc, "X_file": str(tmp_path / "X.npy"), "y_file": str(tmp_path / "X.npy")[:-5] + "y.npy",
                             "l2": 1.0})


def test_user_per_sample_loss_runs_and_a_wrong_gradient_is_rejected():
    @P.per_sample_loss(dim=2)
    def huber(theta, row, grad, delta=1.0):
        r = theta[0] * row[0] + theta[1] - row[1]
        if abs(r) <= delta:
            grad[0] = r * row[0]
            grad[1] = r
            return 0.5 * r * r
        s = delta if r > 0 else -delta
        grad[0] = s * row[0]
        grad[1] = s
        return delta * (abs(r) - 0.5 * delta)

    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    prob = huber(np.column_stack([x, 2 * x + 1 + 0.1 * rng.normal(size=50)]), delta=0.5)
    ds = sd.simulate(sd.SGD(lr=0.2, batch_size=10), prob, n_replicas=20, n_steps=300, record_every=300, rng=0)
    np.testing.assert_allclose(ds.x.isel(time=-1).mean("replica"), [2.0, 1.0], atol=0.1)

    with pytest.raises(sd.ValidationError, match="finite differences"):
        @P.per_sample_loss(dim=1)
        def wrong(theta, row, grad):
            grad[0] = 3.0 * theta[0]
            return theta[0] ** 2

        wrong(np.ones((4, 1)))


def test_integrator_descriptions_round_trip_through_specs():
    from stochdyn.integrators.base import integrator_from_dict

    cases = [
        sd.SGD(lr=0.1, batch_size=8, momentum=0.9, nesterov=True, sampling=sd.Sampling("epoch"), clip_norm=2.0,
               lr_schedule=sd.LRSchedule.cosine(100, warmup_steps=10), workers=sd.Workers(2, "topk", k=1)),
        sd.Adam(lr=0.01, batch_size=9, sampling=sd.Sampling("stratified", "neyman", stratum_std=[1.0, 2.0]),
                batch_schedule=sd.BatchSchedule.plan([10], [18]), augmentation=sd.Augmentation(copies=2, noise=0.1)),
        sd.SGLD(lr=0.01, temperature=0.2, gradient_noise=[[1.0, 0.1], [0.1, 2.0]],
                batch_schedule=sd.BatchSchedule.norm_test(0.5, 64), batch_size=4, record_extra=["lr", "snr"]),
    ]
    for integ in cases:
        assert integrator_from_dict(integ.to_dict()) == integ
        assert repr(integ).startswith(integ.name + "(") and "None" not in repr(integ)


def test_problem_from_arrays_and_from_data_agree_and_keep_the_generator():
    # issue 14: LeastSquares(X, y) (docs/analysis.md) and LeastSquares.from_data (docs/sgd-as-langevin.md)
    data = P.gaussian_regression(700, 8, noise=0.5, seed=3)  # 6300 numbers: too many to store inline
    a, b = P.LeastSquares(data.X, data.y), P.LeastSquares.from_data(data)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["data"]["generator"] == "gaussian_regression"
    assert P.problem_from_dict(a.to_dict()) == a  # rebuilt by its generator, in any session
    mixed = P.imbalanced_classes(200, 3, seed=4)
    assert P.LogisticRegression(mixed.X, mixed.y).to_dict() == P.LogisticRegression.from_data(mixed).to_dict()
    changed = data.X.copy()
    changed[0, 0] += 1.0
    assert "data" not in P.LeastSquares(changed, data.y).to_dict()  # other values: no false provenance


def test_analysis_rebuilds_a_problem_of_user_arrays_in_the_same_session():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(700, 8))
    y = X @ rng.normal(size=8) + 0.5 * rng.normal(size=700)
    prob = P.LeastSquares(X, y)  # user data: stored in the run's attributes by hash only
    ds = sd.simulate(sd.SGD(lr=0.05, batch_size=8), prob, x0=prob.minimizer(), n_replicas=64, n_steps=40,
                     record_every=10, rng=1)
    implicit = sd.analysis.variance_temperature(ds, burn_in=1)
    explicit = sd.analysis.variance_temperature(ds, prob, burn_in=1)
    np.testing.assert_array_equal(implicit.value.values, explicit.value.values)
    del prob, implicit, explicit
    gc.collect()
    with pytest.raises(sd.ValidationError) as err:  # gone from the session: advice for a Python user first
        sd.analysis.variance_temperature(ds, burn_in=1)
    msg = str(err.value)
    assert "Pass the problem itself" in msg and "sd.analysis.variance_temperature(ds, problem)" in msg


def _batch_problems():
    """The built-ins with dimensions that exercise every code path of the batch kernels: d mod 4 tails,
    more than 8 quads (the looped dot products), more than 32 features (two passes of add_rows), ridge."""
    out = []
    for p, seed in ((3, 1), (20, 2), (37, 3)):
        reg = P.gaussian_regression(90, p, noise=0.5, seed=seed)
        cls = P.imbalanced_classes(90, p, fractions=(0.5, 0.3, 0.2), seed=seed)
        out += [P.LeastSquares.from_data(reg), P.LeastSquares.from_data(reg, l2=0.1),
                P.LogisticRegression(cls.X, (cls.labels > 0).astype(float)),
                P.LogisticRegression(cls.X, (cls.labels > 0).astype(float), l2=0.05),
                P.LogisticRegression.from_data(cls, l2=0.05), P.OneHiddenLayer.from_data(reg, hidden=3),
                P.OneHiddenLayer.from_data(reg, hidden=5, l2=0.01)]
    return out + [P.RitzEnergy1D(n_basis=5, n_quad=30)]


@pytest.mark.parametrize("prob", _batch_problems(), ids=lambda p: f"{p.name}{p.dim}l2={p.hyper[-1]}")
def test_batch_function_is_bit_identical_to_per_sample_calls(prob):
    """The batch cfunc (vector code, examples in SIMD lanes) must do each number's arithmetic in the
    order of the per-sample form: the kernels use either, so a run must not depend on which."""
    from numba import njit

    from stochdyn._numba_utils import row_ptr

    @njit
    def batch(fn, data, hyper, th, idx, coef, n, g, work):
        N, m = data.shape
        return fn(row_ptr(th, 0), th.shape[0], row_ptr(data, 0), N, m, row_ptr(idx, 0), row_ptr(coef, 0), n,
                  row_ptr(hyper, 0), hyper.shape[0], row_ptr(g, 0), row_ptr(work, 0), 0.25)

    @njit
    def samples(fn, data, hyper, th, idx, coef, n, g, work):
        acc = 0.25
        for j in range(n):
            acc += coef[j] * fn(row_ptr(th, 0), th.shape[0], row_ptr(data, idx[j]), data.shape[1], row_ptr(hyper, 0),
                                hyper.shape[0], row_ptr(g, 0), coef[j], row_ptr(work, 0))
        return acc

    rng = np.random.default_rng(7)
    for n in (1, 6, 37):
        th = rng.normal(size=prob.dim) * 0.5
        idx = rng.integers(0, prob.n, n)
        coef = rng.uniform(0.1, 1.0, n)
        g0 = rng.normal(size=prob.dim)
        g1, g2 = g0.copy(), g0.copy()
        v1 = batch(prob.compiled_batch, prob.rows, prob.hyper, th, idx, coef, n, g1, np.zeros(prob.batch_work(n)))
        v2 = samples(prob.compiled, prob.rows, prob.hyper, th, idx, coef, n, g2, np.zeros(prob.dim))
        assert v1 == v2
        np.testing.assert_array_equal(g1, g2)
