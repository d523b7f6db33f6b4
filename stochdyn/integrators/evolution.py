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

from .._numba_utils import run_blocks
from .._validation import ValidationError, check_bool, check_choice, check_int, check_real
from ..landscapes.base import Landscape
from ..random._core import fill_normal
from ._kernels import evolution as _k
from .base import Integrator, State, Variable, register_integrator
from .popgen import population_x0, value_only

__all__ = ["OnePlusOneES", "OpenES", "GeneticAlgorithm"]


def initial_energy(integrator: Integrator, target: Any, x: np.ndarray) -> np.ndarray:
    """U at the initial points ``x`` (..., dim); a ValidationError if it is not finite somewhere."""
    u = value_only(target, x)
    bad = ~np.isfinite(u)
    if np.any(bad):
        where = np.argwhere(bad)[0]
        raise ValidationError(
            f"{integrator.name}: U is not finite at the initial point of replica {int(where[0])} (U = {float(u[tuple(where)])!r}); "
            "start where the landscape is finite.")
    return u


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
        Variable("population_mean", ("dim",), (d,), what, "1"),
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

    Recorded: ``population_mean`` (the parent), ``energy`` (its U), ``sigma``, ``variance`` (σ² per
    coordinate), ``best_energy``, ``evaluations`` (step + 1: the initial parent is evaluated).
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
        ux = initial_energy(self, target, x0)
        return State(
            arrays={"x": x0, "ux": ux, "sigma": np.full(R, self.sigma0), "best": ux.copy(), "rng": rng,
                    "diverged": np.full(R, -1, dtype=np.int64), "halted": np.full(R, -1, dtype=np.int64)},
            scratch={"y": np.empty_like(x0), "gy": np.empty_like(x0), "uy": np.empty(R)},
        )

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        a = state.arrays
        out["population_mean"][:, k] = a["x"]
        out["energy"][:, k] = a["ux"]
        out["sigma"][:, k] = a["sigma"]
        out["variance"][:, k] = a["sigma"][:, None] ** 2
        out["best_energy"][:, k] = a["best"]
        out["evaluations"][:, k] = np.where(a["halted"] >= 0, a["halted"], state.step) + 1  # as the kernel counts

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        up, down = self.factors(target.dim)
        a, s = state.arrays, state.scratch
        run_blocks(_k.one_plus_one, (target.compiled_value, target.theta, a["x"], a["ux"], a["sigma"], a["best"],
                                     s["y"], s["gy"], s["uy"], a["rng"], a["diverged"], a["halted"], up, down,
                                     state.step, n_steps, record_every, out["population_mean"], out["energy"],
                                     out["sigma"], out["variance"], out["best_energy"], out["evaluations"], k0,
                                     block, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)


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

    Recorded: ``population_mean`` (θ), ``energy`` (U(θ)), ``gradient`` (the estimate used in the step
    that led to the record; NaN at step 0, before any estimate), ``population_energy`` (U(θ₀) at step
    0), ``best_energy`` (the lowest U evaluated so far, counting U(θ₀), which is evaluated for the
    record and not counted as cost), ``evaluations`` (2P·step).
    """

    sigma: float = 0.1
    learning_rate: float = 0.01
    n_pairs: int = 25
    momentum: float = 0.0
    fitness_shaping: str = "none"

    record_scratch = ("grad",)  # the last step's gradient estimate, read by record()

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
        u0 = initial_energy(self, target, x0)
        return State(
            arrays={"x": x0, "v": np.zeros((R, d)), "best": u0.copy(), "pop_energy": u0.copy(), "rng": rng,
                    "diverged": np.full(R, -1, dtype=np.int64), "halted": np.full(R, -1, dtype=np.int64)},
            scratch={"E": np.empty((R, P, d)), "X": np.empty((R, 2 * P, d)),
                     "G": np.empty((R, min(2 * P, _k.EVAL_ROWS), d)), "U": np.empty((R, 2 * P)),
                     "idx": np.empty((R, 2 * P), dtype=np.int64), "tmp": np.empty((R, 2 * P), dtype=np.int64),
                     "ranks": np.empty((R, 2 * P)), "grad": np.full((R, d), np.nan), "work": np.empty((R, d)),
                     "u1": np.empty((R, 1))},
        )

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        a = state.arrays
        out["population_mean"][:, k] = a["x"]
        out["energy"][:, k] = value_only(target, np.nan_to_num(a["x"]))
        out["energy"][a["diverged"] >= 0, k] = np.nan
        out["gradient"][:, k] = state.scratch["grad"]
        out["population_energy"][:, k] = a["pop_energy"]
        out["best_energy"][:, k] = a["best"]
        out["evaluations"][:, k] = 2 * self.n_pairs * np.where(a["halted"] >= 0, a["halted"], state.step)

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        a, s = state.arrays, state.scratch
        run_blocks(_k.open_es, (target.compiled_value, target.theta, a["x"], a["v"], a["best"], a["pop_energy"],
                                s["E"], s["X"], s["G"], s["U"], s["idx"], s["tmp"], s["ranks"], s["grad"], s["work"],
                                s["u1"], a["rng"], a["diverged"], a["halted"], self.sigma, self.learning_rate,
                                self.momentum, self.fitness_shaping == "centered_ranks", state.step, n_steps,
                                record_every, out["population_mean"], out["energy"], out["gradient"],
                                out["population_energy"], out["best_energy"], out["evaluations"],
                                k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)


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

    Recorded: ``population_mean``, ``variance`` (population, 1/N), ``energy`` (mean U of the
    population), ``best_energy`` (lowest U in the population), ``evaluations`` (N per generation, N at
    step 0). A population in which some trait or some U is not finite (e.g. U = -inf on a landscape
    unbounded below) is frozen as NaN and flagged in ``diverged``; an initial population with a
    non-finite U is rejected.
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
            Variable("population_mean", ("dim",), (d,), "population mean", "1"),
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
            arrays={"x": x, "rng": rng, "diverged": np.full(R, -1, dtype=np.int64),
                    "halted": np.full(R, -1, dtype=np.int64)},
            scratch={"xnew": np.empty_like(x), "G": np.empty_like(x), "u": initial_energy(self, target, x),
                     "idx": np.empty((R, N), dtype=np.int64), "tmp": np.empty((R, N), dtype=np.int64)},
        )

    def _outs(self, out):
        return (out["population_mean"], out["variance"], out["energy"], out["best_energy"], out["evaluations"],
                out.get("x"))

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        self._run(target, state, 0, 1, out, k + 1, True)  # the kernel, asked to record only

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        self._run(target, state, n_steps, record_every, out, k0, False)

    def _run(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
             record_first: bool) -> None:
        a, s = state.arrays, state.scratch
        pm = 1.0 / target.dim if self.mutation_rate is None else self.mutation_rate
        run_blocks(_k.genetic_algorithm, (target.compiled_value, target.theta, a["x"], s["xnew"], s["G"], s["u"],
                                          s["idx"], s["tmp"], a["rng"], a["diverged"], a["halted"], self.tournament,
                                          self.crossover_rate, pm, self.mutation_scale, self.n_elite, record_first,
                                          state.step, n_steps, record_every, *self._outs(out),
                                          k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)

def __getattr__(name: str) -> Any:
    # CSAES, CMAES and cma_parameters moved to stochdyn.integrators.cma; old imports keep working
    if name in ("CSAES", "CMAES", "SepCMAES", "cma_parameters"):
        from . import cma

        return getattr(cma, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
