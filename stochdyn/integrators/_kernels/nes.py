"""Kernels of the natural evolution strategies xNES and SNES (Wierstra et al. 2014, JMLR 15, 949).

One replica = one run; U is minimised; serial over a replica range, GIL released (see
:mod:`.threads`). Utilities ``f_k`` of the offspring: rank-based (``ranked``: ``uvals[i]`` for the
i-th best) or the raw energies centred on their mean, ``f_k = -(U_k - mean U)/(lambda - 1)``, whose
search gradients are unbiased for the gradient of the Gaussian-smoothed U.

SNES (their Algorithm 6): s_k ~ N(0, I), x_k = m + sigma * s_k (per coordinate);
m += eta_mu sigma * sum f_k s_k; sigma *= exp(eta_sigma/2 sum f_k (s_k^2 - 1)).

xNES (their Algorithm 5): x_k = m + sigma B s_k with det B = 1; G_delta = sum f_k s_k,
G_M = sum f_k (s_k s_k^T - I), G_sigma = tr(G_M)/d, G_B = G_M - G_sigma I;
m += eta_mu sigma B G_delta; sigma *= exp(eta_sigma/2 G_sigma); B = B expm(eta_B/2 G_B), the
exponential of the symmetric G_B from its eigendecomposition (the compiled ``eigh``).

A stopping rule (``until_fn`` not None) halts a replica as in :mod:`.evolution`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..._numba_utils import row_ptr
from ...random._core import normal
from .evolution import freeze, rank, record_index, record_summary, score
from .popgen import stop_here


@njit(inline="always", cache=True)
def _utilities(U, idx, tmp, util, uvals, ranked, r, lam):
    """Utilities of the ``lam`` offspring into ``util[r]``; False if raw utilities are not finite."""
    if ranked:
        rank(U, r, idx, tmp, lam)
        for i in range(lam):
            util[r, idx[r, i]] = uvals[i]
        return True
    mean = 0.0
    for k in range(lam):
        mean += U[r, k]
    mean /= lam
    for k in range(lam):
        util[r, k] = -(U[r, k] - mean) / (lam - 1)
    return math.isfinite(mean)


@njit(nogil=True, cache=True, error_model="numpy")
def snes(fn, theta, m, sd, best, pop_energy, evals, S, X, G, U, idx, tmp, util, uvals, work, rng, diverged,
         halted, eta_mu, eta_sigma, ranked, step0, n_steps, record_every, out_mean, out_e, out_sig, out_var, out_pe,
         out_best, out_ev, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """SNES generations of replicas ``r0 .. r1-1`` (``sd``: per-coordinate step sizes; ``work`` (R, 2, d))."""
    d = m.shape[1]
    lam = S.shape[1]
    for r in range(r0, r1):
        if diverged[r] >= 0:
            continue
        if until_fn is not None:
            if stop_step[r] >= 0:
                continue  # stopped in an earlier call: frozen
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for s in range(n_steps):
            step = step0 + s + 1
            if halted[r] < 0:
                for k in range(lam):
                    for j in range(d):
                        z, s0, s1 = normal(s0, s1)
                        S[r, k, j] = z
                        X[r, k, j] = m[r, j] + sd[r, j] * z
                ok = score(fn, theta, X, G, U, r, lam, pop_energy, best)
                if ok:
                    evals[r] += lam
                    ok = _utilities(U, idx, tmp, util, uvals, ranked, r, lam)
                for j in range(d):
                    gm = 0.0
                    gs = 0.0
                    for k in range(lam):
                        gm += util[r, k] * S[r, k, j]
                        gs += util[r, k] * (S[r, k, j] * S[r, k, j] - 1.0)
                    m[r, j] += eta_mu * sd[r, j] * gm
                    sd[r, j] *= math.exp(0.5 * eta_sigma * gs)
                    ok = ok and math.isfinite(m[r, j]) and math.isfinite(sd[r, j]) and sd[r, j] > 0.0
                if not ok:
                    freeze(m, r, diverged, step)
                    break
            if step % record_every == 0:
                k = record_index(k0, step, step0, record_every)
                logs = 0.0
                for j in range(d):
                    out_var[r, k, j] = sd[r, j] * sd[r, j]
                    logs += math.log(sd[r, j])
                record_summary(fn, theta, m, work, r, k, math.exp(logs / d), pop_energy[r], best[r], evals[r],
                               out_mean, out_e, out_sig, out_pe, out_best, out_ev)
            if until_fn is not None:
                if halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, m, 1,
                                 best[r], r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1


@njit(nogil=True, cache=True, error_model="numpy")
def xnes(fn, eigh, theta, m, sigma, Bm, best, pop_energy, evals, S, X, G, U, idx, tmp, util, uvals, GM, V, T,
         work, rng, diverged, halted, eta_mu, eta_sigma, eta_b, ranked, step0, n_steps, record_every, out_mean, out_e,
         out_sig, out_var, out_pe, out_best, out_ev, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """xNES generations of replicas ``r0 .. r1-1``; ``GM``, ``V``, ``T`` (R, d, d) and ``work`` (R, 3, d) are scratch."""
    d = m.shape[1]
    lam = S.shape[1]
    for r in range(r0, r1):
        if diverged[r] >= 0:
            continue
        if until_fn is not None:
            if stop_step[r] >= 0:
                continue  # stopped in an earlier call: frozen
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for s in range(n_steps):
            step = step0 + s + 1
            if halted[r] < 0:
                # -- sample x_k = m + sigma B s_k
                for k in range(lam):
                    for j in range(d):
                        z, s0, s1 = normal(s0, s1)
                        S[r, k, j] = z
                    for i in range(d):
                        acc = 0.0
                        for j in range(d):
                            acc += Bm[r, i, j] * S[r, k, j]
                        X[r, k, i] = m[r, i] + sigma[r] * acc
                ok = score(fn, theta, X, G, U, r, lam, pop_energy, best)
                if ok:
                    evals[r] += lam
                    ok = _utilities(U, idx, tmp, util, uvals, ranked, r, lam)
                # -- natural gradient: G_delta into work[r, 0], G_M into GM[r]
                usum = 0.0
                for k in range(lam):
                    usum += util[r, k]
                for i in range(d):
                    acc = 0.0
                    for k in range(lam):
                        acc += util[r, k] * S[r, k, i]
                    work[r, 0, i] = acc
                    for j in range(i + 1):
                        acc = 0.0
                        for k in range(lam):
                            acc += util[r, k] * S[r, k, i] * S[r, k, j]
                        GM[r, i, j] = acc - (usum if i == j else 0.0)
                        GM[r, j, i] = GM[r, i, j]
                g_sigma = 0.0
                for i in range(d):
                    g_sigma += GM[r, i, i]
                g_sigma /= d
                # -- m += eta_mu sigma B G_delta; sigma *= exp(eta_sigma/2 G_sigma)
                for i in range(d):
                    acc = 0.0
                    for j in range(d):
                        acc += Bm[r, i, j] * work[r, 0, j]
                    m[r, i] += eta_mu * sigma[r] * acc
                    ok = ok and math.isfinite(m[r, i])
                sigma[r] *= math.exp(0.5 * eta_sigma * g_sigma)
                ok = ok and math.isfinite(sigma[r]) and sigma[r] > 0.0
                if ok:
                    # -- B = B expm(eta_B/2 G_B), G_B = G_M - G_sigma I = V diag(l) V^T
                    for i in range(d):
                        for j in range(d):
                            GM[r, i, j] = 0.5 * eta_b * (GM[r, i, j] - (g_sigma if i == j else 0.0))
                    eigh(row_ptr(GM, r), row_ptr(V, r), row_ptr(work[r], 1), row_ptr(work[r], 2), d)
                    for i in range(d):  # T = B V diag(exp(l))
                        for j in range(d):
                            acc = 0.0
                            for k in range(d):
                                acc += Bm[r, i, k] * V[r, k, j]
                            T[r, i, j] = acc * math.exp(work[r, 1, j])
                    for i in range(d):  # B = T V^T
                        for j in range(d):
                            acc = 0.0
                            for k in range(d):
                                acc += T[r, i, k] * V[r, j, k]
                            Bm[r, i, j] = acc
                            ok = ok and math.isfinite(acc)
                if not ok:
                    freeze(m, r, diverged, step)
                    break
            if step % record_every == 0:
                k = record_index(k0, step, step0, record_every)
                for i in range(d):
                    c = 0.0
                    for j in range(d):
                        c += Bm[r, i, j] * Bm[r, i, j]
                    out_var[r, k, i] = sigma[r] * sigma[r] * c
                record_summary(fn, theta, m, work, r, k, sigma[r], pop_energy[r], best[r], evals[r], out_mean, out_e,
                               out_sig, out_pe, out_best, out_ev)
            if until_fn is not None:
                if halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, m, 1,
                                 best[r], r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1
