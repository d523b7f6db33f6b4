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

__all__ = ["SAMPLE_SIG", "AUGMENT_SIG", "BATCH_SIG", "dot4", "row_dots", "add_rows", "full_batch", "per_sample"]

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


_VEC = ir.VectorType(ir.DoubleType(), 4)
_I32 = ir.IntType(32)


def _splat(builder, x):
    """``<x, x, x, x>``."""
    v = builder.insert_element(ir.Constant(_VEC, None), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(_VEC, None), ir.Constant(ir.VectorType(_I32, 4), [0] * 4))


def _vload(builder, base, k, mask=None):
    """``<base[k], ..., base[k+3]>`` (lanes off in ``mask`` are not read: ``llvm.masked.load``)."""
    ptr = builder.bitcast(builder.gep(base, [k]), _VEC.as_pointer())
    if mask is None:
        return builder.load(ptr, align=8)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC.as_pointer(), _I32, mask.type, _VEC]), "llvm.masked.load.v4f64.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, 8), mask, ir.Constant(_VEC, None)])


def _vstore(builder, value, base, k, mask=None):
    ptr = builder.bitcast(builder.gep(base, [k]), _VEC.as_pointer())
    if mask is None:
        builder.store(value, ptr, align=8)
        return
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [_VEC, _VEC.as_pointer(), _I32, mask.type]),
        "llvm.masked.store.v4f64.p0")
    builder.call(fn, [value, ptr, ir.Constant(_I32, 8), mask])


def _dot4_ir(builder, pa, pb, n):
    """The arithmetic of :func:`dot4` on two double pointers (a loop over quads: any ``n``)."""
    acc = cgutils.alloca_once_value(builder, ir.Constant(_VEC, [0.0] * 4))
    nq = builder.ashr(n, ir.Constant(n.type, 2))
    with cgutils.for_range(builder, nq) as loop:
        k = builder.shl(loop.index, ir.Constant(n.type, 2))
        builder.store(builder.fadd(builder.load(acc), builder.fmul(_vload(builder, pa, k), _vload(builder, pb, k))), acc)
    v = builder.load(acc)
    lane = [builder.extract_element(v, ir.Constant(_I32, i)) for i in range(4)]
    s0 = cgutils.alloca_once_value(builder, lane[0])
    with cgutils.for_range_slice(builder, builder.shl(nq, ir.Constant(n.type, 2)), n, ir.Constant(n.type, 1)) as (k, _):
        t = builder.fmul(builder.load(builder.gep(pa, [k])), builder.load(builder.gep(pb, [k])))
        builder.store(builder.fadd(builder.load(s0), t), s0)
    return builder.fadd(builder.fadd(builder.load(s0), lane[1]), builder.fadd(lane[2], lane[3]))


def _c_array(arr, ndim=1, dtype=types.float64):
    return isinstance(arr, types.Array) and arr.ndim == ndim and arr.layout == "C" and arr.dtype == dtype


@intrinsic
def dot4(typingctx, a, b, n):
    r"""``sum_k a[k] b[k]`` (k < n) with four interleaved partial sums, as one ``<4 x double>`` chain.

    Lane l accumulates the products with k = l mod 4 (k < 4 floor(n/4)), starting from +0.0, the
    remaining products go into lane 0 in order, and the result is :math:`(s_0 + s_1) + (s_2 + s_3)`:
    a fixed order of IEEE additions and multiplications (never fused or reassociated), so results
    are the same on every x86-64 or other IEEE machine, with AVX or without. Written as LLVM vector
    code because the auto-vectoriser does not combine the scalar form. ``a`` and ``b``:
    C-contiguous 1-D arrays.
    """
    if not (_c_array(a) and _c_array(b)):
        return None
    sig = types.float64(a, b, types.intp)

    def codegen(context, builder, signature, args):
        pa = context.make_array(signature.args[0])(context, builder, args[0]).data
        pb = context.make_array(signature.args[1])(context, builder, args[1]).data
        return _dot4_ir(builder, pa, pb, args[2])

    return sig, codegen


#: straight-line :func:`row_dots` code (theta's quads held in registers) for d below 4 times this
_DOTS_UNROLLED = 9


def _quad_sums(builder, row, tp, thv, Q, d):
    """The four partial sums of dot4 for one example: lanes of quads, then the tail products into lane 0
    (added as ``<t, -0, -0, -0>``: -0.0 leaves every other lane exactly as it is)."""
    c = lambda v: ir.Constant(d.type, v)  # noqa: E731
    acc = ir.Constant(_VEC, [0.0] * 4)
    for q in range(Q):
        acc = builder.fadd(acc, builder.fmul(_vload(builder, row, c(4 * q)), thv[q]))
    accp = cgutils.alloca_once_value(builder, acc)
    with cgutils.for_range_slice(builder, c(4 * Q), d, c(1)) as (k, _):
        t = builder.fmul(builder.load(builder.gep(row, [k])), builder.load(builder.gep(tp, [k])))
        tv = builder.insert_element(ir.Constant(_VEC, [-0.0] * 4), t, ir.Constant(_I32, 0))
        builder.store(builder.fadd(builder.load(accp), tv), accp)
    return builder.load(accp)


def _shuffle(builder, a, b, lanes):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, 4), lanes))


@intrinsic
def row_dots(typingctx, th, data, idx, n, out):
    r"""``out[j] = dot4(data[idx[j], :d], th, d)`` for ``j < n``, ``d = len(th)``: exactly :func:`dot4`.

    The dot products of a mini-batch's examples are independent, so they run back to back with the
    parameters kept in registers (straight-line code for each number of quads below 9, selected once
    per call), four examples at a time: their partial-sum vectors are combined by a 4 x 4 transpose,
    :math:`(s_0+s_1)+(s_2+s_3)` for all four in two vector additions, and stored as one vector.
    ``th`` and ``out``: C-contiguous float64; ``data``: C-contiguous 2-D float64; ``idx``:
    C-contiguous int64.
    """
    if not (_c_array(th) and _c_array(data, 2) and _c_array(idx, 1, types.int64) and _c_array(out)):
        return None
    sig = types.void(th, data, idx, types.intp, out)

    def codegen(context, builder, signature, args):
        tarr, darr, iarr, _, oarr = (context.make_array(signature.args[i])(context, builder, args[i]) if i != 3 else None
                                     for i in range(5))
        n = args[3]
        tp, dp, ip, op = tarr.data, darr.data, iarr.data, oarr.data
        d = cgutils.unpack_tuple(builder, tarr.shape)[0]
        m = cgutils.unpack_tuple(builder, darr.shape)[1]
        c = lambda v: ir.Constant(d.type, v)  # noqa: E731
        fn = builder.function

        def row_of(j):
            return builder.gep(dp, [builder.mul(builder.load(builder.gep(ip, [j])), m)])

        done = fn.append_basic_block("rd.done")
        generic = fn.append_basic_block("rd.generic")
        nq = builder.ashr(d, c(2))
        switch = builder.switch(nq, generic)
        for Q in range(_DOTS_UNROLLED):
            block = fn.append_basic_block(f"rd.q{Q}")
            switch.add_case(c(Q), block)
            builder.position_at_end(block)
            thv = [_vload(builder, tp, c(4 * q)) for q in range(Q)]
            with cgutils.for_range(builder, builder.ashr(n, c(2))) as loop:  # four examples at a time
                j = builder.shl(loop.index, c(2))
                a, b, e, f = (_quad_sums(builder, row_of(builder.add(j, c(i))), tp, thv, Q, d) for i in range(4))
                u = builder.fadd(_shuffle(builder, a, b, [0, 4, 2, 6]), _shuffle(builder, a, b, [1, 5, 3, 7]))
                v = builder.fadd(_shuffle(builder, e, f, [0, 4, 2, 6]), _shuffle(builder, e, f, [1, 5, 3, 7]))
                _vstore(builder, builder.fadd(_shuffle(builder, u, v, [0, 1, 4, 5]), _shuffle(builder, u, v, [2, 3, 6, 7])),
                        op, j)
            with cgutils.for_range_slice(builder, builder.shl(builder.ashr(n, c(2)), c(2)), n, c(1)) as (j, _):
                lane = [builder.extract_element(_quad_sums(builder, row_of(j), tp, thv, Q, d), ir.Constant(_I32, i))
                        for i in range(4)]
                value = builder.fadd(builder.fadd(lane[0], lane[1]), builder.fadd(lane[2], lane[3]))
                builder.store(value, builder.gep(op, [j]))
            builder.branch(done)
        builder.position_at_end(generic)
        with cgutils.for_range(builder, n) as loop:
            builder.store(_dot4_ir(builder, row_of(loop.index), tp, d), builder.gep(op, [loop.index]))
        builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


#: <4 x double> accumulators per pass of :func:`add_rows` (32 features)
_ROWS_PASS = 8


@intrinsic
def add_rows(typingctx, g, data, idx, f, n, coef, l2, th):
    r"""``g[k] += f[j] * data[idx[j], k]``, then ``g[k] += (coef[j] * l2) * th[k]`` if ``l2 != 0``,
    for ``j = 0 .. n-1`` in order and ``k < len(g)``.

    Each ``g[k]`` receives exactly the sequence of IEEE operations of the per-sample loop (the data
    term then the ridge term of example j, example after example), but the loop runs over examples
    with up to 32 features of ``g`` held in ``<4 x double>`` registers (the last vector masked), so
    there is no store and reload of ``g`` per example. ``g``, ``f``, ``coef``, ``th``: C-contiguous
    float64 (``th`` as long as ``g``); ``data`` 2-D C-contiguous float64; ``idx`` int64.
    """
    if not (_c_array(g) and _c_array(data, 2) and _c_array(idx, 1, types.int64) and _c_array(f) and _c_array(coef)
            and _c_array(th)):
        return None
    sig = types.void(g, data, idx, f, types.intp, coef, types.float64, th)

    def codegen(context, builder, signature, args):
        arrs = [context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 1, 2, 3, 5, 7)]
        gp, dp, ip, fp, cp, tp = (a.data for a in arrs)
        n, l2 = args[4], args[6]
        d = cgutils.unpack_tuple(builder, arrs[0].shape)[0]
        m = cgutils.unpack_tuple(builder, arrs[1].shape)[1]
        intp = d.type
        c = lambda v: ir.Constant(intp, v)  # noqa: E731
        ridge = builder.fcmp_unordered("!=", l2, ir.Constant(ir.DoubleType(), 0.0))
        fn = builder.function
        k0p = cgutils.alloca_once_value(builder, c(0))
        head, body, done = (fn.append_basic_block(f"ar.{s}") for s in ("head", "body", "done"))
        builder.branch(head)
        builder.position_at_end(head)
        k0 = builder.load(k0p)
        builder.cbranch(builder.icmp_signed("<", k0, d), body, done)
        builder.position_at_end(body)
        left = builder.sub(d, k0)
        nv = builder.ashr(builder.add(left, c(3)), c(2))
        nv = builder.select(builder.icmp_signed(">", nv, c(_ROWS_PASS)), c(_ROWS_PASS), nv)
        last = builder.sub(left, builder.shl(builder.sub(nv, c(1)), c(2)))  # lanes used in the last vector
        vi = ir.VectorType(intp, 4)
        lastv = builder.shuffle_vector(builder.insert_element(ir.Constant(vi, None), last, ir.Constant(_I32, 0)),
                                       ir.Constant(vi, None), ir.Constant(ir.VectorType(_I32, 4), [0] * 4))
        mask = builder.icmp_signed("<", ir.Constant(vi, [0, 1, 2, 3]), lastv)
        after = fn.append_basic_block("ar.next")
        switch = builder.switch(nv, after)
        for V in range(1, _ROWS_PASS + 1):
            block = fn.append_basic_block(f"ar.v{V}")
            switch.add_case(c(V), block)
            builder.position_at_end(block)
            gk, tk = builder.gep(gp, [k0]), builder.gep(tp, [k0])
            masks = [None] * (V - 1) + [mask]
            acc0 = [_vload(builder, gk, c(4 * i), masks[i]) for i in range(V)]
            thv = [_vload(builder, tk, c(4 * i), masks[i]) for i in range(V)]
            ends = []
            with builder.if_else(ridge) as branches:
                for with_ridge, branch in zip((True, False), branches):
                    with branch:
                        pre = builder.block
                        loop = fn.append_basic_block(f"ar.v{V}.loop")
                        end = fn.append_basic_block(f"ar.v{V}.end")
                        builder.cbranch(builder.icmp_signed(">", n, c(0)), loop, end)
                        builder.position_at_end(loop)
                        j = builder.phi(intp)
                        accs = [builder.phi(_VEC) for _ in range(V)]
                        row = builder.gep(dp, [builder.add(builder.mul(builder.load(builder.gep(ip, [j])), m), k0)])
                        fj = _splat(builder, builder.load(builder.gep(fp, [j])))
                        rj = _splat(builder, builder.fmul(builder.load(builder.gep(cp, [j])), l2)) if with_ridge else None
                        new = []
                        for i in range(V):
                            a = builder.fadd(accs[i], builder.fmul(fj, _vload(builder, row, c(4 * i), masks[i])))
                            new.append(builder.fadd(a, builder.fmul(rj, thv[i])) if with_ridge else a)
                        jn = builder.add(j, c(1))
                        j.add_incoming(c(0), pre)
                        j.add_incoming(jn, loop)
                        for i in range(V):
                            accs[i].add_incoming(acc0[i], pre)
                            accs[i].add_incoming(new[i], loop)
                        builder.cbranch(builder.icmp_signed("<", jn, n), loop, end)
                        builder.position_at_end(end)
                        res = []
                        for i in range(V):
                            p = builder.phi(_VEC)
                            p.add_incoming(acc0[i], pre)
                            p.add_incoming(new[i], loop)
                            res.append(p)
                        ends.append((builder.block, res))
            merged = [builder.phi(_VEC) for _ in range(V)]  # (phi nodes first in their block)
            for i in range(V):
                for blk, res in ends:
                    merged[i].add_incoming(res[i], blk)
            for i in range(V):
                _vstore(builder, merged[i], gk, c(4 * i), masks[i])
            builder.branch(after)
        builder.position_at_end(after)
        builder.store(builder.add(k0, c(4 * _ROWS_PASS)), k0p)
        builder.branch(head)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


#: examples per call of the batch function in :func:`full_batch`
FULL_BATCH_CHUNK = 64


@njit(parallel=True, cache=True)
def full_batch(fn, data, weights, hyper, thetas, values, grads, order, scratch):
    """``values[p] = sum_i w_i l_i(thetas[p])`` and ``grads[p] = sum_i w_i grad l_i(thetas[p])``.

    ``fn`` is the problem's batch function (:data:`BATCH_SIG`), called on chunks of
    :data:`FULL_BATCH_CHUNK` examples in order (``order`` is ``arange(N)``, the weights are the
    multipliers): the arithmetic of the per-sample sum, example after example, at the batch
    function's speed. Parallel over blocks of points, one per row of ``scratch`` (the batch
    function's work). Used for the full-batch loss of problems without a closed form (the quadratic
    ones use :class:`~stochdyn.problems.base.QuadraticForm`).
    """
    P, d = thetas.shape
    N, m = data.shape
    nb = scratch.shape[0]
    for b in prange(nb):
        for p in range(b * P // nb, (b + 1) * P // nb):
            acc = 0.0
            for k in range(d):
                grads[p, k] = 0.0
            for i0 in range(0, N, FULL_BATCH_CHUNK):
                n = min(FULL_BATCH_CHUNK, N - i0)
                acc = fn(row_ptr(thetas, p), d, row_ptr(data, 0), N, m, row_ptr(order, i0), row_ptr(weights, i0), n,
                         row_ptr(hyper, 0), hyper.shape[0], row_ptr(grads, p), row_ptr(scratch, b), acc)
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
