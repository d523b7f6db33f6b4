"""Distribution tests of the exact discrete samplers in stochdyn.random._discrete.

Each test draws a fixed-seed sample and compares the histogram with the exact pmf by a chi-square
test (cells with expected count < 5 pooled). The threshold is the 1 - 1e-4 quantile of the
chi-square law, the analogue of our 4-SE rule: a correct sampler fails under a new seed with
probability 1e-4. Each test also checks that a plausible wrong answer (p shifted by a few SE, or the
normal approximation) is rejected, so the test has power.
"""

import numpy as np
import pytest
from scipy import stats

from numba import njit

from stochdyn._numba_utils import row_ptr
from stochdyn.random import stream_key
from stochdyn.random._core import fill_uniform
from stochdyn.random._discrete import (categorical_draw, coin_below, fill_alias, fill_binomial, fill_multinomial,
                                       index_and_coin)

ALPHA = 1e-4


def _chi2_stat(counts, probs, min_expected=5.0):
    n = counts.sum()
    exp = probs * n
    order = np.argsort(-exp)  # pool the small cells into one
    keep = exp[order] >= min_expected
    obs_k, exp_k = counts[order][keep], exp[order][keep]
    obs_rest, exp_rest = counts[order][~keep].sum(), exp[order][~keep].sum()
    if exp_rest > 0:
        obs_k = np.append(obs_k, obs_rest)
        exp_k = np.append(exp_k, exp_rest)
    chi2 = float(np.sum((obs_k - exp_k) ** 2 / exp_k))
    return chi2, stats.chi2.ppf(1 - ALPHA, obs_k.size - 1)


def _binomial_sample(n, p, size, seed):
    state = stream_key(seed).streams(np.arange(8))
    out = np.empty((8, size // 8), dtype=np.int64)
    fill_binomial(state, n, p, out)
    return out.ravel()


@pytest.mark.parametrize("n,p", [(10, 0.3), (50, 0.05), (1000, 0.02), (1000, 0.3), (5000, 0.5), (200, 0.97), (100000, 0.25)])
def test_binomial_matches_exact_pmf(n, p):
    # (10, .3), (50, .05), (1000, .02), (200, .97): inversion (n min(p,1-p) < 30); the others: BTPE
    x = _binomial_sample(n, p, 200_000, seed=n)
    assert x.min() >= 0 and x.max() <= n
    counts = np.bincount(x, minlength=n + 1).astype(float)
    chi2, crit = _chi2_stat(counts, stats.binom.pmf(np.arange(n + 1), n, p))
    assert chi2 < crit, (chi2, crit)
    # the mean agrees within 4 SE; a sampler biased by 8 SE of the mean would fail that check
    se_mean = np.sqrt(n * p * (1 - p) / x.size)
    assert abs(x.mean() - n * p) < 4 * se_mean
    assert abs(x.mean() - (n * p + 8 * se_mean)) > 4 * se_mean


def test_binomial_btpe_is_not_the_normal_approximation():
    # skewed case in the BTPE regime: the exact pmf passes, a rounded normal with the same mean and
    # variance is rejected (the chi-square test resolves the skewness)
    n, p = 400, 0.08
    x = _binomial_sample(n, p, 400_000, seed=3)
    counts = np.bincount(x, minlength=n + 1).astype(float)
    k = np.arange(n + 1)
    chi2, crit = _chi2_stat(counts, stats.binom.pmf(k, n, p))
    assert chi2 < crit
    sd = np.sqrt(n * p * (1 - p))
    approx = stats.norm.cdf(k + 0.5, n * p, sd) - stats.norm.cdf(k - 0.5, n * p, sd)
    chi2_norm, _ = _chi2_stat(counts, approx / approx.sum())
    assert chi2_norm > crit


def test_binomial_edge_cases():
    assert np.all(_binomial_sample(0, 0.3, 64, 1) == 0)
    assert np.all(_binomial_sample(7, 0.0, 64, 1) == 0)
    assert np.all(_binomial_sample(7, 1.0, 64, 1) == 7)


def test_multinomial_marginals_and_covariance():
    p = np.array([0.5, 0.2, 0.2, 0.05, 0.05])
    n = 60
    state = stream_key(11).streams(np.arange(4))
    out = np.empty((4, 25_000, p.size), dtype=np.int64)
    fill_multinomial(state, n, p, out)
    x = out.reshape(-1, p.size)
    assert np.all(x.sum(axis=1) == n)
    for i in range(p.size):  # each marginal is Bin(n, p_i)
        counts = np.bincount(x[:, i], minlength=n + 1).astype(float)
        chi2, crit = _chi2_stat(counts, stats.binom.pmf(np.arange(n + 1), n, p[i]))
        assert chi2 < crit, (i, chi2, crit)
    # covariance of two counts: -n p_i p_j; SE of the sample covariance from its 4th moments
    a, b = x[:, 0] - n * p[0], x[:, 1] - n * p[1]
    prod = a * b
    se = prod.std() / np.sqrt(prod.size)
    assert abs(prod.mean() - (-n * p[0] * p[1])) < 4 * se
    assert abs(prod.mean()) > 4 * se  # the negative correlation is resolved


def test_alias_sampler_matches_weights():
    w = np.array([3.0, 0.0, 1.0, 0.25, 7.0, 0.5, 1e-3, 2.0])
    state = stream_key(5).streams(np.arange(4))
    out = np.empty((4, 100_000), dtype=np.int64)
    fill_alias(state, w, out)
    counts = np.bincount(out.ravel(), minlength=w.size).astype(float)
    assert counts[1] == 0
    keep = w > 0
    chi2, crit = _chi2_stat(counts[keep], w[keep] / w.sum())
    assert chi2 < crit


@njit(cache=False)
def _trials(n, states, out_j, out_c):
    for r in range(states.shape[0]):
        out_j[r], out_c[r], states[r, 0], states[r, 1] = index_and_coin(n, states[r, 0], states[r, 1])


@njit(cache=False)
def _coins(c, t, states, out):
    for r in range(states.shape[0]):
        out[r], states[r, 0], states[r, 1] = coin_below(c, t, states[r, 0], states[r, 1])


@njit(cache=False)
def _bounded(w, scale, states, out):
    no_alias = np.zeros(1, dtype=np.int64)  # the alias tables are not read in the bounded mode
    for r in range(states.shape[0]):
        for k in range(out.shape[1]):
            out[r, k], states[r, 0], states[r, 1] = categorical_draw(True, scale, row_ptr(w, 0), row_ptr(w, 0),
                                                                     row_ptr(no_alias, 0), w.shape[0], states[r, 0],
                                                                     states[r, 1])


def test_index_and_coin_are_uniform_and_independent():
    # one 64-bit number: j from its upper half (Lemire), c from its lower half
    R, n = 200_000, 7
    state = stream_key(11).streams(np.arange(R))
    j = np.empty(R, dtype=np.int64)
    c = np.empty(R)
    _trials(n, state, j, c)
    chi2, crit = _chi2_stat(np.bincount(j, minlength=n).astype(float), np.full(n, 1 / n))
    assert chi2 < crit
    assert np.all((c >= 0) & (c < 2**32) & (c == np.floor(c)))
    octile = (c // 2**29).astype(np.int64)  # c uniform on 0 .. 2^32 - 1, and independent of j: a 7 x 8 table
    table = np.zeros((n, 8))
    np.add.at(table, (j, octile), 1.0)
    chi2, crit = _chi2_stat(table.ravel(), np.full(n * 8, 1 / (n * 8)))
    assert chi2 < crit


def test_coin_below_draws_only_when_the_threshold_falls_inside_the_cell():
    R = 100_000
    state = stream_key(12).streams(np.arange(R))
    out = np.empty(R, dtype=np.bool_)
    before = state.copy()
    _coins(3.0, 10.0, state, out)  # c + 1 <= t: always, nothing drawn
    assert out.all() and np.array_equal(state, before)
    _coins(10.0, 10.0, state, out)  # c >= t: never, nothing drawn
    assert not out.any() and np.array_equal(state, before)
    _coins(7.0, 7.25, state, out)  # c < t < c + 1: one uniform V, true iff V < 0.25
    expected = np.empty(R)
    fill_uniform(before, expected[:, None])
    assert np.array_equal(state, before) and np.array_equal(out, expected < 0.25)
    assert abs(out.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / R)


def test_bounded_rejection_sampler_matches_weights():
    w = np.array([3.0, 0.0, 1.0, 0.25, 7.0, 0.5, 1e-3, 2.0])
    state = stream_key(13).streams(np.arange(4))
    out = np.empty((4, 100_000), dtype=np.int64)
    _bounded(w, 2.0**32 / 7.0, state, out)
    counts = np.bincount(out.ravel(), minlength=w.size).astype(float)
    assert counts[1] == 0
    keep = w > 0
    chi2, crit = _chi2_stat(counts[keep], w[keep] / w.sum())
    assert chi2 < crit
    # power: a sampler that ignored the two smallest weights is rejected
    wrong = np.where(w < 0.1, 0.0, w)
    chi2_wrong, _ = _chi2_stat(counts[keep], np.maximum(wrong[keep], 1e-12) / wrong.sum())
    assert chi2_wrong > crit
