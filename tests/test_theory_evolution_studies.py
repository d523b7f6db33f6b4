"""Theory added for the evolution studies (stochdyn.theory.popgen): drift variance, two-type expected
frequency, Gaussian selection response, origin–fixation density of a continuous trait.

Deterministic checks compare with independent closed forms or independent code paths to
floating-point accuracy. Simulation checks use 4 Monte Carlo standard errors (SE) computed from the
sample (fixed seeds, so deterministic; a correct implementation would fail under a new seed with
probability < 1e-4 per check) and verify that the plausible wrong answer lies many SE away.
"""

import math

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory as th

Z = 4.0


def test_origin_fixation_stationary_matches_the_pairwise_definition():
    # the vectorised rates equal N M_ab pi(W_b / W_a) built pair by pair with the scalar functions
    rng = np.random.default_rng(0)
    lw = rng.normal(size=5) * 0.4
    M = rng.uniform(size=(5, 5)) * (rng.uniform(size=(5, 5)) > 0.3)
    for model, fix in (("moran", th.moran_fixation_probability), ("wright-fisher", th.wf_fixation_probability)):
        N = 6
        rate = np.zeros((5, 5))
        for a in range(5):
            for b in range(5):
                if a != b and M[a, b] > 0:
                    rate[a, b] = N * M[a, b] * fix(math.exp(lw[b] - lw[a]), N)
        gen = rate - np.diag(rate.sum(1))
        p = th.origin_fixation_stationary(lw, M, N, model)
        assert np.allclose(p @ gen, 0.0, atol=1e-13) and math.isclose(p.sum(), 1.0)


def test_wright_fisher_exponent_tends_to_2_n_minus_1_at_neutrality():
    # nu(r) -> 2(N-1) exactly as r -> 1 (pi'(0) = (N-1)/N for haploid Wright-Fisher), below it for larger r
    for N in (3, 5, 12):
        assert abs(th.wf_effective_beta(math.exp(1e-4), N) - 2 * (N - 1)) < 1e-5 * N
        assert th.wf_effective_beta(math.exp(0.5), N) < 2 * (N - 1) - 1e-3


def test_origin_fixation_density_moran_is_exactly_boltzmann():
    land = sd.landscapes.DoubleWell(dim=1, tilt=0.3)
    for N, scale in ((5, 0.4), (9, 1.0)):
        g = th.origin_fixation_density(land, N, 0.25, scale, "moran")
        gibbs = th.double_well_gibbs(1.0 / ((N - 1) * 0.25), tilt=0.3)
        assert abs(g.probability(0.0) - gibbs["p_right"]) < 1e-9
        assert abs(g.expectation(lambda x: x**2) - gibbs["mean_x0_sq"]) < 1e-9
        assert abs(g.leak) < 1e-12
        assert np.allclose(g(g.x[::17]), g.pdf[::17], rtol=1e-9)  # the interpolant passes through the nodes


def test_origin_fixation_density_wright_fisher_is_near_boltzmann_at_2_n_minus_1():
    land = sd.landscapes.DoubleWell(dim=1, tilt=0.3)
    N, s = 5, 0.25
    gibbs = th.double_well_gibbs(1.0 / (2 * (N - 1) * s), tilt=0.3)
    small = th.origin_fixation_density(land, N, s, 0.2, "wright-fisher", bounds=(-2.6, 2.6))
    big = th.origin_fixation_density(land, N, s, 1.0, "wright-fisher")
    # small jumps: nu ~ 2(N-1); large jumps: nu(r) < 2(N-1) makes the law slightly hotter (more weight right)
    assert 0.0 < small.probability(0.0) - gibbs["p_right"] < 6e-5
    assert 1e-4 < big.probability(0.0) - gibbs["p_right"] < 1e-3
    # the node masses solve the same chain as origin_fixation_stationary with M_ab = phi(x_b - x_a) w_b
    x, w = big.x, big.weights
    M = np.exp(-0.5 * (x[None, :] - x[:, None]) ** 2) / math.sqrt(2 * math.pi) * w[None, :]
    p = th.origin_fixation_stationary(-s * land.value(x[:, None]), M, N, "wright-fisher")
    assert np.allclose(p, big.pdf * w, rtol=1e-7, atol=1e-14)
    # refining the quadrature changes nothing visible
    fine = th.origin_fixation_density(land, N, s, 1.0, "wright-fisher", cells_per_sigma=6.0)
    assert abs(fine.probability(0.0) - big.probability(0.0)) < 1e-8


def test_two_type_expected_frequency_limits_and_wright_formula():
    N, r, i0 = 12, 1.3, 3
    p = i0 / N
    # one Wright-Fisher generation: Wright's haploid response, exactly
    assert math.isclose(th.two_type_expected_frequency(N, r, i0, 1), p * r / (p * r + 1 - p), rel_tol=1e-12)
    # long times: the fixation probability (an independent absorbing-chain solve / closed form)
    assert math.isclose(th.two_type_expected_frequency(N, r, i0, 3000), th.wf_fixation_probability(r, N, i0),
                        rel_tol=1e-9)
    assert math.isclose(th.two_type_expected_frequency(N, r, i0, 3000, "moran"),
                        th.moran_fixation_probability(r, N, i0), rel_tol=1e-9)
    t = np.array([5, 1, 3])
    out = th.two_type_expected_frequency(N, r, i0, t)
    assert np.allclose(out, [th.two_type_expected_frequency(N, r, i0, int(k)) for k in t])
    with pytest.raises(ValueError):
        th.two_type_expected_frequency(N, r, N + 1, 1)


def test_two_type_expected_frequency_moran_generation_against_simulation():
    # one Moran generation (N birth-death events) from i0 copies of the fitter type, simulated
    N, r, i0, R = 10, 1.5, 3, 40_000
    x0 = np.zeros((R, N, 1))
    x0[:, :i0, 0] = 1.0
    land = sd.fitness.MultiplicativeFitness([[0.0, r - 1.0]])
    ds = sd.simulate(sd.Moran(population_size=N, mutation_rate=0.0), land, x0, n_replicas=R, n_steps=1, rng=3)
    f = ds["allele_frequency"].isel(time=-1, dim=0, allele=1).values
    se = f.std(ddof=1) / math.sqrt(R)
    exact = th.two_type_expected_frequency(N, r, i0, 1, "moran")
    assert abs(f.mean() - exact) < Z * se, (f.mean(), exact, se)
    wf = th.two_type_expected_frequency(N, r, i0, 1, "wright-fisher")
    assert abs(exact - i0 / N) > 20 * se  # selection is resolved
    assert abs(exact - wf) > 0  # Moran's generation is not Wright-Fisher's (a second-order difference)


def test_wf_drift_variance_against_simulation():
    # fixed parents on a harmonic well; Var(mean') = (V_w + m)/N, not the unweighted (V + m)/N
    N, R, s, scale = 20, 40_000, 2.0, 0.3
    rng = np.random.default_rng(4)
    parents = rng.normal(0.5, 1.0, size=(N, 1))
    land = sd.landscapes.Harmonic(stiffness=1.0, dim=1)
    w = np.exp(-s * land.value(parents))
    exact = th.wf_drift_variance(w, parents, scale**2)[0]
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_scale=scale, selection=s), land,
                     np.broadcast_to(parents, (R, N, 1)).copy(), n_replicas=R, n_steps=1, rng=5)
    m = ds["population_mean"].isel(time=-1, dim=0).values
    v = m.var(ddof=1)
    se = v * math.sqrt(2.0 / (R - 1) + (np.mean((m - m.mean()) ** 4) / v**2 - 3.0) / R)
    assert abs(v - exact) < Z * se, (v, exact, se)
    unweighted = (parents.var() + scale**2) / N
    assert abs(unweighted - exact) > 10 * se
    # shapes: (..., N) and (..., N, d) -> (..., d)
    assert th.wf_drift_variance(np.ones((3, N)), np.zeros((3, N, 2))).shape == (3, 2)


def test_gaussian_selection_response_harmonic_and_double_well():
    G = np.array([[0.3, 0.1], [0.1, 0.2]])
    m = np.array([-0.7, 0.4])
    land = sd.landscapes.Harmonic(stiffness=[1.0, 3.0], center=[0.2, -0.1])
    exact = th.harmonic_selection_response(m, G, [1.0, 3.0], [0.2, -0.1], 0.8)
    assert np.allclose(th.gaussian_selection_response(land, m, G, 0.8), exact, rtol=1e-10, atol=1e-14)
    # double well, one coordinate: against adaptive quadrature of E[z w]/E[w] - mean
    from scipy import integrate

    dw = sd.landscapes.DoubleWell(dim=1, tilt=0.3)
    g0, s, mu = 0.05, 1.0, -0.4

    def moment(k):
        f = lambda z: z**k * math.exp(-s * dw.value(np.array([[z]]))[0] - (z - mu) ** 2 / (2 * g0))
        return integrate.quad(f, mu - 12 * math.sqrt(g0), mu + 12 * math.sqrt(g0), epsabs=0, epsrel=1e-13)[0]

    quad = moment(1) / moment(0) - mu
    assert math.isclose(th.gaussian_selection_response(dw, [mu], [[g0]], s)[0], quad, rel_tol=1e-9)
    # it is the gradient of log fitness at the mean only for vanishing variance
    naive = -s * g0 * dw.grad(np.array([mu]))[0]
    assert abs(quad - naive) > 0.05 * abs(naive)
    tiny = th.gaussian_selection_response(dw, [mu], [[1e-6]], s)[0]
    assert math.isclose(tiny, -s * 1e-6 * dw.grad(np.array([mu]))[0], rel_tol=1e-4)


# ---------------------------------------------------------------------------------------------------
# finite-population response, moving optimum, two-locus recombination (issue 15)
# ---------------------------------------------------------------------------------------------------
def _gaussian_fitness(z):
    return np.exp(-0.5 * z**2)


def test_finite_population_response_limits_and_two_parents_by_quadrature():
    f = _gaussian_fitness
    assert abs(th.finite_population_selection_response(f, 1.5, 1.0, 1)) < 1e-12  # one parent: no response
    lande = th.gaussian_selection_response(lambda z: 0.5 * z[..., 0] ** 2, [1.5], [[1.0]], 1.0)[0]
    assert abs(th.finite_population_selection_response(f, 1.5, 1.0, 10**6) - lande) < 1e-5  # O(1/M) -> 0
    # M = 2 by an independent route: 2-D Gauss-Hermite over both parents of E[(w1 z1 + w2 z2)/(w1 + w2)]
    g, gw = np.polynomial.hermite_e.hermegauss(120)
    z1, z2 = np.meshgrid(1.5 + g, 1.5 + g, indexing="ij")
    W = np.outer(gw, gw) / (2 * math.pi)
    ratio = (f(z1) * z1 + f(z2) * z2) / (f(z1) + f(z2))
    assert abs(th.finite_population_selection_response(f, 1.5, 1.0, 2) - (np.sum(W * ratio) - 1.5)) < 1e-9


def test_finite_population_response_against_monte_carlo():
    # M = 4 parents from N(1.5, 1): 400 000 sampled populations; SE from the sample, bound 4 SE
    rng = np.random.default_rng(3)
    z = 1.5 + rng.standard_normal((400_000, 4))
    w = _gaussian_fitness(z)
    r = (w * z).sum(1) / w.sum(1) - 1.5
    exact = th.finite_population_selection_response(_gaussian_fitness, 1.5, 1.0, 4)
    se = r.std(ddof=1) / math.sqrt(r.size)
    assert abs(r.mean() - exact) < Z * se
    assert abs(-0.75 - exact) > 50 * se  # Lande's M -> infinity value is far away at M = 4


def test_moving_optimum_lag_is_the_fixed_point_of_landes_recursion():
    # iterate the exact Gaussian one-generation response (quadrature) behind an optimum moving at v
    s, k, V, v = 0.8, 1.5, 0.3, 0.05
    lag = 0.0
    for _ in range(400):
        dz = th.gaussian_selection_response(lambda z: 0.5 * k * z[..., 0] ** 2, [-lag], [[V]], s)[0]
        lag = lag - dz + v  # the mean moves by dz towards the optimum at 0, then the optimum moves by v
    assert math.isclose(lag, th.moving_optimum_lag(v, s, V, stiffness=k), rel_tol=1e-10)
    with pytest.raises(ValueError):
        th.moving_optimum_lag(0.1, 0.0, 1.0)


def test_two_locus_chain_without_recombination_is_the_two_type_chain():
    # only aB and Ab present, no recombination: a two-type Wright-Fisher chain with r = W(Ab)/W(aB)
    N, t = 9, [0, 1, 4, 12]
    out = th.two_locus_expected_haplotypes(N, [1.0, 1.1, 1.3, 2.0], [0, 6, 3, 0], t, recombination_rate=0.0)
    assert np.allclose(out[:, [0, 3]], 0.0)
    assert np.allclose(out[:, 2], th.two_type_expected_frequency(N, 1.3 / 1.1, 3, t, "wright-fisher"), atol=1e-12)


def test_two_locus_chain_one_generation_is_the_gamete_map():
    w = np.array([1.0, 0.9, 1.2, 1.5])
    n = np.array([2, 3, 4, 1])
    pw = n * w / (n * w).sum()
    D = pw[3] * pw[0] - pw[2] * pw[1]
    for rho in (0.0, 0.4, 1.0):
        g = pw + rho / 2 * D * np.array([-1, 1, 1, -1])
        assert np.allclose(th.two_locus_expected_haplotypes(10, w, n, 1, rho), g, atol=1e-13)


def test_two_locus_chain_against_an_individual_based_sampler():
    # plain NumPy, individual by individual: parents drawn by fitness, a second parent with probability rho,
    # each locus from either parent; 40 000 populations of N = 6 for 3 generations; bound 4 SE per haplotype
    rng = np.random.default_rng(5)
    N, R, rho, T = 6, 40_000, 1.0, 3
    w = np.array([1.0, 1.25, 1.25, 1.5625])
    g = np.zeros((R, N, 2), dtype=int)
    g[:, :3] = [0, 1]
    g[:, 3:] = [1, 0]
    for _ in range(T):
        fit = w[2 * g[..., 0] + g[..., 1]]
        cum = np.cumsum(fit, axis=1)
        cum /= cum[:, -1:]
        pick = lambda: np.minimum((rng.random((R, N, 1)) > cum[:, None, :]).sum(-1), N - 1)  # noqa: E731
        a, b = pick(), pick()
        two = rng.random((R, N)) < rho
        side = rng.random((R, N, 2)) < 0.5
        pa = np.take_along_axis(g, a[..., None].repeat(2, -1), 1)
        pb = np.take_along_axis(g, b[..., None].repeat(2, -1), 1)
        g = np.where(two[..., None] & side, pb, pa)
    h = 2 * g[..., 0] + g[..., 1]
    freq = np.stack([(h == k).mean(1) for k in range(4)], axis=1)
    exact = th.two_locus_expected_haplotypes(N, w, [0, 3, 3, 0], T, rho)
    se = freq.std(0, ddof=1) / math.sqrt(R)
    assert np.all(np.abs(freq.mean(0) - exact) < Z * se)
    assert exact[3] > 0.1 and abs(exact[3]) > 30 * se[3]  # recombination made AB: far from 0 (no recombination)
