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

from numba import carray, types

from ..._numba_utils import LazyCFunc

#: ``void eigh(double *A, double *V, double *w, double *work, intp n)``
EIGH_SIG = types.void(types.CPointer(types.float64), types.CPointer(types.float64), types.CPointer(types.float64),
                      types.CPointer(types.float64), types.intp)


def _eigh(ap, vp, wp, ep, n):
    A = carray(ap, (n, n))
    V = carray(vp, (n, n))
    d = carray(wp, (n,))
    e = carray(ep, (n,))
    for i in range(n):
        for j in range(n):
            V[i, j] = A[i, j]
    # -- tred2: Householder reduction of the symmetric V (overwritten) to tridiagonal form (d: diagonal,
    #    e: off-diagonal), accumulating the orthogonal transformation in V
    for j in range(n):
        d[j] = V[n - 1, j]
    for i in range(n - 1, 0, -1):
        scale = 0.0
        h = 0.0
        for k in range(i):
            scale += abs(d[k])
        if scale == 0.0:
            e[i] = d[i - 1]
            for j in range(i):
                d[j] = V[i - 1, j]
                V[i, j] = 0.0
                V[j, i] = 0.0
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
                V[j, i] = f
                g = e[j] + V[j, j] * f
                for k in range(j + 1, i):
                    g += V[k, j] * d[k]
                    e[k] += V[k, j] * f
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
                    V[k, j] -= f * e[k] + g * d[k]
                d[j] = V[i - 1, j]
                V[i, j] = 0.0
        d[i] = h
    for i in range(n - 1):
        V[n - 1, i] = V[i, i]
        V[i, i] = 1.0
        h = d[i + 1]
        if h != 0.0:
            for k in range(i + 1):
                d[k] = V[k, i + 1] / h
            for j in range(i + 1):
                g = 0.0
                for k in range(i + 1):
                    g += V[k, i + 1] * V[k, j]
                for k in range(i + 1):
                    V[k, j] -= g * d[k]
        for k in range(i + 1):
            V[k, i + 1] = 0.0
    for j in range(n):
        d[j] = V[n - 1, j]
        V[n - 1, j] = 0.0
    V[n - 1, n - 1] = 1.0
    e[0] = 0.0
    # -- tql2: eigenvalues (into d) and eigenvectors (columns of V) of the tridiagonal matrix, by the
    #    implicit QL method with shifts
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
                        h = V[k, i + 1]
                        V[k, i + 1] = s * V[k, i] + c * h
                        V[k, i] = c * V[k, i] - s * h
                p = -s * s2 * c3 * el1 * e[l] / dl1
                e[l] = s * p
                d[l] = c * p
                if not (abs(e[l]) > eps * tst1):
                    break
        d[l] = d[l] + f
        e[l] = 0.0


#: the compiled eigensolver (compiled, or loaded from the disk cache, on first use)
eigh = LazyCFunc(_eigh, EIGH_SIG)
