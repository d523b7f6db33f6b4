"""Numba samplers of discrete distributions for population genetics, in the style of ``_core``.

Every sampler takes and returns the two xoroshiro128++ words of a replica:
``(…, s0, s1) -> (value, s0, s1)``; the array fillers write into caller-provided buffers and never
allocate, so they can run inside ``prange`` loops over replicas.

* :func:`binomial` — exact: inversion of the CDF when ``n·min(p, 1-p) < 30``, otherwise BTPE
  (Kachitvichyanukul & Schmeiser 1988, "Binomial random variate generation", Commun. ACM 31(2),
  216), the algorithm NumPy uses; both are exact samplers (BTPE's final test uses a Stirling
  series accurate to ~1e-12 in log-probability, the inversion is truncated at ``np + 10·sd + ...``
  where the neglected mass is below 1e-20 and restarts rather than biasing).
* :func:`multinomial` — conditional binomials, ``n_i ~ Bin(n - Σ_{j<i} n_j, p_i / Σ_{j>=i} p_j)``.
* :func:`categorical_draw` — ``j`` with probability ``w_j / Σ w``, either by rejection from a
  uniform index with acceptance ``w_j / w_max`` (no set-up; exact for any upper bound
  ``w_max >= max w``), or from the tables of :func:`alias_setup`, Walker's alias method in Vose's
  stable form (Vose 1991, IEEE TSE 17(9), 972: O(K) set-up, then one trial per draw); one 64-bit
  number per trial (:func:`index_and_coin`). :func:`categorical_rejection` is the rejection sampler
  with two numbers per trial (the Moran process, whose weights change after every event).

One 64-bit number per trial (:func:`index_and_coin`, :func:`coin_below`): its upper 32 bits give
the index by Lemire's exact method and its lower 32 bits, independent of them, an integer ``c``
uniform on ``0 .. 2^32 - 1``; the trial accepts with probability ``t / 2^32`` by testing
``c + V < t`` for a uniform ``V`` on [0, 1) that is drawn only when ``c < t < c + 1`` (probability
below ``2^-32``). So the acceptance probability is ``t / 2^32`` to double precision, as with a
53-bit uniform, at half the draws of the textbook index-then-uniform form.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .._numba_utils import row_ptr
from ._core import _MASK32, next_u64, randbelow, uniform

__all__ = [
    "binomial",
    "binomial_inversion",
    "binomial_btpe",
    "multinomial",
    "alias_setup",
    "categorical_draw",
    "index_and_coin",
    "coin_below",
    "categorical_rejection",
    "fill_binomial",
    "fill_multinomial",
    "fill_alias",
]

#: below this value of n·min(p, 1-p) the binomial is drawn by inversion, above by BTPE
BINOMIAL_INVERSION_MAX_MEAN = 30.0
#: 2^32: acceptance thresholds ``t`` of :func:`coin_below` are probabilities times this
TWO32 = 4294967296.0


@njit(inline="always", cache=True)
def binomial_inversion(n, p, s0, s1):
    """Bin(n, p) for ``p <= 1/2`` by sequential inversion of the CDF from 0.

    P(0) = (1-p)^n and P(k)/P(k-1) = (n-k+1) p / (k (1-p)); the search is cut at
    ``bound = min(n, np + 10 sqrt(np(1-p) + 1))`` and restarts with a fresh uniform past it, so the
    draw is exact for the binomial conditioned on ``k <= bound`` (the excluded mass is < 1e-20).
    """
    q = 1.0 - p
    qn = math.exp(n * math.log(q))
    npq = n * p
    bound = min(float(n), npq + 10.0 * math.sqrt(npq * q + 1.0))
    k = 0
    px = qn
    u, s0, s1 = uniform(s0, s1)
    while u > px:
        k += 1
        if k > bound:
            k = 0
            px = qn
            u, s0, s1 = uniform(s0, s1)
        else:
            u -= px
            px = ((n - k + 1) * p * px) / (k * q)
    return k, s0, s1


@njit(inline="always", cache=True)
def _stirling_tail(x2, x):
    return (13680.0 - (462.0 - (132.0 - (99.0 - 140.0 / x2) / x2) / x2) / x2) / x / 166320.0


@njit(cache=True)
def binomial_btpe(n, p, s0, s1):
    """Bin(n, p) for ``p <= 1/2`` and ``n p >= 10`` by BTPE (Kachitvichyanukul & Schmeiser 1988).

    Triangle/parallelogram/exponential majorising regions around the mode, with an exact
    acceptance test (recursive pmf ratio near the mode, Stirling bounds and series far from it).
    """
    r = p
    q = 1.0 - r
    fm = n * r + r
    m = int(math.floor(fm))
    p1 = math.floor(2.195 * math.sqrt(n * r * q) - 4.6 * q) + 0.5
    xm = m + 0.5
    xl = xm - p1
    xr = xm + p1
    c = 0.134 + 20.5 / (15.3 + m)
    a = (fm - xl) / (fm - xl * r)
    laml = a * (1.0 + a / 2.0)
    a = (xr - fm) / (xr * q)
    lamr = a * (1.0 + a / 2.0)
    p2 = p1 * (1.0 + 2.0 * c)
    p3 = p2 + c / laml
    p4 = p3 + c / lamr
    nrq = n * r * q
    while True:
        u, s0, s1 = uniform(s0, s1)
        u *= p4
        v, s0, s1 = uniform(s0, s1)
        if u <= p1:  # triangular region: accept at once
            return int(math.floor(xm - p1 * v + u)), s0, s1
        if u <= p2:  # parallelograms
            x = xl + (u - p1) / c
            v = v * c + 1.0 - abs(m - x + 0.5) / p1
            if v > 1.0:
                continue
            y = int(math.floor(x))
        elif u <= p3:  # left exponential tail
            if v == 0.0:
                continue
            y = int(math.floor(xl + math.log(v) / laml))
            if y < 0:
                continue
            v = v * (u - p2) * laml
        else:  # right exponential tail
            if v == 0.0:
                continue
            y = int(math.floor(xr - math.log(v) / lamr))
            if y > n:
                continue
            v = v * (u - p3) * lamr
        k = abs(y - m)
        if k <= 20 or k >= nrq / 2.0 - 1.0:
            # explicit evaluation of f(y)/f(m) by the recursion of pmf ratios
            s = r / q
            aa = s * (n + 1)
            F = 1.0
            if m < y:
                for i in range(m + 1, y + 1):
                    F *= aa / i - s
            elif m > y:
                for i in range(y + 1, m + 1):
                    F /= aa / i - s
            if v <= F:
                return y, s0, s1
            continue
        # squeeze on log f(y)/f(m), then the final test with Stirling's series
        rho = (k / nrq) * ((k * (k / 3.0 + 0.625) + 0.16666666666666666) / nrq + 0.5)
        t = -k * k / (2.0 * nrq)
        A = math.log(v) if v > 0.0 else -math.inf
        if A < t - rho:
            return y, s0, s1
        if A > t + rho:
            continue
        x1 = y + 1.0
        f1 = m + 1.0
        z = n + 1.0 - m
        w = n - y + 1.0
        bound = (xm * math.log(f1 / x1) + (n - m + 0.5) * math.log(z / w) + (y - m) * math.log(w * r / (x1 * q))
                 + _stirling_tail(f1 * f1, f1) + _stirling_tail(z * z, z) + _stirling_tail(x1 * x1, x1)
                 + _stirling_tail(w * w, w))
        if A <= bound:
            return y, s0, s1


@njit(inline="always", cache=True)
def binomial(n, p, s0, s1):
    """Exact Bin(n, p) variate (``n >= 0``, ``0 <= p <= 1``): inversion or BTPE on min(p, 1-p)."""
    if n <= 0 or p <= 0.0:
        return 0, s0, s1
    if p >= 1.0:
        return n, s0, s1
    flip = p > 0.5
    r = 1.0 - p if flip else p
    if n * r < BINOMIAL_INVERSION_MAX_MEAN:
        k, s0, s1 = binomial_inversion(n, r, s0, s1)
    else:
        k, s0, s1 = binomial_btpe(n, r, s0, s1)
    if flip:
        k = n - k
    return k, s0, s1


@njit(cache=True)
def multinomial(n, p, out, s0, s1):
    """Write a Multinomial(n, p) draw into ``out`` (``p`` need not be normalised; ``p >= 0``).

    Conditional binomials: ``out[i] ~ Bin(n_left, p_i / p_left)``. Returns ``(s0, s1)``.
    """
    total = 0.0
    for i in range(p.shape[0]):
        total += p[i]
    left = n
    rest = total
    K = p.shape[0]
    for i in range(K):
        if left == 0 or i == K - 1:
            out[i] = left
            left = 0
            continue
        prob = p[i] / rest if rest > 0.0 else 0.0
        k, s0, s1 = binomial(left, min(1.0, prob), s0, s1)
        out[i] = k
        left -= k
        rest -= p[i]
    return s0, s1


@njit(cache=True)
def alias_setup(w, n, prob, alias, small, large):
    """Vose's alias table for weights ``w[:n]`` (``w >= 0``, not all zero), into ``prob``/``alias``.

    ``small`` and ``large`` are int64 work arrays of length >= n. Afterwards, drawing ``j``
    uniformly and keeping it with probability ``prob[j]`` (else ``alias[j]``) gives ``i`` with
    probability ``w[i] / Σ w`` up to floating-point rounding of the table.
    Returns the sum of the weights.

    Written without data-dependent branches (the work lists are always written and their lengths
    advanced by the comparison), since which weights are small is random: the same table as the
    textbook form, three times faster at N = 1000.
    """
    total = 0.0
    for i in range(n):
        total += w[i]
    scale = n / total
    ns = 0
    nl = 0
    for i in range(n):
        p = w[i] * scale
        prob[i] = p
        alias[i] = i
        c = np.int64(p < 1.0)
        small[ns] = i
        large[nl] = i
        ns += c
        nl += 1 - c
    while ns > 0 and nl > 0:
        ns -= 1
        sm = small[ns]
        lg = large[nl - 1]
        alias[sm] = lg
        p = (prob[lg] + prob[sm]) - 1.0
        prob[lg] = p
        c = np.int64(p < 1.0)
        nl -= c
        small[ns] = lg  # kept only if lg became small
        ns += c
    for i in range(nl):
        prob[large[i]] = 1.0
    for i in range(ns):  # left over only through rounding
        prob[small[i]] = 1.0
    return total


@njit(inline="always", cache=True)
def index_and_coin(n, s0, s1):
    """From one 64-bit number: ``j`` uniform on ``[0, n)`` (``1 <= n < 2^32``; Lemire's method on the
    upper 32 bits, exactly unbiased) and ``c`` uniform on the integers ``0 .. 2^32 - 1`` (the lower
    32 bits, as a float). Returns ``(j, c, s0, s1)``."""
    nn = np.uint64(n)
    u, s0, s1 = next_u64(s0, s1)
    m = (u >> np.uint64(32)) * nn
    if (m & _MASK32) < nn:
        t = (np.uint64(4294967296) - nn) % nn
        while (m & _MASK32) < t:
            u, s0, s1 = next_u64(s0, s1)
            m = (u >> np.uint64(32)) * nn
    return np.int64(m >> np.uint64(32)), float(u & _MASK32), s0, s1


@njit(inline="always", cache=True)
def coin_below(c, t, s0, s1):
    """True with probability ``t / 2^32`` given ``c`` from :func:`index_and_coin` (``0 <= t <= 2^32``):
    the test ``c + V < t`` with ``V`` uniform on [0, 1), drawn only when ``c < t < c + 1``."""
    if c + 1.0 <= t:
        return True, s0, s1
    if c >= t:
        return False, s0, s1
    v, s0, s1 = uniform(s0, s1)
    return v < t - c, s0, s1


@njit(inline="always", cache=True)
def categorical_draw(bounded, scale, w, prob, alias, n, s0, s1):
    """Index ``j < n`` with probability ``w[j] / Σ w[:n]``; one 64-bit number per trial.

    * ``bounded``: by rejection against an upper bound ``w_max >= max w > 0`` given as
      ``scale = 2^32 / w_max`` — ``j`` uniform, accepted with probability ``w[j] / w_max``; no
      set-up, ``n w_max / Σ w`` trials on average (``prob``, ``alias`` unused).
    * otherwise: from the alias tables of :func:`alias_setup` — ``j`` uniform, kept with probability
      ``prob[j]``, else ``alias[j]``; one trial (``w``, ``scale`` unused).

    The arrays are pointers (``row_ptr``): inside a kernel's loops an array argument of an inlined
    function costs reference counting on every call. Both modes are one loop, so a kernel that can
    take either holds one copy of the trial.
    """
    while True:
        j, c, s0, s1 = index_and_coin(n, s0, s1)
        t = w[j] * scale if bounded else prob[j] * TWO32
        keep, s0, s1 = coin_below(c, t, s0, s1)
        if keep:
            return j, s0, s1
        if not bounded:
            return alias[j], s0, s1


@njit(inline="always", cache=True)
def categorical_rejection(w, n, wmax, s0, s1):
    """Index ``j < n`` with probability ``w[j] / Σ w``, by rejection; needs ``wmax >= max(w[:n]) > 0``."""
    while True:
        j, s0, s1 = randbelow(n, s0, s1)
        u, s0, s1 = uniform(s0, s1)
        if u * wmax < w[j]:
            return j, s0, s1


# -- array fillers (one replica per row, each from its own stream), used by tests ----------------
@njit(cache=True)
def fill_binomial(state, n, p, out):
    """``out[r, j] ~ Bin(n, p)`` from replica ``r``'s stream."""
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            out[r, j], s0, s1 = binomial(n, p, s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1


@njit(cache=True)
def fill_multinomial(state, n, p, out):
    """``out[r, j, :] ~ Multinomial(n, p)`` from replica ``r``'s stream."""
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            s0, s1 = multinomial(n, p, out[r, j], s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1


@njit(cache=True)
def fill_alias(state, w, out):
    """``out[r, j]`` categorical with probabilities ``w / Σ w`` (alias method) from replica ``r``'s stream."""
    K = w.shape[0]
    prob = np.empty(K)
    alias = np.empty(K, dtype=np.int64)
    small = np.empty(K, dtype=np.int64)
    large = np.empty(K, dtype=np.int64)
    alias_setup(w, K, prob, alias, small, large)
    pp = row_ptr(prob, 0)
    ap = row_ptr(alias, 0)
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            out[r, j], s0, s1 = categorical_draw(False, 0.0, pp, pp, ap, K, s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1
