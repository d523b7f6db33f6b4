"""A prototype of the kernel-side stopping contract (docs/design.md, "Stopping rules"): the
Euler–Maruyama kernel with the until hooks, written as phase 2 is to write them in every kernel.

The rule arrives as five arguments: ``until_fn`` (a cfunc of ``sd.stopping.RULE_SIG``, or None),
``until_theta`` (float64), ``until_aux`` (int64), ``until_work`` (one row per unit of parallel work)
and the state arrays ``stop_step``/``stop_rule``. With ``until_fn=None`` Numba prunes every
``until_fn is not None`` branch while typing, so that specialisation contains no trace of stopping.
"""

import math

import numpy as np
from numba import njit, prange

from stochdyn._numba_utils import row_ptr
from stochdyn.random._core import normal


@njit(inline="always", cache=True)
def _eval(fn, theta, x, grad, energy, r0, r1):
    fn(row_ptr(x, r0), row_ptr(grad, r0), row_ptr(energy, r0), r1 - r0, x.shape[1], row_ptr(theta, 0), theta.shape[0])


@njit(parallel=True, cache=True)
def em_until(fn, theta, x, grad, energy, rng, diverged, sigma, dt, step0, n_steps, record_every, out_x, out_e, k0, B,
             until_fn, until_theta, until_aux, until_work, stop_step, stop_rule):
    R, d = x.shape
    nblocks = (R + B - 1) // B
    for b in prange(nblocks):
        r0 = b * B
        r1 = min(R, r0 + B)
        countdown = record_every - step0 % record_every
        k = k0
        _eval(fn, theta, x, grad, energy, r0, r1)
        for s in range(n_steps):
            step = step0 + s + 1
            for r in range(r0, r1):
                if until_fn is not None:
                    if stop_step[r] >= 0:  # frozen: no update, no draw
                        continue
                s0 = rng[r, 0]
                s1 = rng[r, 1]
                acc = 0.0
                for i in range(d):
                    w, s0, s1 = normal(s0, s1)
                    xn = x[r, i] - dt * grad[r, i] + sigma[i] * w
                    x[r, i] = xn
                    acc += xn
                rng[r, 0] = s0
                rng[r, 1] = s1
                if not math.isfinite(acc) and diverged[r] < 0:
                    diverged[r] = step
                    for i in range(d):
                        x[r, i] = np.nan
            _eval(fn, theta, x, grad, energy, r0, r1)  # U and grad U at the new positions
            if until_fn is not None:  # the check: after the update and the divergence test
                for r in range(r0, r1):
                    if stop_step[r] < 0 and diverged[r] < 0:
                        c = until_fn(row_ptr(x, r), 1, d, energy[r], row_ptr(until_theta, 0), until_theta.shape[0],
                                     row_ptr(until_aux, 0), until_aux.shape[0], row_ptr(until_work, b),
                                     until_work.shape[1])
                        if c > 0:
                            stop_step[r] = step
                            stop_rule[r] = c - 1
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                for r in range(r0, r1):
                    if until_fn is not None:
                        if stop_step[r] >= 0 and stop_step[r] < step:
                            continue  # stopped before this record step: the driver writes its frozen record
                    for i in range(d):
                        out_x[r, k, i] = x[r, i]
                    out_e[r, k] = np.nan if diverged[r] >= 0 else energy[r]
                k += 1


def run(integ, land, x0, n_replicas, n_steps, record_every, rng, until=None, chunk=None, block=8):
    """A minimal driver around :func:`em_until`: returns (records x, energy, stop_step, stop_rule, rng words).
    Frozen replicas' later records are filled by the driver from their frozen state (as Integrator.record would)."""
    import stochdyn as sd
    from stochdyn.random.streams import stream_key

    R, d = n_replicas, land.dim
    x = np.array(np.broadcast_to(np.asarray(x0, float), (R, d)), order="C")
    words = stream_key(rng).streams(np.arange(R))
    diverged = np.full(R, -1, np.int64)
    grad, energy = np.empty((R, d)), np.empty(R)
    sigma, _, _ = integ.noise(d)
    n_rec = n_steps // record_every + 1
    out_x, out_e = np.full((R, n_rec, d), np.nan), np.full(R * n_rec, np.nan).reshape(R, n_rec)
    nblocks = (R + block - 1) // block
    if until is None:
        hooks = sd.stopping.NO_RULE_ARGS
    else:
        from stochdyn.integrators.base import State

        c = until.compile(land)
        state = State(arrays={"stop_step": np.full(R, -1, np.int64), "stop_rule": np.full(R, -1, np.int64)})
        hooks = c.kernel_args(state, nblocks)
    stop_step, stop_rule = hooks[4], hooks[5]
    out_x[:, 0] = x
    out_e[:, 0] = land.value(x)
    if until is not None:  # the initial state, checked by the driver
        hit = c.evaluate(x, out_e[:, 0])
        stop_step[hit > 0] = 0
        stop_rule[hit > 0] = hit[hit > 0] - 1
    chunk = chunk or n_steps
    step, k = 0, 1
    while step < n_steps:
        n = min(chunk, n_steps - step)
        em_until(land.compiled, land.theta, x, grad, energy, words, diverged, sigma, integ.dt, step, n, record_every,
                 out_x, out_e, k, block, *hooks)
        step += n
        k += n // record_every
    steps = np.arange(n_rec) * record_every
    for r in np.flatnonzero(stop_step >= 0):
        later = steps > stop_step[r]
        out_x[r, later] = x[r]
        out_e[r, later] = land.value(x[r])
    return out_x, out_e, stop_step, stop_rule, words
