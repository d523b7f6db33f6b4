"""Compiled pieces shared by every finite-sum problem: the per-sample function type and loops over it.

A problem's per-sample loss is compiled once as a ``numba.cfunc`` with ONE fixed signature,
:data:`SAMPLE_SIG`::

    double sample(double *theta, intp d, double *row, intp m, double *hyper, intp nh,
                  double *grad, double scale, double *work)

It returns :math:`\\ell_i(\\theta)` for the data row ``row`` (``m`` numbers: features, then targets)
and ADDS :math:`\\text{scale}\\cdot\\nabla_\\theta \\ell_i` into ``grad`` (``d`` numbers); ``work``
is ``d`` doubles of scratch the function may overwrite. Accumulating lets the SGD kernels add each
drawn example's weighted gradient straight into the mini-batch sum in one pass (measured ~20%
faster than writing a per-sample gradient and adding it afterwards); per-sample gradients are
obtained with a zeroed ``grad`` and ``scale = 1``. Hyper-parameters
of the loss (ridge strength, number of classes, hidden units, ...) travel in ``hyper``, so every SGD
kernel compiles once for all problems and caches on disk, as the landscape block functions do
(see ``stochdyn/_numba_utils.py``). Augmentations have their own fixed signature,
:data:`AUGMENT_SIG`::

    void augment(double *row, intp m, double *z, double *out, double *params, intp np)

which writes an augmented copy of ``row`` into ``out`` using the standard normals ``z`` drawn by
the kernel from the replica's own stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types

from .._numba_utils import row_ptr

__all__ = ["SAMPLE_SIG", "AUGMENT_SIG", "full_batch", "per_sample"]

_P = types.CPointer(types.float64)

#: ``double sample(double *theta, intp d, double *row, intp m, double *hyper, intp nh, double *grad,
#: double scale, double *work)``: returns the loss and adds ``scale * grad loss`` into ``grad``
SAMPLE_SIG = types.float64(_P, types.intp, _P, types.intp, _P, types.intp, _P, types.float64, _P)

#: ``void augment(double *row, intp m, double *z, double *out, double *params, intp np)``
AUGMENT_SIG = types.void(_P, types.intp, _P, _P, _P, types.intp)


@njit(parallel=True, cache=True)
def full_batch(fn, data, weights, hyper, thetas, values, grads, scratch):
    """``values[p] = sum_i w_i l_i(thetas[p])`` and ``grads[p] = sum_i w_i grad l_i(thetas[p])``.

    Parallel over points ``p``; ``scratch`` is ``(P, d)``. Used for the full-batch loss of problems
    without a closed form (the quadratic ones use :class:`~stochdyn.problems.base.QuadraticForm`).
    """
    P, d = thetas.shape
    N, m = data.shape
    for p in prange(P):
        acc = 0.0
        for k in range(d):
            grads[p, k] = 0.0
        for i in range(N):
            w = weights[i]
            acc += w * fn(row_ptr(thetas, p), d, row_ptr(data, i), m, row_ptr(hyper, 0), hyper.shape[0],
                          row_ptr(grads, p), w, row_ptr(scratch, p))
        values[p] = acc


@njit(cache=True)
def per_sample(fn, data, hyper, theta, losses, grads):
    """Per-sample losses ``losses[i] = l_i(theta)`` and gradients ``grads[i] = grad l_i(theta)`` (unweighted)."""
    N, m = data.shape
    d = theta.shape[0]
    th = np.ascontiguousarray(theta)
    work = np.empty(d)
    for i in range(N):
        for k in range(d):
            grads[i, k] = 0.0
        losses[i] = fn(row_ptr(th, 0), d, row_ptr(data, i), m, row_ptr(hyper, 0), hyper.shape[0], row_ptr(grads, i),
                       1.0, row_ptr(work, 0))


@njit(cache=True)
def augment_rows(aug, data, idx, params, z, out):
    """``out[j] = augment(data[idx[j]], z[j])``: the augmentation the kernels apply, for tests and theory."""
    m = data.shape[1]
    for j in range(idx.shape[0]):
        aug(row_ptr(data, idx[j]), m, row_ptr(z, j), row_ptr(out, j), row_ptr(params, 0), params.shape[0])
