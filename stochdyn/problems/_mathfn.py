r"""Elementary functions for the problems' losses, in plain IEEE arithmetic: :func:`exp_`,
:func:`expm1_`, :func:`log1p_`, :func:`tanh_`.

Why not ``math.exp`` and friends: those call the C library, which differs between library versions
and cannot be vectorised by the compiler, so a loop over a mini-batch's examples paid a function
call per example and per hidden unit (about 5-9 ns each) while NumPy evaluates them in SIMD lanes.
These are branch-free (selects), so a loop over examples vectorises, and they are a fixed sequence
of additions and multiplications (Horner, never fused or reassociated), so they give the same bits
on every IEEE machine, with or without SIMD.

Methods (Cody & Waite 1980, *Software Manual for the Elementary Functions*; Tang 1989, ACM TOMS
15, 144): :math:`e^x = 2^k e^r` with :math:`k = \mathrm{round}(x/\ln 2)`, :math:`r = x - k\ln 2` in
two parts (|r| <= ln2/2), :math:`e^r` by its Taylor polynomial of degree 13 (truncation below
1e-17 relative); :math:`\mathrm{expm1}` by the same polynomial without its constant term for
|x| < ln2/2 (no cancellation), :math:`e^x - 1` above; :math:`\log(1+y) = k\ln 2 + 2\,\mathrm{atanh}(s)`,
:math:`s = f/(2+f)` for :math:`1+y = 2^k(1+f)`, :math:`\sqrt2/2 \le 1+f < \sqrt2`, with the
rounding error of :math:`1+y` added back (Goldberg 1991, Theorem 4); :math:`\tanh x =
\mathrm{sign}(x)\,t/(t+2)`, :math:`t = \mathrm{expm1}(2|x|)`. Accuracy (tested against NumPy):
a few units in the last place.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp_", "expm1_", "log1p_", "tanh_"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its last 32 bits zero: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_HALF_LN2 = 0.34657359027997264
_OVER = 709.782712893384  # exp(x) = inf above
_UNDER = -745.1332191019412  # exp(x) = 0 below
_SQRT2 = 1.4142135623730951
_MAX = 1.7976931348623157e308


@intrinsic
def _pow2(typingctx, k):
    """``2.0 ** k`` for an integer ``-1022 <= k <= 1023``, built from its exponent bits."""
    if not isinstance(k, types.Integer):
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        bits = builder.shl(builder.add(args[0], ir.Constant(ir.IntType(64), 1023)), ir.Constant(ir.IntType(64), 52))
        return builder.bitcast(bits, ir.DoubleType())

    return sig, codegen


@intrinsic
def _exponent(typingctx, x):
    """``k`` with ``x = 2^k m``, ``1 <= m < 2``, for a positive normal double (from its bits)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(args[0], i64)
        return builder.sub(builder.lshr(bits, ir.Constant(i64, 52)), ir.Constant(i64, 1023))

    return types.int64(types.float64), codegen


@intrinsic
def _mantissa(typingctx, x):
    """``m`` with ``x = 2^k m``, ``1 <= m < 2``, for a positive normal double (from its bits)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(args[0], i64)
        mbits = builder.or_(builder.and_(bits, ir.Constant(i64, (1 << 52) - 1)), ir.Constant(i64, 1023 << 52))
        return builder.bitcast(mbits, ir.DoubleType())

    return types.float64(types.float64), codegen


@njit(inline="always", cache=True)
def _expm1_poly(r):
    """``e^r - 1`` by Taylor's polynomial of degree 13 (Horner), for |r| <= ln2/2."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r


@njit(inline="always", cache=True)
def exp_(x):
    r""":math:`e^x` (see the module docstring); inf above 709.78, 0 below -745.13, nan for nan."""
    xc = x if abs(x) <= 746.0 else (746.0 if x > 0.0 else -746.0)  # (also maps nan to -746: k stays finite)
    k = math.floor(xc * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    ki = np.int64(k)
    h = ki >> 1  # 2^k in two factors: both normal down to the smallest subnormal result
    y = (1.0 + _expm1_poly(r)) * _pow2(h) * _pow2(ki - h)
    return np.inf if x > _OVER else (0.0 if x < _UNDER else y)


@njit(inline="always", cache=True)
def expm1_(x):
    r""":math:`e^x - 1`, accurate near 0 (see the module docstring)."""
    e = exp_(x) - 1.0
    return _expm1_poly(x) if abs(x) < _HALF_LN2 else e


@njit(inline="always", cache=True)
def log1p_(y):
    r""":math:`\log(1+y)` for :math:`y \ge 0` (the losses' use: ``y = e^{-|z|}``); nan below 0 or for nan,
    inf for inf (see the module docstring)."""
    u = 1.0 + y
    c = (y - (u - 1.0)) / u  # rounding error of 1 + y, relative to u (0 when u is exact)
    ok = u <= _MAX and y >= 0.0
    uu = u if ok else 1.0  # (keep the decomposition finite; the select below returns inf or nan)
    m = _mantissa(uu)
    big = m > _SQRT2
    f = (0.5 * m if big else m) - 1.0
    kf = np.float64(_exponent(uu)) + (1.0 if big else 0.0)
    s = f / (2.0 + f)
    z = s * s
    p = 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    v = kf * _LN2_HI + ((2.0 * s + (2.0 * s) * (z * p) + c) + kf * _LN2_LO)
    return v if ok else (u if y >= 0.0 else np.nan)


@njit(inline="always", cache=True)
def tanh_(x):
    r""":math:`\tanh x = \mathrm{sign}(x)\,t/(t+2)`, :math:`t = \mathrm{expm1}(2|x|)`; ±1 for |x| > 20."""
    a = abs(x)
    t = expm1_(2.0 * (a if a < 20.0 else 20.0))
    v = 1.0 if a > 20.0 else t / (t + 2.0)
    return math.copysign(v, x) if a == a else x
