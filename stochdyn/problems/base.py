r"""The :class:`Problem` base class: a finite-sum objective :math:`U(\theta) = \sum_i w_i\,\ell_i(\theta)`.

Convention (used everywhere in stochdyn): the objective is a **weighted sum** with weights
:math:`w_i \ge 0`; the default weights are :math:`w_i = 1/N`, so by default U is the **mean** loss,
as in the SGD chapter. Quadrature problems (the Ritz energy) use quadrature weights instead. The
full-batch gradient is :math:`\nabla U = \sum_i w_i \nabla\ell_i`, the mini-batch estimators of
:mod:`stochdyn.integrators.sgd` are unbiased for it, and the gradient-noise covariance, the
effective temperature :math:`T = \eta\,\mathrm{tr}\,\Sigma_B/(2d)` and the Gibbs density
:math:`\propto e^{-U/T}` all refer to this U.

A problem has two faces that share one formula per loss:

* a compiled per-sample function (``numba.cfunc`` with the fixed signature
  :data:`~stochdyn.problems._compiled.SAMPLE_SIG`) that kernels call on one data row at a time;
* NumPy methods :meth:`Problem.value`, :meth:`Problem.grad` (full batch, vectorised over the
  leading axes of ``theta``) and :meth:`Problem.per_sample` (per-sample losses and gradients at
  one point, for theory).
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numba
import numpy as np

from .._repr import HTMLRepr
from .._validation import ValidationError, check_array, check_int
from ._compiled import FULL_BATCH_CHUNK, full_batch, per_sample

__all__ = ["Problem", "QuadraticForm", "Data", "PROBLEMS", "register_problem", "problem_from_dict"]

#: class name -> Problem subclass, for specs and for rebuilding a problem from Dataset attributes
PROBLEMS: dict[str, type["Problem"]] = {}

#: problems whose data hold at most this many numbers are stored inline in ``to_dict()``
INLINE_LIMIT = 4096

#: data_sha256 -> a live problem with those data: lets a run's attributes (which store large user data
#: only by hash) be turned back into the problem in the same Python session, e.g. by ``sd.analysis``
_LIVE: "weakref.WeakValueDictionary[str, Problem]" = weakref.WeakValueDictionary()


def register_problem(cls: type["Problem"]) -> type["Problem"]:
    """Class decorator: make a problem class available to specs under its class name."""
    PROBLEMS[cls.__name__] = cls
    return cls


@dataclass(frozen=True)
class Data:
    """A data set for a finite-sum problem, with where it came from.

    Attributes
    ----------
    X : array (N, p)
        Features.
    y : array (N,)
        Targets (regression) or integer class labels stored as floats (classification).
    labels : int array (N,) or None
        Class/group labels, used by stratified sampling.
    source : dict or None
        The generator and its parameters (JSON-able) when the data are synthetic, so that a run's
        attributes identify the data exactly (with the content hash).
    """

    X: np.ndarray
    y: np.ndarray
    labels: np.ndarray | None = None
    source: dict[str, Any] | None = field(default=None)


class Problem(HTMLRepr):  # HTMLRepr: a table of the parameters in notebooks
    r"""A finite-sum objective :math:`U(\theta)=\sum_i w_i \ell_i(\theta)` on :math:`\theta\in\mathbb R^{d}`.

    Subclasses set the class attributes ``_sample`` and ``_batch`` (the compiled per-sample and batch
    functions, see :mod:`stochdyn.problems._compiled`) and call
    ``Problem.__init__`` with the packed data rows, the dimension, the hyper-parameter vector the
    per-sample function reads, and their parameters.
    """

    _sample: ClassVar[Any] = None
    #: the compiled batch function (:data:`~stochdyn.problems._compiled.BATCH_SIG`)
    _batch: ClassVar[Any] = None
    #: keys of ``to_dict()`` holding the data arrays (constructor arguments), in order
    _data_keys: ClassVar[tuple[str, ...]] = ("X", "y")

    def __init__(self, rows: np.ndarray, dim: int, hyper: Any, params: dict[str, Any], *,
                 weights: Any = None, labels: Any = None, n_features: int | None = None,
                 source: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None):
        owner = type(self).__name__
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 1:
            raise ValidationError(f"{owner} needs at least one data row. Got data of shape {rows.shape}.")
        if not np.all(np.isfinite(rows)):
            raise ValidationError(f"The data of {owner} must be finite.")
        n = rows.shape[0]
        self._dim = check_int("dim", dim, owner, ge=1)
        if weights is None:
            w = np.full(n, 1.0 / n)
        else:
            w = check_array("weights", weights, owner, shape=(n,), ge=0.0)
            if not w.sum() > 0:
                raise ValidationError(f"The 'weights' parameter of {owner} must not be all zero.")
        if labels is None:
            lab = None
        else:
            lab = np.asarray(labels)
            if lab.shape != (n,) or not (np.issubdtype(lab.dtype, np.integer) or
                                         (np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.round(lab)))):
                raise ValidationError(
                    f"The 'labels' parameter of {owner} must be {n} integers (one per example). Got {_describe(labels)}."
                )
            lab = np.ascontiguousarray(lab, dtype=np.int64)
        hyper = np.ascontiguousarray(np.atleast_1d(np.asarray(hyper, dtype=np.float64)))
        if hyper.size == 0:  # keep a valid pointer
            hyper = np.zeros(1)
        for a in (rows, w, hyper) + ((lab,) if lab is not None else ()):
            a.setflags(write=False)
        self._rows, self._weights, self._labels, self._hyper = rows, w, lab, hyper
        self._n_features = rows.shape[1] if n_features is None else int(n_features)
        self._params = dict(params)
        self._source = source
        self._arrays = dict(arrays or {})
        h = hashlib.sha256()
        for a in (rows, w, lab if lab is not None else np.zeros(0, np.int64), hyper):
            h.update(np.ascontiguousarray(a).tobytes())
        self._hash = h.hexdigest()
        _LIVE[self._hash] = self

    # -- identity -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of parameters d."""
        return self._dim

    @property
    def n(self) -> int:
        """Number of examples (or quadrature points) N."""
        return self._rows.shape[0]

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def rows(self) -> np.ndarray:
        """Read-only ``(N, m)`` array of data rows as the per-sample function reads them."""
        return self._rows

    @property
    def weights(self) -> np.ndarray:
        """Read-only weights :math:`w_i` (default 1/N: U is the mean loss)."""
        return self._weights

    @property
    def labels(self) -> np.ndarray | None:
        """Integer labels (for stratified sampling), or None."""
        return self._labels

    @property
    def hyper(self) -> np.ndarray:
        """Read-only hyper-parameter vector the per-sample function reads."""
        return self._hyper

    @property
    def n_features(self) -> int:
        """Number of leading columns of a row that are features (perturbed by Gaussian augmentation)."""
        return self._n_features

    @property
    def compiled(self):
        """The compiled per-sample function (``numba.cfunc``) kernels call."""
        sample = type(self)._sample
        return sample.get() if hasattr(sample, "get") else sample

    @property
    def compiled_batch(self):
        """The compiled batch function (``numba.cfunc``, :data:`~stochdyn.problems._compiled.BATCH_SIG`):
        the per-sample arithmetic over a list of drawn examples, one call per chunk of a mini-batch."""
        batch = type(self)._batch
        return batch.get() if hasattr(batch, "get") else batch

    def batch_work(self, n: int) -> int:
        """Doubles of scratch (``work``) the batch function needs for a chunk of ``n`` examples
        (at least ``dim``, what the per-sample function needs)."""
        return self.dim

    @property
    def data_hash(self) -> str:
        """SHA-256 of the rows, weights, labels and hyper-parameters."""
        return self._hash

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready description.

        Synthetic data are described by their generator (``data = {generator = ..., ...}``);
        small user data are stored inline; large user data only by ``data_sha256``.
        """
        out: dict[str, Any] = {"type": self.name, "dim": self.dim, "n": self.n}
        for k, v in self._params.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        if self._source is not None:
            out["data"] = self._source
        elif self._arrays and sum(a.size for a in self._arrays.values()) <= INLINE_LIMIT:
            for k, a in self._arrays.items():
                out[k] = a.tolist()
        out["data_sha256"] = self._hash
        return out

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.to_dict().items() if k not in ("type", "data_sha256") + self._data_keys}
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def __eq__(self, other: object) -> bool:
        # isinstance narrows ``other`` for mypy; type(other) is type(self) decides
        return (isinstance(other, Problem) and type(other) is type(self) and other.data_hash == self.data_hash
                and other.dim == self.dim)

    def __hash__(self) -> int:
        return hash((self.name, self._hash))

    def __reduce__(self):
        return (problem_from_dict, (self.to_dict(),))

    # -- evaluation ---------------------------------------------------------------------------
    def _as_points(self, theta: Any) -> tuple[np.ndarray, tuple[int, ...]]:
        arr = np.asarray(theta, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValidationError(
                f"{self.name} has dim={self.dim}: 'theta' must have shape (..., {self.dim}). Got shape {arr.shape}."
            )
        return np.ascontiguousarray(arr.reshape(-1, self.dim)), arr.shape[:-1]

    def value_and_grad(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        """Full-batch U and grad U at points of shape ``(..., dim)``: shapes ``(...)`` and ``(..., dim)``."""
        pts, lead = self._as_points(theta)
        values = np.empty(pts.shape[0])
        grads = np.empty_like(pts)
        blocks = max(1, min(pts.shape[0], 4 * numba.get_num_threads()))
        scratch = np.empty((blocks, self.batch_work(FULL_BATCH_CHUNK)))
        full_batch(self.compiled_batch, self._rows, self._weights, self._hyper, pts, values, grads,
                   np.arange(self.n, dtype=np.int64), scratch)
        return values.reshape(lead), grads.reshape(lead + (self.dim,))

    def value(self, theta: Any) -> np.ndarray:
        """Full-batch U at points of shape ``(..., dim)``."""
        return self.value_and_grad(theta)[0]

    def grad(self, theta: Any) -> np.ndarray:
        """Full-batch grad U at points of shape ``(..., dim)``."""
        return self.value_and_grad(theta)[1]

    def per_sample(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        r"""Unweighted per-sample losses :math:`\ell_i(\theta)` (N,) and gradients :math:`\nabla\ell_i` (N, d) at one point."""
        th = check_array("theta", theta, self.name, shape=(self.dim,))
        losses = np.empty(self.n)
        grads = np.empty((self.n, self.dim))
        per_sample(self.compiled, self._rows, self._hyper, th, losses, grads)
        return losses, grads

    def strata(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(order, starts, values)``: example indices sorted by label (stable), the start of each
        stratum in that order (``len = H + 1``) and the label of each stratum."""
        if self._labels is None:
            raise ValidationError(f"{self.name} has no labels: stratified sampling needs labels=... (one integer per example).")
        order = np.argsort(self._labels, kind="stable")
        values, counts = np.unique(self._labels, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return order.astype(np.int64), starts, values


@numba.njit(cache=True)
def quadratic_values(H: np.ndarray, b: np.ndarray, c: float, pts: np.ndarray, values: np.ndarray,
                     grads: np.ndarray) -> None:
    r"""For every row :math:`\theta` of ``pts``: ``grads`` :math:`g = H\theta - b` and ``values``
    :math:`U = \tfrac12\,\theta^\top(g - b) + c = \tfrac12\theta^\top H\theta - b^\top\theta + c`.

    Each sum runs in index order, one point at a time, so a point's U and gradient are the same
    bits whatever other points are evaluated with it and on every IEEE machine. (A BLAS product
    ``pts @ H`` is not: its order of additions depends on the number of rows and on the CPU, which
    made the energy recorded for a replica depend on which replicas were recorded with it.)
    """
    d = pts.shape[1]
    for p in range(pts.shape[0]):
        v = 0.0
        for i in range(d):
            g = 0.0
            for j in range(d):
                g += H[i, j] * pts[p, j]
            g -= b[i]
            grads[p, i] = g
            v += pts[p, i] * (g - b[i])
        values[p] = 0.5 * v + c


class QuadraticForm:
    r"""Mixin for problems whose loss is quadratic: :math:`U(\theta) = \tfrac12\theta^\top H\theta - b^\top\theta + c`.

    Per-sample gradients are affine, :math:`\nabla\ell_i = A_i\theta - b_i`, which is what the exact
    SGD moment theory (:func:`stochdyn.theory.sgd_moments` and :func:`stochdyn.theory.sgd_stationary_covariance`) needs. Full-batch values use
    the precomputed ``H, b, c`` (cost O(d^2) per point instead of O(N d)).
    """

    hessian: np.ndarray
    linear: np.ndarray
    constant: float

    def _set_quadratic(self, H: np.ndarray, b: np.ndarray, c: float) -> None:
        self.hessian = 0.5 * (H + H.T)
        self.linear = np.ascontiguousarray(b, dtype=np.float64)
        self.constant = float(c)
        for a in (self.hessian, self.linear):
            a.setflags(write=False)

    def value_and_grad(self, theta: Any) -> tuple[np.ndarray, np.ndarray]:
        """Full-batch U and grad U at points of shape ``(..., dim)`` from ``H, b, c``
        (:func:`quadratic_values`: each point's numbers do not depend on the other points)."""
        pts, lead = self._as_points(theta)  # type: ignore[attr-defined]
        values = np.empty(pts.shape[0])
        grads = np.empty_like(pts)
        quadratic_values(self.hessian, self.linear, self.constant, pts, values, grads)
        return values.reshape(lead), grads.reshape(lead + (pts.shape[1],))

    def minimizer(self) -> np.ndarray:
        """The minimiser :math:`\\theta^* = H^{-1} b`."""
        return np.linalg.solve(self.hessian, self.linear)

    def affine_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`(A_i, b_i)` with :math:`\nabla\ell_i(\theta) = A_i\theta - b_i`: shapes (N, d, d) and (N, d)."""
        raise NotImplementedError


def _describe(v: Any) -> str:
    a = np.asarray(v)
    return f"shape {a.shape}, dtype {a.dtype}"


# -- rebuilding from descriptions (specs, Dataset attributes) --------------------------------------
def problem_from_dict(spec: dict[str, Any]) -> Problem:
    """Rebuild a problem from :meth:`Problem.to_dict` output or a spec ``[problem]`` table.

    The data come from a generator table (``data = {generator = "gaussian_regression", n = ..., seed = ...}``),
    from ``.npy`` files (keys ending in ``_file``, e.g. ``X_file``, ``y_file``), or inline arrays.
    ``dim``, ``n`` and ``data_sha256`` are checked against the rebuilt problem when present.
    """
    from .data import make_data

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in PROBLEMS:
        raise ValidationError(f"Unknown problem type {kind!r}; known types: {', '.join(sorted(PROBLEMS))}.")
    cls = PROBLEMS[kind]
    dim = spec.pop("dim", None)
    n = spec.pop("n", None)
    sha = spec.pop("data_sha256", None)
    for key in [k for k in spec if k.endswith("_file")]:
        path = Path(str(spec.pop(key)))
        try:
            spec[key[: -len("_file")]] = np.load(path)
        except Exception as exc:
            raise ValidationError(f"Cannot read {key} = {str(path)!r} as .npy: {exc}") from None
    try:
        if isinstance(spec.get("data"), dict):
            data = make_data(spec.pop("data"))
            prob = cls.from_data(data, **spec)  # type: ignore[attr-defined]
        else:
            if getattr(cls, "_data_keys", ()) and not all(k in spec for k in cls._data_keys):
                live = _LIVE.get(sha) if sha is not None else None
                if type(live) is cls and (dim is None or live.dim == dim):
                    return live  # the same data, built earlier in this session
                files = ", ".join(k + "_file" for k in cls._data_keys)
                raise ValidationError(
                    f"{kind}: the run recorded its data only by their SHA-256 ({str(sha)[:12]}...), not the values, "
                    f"and no {kind} with these data exists in this Python session. Pass the problem itself "
                    f"(e.g. sd.analysis.variance_temperature(ds, problem)), or build it from generated data "
                    f"({kind}.from_data(sd.problems.gaussian_regression(...)) or {kind}(data.X, data.y)), which "
                    f"records the generator. In a spec file: give {files} (.npy files) or a "
                    f"data = {{generator = ...}} table."
                )
            if "dim" in _init_args(cls):
                spec["dim"] = dim
            prob = cls(**spec)
    except TypeError as exc:
        raise ValidationError(f"Bad parameters for problem {kind}: {exc}") from None
    if dim is not None and prob.dim != dim:
        raise ValidationError(f"{kind}: the rebuilt problem has dim={prob.dim}, the description says {dim}.")
    if n is not None and prob.n != n:
        raise ValidationError(f"{kind}: the rebuilt problem has n={prob.n}, the description says {n}.")
    if sha is not None and prob.data_hash != sha:
        raise ValidationError(f"{kind}: the rebuilt data do not match data_sha256 {sha[:12]}... (got {prob.data_hash[:12]}...).")
    return prob


def _init_args(cls: type) -> tuple[str, ...]:
    import inspect

    # the class's own constructor (mypy warns that an instance's __init__ may be a subclass's: only read here)
    return tuple(inspect.signature(cls.__init__).parameters)  # type: ignore[misc]
