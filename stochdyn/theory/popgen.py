r"""Population genetics of the haploid Wright–Fisher and Moran models as implemented in stochdyn.

Conventions (see :mod:`stochdyn.integrators.popgen`): N haploid individuals; a mutant of relative
fitness r = W_mutant / W_resident; the log-fitness coefficient is :math:`\sigma = \log r`
(= :math:`-s\,\Delta U` with the exponential map :math:`W = e^{-sU}`). Time in generations; a Moran
generation is N birth–death events.

Exact finite-population results come from the Markov chains of allele counts (no diffusion limit):
Wright–Fisher transitions are binomial, :math:`i \to \mathrm{Bin}(N, q_i)`; Moran's are
birth–death. Diffusion (Kimura) formulas are given beside, for comparison.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy import linalg

if TYPE_CHECKING:
    from .langevin import GridDensity


def _binom_pmf(k: Any, n: Any, p: Any) -> Any:
    from scipy import stats  # imported on use: scipy.stats costs ~0.2 s at import

    return stats.binom.pmf(k, n, p)


__all__ = [
    "moran_fixation_probability",
    "wf_fixation_probability",
    "kimura_fixation_probability",
    "wf_effective_beta",
    "sella_hirsh_beta",
    "sella_hirsh_stationary",
    "origin_fixation_stationary",
    "biallelic_stationary",
    "wf_neutral_frequency_variance",
    "moran_neutral_frequency_variance",
    "wf_neutral_trait_variance",
    "lande_response",
    "harmonic_selection_response",
    "price_response",
    "wf_drift_variance",
    "two_type_expected_frequency",
    "gaussian_selection_response",
    "origin_fixation_density",
    "finite_population_selection_response",
    "moving_optimum_lag",
    "two_locus_expected_haplotypes",
]


def _selected_frequency(i: np.ndarray, N: int, r: float) -> np.ndarray:
    """Probability that a parent drawn ∝ fitness is a mutant, with i mutants of fitness r among N."""
    i = np.asarray(i, dtype=float)
    return i * r / (i * r + (N - i))


def _mutated(p: np.ndarray, mu: float) -> np.ndarray:
    """Probability that a newborn is type 1 if its parent is type 1 with probability p (2 alleles, flip rate mu)."""
    return p * (1.0 - mu) + (1.0 - p) * mu


def moran_fixation_probability(r: float, N: int, i: int = 1) -> float:
    r"""Exact fixation probability of ``i`` mutants of relative fitness r in a Moran population of N.

    :math:`\pi_i = (1 - r^{-i})/(1 - r^{-N})` (Moran 1958); :math:`i/N` for r = 1. Exact for the
    implemented process: in every event the number of mutants goes up with probability
    :math:`\frac{ir}{ir+N-i}\frac{N-i}{N}` and down with :math:`\frac{N-i}{ir+N-i}\frac iN`, ratio r.
    """
    r, N, i = float(r), int(N), int(i)
    if r <= 0:
        raise ValueError(f"r must be > 0. Got {r}.")
    if abs(r - 1.0) < 1e-12:
        return i / N
    lr = math.log(r)
    return math.expm1(-i * lr) / math.expm1(-N * lr)


def wf_fixation_probability(r: float, N: int, i: int | None = 1) -> float | np.ndarray:
    r"""Exact fixation probability in the haploid Wright–Fisher model, by solving the absorbing chain.

    From i mutants, the next generation has :math:`\mathrm{Bin}(N, q_i)` mutants with
    :math:`q_i = ir/(ir + N - i)`. The absorption probabilities h solve :math:`(I - Q)h = b` on the
    transient states 1..N-1 (b: one-step probability of reaching N). ``i=None`` returns all of
    :math:`h_0..h_N`.
    """
    N = int(N)
    k = np.arange(N + 1)
    P = _binom_pmf(k[None, :], N, _selected_frequency(k, N, float(r))[:, None])
    Q = P[1:N, 1:N]
    b = P[1:N, N]
    h = np.concatenate([[0.0], linalg.solve(np.eye(N - 1) - Q, b), [1.0]])
    return h if i is None else float(h[int(i)])


def kimura_fixation_probability(sigma: float, N: int, p: float | None = None, model: str = "wright-fisher") -> float:
    r"""Kimura's diffusion approximation of the fixation probability (Kimura 1962, Genetics 47, 713).

    Haploid Wright–Fisher with N individuals and log-fitness coefficient :math:`\sigma = \log r`:
    :math:`u(p) = (1 - e^{-2N\sigma p})/(1 - e^{-2N\sigma})`. The Moran model drifts twice as fast
    per generation (effective size N/2): :math:`u(p) = (1 - e^{-N\sigma p})/(1 - e^{-N\sigma})`.
    ``p`` defaults to a single mutant, 1/N.
    """
    p = 1.0 / N if p is None else float(p)
    if model not in ("wright-fisher", "moran"):
        raise ValueError(f"model must be 'wright-fisher' or 'moran'. Got {model!r}.")
    a = (2.0 if model == "wright-fisher" else 1.0) * N * float(sigma)
    if abs(a) < 1e-12:
        return p
    return math.expm1(-a * p) / math.expm1(-a)


def wf_effective_beta(r: float, N: int) -> float:
    r"""The exact Sella–Hirsh exponent of the Wright–Fisher model: :math:`\log(\pi(r)/\pi(1/r))/\log r`.

    In the weak-mutation limit a population alternating between two types with fitness ratio r
    spends a fraction :math:`\pi(r)/(\pi(r)+\pi(1/r))` of the time at the fitter type. For Moran
    :math:`\pi(r)/\pi(1/r) = r^{N-1}` exactly; for Wright–Fisher the ratio is :math:`r^{\nu(r)}`
    with :math:`\nu \to 2(N-1)` in the diffusion limit (this function returns ν). With
    :math:`r = e^{-s\Delta U}`, the stationary law is :math:`\propto e^{-\nu s U}`.
    """
    return math.log(wf_fixation_probability(r, N) / wf_fixation_probability(1.0 / r, N)) / math.log(r)


def sella_hirsh_beta(N: int, selection: float = 1.0, model: str = "moran") -> float:
    r"""Inverse temperature of the weak-mutation stationary law :math:`\propto e^{-\beta U}` for :math:`W = e^{-sU}`.

    Moran: :math:`\beta = (N-1)s`, exact (Sella & Hirsh 2005, PNAS 102, 9541). Wright–Fisher:
    :math:`\beta = 2(N-1)s` in the diffusion limit (exact finite-N values: :func:`wf_effective_beta`).
    """
    if model == "moran":
        return (N - 1) * float(selection)
    if model == "wright-fisher":
        return 2.0 * (N - 1) * float(selection)
    raise ValueError(f"model must be 'moran' or 'wright-fisher'. Got {model!r}.")


def sella_hirsh_stationary(energies: np.ndarray, N: int, selection: float = 1.0, model: str = "moran") -> np.ndarray:
    r"""Boltzmann weights :math:`e^{-\beta U_i}/Z` over types with energies ``U_i`` (β from :func:`sella_hirsh_beta`)."""
    beta = sella_hirsh_beta(N, selection, model)
    e = -beta * (np.asarray(energies, dtype=float) - np.min(energies))
    p = np.exp(e)
    return p / p.sum()


def _fixation_probabilities(log_r: np.ndarray, N: int, model: str) -> np.ndarray:
    """Exact single-mutant fixation probabilities for an array of log fitness ratios (vectorised).

    Moran: the closed form of :func:`moran_fixation_probability`. Wright–Fisher: the absorbing
    binomial chain of :func:`wf_fixation_probability`, solved for all ratios at once (batched).
    """
    lr = np.clip(np.asarray(log_r, dtype=float), -40.0, 40.0)  # beyond, pi is 0 or its r -> infinity limit
    N = int(N)
    if model == "moran":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.expm1(-lr) / np.expm1(-N * lr)
        return np.where(np.abs(lr) < 1e-12, 1.0 / N, out)
    if model != "wright-fisher":
        raise ValueError(f"model must be 'moran' or 'wright-fisher'. Got {model!r}.")
    from scipy.special import gammaln

    flat = lr.ravel()
    k = np.arange(N + 1)
    i = k[1:N]  # transient states
    log_binom = gammaln(N + 1.0) - gammaln(k + 1.0) - gammaln(N - k + 1.0)
    out = np.empty(flat.size)
    eye = np.eye(N - 1)
    for a in range(0, flat.size, 8192):  # chunks bound the memory of the (chunk, N-1, N+1) matrices
        up = np.log(i)[None, :, None] + flat[a:a + 8192, None, None]  # log(i r)
        down = np.log(N - i)[None, :, None]  # log(N - i)
        norm = np.logaddexp(up, down)  # q_i = i r / (i r + N - i), in logs so that r -> 0, inf stay finite
        P = np.exp(log_binom + k * (up - norm) + (N - k) * (down - norm))  # Bin(k; N, q_i), rows i = 1..N-1
        h = np.linalg.solve(eye[None] - P[:, :, 1:N], P[:, :, N][..., None])[..., 0]
        out[a:a + 8192] = h[:, 0]
    return out.reshape(lr.shape)


def _stationary_of_generator(rate: np.ndarray) -> np.ndarray:
    """Stationary probabilities m of the continuous-time chain with off-diagonal rates ``rate[a, b]`` (m Q = 0)."""
    K = rate.shape[0]
    gen = rate - np.diag(rate.sum(axis=1))
    A = gen.T.copy()
    A[-1] = 1.0  # for an irreducible chain, the balance equations minus one plus normalisation are regular
    rhs = np.zeros(K)
    rhs[-1] = 1.0
    try:
        return np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:  # reducible: a least-squares stationary vector
        return np.linalg.lstsq(np.vstack([gen.T, np.ones(K)]), np.append(np.zeros(K), 1.0), rcond=None)[0]


def origin_fixation_stationary(log_fitness: np.ndarray, mutation: np.ndarray, N: int, model: str = "moran") -> np.ndarray:
    r"""Stationary law of the weak-mutation (origin–fixation) chain over monomorphic types.

    Rate from type a to b: :math:`N M_{ab}\,\pi(W_b/W_a)` with the exact single-mutant fixation
    probability of the model (``moran`` or ``wright-fisher``); ``mutation[a, b]`` is the
    probability that a newborn of type a is of type b. For symmetric M and Moran this is the
    Sella–Hirsh law :math:`\propto W^{N-1}`.
    """
    lw = np.asarray(log_fitness, dtype=float)
    M = np.asarray(mutation, dtype=float)
    fix = _fixation_probabilities(lw[None, :] - lw[:, None], N, model)
    rate = np.where(M > 0, N * M * fix, 0.0)
    np.fill_diagonal(rate, 0.0)
    return _stationary_of_generator(rate)


def biallelic_stationary(N: int, r: float, mu: float, model: str = "wright-fisher") -> np.ndarray:
    r"""Exact stationary law of the count of allele 1 (0..N) at one biallelic site, at finite mutation rate.

    The chains as implemented: a newborn's parent is type 1 with probability :math:`p_i = ir/(ir+N-i)`
    and the newborn flips its allele with probability μ, so it is type 1 with probability
    :math:`q_i = p_i(1-\mu) + (1-p_i)\mu`. Wright–Fisher: :math:`i \to \mathrm{Bin}(N, q_i)`. Moran
    (per event): up with :math:`q_i (N-i)/N`, down with :math:`(1-q_i)\,i/N`. As
    :math:`\mu \to 0` the mass concentrates on 0 and N with ratio :math:`\pi(r)/\pi(1/r)`.
    """
    N = int(N)
    k = np.arange(N + 1)
    if model == "wright-fisher":
        P = _count_chain(N, r, mu, model)
        A = np.vstack([(P.T - np.eye(N + 1)), np.ones(N + 1)])
        rhs = np.zeros(N + 2)
        rhs[-1] = 1.0
        return np.linalg.lstsq(A, rhs, rcond=None)[0]
    if model == "moran":
        q = _mutated(_selected_frequency(k, N, float(r)), float(mu))
        up = q[:-1] * (N - k[:-1]) / N
        down = (1.0 - q[1:]) * k[1:] / N
        logp = np.concatenate([[0.0], np.cumsum(np.log(up) - np.log(down))])
        p = np.exp(logp - logp.max())
        return p / p.sum()
    raise ValueError(f"model must be 'wright-fisher' or 'moran'. Got {model!r}.")


def _count_chain(N: int, r: float, mu: float, model: str) -> np.ndarray:
    r"""Transition matrix of the count of type 1 (0..N) over one step of the implemented chain.

    Wright–Fisher (one generation): :math:`i \to \mathrm{Bin}(N, q_i)`. Moran (one birth–death
    event): up with :math:`q_i (N-i)/N`, down with :math:`(1-q_i)\,i/N`. Here
    :math:`q_i = p_i(1-\mu) + (1-p_i)\mu`, :math:`p_i = ir/(ir+N-i)` (see :func:`biallelic_stationary`).
    """
    k = np.arange(N + 1)
    q = _mutated(_selected_frequency(k, N, float(r)), float(mu))
    if model == "wright-fisher":
        return _binom_pmf(k[None, :], N, q[:, None])
    if model == "moran":
        up = q * (N - k) / N
        down = (1.0 - q) * k / N
        return np.diag(up[:-1], 1) + np.diag(down[1:], -1) + np.diag(1.0 - up - down)
    raise ValueError(f"model must be 'wright-fisher' or 'moran'. Got {model!r}.")


def wf_neutral_frequency_variance(p0: float, N: int, t: np.ndarray) -> np.ndarray:
    r"""Variance over replicas of a neutral allele frequency after t Wright–Fisher generations (haploid).

    :math:`\mathrm{Var}(p_t) = p_0(1-p_0)\,\big(1 - (1 - 1/N)^t\big)`, since the expected
    heterozygosity decays by :math:`1 - 1/N` per generation. Exact.
    """
    t = np.asarray(t, dtype=float)
    return p0 * (1 - p0) * (1.0 - (1.0 - 1.0 / N) ** t)


def moran_neutral_frequency_variance(p0: float, N: int, t: np.ndarray) -> np.ndarray:
    r"""Variance of a neutral allele frequency after t Moran generations (N events each).

    Per event :math:`\mathrm E[\Delta p^2] = 2p(1-p)/N^2`, so
    :math:`\mathrm{Var}(p_t) = p_0(1-p_0)\big(1 - (1 - 2/N^2)^{Nt}\big)`. Exact.
    """
    t = np.asarray(t, dtype=float)
    return p0 * (1 - p0) * (1.0 - (1.0 - 2.0 / N**2) ** (N * t))


def wf_neutral_trait_variance(t: np.ndarray, N: int, mutation_variance: float, v0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Neutral continuous trait under Wright–Fisher drift and mutation, per coordinate. Exact.

    With per-generation mutation variance :math:`m` (``mutation_rate * mutation_scale**2``) and
    within-population variance :math:`V` (1/N normalisation), offspring are i.i.d. given the parents
    with variance :math:`V + m`, so
    :math:`\mathrm E V_{t+1} = (1 - 1/N)(\mathrm E V_t + m)` (equilibrium :math:`(N-1)m`) and the
    population mean diffuses: :math:`\mathrm{Var}(\bar z_t) = \sum_{\tau<t} (\mathrm E V_\tau + m)/N`.

    Returns
    -------
    (E[V_t], Var(mean_t)) : arrays over ``t``
    """
    t = np.atleast_1d(np.asarray(t, dtype=int))
    T = int(t.max())
    a = 1.0 - 1.0 / N
    EV = np.empty(T + 1)
    VM = np.empty(T + 1)
    EV[0], VM[0] = v0, 0.0
    for k in range(T):
        EV[k + 1] = a * (EV[k] + mutation_variance)
        VM[k + 1] = VM[k] + (EV[k] + mutation_variance) / N
    return EV[t], VM[t]


def lande_response(G: np.ndarray, grad_log_mean_fitness: np.ndarray) -> np.ndarray:
    r"""Lande's response of the mean to selection, :math:`\Delta\bar z = G\,\nabla_{\bar z}\log\bar W` (Lande 1976)."""
    return np.asarray(G, dtype=float) @ np.asarray(grad_log_mean_fitness, dtype=float)


def harmonic_selection_response(mean: np.ndarray, G: np.ndarray, stiffness: np.ndarray, center: np.ndarray,
                                selection: float = 1.0) -> np.ndarray:
    r"""Exact one-generation response of a Gaussian population :math:`\mathcal N(\bar z, G)` to :math:`W = e^{-sU}`,
    :math:`U = \tfrac12 (z-c)^\top K (z-c)`, in an infinite population.

    The selected density is Gaussian with mean :math:`(G^{-1} + sK)^{-1}(G^{-1}\bar z + sKc)`, so
    :math:`\Delta\bar z = -G(I + sKG)^{-1} sK(\bar z - c)`, which equals Lande's
    :math:`G\nabla\log\bar W` with :math:`\log\bar W = -\tfrac12 (\bar z-c)^\top (G + (sK)^{-1})^{-1}(\bar z-c) + \text{const}`.
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    K = np.atleast_2d(np.asarray(stiffness, dtype=float))
    if K.shape[0] == 1 and G.shape[0] > 1:
        K = np.diag(np.broadcast_to(np.ravel(K), G.shape[0]))
    elif K.ndim == 2 and K.shape != G.shape:
        K = np.diag(np.ravel(K))
    sK = float(selection) * K
    d = G.shape[0]
    grad = -np.linalg.solve(np.eye(d) + sK @ G, sK @ (np.ravel(mean) - np.ravel(center)))
    return lande_response(G, grad)


def price_response(w: np.ndarray, z: np.ndarray) -> np.ndarray:
    r"""Price/Robertson: the expected change of the mean under fitness-proportional reproduction with
    unbiased transmission, :math:`\mathrm{Cov}(w, z)/\bar w = \sum_i w_i z_i / \sum_i w_i - \bar z`.

    ``w`` has shape (..., N), ``z`` (..., N, d); exact for one Wright–Fisher generation given the parents.
    """
    w = np.asarray(w, dtype=float)
    z = np.asarray(z, dtype=float)
    return np.einsum("...i,...ij->...j", w, z) / w.sum(-1)[..., None] - z.mean(-2)


def wf_drift_variance(w: np.ndarray, z: np.ndarray, mutation_variance: float = 0.0) -> np.ndarray:
    r"""Variance of the next generation's mean given the parents, for one Wright–Fisher generation. Exact.

    The N offspring are i.i.d. given the parents: each picks parent i with probability
    :math:`w_i/\sum_j w_j` and adds a mutation of mean 0 and variance m (``mutation_rate *
    mutation_scale**2`` per coordinate). So each offspring has variance
    :math:`V_w + m` with :math:`V_w = \sum_i w_i (z_i - \bar z_w)^2/\sum_i w_i` (the
    fitness-weighted parental variance, :math:`\bar z_w` the weighted mean), and

    .. math:: \mathrm{Var}(\bar z' \mid \text{parents}) = (V_w + m)/N .

    This is genetic drift of the mean: its conditional mean is zero (the mean response is
    :func:`price_response`), and its size is set by N and the population's own variance, not by
    the fitness gradient. ``w`` has shape (..., N), ``z`` (..., N, d); returns (..., d).
    """
    w = np.asarray(w, dtype=float)
    z = np.asarray(z, dtype=float)
    p = w / w.sum(-1)[..., None]
    zw = np.einsum("...i,...ij->...j", p, z)
    vw = np.einsum("...i,...ij->...j", p, (z - zw[..., None, :]) ** 2)
    return (vw + float(mutation_variance)) / z.shape[-2]


def two_type_expected_frequency(N: int, r: float, i0: int, generations: np.ndarray | int,
                                model: str = "wright-fisher", mu: float = 0.0) -> np.ndarray:
    r"""Exact expected frequency :math:`\mathrm E[p_t]` of type 1 after t generations, from ``i0`` copies of N.

    Two types with fitness ratio r = W_1/W_0 (and symmetric flip rate ``mu`` per newborn, default 0),
    as the implemented chains: :math:`\mathrm E[p_t] = e_{i_0}^\top P^t k / N` with P the count
    transition matrix over one generation — Wright–Fisher binomial sampling, or N Moran birth–death
    events. One Wright–Fisher generation gives Wright's exact haploid response
    :math:`\Delta p = p(1-p)(r-1)/(1 + p(r-1)) = p(1-p)\,\partial_p \log \bar w` (the Price equation
    for two types); the deterministic (infinite-N) recursion iterates the same map on p itself,
    which overestimates :math:`\mathrm E[p_t]` for t > 1 when r > 1 (the map is concave: drift
    lowers the expected response, and :math:`\mathrm E[p_\infty]` is the fixation probability).
    """
    N, i0 = int(N), int(i0)
    if not 0 <= i0 <= N:
        raise ValueError(f"i0 must be in [0, {N}]. Got {i0}.")
    t = np.atleast_1d(np.asarray(generations, dtype=int))
    P = _count_chain(N, r, mu, model)
    if model == "moran":
        P = np.linalg.matrix_power(P, N)
    v = np.zeros(N + 1)
    v[i0] = 1.0
    out = np.empty(t.size)
    done = 0
    for j in np.argsort(t):
        for _ in range(int(t[j]) - done):
            v = v @ P
        done = int(t[j])
        out[j] = v @ np.arange(N + 1) / N
    return out if np.ndim(generations) else out[0]


def gaussian_selection_response(potential: Any, mean: np.ndarray, cov: np.ndarray, selection: float = 1.0,
                                order: int = 48) -> np.ndarray:
    r"""Exact one-generation response of an infinite Gaussian population :math:`\mathcal N(\bar z, G)` to
    :math:`W = e^{-sU}` on any landscape U.

    Fitness-proportional selection maps the trait density f to :math:`wf/\bar W`, so
    :math:`\Delta\bar z = \mathrm E[z\,w]/\mathrm E[w] - \bar z` with expectations over
    :math:`\mathcal N(\bar z, G)`; by Stein's lemma this is Lande's
    :math:`G\,\nabla_{\bar z}\log\bar W(\bar z)` with :math:`\bar W(\bar z) = \mathrm E[w]` (Lande 1976,
    Evolution 30, 314), exactly. It equals the gradient of log fitness at the mean,
    :math:`-sG\nabla U(\bar z)`, only as :math:`G \to 0` (or for quadratic U, up to the factor
    :math:`(I+sKG)^{-1}` of :func:`harmonic_selection_response`). Computed by tensor-product
    Gauss–Hermite quadrature with ``order`` nodes per coordinate (d <= 3).

    ``potential`` is a landscape or a vectorised ``U(x)`` on arrays (..., d); returns (d,).
    """
    m = np.ravel(np.asarray(mean, dtype=float))
    d = m.size
    if d > 3:
        raise ValueError(f"gaussian_selection_response integrates by a tensor grid: d <= 3. Got d = {d}.")
    G = np.atleast_2d(np.asarray(cov, dtype=float))
    L = np.linalg.cholesky(G)
    g, gw = np.polynomial.hermite_e.hermegauss(int(order))
    xi = np.stack(np.meshgrid(*([g] * d), indexing="ij"), axis=-1).reshape(-1, d)
    wq = np.prod(np.stack(np.meshgrid(*([gw] * d), indexing="ij"), axis=-1).reshape(-1, d), axis=1)
    z = m + xi @ L.T
    U = potential.value if hasattr(potential, "value") else potential
    logw = -float(selection) * np.asarray(U(z), dtype=float)
    a = wq * np.exp(logw - logw.max())
    return (a @ z) / a.sum() - m


def origin_fixation_density(potential: Any, N: int, selection: float, mutation_scale: float, model: str = "moran", *,
                            bounds: tuple[float, float] | None = None, coordinate: int = 0,
                            cells_per_sigma: float = 3.0, max_nodes: int = 3000) -> GridDensity:
    r"""Stationary density of a continuous 1-D trait in the weak-mutation (origin–fixation) limit, exact.

    A monomorphic population at trait x, fitness :math:`W = e^{-sU}`, receives mutants
    :math:`y = x + \delta`, :math:`\delta \sim \mathcal N(0, \sigma_m^2)` (``mutation_scale``), at rate
    :math:`N\mu` per generation; a mutant fixes with the exact single-mutant probability
    :math:`\pi(W(y)/W(x))` of the model (Moran: :func:`moran_fixation_probability`; Wright–Fisher:
    :func:`wf_fixation_probability`). The trait is then a jump process with rate density
    :math:`N\mu\,\phi(y-x)\,\pi(e^{-s(U(y)-U(x))})` (Sella & Hirsh 2005, PNAS 102, 9541), whose
    stationary density p solves :math:`p(y)\int\phi\,\pi(y\to\cdot) = \int p(x)\,\phi(y-x)\,\pi(x\to y)\,dx`.

    * Moran: :math:`\pi(r)/\pi(1/r) = r^{N-1}` for every r, so detailed balance gives exactly
      :math:`p \propto e^{-(N-1)sU}`.
    * Wright–Fisher: :math:`\pi(r)/\pi(1/r) = r^{\nu(r)}` with :math:`\nu(r) \to 2(N-1)` exactly as
      :math:`r \to 1` (:func:`wf_effective_beta`; the derivative of :math:`\pi` at neutrality is
      :math:`(N-1)/N`) and slightly below for larger jumps; the chain is then not exactly reversible
      and p is close to, not exactly, :math:`e^{-2(N-1)sU}/Z`. This computes it.

    The rate N μ sets only the time scale. The balance equation is solved by the Nyström method on
    composite 8-point Gauss–Legendre nodes (cells no wider than ``mutation_scale /
    cells_per_sigma``), and the interpolant follows from the balance equation at any point.
    ``leak`` is the fraction of substitutions from the stationary law that would land outside
    ``bounds`` (ignored here; a check that the interval holds the chain). Returns a :class:`~stochdyn.theory.GridDensity`.
    """
    from .escape import _as_potential, _em_nodes, _far_wall
    from .langevin import GridDensity

    N, s, sm = int(N), float(selection), float(mutation_scale)
    if not (sm > 0 and s >= 0):
        raise ValueError(f"mutation_scale must be > 0 and selection >= 0. Got {mutation_scale}, {selection}.")
    U = _as_potential(potential, coordinate)
    beta = sella_hirsh_beta(N, s, model)
    if bounds is None:
        T = 1.0 / beta
        lo = _far_wall(U, 0.0, T)
        hi = -_far_wall(lambda v: U(-np.asarray(v)), 0.0, T)
    else:
        lo, hi = sorted(float(v) for v in bounds)
    try:
        x, w = _em_nodes([lo, hi], sm, cells_per_sigma, max_nodes)
    except ValueError:
        raise ValueError(f"origin_fixation_density: mutation_scale={sm:g} on [{lo:g}, {hi:g}] needs more than "
                         f"max_nodes={max_nodes} quadrature nodes; raise max_nodes or narrow 'bounds'.") from None
    u = U(x)

    def rates(src_x: np.ndarray, src_u: np.ndarray, dst_x: np.ndarray, dst_u: np.ndarray,
              dst_w: np.ndarray) -> np.ndarray:
        phi = np.exp(-0.5 * ((dst_x[None, :] - src_x[:, None]) / sm) ** 2) / (sm * math.sqrt(2.0 * math.pi))
        return phi * dst_w[None, :] * _fixation_probabilities(-s * (dst_u[None, :] - src_u[:, None]), N, model)

    rate = rates(x, u, x, u, w)
    np.fill_diagonal(rate, 0.0)
    mass = _stationary_of_generator(rate)
    pdf = mass / w
    xo, wo = _em_nodes([lo - 10.0 * sm, lo, hi, hi + 10.0 * sm], sm, cells_per_sigma, max_nodes)
    outside = (xo < lo) | (xo > hi)
    xo, wo = xo[outside], wo[outside]
    leak = float(mass @ rates(x, u, xo, U(xo), wo).sum(axis=1) / (mass @ rate.sum(axis=1)))

    def interpolant(y: np.ndarray) -> np.ndarray:
        flat = np.atleast_1d(y).ravel()
        uy = U(flat)
        inflow = rates(x, u, flat, uy, np.ones(flat.size)).T @ mass
        outflow = rates(flat, uy, x, u, w).sum(axis=1)
        return (inflow / outflow).reshape(np.shape(y))

    return GridDensity(x, w, pdf, interpolant, leak)


# ---------------------------------------------------------------------------------------------
# added for the evolution study: finite-population response, moving optimum, two-locus recombination
# ---------------------------------------------------------------------------------------------
def finite_population_selection_response(fitness: Callable[[np.ndarray], np.ndarray], mean: float, variance: float,
                                         population_size: int, *, grid: int = 801, width: float = 12.0,
                                         log_t: tuple[float, float] = (-40.0, 80.0), t_points: int = 2401) -> float:
    r"""Exact expected one-generation response :math:`\mathrm E[\Delta\bar z]` of M parents drawn i.i.d.
    from :math:`\mathcal N(\mu, V)`, under fitness-proportional selection (one trait).

    Given the parents, the response is the Price covariance :math:`\sum_i w_i z_i/\sum_i w_i - \bar z`
    (Wright–Fisher, unbiased mutation; :func:`price_response`). Its expectation over the parents is not
    Lande's :math:`V\,\partial_\mu \log\bar W` (the M → ∞ value, :func:`gaussian_selection_response`): the
    ratio of sums is biased at finite M (by O(1/M)). It is computed exactly with the Laplace identity
    :math:`1/B = \int_0^\infty e^{-tB}\,dt` and the independence of the parents,

    .. math:: \mathrm E\Big[\frac{\sum_i w_i z_i}{\sum_j w_j}\Big]
              = M \int_0^\infty \mathrm E[w z\, e^{-t w}]\;\mathrm E[e^{-t w}]^{M-1}\,dt,

    the z-expectations by the trapezoidal rule on ``grid`` points over ±``width`` standard deviations
    (spectrally accurate for these smooth, Gaussian-decaying integrands) and the t-integral on
    :math:`t = e^u`, u in ``log_t`` (fitness is scaled to max 1 on the grid first; the ratio does not
    change). ``fitness`` is a vectorised :math:`w(z) > 0`.

    Returns :math:`\mathrm E[\Delta\bar z]`; M = 1 gives 0 and M → ∞ Lande's value.
    """
    M = int(population_size)
    if M < 1:
        raise ValueError(f"population_size must be >= 1. Got {population_size}.")
    sd = math.sqrt(float(variance))
    x = np.linspace(-width, width, int(grid))
    z = float(mean) + sd * x
    dens = np.exp(-0.5 * x * x)
    dens /= dens.sum()  # trapezoid weights on a uniform grid (end values are ~e^-72)
    w = np.asarray(fitness(z), dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("fitness must be finite, >= 0 and positive somewhere on the population's range.")
    w = w / w.max()
    u = np.linspace(*log_t, int(t_points))
    t = np.exp(u)
    out = np.empty(u.size)
    for k in range(0, u.size, 500):  # (t, z) blocks: bounded memory
        e = np.exp(-np.outer(t[k:k + 500], w))
        phi = e @ dens
        psi = e @ (dens * w * z)
        out[k:k + 500] = t[k:k + 500] * psi * phi ** (M - 1)
    ratio = M * float(np.sum(0.5 * (out[1:] + out[:-1]) * np.diff(u)))
    return ratio - float(mean)


def moving_optimum_lag(speed: float, selection: float, variance: float, stiffness: float = 1.0) -> float:
    r"""Stationary lag of a Gaussian population behind an optimum moving at ``speed`` per generation.

    Fitness :math:`W = e^{-sU}` with :math:`U = \tfrac k2 (z-\theta_t)^2` (Gaussian stabilising selection
    of width :math:`\omega^2 = 1/(sk)`), :math:`\theta_{t+1} = \theta_t + v`, a Gaussian trait
    distribution of variance V before selection and unbiased mutation. One generation maps the lag
    :math:`L_t = \theta_t - \bar z_t` (before selection) to :math:`L_{t+1} = L_t/(1 + skV) + v`
    (Lande's response :math:`skV/(1+skV)\,L` of :func:`harmonic_selection_response`), whose fixed point is

    .. math:: L^* = v\,\frac{1 + skV}{skV} = v\,\frac{V + \omega^2}{V}

    (Lynch & Lande 1993, in *Biotic Interactions and Global Change*, p. 234; Bürger & Lynch 1995,
    Evolution 49, 151): the lag grows with the speed of the environment and shrinks with the
    strength of selection and the standing variance.
    """
    a = float(selection) * float(stiffness) * float(variance)
    if not a > 0:
        raise ValueError(f"selection * stiffness * variance must be > 0. Got {a}.")
    return float(speed) * (1.0 + a) / a


def _compositions(N: int, k: int) -> np.ndarray:
    """Every vector of k non-negative integers summing to N, shape (C(N+k-1, k-1), k)."""
    if k == 1:
        return np.array([[N]])
    return np.array([[i, *rest] for i in range(N, -1, -1) for rest in _compositions(N - i, k - 1)])


def two_locus_expected_haplotypes(N: int, fitness: np.ndarray, counts0: np.ndarray, generations: np.ndarray | int,
                                  recombination_rate: float = 0.0) -> np.ndarray:
    r"""Exact expected haplotype frequencies of a haploid two-locus, two-allele Wright–Fisher population.

    Haplotypes are ordered ab, aB, Ab, AB (index 2·g₀ + g₁ for alleles g₀, g₁ ∈ {0, 1}), with fitness
    ``fitness`` (4,) and initial counts ``counts0`` (4,) summing to N; no mutation. As in
    :class:`stochdyn.WrightFisher` with ``recombination="free"``: each newborn has, with probability
    ρ = ``recombination_rate``, two parents (both drawn ∝ fitness) and takes each locus from either
    with probability 1/2 — a recombination fraction c = ρ/2. Given counts n, the gametes have
    frequencies :math:`g_h = p^w_h \mp c D^w` (− for ab and AB, + for aB and Ab) with :math:`p^w` the
    fitness-weighted haplotype frequencies and :math:`D^w = p^w_{AB} p^w_{ab} - p^w_{Ab} p^w_{aB}`
    their linkage disequilibrium, and the next counts are Multinomial(N, g). The chain on the
    :math:`\binom{N+3}{3}` count vectors is propagated exactly (no diffusion or deterministic limit).

    Returns an array (len(generations), 4) of :math:`\mathrm E[p_h(t)]` (or (4,) for a scalar t).
    """
    from scipy.special import gammaln

    N = int(N)
    w = np.asarray(fitness, dtype=float).ravel()
    n0 = np.asarray(counts0, dtype=int).ravel()
    if w.size != 4 or np.any(w <= 0):
        raise ValueError(f"fitness must hold 4 positive values (ab, aB, Ab, AB). Got {fitness!r}.")
    if n0.size != 4 or np.any(n0 < 0) or n0.sum() != N:
        raise ValueError(f"counts0 must hold 4 non-negative counts summing to N = {N}. Got {counts0!r}.")
    rho = float(recombination_rate)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"recombination_rate must be in [0, 1]. Got {recombination_rate}.")
    S = _compositions(N, 4)
    pw = S * w
    pw = pw / pw.sum(axis=1, keepdims=True)
    D = pw[:, 3] * pw[:, 0] - pw[:, 2] * pw[:, 1]
    g = pw + 0.5 * rho * D[:, None] * np.array([-1.0, 1.0, 1.0, -1.0])
    g = np.clip(g, 0.0, 1.0)
    # multinomial pmf P[i, j] of counts S[j] given gamete frequencies g[i] (0 log 0 = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(S[None, :, :] > 0, S[None, :, :] * np.log(g)[:, None, :], 0.0)
    P = np.exp(gammaln(N + 1) - gammaln(S + 1).sum(axis=1)[None, :] + terms.sum(axis=2))
    v = np.all(S == n0, axis=1).astype(float)
    t = np.atleast_1d(np.asarray(generations, dtype=int))
    out = np.empty((t.size, 4))
    done = 0
    for j in np.argsort(t):
        for _ in range(int(t[j]) - done):
            v = v @ P
        done = int(t[j])
        out[j] = v @ S / N
    return out if np.ndim(generations) else out[0]


def absorption_times(N: int, r: float, i0: int = 1, model: str = "wright-fisher",
                     generations: np.ndarray | None = None) -> dict[str, Any]:
    r"""Exact absorption of ``i0`` mutants of relative fitness r among N (no mutation): probabilities and times.

    With P the count chain over one generation (:func:`two_type_expected_frequency`: binomial for
    Wright–Fisher, N birth–death events for Moran, so times are whole generations as
    ``simulate(..., until=sd.stopping.Fixation())`` counts them), Q its block on the transient states
    1..N-1 and :math:`M = I - Q` (Kemeny & Snell 1960, *Finite Markov Chains*, §3.2–3.3):
    fixation probabilities :math:`h = M^{-1} P_{\cdot N}`; mean absorption time :math:`\tau = M^{-1}\mathbf 1`;
    mean times conditional on fixation and on loss, :math:`(M^{-1}h)_i/h_i` and
    :math:`(M^{-1}(1-h))_i/(1-h_i)` (from :math:`E[T\,1_{fix}] = h + Q\,E[T\,1_{fix}]`); and, at
    ``generations`` t, :math:`e_{i_0}^\top P^t`: the probabilities ``fixed_by``, ``lost_by`` and the
    survival :math:`P(T > t)`.

    Returns
    -------
    dict
        ``fixation_probability``, ``mean_time``, ``mean_fixation_time``, ``mean_loss_time`` (generations),
        and with ``generations``: ``survival``, ``fixed_by``, ``lost_by`` (arrays over them).
    """
    N, i0 = int(N), int(i0)
    if not 0 < i0 < N:
        raise ValueError(f"i0 must be in [1, {N - 1}] (a polymorphic start). Got {i0}.")
    P = _count_chain(N, r, 0.0, model)
    if model == "moran":
        P = np.linalg.matrix_power(P, N)
    M = np.eye(N - 1) - P[1:N, 1:N]
    lu = linalg.lu_factor(M)
    h = linalg.lu_solve(lu, P[1:N, N])
    tau = linalg.lu_solve(lu, np.ones(N - 1))
    g_fix = linalg.lu_solve(lu, h)
    g_loss = linalg.lu_solve(lu, 1.0 - h)
    j = i0 - 1
    out: dict[str, Any] = {"fixation_probability": float(h[j]), "mean_time": float(tau[j]),
                           "mean_fixation_time": float(g_fix[j] / h[j]), "mean_loss_time": float(g_loss[j] / (1.0 - h[j]))}
    if generations is not None:
        t = np.atleast_1d(np.asarray(generations, dtype=int))
        v = np.zeros(N + 1)
        v[i0] = 1.0
        fixed, lost = np.empty(t.size), np.empty(t.size)
        done = 0
        for k in np.argsort(t):
            for _ in range(int(t[k]) - done):
                v = v @ P
            done = int(t[k])
            fixed[k], lost[k] = v[N], v[0]
        out.update(fixed_by=fixed, lost_by=lost, survival=1.0 - fixed - lost)
    return out


__all__ += ["absorption_times"]
