r"""Kernels of the SGD family (SGD, heavy-ball and Nesterov momentum, Adam, SGLD).

Layout (chosen for compile time, see docs/design.md "SGD compile time"): each kernel is a thin
parallel driver — ``prange`` over replicas (problems) or blocks of replicas (landscapes) calling one
ordinary, non-parallel ``@njit`` function that runs all steps of its replica or block. The parfor
machinery then only sees a one-line body, and the per-replica function is compiled once.

Practices are **specialised on argument types**: every practice's data is an argument that is
``None`` when a run does not use it (``sched``, ``plan_steps``, ``norm_batch``, ``perm``, ``epoch_pos``,
``strata``, ``aug_fn``, ``workers``, ``ef``, ``noise_grad``, ``noise_upd``, ``clip``, ``temperature``,
``mom``, ``sqm``, ``stats``, and every output but ``out_x``), and the two estimator paths have flags
that are None when a run never takes them (``plain``, ``general``). Before type inference Numba
prunes a branch ``if arg is not None:`` whose ``arg`` is None (checked here: only in that direction —
``if arg is None:`` is *not* pruned when ``arg`` is an array), so code that a practice needs sits
under ``if practice is not None:`` and is never typed, lowered or optimised for a run that does not
use it; each configuration is its own cached specialisation.
Numeric settings (learning rate, betas, mode codes inside a practice) travel in two small vectors
(``icfg``, ``fcfg``) so changing a value never recompiles.

* :func:`sgd_problem` runs on a finite-sum problem: every step each replica draws its own
  mini-batch from its own stream (with replacement, without replacement, epoch-wise reshuffled,
  or stratified), evaluates the problem on it, optionally averaged over ``A`` augmented copies and
  split over ``K`` simulated workers whose estimates are compressed (stochastic quantisation,
  scaled sign, top-k, optionally with error feedback) and averaged like a parameter server, then
  updates. The common case (no statistics this step, no augmentation, one worker) calls the
  problem's *batch* function once per chunk of draws; the others call its per-sample function.
* :func:`sgd_landscape` runs on a landscape with the exact gradient (plus optional additive
  Gaussian gradient noise): the idealised model of the chapter. Blocks of replicas share one
  landscape call per step, like the Langevin kernels.

The estimator. Draw ``j`` of a batch of size ``B`` picks example ``i_j`` with multiplier ``c_j``
so that :math:`\hat g = \sum_j c_j \nabla\ell_{i_j}` is unbiased for :math:`\nabla U=\sum_i w_i\nabla\ell_i`:
:math:`c_j = w_i N/B` for uniform sampling, :math:`c_j = w_i N_h/n_h` for stratum ``h`` with
:math:`n_h` draws, :math:`c_j = w_i` for the full batch. Per-draw terms :math:`u_j = B c_j \nabla\ell_{i_j}`
have mean :math:`\hat g`; their sample covariance trace is the recorded gradient-noise statistic.

Divergence: a replica whose parameters, batch loss or gradient norm becomes non-finite is set to
NaN, frozen, and its step written to ``diverged``. All scratch arrays are sized in ``init_state``;
nothing is allocated per step. Kernels use ``error_model="numpy"``: a division by zero gives
inf/nan (caught by the divergence check) instead of raising.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..._numba_utils import row_ptr
from ...random._core import next_u64, normal, randbelow, uniform
from ...stopping._compiled import P_NEEDS_ENERGY

# -- mode codes (values inside a practice; the practice itself is selected by argument types) --------
OPT_SGD, OPT_HEAVY_BALL, OPT_NESTEROV, OPT_ADAM = 0, 1, 2, 3
SAMPLE_FULL, SAMPLE_REPLACEMENT, SAMPLE_WITHOUT, SAMPLE_EPOCH, SAMPLE_STRATIFIED = 0, 1, 2, 3, 4
LR_CONSTANT, LR_COSINE, LR_STEP, LR_ARRAY = 0, 1, 2, 3
COMP_NONE, COMP_QUANTIZE, COMP_SIGN, COMP_TOPK = 0, 1, 2, 3
NOISE_NONE, NOISE_DIAG, NOISE_FULL = 0, 1, 2

# -- icfg indices ----------------------------------------------------------------------------------
I_OPT, I_SAMPLING, I_B0, I_BMAX, I_COPIES, I_AUG_NORMALS = 0, 1, 2, 3, 4, 5
I_WORKERS, I_COMP, I_COMP_PARAM, I_LR_KIND, I_NOISE = 6, 7, 8, 9, 10
N_ICFG = 11
# -- fcfg indices ----------------------------------------------------------------------------------
F_LR, F_MOMENTUM, F_BETA1, F_BETA2, F_EPS = 0, 1, 2, 3, 4
F_WARMUP, F_TOTAL, F_FINAL, F_STEP_SIZE, F_GAMMA, F_NORM_THETA = 5, 6, 7, 8, 9, 10
N_FCFG = 11
# -- slots of the per-replica vector scratch: row ``r * N_VEC + slot`` of ``vec`` (R * N_VEC, d) ---------
V_WORK, V_EXAMPLE, V_WORKER, V_RAW, V_GRAD, V_NORMALS, V_ZETA = 0, 1, 2, 3, 4, 5, 6
N_VEC = 7


@intrinsic
def prefetch_row(typingctx, arr, row):
    """Ask the CPU to start loading ``arr[row, :]`` into cache (``llvm.prefetch``: read, keep).

    The draw phase of :func:`_estimate` prefetches every drawn row before the evaluation phase
    reads them: rows are fetched at random, and a data set larger than L2 otherwise stalls on each
    (measured +23% on least squares with N = 1e4, d = 20). A hint only: results are unchanged.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides)[0]
        start = builder.add(builder.ptrtoint(ary.data, cgutils.intp_t), builder.mul(args[1], stride))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        step = ir.Constant(cgutils.intp_t, 64)  # one hint per cache line of the row
        with cgutils.for_range_slice(builder, ir.Constant(cgutils.intp_t, 0), stride, step) as (off, _):
            ptr = builder.inttoptr(builder.add(start, off), i8p)
            builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, error_model="numpy")
def lr_factor(kind, warmup, total, final, step_size, gamma, table, step):
    """Factor multiplying the base learning rate at step ``step`` (1-based).

    ``f(t) = min(1, t/W) * g(t)`` with ``g`` = 1 (constant), cosine decay from 1 to ``final``
    between steps W and ``total`` (Loshchilov & Hutter 2017, SGDR), ``gamma^floor((t-1)/step_size)``
    (step decay), or ``table[t-1]`` (a user array, no warm-up applied).
    """
    if kind == LR_ARRAY:
        return table[step - 1]
    f = 1.0
    if kind == LR_COSINE:
        u = (step - warmup) / (total - warmup)
        u = min(max(u, 0.0), 1.0)
        f = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * u))
    elif kind == LR_STEP:
        f = gamma ** ((step - 1) // int(step_size))
    if warmup > 0.0 and step < warmup:
        f *= step / warmup
    return f


@njit(cache=True, error_model="numpy")
def lr_factors(kind, warmup, total, final, step_size, gamma, table, steps, out):
    """:func:`lr_factor` for an array of steps (the Python-side view of a schedule)."""
    for j in range(steps.shape[0]):
        out[j] = lr_factor(kind, warmup, total, final, step_size, gamma, table, steps[j])


@njit(cache=True, error_model="numpy")
def allocate(B, a, starts, out):
    r"""Integer allocation of ``B`` draws to strata, :math:`n_h \propto a_h`, each :math:`1 \le n_h \le N_h`.

    Largest-remainder rounding of :math:`B a_h/\sum a` (Hamilton's method), then repairs so that
    every stratum gets at least one draw (unbiasedness) and at most :math:`N_h` (sampling without
    replacement within strata). Proportional allocation: :math:`a_h = N_h`; Neyman allocation
    (Neyman 1934; Cochran 1977, *Sampling Techniques*, §5.5): :math:`a_h = N_h S_h`. Ties go to the
    lower index. ``starts`` (length H + 1) delimits the strata, :math:`N_h` = ``starts[h+1] - starts[h]``.
    Requires ``H <= B <= N``.
    """
    H = a.shape[0]
    total = 0.0
    for h in range(H):
        total += a[h]
    assigned = 0
    for h in range(H):
        t = B * a[h] / total if total > 0.0 else B / H
        n = int(math.floor(t))
        n = min(max(n, 1), starts[h + 1] - starts[h])
        out[h] = n
        assigned += n
    while assigned < B:  # give one more to the stratum furthest below its target
        best = -1
        gap = -np.inf
        for h in range(H):
            if out[h] < starts[h + 1] - starts[h]:
                t = B * a[h] / total if total > 0.0 else B / H
                if t - out[h] > gap:
                    gap = t - out[h]
                    best = h
        out[best] += 1
        assigned += 1
    while assigned > B:  # take one from the stratum furthest above its target
        best = -1
        gap = -np.inf
        for h in range(H):
            if out[h] > 1:
                t = B * a[h] / total if total > 0.0 else B / H
                if out[h] - t > gap:
                    gap = out[h] - t
                    best = h
        out[best] -= 1
        assigned -= 1


@njit(cache=True, error_model="numpy")
def compress(mode, param, vec, v, topi, r, t, s0, s1):
    r"""Compress the row ``vec[v]`` in place; returns the advanced generator words.

    * quantise (QSGD, Alistarh et al. 2017, NeurIPS): :math:`Q_s(v)_i = \|v\|_2\,\mathrm{sign}(v_i)\,\xi_i/s`,
      :math:`\xi_i = l` or :math:`l+1` with :math:`l=\lfloor s|v_i|/\|v\|\rfloor` and
      :math:`P(\xi_i=l+1) = s|v_i|/\|v\| - l` (unbiased); one uniform per coordinate;
    * scaled sign (Karimireddy et al. 2019, ICML, "Error feedback fixes SignSGD"):
      :math:`(\|v\|_1/d)\,\mathrm{sign}(v)`;
    * top-k (Stich, Cordonnier & Jaggi 2018, NeurIPS): keep the ``k`` largest :math:`|v_i|`
      (ties to the lower index), zero the rest; ``topi[r]`` (length >= k) and the row ``vec[t]`` are scratch.
    """
    d = vec.shape[1]
    if mode == COMP_QUANTIZE:
        nrm = 0.0
        for i in range(d):
            nrm += vec[v, i] * vec[v, i]
        nrm = math.sqrt(nrm)
        for i in range(d):
            u, s0, s1 = uniform(s0, s1)
            if nrm == 0.0:
                vec[v, i] = 0.0
                continue
            a = param * abs(vec[v, i]) / nrm
            lev = math.floor(a)
            if u < a - lev:
                lev += 1.0
            vec[v, i] = math.copysign(nrm * lev / param, vec[v, i]) if lev != 0.0 else 0.0
    elif mode == COMP_SIGN:
        l1 = 0.0
        for i in range(d):
            l1 += abs(vec[v, i])
        scale = l1 / d
        for i in range(d):
            vec[v, i] = scale if vec[v, i] > 0.0 else (-scale if vec[v, i] < 0.0 else 0.0)
    elif mode == COMP_TOPK:
        k = int(param)
        n = 0  # topi[r, :n] holds the indices of the n largest |v| so far, in decreasing order
        for i in range(d):
            a = abs(vec[v, i])
            if n == k and a <= abs(vec[v, topi[r, k - 1]]):
                continue
            pos = min(n, k - 1)
            while pos > 0 and abs(vec[v, topi[r, pos - 1]]) < a:
                topi[r, pos] = topi[r, pos - 1]
                pos -= 1
            topi[r, pos] = i
            n = min(n + 1, k)
        for i in range(d):
            vec[t, i] = 0.0
        for j in range(n):
            vec[t, topi[r, j]] = vec[v, topi[r, j]]
        for i in range(d):
            vec[v, i] = vec[t, i]
    return s0, s1


# ---------------------------------------------------------------------------------------------------
# Per-replica pieces. The scratch ``vec`` is (R * N_VEC, d): row ``r * N_VEC + V_*`` is replica r's
# vector of that slot. Hot code indexes 2-D arrays by (row, i) and passes raw row pointers, never
# array views: a view is a new reference-counted array (an atomic increment and decrement each),
# which cost ~3 ns per example on least squares when made every step.
# ---------------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _put(out, r, k, v):
    """``out[r, k] = v`` when the output is recorded (``out`` is None otherwise: nothing compiled)."""
    if out is not None:
        out[r, k] = v


@njit(cache=True, error_model="numpy")
def _freeze(x, r, diverged, step):
    diverged[r] = step
    for i in range(x.shape[1]):
        x[r, i] = np.nan


@njit(cache=True, error_model="numpy")
def _learning_rate(sched, icfg, fcfg, step):
    """Learning rate of step ``step``: ``lr`` or ``lr * lr_factor(...)`` when a schedule is set."""
    if sched is None:
        return fcfg[F_LR]
    return fcfg[F_LR] * lr_factor(icfg[I_LR_KIND], fcfg[F_WARMUP], fcfg[F_TOTAL], fcfg[F_FINAL], fcfg[F_STEP_SIZE],
                                  fcfg[F_GAMMA], sched, step)


@njit(cache=True, error_model="numpy")
def _batch_size(plan_steps, plan_sizes, norm_batch, B0, r, step):
    """Batch size of replica ``r`` at step ``step``: fixed, from a plan, or the replica's adaptive size."""
    if norm_batch is not None:
        return norm_batch[r]
    if plan_steps is None:
        return B0
    B = B0
    for k in range(plan_steps.shape[0]):
        if step > plan_steps[k]:
            B = plan_sizes[k]
    return B


@njit(cache=True, error_model="numpy")
def _gradient_noise(mode, L, scale, vec, z, out, s0, s1):
    """``vec[out] += scale * L @ xi`` for ``xi ~ N(0, I)`` (diag: ``L[i, i]``; full: lower-triangular L,
    with ``xi`` kept in the row ``vec[z]``)."""
    d = vec.shape[1]
    if mode == NOISE_DIAG:
        for i in range(d):
            w, s0, s1 = normal(s0, s1)
            vec[out, i] += (scale * L[i, i]) * w
    else:
        for i in range(d):
            vec[z, i], s0, s1 = normal(s0, s1)
        for i in range(d):
            acc = 0.0
            for j in range(i + 1):
                acc += (scale * L[i, j]) * vec[z, j]
            vec[out, i] += acc
    return s0, s1


@njit(cache=True, error_model="numpy")
def _clip_and_norm(vec, g, clip):
    """Norm of the row ``vec[g]``, scaled to norm ``clip`` if it is longer (``clip`` None: no clipping)."""
    nrm = 0.0
    for i in range(vec.shape[1]):
        nrm += vec[g, i] * vec[g, i]
    nrm = math.sqrt(nrm)
    if clip is not None:
        if nrm > clip:
            f = clip / nrm
            for i in range(vec.shape[1]):
                vec[g, i] *= f
    return nrm


@njit(cache=True, error_model="numpy")
def _update(icfg, fcfg, x, r, vec, mom, sqm, temperature, noise_upd, lr, bc1, bc2, s0, s1):
    """One optimiser step of replica ``r`` with the (noisy, clipped) gradient ``G = vec[r*N_VEC + V_GRAD]``;
    returns (ok, s0, s1).

    SGD (``mom`` None): ``x <- x - lr*G + zeta``, where ``zeta`` holds the additive noise that is
    not routed through G: gradient noise ``lr * L xi`` (``noise_upd``, set when there is no
    clipping: the same arithmetic as Euler–Maruyama's ``x - dt*grad + sigma*w``) and SGLD's
    ``sqrt(2 lr T) xi'`` (``temperature``). Heavy ball: ``v <- mu v + G; x <- x - lr v``. Nesterov
    (Sutskever et al. 2013, as in PyTorch): ``v <- mu v + G; x <- x - lr (G + mu v)``. Adam
    (``sqm`` set; Kingma & Ba 2015, with the bias corrections ``bc1``, ``bc2`` of :func:`_bias_corrections`).
    The loops have no reductions in a fixed order (the finiteness test is a logical or), so the
    compiler vectorises them.
    """
    d = x.shape[1]
    g = r * N_VEC + V_GRAD
    bad = False
    if mom is None:
        noisy = False
        if noise_upd is not None:
            noisy = True
        if temperature is not None:
            if temperature > 0.0:
                noisy = True
        if noisy:
            zeta = r * N_VEC + V_ZETA
            for i in range(d):
                vec[zeta, i] = 0.0
            if noise_upd is not None:
                s0, s1 = _gradient_noise(icfg[I_NOISE], noise_upd, lr, vec, r * N_VEC + V_NORMALS, zeta, s0, s1)
            if temperature is not None:
                if temperature > 0.0:
                    sig = math.sqrt(2.0 * temperature * lr)
                    for i in range(d):
                        w, s0, s1 = normal(s0, s1)
                        vec[zeta, i] += sig * w
            for i in range(d):
                xi = x[r, i] - lr * vec[g, i] + vec[zeta, i]
                x[r, i] = xi
                bad |= xi - xi != 0.0  # nan for an infinite or nan coordinate (a vectorisable test)
        else:
            for i in range(d):
                xi = x[r, i] - lr * vec[g, i]
                x[r, i] = xi
                bad |= xi - xi != 0.0
    elif sqm is None:
        mu = fcfg[F_MOMENTUM]
        heavy = icfg[I_OPT] == OPT_HEAVY_BALL
        for i in range(d):
            v = mu * mom[r, i] + vec[g, i]
            mom[r, i] = v
            xi = x[r, i] - lr * (v if heavy else vec[g, i] + mu * v)
            x[r, i] = xi
            bad |= xi - xi != 0.0
    else:
        b1 = fcfg[F_BETA1]
        b2 = fcfg[F_BETA2]
        eps = fcfg[F_EPS]
        for i in range(d):
            G = vec[g, i]
            m = b1 * mom[r, i] + (1.0 - b1) * G
            v = b2 * sqm[r, i] + (1.0 - b2) * G * G
            mom[r, i] = m
            sqm[r, i] = v
            xi = x[r, i] - lr * (m / bc1) / (math.sqrt(v / bc2) + eps)
            x[r, i] = xi
            bad |= xi - xi != 0.0
    return not bad, s0, s1


@njit(inline="always", cache=True, error_model="numpy")
def _bias_corrections(sqm, fcfg, step):
    """Adam's ``(1 - beta1^t, 1 - beta2^t)`` at step t (computed once per step; (1, 1) without Adam)."""
    if sqm is None:
        return 1.0, 1.0
    return 1.0 - fcfg[F_BETA1] ** step, 1.0 - fcfg[F_BETA2] ** step


@njit(inline="always", cache=True, error_model="numpy")
def _finish_update(icfg, fcfg, x, r, vec, lr, bc1, bc2, noise_grad, clip, mom, sqm, temperature, noise_upd, s0, s1):
    """Gradient noise routed through G, clipping, the optimiser step. Returns ``(gnorm, ok, s0, s1)``."""
    g = r * N_VEC + V_GRAD
    if noise_grad is not None:
        s0, s1 = _gradient_noise(icfg[I_NOISE], noise_grad, 1.0, vec, r * N_VEC + V_NORMALS, g, s0, s1)
    gnorm = _clip_and_norm(vec, g, clip)
    ok, s0, s1 = _update(icfg, fcfg, x, r, vec, mom, sqm, temperature, noise_upd, lr, bc1, bc2, s0, s1)
    return gnorm, ok and math.isfinite(gnorm), s0, s1


# ---------------------------------------------------------------------------------------------------
# Finite-sum problems
# ---------------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _draw(full, data, weights, perm, epoch_pos, strata, alloc, r, B, j0, n, bidx, bcoef, h, hcount, s0, s1):
    """Draws ``j0 .. j0+n-1`` of replica ``r``'s batch: example indices into ``bidx[r, :n]`` and their
    multipliers into ``bcoef[r, :n]``, prefetching their rows. Sampling: full batch (``full``), with
    replacement (``perm`` None), epoch-wise (``epoch_pos`` set), stratified (``strata`` set),
    otherwise without replacement. ``(h, hcount)`` is the stratified sampler's position (stratum,
    draws taken from it). Returns ``(h, hcount, s0, s1)``."""
    N = weights.shape[0]
    nb = N / B
    if perm is None:
        if full:
            for t in range(n):
                i = j0 + t
                prefetch_row(data, i)
                bidx[r, t] = i
                bcoef[r, t] = weights[i]
        else:
            for t in range(n):
                i, s0, s1 = randbelow(N, s0, s1)
                prefetch_row(data, i)
                bidx[r, t] = i
                bcoef[r, t] = weights[i] * nb
        return h, hcount, s0, s1
    if epoch_pos is not None:
        for t in range(n):
            i = perm[r, epoch_pos[r] + j0 + t]
            prefetch_row(data, i)
            bidx[r, t] = i
            bcoef[r, t] = weights[i] * nb
        return h, hcount, s0, s1
    if strata is not None:
        for t in range(n):  # n_h draws without replacement within stratum h, in stratum order
            while hcount == alloc[r, h]:
                h += 1
                hcount = 0
            base = strata[h]
            Nh = strata[h + 1] - base
            kk, s0, s1 = randbelow(Nh - hcount, s0, s1)
            kk += base + hcount
            tmp = perm[r, base + hcount]
            perm[r, base + hcount] = perm[r, kk]
            perm[r, kk] = tmp
            i = perm[r, base + hcount]
            prefetch_row(data, i)
            bidx[r, t] = i
            bcoef[r, t] = weights[i] * Nh / alloc[r, h]
            hcount += 1
        return h, hcount, s0, s1
    for t in range(n):  # without replacement: partial Fisher-Yates on the replica's permutation
        j = j0 + t
        kk, s0, s1 = randbelow(N - j, s0, s1)
        kk += j
        tmp = perm[r, j]
        perm[r, j] = perm[r, kk]
        perm[r, kk] = tmp
        i = perm[r, j]
        prefetch_row(data, i)
        bidx[r, t] = i
        bcoef[r, t] = weights[i] * nb
    return h, hcount, s0, s1


@njit(cache=True, error_model="numpy")
def _finish_worker(icfg, B, bk, worker, vec, r, ef, workers, s0, s1):
    """End of a worker's share of ``bk`` draws: add its sum ``wk`` to the raw estimate, compress its own
    estimate ``(B/bk) wk`` (with error feedback if ``ef`` is set) and add ``(bk/B) C(.)`` to the
    server's average ``G``. ``workers`` None: one uncompressed worker."""
    d = vec.shape[1]
    o = r * N_VEC
    wk = o + V_WORKER
    graw = o + V_RAW
    G = o + V_GRAD
    vbuf = o + V_NORMALS
    comp = COMP_NONE if workers is None else icfg[I_COMP]
    if comp == COMP_NONE:
        for k in range(d):
            vec[graw, k] += vec[wk, k]
            vec[G, k] += vec[wk, k]
    elif workers is not None:
        scale = B / bk
        for k in range(d):
            vec[graw, k] += vec[wk, k]
            vec[vbuf, k] = scale * vec[wk, k]
        if ef is not None:
            for k in range(d):
                vec[vbuf, k] += ef[r, worker, k]
                ef[r, worker, k] = vec[vbuf, k]
        s0, s1 = compress(comp, icfg[I_COMP_PARAM], vec, vbuf, workers, r, o + V_ZETA, s0, s1)
        if ef is not None:
            for k in range(d):
                ef[r, worker, k] -= vec[vbuf, k]
        back = bk / B
        for k in range(d):
            vec[G, k] += back * vec[vbuf, k]
    for k in range(d):
        vec[wk, k] = 0.0
    return s0, s1


@njit(cache=True, error_model="numpy")
def _estimate_general(sample_fn, data, weights, hyper, aug_fn, aug_par, rowz, workers, ef, icfg, full, perm, epoch_pos,
                      strata, alloc, x, r, B, vec, bidx, bcoef, need_sq, s0, s1):
    """Mini-batch gradient through the per-sample function (statistics, augmentation or several workers):
    writes the rows ``V_RAW`` (the uncompressed estimate) and ``V_GRAD`` (after compression and averaging
    over workers) of replica ``r``; returns ``(batch loss, sum_j c_j^2 |grad l_j|^2, s0, s1)``.
    ``rowz`` is (2R, m): rows 2r (augmented copy) and 2r + 1 (its normals)."""
    N, m = data.shape
    d = x.shape[1]
    nh = hyper.shape[0]
    o = r * N_VEC
    ge = o + V_EXAMPLE
    wk = o + V_WORKER
    chunk = bidx.shape[1]
    for k in range(d):
        vec[o + V_RAW, k] = 0.0
        vec[o + V_GRAD, k] = 0.0
        vec[wk, k] = 0.0
    A = icfg[I_COPIES]
    K = 1 if workers is None else icfg[I_WORKERS]
    h = np.int64(0)  # stratified sampler's position (typed int64, not a literal: one _draw specialisation)
    hcount = np.int64(0)
    loss = 0.0
    sq = 0.0
    worker = np.int64(0)
    share_start = np.int64(0)
    share_end = B // K + (1 if 0 < B % K else 0)
    inv_a = 1.0 / A
    xp = row_ptr(x, r)
    hp = row_ptr(hyper, 0)
    wp = row_ptr(vec, o + V_WORK)
    dp = row_ptr(vec, ge if need_sq else wk)  # where the example's gradient goes
    j0 = np.int64(0)
    while j0 < B:
        n = min(chunk, B - j0)
        h, hcount, s0, s1 = _draw(full, data, weights, perm, epoch_pos, strata, alloc, r, B, j0, n, bidx, bcoef, h,
                                  hcount, s0, s1)
        for t in range(n):
            i = bidx[r, t]
            c = bcoef[r, t]
            # the example's gradient (mean over A augmented copies): straight into the worker's sum with
            # weight c, or (for the noise statistics) into ge first
            if need_sq:
                for k in range(d):
                    vec[ge, k] = 0.0
            scale = inv_a if need_sq else c * inv_a
            if aug_fn is None:
                li = sample_fn(xp, d, row_ptr(data, i), m, hp, nh, dp, scale, wp)
            else:
                li = 0.0
                for a in range(A):
                    for k in range(icfg[I_AUG_NORMALS]):
                        rowz[2 * r + 1, k], s0, s1 = normal(s0, s1)
                    aug_fn(row_ptr(data, i), m, row_ptr(rowz, 2 * r + 1), row_ptr(rowz, 2 * r), row_ptr(aug_par, 0),
                           aug_par.shape[0])
                    li += sample_fn(xp, d, row_ptr(rowz, 2 * r), m, hp, nh, dp, scale, wp)
                li *= inv_a
            loss += c * li
            if need_sq:
                n2 = 0.0
                for k in range(d):
                    vec[wk, k] += c * vec[ge, k]
                    n2 += vec[ge, k] * vec[ge, k]
                sq += c * c * n2
            if workers is not None:
                if j0 + t + 1 == share_end and j0 + t + 1 < B:  # a worker's share ends (the last one: below)
                    s0, s1 = _finish_worker(icfg, B, share_end - share_start, worker, vec, r, ef, workers, s0, s1)
                    worker += 1
                    share_start = share_end
                    share_end += B // K + (1 if worker < B % K else 0)
        j0 += n
    if workers is not None:
        s0, s1 = _finish_worker(icfg, B, B - share_start, worker, vec, r, ef, workers, s0, s1)
    else:  # one uncompressed worker: what _finish_worker does then (without compiling it)
        for k in range(d):
            vec[o + V_RAW, k] += vec[wk, k]
            vec[o + V_GRAD, k] += vec[wk, k]
            vec[wk, k] = 0.0
    return loss, sq, s0, s1


@njit(cache=True, error_model="numpy")
def _estimate_plain(batch_fn, data, weights, hyper, full, perm, epoch_pos, strata, alloc, x, r, B, vec, bidx, bcoef, bwork,
                    s0, s1):
    """Mini-batch gradient into the row ``V_GRAD`` of replica ``r`` through the problem's batch function,
    one call per chunk of draws (the common case: no statistics this step, no augmentation, one
    worker). Returns ``(batch loss, s0, s1)``: the same arithmetic, in the same order, as the
    per-sample path."""
    N, m = data.shape
    d = x.shape[1]
    g = r * N_VEC + V_GRAD
    chunk = bidx.shape[1]
    for k in range(d):
        vec[g, k] = 0.0
    h = np.int64(0)
    hcount = np.int64(0)
    loss = 0.0
    j0 = np.int64(0)
    while j0 < B:
        n = min(chunk, B - j0)
        h, hcount, s0, s1 = _draw(full, data, weights, perm, epoch_pos, strata, alloc, r, B, j0, n, bidx, bcoef, h,
                                  hcount, s0, s1)
        loss = batch_fn(row_ptr(x, r), d, row_ptr(data, 0), N, m, row_ptr(bidx, r), row_ptr(bcoef, r), n,
                        row_ptr(hyper, 0), hyper.shape[0], row_ptr(vec, g), row_ptr(bwork, 0), loss)
        j0 += n
    return loss, s0, s1


@njit(cache=True, error_model="numpy")
def _shuffle(perm, r, s0, s1):
    """Fisher–Yates shuffle of replica ``r``'s permutation (start of an epoch)."""
    for i in range(perm.shape[1] - 1, 0, -1):
        j, s0, s1 = randbelow(i + 1, s0, s1)
        t = perm[r, i]
        perm[r, i] = perm[r, j]
        perm[r, j] = t
    return s0, s1


@njit(cache=True, error_model="numpy")
def full_loss(sample_fn, data, weights, hyper, x, r, vec):
    """The full-batch loss U(x[r]) = sum_i w_i l_i(x[r]), summed example after example in order with
    the per-sample function (what a stopping rule reads on a problem; :func:`full_losses` computes
    the same outside the kernel); the rows ``V_EXAMPLE`` and ``V_WORK`` of replica ``r`` are scratch."""
    N, m = data.shape
    d = x.shape[1]
    g = r * N_VEC + V_EXAMPLE
    for k in range(d):
        vec[g, k] = 0.0
    acc = 0.0
    for i in range(N):
        w = weights[i]
        acc += w * sample_fn(row_ptr(x, r), d, row_ptr(data, i), m, row_ptr(hyper, 0), hyper.shape[0], row_ptr(vec, g),
                             w, row_ptr(vec, r * N_VEC + V_WORK))
    return acc


@njit(cache=True, error_model="numpy")
def full_losses(sample_fn, data, weights, hyper, x, out):
    """``out[r]`` = :func:`full_loss` of every row ``r`` of ``x``: the full-batch loss a stopping rule
    reads, computed outside the kernel (the reference path of ``stochdyn.stopping``) with the same
    arithmetic, so both see the same number."""
    vec = np.zeros((x.shape[0] * N_VEC, x.shape[1]))
    for r in range(x.shape[0]):
        out[r] = full_loss(sample_fn, data, weights, hyper, x, r, vec)


#: replicas per block of :func:`sgd_problem` (their draws run in SIMD lanes, step after step)
LANE_BLOCK = 64
_LANES = 8  # lanes of one <8 x i64> vector
_M32 = np.uint64(0xFFFFFFFF)


@intrinsic
def _lemire_lanes(typingctx, lanes, t, nn):
    r"""One draw for all :data:`LANE_BLOCK` generators of a block, in ``<8 x i64>`` vectors.

    ``lanes`` is the block's uint64 scratch ``(B + 3, LANE_BLOCK)``: rows 0 and 1 hold the two
    xoroshiro128++ words of each lane, row 2 its live mask (all ones or 0), row ``3 + t`` receives
    Lemire's product :math:`m = \lfloor u/2^{32}\rfloor N` of draw ``t``. Live lanes advance by one
    step (:func:`~stochdyn.random._core.next_u64` written out), others keep their words. Returns
    nonzero when a live lane's low word ``m mod 2^32`` is below N (the rare case in which
    :func:`~stochdyn.random._core.randbelow` draws again). Explicit vector code: no branches, no
    alias checks, and little to compile.
    """
    if not (isinstance(lanes, types.Array) and lanes.ndim == 2 and lanes.dtype == types.uint64):
        return None
    sig = types.uint64(lanes, types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        t, nn = args[1], args[2]
        i64 = ir.IntType(64)
        vty = ir.VectorType(i64, _LANES)
        base = arr.data
        row = ir.Constant(cgutils.intp_t, LANE_BLOCK)

        def splat(v):
            return ir.Constant(vty, [v] * _LANES) if isinstance(v, int) else builder.shuffle_vector(
                builder.insert_element(ir.Constant(vty, None), v, ir.Constant(ir.IntType(32), 0)),
                ir.Constant(vty, None), ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES))

        def ptr(r, j):
            off = builder.add(builder.mul(r, row), ir.Constant(cgutils.intp_t, j))
            return builder.bitcast(builder.gep(base, [off]), vty.as_pointer())

        def rotl(x, k):
            return builder.or_(builder.shl(x, splat(k)), builder.lshr(x, splat(64 - k)))

        c = lambda v: ir.Constant(cgutils.intp_t, v)  # noqa: E731
        mrow = builder.add(t, c(3))
        nv = splat(nn)
        rej = splat(0)
        for j in range(0, LANE_BLOCK, _LANES):
            p0, p1, pl, pm = ptr(c(0), j), ptr(c(1), j), ptr(c(2), j), ptr(mrow, j)
            s0, s1, mk = builder.load(p0, align=8), builder.load(p1, align=8), builder.load(pl, align=8)
            u = builder.add(rotl(builder.add(s0, s1), 17), s0)
            x1 = builder.xor(s1, s0)
            n0 = builder.xor(builder.xor(rotl(s0, 49), x1), builder.shl(x1, splat(21)))
            n1 = rotl(x1, 28)
            keep = builder.xor(mk, splat(-1))
            builder.store(builder.or_(builder.and_(n0, mk), builder.and_(s0, keep)), p0, align=8)
            builder.store(builder.or_(builder.and_(n1, mk), builder.and_(s1, keep)), p1, align=8)
            m = builder.mul(builder.lshr(u, splat(32)), nv)
            builder.store(m, pm, align=8)
            low = builder.and_(m, splat(0xFFFFFFFF))
            rej = builder.or_(rej, builder.and_(builder.lshr(builder.sub(low, nv), splat(63)), mk))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [vty]), "llvm.vector.reduce.or.v8i64")
        return builder.call(fn, [rej])

    return sig, codegen


@njit(cache=True, error_model="numpy")
def _draw_lanes(rng, diverged, until_fn, stop_step, c0, c1, N, B, weights, uniform, idx, coef, lanes):
    r"""Mini-batch indices (with replacement) of one step for every live replica of the block
    ``c0 <= r < c1``: replica r's draws go to ``idx[r - c0, :B]`` and their multipliers
    :math:`w_i N/B` to ``coef[r - c0, :B]`` (``uniform``: all weights are equal).

    The generators of the block run in SIMD lanes (:func:`_lemire_lanes`, ``lanes`` its scratch).
    Each replica consumes exactly what :func:`~stochdyn.random._core.randbelow` would, in the same
    order: a lane whose low word falls below N (probability N/2^32) is finished right after by the
    scalar rejection loop, from its own advanced state, before its next draw. Diverged replicas are
    not advanced, nor are replicas stopped by a rule (``stop_step`` >= 0, read only when ``until_fn``
    is not None: without a rule it is a one-element placeholder). ``until_fn`` is passed rather than a
    ``stop_step`` of None at a call site under ``if until_fn is None``: Numba does not prune that
    branch when ``until_fn`` is a function, so both call sites were typed and this function was
    compiled twice for every run with a rule (measured: +0.5 s on SGD's first call with ``until``).
    """
    n = c1 - c0
    nn = np.uint64(N)
    nb = N / B
    for j in range(LANE_BLOCK):
        live = j < n and diverged[c0 + j] < 0
        if until_fn is not None:  # a stopped replica keeps its stream (no stopping rule: pruned)
            live = live and stop_step[c0 + j] < 0
        lanes[0, j] = rng[c0 + j, 0] if j < n else np.uint64(0)
        lanes[1, j] = rng[c0 + j, 1] if j < n else np.uint64(0)
        lanes[2, j] = ~np.uint64(0) if live else np.uint64(0)
    for t in range(B):
        if _lemire_lanes(lanes, t, nn) != 0:  # rare: finish Lemire's rejection loop for those lanes
            for j in range(n):
                lo = lanes[3 + t, j] & _M32
                if lanes[2, j] != 0 and lo < nn:
                    th = (np.uint64(4294967296) - nn) % nn
                    s0 = lanes[0, j]
                    s1 = lanes[1, j]
                    while lo < th:
                        u, s0, s1 = next_u64(s0, s1)
                        lanes[3 + t, j] = (u >> np.uint64(32)) * nn
                        lo = lanes[3 + t, j] & _M32
                    lanes[0, j] = s0
                    lanes[1, j] = s1
    c = weights[0] * nb
    for j in range(n):
        rng[c0 + j, 0] = lanes[0, j]
        rng[c0 + j, 1] = lanes[1, j]
        for t in range(B):
            i = np.int64(lanes[3 + t, j] >> np.uint64(32))
            idx[j, t] = i
            coef[j, t] = c if uniform else weights[i] * nb


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_problem(plain, general, lanes, batch_fn, sample_fn, data, weights, hyper, icfg, fcfg, sched, plan_steps,
                plan_sizes, norm_batch, perm, epoch_pos, strata, alloc_w, alloc, aug_fn, aug_par, rowz, workers, ef,
                noise_grad, noise_upd, clip, temperature, mom, sqm, stats, x, rng, diverged, examples, vec, bidx, bcoef,
                step0, n_steps, record_every, k0, out_x, o_loss, o_gnorm, o_lr, o_gvar, o_nscale, o_snr, o_batch,
                o_examples, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, bwork, lane_idx, lane_coef,
                lanes_u64, r0, r1):
    """``n_steps`` SGD-family steps of replicas ``r0 <= r < r1`` on a finite-sum problem (see the
    module docstring); serial and ``nogil``: :func:`stochdyn._numba_utils.run_blocks` runs ranges of
    replicas on several threads.

    Replicas go in blocks of :data:`LANE_BLOCK`, step after step. With ``lanes`` set (sampling with
    replacement, no adaptive batch size), the block's mini-batch indices of a step are drawn in SIMD
    lanes (:func:`_draw_lanes`) — except at steps that need the per-sample path for statistics —
    and each replica's estimate is one call of the batch function. Results are those of one replica
    at a time: every replica
    consumes its own stream in the same order.

    Records after steps that are multiples of ``record_every`` (record ``k0 + (step-step0)//record_every - 1``):
    ``out_x`` and each output that is not None: the batch loss, gradient norm (before clipping),
    learning rate, noise statistics, batch size and cumulative examples. With a stopping rule
    (``until_fn`` not None) a replica is checked after every step, on its parameters and (if the rule
    reads it) the full-batch loss (:func:`full_loss`); one that stops ends its steps there.
    """
    N = data.shape[0]
    d = x.shape[1]
    full = icfg[I_SAMPLING] == SAMPLE_FULL
    A = icfg[I_COPIES]
    for c0 in range(r0, r1, LANE_BLOCK):
        c1 = min(r1, c0 + LANE_BLOCK)
        for s in range(n_steps):
            step = step0 + s + 1
            record = step % record_every == 0
            drawn = False
            if lanes is not None:
                if not (stats is not None and record):
                    B = _batch_size(plan_steps, plan_sizes, None, icfg[I_B0], 0, step)
                    _draw_lanes(rng, diverged, until_fn, stop_step, c0, c1, N, B, weights, lanes, lane_idx, lane_coef,
                                lanes_u64)
                    drawn = True
            lr = _learning_rate(sched, icfg, fcfg, step)
            bc1, bc2 = _bias_corrections(sqm, fcfg, step)
            for r in range(c0, c1):
                if until_fn is not None:
                    if stop_step[r] >= 0:
                        continue  # stopped (in this call or an earlier one): frozen, stream untouched
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                loss = np.nan
                gnorm = np.nan
                gvar = np.nan
                nscale = np.nan
                snr = np.nan
                B = 0
                if diverged[r] < 0:
                    B = _batch_size(plan_steps, plan_sizes, norm_batch, icfg[I_B0], r, step)
                    if strata is not None:
                        H = strata.shape[0] - 1
                        if alloc[r, H] != B:
                            allocate(B, alloc_w, strata, alloc[r, :H])
                            alloc[r, H] = B
                    if epoch_pos is not None:
                        if epoch_pos[r] + B > N:  # new epoch: reshuffle the replica's permutation
                            s0, s1 = _shuffle(perm, r, s0, s1)
                            epoch_pos[r] = 0
                    need_sq = False
                    if stats is not None:
                        need_sq = record or norm_batch is not None
                    done = False
                    if drawn:  # (no software prefetch: measured slower; the examples' loads overlap anyway)
                        g = r * N_VEC + V_GRAD
                        for k in range(d):
                            vec[g, k] = 0.0
                        loss = batch_fn(row_ptr(x, r), d, row_ptr(data, 0), N, data.shape[1],
                                        row_ptr(lane_idx, r - c0), row_ptr(lane_coef, r - c0), B, row_ptr(hyper, 0),
                                        hyper.shape[0], row_ptr(vec, g), row_ptr(bwork, 0), 0.0)
                        done = True
                    if plain is not None and not done:  # (None: augmentation or workers, never compiled)
                        if not need_sq:
                            loss, s0, s1 = _estimate_plain(batch_fn, data, weights, hyper, full, perm, epoch_pos,
                                                           strata, alloc, x, r, B, vec, bidx, bcoef, bwork, s0, s1)
                            done = True
                    if general is not None and not done:  # (None: no statistics, augmentation or workers)
                        loss, sq, s0, s1 = _estimate_general(sample_fn, data, weights, hyper, aug_fn, aug_par, rowz,
                                                             workers, ef, icfg, full, perm, epoch_pos, strata, alloc,
                                                             x, r, B, vec, bidx, bcoef, need_sq, s0, s1)
                        if need_sq and B > 1:
                            graw = r * N_VEC + V_RAW
                            g2 = 0.0
                            for k in range(d):
                                g2 += vec[graw, k] * vec[graw, k]
                            gvar = max((B * B * sq - B * g2) / (B - 1), 0.0)
                            nscale = gvar / g2  # error_model="numpy": x/0 gives inf/nan, never raises
                            snr = B * g2 / gvar
                            if norm_batch is not None:
                                th2 = fcfg[F_NORM_THETA] ** 2
                                if gvar > B * th2 * g2:
                                    want = math.ceil(gvar / (th2 * g2)) if g2 > 0.0 else icfg[I_BMAX]
                                    norm_batch[r] = min(icfg[I_BMAX], max(B, want))
                    if epoch_pos is not None:
                        epoch_pos[r] += B
                    gnorm, ok, s0, s1 = _finish_update(icfg, fcfg, x, r, vec, lr, bc1, bc2, noise_grad, clip, mom, sqm,
                                                       temperature, noise_upd, s0, s1)
                    examples[r] += B * A
                    if not (ok and math.isfinite(loss)):
                        _freeze(x, r, diverged, step)
                rng[r, 0] = s0
                rng[r, 1] = s1
                if record:
                    k = k0 + (step - step0) // record_every - 1
                    for i in range(d):
                        out_x[r, k, i] = x[r, i]
                    _put(o_loss, r, k, loss)
                    _put(o_gnorm, r, k, gnorm)
                    _put(o_lr, r, k, lr if diverged[r] < 0 or diverged[r] == step else np.nan)
                    _put(o_gvar, r, k, gvar)
                    _put(o_nscale, r, k, nscale)
                    _put(o_snr, r, k, snr)
                    _put(o_batch, r, k, B)
                    _put(o_examples, r, k, examples[r])
                if until_fn is not None:
                    if diverged[r] < 0:
                        e = np.nan
                        if until_theta[P_NEEDS_ENERGY] != 0.0:
                            e = full_loss(sample_fn, data, weights, hyper, x, r, vec)
                        c = until_fn(row_ptr(x, r), 1, d, e, row_ptr(until_theta, 0), until_theta.shape[0],
                                     row_ptr(until_aux, 0), until_aux.shape[0], row_ptr(until_work, r),
                                     until_work.shape[1])
                        if c > 0:
                            stop_step[r] = step
                            stop_rule[r] = c - 1


# ---------------------------------------------------------------------------------------------------
# Landscapes
# ---------------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def sgd_landscape(Bk, fn, theta, icfg, fcfg, sched, noise_grad, noise_upd, clip, temperature, mom, sqm,
                  x, grad, energy, rng, diverged, vec, gnorm, step0, n_steps, record_every, k0,
                  out_x, out_e, o_gnorm, o_lr, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, b0, b1):
    """SGD-family steps on a landscape with the exact gradient plus optional additive Gaussian
    gradient noise of covariance ``L L^T`` — the idealised model of SGD — for the blocks
    ``b0 <= b < b1`` of ``Bk`` replicas, which share one landscape call per step; records as in
    :func:`sgd_problem`. Serial and ``nogil`` (see :func:`sgd_problem`). With a stopping rule
    (``until_fn`` not None) the landscape is evaluated at the end of each step instead of the start
    of the next (the same numbers), and each replica is checked there on x and U(x)."""
    R, d = x.shape
    for b in range(b0, b1):
        r0 = b * Bk
        r1 = min(R, r0 + Bk)
        fresh = False
        for s in range(n_steps):
            if not fresh:
                fn(row_ptr(x, r0), row_ptr(grad, r0), row_ptr(energy, r0), r1 - r0, d, row_ptr(theta, 0), theta.shape[0])
            fresh = False
            step = step0 + s + 1
            lr = _learning_rate(sched, icfg, fcfg, step)
            bc1, bc2 = _bias_corrections(sqm, fcfg, step)
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
                if until_fn is not None:
                    if stop_step[r] >= 0:
                        continue  # stopped: frozen
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                g = r * N_VEC + V_GRAD
                for i in range(d):
                    vec[g, i] = grad[r, i]
                gnorm[r], ok, s0, s1 = _finish_update(icfg, fcfg, x, r, vec, lr, bc1, bc2, noise_grad, clip, mom, sqm,
                                                      temperature, noise_upd, s0, s1)
                rng[r, 0] = s0
                rng[r, 1] = s1
                if not (ok and math.isfinite(energy[r])):
                    _freeze(x, r, diverged, step)
            if until_fn is not None:  # U and grad U at the new state: the rule's energy, the next step's gradient
                fn(row_ptr(x, r0), row_ptr(grad, r0), row_ptr(energy, r0), r1 - r0, d, row_ptr(theta, 0), theta.shape[0])
                fresh = True
            if step % record_every == 0:
                if not fresh:
                    fn(row_ptr(x, r0), row_ptr(grad, r0), row_ptr(energy, r0), r1 - r0, d, row_ptr(theta, 0),
                       theta.shape[0])
                fresh = True
                k = k0 + (step - step0) // record_every - 1
                for r in range(r0, r1):
                    for i in range(d):
                        out_x[r, k, i] = x[r, i]
                    out_e[r, k] = np.nan if diverged[r] >= 0 else energy[r]
                    _put(o_gnorm, r, k, np.nan if diverged[r] >= 0 else gnorm[r])
                    _put(o_lr, r, k, lr)
            if until_fn is not None:  # the check, after the step's record (that record is the normal one)
                n_stopped = 0
                for r in range(r0, r1):
                    if diverged[r] < 0 and stop_step[r] < 0:
                        c = until_fn(row_ptr(x, r), 1, d, energy[r], row_ptr(until_theta, 0), until_theta.shape[0],
                                     row_ptr(until_aux, 0), until_aux.shape[0], row_ptr(until_work, b),
                                     until_work.shape[1])
                        if c > 0:
                            stop_step[r] = step
                            stop_rule[r] = c - 1
                    if stop_step[r] >= 0:
                        n_stopped += 1
                if n_stopped == r1 - r0:
                    break  # every replica of the block has stopped
