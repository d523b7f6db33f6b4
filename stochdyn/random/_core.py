"""Numba building blocks for per-replica random streams.

Every replica owns a xoroshiro128++ generator (Blackman & Vigna 2021, "Scrambled linear
pseudorandom number generators", ACM TOMS 47(4)) whose two 64-bit words live in row ``r`` of a
``uint64[R, 2]`` state array. Kernels load the two words into locals, draw with the functions
below (each returns the variate and the advanced words) and store them back; so a replica's
numbers depend only on its own seed and the order of its own draws, never on threads or chunking.

The scalar functions are ``@njit(inline="always")``; the rarely taken slow path of the ziggurat is
kept out of line so that the fast path stays small inside hot loops, and :func:`normal_lanes` draws
one normal for each replica of a block at once (vectorised). Those two write the generator step out
rather than calling :func:`next_u64`: Numba's inlining costs compile time, and the slow path and
the lanes function are compiled once for every kernel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._ziggurat import ZIGGURAT_R, ziggurat_tables

_KI, _WI, _FI = ziggurat_tables()
_ZR = ZIGGURAT_R
_ZRINV = 1.0 / ZIGGURAT_R
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_MASK32 = np.uint64(0xFFFFFFFF)


@njit(inline="always", cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always", cache=True)
def splitmix64_mix(z):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixing function."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _splitmix64_mix_array(z: np.ndarray) -> np.ndarray:
    # the same finaliser on uint64 arrays (NumPy array arithmetic wraps modulo 2^64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def seed_streams(k0, k1, replica_ids, out):
    """Fill ``out[j] = (s0, s1)``, the xoroshiro128++ state of global replica ``replica_ids[j]``.

    The replica seed is ``z = mix(k0 ^ mix(k1 + r * golden))``; the two state words are the next
    two outputs of SplitMix64 started at ``z``, the seeding recommended by the generator's authors.
    Vectorised in NumPy (no compilation on a first run).
    """
    r = np.asarray(replica_ids).astype(np.uint64).reshape(-1)
    z = _splitmix64_mix_array(np.uint64(k0) ^ _splitmix64_mix_array(np.uint64(k1) + r * _GOLDEN))
    s0 = _splitmix64_mix_array(z + _GOLDEN)
    s1 = _splitmix64_mix_array(z + _GOLDEN + _GOLDEN)
    s0[(s0 == 0) & (s1 == 0)] = _GOLDEN  # the one forbidden state; probability 2^-128
    out[:, 0] = s0
    out[:, 1] = s1


@njit(inline="always", cache=True)
def next_u64(s0, s1):
    """One xoroshiro128++ step: return ``(u, s0, s1)`` with ``u`` uniform on 64 bits."""
    result = _rotl(s0 + s1, 17) + s0
    s1 = s1 ^ s0
    return result, _rotl(s0, 49) ^ s1 ^ (s1 << np.uint64(21)), _rotl(s1, 28)


@njit(inline="always", cache=True)
def uniform(s0, s1):
    """Uniform on [0, 1) with 53 random bits: ``(u >> 11) * 2^-53``."""
    u, s0, s1 = next_u64(s0, s1)
    return (u >> np.uint64(11)) * _TWO_M53, s0, s1


@njit(inline="always", cache=True)
def randbelow(n, s0, s1):
    """Uniform integer in ``[0, n)`` for ``1 <= n < 2^32``, exactly unbiased.

    Lemire's multiply-and-reject method on the upper 32 bits (Lemire 2019, "Fast random integer
    generation in an interval", ACM TOMS 29(1)).
    """
    nn = np.uint64(n)
    u, s0, s1 = next_u64(s0, s1)
    m = (u >> np.uint64(32)) * nn
    low = m & _MASK32
    if low < nn:
        t = (np.uint64(4294967296) - nn) % nn
        while low < t:
            u, s0, s1 = next_u64(s0, s1)
            m = (u >> np.uint64(32)) * nn
            low = m & _MASK32
    return np.int64(m >> np.uint64(32)), s0, s1


@njit(cache=True)
def _normal_slow(idx, rabs, x, s0, s1):
    # Rejected on the fast path: finish the ziggurat (tail or wedge test), redrawing as needed.
    # Self-contained (the generator step written out) so that it compiles quickly; it draws exactly
    # what next_u64/uniform would.
    while True:
        if idx == 0:
            while True:
                u = (((s0 + s1) << np.uint64(17)) | ((s0 + s1) >> np.uint64(47))) + s0
                t = s1 ^ s0
                s0 = ((s0 << np.uint64(49)) | (s0 >> np.uint64(15))) ^ t ^ (t << np.uint64(21))
                s1 = (t << np.uint64(28)) | (t >> np.uint64(36))
                u1 = (u >> np.uint64(11)) * _TWO_M53
                u = (((s0 + s1) << np.uint64(17)) | ((s0 + s1) >> np.uint64(47))) + s0
                t = s1 ^ s0
                s0 = ((s0 << np.uint64(49)) | (s0 >> np.uint64(15))) ^ t ^ (t << np.uint64(21))
                s1 = (t << np.uint64(28)) | (t >> np.uint64(36))
                u2 = (u >> np.uint64(11)) * _TWO_M53
                xx = -_ZRINV * math.log1p(-u1)
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(_ZR + xx), s0, s1
                    return _ZR + xx, s0, s1
        else:
            u = (((s0 + s1) << np.uint64(17)) | ((s0 + s1) >> np.uint64(47))) + s0
            t = s1 ^ s0
            s0 = ((s0 << np.uint64(49)) | (s0 >> np.uint64(15))) ^ t ^ (t << np.uint64(21))
            s1 = (t << np.uint64(28)) | (t >> np.uint64(36))
            if (_FI[idx - 1] - _FI[idx]) * ((u >> np.uint64(11)) * _TWO_M53) + _FI[idx] < math.exp(-0.5 * x * x):
                return x, s0, s1
        r = (((s0 + s1) << np.uint64(17)) | ((s0 + s1) >> np.uint64(47))) + s0
        t = s1 ^ s0
        s0 = ((s0 << np.uint64(49)) | (s0 >> np.uint64(15))) ^ t ^ (t << np.uint64(21))
        s1 = (t << np.uint64(28)) | (t >> np.uint64(36))
        idx = r & np.uint64(0xFF)
        r = r >> np.uint64(8)
        rabs = (r >> np.uint64(1)) & _MASK52
        x = rabs * _WI[idx]
        if r & np.uint64(1):
            x = -x
        if rabs < _KI[idx]:
            return x, s0, s1


@njit(inline="always", cache=True)
def normal(s0, s1):
    """Standard normal variate by the 256-layer ziggurat (Marsaglia & Tsang 2000).

    About 99% of draws take one 64-bit number and one table comparison; the rest go to an
    out-of-line slow path (wedges and the tail beyond ``R = 3.654...`` by Marsaglia's method).
    """
    r, s0, s1 = next_u64(s0, s1)
    idx = r & np.uint64(0xFF)
    r = r >> np.uint64(8)
    rabs = (r >> np.uint64(1)) & _MASK52
    x = rabs * _WI[idx]
    if r & np.uint64(1):
        x = -x
    if rabs < _KI[idx]:
        return x, s0, s1
    return _normal_slow(idx, rabs, x, s0, s1)


@njit(inline="always", cache=True)
def normal_boxmuller(s0, s1):
    """Standard normal by the Box–Muller transform (one of the pair): the slow reference sampler."""
    u1, s0, s1 = uniform(s0, s1)
    u2, s0, s1 = uniform(s0, s1)
    return math.sqrt(-2.0 * math.log1p(-u1)) * math.cos(2.0 * math.pi * u2), s0, s1


@njit(inline="always", cache=True)
def exponential(s0, s1):
    """Standard exponential variate by inversion, ``-log(1 - U)``."""
    u, s0, s1 = uniform(s0, s1)
    return -math.log1p(-u), s0, s1


@njit(cache=True)
def normal_lanes(S0, S1, out, scratch, live, n):
    """One standard normal per lane: ``out[j]`` from the stream ``(S0[j], S1[j])``, for ``j < n``.

    The same ziggurat as :func:`normal`, with the lanes (the replicas of a block, each with its
    own generator) in the inner loop, so the compiler vectorises it (SIMD lanes: xoroshiro128++
    steps, table gathers, the fast-path test). A lane whose draw falls outside the fast path
    (about 1.2%) is finished afterwards, in lane order, by :func:`_normal_slow` from its own
    advanced state: every lane consumes exactly the numbers the scalar :func:`normal` would, in
    the same order, so results are bit-identical to it and independent of how lanes are grouped.

    Lanes with ``live[j]`` False are left untouched (state not advanced; ``out[j]`` is garbage).
    ``scratch`` is a uint64 buffer of at least ``n`` entries (the raw draws).
    """
    n_slow = 0
    for j in range(n):
        s0 = S0[j]
        s1 = S1[j]
        u = (((s0 + s1) << np.uint64(17)) | ((s0 + s1) >> np.uint64(47))) + s0  # next_u64, written out
        t = s1 ^ s0
        a = live[j]
        S0[j] = (((s0 << np.uint64(49)) | (s0 >> np.uint64(15))) ^ t ^ (t << np.uint64(21))) if a else s0
        S1[j] = ((t << np.uint64(28)) | (t >> np.uint64(36))) if a else s1
        scratch[j] = u
        idx = u & np.uint64(0xFF)
        r = u >> np.uint64(8)
        rabs = (r >> np.uint64(1)) & _MASK52
        x = rabs * _WI[idx]
        out[j] = -x if r & np.uint64(1) else x
        n_slow += np.int64(a & (rabs >= _KI[idx]))
    if n_slow:
        for j in range(n):
            u = scratch[j]
            idx = u & np.uint64(0xFF)
            rabs = (u >> np.uint64(9)) & _MASK52
            if rabs >= _KI[idx] and live[j]:
                out[j], S0[j], S1[j] = _normal_slow(idx, rabs, out[j], S0[j], S1[j])
                n_slow -= 1
                if n_slow == 0:
                    break


_UNIFORM, _BOXMULLER = 1, 2


@njit(cache=True)
def _fill(kind, state, out):
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            if kind == _UNIFORM:
                out[r, j], s0, s1 = uniform(s0, s1)
            else:
                out[r, j], s0, s1 = normal_boxmuller(s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1


def fill_normal(state, out):
    """Fill ``out[r, :]`` with standard normals from replica ``r``'s stream (advances ``state``).

    Column by column through :func:`normal_lanes` (the replicas are the lanes), which draws
    exactly what :func:`normal` would, replica by replica.
    """
    R = out.shape[0]
    S0 = np.ascontiguousarray(state[:, 0])
    S1 = np.ascontiguousarray(state[:, 1])
    w = np.empty(R)
    scratch = np.empty(R, dtype=np.uint64)
    live = np.ones(R, dtype=np.bool_)
    for j in range(out.shape[1]):
        normal_lanes(S0, S1, w, scratch, live, R)
        out[:, j] = w
    state[:, 0] = S0
    state[:, 1] = S1


def fill_uniform(state, out):
    """Fill ``out[r, :]`` with uniforms on [0, 1) from replica ``r``'s stream (advances ``state``)."""
    _fill(_UNIFORM, state, out)


def fill_normal_boxmuller(state, out):
    """As :func:`fill_normal` with the Box–Muller sampler (for tests and benchmarks)."""
    _fill(_BOXMULLER, state, out)


@njit(cache=True)
def fill_u64(state, out):
    """Fill ``out[r, :]`` with raw 64-bit outputs of replica ``r``'s stream (advances ``state``)."""
    for r in range(out.shape[0]):
        s0 = state[r, 0]
        s1 = state[r, 1]
        for j in range(out.shape[1]):
            out[r, j], s0, s1 = next_u64(s0, s1)
        state[r, 0] = s0
        state[r, 1] = s1
