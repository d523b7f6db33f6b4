"""Corner cases of the SGD kernels: one replica without replacement, the initial record of the
example counter, and the lane draws (with replacement) against the per-replica draws."""

import numpy as np

import stochdyn as sd
from stochdyn.integrators._kernels import sgd as _k

P = sd.problems


def _ls():
    return P.LeastSquares.from_data(P.gaussian_regression(40, 3, noise=0.5, seed=3))


def test_without_replacement_runs_with_a_single_replica():
    """n_replicas=1 used to build a read-only permutation (a broadcast view) that the kernel must
    shuffle in place; the single replica is the first replica of a larger run with the same rng."""
    integ = sd.SGD(lr=0.05, batch_size=4, sampling=sd.Sampling("without_replacement"))
    one = sd.simulate(integ, _ls(), n_replicas=1, n_steps=12, record_every=3, rng=11)
    three = sd.simulate(integ, _ls(), n_replicas=3, n_steps=12, record_every=3, rng=11)
    np.testing.assert_array_equal(one.x.values, three.x.isel(replica=[0]).values)
    assert one.examples.values[0, -1] == 12 * 4


def test_record_writes_the_example_counter_of_the_state():
    """``record`` (the initial record, and the record of a frozen state) writes the cumulative
    example count held in the state, not 0."""
    integ = sd.SGD(lr=0.05, batch_size=4)
    prob = _ls()
    state = integ.init_state(prob, np.zeros((2, prob.dim)), np.array([[1, 2], [3, 4]], dtype=np.uint64))
    state.arrays["examples"][:] = [12, 40]
    out = {"x": np.zeros((2, 1, prob.dim)), "energy": np.zeros((2, 1))}
    out.update({name: np.zeros((2, 1), dtype=sd.integrators.sgd.EXTRA_VARIABLES[name][1])
                for name in integ._recorded(prob)})
    integ.record(prob, state, out, 0)
    np.testing.assert_array_equal(out["examples"][:, 0], [12, 40])
    assert np.all(out["batch_size"] == 0) and np.all(np.isnan(out["grad_norm"]))


def test_lane_draws_consume_each_stream_like_randbelow():
    """The block's draws in SIMD lanes give every replica the indices, multipliers and final
    generator words of its own scalar ``randbelow`` sequence — also for N near 2^32, where
    Lemire's method rejects often — and leave diverged replicas untouched."""
    from numba import njit

    from stochdyn.random._core import randbelow

    @njit
    def scalar(rng, diverged, N, B, weights, idx, coef):
        for r in range(rng.shape[0]):
            if diverged[r] >= 0:
                continue
            s0, s1 = rng[r, 0], rng[r, 1]
            for t in range(B):
                i, s0, s1 = randbelow(N, s0, s1)
                idx[r, t] = i
                coef[r, t] = weights[min(i, weights.shape[0] - 1)] * (N / B)
            rng[r, 0], rng[r, 1] = s0, s1

    L = _k.LANE_BLOCK
    for N, B, n in ((10, 3, L), (1000, 7, 37), (4_000_000_000, 9, L)):
        rng = np.random.default_rng(N).integers(1, 2**63, size=(n, 2), dtype=np.uint64)
        diverged = np.full(n, -1)
        diverged[[1, n - 1]] = 4
        weights = np.full(min(N, 1000), 1.0 / N)
        a_rng, b_rng = rng.copy(), rng.copy()
        a_idx, b_idx = np.zeros((L, B), np.int64), np.zeros((L, B), np.int64)
        a_coef, b_coef = np.zeros((L, B)), np.zeros((L, B))
        for _ in range(3):
            scalar(a_rng, diverged, N, B, weights, a_idx, a_coef)
            _k._draw_lanes(b_rng, diverged, None, diverged, 0, n, N, B, weights, True, b_idx, b_coef,
                           np.zeros((B + 3, L), np.uint64))
            live = diverged < 0
            np.testing.assert_array_equal(a_idx[:n][live], b_idx[:n][live])
            np.testing.assert_array_equal(a_coef[:n][live], b_coef[:n][live])
        np.testing.assert_array_equal(a_rng, b_rng)
        np.testing.assert_array_equal(b_rng[~live], rng[~live])
