"""Random streams: distribution tests of the samplers, independence, seeding and SPEC-7 inputs.

Tolerances: 4 standard errors (SE) for moment checks — the tests are deterministic (fixed seeds);
a correct sampler would fail a single 4-SE check under another seed with probability 6e-5.
Goodness-of-fit statistics are compared with their 1 - 1e-4 quantile for the same reason.
"""

import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

import stochdyn as sd
from stochdyn.random import _core

N_STREAMS = 4
N_PER = 500_000
N = N_STREAMS * N_PER


@pytest.fixture(scope="module", params=["ziggurat", "box-muller"])
def normals(request):
    state = sd.random.stream_key(12345).streams(np.arange(N_STREAMS))
    out = np.empty((N_STREAMS, N_PER))
    fill = sd.random.fill_normal if request.param == "ziggurat" else sd.random.fill_normal_boxmuller
    fill(state, out)
    return out.ravel()


def test_normal_moments(normals):
    z = normals
    assert abs(z.mean()) < 4 / math.sqrt(N)  # SE of the mean = 1/sqrt(N)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / N)  # SE of the variance = sqrt(2/N)
    assert abs(np.mean(z**3)) < 4 * math.sqrt(15 / N)  # Var(z^3) = 15
    assert abs(np.mean(z**4) - 3) < 4 * math.sqrt(96 / N)  # Var(z^4) = 105 - 9


def test_normal_goodness_of_fit(normals):
    z = normals
    # Kolmogorov-Smirnov: D below its 1 - 1e-4 quantile, sqrt(-ln(alpha/2)/2)/sqrt(N)
    d = stats.kstest(z, "norm").statistic
    assert d < math.sqrt(-math.log(0.5e-4) / 2) / math.sqrt(N)
    # chi-square over 200 equiprobable bins (probes every ziggurat layer and wedge region)
    edges = stats.norm.ppf(np.linspace(0, 1, 201))
    counts = np.histogram(z, bins=edges)[0]
    chi2 = np.sum((counts - N / 200) ** 2 / (N / 200))
    assert chi2 < stats.chi2.ppf(1 - 1e-4, 199)


@pytest.mark.parametrize("cut", [2.0, 3.0, 3.6541528853610088, 4.0])
def test_normal_tails(normals, cut):
    # the tail beyond the ziggurat's base-layer edge R = 3.654 is sampled by a separate algorithm
    p = 2 * stats.norm.sf(cut)
    count = np.count_nonzero(np.abs(normals) > cut)
    assert abs(count - N * p) < 4 * math.sqrt(N * p * (1 - p))


def test_uniform_and_randbelow():
    state = sd.random.stream_key(7).streams(np.arange(2))
    u = np.empty((2, 200_000))
    sd.random.fill_uniform(state, u)
    u = u.ravel()
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=256, range=(0, 1))[0]
    expected = u.size / 256
    assert np.sum((counts - expected) ** 2 / expected) < stats.chi2.ppf(1 - 1e-4, 255)

    @njit
    def draws(n, m, s0, s1):
        out = np.empty(m, np.int64)
        for i in range(m):
            out[i], s0, s1 = _core.randbelow(n, s0, s1)
        return out

    for n in (1, 7, 1000, 2**31 + 11):
        k = draws(n, 100_000, np.uint64(1), np.uint64(2))
        assert k.min() >= 0 and k.max() < n
        if n == 7:
            counts = np.bincount(k, minlength=7)
            assert np.sum((counts - k.size / 7) ** 2 / (k.size / 7)) < stats.chi2.ppf(1 - 1e-4, 6)
        if n > 1:
            # mean of a discrete uniform on [0, n): (n-1)/2, SE = sqrt((n^2-1)/12/m)
            assert abs(k.mean() - (n - 1) / 2) < 4 * math.sqrt((n * n - 1) / 12 / k.size)


def test_streams_are_independent_across_replicas_and_in_time():
    R, n = 200, 5000
    z = np.empty((R, n))
    sd.random.fill_normal(sd.random.stream_key(99).streams(np.arange(R)), z)
    c = z @ z.T / n
    off = c[~np.eye(R, dtype=bool)] * math.sqrt(n)  # ~ N(0, 1) for independent streams
    pairs = off.size // 2
    # mean of squared scaled correlations is 1; SE sqrt(2/pairs), inflated 10% for shared rows
    assert abs(np.mean(off**2) - 1) < 4 * math.sqrt(2.2 / pairs)
    lag1 = np.sum(z[:, 1:] * z[:, :-1]) / math.sqrt(R * (n - 1))  # ~ N(0, 1)
    assert abs(lag1) < 4


def test_replica_stream_depends_only_on_key_and_replica_id():
    key = sd.random.stream_key(3)
    full = key.streams(np.arange(100))
    np.testing.assert_array_equal(key.streams([5, 17, 99]), full[[5, 17, 99]])
    assert not np.array_equal(sd.random.stream_key(4).streams([5]), full[[5]])
    assert len({tuple(r) for r in full}) == 100


def test_spec7_rng_inputs_are_recorded_and_reproducible():
    ss = np.random.SeedSequence(2024)
    assert sd.random.stream_key(2024).attrs() == sd.random.stream_key(ss).attrs()
    k = sd.random.stream_key(np.random.default_rng(5))
    again = sd.random.stream_key(sd.random.seed_sequence_from_attrs(k.attrs()))
    np.testing.assert_array_equal(k.streams([0, 1]), again.streams([0, 1]))
    fresh = sd.random.stream_key(None)
    repeat = sd.random.stream_key(sd.random.seed_sequence_from_attrs(fresh.attrs()))
    np.testing.assert_array_equal(fresh.streams([3]), repeat.streams([3]))
    child = sd.random.stream_key(1).child(4)
    assert child.attrs()["seed_spawn_key"] == "[4]"
    assert not np.array_equal(child.streams([0]), sd.random.stream_key(1).streams([0]))


@pytest.mark.parametrize("bad", [-1, 1.5, "seed", True, [1, 2]])
def test_bad_rng_is_rejected_with_a_clear_message(bad):
    with pytest.raises(sd.ValidationError, match="'rng'"):
        sd.random.stream_key(bad)
