r"""Natural evolution strategies: :class:`XNES` (full covariance) and :class:`SNES` (separable).

Both follow the natural gradient of the expected utility of a Gaussian search distribution
(Wierstra, Schaul, Glasmachers, Sun, Peters & Schmidhuber 2014, "Natural Evolution Strategies",
JMLR 15, 949; Glasmachers et al. 2010 for xNES, Schaul, Glasmachers & Schmidhuber 2011 for SNES),
with the default learning rates and rank-based utilities of that paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._numba_utils import run_blocks
from .._validation import check_choice, check_int, check_real
from ..landscapes.base import Landscape
from ._kernels import nes as _k
from ._kernels.eigen import eigh
from ._kernels.evolution import EVAL_ROWS
from .base import State, Variable, register_integrator
from .evolution import _check_sigma0, _Strategy, _summary_variables, initial_energy

__all__ = ["XNES", "SNES", "nes_utilities"]


def nes_utilities(lam: int) -> np.ndarray:
    r"""Rank-based utilities of NES, best offspring first (Wierstra et al. 2014, eq. 13):
    :math:`u_k = \frac{\max(0, \ln(\lambda/2+1) - \ln k)}{\sum_j \max(0, \ln(\lambda/2+1) - \ln j)} - \frac1\lambda`,
    summing to 0."""
    k = np.arange(1, lam + 1)
    a = np.maximum(0.0, math.log(lam / 2 + 1) - np.log(k))
    return a / a.sum() - 1.0 / lam


def _default_lambda(d: int) -> int:
    return 4 + int(math.floor(3 * math.log(d)))


@dataclass(frozen=True)
class _NES(_Strategy):
    population_size: Any = None
    sigma0: float = 1.0
    learning_rate_mean: float = 1.0
    learning_rate_sigma: Any = None
    fitness_shaping: str = "ranks"
    #: long name of the recorded ``sigma`` (set by each subclass)
    _sigma_long_name: ClassVar[str]

    def _validate(self) -> None:
        owner = self.name
        object.__setattr__(self, "population_size",
                           check_int("population_size", self.population_size, owner, ge=2, allow_none=True))
        object.__setattr__(self, "sigma0", _check_sigma0(self.sigma0, owner))
        object.__setattr__(self, "learning_rate_mean",
                           check_real("learning_rate_mean", self.learning_rate_mean, owner, gt=0.0))
        object.__setattr__(self, "learning_rate_sigma",
                           check_real("learning_rate_sigma", self.learning_rate_sigma, owner, gt=0.0, allow_none=True))
        check_choice("fitness_shaping", self.fitness_shaping, ("ranks", "none"), owner)

    def lam(self, d: int) -> int:
        """The population size λ on a ``d``-dimensional landscape."""
        return _default_lambda(d) if self.population_size is None else self.population_size

    def variables(self, target: Landscape) -> list[Variable]:
        d = target.dim
        return _summary_variables(d, "mean of the search distribution") + [
            Variable("sigma", (), (), self._sigma_long_name, "1"),
            Variable("variance", ("dim",), (d,), "variance of the search distribution per coordinate", "1"),
            Variable("population_energy", (), (), "mean U of the generation's offspring", "1"),
        ]

    def _common_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> tuple[dict, dict]:
        R, d = x0.shape
        lam = self.lam(d)
        u0 = initial_energy(self, target, x0)
        arrays = {"x": x0, "best": u0.copy(), "pop_energy": u0.copy(), "evals": np.zeros(R, dtype=np.int64),
                  "rng": rng, "diverged": np.full(R, -1, dtype=np.int64), "halted": np.full(R, -1, dtype=np.int64)}
        scratch = {"S": np.empty((R, lam, d)), "X": np.empty((R, lam, d)), "G": np.empty((R, min(lam, EVAL_ROWS), d)),
                   "U": np.empty((R, lam)), "idx": np.empty((R, lam), dtype=np.int64),
                   "tmp": np.empty((R, lam), dtype=np.int64), "util": np.empty((R, lam)),
                   "uvals": nes_utilities(lam), "work": np.empty((R, 3, d))}
        return arrays, scratch

    def _record_common(self, target, state, out, k) -> None:
        from .popgen import value_only

        a = state.arrays
        out["population_mean"][:, k] = a["x"]
        out["energy"][:, k] = value_only(target, np.nan_to_num(a["x"]))
        out["energy"][a["diverged"] >= 0, k] = np.nan
        out["best_energy"][:, k] = a["best"]
        out["population_energy"][:, k] = a["pop_energy"]
        out["evaluations"][:, k] = a["evals"]

    def _outs(self, out):
        return (out["population_mean"], out["energy"], out["sigma"], out["variance"], out["population_energy"],
                out["best_energy"], out["evaluations"])


_COMMON = r"""population_size : int, optional
        λ >= 2 (default 4 + floor(3 ln dim)).
    sigma0 : float
        Initial step size > 0 (the search distribution starts as N(x0, sigma0² I)).
    learning_rate_mean : float
        η_μ > 0 (default 1).
    fitness_shaping : {"ranks", "none"}
        ``"ranks"`` (default): the rank-based utilities :func:`nes_utilities`, invariant to monotone
        transformations of U. ``"none"``: the energies centred on their mean,
        :math:`f_k = -(U_k - \bar U)/(\lambda - 1)`, which make the search gradients unbiased
        estimates of the gradients of the Gaussian-smoothed :math:`\mathrm E[U(m + \sigma s)]`
        (see the class description); a non-finite U then flags the replica as diverged."""


@register_integrator
@dataclass(frozen=True)
class SNES(_NES):
    r"""Separable NES (Schaul, Glasmachers & Schmidhuber 2011; Wierstra et al. 2014, Algorithm 6).

    Per generation, with :math:`s_k \sim \mathcal N(0, I)`, :math:`x_k = m + \sigma\odot s_k` and
    utilities :math:`f_k` of the offspring:

    .. math::
        m \leftarrow m + \eta_\mu\,\sigma\odot\sum_k f_k s_k,\qquad
        \sigma \leftarrow \sigma\odot\exp\!\Big(\frac{\eta_\sigma}{2}\sum_k f_k (s_k^2 - 1)\Big),

    with :math:`\eta_\sigma = (3 + \ln n)/(5\sqrt n)`. O(n) per offspring: for high dimension.
    With ``fitness_shaping="none"`` (Stein's lemma) :math:`\mathrm E[\Delta m_i] = -\eta_\mu\sigma_i^2\,
    \partial_i U_\sigma(m)` and :math:`\mathrm E[\log(\sigma_i'/\sigma_i)] = -\frac{\eta_\sigma}{2}\sigma_i^2\,
    \mathrm E[\partial_{ii}U(m + \sigma\odot s)]`, exactly (:func:`stochdyn.theory.smoothed_rastrigin_gradient`,
    :func:`stochdyn.theory.smoothed_rastrigin_curvature`).

    Parameters
    ----------
    {common}
    learning_rate_sigma : float, optional
        η_σ > 0 (default (3 + ln n)/(5 √n)).

    Recorded: ``population_mean``, ``energy`` (U at the mean), ``sigma`` (the geometric mean of the
    σ_i), ``variance`` (σ_i²), ``population_energy``, ``best_energy``, ``evaluations``.
    """

    _sigma_long_name = "geometric mean of the per-coordinate step sizes"

    def __post_init__(self) -> None:
        self._validate()

    def eta_sigma(self, d: int) -> float:
        return (3 + math.log(d)) / (5 * math.sqrt(d)) if self.learning_rate_sigma is None else self.learning_rate_sigma

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        arrays, scratch = self._common_state(target, x0, rng)
        arrays["sd"] = np.full(x0.shape, self.sigma0)
        return State(arrays=arrays, scratch=scratch)

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        self._record_common(target, state, out, k)
        sd = state.arrays["sd"]
        out["sigma"][:, k] = np.exp(np.log(sd).mean(axis=1))
        out["variance"][:, k] = sd**2

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        a, s = state.arrays, state.scratch
        run_blocks(_k.snes, (target.compiled_value, target.theta, a["x"], a["sd"], a["best"], a["pop_energy"],
                             a["evals"], s["S"], s["X"], s["G"], s["U"], s["idx"], s["tmp"], s["util"], s["uvals"],
                             s["work"], a["rng"], a["diverged"], a["halted"], self.learning_rate_mean,
                             self.eta_sigma(target.dim), self.fitness_shaping == "ranks", state.step, n_steps,
                             record_every, *self._outs(out), k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)


@register_integrator
@dataclass(frozen=True)
class XNES(_NES):
    r"""Exponential NES (Glasmachers et al. 2010; Wierstra et al. 2014, Algorithm 5): full covariance.

    The search distribution is :math:`\mathcal N(m, \sigma^2 BB^\top)` with :math:`\det B = 1`. Per
    generation, with :math:`s_k \sim \mathcal N(0, I)`, :math:`x_k = m + \sigma B s_k` and utilities
    :math:`f_k`: :math:`G_\delta = \sum_k f_k s_k`, :math:`G_M = \sum_k f_k (s_k s_k^\top - I)`,
    :math:`G_\sigma = \mathrm{tr}(G_M)/n`, :math:`G_B = G_M - G_\sigma I`;

    .. math::
        m \leftarrow m + \eta_\mu\,\sigma B G_\delta,\qquad
        \sigma \leftarrow \sigma\,e^{\eta_\sigma G_\sigma/2},\qquad
        B \leftarrow B\,\exp(\tfrac{\eta_B}{2} G_B),

    with :math:`\eta_\sigma = \eta_B = 3(3 + \ln n)/(5 n^{3/2})`. On a linear U (B = I) the mean moves
    :math:`\eta_\mu\sigma c_u` down the gradient in expectation and
    :math:`\mathrm E[G_\sigma] = \frac1n\sum_k u_k \mathrm E[N^2_{\lambda-k+1:\lambda}]`
    (:func:`stochdyn.theory.xnes_linear_expectations`). O(n²) per offspring plus an n×n
    eigendecomposition per generation; learns the orientation of ill-conditioned problems like
    CMA-ES, with slower default learning rates.

    Parameters
    ----------
    {common}
    learning_rate_sigma : float, optional
        η_σ > 0 (default 3(3 + ln n)/(5 n^{3/2})).
    learning_rate_b : float, optional
        η_B > 0 (default η_σ's default).

    Recorded: ``population_mean``, ``energy`` (U at the mean), ``sigma``, ``variance``
    (σ² diag(BBᵀ)), ``population_energy``, ``best_energy``, ``evaluations``.
    """

    learning_rate_b: Any = None

    _sigma_long_name = "step size (det B = 1)"

    def __post_init__(self) -> None:
        self._validate()
        object.__setattr__(self, "learning_rate_b",
                           check_real("learning_rate_b", self.learning_rate_b, "XNES", gt=0.0, allow_none=True))

    def _eta_default(self, d: int) -> float:
        return 3 * (3 + math.log(d)) / (5 * d * math.sqrt(d))

    def eta_sigma(self, d: int) -> float:
        return self._eta_default(d) if self.learning_rate_sigma is None else self.learning_rate_sigma

    def eta_b(self, d: int) -> float:
        return self._eta_default(d) if self.learning_rate_b is None else self.learning_rate_b

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        arrays, scratch = self._common_state(target, x0, rng)
        arrays.update(sigma=np.full(R, self.sigma0), B=np.array(np.broadcast_to(np.eye(d), (R, d, d))))
        scratch.update(GM=np.empty((R, d, d)), V=np.empty((R, d, d)), T=np.empty((R, d, d)))
        return State(arrays=arrays, scratch=scratch)

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        self._record_common(target, state, out, k)
        a = state.arrays
        out["sigma"][:, k] = a["sigma"]
        out["variance"][:, k] = a["sigma"][:, None] ** 2 * np.sum(a["B"] ** 2, axis=2)

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        a, s = state.arrays, state.scratch
        d = target.dim
        run_blocks(_k.xnes, (target.compiled_value, eigh.get(), target.theta, a["x"], a["sigma"], a["B"], a["best"],
                             a["pop_energy"], a["evals"], s["S"], s["X"], s["G"], s["U"], s["idx"], s["tmp"],
                             s["util"], s["uvals"], s["GM"], s["V"], s["T"], s["work"], a["rng"], a["diverged"],
                             a["halted"], self.learning_rate_mean, self.eta_sigma(d), self.eta_b(d),
                             self.fitness_shaping == "ranks", state.step, n_steps, record_every, *self._outs(out),
                             k0, *state.until_args(a["x"].shape[0])), a["x"].shape[0], blocks_per_thread=4)


for _cls in (SNES, XNES):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{common}", _COMMON)
