"""Kernels of the evolution strategies and the genetic algorithm; one replica = one independent run.

All minimise the landscape's U. ``prange`` runs over replicas (over blocks of replicas for the
(1+1)-ES); every replica draws only from its own generator, so results do not depend on threads,
chunking or which other replicas run. Offspring of one replica are evaluated with one call of the
landscape's compiled block function. A non-finite offspring energy ranks last; a run whose mean,
step size or covariance becomes non-finite (or not positive definite) is set to NaN and frozen,
with its generation written to ``diverged``.

Common record arrays (``out_*``), written at generations that are multiples of ``record_every``
into record ``k0 + (step - step0) // record_every - 1``: ``mean`` (R, T, d), ``energy`` (U at the
mean; for the GA the mean U of the population), ``sigma`` (step size), ``variance`` (per-coordinate
variance of the search distribution, or of the GA population), ``population_energy`` (mean U of the
generation's offspring), ``best_energy`` (best U evaluated so far), ``evaluations``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..._numba_utils import row_ptr
from ...random._core import normal, randbelow, uniform
from .langevin import _freeze
from .popgen import write_individuals, write_moments


@njit(inline="always", cache=True)
def eval_rows(fn, theta, x, grad, u, r, n):
    """U of the ``n`` rows of ``x[r]`` (a C-contiguous (n, d) block) into ``u[r, :n]``."""
    fn(row_ptr(x, r), row_ptr(grad, r), row_ptr(u, r), n, x.shape[x.ndim - 1], row_ptr(theta, 0), theta.shape[0])


@njit(inline="always", cache=True)
def _key(v):
    return v if v == v else np.inf  # NaN ranks last


@njit(inline="always", cache=True)
def argsort_small(u, r, idx, n):
    """Insertion sort of ``idx[r, :n]`` by ``u[r, idx]`` ascending (stable; NaN last)."""
    for i in range(n):
        idx[r, i] = i
    for i in range(1, n):
        j = idx[r, i]
        key = _key(u[r, j])
        k = i - 1
        while k >= 0 and _key(u[r, idx[r, k]]) > key:
            idx[r, k + 1] = idx[r, k]
            k -= 1
        idx[r, k + 1] = j


@njit(inline="always", cache=True)
def record_point(fn, theta, m, mgrad, mu, r, k, sig, var_scale, pop_e, best, evals,
                 out_mean, out_e, out_sig, out_var, out_pe, out_best, out_ev):
    """Write the summaries of replica ``r`` into record ``k``; U at the mean is evaluated here (not counted)."""
    d = m.shape[1]
    eval_rows(fn, theta, m, mgrad, mu, r, 1)
    for j in range(d):
        out_mean[r, k, j] = m[r, j]
        out_var[r, k, j] = sig * sig * var_scale[j]
    out_e[r, k] = mu[r, 0]
    out_sig[r, k] = sig
    out_pe[r, k] = pop_e
    out_best[r, k] = best
    out_ev[r, k] = evals


# ---------------------------------------------------------------------------------------------
# (1+1)-ES with the 1/5th success rule
# ---------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def one_plus_one(fn, theta, x, ux, sigma, best, y, gy, uy, rng, diverged, up_factor, down_factor,
                 step0, n_steps, record_every, out_mean, out_e, out_sig, out_var, out_best, out_ev, k0, B):
    """y = x + sigma * N(0, I); accept if U(y) <= U(x); sigma *= up_factor on success, down_factor otherwise."""
    R, d = x.shape
    nblocks = (R + B - 1) // B
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        for s in range(n_steps):
            step = step0 + s + 1
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                for j in range(d):
                    z, s0, s1 = normal(s0, s1)
                    y[r, j] = x[r, j] + sigma[r] * z
                rng[r, 0] = s0
                rng[r, 1] = s1
            fn(row_ptr(y, r0), row_ptr(gy, r0), row_ptr(uy, r0), r1 - r0, d, row_ptr(theta, 0), theta.shape[0])
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
                if uy[r] <= ux[r]:
                    for j in range(d):
                        x[r, j] = y[r, j]
                    ux[r] = uy[r]
                    sigma[r] *= up_factor
                else:
                    sigma[r] *= down_factor
                if ux[r] < best[r]:
                    best[r] = ux[r]
                if not (math.isfinite(sigma[r]) and sigma[r] > 0.0):
                    _freeze(x, r, diverged, step)
                    ux[r] = np.nan
                if step % record_every == 0:
                    k = k0 + (step - step0) // record_every - 1
                    for j in range(d):
                        out_mean[r, k, j] = x[r, j]
                        out_var[r, k, j] = sigma[r] * sigma[r]
                    out_e[r, k] = ux[r]
                    out_sig[r, k] = sigma[r]
                    out_best[r, k] = best[r]
                    out_ev[r, k] = step + 1


# ---------------------------------------------------------------------------------------------
# (mu/mu_w, lambda)-ES with cumulative step-size adaptation, and CMA-ES
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _sample_offspring(m, sigma, Bm, D, full, Z, Y, X, W, r, lam, s0, s1):
    """z ~ N(0, I); y = B D z (full) or z; x = m + sigma y."""
    d = m.shape[1]
    for k in range(lam):
        for j in range(d):
            z, s0, s1 = normal(s0, s1)
            Z[r, k, j] = z
            W[j] = D[r, j] * z
        for i in range(d):
            if full:
                acc = 0.0
                for j in range(d):
                    acc += Bm[r, i, j] * W[j]
            else:
                acc = Z[r, k, i]
            Y[r, k, i] = acc
            X[r, k, i] = m[r, i] + sigma[r] * acc
    return s0, s1


@njit(inline="always", cache=True)
def _tred2(V, d, e, n):
    """Householder reduction of the symmetric ``V`` (overwritten) to tridiagonal form (d: diagonal, e:
    off-diagonal), accumulating the orthogonal transformation in ``V``: EISPACK tred2 (Smith et al. 1976)
    as in JAMA's EigenvalueDecomposition."""
    for j in range(n):
        d[j] = V[n - 1, j]
    for i in range(n - 1, 0, -1):
        scale = 0.0
        h = 0.0
        for k in range(i):
            scale += abs(d[k])
        if scale == 0.0:
            e[i] = d[i - 1]
            for j in range(i):
                d[j] = V[i - 1, j]
                V[i, j] = 0.0
                V[j, i] = 0.0
        else:
            for k in range(i):
                d[k] /= scale
                h += d[k] * d[k]
            f = d[i - 1]
            g = math.sqrt(h)
            if f > 0:
                g = -g
            e[i] = scale * g
            h = h - f * g
            d[i - 1] = f - g
            for j in range(i):
                e[j] = 0.0
            for j in range(i):
                f = d[j]
                V[j, i] = f
                g = e[j] + V[j, j] * f
                for k in range(j + 1, i):
                    g += V[k, j] * d[k]
                    e[k] += V[k, j] * f
                e[j] = g
            f = 0.0
            for j in range(i):
                e[j] /= h
                f += e[j] * d[j]
            hh = f / (h + h)
            for j in range(i):
                e[j] -= hh * d[j]
            for j in range(i):
                f = d[j]
                g = e[j]
                for k in range(j, i):
                    V[k, j] -= f * e[k] + g * d[k]
                d[j] = V[i - 1, j]
                V[i, j] = 0.0
        d[i] = h
    for i in range(n - 1):
        V[n - 1, i] = V[i, i]
        V[i, i] = 1.0
        h = d[i + 1]
        if h != 0.0:
            for k in range(i + 1):
                d[k] = V[k, i + 1] / h
            for j in range(i + 1):
                g = 0.0
                for k in range(i + 1):
                    g += V[k, i + 1] * V[k, j]
                for k in range(i + 1):
                    V[k, j] -= g * d[k]
        for k in range(i + 1):
            V[k, i + 1] = 0.0
    for j in range(n):
        d[j] = V[n - 1, j]
        V[n - 1, j] = 0.0
    V[n - 1, n - 1] = 1.0
    e[0] = 0.0


@njit(inline="always", cache=True)
def _tql2(V, d, e, n):
    """Eigenvalues (into ``d``) and eigenvectors (columns of ``V``) of the tridiagonal matrix from
    :func:`_tred2`, by the implicit QL method with shifts (EISPACK tql2, as in JAMA)."""
    for i in range(1, n):
        e[i - 1] = e[i]
    e[n - 1] = 0.0
    f = 0.0
    tst1 = 0.0
    eps = 2.0**-52
    for l in range(n):
        tst1 = max(tst1, abs(d[l]) + abs(e[l]))
        m = l
        while m < n:
            if abs(e[m]) <= eps * tst1:
                break
            m += 1
        if m > l:
            for it in range(100):
                g = d[l]
                p = (d[l + 1] - g) / (2.0 * e[l])
                r = math.sqrt(p * p + 1.0)
                if p < 0:
                    r = -r
                d[l] = e[l] / (p + r)
                d[l + 1] = e[l] * (p + r)
                dl1 = d[l + 1]
                h = g - d[l]
                for i in range(l + 2, n):
                    d[i] -= h
                f = f + h
                p = d[m]
                c = 1.0
                c2 = c
                c3 = c
                el1 = e[l + 1]
                s = 0.0
                s2 = 0.0
                for i in range(m - 1, l - 1, -1):
                    c3 = c2
                    c2 = c
                    s2 = s
                    g = c * e[i]
                    h = c * p
                    r = math.sqrt(p * p + e[i] * e[i])
                    e[i + 1] = s * r
                    s = e[i] / r
                    c = p / r
                    p = c * d[i] - s * g
                    d[i + 1] = h + s * (c * g + s * d[i])
                    for k in range(n):
                        h = V[k, i + 1]
                        V[k, i + 1] = s * V[k, i] + c * h
                        V[k, i] = c * V[k, i] - s * h
                p = -s * s2 * c3 * el1 * e[l] / dl1
                e[l] = s * p
                d[l] = c * p
                if not (abs(e[l]) > eps * tst1):
                    break
        d[l] = d[l] + f
        e[l] = 0.0


@njit(inline="always", cache=True)
def _update_eigen(C, Bm, D, ev, e, d):
    """C = B D^2 B^T: copy C into B, tridiagonalise (tred2) and diagonalise (tql2) in place.

    ``ev`` and ``e`` are work vectors of length d. Returns False if C is not (numerically) positive
    definite.
    """
    for i in range(d):
        for j in range(d):
            Bm[i, j] = C[i, j]
    _tred2(Bm, ev, e, d)
    _tql2(Bm, ev, e, d)
    ok = True
    for i in range(d):
        if not (ev[i] > 0.0 and math.isfinite(ev[i])):
            ok = False
        else:
            D[i] = math.sqrt(ev[i])
    return ok


@njit(parallel=True, cache=True)
def cma(fn, theta, m, sigma, ps, pc, C, Bm, D, best, Z, Y, X, G, U, idx, zw, yw, vs, mgrad, mu_buf,
        rng, diverged, weights, mu, cs, ds, cc, c1, cmu, mueff, chi_n, full, eigen_every,
        step0, n_steps, record_every, out_mean, out_e, out_sig, out_var, out_pe, out_best, out_ev, out_x,
        record_x, k0):
    """One generation of CMA-ES (``full``; Hansen 2016, arXiv:1604.00772, default parameters) or of the
    (mu/mu_w, lambda)-ES with cumulative step-size adaptation (``not full``: C = I, no covariance update).

    z_k ~ N(0, I), y_k = B D z_k, x_k = m + sigma y_k; rank by U; y_w = sum_i w_i y_{i:lam};
    m += sigma y_w; p_s = (1-c_s) p_s + sqrt(c_s(2-c_s) mu_eff) B z_w;
    sigma *= exp(c_s/d_s (|p_s|/E|N(0,I)| - 1)); p_c = (1-c_c) p_c + h_s sqrt(c_c(2-c_c) mu_eff) y_w;
    C = (1 - c_1 - c_mu + (1-h_s) c_1 c_c (2-c_c)) C + c_1 p_c p_c^T + c_mu sum_i w_i y_i y_i^T.
    """
    R, d = m.shape
    lam = Z.shape[1]
    for r in prange(R):
        if diverged[r] >= 0:
            continue
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for s in range(n_steps):
            step = step0 + s + 1
            s0, s1 = _sample_offspring(m, sigma, Bm, D, full, Z, Y, X, zw[r], r, lam, s0, s1)
            eval_rows(fn, theta, X, G, U, r, lam)
            argsort_small(U, r, idx, lam)
            pop_e = 0.0
            for k in range(lam):
                pop_e += U[r, k]
            pop_e /= lam
            if _key(U[r, idx[r, 0]]) < best[r]:
                best[r] = U[r, idx[r, 0]]
            for j in range(d):
                a = 0.0
                b = 0.0
                for i in range(mu):
                    a += weights[i] * Z[r, idx[r, i], j]
                    b += weights[i] * Y[r, idx[r, i], j]
                zw[r, j] = a
                yw[r, j] = b
                m[r, j] += sigma[r] * b
            # cumulation for sigma: C^{-1/2} y_w = B z_w
            norm2 = 0.0
            cfac = math.sqrt(cs * (2.0 - cs) * mueff)
            for i in range(d):
                if full:
                    acc = 0.0
                    for j in range(d):
                        acc += Bm[r, i, j] * zw[r, j]
                else:
                    acc = zw[r, i]
                ps[r, i] = (1.0 - cs) * ps[r, i] + cfac * acc
                norm2 += ps[r, i] * ps[r, i]
            pnorm = math.sqrt(norm2)
            sigma[r] *= math.exp((cs / ds) * (pnorm / chi_n - 1.0))
            if full:
                hs = 1.0 if pnorm / math.sqrt(1.0 - (1.0 - cs) ** (2.0 * step)) < (1.4 + 2.0 / (d + 1.0)) * chi_n else 0.0
                cfc = math.sqrt(cc * (2.0 - cc) * mueff)
                for i in range(d):
                    pc[r, i] = (1.0 - cc) * pc[r, i] + hs * cfc * yw[r, i]
                keep = 1.0 - c1 - cmu + (1.0 - hs) * c1 * cc * (2.0 - cc)
                for i in range(d):  # lower triangle: decay, rank-one, then the rank-mu terms
                    a = c1 * pc[r, i]
                    for j in range(i + 1):
                        C[r, i, j] = keep * C[r, i, j] + a * pc[r, j]
                for k in range(mu):
                    q = idx[r, k]
                    for i in range(d):
                        a = cmu * weights[k] * Y[r, q, i]
                        for j in range(i + 1):
                            C[r, i, j] += a * Y[r, q, j]
                for i in range(d):
                    for j in range(i):
                        C[r, j, i] = C[r, i, j]
            ok = math.isfinite(sigma[r]) and sigma[r] > 0.0
            for j in range(d):
                ok = ok and math.isfinite(m[r, j])
            if ok and full and step % eigen_every == 0:
                ok = _update_eigen(C[r], Bm[r], D[r], zw[r], yw[r], d)  # zw, yw are free here
            if not ok:
                _freeze(m, r, diverged, step)
                break
            if step % record_every == 0:
                k = k0 + (step - step0) // record_every - 1
                if full:
                    for j in range(d):
                        vs[r, j] = C[r, j, j]
                else:
                    for j in range(d):
                        vs[r, j] = 1.0
                record_point(fn, theta, m, mgrad, mu_buf, r, k, sigma[r], vs[r], pop_e, best[r], lam * step,
                             out_mean, out_e, out_sig, out_var, out_pe, out_best, out_ev)
                if record_x:
                    for i in range(lam):
                        for j in range(d):
                            out_x[r, k, i, j] = X[r, i, j]
        rng[r, 0] = s0
        rng[r, 1] = s1


# ---------------------------------------------------------------------------------------------
# OpenES: antithetic Gaussian-smoothing gradient estimate
# ---------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def open_es(fn, theta, m, vel, best, E, X, G, U, idx, ranks, grad, mgrad, mu_buf, rng, diverged, sigma, lr, momentum,
            centered_ranks, step0, n_steps, record_every, out_mean, out_e, out_grad, out_pe, out_best, out_ev, k0):
    """g = 1/(2 sigma P) sum_k (f(m + sigma e_k) - f(m - sigma e_k)) e_k; v = momentum v + g; m -= lr v.

    f = U (an unbiased estimate of grad E[U(m + sigma e)]), or centred ranks of U in [-1/2, 1/2]
    (``centered_ranks``; Salimans et al. 2017).
    """
    R, d = m.shape
    P = E.shape[1]
    for r in prange(R):
        if diverged[r] >= 0:
            continue
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for s in range(n_steps):
            step = step0 + s + 1
            for k in range(P):
                for j in range(d):
                    z, s0, s1 = normal(s0, s1)
                    E[r, k, j] = z
                    X[r, 2 * k, j] = m[r, j] + sigma * z
                    X[r, 2 * k + 1, j] = m[r, j] - sigma * z
            eval_rows(fn, theta, X, G, U, r, 2 * P)
            pop_e = 0.0
            for k in range(2 * P):
                pop_e += U[r, k]
                if _key(U[r, k]) < best[r]:
                    best[r] = U[r, k]
            pop_e /= 2 * P
            if centered_ranks:
                argsort_small(U, r, idx, 2 * P)
                for i in range(2 * P):
                    ranks[r, idx[r, i]] = i / (2.0 * P - 1.0) - 0.5
            for j in range(d):
                grad[r, j] = 0.0
            for k in range(P):
                if centered_ranks:
                    diff = ranks[r, 2 * k] - ranks[r, 2 * k + 1]
                else:
                    diff = U[r, 2 * k] - U[r, 2 * k + 1]
                for j in range(d):
                    grad[r, j] += diff * E[r, k, j]
            ok = True
            for j in range(d):
                grad[r, j] /= 2.0 * sigma * P
                vel[r, j] = momentum * vel[r, j] + grad[r, j]
                m[r, j] -= lr * vel[r, j]
                ok = ok and math.isfinite(m[r, j])
            if not ok:
                _freeze(m, r, diverged, step)
                break
            if step % record_every == 0:
                k = k0 + (step - step0) // record_every - 1
                eval_rows(fn, theta, m, mgrad, mu_buf, r, 1)
                for j in range(d):
                    out_mean[r, k, j] = m[r, j]
                    out_grad[r, k, j] = grad[r, j]
                out_e[r, k] = mu_buf[r, 0]
                out_pe[r, k] = pop_e
                out_best[r, k] = best[r]
                out_ev[r, k] = 2 * P * step
        rng[r, 0] = s0
        rng[r, 1] = s1


# ---------------------------------------------------------------------------------------------
# Genetic algorithm
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def ga_record(x, u, r, k, evals, out_mean, out_var, out_e, out_best, out_ev, out_x, record_x):
    N = x.shape[1]
    write_moments(x, r, k, out_mean, out_var)
    e = 0.0
    b = np.inf
    for i in range(N):
        e += u[r, i]
        if _key(u[r, i]) < b:
            b = u[r, i]
    out_e[r, k] = e / N
    out_best[r, k] = b
    out_ev[r, k] = evals
    if record_x:
        write_individuals(x, r, k, out_x)


@njit(parallel=True, cache=True)
def ga_record_all(x, u, diverged, k, evals, out_mean, out_var, out_e, out_best, out_ev, out_x, record_x):
    for r in prange(x.shape[0]):
        if diverged[r] < 0:
            ga_record(x, u, r, k, evals, out_mean, out_var, out_e, out_best, out_ev, out_x, record_x)


@njit(inline="always", cache=True)
def _tournament(u, r, N, size, s0, s1):
    best, s0, s1 = randbelow(N, s0, s1)
    for t in range(size - 1):
        c, s0, s1 = randbelow(N, s0, s1)
        if _key(u[r, c]) < _key(u[r, best]):
            best = c
    return best, s0, s1


@njit(parallel=True, cache=True)
def genetic_algorithm(fn, theta, x, xnew, G, u, idx, rng, diverged, tournament, crossover_rate, mutation_rate,
                      mutation_scale, n_elite, step0, n_steps, record_every, out_mean, out_var, out_e, out_best,
                      out_ev, out_x, record_x, k0):
    """Generational GA: the ``n_elite`` best survive unchanged; every other child has parents chosen by
    tournaments of size ``tournament``, uniform crossover with probability ``crossover_rate``, and
    each gene mutated with probability ``mutation_rate`` by ``mutation_scale * N(0, 1)``."""
    R, N, d = x.shape
    for r in prange(R):
        if diverged[r] >= 0:
            continue
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        eval_rows(fn, theta, x, G, u, r, N)
        for s in range(n_steps):
            step = step0 + s + 1
            if n_elite > 0:
                argsort_small(u, r, idx, N)
            for i in range(N):
                if i < n_elite:
                    e = idx[r, i]
                    for j in range(d):
                        xnew[r, i, j] = x[r, e, j]
                    continue
                a, s0, s1 = _tournament(u, r, N, tournament, s0, s1)
                v, s0, s1 = uniform(s0, s1)
                cross = v < crossover_rate
                b = a
                if cross:
                    b, s0, s1 = _tournament(u, r, N, tournament, s0, s1)
                for j in range(d):
                    g = x[r, a, j]
                    if cross:
                        h, s0, s1 = uniform(s0, s1)
                        if h >= 0.5:
                            g = x[r, b, j]
                    h, s0, s1 = uniform(s0, s1)
                    if h < mutation_rate:
                        z, s0, s1 = normal(s0, s1)
                        g += mutation_scale * z
                    xnew[r, i, j] = g
            ok = True
            for i in range(N):
                for j in range(d):
                    x[r, i, j] = xnew[r, i, j]
                    ok = ok and math.isfinite(xnew[r, i, j])
            if not ok:
                diverged[r] = step
                for i in range(N):
                    for j in range(d):
                        x[r, i, j] = np.nan
                break
            eval_rows(fn, theta, x, G, u, r, N)
            if step % record_every == 0:
                ga_record(x, u, r, k0 + (step - step0) // record_every - 1, N * (step + 1), out_mean, out_var,
                          out_e, out_best, out_ev, out_x, record_x)
        rng[r, 0] = s0
        rng[r, 1] = s1
