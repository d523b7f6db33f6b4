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

import numpy as np
from scipy import linalg

def _binom_pmf(k, n, p):
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


def origin_fixation_stationary(log_fitness: np.ndarray, mutation: np.ndarray, N: int, model: str = "moran") -> np.ndarray:
    r"""Stationary law of the weak-mutation (origin–fixation) chain over monomorphic types.

    Rate from type a to b: :math:`N M_{ab}\,\pi(W_b/W_a)` with the exact single-mutant fixation
    probability of the model (``moran`` or ``wright-fisher``); ``mutation[a, b]`` is the
    probability that a newborn of type a is of type b. For symmetric M and Moran this is the
    Sella–Hirsh law :math:`\propto W^{N-1}`.
    """
    lw = np.asarray(log_fitness, dtype=float)
    M = np.asarray(mutation, dtype=float)
    K = lw.size
    fix = moran_fixation_probability if model == "moran" else wf_fixation_probability
    rate = np.zeros((K, K))
    for a in range(K):
        for b in range(K):
            if a != b and M[a, b] > 0:
                rate[a, b] = N * M[a, b] * fix(math.exp(lw[b] - lw[a]), N)
    gen = rate - np.diag(rate.sum(axis=1))
    A = np.vstack([gen.T, np.ones(K)])
    rhs = np.zeros(K + 1)
    rhs[-1] = 1.0
    return np.linalg.lstsq(A, rhs, rcond=None)[0]


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
    q = _mutated(_selected_frequency(k, N, float(r)), float(mu))
    if model == "wright-fisher":
        P = _binom_pmf(k[None, :], N, q[:, None])
        A = np.vstack([(P.T - np.eye(N + 1)), np.ones(N + 1)])
        rhs = np.zeros(N + 2)
        rhs[-1] = 1.0
        return np.linalg.lstsq(A, rhs, rcond=None)[0]
    if model == "moran":
        up = q[:-1] * (N - k[:-1]) / N
        down = (1.0 - q[1:]) * k[1:] / N
        logp = np.concatenate([[0.0], np.cumsum(np.log(up) - np.log(down))])
        p = np.exp(logp - logp.max())
        return p / p.sum()
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
