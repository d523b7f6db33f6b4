"""Kernels for overdamped (Euler–Maruyama, Leimkuhler–Matthews) and underdamped (BAOAB) Langevin.

Common layout: replicas are split into blocks of ``B`` rows, the parallel unit. For each step the
landscape is evaluated once for the whole block (one call of the compiled block function, which
writes ``grad`` and ``energy``), then every live replica of the block is updated with normals
from its own generator. A replica whose state turns non-finite is set to NaN and frozen, and the
step is written to ``diverged``. Records are written after steps that are multiples of
``record_every``: record ``k0 + (step - step0) // record_every - 1``.

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


@njit(parallel=True, cache=True)
def euler_maruyama(fn, theta, x, grad, energy, rng, diverged, z, sigma, chol, full, dt,
                   step0, n_steps, record_every, out_x, out_e, k0, B):
    """x <- x - dt * grad U(x) + noise, noise = sigma * xi (diagonal) or chol @ xi (full)."""
    R, d = x.shape
    nblocks = (R + B - 1) // B
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        fresh = False
        for s in range(n_steps):
            if not fresh:
                _eval(fn, theta, x, grad, energy, r0, r1)
            fresh = False
            step = step0 + s + 1
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                ok = True
                if full:
                    for i in range(d):
                        z[r, i], s0, s1 = normal(s0, s1)
                    for i in range(d):
                        acc = 0.0
                        for j in range(i + 1):
                            acc += chol[i, j] * z[r, j]
                        xi = x[r, i] - dt * grad[r, i] + acc
                        x[r, i] = xi
                        ok = ok and math.isfinite(xi)
                else:
                    for i in range(d):
                        w, s0, s1 = normal(s0, s1)
                        xi = x[r, i] - dt * grad[r, i] + sigma[i] * w
                        x[r, i] = xi
                        ok = ok and math.isfinite(xi)
                rng[r, 0] = s0
                rng[r, 1] = s1
                if not ok:
                    _freeze(x, r, diverged, step)
            if step % record_every == 0:
                _eval(fn, theta, x, grad, energy, r0, r1)
                fresh = True
                _record_x(x, energy, diverged, out_x, out_e, r0, r1, k0 + (step - step0) // record_every - 1)


@njit(parallel=True, cache=True)
def leimkuhler_matthews(fn, theta, x, grad, energy, rng, diverged, xi, sigma, dt,
                        step0, n_steps, record_every, out_x, out_e, k0, B):
    """x <- x - dt * grad U(x) + sigma * (xi_n + xi_{n+1}) / 2; ``xi`` holds xi_n between steps."""
    R, d = x.shape
    nblocks = (R + B - 1) // B
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        fresh = False
        for s in range(n_steps):
            if not fresh:
                _eval(fn, theta, x, grad, energy, r0, r1)
            fresh = False
            step = step0 + s + 1
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                ok = True
                for i in range(d):
                    w, s0, s1 = normal(s0, s1)
                    xn = x[r, i] - dt * grad[r, i] + sigma[i] * (0.5 * (xi[r, i] + w))
                    xi[r, i] = w
                    x[r, i] = xn
                    ok = ok and math.isfinite(xn)
                rng[r, 0] = s0
                rng[r, 1] = s1
                if not ok:
                    _freeze(x, r, diverged, step)
            if step % record_every == 0:
                _eval(fn, theta, x, grad, energy, r0, r1)
                fresh = True
                _record_x(x, energy, diverged, out_x, out_e, r0, r1, k0 + (step - step0) // record_every - 1)


@njit(parallel=True, cache=True)
def baoab(fn, theta, x, v, grad, energy, rng, diverged, inv_mass, c, vscale, dt,
          step0, n_steps, record_every, out_x, out_v, out_e, k0, B):
    """One BAOAB step (Leimkuhler & Matthews 2013) per iteration, one force evaluation per step.

    B: v += -dt/2 M^-1 grad U(x);  A: x += dt/2 v;  O: v = c v + vscale * xi;  A: x += dt/2 v;
    B: v += -dt/2 M^-1 grad U(x), with c = exp(-gamma dt), vscale_i = sqrt((1 - c^2) T / m_i).
    """
    R, d = x.shape
    nblocks = (R + B - 1) // B
    h = 0.5 * dt
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        _eval(fn, theta, x, grad, energy, r0, r1)
        for s in range(n_steps):
            step = step0 + s + 1
            for r in range(r0, r1):
                if diverged[r] >= 0:
                    continue
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
                if diverged[r] >= 0:
                    continue
                ok = True
                for i in range(d):
                    vi = v[r, i] - h * inv_mass[i] * grad[r, i]
                    v[r, i] = vi
                    ok = ok and math.isfinite(vi) and math.isfinite(x[r, i])
                if not ok:
                    _freeze(x, r, diverged, step)
                    for i in range(d):
                        v[r, i] = np.nan
            if step % record_every == 0:
                k = k0 + (step - step0) // record_every - 1
                _record_x(x, energy, diverged, out_x, out_e, r0, r1, k)
                for r in range(r0, r1):
                    for i in range(d):
                        out_v[r, k, i] = v[r, i]
