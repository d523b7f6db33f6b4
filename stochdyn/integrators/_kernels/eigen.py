"""Symmetric eigendecomposition for the covariance-learning strategies (CMA-ES, xNES), compiled once.

:data:`eigh` is a ``numba.cfunc`` with the fixed C signature :data:`EIGH_SIG`::

    void eigh(double *A, double *V, double *w, double *work, intp n)

which writes the eigenvalues of the symmetric n x n matrix ``A`` (read only) into ``w`` and its
orthonormal eigenvectors into the columns of ``V`` (``work``: n doubles). Kernels receive it as an
argument, like a landscape, and call it through a pointer: the code is compiled (or loaded from
the disk cache) once for every kernel instead of being re-optimised inside each of them.

Householder tridiagonalisation and the implicit QL method (EISPACK tred2/tql2, Smith et al. 1976,
as in JAMA's EigenvalueDecomposition); in place, no allocation. A cyclic Jacobi method
warm-started from the previous eigenbasis was measured first: 3–4 sweeps of 45 rotations cost
about twice as much at n = 10.
"""

from __future__ import annotations

import math

from numba import carray, njit, types

from ..._numba_utils import LazyCFunc

#: ``void eigh(double *A, double *V, double *w, double *work, intp n)``
EIGH_SIG = types.void(types.CPointer(types.float64), types.CPointer(types.float64), types.CPointer(types.float64),
                      types.CPointer(types.float64), types.intp)


@njit(inline="always", cache=True)
def _transpose(V, n):
    for i in range(n):
        for j in range(i):
            t = V[i, j]
            V[i, j] = V[j, i]
            V[j, i] = t


def _eigh(ap, vp, wp, ep, n):
    A = carray(ap, (n, n))
    V = carray(vp, (n, n))
    d = carray(wp, (n,))
    e = carray(ep, (n,))
    for i in range(n):
        for j in range(n):
            V[i, j] = A[j, i]  # the transpose (A is symmetric: only the arithmetic below is laid out for it)
    # -- tred2: Householder reduction of the symmetric V (overwritten) to tridiagonal form (d: diagonal,
    #    e: off-diagonal), accumulating the orthogonal transformation in V. Both steps work on the
    #    transpose of V, whose rows are contiguous where EISPACK walks down columns (the same
    #    arithmetic per element; 6.3 -> 4.5 us at n = 10); V is transposed back at the end
    for j in range(n):
        d[j] = V[j, n - 1]
    for i in range(n - 1, 0, -1):
        scale = 0.0
        h = 0.0
        for k in range(i):
            scale += abs(d[k])
        if scale == 0.0:
            e[i] = d[i - 1]
            for j in range(i):
                d[j] = V[j, i - 1]
                V[j, i] = 0.0
                V[i, j] = 0.0
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
                V[i, j] = f
                g = e[j] + V[j, j] * f
                for k in range(j + 1, i):
                    g += V[j, k] * d[k]
                    e[k] += V[j, k] * f
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
                    V[j, k] -= f * e[k] + g * d[k]
                d[j] = V[j, i - 1]
                V[j, i] = 0.0
        d[i] = h
    for i in range(n - 1):
        V[i, n - 1] = V[i, i]
        V[i, i] = 1.0
        h = d[i + 1]
        if h != 0.0:
            for k in range(i + 1):
                d[k] = V[i + 1, k] / h
            for j in range(i + 1):
                g = 0.0
                for k in range(i + 1):
                    g += V[i + 1, k] * V[j, k]
                for k in range(i + 1):
                    V[j, k] -= g * d[k]
        for k in range(i + 1):
            V[i + 1, k] = 0.0
    for j in range(n):
        d[j] = V[j, n - 1]
        V[j, n - 1] = 0.0
    V[n - 1, n - 1] = 1.0
    e[0] = 0.0
    # -- tql2: eigenvalues (into d) and eigenvectors (columns of V) of the tridiagonal matrix, by the
    #    implicit QL method with shifts (rotations of pairs of rows of the transpose)
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
                        h = V[i + 1, k]
                        V[i + 1, k] = s * V[i, k] + c * h
                        V[i, k] = c * V[i, k] - s * h
                p = -s * s2 * c3 * el1 * e[l] / dl1
                e[l] = s * p
                d[l] = c * p
                if not (abs(e[l]) > eps * tst1):
                    break
        d[l] = d[l] + f
        e[l] = 0.0
    _transpose(V, n)


#: the compiled eigensolver (compiled, or loaded from the disk cache, on first use)
eigh = LazyCFunc(_eigh, EIGH_SIG)
