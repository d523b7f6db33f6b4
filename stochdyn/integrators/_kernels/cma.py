"""Kernels of CMA-ES (full covariance), separable CMA-ES and the CSA-ES, with IPOP/BIPOP restarts.

One replica = one run (and its restarts). :func:`cma` learns a full covariance C = B D^2 B^T
(eigendecomposition through the compiled :data:`~stochdyn.integrators._kernels.eigen.eigh`,
refreshed lazily), or a diagonal C (sep-CMA-ES, Ros & Hansen 2008), or, with ``c_1 = c_mu = 0``,
keeps C = I (the (mu/mu_w, lambda)-ES with cumulative step-size adaptation).

Generation (Hansen 2016, arXiv:1604.00772, with the notation there): z_k ~ N(0, I), y_k = B D z_k,
x_k = m + sigma y_k; rank by U; m += sigma sum_{i<=mu} w_i y_{i:lam};
p_s = (1-c_s) p_s + sqrt(c_s(2-c_s) mu_eff) C^{-1/2} y_w; sigma *= exp(c_s/d_s (|p_s|/E|N(0,I)| - 1));
p_c = (1-c_c) p_c + h_s sqrt(c_c(2-c_c) mu_eff) y_w;
C = (1 + c_1 delta(h_s) - c_1 - c_mu sum_j w_j) C + c_1 p_c p_c^T + c_mu sum_i w_i^o y_{i:lam} y_{i:lam}^T,
with w_i^o = w_i for the positive weights and w_i n / |C^{-1/2} y_{i:lam}|^2 = w_i n / |z_{i:lam}|^2 for
the negative weights of the active update (all zero for the plain update, where sum_j w_j = 1).

Per-replica strategy parameters live in ``params[r]`` (indices ``P_*``) and ``weights[r]``, so a
restart can change lambda. Restarts (``hist is not None``; compiled only when used): when one of
pycma's termination criteria holds (:func:`run_ended`), a new run starts from the replica's initial
mean with a doubled population (IPOP; Auger & Hansen 2005) or, in BIPOP (Hansen 2009), alternately
a large one or a small one with a random population size and step size; the evaluation budget
halts the replica (``halted``) before a generation would exceed it. A run whose distribution
collapses numerically (sigma underflows to 0, or C stops being positive definite while finite)
has ended: it restarts, or halts without restarts; only non-finite numbers mean divergence. A
stopping rule (``until_fn`` not None) halts a replica after the generation (and restart) at which it
holds, on the mean and the lowest U so far (see :mod:`.evolution`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..._numba_utils import row_ptr
from ...random._core import normal, uniform
from .evolution import freeze, rank, record_index, record_summary, score
from .popgen import stop_here

# indices into params[r]
P_LAM, P_MU, P_MUEFF, P_CS, P_DS, P_CC, P_C1, P_CMU, P_CHI, P_EIGEN, P_SUMW, P_NW, P_HIST = range(13)
N_PARAMS = 13
# covariance models
COV_NONE, COV_DIAG, COV_FULL = 0, 1, 2
# spec[]: how parameters are made from lambda (used at restarts)
S_MU, S_EQUAL, S_ACTIVE, S_COV, S_CONSTANT_SIGMA = range(5)
# rconf[]: restart configuration
RC_MODE, RC_MAX_RESTARTS, RC_MAX_EVALS, RC_INCPOP, RC_LAM0, RC_SIGMA0 = range(6)
IPOP, BIPOP = 1, 2
# rint[r]: integer restart state
RI_RESTARTS, RI_IRUN, RI_SMALL_RUNS, RI_SMALL, RI_FLAT, RI_RUN_EVALS0 = range(6)
N_RINT = 6
# rflt[r]: float restart state
RF_BUDGET_LARGE, RF_BUDGET_SMALL, RF_SIGMA_START, RF_MAXITER = range(4)
N_RFLT = 4
# pycma's default termination tolerances (cma 4.x)
TOLFUN, TOLFUNHIST, TOLX, TOLUPSIGMA, TOLCONDITIONCOV, TOLFACUPX = 1e-11, 1e-12, 1e-11, 1e20, 1e14, 1e3


@njit(cache=True, error_model="numpy")
def strategy_parameters(n, lam, spec, p, w):
    """Default strategy parameters (Hansen 2016, Table 1) for dimension ``n`` and population ``lam``.

    ``spec``: mu (0: lam // 2), equal weights, active update, covariance model, constant sigma.
    Writes ``p`` (indices ``P_*``) and ``w[:lam]``: positive weights ``w_i ∝ ln((lam+1)/2) - ln i``
    (or 1/mu) summing to 1; for the active update the negative weights of the same formula scaled
    to sum to ``-min(1 + c_1/c_mu, 1 + 2 mu_eff^-/(mu_eff + 2), (1 - c_1 - c_mu)/(n c_mu))``.
    Separable C: c_1 and c_mu times (n + 2)/3 (Ros & Hansen 2008); no covariance: c_1 = c_mu = 0.
    """
    mu = int(spec[S_MU]) if spec[S_MU] > 0 else lam // 2
    base = math.log((lam + 1) / 2)
    s = 0.0
    for i in range(mu):
        w[i] = 1.0 if spec[S_EQUAL] else base - math.log(i + 1)
        s += w[i]
    q = 0.0
    for i in range(mu):
        w[i] /= s
        q += w[i] * w[i]
    mueff = 1.0 / q
    cs = (mueff + 2) / (n + mueff + 5)
    ds = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    cov = int(spec[S_COV])
    if cov == COV_DIAG:
        c1 = c1 * (n + 2) / 3.0
        cmu = min(1 - c1, cmu * (n + 2) / 3.0)
    elif cov == COV_NONE:
        c1 = 0.0
        cmu = 0.0
    if spec[S_CONSTANT_SIGMA]:
        cs = 0.0
    for i in range(mu, lam):
        w[i] = 0.0
    sumw = 1.0
    nw = mu
    if spec[S_ACTIVE] and cmu > 0.0 and lam > mu:
        neg = 0.0
        neg2 = 0.0
        for i in range(mu, lam):
            v = base - math.log(i + 1)
            w[i] = v
            neg += v
            neg2 += v * v
        mueff_neg = neg * neg / neg2
        alpha = min(1 + c1 / cmu, 1 + 2 * mueff_neg / (mueff + 2), (1 - c1 - cmu) / (n * cmu))
        for i in range(mu, lam):
            w[i] = alpha * w[i] / -neg
            sumw += w[i]
        nw = lam
    p[P_LAM] = lam
    p[P_MU] = mu
    p[P_MUEFF] = mueff
    p[P_CS] = cs
    p[P_DS] = ds
    p[P_CC] = cc
    p[P_C1] = c1
    p[P_CMU] = cmu
    p[P_CHI] = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    # purecma's lazy update: refresh B, D once more than 0.5 n lam / ((c1 + cmu) n^2) evaluations passed
    p[P_EIGEN] = math.floor(0.5 * n * lam / ((c1 + cmu) * n * n) / lam) + 1 if c1 + cmu > 0 else 1
    p[P_SUMW] = sumw
    p[P_NW] = nw
    p[P_HIST] = 10 + math.ceil(30.0 * n / lam)


@njit(inline="always", cache=True)
def _times_b(Bm, r, i, v):
    """Component ``i`` of ``B v`` (full model) or ``v[i]`` (``Bm`` None: B = I)."""
    if Bm is not None:
        acc = 0.0
        for j in range(v.shape[0]):
            acc += Bm[r, i, j] * v[j]
        return acc
    return v[i]


@njit(inline="always", cache=True)
def _c_ii(Cf, Cd, r, i):
    """Diagonal element i of C (full ``Cf`` or diagonal ``Cd``, the other None; 1 if both are None)."""
    c = 1.0
    if Cf is not None:
        c = Cf[r, i, i]
    if Cd is not None:
        c = Cd[r, i]
    return c


@njit(inline="always", cache=True)
def _active_weight(w, Z, q, r, k, d):
    """w_k, times n / |z_q|^2 for a negative weight (the active update's scaling)."""
    if w[r, k] >= 0.0:
        return w[r, k]
    z2 = 0.0
    for j in range(d):
        z2 += Z[r, q, j] * Z[r, q, j]
    return w[r, k] * d / z2


@njit(cache=True, error_model="numpy")
def run_ended(m, sigma, pc, Cf, Bm, Cd, D, U, idx, hist, rint, rflt, p, gen, r):
    """pycma's default termination criteria of the current run (cma 4.x ``_CMAStopDict``):
    maxiter, tolfun, tolfunhist, tolx, tolupsigma, tolconditioncov, tolfacupx, noeffectcoord,
    noeffectaxis, tolflatfitness. ``hist[r]`` is a ring of the best U of the last generations."""
    d = m.shape[1]
    lam = int(p[P_LAM])
    H = int(p[P_HIST])
    best = U[r, idx[r, 0]]
    hist[r, (gen - 1) % H] = best
    if best == U[r, idx[r, int(0.75 * lam)]]:
        rint[r, RI_FLAT] += 1
    else:
        rint[r, RI_FLAT] = 0
    if rint[r, RI_FLAT] > 1 or gen >= rflt[r, RF_MAXITER]:
        return True
    nh = min(gen, H)
    hlo = np.inf
    hhi = -np.inf
    for i in range(nh):
        hlo = min(hlo, hist[r, i])
        hhi = max(hhi, hist[r, i])
    flo = np.inf
    fhi = -np.inf
    for k in range(lam):
        if math.isfinite(U[r, k]):
            flo = min(flo, U[r, k])
            fhi = max(fhi, U[r, k])
    if (fhi - flo < TOLFUN and hhi - hlo < TOLFUN) or (nh > 9 and hhi - hlo < TOLFUNHIST):
        return True
    small = True
    dmax = 0.0
    dmin = np.inf
    for i in range(d):
        sd_i = sigma[r] * math.sqrt(_c_ii(Cf, Cd, r, i))
        if sd_i > rflt[r, RF_SIGMA_START] * TOLFACUPX or m[r, i] == m[r, i] + 0.2 * sd_i:
            return True
        small = small and sd_i < TOLX and abs(sigma[r] * pc[r, i]) < TOLX
        dmax = max(dmax, D[r, i])
        dmin = min(dmin, D[r, i])
    if small or sigma[r] / dmax > rflt[r, RF_SIGMA_START] * TOLUPSIGMA or dmax > math.sqrt(TOLCONDITIONCOV) * dmin:
        return True
    a = gen % d  # noeffectaxis: one principal axis per generation
    for i in range(d):
        if Bm is not None:
            b = Bm[r, i, a]
        else:
            b = 1.0 if i == a else 0.0
        step = 0.1 * sigma[r] * D[r, a] * b
        if m[r, i] != m[r, i] + step:
            return False
    return True


@njit(cache=True, error_model="numpy")
def restart(m, sigma, ps, pc, Cf, Bm, Cd, D, gen, evals, lam_r, params, weights, x_start, rint, rflt, rconf, spec, r,
            step, halted, s0, s1):
    """End the current run; start the next (IPOP or BIPOP), or halt the replica when no restart is left."""
    d = m.shape[1]
    run_evals = evals[r] - rint[r, RI_RUN_EVALS0]
    bipop = rconf[RC_MODE] == BIPOP
    if bipop:
        rflt[r, RF_BUDGET_SMALL if rint[r, RI_SMALL] else RF_BUDGET_LARGE] += run_evals
    rint[r, RI_IRUN] += 1
    if rint[r, RI_IRUN] - rint[r, RI_SMALL_RUNS] > rconf[RC_MAX_RESTARTS]:
        halted[r] = step
        return s0, s1
    lam0 = rconf[RC_LAM0]
    sigma0 = rconf[RC_SIGMA0]
    if bipop and rflt[r, RF_BUDGET_SMALL] < max(1.0, rflt[r, RF_BUDGET_LARGE]):
        rint[r, RI_SMALL] = 1
        rint[r, RI_SMALL_RUNS] += 1
        u, s0, s1 = uniform(s0, s1)
        sigma_start = sigma0 * 0.01**u
        u, s0, s1 = uniform(s0, s1)
        mult = rconf[RC_INCPOP] ** (rint[r, RI_IRUN] - rint[r, RI_SMALL_RUNS])
        lam = int(lam0 * mult ** (u * u))
        maxiter = min(100 + 150 * (d + 3) ** 2 / math.sqrt(lam), 0.5 * rflt[r, RF_BUDGET_LARGE] / lam)
    else:
        rint[r, RI_SMALL] = 0
        sigma_start = sigma0
        lam = int(lam0 * rconf[RC_INCPOP] ** (rint[r, RI_IRUN] - rint[r, RI_SMALL_RUNS]))
        maxiter = 100 + 150 * (d + 3) ** 2 / math.sqrt(lam)
    if lam > weights.shape[1]:  # beyond the buffers, sized by the budget: this run could not fit
        halted[r] = step
        return s0, s1
    rint[r, RI_RESTARTS] += 1
    rint[r, RI_FLAT] = 0
    rint[r, RI_RUN_EVALS0] = evals[r]
    rflt[r, RF_SIGMA_START] = sigma_start
    rflt[r, RF_MAXITER] = maxiter
    lam_r[r] = lam
    strategy_parameters(d, lam, spec, params[r], weights[r])
    sigma[r] = sigma_start
    gen[r] = 0
    for i in range(d):
        m[r, i] = x_start[r, i]
        ps[r, i] = 0.0
        pc[r, i] = 0.0
        D[r, i] = 1.0
        if Cf is not None:
            for j in range(d):
                Cf[r, i, j] = 1.0 if i == j else 0.0
                Bm[r, i, j] = 1.0 if i == j else 0.0
        if Cd is not None:
            Cd[r, i] = 1.0
    return s0, s1


@njit(nogil=True, cache=True, error_model="numpy")
def cma(fn, eigh, theta, m, sigma, ps, pc, Cf, Bm, Cd, D, best, pop_energy, gen, evals, lam_r, params, weights,
        Z, Y, X, G, U, idx, tmp, work, rng, diverged, halted, hist, rint, rflt, x_start, rconf, spec,
        step0, n_steps, record_every, out_mean, out_e, out_sig, out_var, out_pe, out_best, out_ev, out_x,
        out_restarts, out_lam, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """CMA-ES generations of replicas ``r0 .. r1-1``: full C (``Cf`` (R, d, d) and its eigenbasis ``Bm``;
    ``Cd`` None) or diagonal C (``Cd`` (R, d); ``Cf``, ``Bm`` None). Restarts when ``hist`` is an array;
    records of every offspring when ``out_x`` is, of restarts and population size when ``out_restarts`` is.

    Numba compiles only the branches of the configuration given: a branch on an argument that is
    None is removed before typing. The generation is written out in one function (no helper calls
    in the hot path): each helper would be compiled twice, alone and inside this kernel.
    ``work[r]`` is 4 x d scratch.
    """
    d = m.shape[1]
    for r in range(r0, r1):
        if diverged[r] >= 0:
            continue
        if until_fn is not None:
            if stop_step[r] >= 0:
                continue  # stopped in an earlier call: frozen
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        zw = work[r, 0]
        yw = work[r, 1]
        for s in range(n_steps):
            step = step0 + s + 1
            p = params[r]
            lam = lam_r[r]
            if halted[r] < 0 and hist is not None and rconf[RC_MAX_EVALS] > 0 and evals[r] + lam > rconf[RC_MAX_EVALS]:
                halted[r] = step - 1  # the budget is spent: no generation may exceed it
            if halted[r] < 0:
                gen[r] += 1
                g = gen[r]
                # -- sample: z ~ N(0, I), y = B (D z) or D z, x = m + sigma y
                for k in range(lam):
                    for j in range(d):
                        z, s0, s1 = normal(s0, s1)
                        Z[r, k, j] = z
                        zw[j] = D[r, j] * z
                    for i in range(d):
                        acc = _times_b(Bm, r, i, zw)
                        Y[r, k, i] = acc
                        X[r, k, i] = m[r, i] + sigma[r] * acc
                # -- evaluate and rank
                if not score(fn, theta, X, G, U, r, lam, pop_energy, best):
                    freeze(m, r, diverged, step)
                    break
                evals[r] += lam
                rank(U, r, idx, tmp, lam)
                # -- mean: m += sigma y_w; z_w for the step-size path
                mu = int(p[P_MU])
                for j in range(d):
                    a = 0.0
                    b = 0.0
                    for i in range(mu):
                        a += weights[r, i] * Z[r, idx[r, i], j]
                        b += weights[r, i] * Y[r, idx[r, i], j]
                    zw[j] = a
                    yw[j] = b
                    m[r, j] += sigma[r] * b
                # -- step size: p_s with C^{-1/2} y_w = B z_w, then sigma
                cs = p[P_CS]
                mueff = p[P_MUEFF]
                cfac = math.sqrt(cs * (2.0 - cs) * mueff)
                norm2 = 0.0
                for i in range(d):
                    acc = _times_b(Bm, r, i, zw)
                    ps[r, i] = (1.0 - cs) * ps[r, i] + cfac * acc
                    norm2 += ps[r, i] * ps[r, i]
                pnorm = math.sqrt(norm2)
                chi_n = p[P_CHI]
                sigma[r] *= math.exp((cs / p[P_DS]) * (pnorm / chi_n - 1.0))
                # -- evolution path p_c
                cc = p[P_CC]
                hs = 1.0 if pnorm / math.sqrt(1.0 - (1.0 - cs) ** (2.0 * g)) < (1.4 + 2.0 / (d + 1.0)) * chi_n else 0.0
                cfc = math.sqrt(cc * (2.0 - cc) * mueff)
                for i in range(d):
                    pc[r, i] = (1.0 - cc) * pc[r, i] + hs * cfc * yw[i]
                # -- covariance: decay, rank-one, rank-mu (active: negative weights scaled by n/|z|^2)
                ok = True  # every number finite (else the run diverged)
                collapsed = False  # finite, but the distribution is no longer positive definite
                c1 = p[P_C1]
                cmu = p[P_CMU]
                keep = 1.0 - c1 - cmu * p[P_SUMW] + (1.0 - hs) * c1 * cc * (2.0 - cc)
                nw = int(p[P_NW])
                if Cf is not None and (c1 > 0.0 or cmu > 0.0):
                    for i in range(d):  # lower triangle, mirrored after
                        a = c1 * pc[r, i]
                        for j in range(i + 1):
                            Cf[r, i, j] = keep * Cf[r, i, j] + a * pc[r, j]
                    for k in range(nw):
                        q = idx[r, k]
                        wk = _active_weight(weights, Z, q, r, k, d)
                        for i in range(d):
                            a = cmu * wk * Y[r, q, i]
                            for j in range(i + 1):
                                Cf[r, i, j] += a * Y[r, q, j]
                    for i in range(d):
                        for j in range(i):
                            Cf[r, j, i] = Cf[r, i, j]
                if Cd is not None and (c1 > 0.0 or cmu > 0.0):
                    for i in range(d):
                        Cd[r, i] = keep * Cd[r, i] + c1 * pc[r, i] * pc[r, i]
                    for k in range(nw):
                        q = idx[r, k]
                        wk = _active_weight(weights, Z, q, r, k, d)
                        for i in range(d):
                            Cd[r, i] += cmu * wk * Y[r, q, i] * Y[r, q, i]
                    for i in range(d):
                        if not math.isfinite(Cd[r, i]):
                            ok = False
                        elif not Cd[r, i] > 0.0:
                            collapsed = True
                        else:
                            D[r, i] = math.sqrt(Cd[r, i])
                ok = ok and math.isfinite(sigma[r])
                collapsed = collapsed or not sigma[r] > 0.0
                for j in range(d):
                    ok = ok and math.isfinite(m[r, j])
                # -- C = B D^2 B^T, refreshed lazily (eigenvalues into work[r, 0], work[r, 1] scratch)
                if ok and not collapsed and Cf is not None and g % int(p[P_EIGEN]) == 0:
                    eigh(row_ptr(Cf, r), row_ptr(Bm, r), row_ptr(work[r], 0), row_ptr(work[r], 1), d)
                    for i in range(d):
                        if not math.isfinite(zw[i]):
                            ok = False
                        elif not zw[i] > 0.0:
                            collapsed = True
                        else:
                            D[r, i] = math.sqrt(zw[i])
                if not ok:
                    freeze(m, r, diverged, step)
                    break
                if out_x is not None and step % record_every == 0:
                    k = record_index(k0, step, step0, record_every)
                    for i in range(lam):
                        for j in range(d):
                            out_x[r, k, i, j] = X[r, i, j]
                # -- the run ends when the distribution collapses numerically, or with restarts when
                #    pycma's criteria hold: then restart, or halt (records repeat the final state)
                if hist is not None:
                    if collapsed or run_ended(m, sigma, pc, Cf, Bm, Cd, D, U, idx, hist, rint, rflt, p, g, r):
                        s0, s1 = restart(m, sigma, ps, pc, Cf, Bm, Cd, D, gen, evals, lam_r, params, weights, x_start,
                                         rint, rflt, rconf, spec, r, step, halted, s0, s1)
                elif collapsed:
                    halted[r] = step
            if step % record_every == 0:
                k = record_index(k0, step, step0, record_every)
                for j in range(d):
                    out_var[r, k, j] = sigma[r] * sigma[r] * _c_ii(Cf, Cd, r, j)
                record_summary(fn, theta, m, work, r, k, sigma[r], pop_energy[r], best[r], evals[r], out_mean, out_e,
                               out_sig, out_pe, out_best, out_ev)
                if out_restarts is not None:
                    out_restarts[r, k] = rint[r, RI_RESTARTS]
                    out_lam[r, k] = lam_r[r]
            if until_fn is not None:
                if halted[r] < 0 or halted[r] == step:  # it moved in this generation
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, m, 1,
                                 best[r], r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1
