"""Wright–Fisher and Moran against exact finite-population theory (stochdyn.theory.popgen).

Tolerances: 4 Monte Carlo standard errors (SE) of the quantity tested, computed from the sample
itself; with fixed seeds the tests are deterministic, and a correct implementation fails under a new
seed with probability < 1e-4 per check. Each test also states the alternative it rules out and
checks that it lies many SE away.
"""

import math

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory as th

Z = 4.0


def _one_site(r):
    return sd.fitness.MultiplicativeFitness([[0.0, r - 1.0]])


def _populations(counts, N):
    """Full populations (R, N, 1) of one biallelic site with counts[r] copies of allele 1."""
    x0 = np.zeros((counts.size, N, 1))
    x0[np.arange(N)[None, :] < counts[:, None]] = 1.0
    return x0


def _final_frequency(ds):
    return ds["allele_frequency"].isel(time=-1, dim=0, allele=1).values


def test_wright_fisher_fixation_probability_is_the_exact_chain_value():
    N, r, R = 5, 1.5, 100_000
    exact = th.wf_fixation_probability(r, N)
    kimura = th.kimura_fixation_probability(math.log(r), N)
    se = math.sqrt(exact * (1 - exact) / R)
    assert abs(exact - kimura) > 6 * se  # the test resolves exact finite-N theory from the diffusion limit
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=0.0), _one_site(r),
                     _populations(np.ones(R, dtype=int), N), n_replicas=R, n_steps=100, record_every=100, rng=1)
    f = _final_frequency(ds)
    assert np.all((f == 0) | (f == 1))  # every replica absorbed
    assert abs(f.mean() - exact) < Z * se, (f.mean(), exact, se)


def test_moran_fixation_probability_is_moran_formula():
    N, r, R = 10, 1.3, 20_000
    exact = th.moran_fixation_probability(r, N)
    assert math.isclose(exact, (1 - 1 / r) / (1 - r**-N))
    se = math.sqrt(exact * (1 - exact) / R)
    assert abs(exact - 1 / N) > 20 * se  # selection is resolved
    assert abs(exact - th.wf_fixation_probability(r, N)) > 20 * se  # Moran is not Wright–Fisher
    ds = sd.simulate(sd.Moran(population_size=N, mutation_rate=0.0), _one_site(r),
                     _populations(np.ones(R, dtype=int), N), n_replicas=R, n_steps=200, record_every=200, rng=2)
    f = _final_frequency(ds)
    assert np.all((f == 0) | (f == 1))
    assert abs(f.mean() - exact) < Z * se, (f.mean(), exact, se)


def _var_and_se(v):
    c = v - v.mean()
    m2, m4 = np.mean(c**2), np.mean(c**4)
    return np.var(v, ddof=1), math.sqrt((m4 - m2 * m2) / v.size)


def test_neutral_allele_frequency_variance_wright_fisher_and_moran():
    N, R, t = 20, 20_000, 10
    x0 = _populations(np.full(R, N // 2), N)
    for integ, theory in ((sd.WrightFisher, th.wf_neutral_frequency_variance),
                          (sd.Moran, th.moran_neutral_frequency_variance)):
        ds = sd.simulate(integ(population_size=N, mutation_rate=0.0), _one_site(1.0), x0, n_replicas=R,
                         n_steps=t, record_every=t, rng=3)
        v, se = _var_and_se(_final_frequency(ds))
        expected = float(theory(0.5, N, t))
        assert abs(v - expected) < Z * se, (integ.__name__, v, expected, se)
    # Moran drifts twice as fast per generation: the two predictions are far apart
    assert abs(th.moran_neutral_frequency_variance(0.5, N, t) - th.wf_neutral_frequency_variance(0.5, N, t)) > 10 * se


def test_neutral_trait_drift_and_mutation_wright_fisher():
    # flat fitness (selection 0): within-population variance and the variance of the population mean
    N, R, t, scale, rate = 20, 8000, 30, 0.2, 0.5
    m = rate * scale**2
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=rate, mutation_scale=scale, selection=0.0),
                     sd.landscapes.DoubleWell(dim=2), x0=[0.3, -0.2], n_replicas=R, n_steps=t, record_every=t, rng=4)
    EV, VM = th.wf_neutral_trait_variance(t, N, m)
    within = ds["variance"].isel(time=-1).values.ravel()
    assert abs(within.mean() - EV[0]) < Z * within.std() / math.sqrt(within.size)
    for j in range(2):
        v, se = _var_and_se(ds["population_mean"].isel(time=-1, dim=j).values)
        assert abs(v - VM[0]) < Z * se, (v, VM[0], se)
        assert abs(VM[0] - t * m / N) > 10 * se  # not the naive t*m/N (drift of the variance is resolved)


def _gaussian_populations(R, N, mean, G, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mean, G, size=(R, N))


@pytest.mark.parametrize("effects, sampler", [
    ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "rejection"),  # N max W / sum W = 1.2
    ([0.0, 1.0, 3.0, 7.0, 0.0, 15.0], "alias"),  # N max W / sum W = 3
])
def test_wright_fisher_offspring_numbers_are_exactly_multinomial(effects, sampler):
    # N individuals, each the only carrier of its allele at one site: after one generation without
    # mutation the allele counts are the offspring numbers, Multinomial(N, W / sum W). The joint law
    # (all 462 outcomes for N = 6) is compared by a chi-square test (cells with expected count < 5
    # pooled; threshold the 1 - 1e-4 quantile, as the discrete-sampler tests). The two weight sets
    # take the two exact samplers of the kernel: rejection against max W while N max W / sum W <= 2,
    # the alias method beyond (popgen.BOUNDED_MAX_RATIO).
    from scipy import stats

    from stochdyn.integrators._kernels.popgen import BOUNDED_MAX_RATIO

    N, R = len(effects), 40_000
    w = 1.0 + np.asarray(effects)
    assert (N * w.max() / w.sum() <= BOUNDED_MAX_RATIO) == (sampler == "rejection")
    land = sd.fitness.MultiplicativeFitness([effects])
    x0 = np.broadcast_to(np.arange(N, dtype=float)[None, :, None], (R, N, 1))
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=0.0), land, x0, n_replicas=R, n_steps=1, rng=9)
    counts = np.rint(ds["allele_frequency"].isel(time=-1, dim=0).values * N).astype(np.int64)
    assert np.all(counts.sum(1) == N)
    outcomes, observed = np.unique(counts, axis=0, return_counts=True)
    p = w / w.sum()
    expected = R * stats.multinomial.pmf(outcomes, N, p)
    missing = R - expected.sum()  # outcomes never seen
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum() + missing)
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    assert chi2 < stats.chi2.ppf(1 - 1e-4, obs.size - 1), (chi2, obs.size)
    # power: the same test rejects neutral sampling (uniform parents)
    expected0 = R * stats.multinomial.pmf(outcomes, N, np.full(N, 1 / N))
    big0 = expected0 >= 5
    obs0 = np.append(observed[big0], observed[~big0].sum())
    exp0 = np.append(expected0[big0], R - expected0[big0].sum())
    assert float(np.sum((obs0 - exp0) ** 2 / exp0)) > 5 * stats.chi2.ppf(1 - 1e-4, obs0.size - 1)


def test_one_generation_response_is_exactly_the_price_covariance():
    # E[mean_1 | parents] = sum w z / sum w exactly (mutation has mean zero), for any population
    R, N = 4000, 50
    land = sd.landscapes.Harmonic(stiffness=[1.0, 3.0], center=[0.5, 0.0])
    x0 = _gaussian_populations(R, N, [-1.0, 0.5], np.diag([0.5, 0.2]), 5)
    integ = sd.WrightFisher(population_size=N, mutation_scale=0.1, selection=1.0)
    ds = sd.simulate(integ, land, x0, n_replicas=R, n_steps=1, rng=6)
    w = np.exp(-1.0 * land.value(x0))
    predicted = x0.mean(1) + th.price_response(w, x0)
    resid = ds["population_mean"].isel(time=-1).values - predicted
    se = resid.std(0, ddof=1) / math.sqrt(R)
    assert np.all(np.abs(resid.mean(0)) < Z * se), (resid.mean(0), se)
    shift = (predicted - x0.mean(1)).mean(0)
    assert np.all(np.abs(shift) > 20 * se)  # the response to selection itself is resolved


def test_lande_response_of_a_large_gaussian_population():
    # Gaussian population N(m, G) on a harmonic well with W = exp(-sU): Lande's G grad log W = exact
    # infinite-population response. Finite N = 500 adds a ratio bias O(Var(w)/(N E[w]^2)) ~ 2e-4 here,
    # below 0.3 SE.
    R, N, s = 2000, 500, 0.8
    G = np.diag([0.5, 0.3])
    m = np.array([-1.0, 0.6])
    land = sd.landscapes.Harmonic(stiffness=[1.0, 2.0])
    x0 = _gaussian_populations(R, N, m, G, 7)
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=0.0, selection=s), land, x0,
                     n_replicas=R, n_steps=1, rng=8)
    dz = ds["population_mean"].isel(time=-1).values - m
    se = dz.std(0, ddof=1) / math.sqrt(R)
    lande = th.harmonic_selection_response(m, G, [1.0, 2.0], [0.0, 0.0], s)
    assert np.allclose(lande, -(s * np.array([1, 2]) * np.diag(G) * m) / (1 + s * np.array([1, 2]) * np.diag(G)))
    assert np.all(np.abs(dz.mean(0) - lande) < Z * se), (dz.mean(0), lande, se)
    # the naive "G grad log W at the mean" (no (1 + sKG) denominator) is ruled out
    naive = -s * np.diag(G) * np.array([1.0, 2.0]) * m
    assert np.all(np.abs(naive - lande) > 10 * se)


def test_biallelic_stationary_law_at_finite_mutation_and_the_sella_hirsh_limit():
    # theory: at mu -> 0 the chains give Sella–Hirsh weights: ratio r^(N-1) (Moran, exact) and
    # r^nu with nu = wf_effective_beta -> 2(N-1) (Wright–Fisher)
    N, r = 8, math.exp(1 / 7)
    p = th.biallelic_stationary(N, r, 1e-7, "moran")
    assert math.isclose(p[-1] / p[0], r ** (N - 1), rel_tol=1e-4)
    q = th.biallelic_stationary(N, r, 1e-7, "wright-fisher")
    assert math.isclose(q[-1] / q[0], r ** th.wf_effective_beta(r, N), rel_tol=1e-4)
    assert abs(th.wf_effective_beta(r, N) - 2 * (N - 1)) < 0.01
    sh = th.sella_hirsh_stationary([0.0, -1.0 / 7], N, 1.0, "moran")
    assert math.isclose(sh[1] / sh[0], math.e)


def test_simulated_stationary_frequency_matches_the_exact_chain():
    # one biallelic site, N = 8, allele 1 fitter by r = e^(1/7) so that (N-1) log r = 1; mutation
    # mu = 0.002 per site. Replicas start from the exact stationary law, so the time average of the
    # allele-1 frequency has expectation sum_i (i/N) pi_i with no burn-in bias.
    N, r, mu, R, T = 8, math.exp(1 / 7), 0.002, 1000, 2000
    rng = np.random.default_rng(9)
    for integ, model in ((sd.Moran, "moran"), (sd.WrightFisher, "wright-fisher")):
        pi = th.biallelic_stationary(N, r, mu, model)
        counts = rng.choice(N + 1, size=R, p=pi)
        ds = sd.simulate(integ(population_size=N, mutation_rate=mu), _one_site(r), _populations(counts, N),
                         n_replicas=R, n_steps=T, record_every=10, rng=10)
        avg = ds["allele_frequency"].isel(dim=0, allele=1).values[:, 1:].mean(1)
        se = avg.std(ddof=1) / math.sqrt(R)
        expected = float(np.sum(pi * np.arange(N + 1) / N))
        assert abs(avg.mean() - expected) < Z * se, (model, avg.mean(), expected, se)
        assert abs(expected - 0.5) > 10 * se  # the selection is resolved
    # and the two models' stationary means differ by far more than the SE (factor 2 in drift)
    assert abs(np.sum(th.biallelic_stationary(N, r, mu, "moran") * np.arange(N + 1) / N)
               - np.sum(th.biallelic_stationary(N, r, mu, "wright-fisher") * np.arange(N + 1) / N)) > 10 * se
