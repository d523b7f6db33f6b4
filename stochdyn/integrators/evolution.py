r"""Evolution strategies and a genetic algorithm on landscapes: minimise U, one replica = one run.

* :class:`OnePlusOneES` — (1+1)-ES with the 1/5th success rule (Rechenberg 1973; the smooth form
  of Kern et al. 2004, Natural Computing 3, 77).
* :class:`CSAES` — (μ/μ_w, λ)-ES with cumulative step-size adaptation (Ostermeier, Gawelczyk &
  Hansen 1994; Hansen 2016, arXiv:1604.00772), isotropic mutations.
* :class:`CMAES` — CMA-ES with full covariance and the default parameters of Hansen (2016).
* :class:`OpenES` — antithetic Gaussian-smoothing gradient estimation (Salimans et al. 2017,
  arXiv:1703.03864); records its gradient estimate, an unbiased estimate of
  :math:`\nabla_\theta\,\mathrm E[U(\theta+\sigma\varepsilon)]` — the smoothed objective, not U.
* :class:`GeneticAlgorithm` — generational GA with tournament selection, uniform crossover,
  Gaussian mutation and elitism.

Time is counted in generations (for the (1+1)-ES one generation = one offspring). ``energy`` is U
at the strategy's mean (the parent for the (1+1)-ES; evaluated for the record only and not counted
as cost), except for the GA, whose ``energy`` is the mean U of the population like the population
genetics models. ``evaluations`` counts the fitness evaluations the algorithm itself made, so runs
can be compared with SGD and Langevin at equal cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import ValidationError, check_bool, check_choice, check_int, check_real
from ..landscapes.base import Landscape
from ..random._core import fill_normal
from ._kernels import evolution as _k
from .base import Integrator, State, Variable, register_integrator
from .popgen import population_x0

__all__ = ["OnePlusOneES", "CSAES", "CMAES", "OpenES", "GeneticAlgorithm", "cma_parameters"]


def cma_parameters(dim: int, population_size: int | None = None, parents: int | None = None,
                   weights: str = "log") -> dict[str, Any]:
    r"""Default strategy parameters of CMA-ES (Hansen 2016, arXiv:1604.00772, Table 1, positive weights).

    :math:`\lambda = 4 + \lfloor 3\ln n\rfloor`, :math:`\mu = \lfloor\lambda/2\rfloor`,
    :math:`w_i \propto \ln\frac{\lambda+1}{2} - \ln i` (``"log"``) or :math:`1/\mu` (``"equal"``),
    :math:`\mu_\mathrm{eff} = 1/\sum w_i^2`, :math:`c_\sigma = \frac{\mu_\mathrm{eff}+2}{n+\mu_\mathrm{eff}+5}`,
    :math:`d_\sigma = 1 + 2\max(0, \sqrt{(\mu_\mathrm{eff}-1)/(n+1)} - 1) + c_\sigma`,
    :math:`c_c = \frac{4+\mu_\mathrm{eff}/n}{n+4+2\mu_\mathrm{eff}/n}`,
    :math:`c_1 = \frac{2}{(n+1.3)^2+\mu_\mathrm{eff}}`,
    :math:`c_\mu = \min(1-c_1, \frac{2(\mu_\mathrm{eff}-2+1/\mu_\mathrm{eff})}{(n+2)^2+\mu_\mathrm{eff}})`,
    :math:`E\|N(0,I)\| \approx \sqrt n\,(1 - \frac1{4n} + \frac1{21n^2})`. The eigendecomposition of
    C is refreshed lazily as in Hansen's reference implementation ``purecma``: once more than
    :math:`0.5\,n\lambda/((c_1+c_\mu)n^2)` evaluations have passed, i.e. every
    :math:`\lfloor 0.5/((c_1+c_\mu)n)\rfloor + 1` generations (every 2nd for n = 10, λ = 10).
    """
    n = int(dim)
    lam = 4 + int(math.floor(3 * math.log(n))) if population_size is None else int(population_size)
    mu = lam // 2 if parents is None else int(parents)
    if weights == "log":
        w = math.log((lam + 1) / 2) - np.log(np.arange(1, mu + 1))
    else:
        w = np.ones(mu)
    w = w / w.sum()
    mueff = 1.0 / float(np.sum(w**2))
    cs = (mueff + 2) / (n + mueff + 5)
    ds = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    # purecma's lazy update: refresh B, D once more than 0.5 n lam / ((c1 + cmu) n^2) evaluations passed
    eigen_every = int(math.floor(0.5 * n * lam / ((c1 + cmu) * n * n) / lam)) + 1
    return dict(lam=lam, mu=mu, weights=np.ascontiguousarray(w), mueff=mueff, cs=cs, ds=ds, cc=cc, c1=c1,
                cmu=cmu, chi_n=chi_n, eigen_every=eigen_every)


class _Strategy(Integrator):
    family = "evolution"
    time_long_name = "generation"
    time_units = "generation"

    def check_target(self, target: Any) -> None:
        if not isinstance(target, Landscape):
            raise ValidationError(f"{self.name} runs on a landscape (a stochdyn.landscapes.Landscape). Got {type(target).__name__}.")

    def divergence_hint(self, target: Any) -> str:
        return "the step size or the mean became non-finite (is the landscape bounded below where the run went?)"


def _summary_variables(d: int, what: str) -> list[Variable]:
    return [
        Variable("mean", ("dim",), (d,), what, "1"),
        Variable("energy", (), (), f"U at the {what}", "1"),
        Variable("best_energy", (), (), "lowest U evaluated so far", "1"),
        Variable("evaluations", (), (), "cumulative fitness evaluations", "1", np.int64),
    ]


def _check_sigma0(value: Any, owner: str) -> float:
    return check_real("sigma0", value, owner, gt=0.0)


@register_integrator
@dataclass(frozen=True)
class OnePlusOneES(_Strategy):
    r"""(1+1)-ES with the 1/5th success rule.

    .. math::
        y = x + \sigma\,\mathcal N(0, I);\quad x \leftarrow y \text{ if } U(y) \le U(x);\quad
        \sigma \leftarrow \sigma\,\exp\!\Big(\frac1d\,\frac{\mathbb 1[\text{success}] - p_t}{1 - p_t}\Big),

    with target success probability :math:`p_t = 1/5` and damping :math:`d = 1 + n/2` (Kern et al.
    2004), so σ is stationary exactly when one offspring in five succeeds. With
    ``step_size_rule="constant"`` σ stays at ``sigma0`` (the setting of the progress-rate theory,
    :func:`stochdyn.theory.one_plus_one_progress`).

    Parameters
    ----------
    sigma0 : float
        Initial step size > 0 (default 1).
    step_size_rule : {"one_fifth", "constant"}
    damping : float, optional
        d > 0 (default 1 + dim/2).

    Recorded: ``mean`` (the parent), ``energy`` (its U), ``sigma``, ``variance`` (σ² per coordinate),
    ``best_energy``, ``evaluations`` (step + 1).
    """

    sigma0: float = 1.0
    step_size_rule: str = "one_fifth"
    damping: Any = None

    def __post_init__(self) -> None:
        owner = "OnePlusOneES"
        object.__setattr__(self, "sigma0", _check_sigma0(self.sigma0, owner))
        check_choice("step_size_rule", self.step_size_rule, ("one_fifth", "constant"), owner)
        object.__setattr__(self, "damping", check_real("damping", self.damping, owner, gt=0.0, allow_none=True))

    def variables(self, target: Landscape) -> list[Variable]:
        d = target.dim
        return _summary_variables(d, "parent") + [
            Variable("sigma", (), (), "step size", "1"),
            Variable("variance", ("dim",), (d,), "variance of the mutation distribution per coordinate", "1"),
        ]

    def factors(self, d: int) -> tuple[float, float]:
        if self.step_size_rule == "constant":
            return 1.0, 1.0
        damp = 1.0 + d / 2.0 if self.damping is None else self.damping
        p_t = 0.2
        return math.exp(1.0 / damp), math.exp(-p_t / (1.0 - p_t) / damp)

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        ux = target.value(x0)
        return State(
            arrays={"x": x0, "ux": ux, "sigma": np.full(R, self.sigma0), "best": ux.copy(), "rng": rng,
                    "diverged": np.full(R, -1, dtype=np.int64)},
            scratch={"y": np.empty_like(x0), "gy": np.empty_like(x0), "uy": np.empty(R)},
        )

    def record(self, target, state, out, k):
        a = state.arrays
        out["mean"][:, k] = a["x"]
        out["energy"][:, k] = a["ux"]
        out["sigma"][:, k] = a["sigma"]
        out["variance"][:, k] = a["sigma"][:, None] ** 2
        out["best_energy"][:, k] = a["best"]
        out["evaluations"][:, k] = state.step + 1

    def advance(self, target, state, n_steps, record_every, out, k0, block):
        up, down = self.factors(target.dim)
        a, s = state.arrays, state.scratch
        _k.one_plus_one(target.compiled, target.theta, a["x"], a["ux"], a["sigma"], a["best"], s["y"], s["gy"], s["uy"],
                        a["rng"], a["diverged"], up, down, state.step, n_steps, record_every, out["mean"],
                        out["energy"], out["sigma"], out["variance"], out["best_energy"], out["evaluations"], k0, block)


@dataclass(frozen=True)
class _Recombinant(_Strategy):
    """Shared machinery of CSAES and CMAES (one kernel; CSAES is CMA-ES with C fixed to I)."""

    population_size: Any = None
    parents: Any = None
    sigma0: float = 1.0
    record_population: bool = False

    _full = True

    def _validate(self) -> None:
        owner = self.name
        lam = check_int("population_size", self.population_size, owner, ge=2, allow_none=True)
        mu = check_int("parents", self.parents, owner, ge=1, allow_none=True)
        if lam is not None and mu is not None and mu > lam:
            raise ValidationError(f"The 'parents' parameter of {owner} (mu={mu}) must be <= population_size (lambda={lam}).")
        object.__setattr__(self, "population_size", lam)
        object.__setattr__(self, "parents", mu)
        object.__setattr__(self, "sigma0", _check_sigma0(self.sigma0, owner))
        object.__setattr__(self, "record_population", check_bool("record_population", self.record_population, owner))

    def strategy(self, d: int) -> dict[str, Any]:
        """The strategy parameters used on a ``d``-dimensional landscape (see :func:`cma_parameters`)."""
        p = cma_parameters(d, self.population_size, self.parents, getattr(self, "weights", "log"))
        if p["mu"] > p["lam"]:
            raise ValidationError(f"The 'parents' parameter of {self.name} (mu={p['mu']}) must be <= population_size "
                                  f"(lambda={p['lam']}).")
        if getattr(self, "step_size_rule", "csa") == "constant":
            p["cs"] = 0.0
        return p

    def check_target(self, target: Any) -> None:
        super().check_target(target)
        self.strategy(target.dim)

    def variables(self, target: Landscape) -> list[Variable]:
        d = target.dim
        out = _summary_variables(d, "mean of the search distribution") + [
            Variable("sigma", (), (), "step size", "1"),
            Variable("variance", ("dim",), (d,), "variance of the search distribution per coordinate (sigma^2 C_ii)", "1"),
            Variable("population_energy", (), (), "mean U of the generation's offspring", "1"),
        ]
        if self.record_population:
            lam = self.strategy(d)["lam"]
            out.append(Variable("x", ("individual", "dim"), (lam, d), "offspring of the generation", "1"))
        return out

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        lam = self.strategy(d)["lam"]
        eye = np.broadcast_to(np.eye(d), (R, d, d))
        return State(
            arrays={"x": x0, "sigma": np.full(R, self.sigma0), "ps": np.zeros((R, d)), "pc": np.zeros((R, d)),
                    "C": eye.copy(), "B": eye.copy(), "D": np.ones((R, d)), "best": np.full(R, np.inf), "rng": rng,
                    "diverged": np.full(R, -1, dtype=np.int64)},
            scratch={"Z": np.empty((R, lam, d)), "Y": np.empty((R, lam, d)), "X": np.empty((R, lam, d)),
                     "G": np.empty((R, lam, d)), "U": np.empty((R, lam)), "idx": np.empty((R, lam), dtype=np.int64),
                     "zw": np.empty((R, d)), "yw": np.empty((R, d)), "vs": np.empty((R, d)),
                     "mgrad": np.empty((R, d)), "mu": np.empty((R, 1))},
        )

    def record(self, target, state, out, k):
        a = state.arrays
        out["mean"][:, k] = a["x"]
        out["energy"][:, k] = target.value(np.nan_to_num(a["x"]))
        out["energy"][a["diverged"] >= 0, k] = np.nan
        out["sigma"][:, k] = a["sigma"]
        out["variance"][:, k] = a["sigma"][:, None] ** 2 * np.diagonal(a["C"], axis1=1, axis2=2)
        out["best_energy"][:, k] = a["best"]
        out["evaluations"][:, k] = self.strategy(target.dim)["lam"] * state.step

    def advance(self, target, state, n_steps, record_every, out, k0, block):
        p = self.strategy(target.dim)
        a, s = state.arrays, state.scratch
        xo = out.get("x", np.zeros((1, 1, 1, 1)))
        _k.cma(target.compiled, target.theta, a["x"], a["sigma"], a["ps"], a["pc"], a["C"], a["B"], a["D"], a["best"],
               s["Z"], s["Y"], s["X"], s["G"], s["U"], s["idx"], s["zw"], s["yw"], s["vs"], s["mgrad"],
               s["mu"], a["rng"], a["diverged"], p["weights"], p["mu"], p["cs"], p["ds"], p["cc"], p["c1"], p["cmu"],
               p["mueff"], p["chi_n"], self._full, p["eigen_every"], state.step, n_steps, record_every, out["mean"],
               out["energy"], out["sigma"], out["variance"], out["population_energy"], out["best_energy"],
               out["evaluations"], xo, "x" in out, k0)


@register_integrator
@dataclass(frozen=True)
class CSAES(_Recombinant):
    r"""(μ/μ_w, λ)-ES with cumulative step-size adaptation (CSA), isotropic mutations.

    .. math::
        x_k = m + \sigma z_k,\ z_k\sim\mathcal N(0,I);\quad m \leftarrow m + \sigma\sum_{i\le\mu} w_i z_{i:\lambda};
        \quad p_\sigma \leftarrow (1-c_\sigma)p_\sigma + \sqrt{c_\sigma(2-c_\sigma)\mu_\mathrm{eff}}\,z_w;
        \quad \sigma \leftarrow \sigma\exp\!\Big(\frac{c_\sigma}{d_\sigma}\Big(\frac{\|p_\sigma\|}{E\|\mathcal N(0,I)\|}-1\Big)\Big),

    where :math:`z_{i:\lambda}` is the i-th best offspring (lowest U), with the parameters of
    :func:`cma_parameters`. On a linear U each generation moves m down the gradient by
    :math:`\sigma c_w` in expectation, :math:`c_w = \sum_i w_i E[\mathcal N_{\lambda-i+1:\lambda}]`
    (:func:`stochdyn.theory.progress_coefficient`).

    Parameters
    ----------
    population_size : int, optional
        λ >= 2 (default 4 + floor(3 ln dim)).
    parents : int, optional
        μ, 1 <= μ <= λ (default λ // 2).
    sigma0 : float
        Initial step size > 0.
    weights : {"log", "equal"}
        Recombination weights (default "log", as CMA-ES); "equal" is intermediate recombination μ/μ_I.
    step_size_rule : {"csa", "constant"}
        "constant" keeps σ = sigma0.
    record_population : bool
        Also record the λ offspring ``x`` (dims replica, time, individual, dim).
    """

    weights: str = "log"
    step_size_rule: str = "csa"

    _full = False

    def __post_init__(self) -> None:
        self._validate()
        check_choice("weights", self.weights, ("log", "equal"), "CSAES")
        check_choice("step_size_rule", self.step_size_rule, ("csa", "constant"), "CSAES")


@register_integrator
@dataclass(frozen=True)
class CMAES(_Recombinant):
    r"""CMA-ES with full covariance matrix and the default parameters (Hansen 2016, arXiv:1604.00772).

    Per generation: :math:`y_k = BDz_k`, :math:`x_k = m + \sigma y_k`; rank by U;
    :math:`y_w = \sum_{i\le\mu} w_i y_{i:\lambda}`, :math:`m \leftarrow m + \sigma y_w`;
    :math:`p_\sigma \leftarrow (1-c_\sigma)p_\sigma + \sqrt{c_\sigma(2-c_\sigma)\mu_\mathrm{eff}}\,C^{-1/2}y_w`;
    :math:`\sigma \leftarrow \sigma\exp(\frac{c_\sigma}{d_\sigma}(\|p_\sigma\|/E\|N(0,I)\|-1))`;
    :math:`p_c \leftarrow (1-c_c)p_c + h_\sigma\sqrt{c_c(2-c_c)\mu_\mathrm{eff}}\,y_w`;
    :math:`C \leftarrow (1 - c_1 - c_\mu + (1-h_\sigma)c_1c_c(2-c_c))\,C + c_1 p_cp_c^\top + c_\mu\sum_i w_i y_{i:\lambda}y_{i:\lambda}^\top`,
    and :math:`C = BD^2B^\top` by Householder tridiagonalisation and implicit QL (EISPACK tred2/tql2),
    refreshed lazily (:func:`cma_parameters`).
    Positive recombination weights only (no active update). Parameters: :func:`cma_parameters`.

    Parameters
    ----------
    population_size : int, optional
        λ >= 2 (default 4 + floor(3 ln dim)).
    parents : int, optional
        μ <= λ (default λ // 2).
    sigma0 : float
        Initial step size > 0.
    record_population : bool
        Also record the λ offspring ``x``.
    """

    def __post_init__(self) -> None:
        self._validate()


@register_integrator
@dataclass(frozen=True)
class OpenES(_Strategy):
    r"""OpenAI-ES: antithetic Gaussian-smoothing gradient estimate and gradient descent on it.

    .. math::
        \hat g = \frac{1}{2\sigma P}\sum_{k=1}^{P}\big(U(\theta+\sigma\varepsilon_k) - U(\theta-\sigma\varepsilon_k)\big)\varepsilon_k,
        \qquad v \leftarrow \beta v + \hat g,\qquad \theta \leftarrow \theta - \eta v .

    :math:`\hat g` is unbiased for :math:`\nabla U_\sigma(\theta)`, the gradient of the Gaussian-smoothed
    objective :math:`U_\sigma(\theta) = \mathrm E[U(\theta+\sigma\varepsilon)]` (Stein's lemma), which
    differs from :math:`\nabla U` wherever U is not quadratic — e.g. on Rastrigin the cosine ripples
    are damped by :math:`e^{-2\pi^2\sigma^2}` (:func:`stochdyn.theory.smoothed_rastrigin_gradient`).
    With ``fitness_shaping="centered_ranks"`` U is replaced by centred ranks in [-1/2, 1/2]
    (Salimans et al. 2017), which is no longer an estimate of that gradient.

    Parameters
    ----------
    sigma : float
        Smoothing scale σ > 0 (default 0.1).
    learning_rate : float
        η > 0 (default 0.01).
    n_pairs : int
        P >= 1 antithetic pairs per generation (2P evaluations; default 25).
    momentum : float
        β in [0, 1) (default 0).
    fitness_shaping : {"none", "centered_ranks"}

    Recorded: ``mean`` (θ), ``energy`` (U(θ)), ``gradient`` (the estimate used in the step that led
    to the record; NaN at step 0), ``population_energy``, ``best_energy``, ``evaluations`` (2P·step).
    """

    sigma: float = 0.1
    learning_rate: float = 0.01
    n_pairs: int = 25
    momentum: float = 0.0
    fitness_shaping: str = "none"

    def __post_init__(self) -> None:
        owner = "OpenES"
        object.__setattr__(self, "sigma", check_real("sigma", self.sigma, owner, gt=0.0))
        object.__setattr__(self, "learning_rate", check_real("learning_rate", self.learning_rate, owner, gt=0.0))
        object.__setattr__(self, "n_pairs", check_int("n_pairs", self.n_pairs, owner, ge=1))
        object.__setattr__(self, "momentum", check_real("momentum", self.momentum, owner, ge=0.0, lt=1.0))
        check_choice("fitness_shaping", self.fitness_shaping, ("none", "centered_ranks"), owner)

    def variables(self, target: Landscape) -> list[Variable]:
        d = target.dim
        return _summary_variables(d, "parameters theta") + [
            Variable("gradient", ("dim",), (d,), "gradient estimate of the smoothed objective", "1"),
            Variable("population_energy", (), (), "mean U of the generation's perturbed points", "1"),
        ]

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        P = self.n_pairs
        return State(
            arrays={"x": x0, "v": np.zeros((R, d)), "best": np.full(R, np.inf), "rng": rng,
                    "diverged": np.full(R, -1, dtype=np.int64)},
            scratch={"E": np.empty((R, P, d)), "X": np.empty((R, 2 * P, d)), "G": np.empty((R, 2 * P, d)),
                     "U": np.empty((R, 2 * P)), "idx": np.empty((R, 2 * P), dtype=np.int64),
                     "ranks": np.empty((R, 2 * P)), "grad": np.full((R, d), np.nan), "mgrad": np.empty((R, d)),
                     "mu": np.empty((R, 1))},
        )

    def record(self, target, state, out, k):
        a = state.arrays
        out["mean"][:, k] = a["x"]
        out["energy"][:, k] = target.value(np.nan_to_num(a["x"]))
        out["energy"][a["diverged"] >= 0, k] = np.nan
        out["gradient"][:, k] = state.scratch["grad"]
        out["best_energy"][:, k] = a["best"]
        out["evaluations"][:, k] = 2 * self.n_pairs * state.step

    def advance(self, target, state, n_steps, record_every, out, k0, block):
        a, s = state.arrays, state.scratch
        _k.open_es(target.compiled, target.theta, a["x"], a["v"], a["best"], s["E"], s["X"], s["G"], s["U"], s["idx"],
                   s["ranks"], s["grad"], s["mgrad"], s["mu"], a["rng"], a["diverged"], self.sigma, self.learning_rate,
                   self.momentum, self.fitness_shaping == "centered_ranks", state.step, n_steps, record_every,
                   out["mean"], out["energy"], out["gradient"], out["population_energy"], out["best_energy"],
                   out["evaluations"], k0)


@register_integrator
@dataclass(frozen=True)
class GeneticAlgorithm(_Strategy):
    r"""Generational real-coded genetic algorithm minimising U.

    Each generation: the ``n_elite`` best individuals are copied unchanged; every other child has a
    parent chosen by a tournament of ``tournament`` individuals drawn uniformly with replacement
    (lowest U wins), with probability ``crossover_rate`` a second parent chosen the same way and
    uniform crossover (each gene from either parent with probability 1/2), then each gene is mutated
    with probability ``mutation_rate`` by ``mutation_scale * N(0, 1)``.

    Parameters
    ----------
    population_size : int
        N >= 2 (default 50).
    tournament : int
        Tournament size >= 1 (1 = no selection; default 2).
    crossover_rate : float
        In [0, 1] (default 0.9).
    mutation_rate : float, optional
        Per-gene probability in [0, 1] (default 1/dim).
    mutation_scale : float
        Standard deviation >= 0 of a gene mutation (default 0.1).
    n_elite : int
        0 <= n_elite < N (default 1).
    init_scale : float
        The initial population is ``x0 + init_scale * N(0, I)``, drawn from each replica's stream
        (default 1), where ``x0`` is a point, a point per replica or whole populations
        ``(n_replicas, N, dim)``; pass ``init_scale=0`` to start from given populations exactly.
    record_population : bool
        Also record ``x`` (dims replica, time, individual, dim).

    Recorded: ``mean``, ``variance`` (population, 1/N), ``energy`` (mean U of the population),
    ``best_energy`` (lowest U in the population), ``evaluations`` (N per generation, N at step 0).
    """

    population_size: int = 50
    tournament: int = 2
    crossover_rate: float = 0.9
    mutation_rate: Any = None
    mutation_scale: float = 0.1
    n_elite: int = 1
    init_scale: float = 1.0
    record_population: bool = False

    def __post_init__(self) -> None:
        owner = "GeneticAlgorithm"
        N = check_int("population_size", self.population_size, owner, ge=2)
        object.__setattr__(self, "population_size", N)
        object.__setattr__(self, "tournament", check_int("tournament", self.tournament, owner, ge=1))
        object.__setattr__(self, "crossover_rate", check_real("crossover_rate", self.crossover_rate, owner, ge=0.0, le=1.0))
        object.__setattr__(self, "mutation_rate",
                           check_real("mutation_rate", self.mutation_rate, owner, ge=0.0, le=1.0, allow_none=True))
        object.__setattr__(self, "mutation_scale", check_real("mutation_scale", self.mutation_scale, owner, ge=0.0))
        object.__setattr__(self, "n_elite", check_int("n_elite", self.n_elite, owner, ge=0, lt=N))
        object.__setattr__(self, "init_scale", check_real("init_scale", self.init_scale, owner, ge=0.0))
        object.__setattr__(self, "record_population", check_bool("record_population", self.record_population, owner))

    def prepare_x0(self, x0: Any, target: Any, n_replicas: int) -> np.ndarray:
        return population_x0(x0, target, n_replicas, self.population_size, self.name)

    def variables(self, target: Landscape) -> list[Variable]:
        d = target.dim
        out = [
            Variable("mean", ("dim",), (d,), "population mean", "1"),
            Variable("variance", ("dim",), (d,), "population variance per coordinate (1/N)", "1"),
            Variable("energy", (), (), "mean of U over the population", "1"),
            Variable("best_energy", (), (), "lowest U in the population", "1"),
            Variable("evaluations", (), (), "cumulative fitness evaluations", "1", np.int64),
        ]
        if self.record_population:
            out.append(Variable("x", ("individual", "dim"), (self.population_size, d), "each individual", "1"))
        return out

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, N, d = x0.shape
        x = x0.copy()
        if self.init_scale > 0:
            noise = np.empty((R, N * d))
            fill_normal(rng, noise)
            x += self.init_scale * noise.reshape(R, N, d)
        return State(
            arrays={"x": x, "rng": rng, "diverged": np.full(R, -1, dtype=np.int64)},
            scratch={"xnew": np.empty_like(x), "G": np.empty_like(x), "u": target.value(x),
                     "idx": np.empty((R, N), dtype=np.int64)},
        )

    def _outs(self, out):
        return (out["mean"], out["variance"], out["energy"], out["best_energy"], out["evaluations"],
                out.get("x", np.zeros((1, 1, 1, 1))), "x" in out)

    def record(self, target, state, out, k):
        _k.ga_record_all(state.arrays["x"], state.scratch["u"], state.arrays["diverged"], k,
                         self.population_size * (state.step + 1), *self._outs(out))

    def advance(self, target, state, n_steps, record_every, out, k0, block):
        a, s = state.arrays, state.scratch
        pm = 1.0 / target.dim if self.mutation_rate is None else self.mutation_rate
        _k.genetic_algorithm(target.compiled, target.theta, a["x"], s["xnew"], s["G"], s["u"], s["idx"], a["rng"],
                             a["diverged"], self.tournament, self.crossover_rate, pm, self.mutation_scale, self.n_elite,
                             state.step, n_steps, record_every, *self._outs(out), k0)

