"""Kernels of the Wright–Fisher and Moran processes; one replica = one population of N individuals.

Layout: ``x[r, i, :]`` is the trait (continuous) or the genotype (allele indices stored as floats) of
individual ``i`` of replica ``r``. ``u[r, i]`` and ``w[r, i]`` hold its energy U and fitness W. The
landscape is evaluated on a whole population at once (one call of the compiled block function),
the fitness map likewise. Each replica draws only from its own generator, so results do not depend
on threads, chunking or which other replicas run.

A population whose fitness becomes negative or non-finite somewhere, or zero everywhere, cannot be
sampled: the replica is set to NaN and frozen, and the generation written to ``diverged``.

Records are written after generations that are multiples of ``record_every`` into record
``k0 + (step - step0) // record_every - 1``; with ``record_first`` the current state is first
written into record ``k0 - 1`` (the driver's initial record: a call with ``n_steps = 0``).

Kernels are serial functions of a replica range (the last two arguments ``r0, r1``) that release
the GIL, run on Numba's thread count by :func:`stochdyn._numba_utils.run_blocks`. Genotype
populations are recognised by ``out_freq`` being an array (None for continuous traits), so a run
compiles only the mutation and recording code of its own kind. A ``halted`` replica (generation,
-1 while running) keeps its population and stream and repeats its records.

Stopping rules (``until_fn`` not None; the six trailing ``until_*``/``stop_*`` arguments, see
docs/design.md "Stopping rules"): after each generation the rule is called on the population (N rows)
and its lowest U (:func:`lowest`); a replica whose rule holds is halted there and ends its call
(:func:`stop_here`); a replica stopped in an earlier call is skipped. With ``until_fn=None`` Numba
removes every branch that uses it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._numba_utils import row_ptr
from ...random._core import normal, randbelow, uniform
from ...random._discrete import TWO32, alias_setup, categorical_draw, categorical_rejection

REC_NONE = 0
REC_FREE = 1
REC_BLEND = 2
#: Wright–Fisher parents are drawn by rejection against the largest W (no set-up, n max W / Σ W
#: trials per draw) while that ratio is at most this, else by Walker's alias method (O(N) set-up,
#: one trial); both exact. Measured at N = 1000: a rejection trial ~3 ns, an alias set-up ~10 ns
#: per individual.
BOUNDED_MAX_RATIO = 2.0


@njit(inline="always", cache=True)
def evaluate(fn, theta, fmap, sel, x, grad, u, w, r, n):
    """U and W of the ``n`` individuals of replica ``r``.

    Returns ``(usable, total, largest)``: usable is False if some W is negative or non-finite, or
    every W is zero; then the sum and the largest W (for the choice of sampler).
    """
    d = x.shape[2]
    fn(row_ptr(x, r), row_ptr(grad, r), row_ptr(u, r), n, d, row_ptr(theta, 0), theta.shape[0])
    fmap(row_ptr(u, r), row_ptr(w, r), n, sel)
    total = 0.0
    wmax = 0.0
    for i in range(n):
        wi = w[r, i]
        if not (wi >= 0.0 and wi < np.inf):
            return False, total, wmax
        total += wi
        wmax = max(wmax, wi)
    return wmax > 0.0, total, wmax


@njit(cache=True)
def lowest(u, r, n):
    """min(u[r, :n]) with NumPy's semantics (NaN if any is NaN): the energy a stopping rule reads."""
    e = u[r, 0]
    for i in range(1, n):
        v = u[r, i]
        if v < e or v != v:
            e = v
    return e


@njit(cache=True)
def stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, x, n, energy, r, step):
    """Call the stopping rule on replica ``r`` (``n`` rows of ``x[r]``, ``energy``) after ``step``; if it
    holds, write ``stop_step``, ``stop_rule``, halt the replica and return True."""
    c = until_fn(row_ptr(x, r), n, x.shape[x.ndim - 1], energy, row_ptr(until_theta, 0), until_theta.shape[0],
                 row_ptr(until_aux, 0), until_aux.shape[0], row_ptr(until_work, r), until_work.shape[1])
    if c > 0:
        stop_step[r] = step
        stop_rule[r] = c - 1
        halted[r] = step
        return True
    return False


@njit(inline="always", cache=True)
def freeze(x, r, diverged, step):
    diverged[r] = step
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            x[r, i, j] = np.nan


@njit(inline="always", cache=True)
def mutate(y, i, d, out_freq, mut_rate, mut_scale, s0, s1):
    """Mutate individual ``i`` in place: coordinates ``y[i * d + j]``, ``y`` a pointer to a replica's
    population (``row_ptr``: an array argument would cost reference counting per individual).

    Continuous: with probability ``mut_rate`` add ``mut_scale * N(0, I)``. Genotypes (``out_freq``
    an array; None for continuous traits, which removes this branch from the compiled kernel): each
    site independently with probability ``mut_rate`` changes to one of the other alleles, uniformly.
    """
    if out_freq is not None:
        n_alleles = out_freq.shape[3]
        if mut_rate > 0.0:
            for j in range(d):
                v, s0, s1 = uniform(s0, s1)
                if v < mut_rate:
                    a, s0, s1 = randbelow(n_alleles - 1, s0, s1)
                    y[i * d + j] = float((int(y[i * d + j]) + 1 + a) % n_alleles)
        return s0, s1
    if mut_rate <= 0.0 or mut_scale == 0.0:
        return s0, s1
    if mut_rate < 1.0:
        v, s0, s1 = uniform(s0, s1)
        if v >= mut_rate:
            return s0, s1
    for j in range(d):
        z, s0, s1 = normal(s0, s1)
        y[i * d + j] += mut_scale * z
    return s0, s1


@njit(inline="always", cache=True)
def make_child(x, r, a, b, rec_mode, y, i, s0, s1):
    """Write the child of parents ``a`` and ``b`` of replica ``r`` (``b < 0``: clone of ``a``) into
    individual ``i`` of ``y`` (a pointer, as in :func:`mutate`)."""
    d = x.shape[2]
    if b < 0 or rec_mode == REC_NONE:
        for j in range(d):
            y[i * d + j] = x[r, a, j]
    elif rec_mode == REC_BLEND:
        for j in range(d):
            y[i * d + j] = 0.5 * (x[r, a, j] + x[r, b, j])
    else:  # free recombination: every coordinate / site from either parent with probability 1/2
        for j in range(d):
            v, s0, s1 = uniform(s0, s1)
            y[i * d + j] = x[r, a, j] if v < 0.5 else x[r, b, j]
    return s0, s1


@njit(inline="always", cache=True)
def write_moments(x, r, k, out_mean, out_var):
    """Mean and variance (1/N normalisation) of each coordinate over the population of replica ``r``.

    Each coordinate is summed in individual order; two coordinates share a pass over the population
    (two independent sums that the processor overlaps: the same numbers, faster).
    """
    N = x.shape[1]
    d = x.shape[2]
    for j0 in range(0, d, 2):
        j1 = min(j0 + 1, d - 1)  # j1 == j0 for the last of an odd d: computed twice, the same numbers
        a0 = 0.0
        a1 = 0.0
        for i in range(N):
            a0 += x[r, i, j0]
            a1 += x[r, i, j1]
        m0 = a0 / N
        m1 = a1 / N
        a0 = 0.0
        a1 = 0.0
        for i in range(N):
            c0 = x[r, i, j0] - m0
            c1 = x[r, i, j1] - m1
            a0 += c0 * c0
            a1 += c1 * c1
        out_mean[r, k, j0] = m0
        out_var[r, k, j0] = a0 / N
        out_mean[r, k, j1] = m1
        out_var[r, k, j1] = a1 / N


@njit(inline="always", cache=True)
def write_record(x, u, w, r, k, n_evals, out_mean, out_var, out_e, out_wm, out_wx, out_ev, out_freq, out_x):
    """Population summaries of replica ``r`` into record ``k``: mean and variance (1/N) per coordinate,
    mean U, mean and largest W, evaluations; allele frequencies (genotypes) and individuals if asked."""
    N = x.shape[1]
    d = x.shape[2]
    write_moments(x, r, k, out_mean, out_var)
    e = 0.0
    wm = 0.0
    wx = -np.inf
    for i in range(N):
        e += u[r, i]
        wm += w[r, i]
        if w[r, i] > wx:
            wx = w[r, i]
    out_e[r, k] = e / N
    out_wm[r, k] = wm / N
    out_wx[r, k] = wx
    out_ev[r, k] = n_evals
    if out_freq is not None:
        n_alleles = out_freq.shape[3]
        for j in range(d):
            for a in range(n_alleles):
                out_freq[r, k, j, a] = 0.0
            for i in range(N):
                out_freq[r, k, j, int(x[r, i, j])] += 1.0
            for a in range(n_alleles):
                out_freq[r, k, j, a] /= N
    if out_x is not None:
        for i in range(N):
            for j in range(d):
                out_x[r, k, i, j] = x[r, i, j]


@njit(nogil=True, cache=True, error_model="numpy")
def wright_fisher(fn, theta, fmap, sel, x, xnew, grad, u, w, prob, alias, small, large, rng, diverged, halted,
                  mut_rate, mut_scale, rec, record_first, step0, n_steps, record_every,
                  out_mean, out_var, out_e, out_wm, out_wx, out_ev, out_freq, out_x, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """Wright–Fisher generations: N offspring, each with parent(s) drawn i.i.d. with probability W_i / sum W.

    Offspring = clone of the parent, or with probability ``rec[1]`` a recombinant of two parents
    drawn independently; then mutation (:func:`mutate`). Non-overlapping generations.
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
        ok, total, wmax = evaluate(fn, theta, fmap, sel, x, grad, u, w, r, N)
        for s in range(n_steps + 1):
            step = step0 + s
            if s > 0 and halted[r] < 0:
                scale = TWO32 / wmax
                bounded = N * wmax <= BOUNDED_MAX_RATIO * total and scale < np.inf
                if not bounded:
                    alias_setup(w[r], N, prob[r], alias[r], small[r], large[r])
                wp = row_ptr(w, r)
                pp = row_ptr(prob, r)
                ap = row_ptr(alias, r)
                yp = row_ptr(xnew, r)
                for i in range(N):
                    a, s0, s1 = categorical_draw(bounded, scale, wp, pp, ap, N, s0, s1)
                    if rec is not None:  # rec = (mode, rate); None: clones only (not compiled)
                        b = -1
                        v, s0, s1 = uniform(s0, s1)
                        if v < rec[1]:
                            b, s0, s1 = categorical_draw(bounded, scale, wp, pp, ap, N, s0, s1)
                        s0, s1 = make_child(x, r, a, b, int(rec[0]), yp, i, s0, s1)
                    else:
                        for j in range(d):
                            xnew[r, i, j] = x[r, a, j]
                    s0, s1 = mutate(yp, i, d, out_freq, mut_rate, mut_scale, s0, s1)
                for i in range(N):
                    for j in range(d):
                        x[r, i, j] = xnew[r, i, j]
                ok, total, wmax = evaluate(fn, theta, fmap, sel, x, grad, u, w, r, N)
                if not ok:
                    freeze(x, r, diverged, step)
                    break
            if (s == 0 and record_first) or (s > 0 and step % record_every == 0):
                write_record(x, u, w, r, k0 + (step - step0) // record_every - 1,
                             N * ((step if halted[r] < 0 else halted[r]) + 1), out_mean, out_var, out_e, out_wm, out_wx,
                             out_ev, out_freq, out_x)
            if until_fn is not None:
                if s > 0 and halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, x, N,
                                 lowest(u, r, N), r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1


@njit(nogil=True, cache=True, error_model="numpy")
def moran(fn, theta, fmap, sel, x, child, grad, u, w, cgrad, cu, cw, rng, diverged, halted,
          mut_rate, mut_scale, rec, record_first, step0, n_steps, record_every,
          out_mean, out_var, out_e, out_wm, out_wx, out_ev, out_freq, out_x, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, r0, r1):
    """Moran process; one step (generation) = N birth–death events.

    Event: a parent drawn with probability W_i / sum W (exact rejection sampling against an upper
    bound of W), its offspring (optionally recombinant with a second parent drawn the same way,
    then mutated) replaces an individual drawn uniformly among all N (possibly the parent).
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
        ok = evaluate(fn, theta, fmap, sel, x, grad, u, w, r, N)[0]
        for s in range(n_steps + 1):
            step = step0 + s
            if s > 0 and halted[r] < 0:
                wmax = 0.0
                npos = 0
                for i in range(N):
                    if w[r, i] > wmax:
                        wmax = w[r, i]
                    if w[r, i] > 0.0:
                        npos += 1
                for e in range(N):
                    a, s0, s1 = categorical_rejection(w[r], N, wmax, s0, s1)
                    if rec is not None:  # rec = (mode, rate); None: clones only (not compiled)
                        b = -1
                        v, s0, s1 = uniform(s0, s1)
                        if v < rec[1]:
                            b, s0, s1 = categorical_rejection(w[r], N, wmax, s0, s1)
                        s0, s1 = make_child(x, r, a, b, int(rec[0]), row_ptr(child, r), 0, s0, s1)
                    else:
                        for j in range(d):
                            child[r, 0, j] = x[r, a, j]
                    s0, s1 = mutate(row_ptr(child, r), 0, d, out_freq, mut_rate, mut_scale, s0, s1)
                    evaluate(fn, theta, fmap, sel, child, cgrad, cu, cw, r, 1)
                    if not (cw[r, 0] >= 0.0 and cw[r, 0] < np.inf):
                        ok = False
                        break
                    dead, s0, s1 = randbelow(N, s0, s1)
                    if w[r, dead] > 0.0:
                        npos -= 1
                    if cw[r, 0] > 0.0:
                        npos += 1
                    for j in range(d):
                        x[r, dead, j] = child[r, 0, j]
                    u[r, dead] = cu[r, 0]
                    w[r, dead] = cw[r, 0]
                    if cw[r, 0] > wmax:
                        wmax = cw[r, 0]
                    if npos == 0:
                        ok = False
                        break
                if not ok:
                    freeze(x, r, diverged, step)
                    break
            if (s == 0 and record_first) or (s > 0 and step % record_every == 0):
                write_record(x, u, w, r, k0 + (step - step0) // record_every - 1,
                             N * ((step if halted[r] < 0 else halted[r]) + 1), out_mean, out_var, out_e, out_wm, out_wx,
                             out_ev, out_freq, out_x)
            if until_fn is not None:
                if s > 0 and halted[r] < 0:
                    if stop_here(until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, halted, x, N,
                                 lowest(u, r, N), r, step):
                        break
        rng[r, 0] = s0
        rng[r, 1] = s1
