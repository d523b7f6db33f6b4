r"""Built-in finite-sum problems: least squares, logistic/softmax regression, a one-hidden-layer
network, and a quadrature-weighted Ritz energy of a 1-D boundary-value problem.

Each is one per-sample function ``_<name>_sample(theta, row, grad, scale, work, hyper) -> loss``
(Numba; adds :math:`\text{scale}\cdot\nabla\ell_i` into ``grad``, may use ``work``), a cfunc with the fixed signature
:data:`~stochdyn.problems._compiled.SAMPLE_SIG` wrapping it, and a Python class that validates
its arguments and packs the rows. :math:`U(\theta) = \sum_i w_i \ell_i(\theta)` with
:math:`w_i = 1/N` by default (mean loss; see :mod:`stochdyn.problems.base`).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
from numba import carray, njit

from .._validation import ValidationError, check_array, check_choice, check_int, check_real
from .._numba_utils import LazyCFunc
from ._compiled import AUGMENT_SIG, BATCH_SIG, SAMPLE_SIG, add_rows, dot4, row_dots
from ._mathfn import exp_, log1p_, tanh_
from .base import Data, Problem, QuadraticForm, register_problem
from .data import provenance

__all__ = ["LeastSquares", "LogisticRegression", "OneHiddenLayer", "RitzEnergy1D", "gaussian_augment"]


def _lazy_sample(pyfunc):
    """Per-sample cfunc compiled (or loaded from the disk cache) on first use, not at import."""
    return LazyCFunc(pyfunc, sig=SAMPLE_SIG)


def _lazy_augment(pyfunc):
    return LazyCFunc(pyfunc, sig=AUGMENT_SIG)


def _lazy_batch(pyfunc):
    """Batch cfunc (:data:`~stochdyn.problems._compiled.BATCH_SIG`) compiled on first use."""
    return LazyCFunc(pyfunc, sig=BATCH_SIG)


@njit(inline="always", cache=True)
def _batch_views(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp):
    """Arrays over the raw pointers of a batch call: theta, data, idx, coef, hyper, grad, work (d doubles)."""
    return (carray(tp, (d,)), carray(dp, (N, m)), carray(ip, (n,)), carray(cp, (n,)), carray(hp, (nh,)),
            carray(gp, (d,)), carray(wp, (d,)))


@njit(inline="always", cache=True)
def _ridge_value(th, l2):
    """``l2/2 |theta|^2`` summed as :func:`_ridge` sums it (0 when l2 is 0)."""
    if l2 == 0.0:
        return 0.0
    acc = 0.0
    for k in range(th.shape[0]):
        acc += th[k] * th[k]
    return 0.5 * l2 * acc


def _from_data(cls, data: Data, **kwargs: Any):
    args = inspect.signature(cls.__init__).parameters
    if "labels" in args and data.labels is not None:
        kwargs.setdefault("labels", data.labels)
    return cls(data.X, data.y, source=data.source, **kwargs)


def _features_targets(owner: str, X: Any, y: Any, source: dict[str, Any] | None
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Validated ``X``, ``y`` and their provenance: ``source`` if given, else the generator that made
    these very values in this session (so ``Cls(data.X, data.y)`` and ``Cls.from_data(data)`` agree)."""
    X = check_array("X", X, owner, ndim=2, min_size=1)
    y = check_array("y", y, owner, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValidationError(f"The 'y' parameter of {owner} must have one entry per row of X ({X.shape[0]}). Got {y.shape[0]}.")
    return X, y, source if source is not None else provenance(X, y)


# ---------------------------------------------------------------------------------------------
# Least squares: l_i = 1/2 (x_i.theta - y_i)^2 + l2/2 |theta|^2;  row = [x_i, y_i]; hyper = [l2]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _dot(a, b, n):
    """sum_k a[k] b[k] with four interleaved partial sums (shorter dependency chains; a fixed order; see dot4)."""
    return dot4(a, b, n)


@njit(inline="always", cache=True)
def _ridge(th, g, scale, l2):
    """Add ``scale * l2 * theta`` to g and return ``l2/2 |theta|^2``."""
    acc = 0.0
    for k in range(th.shape[0]):
        g[k] += scale * l2 * th[k]
        acc += th[k] * th[k]
    return 0.5 * l2 * acc


@njit(inline="always", cache=True)
def _least_squares_sample(th, row, g, scale, work, hy):
    d = th.shape[0]
    res = _dot(row, th, d) - row[d]
    f = scale * res
    for k in range(d):
        g[k] += f * row[k]
    loss = 0.5 * res * res
    if hy[0] != 0.0:
        loss += _ridge(th, g, scale, hy[0])
    return loss


@_lazy_sample
def _least_squares_cfunc(tp, d, rp, m, hp, nh, gp, scale, wp):
    return _least_squares_sample(carray(tp, (d,)), carray(rp, (m,)), carray(gp, (d,)), scale, carray(wp, (d,)),
                                 carray(hp, (nh,)))


@_lazy_batch
def _least_squares_batch(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp, acc):
    """The per-sample arithmetic of :func:`_least_squares_sample` over ``n`` examples, in two passes:
    the residuals (:func:`row_dots`), then the gradient (:func:`add_rows`, ridge included). Each
    number sees the same IEEE operations in the same order. ``work``: n doubles."""
    th, data, idx, coef, hy, g = carray(tp, (d,)), carray(dp, (N, m)), carray(ip, (n,)), carray(cp, (n,)), \
        carray(hp, (nh,)), carray(gp, (d,))
    f = carray(wp, (n,))
    row_dots(th, data, idx, n, f)
    l2 = hy[0]
    ridge = _ridge_value(th, l2)
    for j in range(n):
        res = f[j] - data[idx[j], d]
        loss = 0.5 * res * res
        if l2 != 0.0:
            loss += ridge
        acc += coef[j] * loss
        f[j] = coef[j] * res
    add_rows(g, data, idx, f, n, coef, l2, th)
    return acc


@register_problem
class LeastSquares(QuadraticForm, Problem):
    r"""Linear regression: :math:`\ell_i(\theta) = \tfrac12 (x_i^\top\theta - y_i)^2 + \tfrac{\lambda}{2}\|\theta\|^2`.

    :math:`U = \sum_i w_i\ell_i` is quadratic with Hessian :math:`H = \sum_i w_i x_i x_i^\top + \lambda\bar w I`
    (:math:`\bar w=\sum_i w_i`); per-sample gradients are affine,
    :math:`\nabla\ell_i = (x_ix_i^\top+\lambda I)\theta - y_ix_i`, and their covariance depends on θ
    (multiplicative noise), see :func:`stochdyn.theory.sgd_moments` and :func:`stochdyn.theory.sgd_stationary_covariance`.

    Parameters
    ----------
    X : array (N, d)
        Design matrix.
    y : array (N,)
        Targets.
    weights : array (N,), optional
        :math:`w_i \ge 0` (default 1/N: the mean loss).
    labels : int array (N,), optional
        Group labels for stratified sampling.
    l2 : float
        Ridge strength :math:`\lambda \ge 0` (default 0).
    source : dict, optional
        Provenance of synthetic data (set by :meth:`from_data`).
    """

    _sample = _least_squares_cfunc
    _batch = _least_squares_batch

    def __init__(self, X: Any, y: Any, weights: Any = None, labels: Any = None, l2: float = 0.0,
                 source: dict[str, Any] | None = None):
        owner = "LeastSquares"
        X, y, source = _features_targets(owner, X, y, source)
        l2 = check_real("l2", l2, owner, ge=0.0)
        N, d = X.shape
        super().__init__(np.column_stack([X, y]), d, [l2], {"l2": l2}, weights=weights, labels=labels,
                         n_features=d, source=source, arrays=_arrays(X=X, y=y, weights=weights, labels=labels))
        w = self.weights
        self._set_quadratic((X.T * w) @ X + l2 * w.sum() * np.eye(d), (X.T * w) @ y, 0.5 * float(w @ (y * y)))

    def batch_work(self, n: int) -> int:
        return max(self.dim, n)

    from_data = classmethod(_from_data)

    def affine_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        X, y = self.rows[:, :-1], self.rows[:, -1]
        A = X[:, :, None] * X[:, None, :] + self.hyper[0] * np.eye(self.dim)
        return A, y[:, None] * X


# ---------------------------------------------------------------------------------------------
# Logistic (binary) / softmax (multiclass) regression; row = [x_i, label]; hyper = [K, l2]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True, error_model="numpy")
def _binary_terms(z, lab, scale):
    r"""Loss :math:`\log(1+e^z) - yz` (as :math:`\max(z,0) + \log(1+e^{-|z|}) - yz`) and gradient multiplier
    ``scale * (sigmoid(z) - y)`` of one example, with the branch-free functions of :mod:`._mathfn`."""
    e = exp_(-abs(z))
    loss = max(z, 0.0) + log1p_(e) - lab * z
    sig = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
    return loss, scale * (sig - lab)


@njit(cache=True, error_model="numpy")
def _binary_batch_terms(Z, data, idx, coef, n, p, loss):
    """:func:`_binary_terms` of ``n`` examples: ``loss[j]`` and ``Z[j]`` (score in, multiplier out). The
    labels are gathered first (into ``loss``), so that the second loop, without gathers or reductions,
    runs in SIMD lanes."""
    for j in range(n):
        loss[j] = data[idx[j], p]
    for j in range(n):
        loss[j], Z[j] = _binary_terms(Z[j], loss[j], coef[j])


@njit(inline="always", cache=True)
def _logistic_sample(th, row, g, scale, work, hy):
    K = int(hy[0])
    p = row.shape[0] - 1
    lab = int(row[p])
    if K == 2:  # binary: l = log(1 + e^z) - y z, z = theta.x
        loss, f = _binary_terms(_dot(th, row, p), row[p], scale)
        for j in range(p):
            g[j] += f * row[j]
    else:  # softmax: l = logsumexp(z) - z_y, z_k = theta_k.x kept in work[k]
        zmax = -np.inf
        for k in range(K):
            work[k] = _dot(th[k * p:], row, p)
            zmax = max(zmax, work[k])
        s = 0.0
        for k in range(K):
            s += math.exp(work[k] - zmax)
        lse = zmax + math.log(s)
        loss = lse - work[lab]
        for k in range(K):
            f = scale * (math.exp(work[k] - lse) - (1.0 if k == lab else 0.0))
            for j in range(p):
                g[k * p + j] += f * row[j]
    if hy[1] != 0.0:
        loss += _ridge(th, g, scale, hy[1])
    return loss


@_lazy_sample
def _logistic_cfunc(tp, d, rp, m, hp, nh, gp, scale, wp):
    return _logistic_sample(carray(tp, (d,)), carray(rp, (m,)), carray(gp, (d,)), scale, carray(wp, (d,)),
                            carray(hp, (nh,)))


@_lazy_batch
def _logistic_batch(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp, acc):
    """:func:`_logistic_sample` over ``n`` examples: the scores of every class (:func:`row_dots`), the
    per-example losses and multipliers, then the gradient class by class (:func:`add_rows`); the
    same operations in the same order for each number. ``work``: ``n * K`` doubles (n for K = 2)."""
    th, data, idx, coef, hy, g = carray(tp, (d,)), carray(dp, (N, m)), carray(ip, (n,)), carray(cp, (n,)), \
        carray(hp, (nh,)), carray(gp, (d,))
    K = int(hy[0])
    l2 = hy[1]
    p = m - 1
    nk = 1 if K == 2 else K  # score vectors: theta . x (binary), theta_k . x (softmax)
    Z = carray(wp, (nk + 1, n))  # scores, then the multipliers of the gradient rows; row nk: losses
    for k in range(nk):
        row_dots(th[k * p:(k + 1) * p], data, idx, n, Z[k])
    ridge = _ridge_value(th, l2)
    if K == 2:
        _binary_batch_terms(Z[0], data, idx, coef, n, p, Z[1])
    for j in range(n):
        lab = int(data[idx[j], p])
        if K == 2:
            loss = Z[1, j]
        else:
            zmax = -np.inf
            for k in range(K):
                zmax = max(zmax, Z[k, j])
            s = 0.0
            for k in range(K):
                s += math.exp(Z[k, j] - zmax)
            lse = zmax + math.log(s)
            loss = lse - Z[lab, j]
            for k in range(K):
                Z[k, j] = coef[j] * (math.exp(Z[k, j] - lse) - (1.0 if k == lab else 0.0))
        if l2 != 0.0:
            loss += ridge
        acc += coef[j] * loss
    for k in range(nk):
        add_rows(g[k * p:(k + 1) * p], data, idx, Z[k], n, coef, l2, th[k * p:(k + 1) * p])
    return acc


@register_problem
class LogisticRegression(Problem):
    r"""Logistic regression (two classes) or softmax regression (K > 2 classes).

    Two classes (labels 0/1): :math:`\ell_i = \log(1+e^{z_i}) - y_i z_i`, :math:`z_i=\theta^\top x_i`, d = p.
    K classes: :math:`\theta` is the row-major flattening of a (K, p) matrix,
    :math:`\ell_i = \log\sum_k e^{\theta_k^\top x_i} - \theta_{y_i}^\top x_i`, d = K p. Both plus
    :math:`\tfrac\lambda2\|\theta\|^2`. Include a column of ones in X for an intercept. The labels
    double as strata for stratified sampling.

    Parameters
    ----------
    X : array (N, p)
    y : array (N,) of integers in 0..K-1
    n_classes : int, optional
        K (default: max label + 1, at least 2).
    weights : array (N,), optional
    l2 : float
    source : dict, optional
    """

    _sample = _logistic_cfunc
    _batch = _logistic_batch

    def __init__(self, X: Any, y: Any, n_classes: int | None = None, weights: Any = None, l2: float = 0.0,
                 source: dict[str, Any] | None = None):
        owner = "LogisticRegression"
        X, y, source = _features_targets(owner, X, y, source)
        if np.any(y != np.round(y)) or np.any(y < 0):
            raise ValidationError(f"The 'y' parameter of {owner} must hold class labels 0, 1, ..., K-1.")
        K = max(2, int(y.max()) + 1) if n_classes is None else check_int("n_classes", n_classes, owner, ge=2)
        if y.max() >= K:
            raise ValidationError(f"The 'y' parameter of {owner} has label {int(y.max())} >= n_classes={K}.")
        l2 = check_real("l2", l2, owner, ge=0.0)
        p = X.shape[1]
        d = p if K == 2 else K * p
        super().__init__(np.column_stack([X, y]), d, [K, l2], {"n_classes": K, "l2": l2}, weights=weights,
                         labels=y.astype(np.int64), n_features=p, source=source,
                         arrays=_arrays(X=X, y=y, weights=weights))

    from_data = classmethod(_from_data)

    def batch_work(self, n: int) -> int:
        K = int(self.hyper[0])
        return max(self.dim, n * (2 if K == 2 else K + 1))


# ---------------------------------------------------------------------------------------------
# One hidden layer, tanh units, squared loss; theta = [W (H x p), c (H), v (H), b]; hyper = [H, l2]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _one_hidden_layer_sample(th, row, g, scale, work, hy):
    H = int(hy[0])
    p = row.shape[0] - 1
    oc = H * p
    ov = oc + H
    ob = ov + H
    f = th[ob]
    for h in range(H):  # forward; activations kept in work[h]
        a = tanh_(th[oc + h] + _dot(th[h * p:], row, p))
        work[h] = a
        f += th[ov + h] * a
    e = f - row[p]
    se = scale * e
    g[ob] += se
    for h in range(H):  # backward
        a = work[h]
        delta = se * th[ov + h] * (1.0 - a * a)
        g[ov + h] += se * a
        g[oc + h] += delta
        for j in range(p):
            g[h * p + j] += delta * row[j]
    loss = 0.5 * e * e
    if hy[1] != 0.0:
        loss += _ridge(th, g, scale, hy[1])
    return loss


@_lazy_sample
def _one_hidden_layer_cfunc(tp, d, rp, m, hp, nh, gp, scale, wp):
    return _one_hidden_layer_sample(carray(tp, (d,)), carray(rp, (m,)), carray(gp, (d,)), scale, carray(wp, (d,)),
                                    carray(hp, (nh,)))


@njit(cache=True, error_model="numpy")
def _hidden_layer_terms(th, data, idx, coef, n, H, p, W):
    """Forward and backward pass of ``n`` examples, unit after unit with the examples in the inner loops
    (SIMD lanes): rows h of ``W`` hold the dot products in and the activations out, rows H + h the
    deltas, row 2H scale * error, row 2H + 1 the loss — each number by the operations of
    :func:`_one_hidden_layer_sample`, in its order."""
    oc = H * p
    ov = oc + H
    ob = ov + H
    E = W[2 * H]
    L = W[2 * H + 1]
    for j in range(n):
        E[j] = th[ob]
    for h in range(H):
        for j in range(n):
            a = tanh_(th[oc + h] + W[h, j])
            W[h, j] = a
            E[j] += th[ov + h] * a
    for j in range(n):
        e = E[j] - data[idx[j], p]
        L[j] = 0.5 * e * e
        E[j] = coef[j] * e
    for h in range(H):
        for j in range(n):
            a = W[h, j]
            W[H + h, j] = E[j] * th[ov + h] * (1.0 - a * a)


@_lazy_batch
def _one_hidden_layer_batch(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp, acc):
    """:func:`_one_hidden_layer_sample` over ``n`` examples: the hidden pre-activations unit by unit
    (:func:`row_dots`), the forward and backward pass per example, then the gradient: the
    first-layer weights unit by unit (:func:`add_rows`) and the other parameters example after
    example — each number sees the same operations in the same order as in the per-sample form.
    ``work``: ``n * (2H + 2)`` doubles."""
    th, data, idx, coef, hy, g = carray(tp, (d,)), carray(dp, (N, m)), carray(ip, (n,)), carray(cp, (n,)), \
        carray(hp, (nh,)), carray(gp, (d,))
    H = int(hy[0])
    l2 = hy[1]
    p = m - 1
    oc = H * p
    ov = oc + H
    ob = ov + H
    # rows h < H: pre-activation dot products, then the activations; H + h: delta of unit h; 2H: scale * error;
    # 2H + 1: the loss of example j
    W = carray(wp, (2 * H + 2, n))
    for h in range(H):
        row_dots(th[h * p:(h + 1) * p], data, idx, n, W[h])
    _hidden_layer_terms(th, data, idx, coef, n, H, p, W)
    ridge = _ridge_value(th, l2)
    for j in range(n):
        loss = W[2 * H + 1, j]
        if l2 != 0.0:
            loss += ridge
        acc += coef[j] * loss
    for h in range(H):
        add_rows(g[h * p:(h + 1) * p], data, idx, W[H + h], n, coef, l2, th[h * p:(h + 1) * p])
    for h in range(H):
        gv = g[ov + h]
        gc = g[oc + h]
        for j in range(n):
            gv += W[2 * H, j] * W[h, j]
            gc += W[H + h, j]
            if l2 != 0.0:
                gv += coef[j] * l2 * th[ov + h]
                gc += coef[j] * l2 * th[oc + h]
        g[ov + h] = gv
        g[oc + h] = gc
    gb = g[ob]
    for j in range(n):
        gb += W[2 * H, j]
        if l2 != 0.0:
            gb += coef[j] * l2 * th[ob]
    g[ob] = gb
    return acc


@register_problem
class OneHiddenLayer(Problem):
    r"""Regression with one hidden layer of tanh units, parameters flattened into one vector.

    :math:`f(x) = \sum_{h=1}^{H} v_h \tanh(W_h^\top x + c_h) + b`,
    :math:`\ell_i = \tfrac12 (f(x_i) - y_i)^2 + \tfrac\lambda2\|\theta\|^2`, with
    :math:`\theta = (W_{11..Hp}, c_{1..H}, v_{1..H}, b)` (W row-major), so d = H(p + 2) + 1.
    Non-convex: a landscape with many equivalent minima (hidden-unit permutations and sign flips).
    """

    _sample = _one_hidden_layer_cfunc
    _batch = _one_hidden_layer_batch

    def __init__(self, X: Any, y: Any, hidden: int = 8, weights: Any = None, labels: Any = None, l2: float = 0.0,
                 source: dict[str, Any] | None = None):
        owner = "OneHiddenLayer"
        X, y, source = _features_targets(owner, X, y, source)
        H = check_int("hidden", hidden, owner, ge=1)
        l2 = check_real("l2", l2, owner, ge=0.0)
        p = X.shape[1]
        super().__init__(np.column_stack([X, y]), H * (p + 2) + 1, [H, l2], {"hidden": H, "l2": l2},
                         weights=weights, labels=labels, n_features=p, source=source,
                         arrays=_arrays(X=X, y=y, weights=weights, labels=labels))

    from_data = classmethod(_from_data)

    def batch_work(self, n: int) -> int:
        return max(self.dim, n * (2 * int(self.hyper[0]) + 2))

    def init_params(self, n_replicas: int, seed: int = 0, scale: float | None = None) -> np.ndarray:
        """Initial parameters ``(n_replicas, dim)``: Gaussian with std ``1/sqrt(fan_in)`` per layer (LeCun)."""
        H = int(self.hyper[0])
        p = self.n_features
        rng = np.random.default_rng(check_int("seed", seed, "OneHiddenLayer.init_params", ge=0))
        th = np.zeros((n_replicas, self.dim))
        th[:, : H * p] = rng.normal(size=(n_replicas, H * p)) * (scale or 1.0 / math.sqrt(p))
        th[:, H * p + H: H * p + 2 * H] = rng.normal(size=(n_replicas, H)) * (scale or 1.0 / math.sqrt(H))
        return th


# ---------------------------------------------------------------------------------------------
# Ritz energy of -u'' = f on (0, 1), u(0) = u(1) = 0, sine basis; row = [x_i, f(x_i)]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _ritz_sample(th, row, g, scale, work, hy):
    d = th.shape[0]
    x = row[0]
    f = row[1]
    du = 0.0
    u = 0.0
    for k in range(d):  # work[k] = phi_k'(x); the sines are recomputed in the second loop
        w = (k + 1) * math.pi
        c = w * math.cos(w * x)
        work[k] = c
        u += th[k] * math.sin(w * x)
        du += th[k] * c
    for k in range(d):
        g[k] += scale * (du * work[k] - f * math.sin((k + 1) * math.pi * x))
    return 0.5 * du * du - f * u


@_lazy_sample
def _ritz_cfunc(tp, d, rp, m, hp, nh, gp, scale, wp):
    return _ritz_sample(carray(tp, (d,)), carray(rp, (m,)), carray(gp, (d,)), scale, carray(wp, (d,)),
                        carray(hp, (nh,)))


@_lazy_batch
def _ritz_batch(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp, acc):
    th, data, idx, coef, hy, g, work = _batch_views(tp, d, dp, N, m, ip, cp, n, hp, nh, gp, wp)
    for j in range(n):
        acc += coef[j] * _ritz_sample(th, data[idx[j]], g, coef[j], work, hy)
    return acc


_FORCINGS = {
    "sine": lambda x: np.pi**2 * np.sin(np.pi * x),  # u = sin(pi x)
    "constant": lambda x: np.ones_like(x),  # u = x (1 - x) / 2
}


@register_problem
class RitzEnergy1D(QuadraticForm, Problem):
    r"""Ritz (Deep-Ritz / variational) energy of :math:`-u'' = f` on (0, 1), :math:`u(0)=u(1)=0`.

    :math:`u_\theta(x) = \sum_{k=1}^{d}\theta_k\sin(k\pi x)` and
    :math:`E[u] = \int_0^1 \big(\tfrac12 u'^2 - f u\big)\,dx \approx \sum_i w_i\,\ell_i(\theta)`,
    :math:`\ell_i = \tfrac12 u_\theta'(x_i)^2 - f(x_i)u_\theta(x_i)`, at quadrature points
    :math:`x_i` with weights :math:`w_i` (summing to 1): the quadrature points play the role of
    the data, and mini-batches of them give unbiased estimates of the energy's gradient (the
    VPINN setting of the SGD chapter). Quadratic: :math:`H_{kl} = \sum_i w_i\,\phi_k'(x_i)\phi_l'(x_i)`
    (:math:`\approx \tfrac12 (k\pi)^2\delta_{kl}`), so the exact SGD theory applies.

    Parameters
    ----------
    n_basis : int
        Number of sine modes d.
    n_quad : int
        Number of quadrature points N.
    forcing : {"sine", "constant"} or array (n_quad,)
        f at the quadrature points: "sine" is :math:`\pi^2\sin\pi x` (solution :math:`\sin\pi x`,
        :math:`\theta^*\approx e_1`), "constant" is f = 1 (solution :math:`x(1-x)/2`).
    quadrature : {"gauss", "midpoint"}
        Gauss–Legendre points and weights, or the midpoint rule (equal weights 1/N).
    """

    _sample = _ritz_cfunc
    _batch = _ritz_batch
    _data_keys = ()

    def __init__(self, n_basis: int = 8, n_quad: int = 64, forcing: Any = "sine", quadrature: str = "gauss"):
        owner = "RitzEnergy1D"
        d = check_int("n_basis", n_basis, owner, ge=1)
        N = check_int("n_quad", n_quad, owner, ge=1)
        check_choice("quadrature", quadrature, ("gauss", "midpoint"), owner)
        if quadrature == "gauss":
            t, w = np.polynomial.legendre.leggauss(N)
            x, w = 0.5 * (t + 1.0), 0.5 * w
        else:
            x, w = (np.arange(N) + 0.5) / N, np.full(N, 1.0 / N)
        if isinstance(forcing, str):
            check_choice("forcing", forcing, tuple(_FORCINGS), owner)
            f = _FORCINGS[forcing](x)
            fparam: Any = forcing
        else:
            f = check_array("forcing", forcing, owner, shape=(N,))
            fparam = f
        super().__init__(np.column_stack([x, f]), d, [], {"n_basis": d, "n_quad": N, "forcing": fparam,
                                                           "quadrature": quadrature}, weights=w, n_features=1)
        A, b = self.affine_gradients()
        self._set_quadratic(np.einsum("i,ikl->kl", w, A), w @ b, 0.0)

    def affine_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        x, f = self.rows[:, 0], self.rows[:, 1]
        k = np.arange(1, self.dim + 1) * np.pi
        dphi = k * np.cos(np.outer(x, k))
        return dphi[:, :, None] * dphi[:, None, :], f[:, None] * np.sin(np.outer(x, k))

    def solution(self, x: Any) -> np.ndarray:
        """The Galerkin solution :math:`u_{\\theta^*}(x)` of the quadrature energy."""
        k = np.arange(1, self.dim + 1) * np.pi
        return np.sin(np.multiply.outer(np.asarray(x, float), k)) @ self.minimizer()


# ---------------------------------------------------------------------------------------------
# The built-in augmentation: Gaussian noise on the feature columns; params = [sigma, n_features]
# ---------------------------------------------------------------------------------------------
@_lazy_augment
def gaussian_augment(rp, m, zp, op, pp, npar):
    """out = row + sigma * z on the first ``n_features`` columns (the targets are left unchanged)."""
    row = carray(rp, (m,))
    z = carray(zp, (m,))
    out = carray(op, (m,))
    par = carray(pp, (npar,))
    sigma = par[0]
    nf = int(par[1])
    for j in range(m):
        out[j] = row[j] + sigma * z[j] if j < nf else row[j]


def _arrays(**kw: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in kw.items() if v is not None}
