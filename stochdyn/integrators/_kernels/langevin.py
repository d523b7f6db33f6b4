"""Kernels for overdamped (Euler–Maruyama, Leimkuhler–Matthews) and underdamped (BAOAB) Langevin.

Common layout: replicas are split into blocks of ``B`` rows, the parallel unit. For each step the
landscape is evaluated once for the whole block (one call of the compiled block function, which
writes ``grad`` and ``energy``), then every live replica of the block is updated with normals
from its own generator. A replica whose state turns non-finite is set to NaN (it stays NaN: NaN
propagates through every update) and the step is written to ``diverged``. Records are written
after steps that are multiples of ``record_every`` (a countdown, no modulo in the loop), into
records ``k0, k0 + 1, ...``.

``fresh`` tracks whether ``grad``/``energy`` belong to the current positions, so a landscape
evaluated for a record is reused by the next step; at the start of every call they are
recomputed, which gives the same numbers, so results do not depend on how steps are chunked.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..._numba_utils import row_ptr
from ...random._core import normal


@njit(inline="always", cache=True)
def _eval(fn, theta, x, grad, energy, r0, r1):
    fn(row_ptr(x, r0), row_ptr(grad, r0), row_ptr(energy, r0), r1 - r0, x.shape[1], row_ptr(theta, 0), theta.shape[0])


@njit(inline="always", cache=True)
def _freeze(x, r, diverged, step):
    diverged[r] = step
    for i in range(x.shape[1]):
        x[r, i] = np.nan


@njit(inline="always", cache=True)
def _record_x(x, energy, diverged, out_x, out_e, r0, r1, k):
    for r in range(r0, r1):
        for i in range(x.shape[1]):
            out_x[r, k, i] = x[r, i]
        out_e[r, k] = np.nan if diverged[r] >= 0 else energy[r]


#: update rules of the overdamped kernel
EM_DIAGONAL = 0
LEIMKUHLER_MATTHEWS = 1
EM_FULL = 2


@njit(parallel=True, cache=True)
def overdamped(fn, theta, x, grad, energy, rng, diverged, xi, sigma, chol, mode, dt,
               step0, n_steps, record_every, out_x, out_e, k0, B):
    """Overdamped Langevin steps, one rule per ``mode``:

    * ``EM_DIAGONAL``: x <- x - dt grad U(x) + sigma * w  (Euler–Maruyama, diagonal noise)
    * ``LEIMKUHLER_MATTHEWS``: x <- x - dt grad U(x) + sigma * (xi + w) / 2, then xi <- w
    * ``EM_FULL``: x <- x - dt grad U(x) + chol @ w  (Euler–Maruyama, correlated noise; ``xi`` is scratch)

    with w standard normal from the replica's stream. The per-replica branch on ``mode`` is
    loop-invariant and measured free. A replica is checked once per step through the sum of its
    new coordinates (non-finite iff a coordinate is); a frozen NaN replica stays NaN.
    """
    R, d = x.shape
    nblocks = (R + B - 1) // B
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        fresh = False
        countdown = record_every - step0 % record_every
        k = k0
        for s in range(n_steps):
            if not fresh:
                _eval(fn, theta, x, grad, energy, r0, r1)
            fresh = False
            for r in range(r0, r1):
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                acc = 0.0
                if mode == EM_DIAGONAL:
                    for i in range(d):
                        w, s0, s1 = normal(s0, s1)
                        xn = x[r, i] - dt * grad[r, i] + sigma[i] * w
                        x[r, i] = xn
                        acc += xn
                elif mode == LEIMKUHLER_MATTHEWS:
                    for i in range(d):
                        w, s0, s1 = normal(s0, s1)
                        xn = x[r, i] - dt * grad[r, i] + sigma[i] * (0.5 * (xi[r, i] + w))
                        xi[r, i] = w
                        x[r, i] = xn
                        acc += xn
                else:
                    for i in range(d):
                        xi[r, i], s0, s1 = normal(s0, s1)
                    for i in range(d):
                        c = 0.0
                        for j in range(i + 1):
                            c += chol[i, j] * xi[r, j]
                        xn = x[r, i] - dt * grad[r, i] + c
                        x[r, i] = xn
                        acc += xn
                rng[r, 0] = s0
                rng[r, 1] = s1
                if not math.isfinite(acc) and diverged[r] < 0:
                    _freeze(x, r, diverged, step0 + s + 1)
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _eval(fn, theta, x, grad, energy, r0, r1)
                fresh = True
                _record_x(x, energy, diverged, out_x, out_e, r0, r1, k)
                k += 1


@njit(parallel=True, cache=True)
def baoab(fn, theta, x, v, grad, energy, rng, diverged, inv_mass, c, vscale, dt,
          step0, n_steps, record_every, out_x, out_v, out_e, k0, B):
    """One BAOAB step (Leimkuhler & Matthews 2013) per iteration, one force evaluation per step.

    B: v += -dt/2 M^-1 grad U(x);  A: x += dt/2 v;  O: v = c v + vscale * w;  A: x += dt/2 v;
    B: v += -dt/2 M^-1 grad U(x), with c = exp(-gamma dt), vscale_i = sqrt((1 - c^2) T / m_i).
    """
    R, d = x.shape
    nblocks = (R + B - 1) // B
    h = 0.5 * dt
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        countdown = record_every - step0 % record_every
        k = k0
        _eval(fn, theta, x, grad, energy, r0, r1)
        for s in range(n_steps):
            for r in range(r0, r1):
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                for i in range(d):
                    w, s0, s1 = normal(s0, s1)
                    vi = v[r, i] - h * inv_mass[i] * grad[r, i]
                    xi = x[r, i] + h * vi
                    vi = c * vi + vscale[i] * w
                    x[r, i] = xi + h * vi
                    v[r, i] = vi
                rng[r, 0] = s0
                rng[r, 1] = s1
            _eval(fn, theta, x, grad, energy, r0, r1)
            for r in range(r0, r1):
                acc = 0.0
                for i in range(d):
                    vi = v[r, i] - h * inv_mass[i] * grad[r, i]
                    v[r, i] = vi
                    acc += vi + x[r, i]
                if not math.isfinite(acc) and diverged[r] < 0:
                    _freeze(x, r, diverged, step0 + s + 1)
                    for i in range(d):
                        v[r, i] = np.nan
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _record_x(x, energy, diverged, out_x, out_e, r0, r1, k)
                for r in range(r0, r1):
                    for i in range(d):
                        out_v[r, k, i] = v[r, i]
                k += 1
