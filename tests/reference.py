"""Slow, plain-NumPy reference implementations used as independent oracles in tests.

Written from the formulas in the docstrings, not from the compiled code, so that an error in one
is not repeated in the other.
"""

from __future__ import annotations

import numpy as np


def harmonic(x, H, c):
    y = x - c
    return 0.5 * np.einsum("...i,ij,...j->...", y, H, y)


def double_well(x, barrier=1.0, separation=2.0, tilt=0.0, stiffness=1.0):
    a = separation / 2
    return barrier * ((x[..., 0] / a) ** 2 - 1) ** 2 + tilt * x[..., 0] + 0.5 * stiffness * np.sum(x[..., 1:] ** 2, -1)


def mueller_brown(x, scale=1.0):
    A = [-200, -100, -170, 15]
    a = [-1, -1, -6.5, 0.7]
    b = [0, 0, 11, 0.6]
    c = [-10, -10, -6.5, 0.7]
    x0 = [1, 0, -0.5, -1]
    y0 = [0, 0.5, 1.5, 1]
    X, Y = x[..., 0], x[..., 1]
    return scale * sum(
        A[k] * np.exp(a[k] * (X - x0[k]) ** 2 + b[k] * (X - x0[k]) * (Y - y0[k]) + c[k] * (Y - y0[k]) ** 2) for k in range(4)
    )


def rosenbrock(x, a=1.0, b=100.0):
    return np.sum(b * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (a - x[..., :-1]) ** 2, -1)


def rastrigin(x, amplitude=10.0):
    return amplitude * x.shape[-1] + np.sum(x**2 - amplitude * np.cos(2 * np.pi * x), -1)


def gaussian_mixture(x, means, covs, weights, form="log-density", confinement=0.0):
    from scipy.stats import multivariate_normal

    if form == "log-density":
        dens = sum(w * multivariate_normal(m, S).pdf(x) for m, S, w in zip(means, covs, weights))
        return -np.log(dens)
    wells = 0.0
    for m, S, w in zip(means, covs, weights):
        y = x - m
        wells = wells + w * np.exp(-0.5 * np.einsum("...i,ij,...j->...", y, np.linalg.inv(S), y))
    return -wells + 0.5 * confinement * np.sum(x**2, -1)


def euler_maruyama_reference(grad, x0, dt, temperature, normals):
    """EM with given normals ``normals[step, replica, dim]`` (plain loop, for cross-checks)."""
    x = np.array(x0, dtype=float)
    for z in normals:
        x = x - dt * grad(x) + np.sqrt(2 * temperature * dt) * z
    return x


def linear_problem(rows):
    """A finite-sum problem with per-sample loss l_i(theta) = x_i . theta (3 features): constant per-sample
    gradients x_i, so every mini-batch / compression statistic is a finite enumeration."""
    import stochdyn as sd

    global _LINEAR3
    if "_LINEAR3" not in globals():
        @sd.problems.per_sample_loss(dim=3)
        def linear3(theta, row, grad):
            s = 0.0
            for k in range(3):
                grad[k] = row[k]
                s += row[k] * theta[k]
            return s

        _LINEAR3 = linear3
    return _LINEAR3(np.asarray(rows, dtype=float))
