"""Kernels for overdamped (Euler–Maruyama, Leimkuhler–Matthews) and underdamped (BAOAB) Langevin.

Layout. Replicas are split into blocks of ``B`` (a multiple of 8, up to 128). A kernel is a serial
``nogil`` function over a range of blocks ``[b0, b1)``; :func:`stochdyn._numba_utils.run_blocks`
gives each thread one range. A block runs all its steps at once in block-local buffers stored *by
coordinate* — ``X[i, j]`` is coordinate ``i`` of replica ``r0 + j`` — so every loop over the
replicas of a block is contiguous and vectorises: the landscape (its columns function, see
:data:`stochdyn._numba_utils.LANDSCAPE_COLUMNS_SIG`), the normals (:func:`normal_lanes`: one
generator per replica, in SIMD lanes) and the update. Each replica's numbers are the scalar
ziggurat's, drawn in coordinate order, so results are bit-identical to a per-replica loop and
independent of threads, blocks, chunks and replica subsets.

One step: the update (which uses the gradient at the current state), then one landscape
evaluation at the new state, which gives the next step's gradient and the energy to record. The
state of step ``step0`` is evaluated at the start of a call, so results do not depend on how steps
are chunked. Records are written after steps that are multiples of ``record_every`` (a countdown,
no modulo in the loop), into records ``k0, k0 + 1, ...``; ``record_first`` writes the call's
initial state first (how the driver's initial record is made, with the same compiled code).

Halting. ``live[j]`` says whether replica ``r0 + j`` still moves: a frozen replica's state is not
updated and its random stream not advanced. A replica freezes when it diverges: right after an
evaluation, a live replica whose position or energy is not finite is set to NaN and the step
written to ``diverged`` (:func:`_check`). With a stopping rule (``until_fn`` not None; the six
trailing ``until_*``/``stop_*`` arguments, docs/design.md "Stopping rules") a replica whose rule
holds after a step is frozen the same way at the same place, keeping its state
(:func:`_until_block`), and a block whose replicas have all stopped ends its call early. With
``until_fn=None`` Numba removes every branch that uses it: the kernel is the one without rules.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._numba_utils import row_ptr
from ...random._core import normal_lanes


# -- block helpers (shared by every kernel, compiled once) ---------------------------------------
@njit(inline="always", cache=True)
def _load(x, rng, diverged, X, S0, S1, live, r0, n):
    """Copy replicas ``r0 .. r0+n-1`` into the block buffers (positions by coordinate, streams, live flags)."""
    for j in range(n):
        r = r0 + j
        S0[j] = rng[r, 0]
        S1[j] = rng[r, 1]
        live[j] = diverged[r] < 0
    _to_columns(x, X, r0, n)


@njit(inline="always", cache=True)
def _to_columns(a, A, r0, n):
    for j in range(n):
        for i in range(a.shape[1]):
            A[i, j] = a[r0 + j, i]


@njit(inline="always", cache=True)
def _from_columns(A, a, r0, n):
    for j in range(n):
        for i in range(a.shape[1]):
            a[r0 + j, i] = A[i, j]


@njit(inline="always", cache=True)
def _store(X, S0, S1, x, rng, r0, n):
    """Copy the block buffers back into the state arrays."""
    for j in range(n):
        rng[r0 + j, 0] = S0[j]
        rng[r0 + j, 1] = S1[j]
    _from_columns(X, x, r0, n)


@njit(inline="always", cache=True)
def _evaluate(fn, theta, X, G, E, n):
    """Energy and gradient at the block's points (one call of the landscape's columns function)."""
    fn(row_ptr(X, 0), row_ptr(G, 0), row_ptr(E, 0), n, X.shape[0], X.shape[1], row_ptr(theta, 0), theta.shape[0])


@njit(cache=True)
def _check(X, E, Z, V, live, diverged, r0, n, step):
    """Freeze every live replica whose position or energy is not finite; reset ``Z``.

    On entry ``Z[j] = sum_i 0*x_i`` (accumulated by the update loop as it writes the new
    positions; :func:`_begin` for the initial state); adding ``0*U`` gives 0 when all are finite
    and NaN otherwise (0*inf is NaN): vectorised, and it cannot overflow. (A non-finite gradient
    makes the next position non-finite, flagged one step later.) A frozen replica gets NaN in ``X``
    and ``V`` (the velocity for BAOAB; pass ``X`` again otherwise) and ``diverged = step``.
    """
    bad = False
    for j in range(n):
        z = Z[j] + E[j] * 0.0
        Z[j] = z
        bad |= live[j] & (z != 0.0)
    if bad:
        for j in range(n):
            if live[j] and Z[j] != 0.0:
                live[j] = False
                diverged[r0 + j] = step
                for i in range(X.shape[0]):
                    X[i, j] = np.nan
                    V[i, j] = np.nan
    for j in range(n):
        Z[j] = 0.0


@njit(inline="always", cache=True)
def _begin(fn, theta, x, rng, diverged, X, G, E, Z, V, S0, S1, live, r0, n, step0, record_first, out_x, out_e, k0):
    """Load a block, evaluate and check its state at ``step0``, write it as record ``k0`` if asked;
    return the next record index."""
    _load(x, rng, diverged, X, S0, S1, live, r0, n)
    for j in range(n):
        Z[j] = 0.0
    for i in range(X.shape[0]):
        for j in range(n):
            Z[j] += X[i, j] * 0.0
    _evaluate_check(fn, theta, X, G, E, Z, V, live, diverged, r0, n, step0)
    if record_first:
        _record(X, E, diverged, out_x, out_e, r0, n, k0)
        return k0 + 1
    return k0


@njit(inline="always", cache=True)
def _evaluate_check(fn, theta, X, G, E, Z, V, live, diverged, r0, n, step):
    _evaluate(fn, theta, X, G, E, n)
    _check(X, E, Z, V, live, diverged, r0, n, step)


@njit(cache=True)
def _record(X, E, diverged, out_x, out_e, r0, n, k):
    for j in range(n):
        for i in range(X.shape[0]):
            out_x[r0 + j, k, i] = X[i, j]
        out_e[r0 + j, k] = np.nan if diverged[r0 + j] >= 0 else E[j]


@njit(inline="always", cache=True)
def _until_load(live, stop_step, r0, n):
    """Replicas stopped by the rule in an earlier call stay frozen."""
    for j in range(n):
        if stop_step[r0 + j] >= 0:
            live[j] = False


@njit(cache=True)
def _until_block(until_fn, theta, aux, work, X, E, live, stop_step, stop_rule, b, r0, n, step):
    """Check the stopping rule on the block's live replicas after ``step`` (positions ``X``, energies
    ``E``): a replica whose rule holds is frozen where it is (``live`` False, ``stop_step = step``,
    ``stop_rule`` = the part that held). ``work[b]`` holds the point (gathered from the columns into a
    row, as the rule reads it) and then the rule's scratch. Returns how many replicas of the block
    have stopped, now or before."""
    d = X.shape[0]
    w = work[b]
    nw = w.shape[0] - d
    stopped = 0
    for j in range(n):
        r = r0 + j
        if live[j]:
            for i in range(d):
                w[i] = X[i, j]
            c = until_fn(row_ptr(w, 0), 1, d, E[j], row_ptr(theta, 0), theta.shape[0], row_ptr(aux, 0),
                         aux.shape[0], row_ptr(w, d), nw)
            if c > 0:
                live[j] = False
                stop_step[r] = step
                stop_rule[r] = c - 1
        if stop_step[r] >= 0:
            stopped += 1
    return stopped


# -- row-major helpers of the previous kernels, still used by the SGD kernel on landscapes --------
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


# -- overdamped ------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def euler_maruyama(fn, theta, x, rng, diverged, sigma, dt, step0, n_steps, record_every, record_first,
                   out_x, out_e, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, X, G, A, E, Z, W, S0, S1, U, live, b0, b1):
    """Euler–Maruyama with diagonal noise: ``x <- x - dt grad U(x) + sigma * w``, w standard normal."""
    R, d = x.shape
    B = X.shape[1]
    for b in range(b0, b1):
        r0 = b * B
        n = B if r0 + B <= R else R - r0
        k = _begin(fn, theta, x, rng, diverged, X, G, E, Z, X, S0, S1, live, r0, n, step0, record_first, out_x, out_e, k0)
        if until_fn is not None:
            _until_load(live, stop_step, r0, n)
        countdown = record_every - step0 % record_every
        for s in range(n_steps):
            for i in range(d):
                normal_lanes(S0, S1, W, U, live, n)
                si = sigma[i]
                for j in range(n):
                    xn = X[i, j] - dt * G[i, j] + si * W[j]
                    X[i, j] = xn if live[j] else X[i, j]
                    Z[j] += xn * 0.0
            _evaluate_check(fn, theta, X, G, E, Z, X, live, diverged, r0, n, step0 + s + 1)
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _record(X, E, diverged, out_x, out_e, r0, n, k)
                k += 1
            if until_fn is not None:  # after the step's record (the normal one)
                if _until_block(until_fn, until_theta, until_aux, until_work, X, E, live, stop_step, stop_rule, b, r0,
                                n, step0 + s + 1) == n:
                    break  # every replica of the block has stopped
        _store(X, S0, S1, x, rng, r0, n)


@njit(cache=True, nogil=True)
def euler_maruyama_full(fn, theta, x, rng, diverged, chol, dt, step0, n_steps, record_every, record_first,
                        out_x, out_e, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, X, G, A, E, Z, C, S0, S1, U, live, b0, b1):
    """Euler–Maruyama with correlated noise: ``x <- x - dt grad U(x) + chol @ w`` (chol lower triangular)."""
    R, d = x.shape
    B = X.shape[1]
    for b in range(b0, b1):
        r0 = b * B
        n = B if r0 + B <= R else R - r0
        k = _begin(fn, theta, x, rng, diverged, X, G, E, Z, X, S0, S1, live, r0, n, step0, record_first, out_x, out_e, k0)
        if until_fn is not None:
            _until_load(live, stop_step, r0, n)
        countdown = record_every - step0 % record_every
        for s in range(n_steps):
            for i in range(d):
                normal_lanes(S0, S1, A[i], U, live, n)
            for i in range(d):
                for j in range(n):
                    C[j] = 0.0
                for m in range(i + 1):
                    cim = chol[i, m]
                    for j in range(n):
                        C[j] += cim * A[m, j]
                for j in range(n):
                    xn = X[i, j] - dt * G[i, j] + C[j]
                    X[i, j] = xn if live[j] else X[i, j]
                    Z[j] += xn * 0.0
            _evaluate_check(fn, theta, X, G, E, Z, X, live, diverged, r0, n, step0 + s + 1)
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _record(X, E, diverged, out_x, out_e, r0, n, k)
                k += 1
            if until_fn is not None:  # after the step's record (the normal one)
                if _until_block(until_fn, until_theta, until_aux, until_work, X, E, live, stop_step, stop_rule, b, r0,
                                n, step0 + s + 1) == n:
                    break  # every replica of the block has stopped
        _store(X, S0, S1, x, rng, r0, n)


@njit(cache=True, nogil=True)
def leimkuhler_matthews(fn, theta, x, xi, rng, diverged, sigma, dt, step0, n_steps, record_every, record_first,
                        out_x, out_e, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, X, G, XI, E, Z, W, S0, S1, U, live, b0, b1):
    """Leimkuhler–Matthews: ``x <- x - dt grad U(x) + sigma * (xi + w) / 2``, then ``xi <- w``."""
    R, d = x.shape
    B = X.shape[1]
    for b in range(b0, b1):
        r0 = b * B
        n = B if r0 + B <= R else R - r0
        _to_columns(xi, XI, r0, n)
        k = _begin(fn, theta, x, rng, diverged, X, G, E, Z, X, S0, S1, live, r0, n, step0, record_first, out_x, out_e, k0)
        if until_fn is not None:
            _until_load(live, stop_step, r0, n)
        countdown = record_every - step0 % record_every
        for s in range(n_steps):
            for i in range(d):
                normal_lanes(S0, S1, W, U, live, n)
                si = sigma[i]
                for j in range(n):
                    xn = X[i, j] - dt * G[i, j] + si * (0.5 * (XI[i, j] + W[j]))
                    X[i, j] = xn if live[j] else X[i, j]
                    XI[i, j] = W[j] if live[j] else XI[i, j]
                    Z[j] += xn * 0.0
            _evaluate_check(fn, theta, X, G, E, Z, X, live, diverged, r0, n, step0 + s + 1)
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _record(X, E, diverged, out_x, out_e, r0, n, k)
                k += 1
            if until_fn is not None:  # after the step's record (the normal one)
                if _until_block(until_fn, until_theta, until_aux, until_work, X, E, live, stop_step, stop_rule, b, r0,
                                n, step0 + s + 1) == n:
                    break  # every replica of the block has stopped
        _store(X, S0, S1, x, rng, r0, n)
        _from_columns(XI, xi, r0, n)


# -- underdamped ------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def baoab(fn, theta, x, v, rng, diverged, inv_mass, c, vscale, dt, step0, n_steps, record_every, record_first,
          out_x, out_v, out_e, k0, until_fn, until_theta, until_aux, until_work, stop_step, stop_rule, X, G, V, E, Z, W, S0, S1, U, live, b0, b1):
    """One BAOAB step (Leimkuhler & Matthews 2013) per iteration, one force evaluation per step.

    B: v += -dt/2 M^-1 grad U(x);  A: x += dt/2 v;  O: v = c v + vscale * w;  A: x += dt/2 v;
    B: v += -dt/2 M^-1 grad U(x), with c = exp(-gamma dt), vscale_i = sqrt((1 - c^2) T / m_i).
    """
    R, d = x.shape
    B = X.shape[1]
    h = 0.5 * dt
    for b in range(b0, b1):
        r0 = b * B
        n = B if r0 + B <= R else R - r0
        _to_columns(v, V, r0, n)
        k = _begin(fn, theta, x, rng, diverged, X, G, E, Z, V, S0, S1, live, r0, n, step0, record_first, out_x, out_e, k0)
        if record_first:
            _record_v(V, out_v, r0, n, k0)
        if until_fn is not None:
            _until_load(live, stop_step, r0, n)
        countdown = record_every - step0 % record_every
        for s in range(n_steps):
            for i in range(d):
                normal_lanes(S0, S1, W, U, live, n)
                hm = h * inv_mass[i]
                vs = vscale[i]
                for j in range(n):
                    vi = V[i, j] - hm * G[i, j]
                    xi = X[i, j] + h * vi
                    vi = c * vi + vs * W[j]
                    xn = xi + h * vi
                    X[i, j] = xn if live[j] else X[i, j]
                    V[i, j] = vi if live[j] else V[i, j]
                    Z[j] += xn * 0.0
            _evaluate_check(fn, theta, X, G, E, Z, V, live, diverged, r0, n, step0 + s + 1)
            for i in range(d):
                hm = h * inv_mass[i]
                for j in range(n):
                    vi = V[i, j] - hm * G[i, j]
                    V[i, j] = vi if live[j] else V[i, j]
            countdown -= 1
            if countdown == 0:
                countdown = record_every
                _record(X, E, diverged, out_x, out_e, r0, n, k)
                _record_v(V, out_v, r0, n, k)
                k += 1
            if until_fn is not None:  # after the step's record (the normal one)
                if _until_block(until_fn, until_theta, until_aux, until_work, X, E, live, stop_step, stop_rule, b, r0,
                                n, step0 + s + 1) == n:
                    break  # every replica of the block has stopped
        _store(X, S0, S1, x, rng, r0, n)
        _from_columns(V, v, r0, n)


@njit(inline="always", cache=True)
def _record_v(V, out_v, r0, n, k):
    for j in range(n):
        for i in range(V.shape[0]):
            out_v[r0 + j, k, i] = V[i, j]
