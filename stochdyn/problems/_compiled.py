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

Every problem also has a *batch* function, :data:`BATCH_SIG`::

    double batch(double *theta, intp d, double *data, intp N, intp m, int64 *idx, double *coef,
                 intp n, double *hyper, intp nh, double *grad, double *work, double acc)

which returns ``acc + sum_j coef[j] * l_{idx[j]}`` and adds ``coef[j] * grad l_{idx[j]}`` into
``grad``, sample after sample in the order of ``idx`` — exactly the arithmetic of ``n`` calls of the
per-sample function with ``scale = coef[j]``, so results do not depend on which one a kernel uses.
One call per chunk of a mini-batch removes the indirect call per example and lets the compiler
keep the parameters in cache and overlap the examples' independent dot products; dot products
use :func:`dot4`, whose fixed order of partial sums is vectorised by construction.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._numba_utils import row_ptr

__all__ = ["SAMPLE_SIG", "AUGMENT_SIG", "BATCH_SIG", "dot4", "full_batch", "per_sample"]

_P = types.CPointer(types.float64)

#: ``double sample(double *theta, intp d, double *row, intp m, double *hyper, intp nh, double *grad,
#: double scale, double *work)``: returns the loss and adds ``scale * grad loss`` into ``grad``
SAMPLE_SIG = types.float64(_P, types.intp, _P, types.intp, _P, types.intp, _P, types.float64, _P)

#: ``void augment(double *row, intp m, double *z, double *out, double *params, intp np)``
AUGMENT_SIG = types.void(_P, types.intp, _P, _P, _P, types.intp)

#: ``double batch(double *theta, intp d, double *data, intp N, intp m, int64 *idx, double *coef, intp n,
#: double *hyper, intp nh, double *grad, double *work, double acc)``: returns ``acc + sum_j coef_j l_{idx_j}``
#: and adds ``sum_j coef_j grad l_{idx_j}`` into ``grad``, in the order of ``idx``
BATCH_SIG = types.float64(_P, types.intp, _P, types.intp, types.intp, types.CPointer(types.int64), _P, types.intp,
                          _P, types.intp, _P, _P, types.float64)


@intrinsic
def dot4(typingctx, a, b, n):
    r"""``sum_k a[k] b[k]`` (k < n) with four interleaved partial sums, as one ``<4 x double>`` chain.

    Lane l accumulates the products with k = l mod 4 (k < 4 floor(n/4)), the remaining products go
    into lane 0 in order, and the result is :math:`(s_0 + s_1) + (s_2 + s_3)`: a fixed order of
    IEEE additions and multiplications (never fused or reassociated), so results are the same on
    every x86-64 or other IEEE machine, with AVX or without. Written as LLVM vector code because the
    auto-vectoriser does not combine the scalar form. ``a`` and ``b``: C-contiguous 1-D arrays.
    """
    for arr in (a, b):
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and arr.dtype == types.float64):
            return None
    sig = types.float64(a, b, types.intp)

    def codegen(context, builder, signature, args):
        pa = context.make_array(signature.args[0])(context, builder, args[0]).data
        pb = context.make_array(signature.args[1])(context, builder, args[1]).data
        n = args[2]
        vty = ir.VectorType(ir.DoubleType(), 4)
        vp = vty.as_pointer()
        acc = cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * 4))
        nq = builder.ashr(n, ir.Constant(n.type, 2))
        with cgutils.for_range(builder, nq) as loop:
            k = builder.shl(loop.index, ir.Constant(n.type, 2))
            va = builder.load(builder.bitcast(builder.gep(pa, [k]), vp), align=8)
            vb = builder.load(builder.bitcast(builder.gep(pb, [k]), vp), align=8)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(va, vb)), acc)
        v = builder.load(acc)
        lane = [builder.extract_element(v, ir.Constant(ir.IntType(32), i)) for i in range(4)]
        s0 = cgutils.alloca_once_value(builder, lane[0])
        with cgutils.for_range_slice(builder, builder.shl(nq, ir.Constant(n.type, 2)), n, ir.Constant(n.type, 1)) as (k, _):
            t = builder.fmul(builder.load(builder.gep(pa, [k])), builder.load(builder.gep(pb, [k])))
            builder.store(builder.fadd(builder.load(s0), t), s0)
        return builder.fadd(builder.fadd(builder.load(s0), lane[1]), builder.fadd(lane[2], lane[3]))

    return sig, codegen


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
