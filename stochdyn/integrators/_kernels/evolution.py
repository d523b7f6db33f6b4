"""Kernels of the (1+1)-ES, OpenES and the genetic algorithm, and what every ES kernel shares.

One replica = one independent run; U is minimised. Every kernel is a serial function of a replica
range (the last two arguments ``r0, r1``) that releases the GIL; :func:`stochdyn._numba_utils.run_blocks`
runs blocks of replicas on Numba's thread count. Each replica draws only from its own generator, so
results do not depend on threads, chunking or which other replicas run. Offspring of one replica
are evaluated with one call of the landscape's value-only block function.

Energies: an offspring with U = NaN or +inf ranks last (an infeasible point); U = -inf means the
landscape is unbounded below where the run went, and the replica is frozen as diverged (set to
NaN, its generation written to ``diverged``), as is a run whose mean or step size stops being
finite. The genetic algorithm flags a population with any non-finite U.

Per-replica ``halted`` (generation, -1 while running) freezes a replica that has finished — its
state and stream are untouched, and its records repeat its final state — as CMA-ES does when its
evaluation budget is spent. A stopping rule halts a replica the same way (``until_fn`` not None; the
six trailing ``until_*``/``stop_*`` arguments, docs/design.md "Stopping rules"): after each generation
the rule is called on the mean (or the parent, or the GA's population) and the lowest U so far
(:func:`stochdyn.integrators._kernels.popgen.stop_here`); a replica that stops ends its call, one
stopped in an earlier call is skipped. With ``until_fn=None`` Numba removes every branch that uses it.

Common record arrays (``out_*``), written after generations that are multiples of
``record_every`` into record ``k0 + (step - step0) // record_every - 1``: ``mean`` (R, T, d),
``energy`` (U at the mean; for the GA the mean U of the population), ``sigma``, ``variance``,
``population_energy`` (mean U of the generation's offspring), ``best_energy`` (lowest U evaluated so
far), ``evaluations``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..._numba_utils import row_ptr
from ...random._core import normal, randbelow, uniform
from .popgen import freeze as freeze_population
from .popgen import lowest, stop_here, write_moments

#: rows per landscape call when a replica's offspring are evaluated in blocks (the gradient slot
#: of a landscape without a value-only block needs a buffer of this many rows)
EVAL_ROWS = 64


@njit(inline="always", cache=True)
def eval_rows(fn, theta, x, grad, u, r, n):
    """U of the ``n`` rows of ``x[r]`` (a C-contiguous (n, d) block) into ``u[r, :n]``; ``grad[r]`` is scratch."""
    fn(row_ptr(x, r), row_ptr(grad, r), row_ptr(u, r), n, x.shape[x.ndim - 1], row_ptr(theta, 0), theta.shape[0])


@njit(inline="always", cache=True)
def eval_offspring(fn, theta, X, G, U, r, n):
    """U of the ``n`` offspring ``X[r, :n]`` into ``U[r, :n]``, in calls of at most ``G.shape[1]`` rows.

    Returns False if some U is -inf (the landscape is unbounded below there).
    """
    d = X.shape[2]
    step = G.shape[1]
    for i0 in range(0, n, step):
        m = min(step, n - i0)
        fn(row_ptr(X[r], i0), row_ptr(G, r), row_ptr(U[r], i0), m, d, row_ptr(theta, 0), theta.shape[0])
    for i in range(n):
        if U[r, i] == -np.inf:
            return False
    return True


@njit(inline="always", cache=True)
def energy_key(v):
    return v if v == v else np.inf  # NaN ranks last, like +inf


@njit(inline="always", cache=True)
def score(fn, theta, X, G, U, r, n, pop_energy, best):
    """Evaluate the ``n`` offspring of replica ``r`` (:func:`eval_offspring`); their mean U into
    ``pop_energy[r]``, the lowest (NaN ignored) into ``best[r]`` if lower. False if some U is -inf."""
    if not eval_offspring(fn, theta, X, G, U, r, n):
        return False
    e = 0.0
    for k in range(n):
        e += U[r, k]
        if energy_key(U[r, k]) < best[r]:
            best[r] = U[r, k]
    pop_energy[r] = e / n
    return True


@njit(cache=True)
def rank(u, r, idx, tmp, n):
    """Stable sort of ``idx[r, :n] = 0..n-1`` by ``u[r, idx]`` ascending (NaN last).

    Insertion sort up to 32 items, bottom-up merge sort of insertion-sorted runs of 32 beyond
    (``tmp[r]`` is scratch of the same length); both are stable, so the order is the same.
    """
    for i in range(n):
        idx[r, i] = i
    run = 32
    for lo in range(0, n, run):
        hi = min(n, lo + run)
        for i in range(lo + 1, hi):
            j = idx[r, i]
            key = energy_key(u[r, j])
            k = i - 1
            while k >= lo and energy_key(u[r, idx[r, k]]) > key:
                idx[r, k + 1] = idx[r, k]
                k -= 1
            idx[r, k + 1] = j
    width = run
    src, dst = idx[r], tmp[r]
    swapped = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(n, lo + width)
            hi = min(n, lo + 2 * width)
            a, b, o = lo, mid, lo
            while a < mid and b < hi:
                if energy_key(u[r, src[b]]) < energy_key(u[r, src[a]]):
                    dst[o] = src[b]
                    b += 1
                else:
                    dst[o] = src[a]
                    a += 1
                o += 1
            while a < mid:
                dst[o] = src[a]
                a += 1
                o += 1
            while b < hi:
                dst[o] = src[b]
                b += 1
                o += 1
        src, dst = dst, src
        swapped = not swapped
        width *= 2
    if swapped:
        for i in range(n):
            idx[r, i] = tmp[r, i]


@njit(inline="always", cache=True)
def freeze(m, r, diverged, step):
    """Set the state ``m[r]`` (a vector) to NaN and write the generation to ``diverged``."""
    diverged[r] = step
    for i in range(m.shape[1]):
        m[r, i] = np.nan


@njit(inline="always", cache=True)
def record_index(k0, step, step0, record_every):
    return k0 + (step - step0) // record_every - 1


@njit(inline="always", cache=True)
def record_summary(fn, theta, m, work, r, k, sig, pop_e, best, evals, out_mean, out_e, out_sig, out_pe, out_best,
                   out_ev):
    """Summaries of replica ``r`` into record ``k`` (the caller writes ``variance``): U at the mean
    ``m[r]`` is evaluated here and not counted; ``work`` (R, 2, d) is scratch."""
    eval_rows(fn, theta, m, work[:, 0], work[:, 1, :1], r, 1)
    out_e[r, k] = work[r, 1, 0]
    for j in range(m.shape[1]):
        out_mean[r, k, j] = m[r, j]
    out_sig[r, k] = sig
    out_pe[r, k] = pop_e
    out_best[r, k] = best
    out_ev[r, k] = evals


# ---------------------------------------------------------------------------------------------
# (1+1)-ES with the 1/5th success rule
# ---------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def one_plus_one(fn, theta, x, ux, sigma, best, y, gy, uy, rng, diverged, halted, up_factor, down_factor,
                 step0, n_steps, record_every, out_mean, out_e, out_sig, out_var, out_best, out_ev, k0, B,
                 until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """y = x + sigma * N(0, I); accept if U(y) <= U(x); sigma *= up_factor on success, down_factor otherwise.

    Replicas ``r0 .. r1-1`` in blocks of ``B``: one landscape call per block and generation.
    """
    d = x.shape[1]
    for b0 in range(r0, r1, B):
        b1 = min(r1, b0 + B)
        for s in range(n_steps):
            step = step0 + s + 1
            for r in range(b0, b1):
                if diverged[r] >= 0 or halted[r] >= 0:
                    continue
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                for j in range(d):
                    z, s0, s1 = normal(s0, s1)
                    y[r, j] = x[r, j] + sigma[r] * z
                rng[r, 0] = s0
                rng[r, 1] = s1
            fn(row_ptr(y, b0), row_ptr(gy, b0), row_ptr(uy, b0), b1 - b0, d, row_ptr(theta, 0), theta.shape[0])
            for r in range(b0, b1):
                if diverged[r] >= 0:
                    continue
                if halted[r] < 0:
                    if uy[r] <= ux[r]:
                        for j in range(d):
                            x[r, j] = y[r, j]
                        ux[r] = uy[r]
                        sigma[r] *= up_factor
                    else:
                        sigma[r] *= down_factor
                    if ux[r] < best[r]:
                        best[r] = ux[r]
                    if not (math.isfinite(sigma[r]) and sigma[r] > 0.0) or ux[r] == -np.inf:
                        freeze(x, r, diverged, step)
                        ux[r] = np.nan
                    if until_fn is not None:
                        if diverged[r] < 0:
                            stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, x, 1,
                                      best[r], r, step)
                if step % record_every == 0:
                    k = record_index(k0, step, step0, record_every)
                    for j in range(d):
                        out_mean[r, k, j] = x[r, j]
                        out_var[r, k, j] = sigma[r] * sigma[r]
                    out_e[r, k] = ux[r]
                    out_sig[r, k] = sigma[r]
                    out_best[r, k] = best[r]
                    out_ev[r, k] = (step if halted[r] < 0 else halted[r]) + 1


# ---------------------------------------------------------------------------------------------
# OpenES: antithetic Gaussian-smoothing gradient estimate
# ---------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def open_es(fn, theta, m, vel, best, pop_energy, E, X, G, U, idx, tmp, ranks, grad, work, u1, rng, diverged,
            halted, sigma, lr, momentum, centered_ranks, step0, n_steps, record_every, out_mean, out_e, out_grad,
            out_pe, out_best, out_ev, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """g = 1/(2 sigma P) sum_k (f(m + sigma e_k) - f(m - sigma e_k)) e_k; v = momentum v + g; m -= lr v.

    f = U (an unbiased estimate of grad E[U(m + sigma e)]), or centred ranks of U in [-1/2, 1/2]
    (``centered_ranks``; Salimans et al. 2017).
    """
    d = m.shape[1]
    P = E.shape[1]
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
                for k in range(P):
                    for j in range(d):
                        z, s0, s1 = normal(s0, s1)
                        E[r, k, j] = z
                        X[r, 2 * k, j] = m[r, j] + sigma * z
                        X[r, 2 * k + 1, j] = m[r, j] - sigma * z
                if not score(fn, theta, X, G, U, r, 2 * P, pop_energy, best):
                    freeze(m, r, diverged, step)
                    break
                if centered_ranks:
                    rank(U, r, idx, tmp, 2 * P)
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
                    freeze(m, r, diverged, step)
                    break
            if step % record_every == 0:
                k = record_index(k0, step, step0, record_every)
                eval_rows(fn, theta, m, work, u1, r, 1)
                for j in range(d):
                    out_mean[r, k, j] = m[r, j]
                    out_grad[r, k, j] = grad[r, j]
                out_e[r, k] = u1[r, 0]
                out_pe[r, k] = pop_energy[r]
                out_best[r, k] = best[r]
                out_ev[r, k] = 2 * P * (step if halted[r] < 0 else halted[r])
            if until_fn is not None:
                if halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, m, 1,
                                 best[r], r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1


# ---------------------------------------------------------------------------------------------
# Genetic algorithm
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def ga_record(x, u, r, k, evals, out_mean, out_var, out_e, out_best, out_ev, out_x):
    """Population mean and variance (1/N), mean and lowest U, evaluations; every individual if ``out_x``."""
    N = x.shape[1]
    d = x.shape[2]
    write_moments(x, r, k, out_mean, out_var)
    e = 0.0
    b = np.inf
    for i in range(N):
        e += u[r, i]
        if energy_key(u[r, i]) < b:
            b = u[r, i]
    out_e[r, k] = e / N
    out_best[r, k] = b
    out_ev[r, k] = evals
    if out_x is not None:
        for i in range(N):
            for j in range(d):
                out_x[r, k, i, j] = x[r, i, j]


@njit(inline="always", cache=True)
def _tournament(u, r, N, size, s0, s1):
    best, s0, s1 = randbelow(N, s0, s1)
    for t in range(size - 1):
        c, s0, s1 = randbelow(N, s0, s1)
        if energy_key(u[r, c]) < energy_key(u[r, best]):
            best = c
    return best, s0, s1


@njit(inline="always", cache=True)
def _all_finite(u, r, n):
    for i in range(n):
        if not math.isfinite(u[r, i]):
            return False
    return True


@njit(nogil=True, cache=True)
def genetic_algorithm(fn, theta, x, xnew, G, u, idx, tmp, rng, diverged, halted, tournament, crossover_rate,
                      mutation_rate, mutation_scale, n_elite, record_first, step0, n_steps, record_every, out_mean,
                      out_var, out_e, out_best, out_ev, out_x, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """Generational GA: the ``n_elite`` best survive unchanged; every other child has parents chosen by
    tournaments of size ``tournament``, uniform crossover with probability ``crossover_rate``, and
    each gene mutated with probability ``mutation_rate`` by ``mutation_scale * N(0, 1)``.

    A population with a non-finite trait or a non-finite U anywhere is frozen as diverged. With
    ``record_first`` the current population is first written into record ``k0 - 1`` (the driver's
    initial record is a call with ``n_steps = 0``).
    """
    R, N, d = x.shape
    for r in range(r0, r1):
        if diverged[r] >= 0:
            continue
        if until_fn is not None:
            if stop_step[r] >= 0:
                continue  # stopped in an earlier call: frozen
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        eval_rows(fn, theta, x, G, u, r, N)
        for s in range(n_steps + 1):
            step = step0 + s
            if s > 0 and halted[r] < 0:
                if n_elite > 0:
                    rank(u, r, idx, tmp, N)
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
                if ok:
                    eval_rows(fn, theta, x, G, u, r, N)
                    ok = _all_finite(u, r, N)
                if not ok:
                    freeze_population(x, r, diverged, step)
                    break
            if (s == 0 and record_first) or (s > 0 and step % record_every == 0):
                ga_record(x, u, r, record_index(k0, step, step0, record_every),
                          N * ((step if halted[r] < 0 else halted[r]) + 1), out_mean, out_var, out_e, out_best,
                          out_ev, out_x)
            if until_fn is not None:
                if s > 0 and halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, x, N,
                                 lowest(u, r, N), r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1
