r"""Population genetics on landscapes: the Wright–Fisher and Moran processes, haploid.

Each replica is a whole population of N haploid individuals, each with a continuous trait
:math:`x \in \mathbb R^d` on a :class:`~stochdyn.landscapes.Landscape`, or a genotype of L sites
with k alleles on a genotype landscape (:mod:`stochdyn.fitness`). An individual's fitness is
:math:`W = f(U(x); s)`, by default :math:`W = e^{-sU}`.

**What s means.** Every model here is haploid and ``selection`` = s multiplies U in the log
fitness: two types with energies :math:`U_1, U_2` have fitness ratio :math:`r = W_2/W_1 =
e^{-s(U_2-U_1)}`, i.e. a *haploid log-fitness (Malthusian-like) selection coefficient*
:math:`\sigma = \log r = -s\,\Delta U` per generation. Conversions:

* Classical haploid :math:`s_c` with :math:`r = 1 + s_c`: :math:`\sigma = \log(1+s_c) \approx s_c`.
* A diploid Wright–Fisher population of :math:`N_d` individuals with genic (additive) selection,
  heterozygote :math:`1+s_d`, homozygote :math:`1+2s_d` (Kimura's :math:`u = (1-e^{-4N_d s_d p})/(1-e^{-4N_d s_d})`),
  is matched in the diffusion limit by haploid Wright–Fisher with :math:`N = 2N_d` and :math:`\sigma = s_d`.
  With the other common convention, homozygote :math:`1+s`, :math:`h = 1/2`, use :math:`\sigma = s/2`.
* Moran with N individuals (one generation = N events) drifts twice as fast as Wright–Fisher with
  N: its effective size is N/2. Hence the population-size ↔ temperature mapping (Sella & Hirsh
  2005) in the weak-mutation regime: stationary density :math:`\propto e^{-\beta U}` with
  :math:`\beta = (N-1)\,s` for Moran (exact) and :math:`\beta \approx 2(N-1)\,s` for Wright–Fisher
  (diffusion; the exact finite-N value is :func:`stochdyn.theory.wf_effective_beta`).

Time is counted in generations: a Wright–Fisher step replaces the whole population; a Moran step is N
birth–death events. The cost variable ``evaluations`` counts fitness evaluations, ``N·(step + 1)``
(the initial population, then one per newborn).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .._numba_utils import run_blocks
from .._validation import ValidationError, check_array, check_bool, check_choice, check_int, check_real
from ..fitness import FitnessMap, GenotypeLandscape, resolve_fitness_map
from ..landscapes.base import Landscape
from ._kernels import popgen as _k
from .base import Integrator, State, Variable, register_integrator

__all__ = ["WrightFisher", "Moran"]

_REC = {"none": _k.REC_NONE, "free": _k.REC_FREE, "blend": _k.REC_BLEND}


def _ptr(a: np.ndarray) -> Any:
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def value_only(target: Any, x: np.ndarray) -> np.ndarray:
    """U at points ``x`` (..., dim) through the target's value-only block, called through ctypes
    (nothing to compile for it)."""
    pts = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1, int(target.dim)))
    val = np.empty(pts.shape[0])
    theta = np.ascontiguousarray(target.theta)
    target.compiled_value.ctypes(_ptr(pts), _ptr(np.empty_like(pts)), _ptr(val), pts.shape[0], pts.shape[1],
                                 _ptr(theta), theta.shape[0])
    return val.reshape(np.shape(x)[:-1])


def fitness_values(fmap: FitnessMap, u: np.ndarray, selection: float) -> np.ndarray:
    """W = f(U; s) for an array of energies, through the map's compiled block called by ctypes."""
    flat = np.ascontiguousarray(u, dtype=np.float64).ravel()
    w = np.empty_like(flat)
    fmap.compiled.ctypes(_ptr(flat), _ptr(w), flat.shape[0], float(selection))
    return w.reshape(np.shape(u))


def population_x0(x0: Any, target: Any, n_replicas: int, n: int, owner: str) -> np.ndarray:
    """Validated initial populations, shape ``(n_replicas, n, dim)``.

    ``x0`` may be one point ``(dim,)`` (every individual of every replica), one point per replica
    ``(n_replicas, dim)``, or full populations ``(n_replicas, n, dim)``; ``None`` is the origin (for
    genotypes: allele 0 everywhere).
    """
    d = int(target.dim)
    if x0 is None:
        return np.zeros((n_replicas, n, d))
    arr = check_array("x0", x0, "simulate", ndim=(1, 2, 3))
    if arr.ndim == 1 and arr.shape == (d,):
        arr = np.broadcast_to(arr, (n_replicas, n, d))
    elif arr.ndim == 2 and arr.shape == (n_replicas, d):
        arr = np.broadcast_to(arr[:, None, :], (n_replicas, n, d))
    elif arr.shape != (n_replicas, n, d):
        raise ValidationError(
            f"The 'x0' parameter of simulate for {owner} must have shape ({d},), (n_replicas, {d}) = ({n_replicas}, {d}) "
            f"or (n_replicas, population_size, {d}) = ({n_replicas}, {n}, {d}). Got shape {arr.shape}."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if isinstance(target, GenotypeLandscape):
        target.check_genotypes(arr, "x0", "simulate")
    return arr


@dataclass(frozen=True)
class _Population(Integrator):
    family = "popgen"
    time_long_name = "generation"
    time_units = "generation"

    population_size: int = 100
    mutation_rate: float = 1.0
    mutation_scale: float = 0.1
    selection: float = 1.0
    fitness: Any = "exponential"
    recombination: str = "none"
    recombination_rate: float = 0.0
    record_population: bool = False

    def __post_init__(self) -> None:
        self._validate()
        if self.recombination != "none" and self.recombination_rate == 0.0:
            object.__setattr__(self, "recombination_rate", 1.0)

    def _validate(self) -> None:
        owner = self.name
        object.__setattr__(self, "population_size", check_int("population_size", self.population_size, owner, ge=2))
        object.__setattr__(self, "mutation_rate", check_real("mutation_rate", self.mutation_rate, owner, ge=0.0, le=1.0))
        object.__setattr__(self, "mutation_scale", check_real("mutation_scale", self.mutation_scale, owner, ge=0.0))
        object.__setattr__(self, "selection", check_real("selection", self.selection, owner, ge=0.0))
        fm = resolve_fitness_map(self.fitness, owner)
        object.__setattr__(self, "fitness", fm.name)
        check_choice("recombination", self.recombination, tuple(_REC), owner)
        object.__setattr__(self, "recombination_rate",
                           check_real("recombination_rate", self.recombination_rate, owner, ge=0.0, le=1.0))
        object.__setattr__(self, "record_population", check_bool("record_population", self.record_population, owner))

    @property
    def fitness_map(self) -> FitnessMap:
        return resolve_fitness_map(self.fitness, self.name)

    # -- protocol ---------------------------------------------------------------------------
    def check_target(self, target: Any) -> None:
        if not isinstance(target, (Landscape, GenotypeLandscape)):
            raise ValidationError(
                f"{self.name} runs on a landscape or a genotype landscape (stochdyn.fitness). Got {type(target).__name__}."
            )
        if isinstance(target, GenotypeLandscape) and self.recombination == "blend":
            raise ValidationError(f"{self.name}: recombination='blend' averages traits; it is not defined for genotypes.")

    def prepare_x0(self, x0: Any, target: Any, n_replicas: int) -> np.ndarray:
        return population_x0(x0, target, n_replicas, self.population_size, self.name)

    def variables(self, target: Any) -> list[Variable]:
        d = int(target.dim)
        discrete = isinstance(target, GenotypeLandscape)
        what = "genotype (allele index)" if discrete else "trait"
        energy = "mean of U = -log W(g) over the population" if discrete else "mean of U(x) over the population"
        out = [
            Variable("population_mean", ("dim",), (d,), f"population mean {what}", "1"),
            Variable("variance", ("dim",), (d,), f"population variance of the {what} (1/N)", "1"),
            Variable("energy", (), (), energy, "1"),
            Variable("mean_fitness", (), (), "population mean fitness W", "1"),
            Variable("best_fitness", (), (), "largest fitness W in the population", "1"),
            Variable("evaluations", (), (), "cumulative fitness evaluations", "1", np.int64),
        ]
        if discrete:
            out.append(Variable("allele_frequency", ("dim", "allele"), (d, target.n_alleles),
                                "allele frequency per site", "1"))
        if self.record_population:
            out.append(Variable("x", ("individual", "dim"), (self.population_size, d), f"{what} of each individual", "1"))
        return out

    def init_state(self, target: Any, x0: np.ndarray, rng: np.ndarray) -> State:
        R, N, d = x0.shape
        u = value_only(target, x0)
        w = fitness_values(self.fitness_map, u, self.selection)
        bad = ~np.all(np.isfinite(w) & (w >= 0.0), axis=1) | ~(w.sum(axis=1) > 0.0)
        if np.any(bad):
            r = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"{self.name}: the initial population of replica {r} has fitness that is negative, non-finite or zero "
                f"for everyone (W in [{np.nanmin(w[r]):g}, {np.nanmax(w[r]):g}] with fitness={self.fitness!r}, "
                f"selection={self.selection:g}); fitness must be finite, >= 0 and positive for someone."
            )
        return State(
            arrays={"x": x0, "rng": rng, "diverged": np.full(R, -1, dtype=np.int64),
                    "halted": np.full(R, -1, dtype=np.int64)},
            scratch={"u": np.ascontiguousarray(u), "w": np.ascontiguousarray(w), "grad": np.empty_like(x0)},
        )

    def _outs(self, out: dict[str, np.ndarray]) -> tuple:
        return (out["population_mean"], out["variance"], out["energy"], out["mean_fitness"], out["best_fitness"],
                out["evaluations"], out.get("allele_frequency"), out.get("x"))

    def _rec(self) -> np.ndarray | None:
        """(mode, rate) for the kernel, or None when no second parent is ever drawn (then the kernel
        is compiled without the recombination code)."""
        if self.recombination_rate == 0.0:
            return None
        return np.array([_REC[self.recombination], self.recombination_rate], dtype=np.float64)

    def _target_args(self, target: Any) -> tuple:
        return (target.compiled_value, target.theta, self.fitness_map.compiled, float(self.selection))

    def _run(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
             record_first: bool) -> None:
        raise NotImplementedError

    def record(self, target: Any, state: State, out: dict[str, np.ndarray], k: int) -> None:
        self._run(target, state, 0, 1, out, k + 1, True)  # the kernel, asked to record only

    def advance(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        self._run(target, state, n_steps, record_every, out, k0, False)

    def divergence_hint(self, target: Any) -> str:
        return (f"the fitness map {self.fitness!r} with selection={self.selection:g} gave negative or non-finite "
                "fitness, or zero fitness for the whole population, where the population went")


_PopulationType = TypeVar("_PopulationType", bound=type[_Population])


def _population_doc(cls: _PopulationType) -> _PopulationType:
    """Class decorator: fill the parameters common to the population integrators into the docstring."""
    cls.__doc__ = (cls.__doc__ or "").replace("{common}", _COMMON)
    return cls


_COMMON = r"""Parameters
    ----------
    population_size : int
        N >= 2 haploid individuals per replica.
    mutation_rate : float
        Continuous traits: probability per newborn that its trait mutates (default 1).
        Genotypes: probability per site per newborn that the allele changes to one of the other
        k-1 alleles, chosen uniformly. In [0, 1].
    mutation_scale : float
        Standard deviation of a Gaussian mutation per coordinate (continuous traits; default 0.1).
    selection : float
        s >= 0 in the fitness map (default 1): W = exp(-s U) by default (see the module docstring).
    fitness : str or FitnessMap
        ``"exponential"`` (W = exp(-sU), default), ``"linear"`` (W = 1 - sU) or a map made with
        :func:`stochdyn.fitness.fitness_map`.
    recombination : {"none", "free", "blend"}
        With probability ``recombination_rate`` a newborn has two parents, both drawn with
        probability proportional to fitness: ``"free"`` takes every coordinate (site) from either
        parent with probability 1/2; ``"blend"`` averages the traits (continuous only).
    recombination_rate : float
        In [0, 1] (default 0, or 1 when ``recombination`` is not "none" and this is left at 0).
    record_population : bool
        Also record ``x``, every individual's trait, at every record (dims replica, time,
        individual, dim); thin with ``record_every``. Default False: summaries only.

    Recorded: ``population_mean``, ``variance`` (per coordinate, 1/N), ``energy`` (mean U over the population),
    ``mean_fitness``, ``best_fitness``, ``evaluations`` (cost), ``allele_frequency`` (genotypes:
    dims dim = site, allele), ``x`` when asked. ``x0``: a point, a point per replica, or whole
    populations ``(n_replicas, N, dim)``."""


@_population_doc
@register_integrator
@dataclass(frozen=True)
class WrightFisher(_Population):
    r"""Wright–Fisher process: non-overlapping generations, multinomial (fitness-proportional) sampling.

    Each of the N offspring of a generation picks its parent independently with probability
    :math:`W_i/\sum_j W_j` (Walker's alias method, exact), is a clone of it (or, with probability
    ``recombination_rate``, a recombinant of two such parents) and then mutates. So the counts of
    offspring per parent are Multinomial(N, W/ΣW), and with mutation of zero mean the expected change
    of the mean trait in one generation is exactly the Price/Robertson covariance
    :math:`\mathrm{E}[\Delta\bar z] = \mathrm{Cov}(W, z)/\bar W` (Price 1970); for a Gaussian
    population this is Lande's :math:`G\,\nabla\log\bar W` (Lande 1976).

    {common}
    """

    def init_state(self, target: Any, x0: np.ndarray, rng: np.ndarray) -> State:
        state = super().init_state(target, x0, rng)
        R, N, _ = x0.shape
        state.scratch.update(xnew=np.empty_like(x0), prob=np.empty((R, N)), alias=np.empty((R, N), dtype=np.int64),
                             small=np.empty((R, N), dtype=np.int64), large=np.empty((R, N), dtype=np.int64))
        return state

    def _run(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
             record_first: bool) -> None:
        a, s = state.arrays, state.scratch
        run_blocks(_k.wright_fisher, (*self._target_args(target), a["x"], s["xnew"], s["grad"], s["u"], s["w"],
                                      s["prob"], s["alias"], s["small"], s["large"], a["rng"], a["diverged"],
                                      a["halted"], self.mutation_rate, self.mutation_scale, self._rec(),
                                      record_first, state.step, n_steps, record_every, *self._outs(out),
                                      k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)


@_population_doc
@register_integrator
@dataclass(frozen=True)
class Moran(_Population):
    r"""Moran process: overlapping generations, one birth and one death per event, N events per step.

    In each event a parent is drawn with probability :math:`W_i/\sum_j W_j` (exact rejection
    sampling), its offspring (mutated; optionally recombinant) replaces an individual drawn uniformly
    from all N. A single mutant of relative fitness r fixes with probability
    :math:`(1-1/r)/(1-1/r^N)` exactly (Moran 1958), and in the weak-mutation limit the population
    visits types with stationary probability :math:`\propto W^{N-1}` (Sella & Hirsh 2005), i.e.
    :math:`\propto e^{-(N-1)sU}` with the exponential map.

    {common}
    """

    def init_state(self, target: Any, x0: np.ndarray, rng: np.ndarray) -> State:
        state = super().init_state(target, x0, rng)
        R, N, d = x0.shape
        state.scratch.update(child=np.empty((R, 1, d)), cgrad=np.empty((R, 1, d)), cu=np.empty((R, 1)),
                             cw=np.empty((R, 1)))
        return state

    def _run(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray], k0: int,
             record_first: bool) -> None:
        a, s = state.arrays, state.scratch
        run_blocks(_k.moran, (*self._target_args(target), a["x"], s["child"], s["grad"], s["u"], s["w"], s["cgrad"],
                              s["cu"], s["cw"], a["rng"], a["diverged"], a["halted"], self.mutation_rate,
                              self.mutation_scale, self._rec(), record_first, state.step, n_steps, record_every,
                              *self._outs(out), k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)
