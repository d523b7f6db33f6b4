r"""The SGD family as ensembles: :class:`SGD` (plain, heavy-ball, Nesterov), :class:`Adam`, :class:`SGLD`.

Each runs on a finite-sum problem (:mod:`stochdyn.problems`; U is the weighted mean loss) with
mini-batches drawn per replica from the replica's own stream, or on a landscape with the exact
gradient plus optional additive Gaussian gradient noise (the idealised model of the chapter:
with ``gradient_noise = 2T/lr``, plain SGD *is* ``EulerMaruyama(dt=lr, temperature=T)``).

The practices of the chapter are small validated configurations shared by all three:

* :class:`Sampling` — with replacement, without replacement within a batch, epoch-wise
  reshuffling, or stratified by label (proportional or Neyman allocation, reweighted);
* :class:`LRSchedule` — constant, linear warm-up, cosine, step decay or a user array;
* :class:`BatchSchedule` — a fixed plan, or the adaptive norm test;
* :class:`Augmentation` — A augmented copies of each drawn example (Gaussian feature noise or
  a user augmentation);
* :class:`Workers` — K simulated data-parallel workers with gradient compression (stochastic
  quantisation, scaled sign, top-k; error feedback) averaged like a parameter server;
* ``clip_norm`` — clipping by global norm.

The ``time`` coordinate is the step. Recorded beside ``x`` and ``energy`` (the full-batch U):
``batch_loss``, ``grad_norm``, ``lr``, ``batch_size``, ``examples`` and the gradient-noise
statistics ``grad_var``, ``noise_scale``, ``snr`` (see :data:`EXTRA_VARIABLES`; choose with
``record_extra=``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np

from .._validation import ValidationError, check_array, check_bool, check_choice, check_int, check_real, check_spd
from .._numba_utils import run_blocks
from ..landscapes.base import Landscape
from ..problems.base import Problem
from ..problems.builtin import gaussian_augment
from ..problems.user import AUGMENTATIONS, AugmentFunction
from ._kernels import sgd as _k
from .base import Integrator, State, Variable, _plain, as_float_tuple, register_integrator

__all__ = ["SGD", "Adam", "SGLD", "Sampling", "LRSchedule", "BatchSchedule", "Augmentation", "Workers",
           "EXTRA_VARIABLES"]

#: the kernels' output tuples, in the order of their O_* indices
_FLOAT_OUT = ("batch_loss", "grad_norm", "lr", "grad_var", "noise_scale", "snr")
_INT_OUT = ("batch_size", "examples")
#: draws per chunk of a mini-batch: indices and multipliers are drawn a chunk at a time, then evaluated
_DRAW_CHUNK = 64
#: mini-batches up to this size are drawn in SIMD lanes when sampled with replacement (per-thread index buffers)
_LANE_MAX_BATCH = 512
#: refuse per-replica permutation arrays larger than this (sampling without replacement, epochs, strata)
MAX_PERM_BYTES = 4 * 2**30

#: name -> (long_name, dtype, only on problems); all are (replica, time) scalars with units "1"
EXTRA_VARIABLES: dict[str, tuple[str, Any, bool]] = {
    "batch_loss": ("mini-batch estimate of U at the parameters before the step", np.float64, True),
    "grad_norm": ("norm of the gradient estimate used by the step, before clipping", np.float64, False),
    "lr": ("learning rate of the step", np.float64, False),
    "batch_size": ("mini-batch size of the step", np.int64, True),
    "examples": ("cumulative per-example gradient evaluations (cost)", np.int64, True),
    "grad_var": ("trace of the per-draw gradient covariance, mini-batch estimate", np.float64, True),
    "noise_scale": ("gradient noise scale tr(Sigma)/|g|^2, mini-batch estimate", np.float64, True),
    "snr": ("signal-to-noise ratio B |g|^2 / tr(Sigma), mini-batch estimate", np.float64, True),
}


def _config_dict(cfg: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if v is not None:
            out[f.name] = v.to_dict() if hasattr(v, "to_dict") else _plain(v)
    return out


def _compact_repr(obj: Any) -> str:
    """``Name(field=value, ...)`` with only the fields that differ from their defaults."""
    shown = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)
             if f.default is dataclasses.MISSING or getattr(obj, f.name) != f.default]
    return f"{type(obj).__name__}({', '.join(shown)})"


class _Config:
    """Shared by the practice configurations: JSON-able description and a compact repr."""

    def to_dict(self) -> dict[str, Any]:
        return _config_dict(self)

    def __repr__(self) -> str:
        return _compact_repr(self)


def _as_config(value: Any, cls: type, name: str, owner: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as exc:
            raise ValidationError(f"The '{name}' parameter of {owner}: {exc}.") from None
    raise ValidationError(f"The '{name}' parameter of {owner} must be a {cls.__name__} (or a dict of its fields). "
                          f"Got {value!r}.")


# ----------------------------------------------------------------------------------------------------
# Practice configurations
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Sampling(_Config):
    r"""How each replica draws its mini-batch.

    Parameters
    ----------
    mode : {"with_replacement", "without_replacement", "epoch", "stratified"}
        ``with_replacement``: B i.i.d. uniform indices. ``without_replacement``: B distinct
        uniform indices (partial Fisher–Yates on a per-replica permutation). ``epoch``: each
        replica reshuffles its permutation at the start of every epoch and takes consecutive
        batches of B; the last N mod B examples of an epoch are skipped (``drop_last``), so every
        batch has B distinct examples. ``stratified``: :math:`n_h` draws without replacement
        from each label stratum h, with multipliers :math:`w_i N_h/n_h` so the estimator stays
        unbiased (Cochran 1977, ch. 5).
    allocation : {"proportional", "neyman"}
        Stratified only: :math:`n_h \propto N_h` or :math:`n_h \propto N_h S_h` (Neyman 1934),
        rounded by largest remainder with :math:`1 \le n_h \le N_h`.
    stratum_std : sequence of float, optional
        :math:`S_h`, one per stratum in increasing label order (Neyman allocation), e.g. from
        :func:`stochdyn.theory.stratum_gradient_std`.
    """

    mode: str = "with_replacement"
    allocation: str = "proportional"
    stratum_std: Any = None

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ("with_replacement", "without_replacement", "epoch", "stratified"), "Sampling")
        check_choice("allocation", self.allocation, ("proportional", "neyman"), "Sampling")
        if self.stratum_std is not None:
            std = check_array("stratum_std", self.stratum_std, "Sampling", ndim=1, ge=0.0, min_size=1)
            object.__setattr__(self, "stratum_std", as_float_tuple(std))
        if self.allocation == "neyman" and self.mode != "stratified":
            raise ValidationError("Sampling: allocation='neyman' applies only to mode='stratified'.")
        if self.allocation == "neyman" and self.stratum_std is None:
            raise ValidationError(
                "Sampling: Neyman allocation needs 'stratum_std' (one gradient standard deviation per stratum, "
                "e.g. sd.theory.stratum_gradient_std(problem, theta)).")



@dataclass(frozen=True, repr=False)
class LRSchedule(_Config):
    r"""Learning-rate schedule: the step-t learning rate is ``lr * factor(t)`` (t = 1, 2, ...).

    :math:`\mathrm{factor}(t) = \min(1, t/W)\,g(t)` with W = ``warmup_steps`` (linear warm-up;
    Goyal et al. 2017) and g: 1 (``constant``), cosine decay from 1 to ``final_factor`` between
    steps W and ``total_steps`` (``cosine``; Loshchilov & Hutter 2017), :math:`\gamma^{\lfloor (t-1)/S\rfloor}`
    (``step``, S = ``step_size``), or ``values[t-1]`` (``array``: one factor per step, at least
    as many as the run has steps; no warm-up applied). Use the class methods.
    """

    kind: str = "constant"
    warmup_steps: int = 0
    total_steps: int | None = None
    final_factor: float = 0.0
    step_size: int | None = None
    gamma: float = 0.1
    values: Any = None

    def __post_init__(self) -> None:
        o = "LRSchedule"
        check_choice("kind", self.kind, ("constant", "cosine", "step", "array"), o)
        object.__setattr__(self, "warmup_steps", check_int("warmup_steps", self.warmup_steps, o, ge=0))
        object.__setattr__(self, "final_factor", check_real("final_factor", self.final_factor, o, ge=0.0))
        object.__setattr__(self, "gamma", check_real("gamma", self.gamma, o, gt=0.0))
        if self.kind == "cosine":
            total = check_int("total_steps", self.total_steps, o, gt=self.warmup_steps)
            object.__setattr__(self, "total_steps", total)
        if self.kind == "step":
            object.__setattr__(self, "step_size", check_int("step_size", self.step_size, o, ge=1))
        if self.kind == "array":
            if self.values is None:
                raise ValidationError("LRSchedule(kind='array') needs 'values' (one factor per step).")
            vals = check_array("values", self.values, o, ndim=1, ge=0.0, min_size=1)
            object.__setattr__(self, "values", as_float_tuple(vals))
        elif self.values is not None:
            raise ValidationError(f"LRSchedule: 'values' applies only to kind='array'. Got kind={self.kind!r}.")

    @classmethod
    def constant(cls) -> "LRSchedule":
        return cls()

    @classmethod
    def warmup(cls, warmup_steps: int) -> "LRSchedule":
        """Linear warm-up over ``warmup_steps``, then constant."""
        return cls(warmup_steps=warmup_steps)

    @classmethod
    def cosine(cls, total_steps: int, warmup_steps: int = 0, final_factor: float = 0.0) -> "LRSchedule":
        return cls(kind="cosine", total_steps=total_steps, warmup_steps=warmup_steps, final_factor=final_factor)

    @classmethod
    def step(cls, step_size: int, gamma: float = 0.1, warmup_steps: int = 0) -> "LRSchedule":
        return cls(kind="step", step_size=step_size, gamma=gamma, warmup_steps=warmup_steps)

    @classmethod
    def array(cls, values: Any) -> "LRSchedule":
        return cls(kind="array", values=values)

    def kernel_args(self) -> tuple[int, tuple[float, float, float, float, float], np.ndarray]:
        """``(kind code, (warmup, total, final factor, step size, gamma), table)``: the kernels' arguments."""
        kind = {"constant": _k.LR_CONSTANT, "cosine": _k.LR_COSINE, "step": _k.LR_STEP, "array": _k.LR_ARRAY}[self.kind]
        table = np.asarray(self.values if self.values is not None else (0.0,), dtype=np.float64)
        return kind, (float(self.warmup_steps), float(self.total_steps or 0), self.final_factor,
                      float(self.step_size or 1), self.gamma), table

    def factor(self, steps: Any) -> np.ndarray:
        """The factors at the given steps (1-based), computed by the kernels' own function."""
        steps = np.atleast_1d(np.asarray(steps, dtype=np.int64))
        kind, p, table = self.kernel_args()
        if kind == _k.LR_ARRAY and (steps.min() < 1 or steps.max() > table.size):
            raise ValidationError(f"LRSchedule: steps must lie in 1..{table.size} for this array schedule.")
        out = np.empty(steps.shape[0])
        _k.lr_factors(kind, *p, table, steps, out)
        return out



@dataclass(frozen=True, repr=False)
class BatchSchedule(_Config):
    r"""Batch-size schedule.

    ``plan``: the batch size is ``batch_size`` until step ``steps[0]``, then ``sizes[0]`` until
    ``steps[1]``, ... (``steps`` strictly increasing; ``len(sizes) == len(steps)``).

    ``norm_test`` (Byrd, Chin, Nocedal & Wu 2012, Math. Program. 134, 127, "Sample size selection
    in optimization methods for machine learning", §3): after each step, if the mini-batch
    estimate of the variance of the batch mean exceeds :math:`\theta^2\|\hat g\|^2`, i.e.
    :math:`\mathrm{tr}\hat\Sigma/B > \theta^2\|\hat g\|^2`, the replica's batch grows to
    :math:`\lceil \mathrm{tr}\hat\Sigma/(\theta^2\|\hat g\|^2)\rceil` (at most ``max_batch``; never shrinks).
    """

    kind: str = "plan"
    steps: Any = ()
    sizes: Any = ()
    theta: float = 0.9
    max_batch: int | None = None

    def __post_init__(self) -> None:
        o = "BatchSchedule"
        check_choice("kind", self.kind, ("plan", "norm_test"), o)
        if self.kind == "plan":
            steps = np.atleast_1d(np.asarray(self.steps))
            sizes = np.atleast_1d(np.asarray(self.sizes))
            if steps.size != sizes.size:
                raise ValidationError(
                    f"The 'sizes' parameter of BatchSchedule must have one entry per entry of 'steps' ({steps.size}). "
                    f"Got {sizes.size}.")
            if steps.size == 0:
                raise ValidationError("BatchSchedule(kind='plan') needs at least one (step, size) pair.")
            st = tuple(check_int("steps", int(v) if float(v).is_integer() else v, o, ge=0) for v in steps.tolist())
            sz = tuple(check_int("sizes", int(v) if float(v).is_integer() else v, o, ge=1) for v in sizes.tolist())
            if any(b <= a for a, b in zip(st, st[1:])):
                raise ValidationError(f"The 'steps' parameter of BatchSchedule must be strictly increasing. Got {list(st)}.")
            object.__setattr__(self, "steps", st)
            object.__setattr__(self, "sizes", sz)
        else:
            object.__setattr__(self, "theta", check_real("theta", self.theta, o, gt=0.0))
            object.__setattr__(self, "max_batch", check_int("max_batch", self.max_batch, o, ge=1, allow_none=True))
            object.__setattr__(self, "steps", ())
            object.__setattr__(self, "sizes", ())

    @classmethod
    def plan(cls, steps: Any, sizes: Any) -> "BatchSchedule":
        return cls(kind="plan", steps=steps, sizes=sizes)

    @classmethod
    def norm_test(cls, theta: float = 0.9, max_batch: int | None = None) -> "BatchSchedule":
        return cls(kind="norm_test", theta=theta, max_batch=max_batch)

    def to_dict(self) -> dict[str, Any]:
        d = _config_dict(self)
        return {k: v for k, v in d.items() if v != []}


@dataclass(frozen=True, repr=False)
class Augmentation(_Config):
    r"""A augmented copies of every drawn example; its gradient is the mean over the copies.

    The estimator is unbiased for the augmented objective
    :math:`U_{\rm aug}(\theta) = \sum_i w_i\,\mathbb E_\varepsilon\,\ell(\theta; \mathrm{aug}(z_i, \varepsilon))`,
    and its variance is :math:`\sigma_b^2/M + \sigma_w^2/(MA)` (between-example and
    within-augmentation parts; :func:`stochdyn.theory.augmented_variance`). On least squares with
    Gaussian feature noise, :math:`U_{\rm aug} = U + \tfrac{\sigma^2}{2}\|\theta\|^2` (Bishop 1995,
    Neural Comput. 7, 108).

    Parameters
    ----------
    copies : int
        A >= 1.
    noise : float
        Standard deviation of the built-in Gaussian noise added to the feature columns.
    transform : AugmentFunction, optional
        A user augmentation (:func:`stochdyn.problems.augmentation`) instead of the Gaussian one.
    """

    copies: int = 1
    noise: float = 0.0
    transform: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "copies", check_int("copies", self.copies, "Augmentation", ge=1))
        object.__setattr__(self, "noise", check_real("noise", self.noise, "Augmentation", ge=0.0))
        t = self.transform
        if isinstance(t, dict):
            t = dict(t)
            name = t.pop("type", None)
            if name not in AUGMENTATIONS:
                raise ValidationError(f"Unknown augmentation {name!r}; defined: {', '.join(sorted(AUGMENTATIONS)) or 'none'}.")
            t = AUGMENTATIONS[name](**t)
            object.__setattr__(self, "transform", t)
        if t is not None and not isinstance(t, AugmentFunction):
            raise ValidationError("The 'transform' parameter of Augmentation must come from @sd.problems.augmentation. "
                                  f"Got {t!r}.")
        if t is not None and self.noise != 0.0:
            raise ValidationError("Augmentation takes 'noise' (built-in Gaussian) or 'transform', not both.")



@dataclass(frozen=True, repr=False)
class Workers(_Config):
    r"""K simulated data-parallel workers with gradient compression, averaged like a parameter server.

    The batch is split into K consecutive shares of sizes :math:`b_k` (differing by at most one);
    worker k forms its own unbiased estimate :math:`g_k` from its share, sends :math:`C(g_k)`
    (with error feedback: :math:`C(g_k + e_k)`, :math:`e_k \leftarrow g_k + e_k - C(g_k+e_k)`,
    Seide et al. 2014; Karimireddy et al. 2019), and the server uses
    :math:`\sum_k (b_k/B)\,C(\cdot)`. Compression: ``quantize`` (QSGD with s = ``levels``,
    unbiased; Alistarh et al. 2017), ``sign`` (scaled sign :math:`\|v\|_1/d\cdot\mathrm{sign}\,v`),
    ``topk`` (the ``k`` largest coordinates; Stich et al. 2018). See
    :func:`stochdyn.theory.compression_error` for the variance each adds.

    Parameters
    ----------
    n_workers : int
        K >= 1 (every batch must hold at least K examples).
    compression : {"none", "quantize", "sign", "topk"}
    levels : int
        s >= 1, quantisation levels.
    k : int
        Coordinates kept by top-k (1 <= k <= dim).
    error_feedback : bool, optional
        Default: True for ``sign`` and ``topk``, False otherwise.
    """

    n_workers: int = 1
    compression: str = "none"
    levels: int = 1
    k: int = 1
    error_feedback: bool | None = None

    def __post_init__(self) -> None:
        o = "Workers"
        object.__setattr__(self, "n_workers", check_int("n_workers", self.n_workers, o, ge=1))
        check_choice("compression", self.compression, ("none", "quantize", "sign", "topk"), o)
        object.__setattr__(self, "levels", check_int("levels", self.levels, o, ge=1))
        object.__setattr__(self, "k", check_int("k", self.k, o, ge=1))
        if self.error_feedback is None:
            object.__setattr__(self, "error_feedback", self.compression in ("sign", "topk"))
        check_bool("error_feedback", self.error_feedback, o)
        if self.error_feedback and self.compression == "none":
            raise ValidationError("Workers: error_feedback needs a compression ('quantize', 'sign' or 'topk').")



# ----------------------------------------------------------------------------------------------------
# The integrators
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SGDFamily(Integrator):
    """Fields and machinery shared by SGD, Adam and SGLD (all keyword-only)."""

    family = "sgd"
    time_long_name = "step"
    time_units = "1"

    _: KW_ONLY
    batch_size: int | None = None
    sampling: Any = None
    lr_schedule: Any = None
    batch_schedule: Any = None
    clip_norm: float | None = None
    augmentation: Any = None
    workers: Any = None
    gradient_noise: Any = None
    record_extra: Any = None

    # -- validation ---------------------------------------------------------------------------
    def _validate_common(self) -> None:
        o = self.name
        object.__setattr__(self, "lr", check_real("lr", self.lr, o, gt=0.0))  # type: ignore[attr-defined]
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, o, ge=1, allow_none=True))
        for name, cls in (("sampling", Sampling), ("lr_schedule", LRSchedule), ("batch_schedule", BatchSchedule),
                          ("augmentation", Augmentation), ("workers", Workers)):
            object.__setattr__(self, name, _as_config(getattr(self, name), cls, name, o))
        object.__setattr__(self, "clip_norm", check_real("clip_norm", self.clip_norm, o, gt=0.0, allow_none=True))
        if self.gradient_noise is not None:
            arr = np.asarray(self.gradient_noise, dtype=np.float64)
            if arr.ndim == 2:
                arr = check_spd("gradient_noise", arr, o)
            else:
                arr = check_array("gradient_noise", arr, o, ndim=(0, 1), ge=0.0, min_size=1)
            object.__setattr__(self, "gradient_noise", as_float_tuple(arr))
        if self.batch_size is None:
            for name in ("sampling", "batch_schedule"):
                if getattr(self, name) is not None:
                    raise ValidationError(f"{o}: '{name}' needs a mini-batch; give batch_size= (None means the full batch).")
        if self.record_extra is not None:
            rec = (self.record_extra,) if isinstance(self.record_extra, str) else tuple(self.record_extra)
            for r in rec:
                check_choice("record_extra", r, tuple(EXTRA_VARIABLES), o)
            object.__setattr__(self, "record_extra", rec)

    def params(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if hasattr(v, "to_dict") else _plain(v)
        return out

    def __repr__(self) -> str:
        return _compact_repr(self)

    # -- what the driver asks ------------------------------------------------------------------
    def check_target(self, target: Any) -> None:
        o = self.name
        if isinstance(target, Landscape):
            for name in ("batch_size", "sampling", "batch_schedule", "augmentation", "workers"):
                if getattr(self, name) is not None:
                    raise ValidationError(
                        f"{o}: '{name}' needs a finite-sum problem (sd.problems...); on a landscape {o} uses the exact "
                        "gradient, plus gradient_noise= if given.")
            self._noise_factor(target.dim)
            return
        if not isinstance(target, Problem):
            raise ValidationError(f"{o} runs on a finite-sum problem (stochdyn.problems) or a landscape. "
                                  f"Got {type(target).__name__}.")
        N, d = target.n, target.dim
        self._noise_factor(d)
        sizes = self._batch_sizes(target)
        if max(sizes) > N:
            raise ValidationError(f"The 'batch_size' parameter of {o} must be <= the number of examples N={N}. "
                                  f"Got {max(sizes)}.")
        samp = self.sampling or Sampling()
        if samp.mode == "stratified":
            _, starts, values = target.strata()
            H = values.size
            if samp.stratum_std is not None and len(samp.stratum_std) != H:
                raise ValidationError(f"The 'stratum_std' parameter of Sampling must have one entry per stratum ({H}). "
                                      f"Got {len(samp.stratum_std)}.")
            if min(sizes) < H:
                raise ValidationError(f"Stratified sampling needs a batch of at least one example per stratum: "
                                      f"batch_size >= {H}. Got {min(sizes)}.")
        if samp.mode != "with_replacement":
            need = target.n * 4
            if need > MAX_PERM_BYTES:  # per replica; checked against R in init_state
                raise ValidationError(f"{o}: sampling mode {samp.mode!r} keeps a permutation of the N={N} examples per "
                                      "replica, which is too large; use with_replacement.")
        w = self.workers
        if w is not None:
            if min(sizes) < w.n_workers:
                raise ValidationError(f"{o}: every batch must hold at least one example per worker (n_workers="
                                      f"{w.n_workers}). Got a batch of {min(sizes)}.")
            if w.compression == "topk" and w.k > d:
                raise ValidationError(f"The 'k' parameter of Workers must be <= dim={d}. Got {w.k}.")
        a = self.augmentation
        if a is not None and a.transform is None and target.n_features < 1:
            raise ValidationError(f"{o}: Gaussian augmentation needs feature columns; {target.name} has none.")
        if a is not None and a.transform is not None:
            a.transform.check(target)  # a user augmentation runs on the problem's rows before any work

    def check_run(self, target: Any, n_steps: int) -> None:
        s = self.lr_schedule
        if s is not None and s.kind == "array" and len(s.values) < n_steps:
            raise ValidationError(f"The 'lr_schedule' of {self.name} has {len(s.values)} values; the run has {n_steps} "
                                  "steps, so it needs at least that many (one factor per step).")

    def variables(self, target: Any) -> list[Variable]:
        d = target.dim
        out = [Variable("x", ("dim",), (d,), "parameters", "1"),
               Variable("energy", (), (), "full-batch loss U(x)" if isinstance(target, Problem) else "U(x)", "1")]
        for name in self._recorded(target):
            long_name, dtype, _ = EXTRA_VARIABLES[name]
            out.append(Variable(name, (), (), long_name, "1", dtype))
        return out

    def divergence_hint(self, target: Any) -> str:
        return (f"lr={self.lr:g} is probably too large (on a quadratic, plain SGD is mean-square stable only below "  # type: ignore[attr-defined]
                "sd.theory.sgd_stability_limit(problem, batch_size); clip_norm= or a warm-up also help)")

    # -- helpers ---------------------------------------------------------------------------------
    def _recorded(self, target: Any) -> tuple[str, ...]:
        on_problem = isinstance(target, Problem)
        names = self.record_extra if self.record_extra is not None else tuple(EXTRA_VARIABLES)
        return tuple(n for n in EXTRA_VARIABLES if n in names and (on_problem or not EXTRA_VARIABLES[n][2]))

    def _batch_sizes(self, target: Problem) -> list[int]:
        B0 = target.n if self.batch_size is None else self.batch_size
        bs = self.batch_schedule
        if bs is None:
            return [B0]
        if bs.kind == "plan":
            return [B0, *bs.sizes]
        return [B0, self._max_batch(target)]

    def _max_batch(self, target: Problem) -> int:
        bs = self.batch_schedule
        if bs is None or bs.kind != "norm_test":
            return max(self._batch_sizes(target))
        return target.n if bs.max_batch is None else bs.max_batch

    def _noise_factor(self, d: int) -> tuple[int, np.ndarray]:
        """``(mode, L)`` with ``L L^T`` the gradient-noise covariance (diag mode: ``L[i, i]``)."""
        g = self.gradient_noise
        if g is None:
            return _k.NOISE_NONE, np.zeros((1, 1))
        arr = np.asarray(g, dtype=np.float64)
        if arr.ndim == 2:
            if arr.shape != (d, d):
                raise ValidationError(f"The 'gradient_noise' parameter of {self.name} must be ({d}, {d}) for dim={d}. "
                                      f"Got {arr.shape}.")
            return _k.NOISE_FULL, np.ascontiguousarray(np.linalg.cholesky(arr))
        if arr.ndim == 1 and arr.shape != (d,):
            raise ValidationError(f"The 'gradient_noise' parameter of {self.name} must be a scalar, ({d},) or ({d}, {d}). "
                                  f"Got shape {arr.shape}.")
        return _k.NOISE_DIAG, np.diag(np.sqrt(np.broadcast_to(arr, (d,))))

    def _optimizer(self) -> tuple[int, float, float, float, float, float | None]:
        """``(mode, momentum, beta1, beta2, eps, temperature)`` (overridden by each integrator; the
        temperature is None for SGD and Adam, so the kernels are not compiled with SGLD's noise)."""
        raise NotImplementedError

    def _config(self, target: Any) -> dict[str, Any]:
        """Everything the kernels read: ``icfg``/``fcfg`` numbers and, per practice, its data or None
        when the run does not use it (the kernels are specialised on which practices are present)."""
        d = target.dim
        opt, mu, b1, b2, eps, T = self._optimizer()
        noise_mode, L = self._noise_factor(d)
        sched = self.lr_schedule
        icfg = np.zeros(_k.N_ICFG, dtype=np.int64)
        fcfg = np.zeros(_k.N_FCFG)
        icfg[_k.I_OPT] = opt
        icfg[_k.I_NOISE] = noise_mode
        fcfg[[_k.F_LR, _k.F_MOMENTUM, _k.F_BETA1, _k.F_BETA2, _k.F_EPS]] = (self.lr, mu, b1, b2, eps)  # type: ignore[attr-defined]
        cfg: dict[str, Any] = {"icfg": icfg, "fcfg": fcfg, "sched": None, "temperature": T,
                               "clip": self.clip_norm, "noise_grad": None, "noise_upd": None}
        if sched is not None and (sched.kind != "constant" or sched.warmup_steps > 0):
            lr_kind, lr_par, lr_table = sched.kernel_args()
            icfg[_k.I_LR_KIND] = lr_kind
            fcfg[[_k.F_WARMUP, _k.F_TOTAL, _k.F_FINAL, _k.F_STEP_SIZE, _k.F_GAMMA]] = lr_par
            cfg["sched"] = lr_table
        if noise_mode != _k.NOISE_NONE:
            # plain SGD without clipping adds lr * L xi in the update (Euler-Maruyama's arithmetic); otherwise
            # the noise joins the gradient before clipping and the optimiser
            cfg["noise_upd" if opt == _k.OPT_SGD and self.clip_norm is None else "noise_grad"] = L
        if not isinstance(target, Problem):
            return cfg
        N = target.n
        samp = self.sampling or Sampling()
        mode = (_k.SAMPLE_FULL if self.batch_size is None else
                {"with_replacement": _k.SAMPLE_REPLACEMENT, "without_replacement": _k.SAMPLE_WITHOUT,
                 "epoch": _k.SAMPLE_EPOCH, "stratified": _k.SAMPLE_STRATIFIED}[samp.mode])
        icfg[_k.I_SAMPLING] = mode
        icfg[_k.I_B0] = N if self.batch_size is None else self.batch_size
        icfg[_k.I_BMAX] = self._max_batch(target)
        bs = self.batch_schedule
        cfg["plan"] = (None, None)
        cfg["norm_test"] = bs is not None and bs.kind == "norm_test"
        if bs is not None and bs.kind == "plan":
            cfg["plan"] = (np.asarray(bs.steps, dtype=np.int64), np.asarray(bs.sizes, dtype=np.int64))
        if cfg["norm_test"]:
            fcfg[_k.F_NORM_THETA] = bs.theta  # type: ignore[union-attr]
        cfg["order"] = None
        if mode == _k.SAMPLE_STRATIFIED:
            order, starts, _ = target.strata()
            sizes = np.diff(starts).astype(np.float64)
            cfg["alloc_w"] = sizes * (np.asarray(samp.stratum_std) if samp.allocation == "neyman" else 1.0)
            cfg["strata"], cfg["order"] = starts, order
        a = self.augmentation
        icfg[_k.I_COPIES] = 1 if a is None else a.copies
        cfg["aug"] = None
        if a is not None and (a.transform is not None or a.noise > 0.0 or a.copies > 1):
            if a.transform is None:
                cfg["aug"] = (gaussian_augment.get(), np.array([a.noise, float(target.n_features)]))
                icfg[_k.I_AUG_NORMALS] = target.n_features
            else:
                cfg["aug"] = (a.transform.compiled, np.asarray(a.transform.params or (0.0,), dtype=np.float64))
                m = target.rows.shape[1]
                icfg[_k.I_AUG_NORMALS] = m if a.transform.n_normals is None else min(a.transform.n_normals, m)
        w = self.workers or Workers()
        cfg["workers"] = w.n_workers > 1 or w.compression != "none"
        cfg["error_feedback"] = bool(w.error_feedback)
        icfg[_k.I_WORKERS] = w.n_workers
        icfg[_k.I_COMP] = {"none": _k.COMP_NONE, "quantize": _k.COMP_QUANTIZE, "sign": _k.COMP_SIGN,
                           "topk": _k.COMP_TOPK}[w.compression]
        icfg[_k.I_COMP_PARAM] = w.levels if w.compression == "quantize" else w.k
        rec = self._recorded(target)
        cfg["stats"] = True if cfg["norm_test"] or any(n in rec for n in ("grad_var", "noise_scale", "snr")) else None
        return cfg

    def init_state(self, target: Any, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        opt = self._optimizer()[0]
        arrays: dict[str, np.ndarray] = {"x": x0, "rng": rng, "diverged": np.full(R, -1, dtype=np.int64)}
        one = np.zeros((1, 1))
        arrays["momentum"] = np.zeros((R, d)) if opt != _k.OPT_SGD else one
        arrays["second_moment"] = np.zeros((R, d)) if opt == _k.OPT_ADAM else one
        scratch: dict[str, np.ndarray] = {"vec": np.zeros((R * _k.N_VEC, d))}  # row r * N_VEC + slot
        if not isinstance(target, Problem):
            scratch.update(grad=np.empty((R, d)), energy=np.empty(R), gnorm=np.full(R, np.nan))
            return State(arrays=arrays, scratch=scratch)
        cfg = self._config(target)
        icfg = cfg["icfg"]
        N, m = target.rows.shape
        if icfg[_k.I_SAMPLING] in (_k.SAMPLE_WITHOUT, _k.SAMPLE_EPOCH, _k.SAMPLE_STRATIFIED):
            if R * N * 4 > MAX_PERM_BYTES:
                raise ValidationError(
                    f"{self.name}: sampling mode {self.sampling.mode!r} keeps a permutation of the N={N} examples per "  # type: ignore[union-attr]
                    f"replica: {R} replicas would need {R * N * 4 / 2**30:.1f} GiB. Use fewer replicas or with_replacement.")
            base = cfg["order"] if cfg["order"] is not None else np.arange(N)
            arrays["perm"] = np.tile(base.astype(np.int32), (R, 1))  # a writable copy, also for R = 1
        else:
            arrays["perm"] = np.zeros((1, 1), dtype=np.int32)
        # position in the current epoch; N forces a shuffle before the first batch
        arrays["epoch_pos"] = np.full(R, N, dtype=np.int64)
        arrays["batch"] = np.full(R, icfg[_k.I_B0], dtype=np.int64)
        arrays["examples"] = np.zeros(R, dtype=np.int64)
        K = icfg[_k.I_WORKERS]
        arrays["error"] = np.zeros((R, K, d)) if cfg["error_feedback"] else np.zeros((1, 1, 1))
        if icfg[_k.I_SAMPLING] == _k.SAMPLE_STRATIFIED:
            scratch["alloc"] = np.full((R, cfg["strata"].size), -1, dtype=np.int64)
        if cfg["aug"] is not None:
            scratch["rowz"] = np.zeros((2 * R, m))  # rows 2r: augmented copy, 2r + 1: its normals
        if icfg[_k.I_COMP] != _k.COMP_NONE:
            scratch["topi"] = np.zeros((R, max(1, icfg[_k.I_COMP_PARAM])), dtype=np.int64)
        chunk = min(_DRAW_CHUNK, self._max_batch(target))
        scratch["batch_index"] = np.zeros((R, chunk), dtype=np.int64)
        scratch["batch_coef"] = np.zeros((R, chunk))
        return State(arrays=arrays, scratch=scratch)

    def record(self, target: Any, state: State, out: dict[str, np.ndarray], k: int) -> None:
        x = state.arrays["x"]
        out["x"][:, k] = x
        energy = np.asarray(target.value(np.nan_to_num(x)), dtype=np.float64)
        energy[state.arrays["diverged"] >= 0] = np.nan
        out["energy"][:, k] = energy
        for name in self._recorded(target):
            if name == "examples":  # a counter: the state's, not a per-step statistic
                out[name][:, k] = state.arrays["examples"]
            else:
                out[name][:, k] = 0 if EXTRA_VARIABLES[name][1] is np.int64 else np.nan

    def advance(self, target: Any, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        cfg = self._config(target)
        a, s = state.arrays, state.scratch
        opt = cfg["icfg"][_k.I_OPT]
        mom = a["momentum"] if opt != _k.OPT_SGD else None
        sqm = a["second_moment"] if opt == _k.OPT_ADAM else None
        common = (cfg["icfg"], cfg["fcfg"], cfg["sched"])
        update = (cfg["noise_grad"], cfg["noise_upd"], cfg["clip"], cfg["temperature"], mom, sqm)
        if not isinstance(target, Problem):
            args = (block, target.compiled, target.theta, *common, *update, a["x"], s["grad"], s["energy"], a["rng"],
                    a["diverged"], s["vec"], s["gnorm"], state.step, n_steps, record_every, k0, out["x"], out["energy"],
                    out.get("grad_norm"), out.get("lr"))
            nb = -(-a["x"].shape[0] // block)
            run_blocks(_k.sgd_landscape, args + state.until_args(nb), nb)
            return
        mode = cfg["icfg"][_k.I_SAMPLING]
        perm = a["perm"] if mode in (_k.SAMPLE_WITHOUT, _k.SAMPLE_EPOCH, _k.SAMPLE_STRATIFIED) else None
        strat = (cfg["strata"], cfg["alloc_w"], s["alloc"]) if mode == _k.SAMPLE_STRATIFIED else (None, None, None)
        aug = (None, None, None) if cfg["aug"] is None else (*cfg["aug"], s["rowz"])
        workers = None
        if cfg["workers"]:
            workers = s["topi"] if "topi" in s else np.zeros((1, 1), dtype=np.int64)
        other = cfg["aug"] is not None or cfg["workers"]  # these always take the per-sample path
        general = True if other or cfg["stats"] else None
        # draws in SIMD lanes (with replacement, one batch size for all replicas of a step); otherwise the
        # plain path draws per replica (each path is compiled only for the runs that use it)
        bmax = self._max_batch(target)
        lanes = None
        if not other and mode == _k.SAMPLE_REPLACEMENT and not cfg["norm_test"] and bmax <= _LANE_MAX_BATCH:
            lanes = bool(np.all(target.weights == target.weights[0]))  # True: one multiplier for every draw
        plain = None if other or lanes is not None else True
        L = 1 if lanes is None else _k.LANE_BLOCK
        work = target.batch_work(max(s["batch_index"].shape[1], 0 if lanes is None else bmax))  # batch scratch per thread

        def scratch() -> tuple:
            b = 1 if lanes is None else bmax
            return (np.empty(work), np.empty((L, b), dtype=np.int64), np.empty((L, b)),
                    np.empty((b + 3, L), dtype=np.uint64))

        run_blocks(_k.sgd_problem, (plain, general, lanes, target.compiled_batch, target.compiled, target.rows, target.weights, target.hyper, *common,
                        *cfg["plan"], a["batch"] if cfg["norm_test"] else None, perm,
                        a["epoch_pos"] if mode == _k.SAMPLE_EPOCH else None, *strat, *aug, workers,
                        a["error"] if cfg["error_feedback"] else None, *update, cfg["stats"],
                        a["x"], a["rng"], a["diverged"], a["examples"], s["vec"], s["batch_index"], s["batch_coef"],
                        state.step, n_steps, record_every, k0, out["x"], *(out.get(n) for n in _FLOAT_OUT),
                        *(out.get(n) for n in _INT_OUT), *state.until_args(a["x"].shape[0])), a["x"].shape[0], scratch)
        nrec = n_steps // record_every
        xs = out["x"][:, k0:k0 + nrec]
        out["energy"][:, k0:k0 + nrec] = target.value(xs)


@register_integrator
@dataclass(frozen=True, repr=False)
class SGD(_SGDFamily):
    r"""Mini-batch stochastic gradient descent, plain or with heavy-ball / Nesterov momentum.

    .. math::
        \theta_{t+1} = \theta_t - \eta_t\,\hat g_t \quad\text{(plain)},\qquad
        v_{t+1} = \mu v_t + \hat g_t,\;\; \theta_{t+1} = \theta_t - \eta_t v_{t+1} \quad\text{(heavy ball)},

    Nesterov: :math:`\theta_{t+1} = \theta_t - \eta_t(\hat g_t + \mu v_{t+1})` (Sutskever et al.
    2013, ICML; the form used by PyTorch). :math:`\hat g_t` is the mini-batch estimate of
    :math:`\nabla U` (U the weighted mean loss), after compression, additive gradient noise and
    clipping. With constant :math:`\eta` and gradient-noise covariance :math:`\Sigma`, plain SGD is
    the Euler–Maruyama discretisation (step :math:`\eta`) of overdamped Langevin dynamics with
    diffusion :math:`\eta\Sigma/2`; ``SGD(lr=eta, gradient_noise=2*T/eta)`` on a landscape is
    exactly ``EulerMaruyama(dt=eta, temperature=T)``.

    Parameters
    ----------
    lr : float
        Base learning rate :math:`\eta > 0` (multiplied by ``lr_schedule``).
    momentum : float
        :math:`\mu \in [0, 1)`.
    nesterov : bool
        Nesterov momentum (needs momentum > 0).
    batch_size : int, optional
        B (None: the full batch, in order, no sampling).
    sampling, lr_schedule, batch_schedule, augmentation, workers
        Practice configurations (:class:`Sampling`, :class:`LRSchedule`, :class:`BatchSchedule`,
        :class:`Augmentation`, :class:`Workers`).
    clip_norm : float, optional
        Clip the gradient estimate to this global norm: :math:`\hat g\min(1, C/\|\hat g\|)`.
    gradient_noise : float, array (dim,) or array (dim, dim), optional
        Covariance :math:`\Sigma` of additive Gaussian noise added to the gradient estimate
        (scalar: :math:`\sigma^2 I`).
    record_extra : sequence of str, optional
        Extra variables to record (default: all that apply; see :data:`EXTRA_VARIABLES`).
    """

    lr: float
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        self._validate_common()
        object.__setattr__(self, "momentum", check_real("momentum", self.momentum, "SGD", ge=0.0, lt=1.0))
        check_bool("nesterov", self.nesterov, "SGD")
        if self.nesterov and self.momentum == 0.0:
            raise ValidationError("SGD: nesterov=True needs momentum > 0.")

    def _optimizer(self):
        mode = _k.OPT_SGD if self.momentum == 0.0 else (_k.OPT_NESTEROV if self.nesterov else _k.OPT_HEAVY_BALL)
        return mode, self.momentum, 0.0, 0.0, 0.0, None


@register_integrator
@dataclass(frozen=True, repr=False)
class Adam(_SGDFamily):
    r"""Adam (Kingma & Ba 2015, ICLR) with bias correction, on mini-batch gradients.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\hat g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2)\hat g_t^2,\quad
        \theta_t = \theta_{t-1} - \eta_t\,\frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}.

    t is the global step (so chunking never changes the bias correction). In the noise-dominated
    regime the expected step grows like :math:`\sqrt B` (:func:`stochdyn.theory.adam_expected_step`).
    Other parameters as for :class:`SGD`.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self._validate_common()
        for name in ("beta1", "beta2"):
            object.__setattr__(self, name, check_real(name, getattr(self, name), "Adam", ge=0.0, lt=1.0))
        object.__setattr__(self, "eps", check_real("eps", self.eps, "Adam", gt=0.0))

    def _optimizer(self):
        return _k.OPT_ADAM, 0.0, self.beta1, self.beta2, self.eps, None


@register_integrator
@dataclass(frozen=True, repr=False)
class SGLD(_SGDFamily):
    r"""Stochastic-gradient Langevin dynamics (Welling & Teh 2011, ICML).

    .. math::
        \theta_{t+1} = \theta_t - \eta_t\,\hat g_t + \sqrt{2\eta_t T}\;\xi_t,\qquad \xi_t\sim\mathcal N(0, I),

    which targets :math:`\propto e^{-U/T}` as :math:`\eta\to0` (U the weighted mean loss; the
    Bayesian posterior of N examples is T = 1/N). The mini-batch noise adds
    :math:`\eta\,\mathrm{tr}\Sigma_B/(2d)` to the effective temperature at finite :math:`\eta`. With
    the exact gradient on a landscape, SGLD is exactly ``EulerMaruyama(dt=lr, temperature=T)``.
    Other parameters as for :class:`SGD`.
    """

    lr: float
    temperature: float = 1.0

    def __post_init__(self) -> None:
        self._validate_common()
        object.__setattr__(self, "temperature", check_real("temperature", self.temperature, "SGLD", ge=0.0))

    def _optimizer(self):
        return _k.OPT_SGD, 0.0, 0.0, 0.0, 0.0, self.temperature
