r"""CMA-ES and its relatives: full covariance (active by default), separable, isotropic; IPOP/BIPOP restarts.

* :class:`CMAES` — CMA-ES with the default parameters of Hansen (2016, arXiv:1604.00772) and the
  active covariance update (Jastrebski & Arnold 2006), optional IPOP/BIPOP restarts.
* :class:`SepCMAES` — separable CMA-ES (Ros & Hansen 2008): diagonal covariance, learning rates
  times (n + 2)/3; O(n) per offspring, for high dimension.
* :class:`CSAES` — (μ/μ_w, λ)-ES with cumulative step-size adaptation, isotropic mutations.

One kernel serves all three (:mod:`stochdyn.integrators._kernels.cma`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._numba_utils import run_blocks
from .._validation import ValidationError, check_bool, check_choice, check_int, check_real
from ..landscapes.base import Landscape
from ._kernels import cma as _k
from ._kernels.eigen import eigh
from ._kernels.evolution import EVAL_ROWS
from .base import State, Variable, register_integrator
from .evolution import _check_sigma0, _Strategy, _summary_variables, initial_energy
from .popgen import value_only

__all__ = ["CSAES", "CMAES", "SepCMAES", "cma_parameters"]

_COV = {"none": _k.COV_NONE, "diagonal": _k.COV_DIAG, "full": _k.COV_FULL}
_RESTARTS = {"none": 0, "ipop": _k.IPOP, "bipop": _k.BIPOP}
#: refuse runs whose per-replica offspring buffers would exceed this many bytes in total
MAX_SCRATCH_BYTES = 4 * 2**30


def _spec(parents: int | None, weights: str, active: bool, covariance: str, constant_sigma: bool) -> np.ndarray:
    return np.array([parents or 0, weights == "equal", active, _COV[covariance], constant_sigma], dtype=np.float64)


def cma_parameters(dim: int, population_size: int | None = None, parents: int | None = None, weights: str = "log",
                   *, active: bool = True, covariance: str = "full") -> dict[str, Any]:
    r"""Default strategy parameters of CMA-ES (Hansen 2016, arXiv:1604.00772, Table 1).

    :math:`\lambda = 4 + \lfloor 3\ln n\rfloor`, :math:`\mu = \lfloor\lambda/2\rfloor`,
    :math:`w_i \propto \ln\frac{\lambda+1}{2} - \ln i` (``"log"``) or :math:`1/\mu` (``"equal"``)
    for :math:`i \le \mu`, summing to 1; :math:`\mu_\mathrm{eff} = 1/\sum w_i^2`,
    :math:`c_\sigma = \frac{\mu_\mathrm{eff}+2}{n+\mu_\mathrm{eff}+5}`,
    :math:`d_\sigma = 1 + 2\max(0, \sqrt{(\mu_\mathrm{eff}-1)/(n+1)} - 1) + c_\sigma`,
    :math:`c_c = \frac{4+\mu_\mathrm{eff}/n}{n+4+2\mu_\mathrm{eff}/n}`,
    :math:`c_1 = \frac{2}{(n+1.3)^2+\mu_\mathrm{eff}}`,
    :math:`c_\mu = \min(1-c_1, \frac{2(\mu_\mathrm{eff}-2+1/\mu_\mathrm{eff})}{(n+2)^2+\mu_\mathrm{eff}})`,
    :math:`E\|N(0,I)\| \approx \sqrt n\,(1 - \frac1{4n} + \frac1{21n^2})`.

    Active update (``active=True``): the weights :math:`i > \mu` of the same formula are negative and
    scaled to sum to :math:`-\min(1 + c_1/c_\mu,\ 1 + 2\mu^-_\mathrm{eff}/(\mu_\mathrm{eff}+2),\
    (1-c_1-c_\mu)/(n c_\mu))` (Hansen 2016, eq. 53). ``covariance="diagonal"`` (sep-CMA-ES) multiplies
    :math:`c_1` and :math:`c_\mu` by :math:`(n+2)/3` (Ros & Hansen 2008); ``"none"`` sets them to 0.

    The eigendecomposition of C is refreshed lazily as in Hansen's ``purecma``: once more than
    :math:`0.5\,n\lambda/((c_1+c_\mu)n^2)` evaluations have passed, i.e. every
    :math:`\lfloor 0.5/((c_1+c_\mu)n)\rfloor + 1` generations (every 2nd for n = 10, λ = 10).

    Returns a dict with ``lam, mu, weights`` (the μ positive ones), ``negative_weights`` (λ − μ,
    zero without the active update), ``sum_weights``, ``mueff, cs, ds, cc, c1, cmu, chi_n, eigen_every``.
    """
    n = int(dim)
    lam = 4 + int(np.floor(3 * np.log(n))) if population_size is None else int(population_size)
    p = np.zeros(_k.N_PARAMS)
    w = np.zeros(lam)
    _k.strategy_parameters.py_func(n, lam, _spec(parents, weights, active, covariance, False), p, w)
    mu = int(p[_k.P_MU])
    return dict(lam=lam, mu=mu, weights=w[:mu].copy(), negative_weights=w[mu:].copy(), sum_weights=p[_k.P_SUMW],
                mueff=p[_k.P_MUEFF], cs=p[_k.P_CS], ds=p[_k.P_DS], cc=p[_k.P_CC], c1=p[_k.P_C1], cmu=p[_k.P_CMU],
                chi_n=p[_k.P_CHI], eigen_every=int(p[_k.P_EIGEN]))


@dataclass(frozen=True)
class _Recombinant(_Strategy):
    """Shared machinery of CSAES, SepCMAES and CMAES (one kernel)."""

    population_size: Any = None
    parents: Any = None
    sigma0: float = 1.0
    record_population: bool = False

    _covariance = "full"

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

    # -- what the subclasses choose ----------------------------------------------------------
    def _weights(self) -> str:
        return getattr(self, "weights", "log")

    def _active(self) -> bool:
        return bool(getattr(self, "active", False))

    def _constant_sigma(self) -> bool:
        return getattr(self, "step_size_rule", "csa") == "constant"

    def _restarts(self) -> str:
        return getattr(self, "restarts", "none")

    def _spec(self) -> np.ndarray:
        return _spec(self.parents, self._weights(), self._active(), self._covariance, self._constant_sigma())

    def strategy(self, d: int) -> dict[str, Any]:
        """The strategy parameters used on a ``d``-dimensional landscape (see :func:`cma_parameters`)."""
        lam = 4 + int(np.floor(3 * np.log(d))) if self.population_size is None else self.population_size
        mu = lam // 2 if self.parents is None else self.parents
        if mu > lam:
            raise ValidationError(f"The 'parents' parameter of {self.name} (mu={mu}) must be <= population_size "
                                  f"(lambda={lam}).")
        p = cma_parameters(d, lam, self.parents, self._weights(), active=self._active(), covariance=self._covariance)
        if self._constant_sigma():
            p["cs"] = 0.0
        return p

    def _lam_max(self, d: int) -> int:
        """The largest population size of a run (restarts may grow it: :class:`_Restartable`)."""
        return self.strategy(d)["lam"]

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
        if self._restarts() != "none":
            out += [Variable("restarts", (), (), "restarts so far", "1", np.int64),
                    Variable("population_size", (), (), "population size lambda of the current run", "1", np.int64)]
        if self.record_population:
            lam = self.strategy(d)["lam"]
            out.append(Variable("x", ("individual", "dim"), (lam, d), "offspring of the generation", "1"))
        return out

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        lam0 = self.strategy(d)["lam"]
        lam_max = self._lam_max(d)
        need = 8 * R * lam_max * (3 * d + 3)
        if need > MAX_SCRATCH_BYTES:
            raise ValidationError(
                f"{self.name} would need {need / 2**30:.1f} GiB for the offspring of {R} replicas with population sizes "
                f"up to {lam_max} (limit {MAX_SCRATCH_BYTES / 2**30:.0f} GiB): lower max_restarts, set "
                "max_evaluations, or run fewer replicas at a time.")
        u0 = initial_energy(self, target, x0)
        params = np.zeros((R, _k.N_PARAMS))
        weights = np.zeros((R, lam_max))
        _k.strategy_parameters.py_func(d, lam0, self._spec(), params[0], weights[0])  # the kernel's formulas, uncompiled
        params[:] = params[0]
        weights[:] = weights[0]
        full = self._covariance == "full"
        eye = np.broadcast_to(np.eye(d), (R, d, d))
        arrays = {"x": x0, "sigma": np.full(R, self.sigma0), "ps": np.zeros((R, d)), "pc": np.zeros((R, d)),
                  "C": eye.copy() if full else np.ones((R, d)), "D": np.ones((R, d)), "best": u0.copy(),
                  "pop_energy": u0.copy(), "gen": np.zeros(R, dtype=np.int64), "evals": np.zeros(R, dtype=np.int64),
                  "lam": np.full(R, lam0, dtype=np.int64), "params": params, "weights": weights, "rng": rng,
                  "diverged": np.full(R, -1, dtype=np.int64), "halted": np.full(R, -1, dtype=np.int64)}
        if full:
            arrays["B"] = eye.copy()
        if self._restarts() != "none":
            rflt = np.zeros((R, _k.N_RFLT))
            rflt[:, _k.RF_SIGMA_START] = self.sigma0
            rflt[:, _k.RF_MAXITER] = 100 + 150 * (d + 3) ** 2 / np.sqrt(lam0)
            rint = np.zeros((R, _k.N_RINT), dtype=np.int64)
            rint[:, _k.RI_SMALL] = self._restarts() == "bipop"  # pycma counts the first run as a small one
            arrays.update(hist=np.zeros((R, int(params[0, _k.P_HIST]))), rint=rint, rflt=rflt, x_start=x0.copy())
        scratch = {"Z": np.empty((R, lam_max, d)), "Y": np.empty((R, lam_max, d)), "X": np.empty((R, lam_max, d)),
                   "G": np.empty((R, min(lam_max, EVAL_ROWS), d)), "U": np.empty((R, lam_max)),
                   "idx": np.empty((R, lam_max), dtype=np.int64), "tmp": np.empty((R, lam_max), dtype=np.int64),
                   "work": np.empty((R, 4, d))}
        return State(arrays=arrays, scratch=scratch)

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        a = state.arrays
        out["population_mean"][:, k] = a["x"]
        out["energy"][:, k] = value_only(target, np.nan_to_num(a["x"]))
        out["energy"][a["diverged"] >= 0, k] = np.nan
        out["sigma"][:, k] = a["sigma"]
        diag = np.diagonal(a["C"], axis1=1, axis2=2) if a["C"].ndim == 3 else a["C"]
        out["variance"][:, k] = a["sigma"][:, None] ** 2 * diag
        out["best_energy"][:, k] = a["best"]
        out["population_energy"][:, k] = a["pop_energy"]
        out["evaluations"][:, k] = a["evals"]
        if "restarts" in out:
            out["restarts"][:, k] = a["rint"][:, _k.RI_RESTARTS]
            out["population_size"][:, k] = a["lam"]

    def _rconf(self, d: int) -> np.ndarray:
        """The kernel's restart configuration (none here: :class:`_Restartable`)."""
        return np.zeros(6)

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        a, s = state.arrays, state.scratch
        R, d = a["x"].shape
        full = self._covariance == "full"
        run_blocks(_k.cma, (target.compiled_value, eigh.get() if full else None, target.theta, a["x"], a["sigma"],
                            a["ps"], a["pc"], a["C"] if full else None, a.get("B"), None if full else a["C"], a["D"],
                            a["best"], a["pop_energy"], a["gen"], a["evals"], a["lam"], a["params"], a["weights"],
                            s["Z"], s["Y"], s["X"], s["G"], s["U"], s["idx"], s["tmp"], s["work"], a["rng"],
                            a["diverged"], a["halted"], a.get("hist"), a.get("rint"), a.get("rflt"),
                            a.get("x_start"), self._rconf(d), self._spec(), state.step, n_steps, record_every,
                            out["population_mean"], out["energy"], out["sigma"], out["variance"],
                            out["population_energy"], out["best_energy"], out["evaluations"], out.get("x"),
                            out.get("restarts"), out.get("population_size"), k0, *state.until_args(R)), R, blocks_per_thread=4)


_COMMON = r"""population_size : int, optional
        λ >= 2 (default 4 + floor(3 ln dim)).
    parents : int, optional
        μ <= λ (default λ // 2).
    sigma0 : float
        Initial step size > 0.
    record_population : bool
        Also record the λ offspring ``x`` (dims replica, time, individual, dim)."""

_RESTART_DOC = r"""restarts : {"none", "ipop", "bipop"}
        Restart a run when pycma's default termination criteria hold (maxiter, tolfun, tolfunhist,
        tolx, tolupsigma, tolconditioncov, tolfacupx, noeffectcoord, noeffectaxis, tolflatfitness;
        not tolstagnation), from the replica's ``x0`` with step size ``sigma0``: ``"ipop"`` doubles λ at
        every restart (Auger & Hansen 2005); ``"bipop"`` (Hansen 2009, as in pycma's ``bipop=True``)
        alternates such large runs with small ones of population
        :math:`\lfloor\lambda_0 m^{u^2}\rfloor` and step size :math:`\sigma_0 10^{-2u'}`
        (:math:`m` = the current large multiplier, :math:`u, u'` uniform from the replica's
        stream), choosing the small regime while it has used fewer evaluations than the large one.
        Records ``restarts`` and ``population_size`` as well.
    max_restarts : int
        Large restarts allowed (default 9; BIPOP's small runs do not count); then the replica halts.
    max_evaluations : int, optional
        Budget of fitness evaluations per replica: a generation that would exceed it is not
        started, and the replica halts (its records repeat its final state).
    population_growth : float
        Factor of λ per large restart (default 2)."""


@dataclass(frozen=True)
class _Restartable(_Recombinant):
    restarts: str = "none"
    max_restarts: int = 9
    max_evaluations: Any = None
    population_growth: float = 2.0

    def _validate(self) -> None:
        super()._validate()
        owner = self.name
        check_choice("restarts", self.restarts, tuple(_RESTARTS), owner)
        object.__setattr__(self, "max_restarts", check_int("max_restarts", self.max_restarts, owner, ge=0))
        object.__setattr__(self, "max_evaluations",
                           check_int("max_evaluations", self.max_evaluations, owner, ge=1, allow_none=True))
        object.__setattr__(self, "population_growth",
                           check_real("population_growth", self.population_growth, owner, gt=1.0))
        if self.restarts != "none":
            if self.parents is not None:
                raise ValidationError(f"The 'parents' parameter of {owner} must be left at None with restarts="
                                      f"{self.restarts!r} (mu = lambda // 2 for every run). Got {self.parents}.")
            if self.record_population:
                raise ValidationError(f"The 'record_population' parameter of {owner} must be False with restarts="
                                      f"{self.restarts!r}: the population size changes between runs.")

    def _lam_max(self, d: int) -> int:
        lam0 = self.strategy(d)["lam"]
        if self._restarts() == "none":
            return lam0
        lam = int(lam0 * self.population_growth ** self.max_restarts)
        return lam if self.max_evaluations is None else max(lam0, min(lam, self.max_evaluations))

    def _rconf(self, d: int) -> np.ndarray:
        if self._restarts() == "none":
            return np.zeros(6)
        return np.array([_RESTARTS[self._restarts()], self.max_restarts, self.max_evaluations or 0,
                         self.population_growth, self.strategy(d)["lam"], self.sigma0], dtype=np.float64)


@register_integrator
@dataclass(frozen=True)
class CSAES(_Recombinant):
    r"""(μ/μ_w, λ)-ES with cumulative step-size adaptation (CSA), isotropic mutations.

    .. math::
        x_k = m + \sigma z_k,\ z_k\sim\mathcal N(0,I);\quad m \leftarrow m + \sigma\sum_{i\le\mu} w_i z_{i:\lambda};
        \quad p_\sigma \leftarrow (1-c_\sigma)p_\sigma + \sqrt{c_\sigma(2-c_\sigma)\mu_\mathrm{eff}}\,z_w;
        \quad \sigma \leftarrow \sigma\exp\!\Big(\frac{c_\sigma}{d_\sigma}\Big(\frac{\|p_\sigma\|}{E\|\mathcal N(0,I)\|}-1\Big)\Big),

    where :math:`z_{i:\lambda}` is the i-th best offspring (lowest U), with the parameters of
    :func:`cma_parameters` (Ostermeier, Gawelczyk & Hansen 1994; Hansen 2016). On a linear U each
    generation moves m down the gradient by :math:`\sigma c_w` in expectation,
    :math:`c_w = \sum_i w_i E[\mathcal N_{\lambda-i+1:\lambda}]` (:func:`stochdyn.theory.progress_coefficient`).

    Parameters
    ----------
    {common}
    weights : {"log", "equal"}
        Recombination weights (default "log", as CMA-ES); "equal" is intermediate recombination μ/μ_I.
    step_size_rule : {"csa", "constant"}
        "constant" keeps σ = sigma0.
    """

    weights: str = "log"
    step_size_rule: str = "csa"

    _covariance = "none"

    def __post_init__(self) -> None:
        self._validate()
        check_choice("weights", self.weights, ("log", "equal"), "CSAES")
        check_choice("step_size_rule", self.step_size_rule, ("csa", "constant"), "CSAES")


@register_integrator
@dataclass(frozen=True)
class CMAES(_Restartable):
    r"""CMA-ES with full covariance matrix, the default parameters and the active update (Hansen 2016).

    Per generation: :math:`y_k = BDz_k`, :math:`x_k = m + \sigma y_k`; rank by U;
    :math:`y_w = \sum_{i\le\mu} w_i y_{i:\lambda}`, :math:`m \leftarrow m + \sigma y_w`;
    :math:`p_\sigma \leftarrow (1-c_\sigma)p_\sigma + \sqrt{c_\sigma(2-c_\sigma)\mu_\mathrm{eff}}\,C^{-1/2}y_w`;
    :math:`\sigma \leftarrow \sigma\exp(\frac{c_\sigma}{d_\sigma}(\|p_\sigma\|/E\|N(0,I)\|-1))`;
    :math:`p_c \leftarrow (1-c_c)p_c + h_\sigma\sqrt{c_c(2-c_c)\mu_\mathrm{eff}}\,y_w`;
    :math:`C \leftarrow (1 + c_1\delta(h_\sigma) - c_1 - c_\mu\sum_j w_j)\,C + c_1 p_cp_c^\top + c_\mu\sum_{i=1}^{\lambda} w_i^\circ y_{i:\lambda}y_{i:\lambda}^\top`,
    :math:`\delta(h_\sigma) = (1-h_\sigma)c_c(2-c_c)`, :math:`w_i^\circ = w_i` for :math:`w_i \ge 0` and
    :math:`w_i\,n/\|C^{-1/2}y_{i:\lambda}\|^2` for the negative weights of the **active** update
    (Jastrebski & Arnold 2006; Hansen 2016, eqs. 46–53), which shrinks C along the worst offspring;
    with ``active=False`` only the μ positive weights are used (the original update).
    :math:`C = BD^2B^\top` by Householder tridiagonalisation and implicit QL (EISPACK tred2/tql2),
    refreshed lazily. Parameters: :func:`cma_parameters`.

    Parameters
    ----------
    {common}
    active : bool
        Active covariance update (default True, as pycma); False gives the plain update.
    {restarts}
    """

    active: bool = True

    def __post_init__(self) -> None:
        self._validate()
        object.__setattr__(self, "active", check_bool("active", self.active, "CMAES"))


@register_integrator
@dataclass(frozen=True)
class SepCMAES(_Restartable):
    r"""Separable CMA-ES (Ros & Hansen 2008): CMA-ES with a diagonal covariance matrix.

    As :class:`CMAES` with :math:`C = \mathrm{diag}(c)`, :math:`D = \sqrt c`, :math:`y_k = D z_k`,
    :math:`C^{-1/2}y_w = z_w`, the update applied to the diagonal only,
    :math:`c_i \leftarrow (1 + c_1\delta(h_\sigma) - c_1 - c_\mu\sum_j w_j)c_i + c_1 p_{c,i}^2 + c_\mu\sum_k w_k^\circ y_{k,i}^2`,
    and learning rates :math:`c_1, c_\mu` multiplied by :math:`(n+2)/3` (their paper's choice), since
    only n numbers are learned. O(n) per offspring and no eigendecomposition: for high dimension
    and for problems whose scaling is along the coordinates. On a rotated ill-conditioned problem
    it cannot learn the orientation (use :class:`CMAES` or :class:`XNES`).

    Parameters
    ----------
    {common}
    active : bool
        Active (negative-weight) update of the diagonal (default False, as published).
    {restarts}
    """

    active: bool = False

    _covariance = "diagonal"

    def __post_init__(self) -> None:
        self._validate()
        object.__setattr__(self, "active", check_bool("active", self.active, "SepCMAES"))


for _cls in (CSAES, CMAES, SepCMAES):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{common}", _COMMON).replace("{restarts}", _RESTART_DOC)
