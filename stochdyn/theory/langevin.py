"""Exact results for discretised Langevin dynamics at finite step, and Gibbs averages by quadrature.

For a linear force :math:`-\\nabla U = -H x`, every scheme here is a linear recursion
:math:`Y_{n+1} = A Y_n + B \\xi_{n+1}` on an (augmented) state, whose stationary covariance solves the
discrete Lyapunov equation :math:`C = A C A^\\top + B B^\\top` — exact at any stable step, no
continuous-time limit involved. Closed forms for the scalar cases are given beside.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

__all__ = [
    "em_harmonic_variance",
    "em_stationary_covariance",
    "lm_harmonic_variance",
    "lm_stationary_covariance",
    "baoab_harmonic_variances",
    "baoab_harmonic_covariance",
    "em_harmonic_second_moment",
    "gibbs_expectation_1d",
    "double_well_gibbs",
    "stationary_covariance_linear",
]


def stationary_covariance_linear(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Stationary covariance of :math:`Y_{n+1} = A Y_n + B\\xi_n`, :math:`\\xi_n\\sim\\mathcal N(0,I)`.

    Solves :math:`C = A C A^\\top + B B^\\top` (requires spectral radius of A < 1).
    """
    A = np.atleast_2d(np.asarray(A, dtype=float))
    B = np.atleast_2d(np.asarray(B, dtype=float))
    from scipy import linalg

    rho = max(abs(np.linalg.eigvals(A)))
    if rho >= 1.0:
        raise ValueError(f"The recursion is not stable (spectral radius {rho:.6g} >= 1): no stationary law.")
    return linalg.solve_discrete_lyapunov(A, B @ B.T)


def em_harmonic_variance(stiffness: float, dt: float, temperature: float) -> float:
    """Exact stationary variance of Euler–Maruyama on :math:`U = kx^2/2`.

    :math:`x_{n+1} = (1-k\\Delta t)x_n + \\sqrt{2T\\Delta t}\\,\\xi_n` gives
    :math:`\\mathrm{Var} = 2T\\Delta t/(1-(1-k\\Delta t)^2) = T / \\big(k(1 - k\\Delta t/2)\\big)`,
    stable for :math:`0 < k\\Delta t < 2`. The continuous-time value is T/k.
    """
    k, h, T = float(stiffness), float(dt), float(temperature)
    if not 0.0 < k * h < 2.0:
        raise ValueError(f"Euler–Maruyama on a harmonic well is stable only for 0 < k*dt < 2. Got k*dt = {k * h:g}.")
    return T / (k * (1.0 - 0.5 * k * h))


def em_harmonic_second_moment(stiffness: float, dt: float, temperature: float, x0: float, n: int) -> float:
    """:math:`E[x_n^2]` of Euler–Maruyama on :math:`U=kx^2/2` from :math:`x_0`, exactly.

    With :math:`a = 1-k\\Delta t`: :math:`E[x_n^2] = a^{2n}x_0^2 + 2T\\Delta t\\,(1-a^{2n})/(1-a^2)`.
    """
    a = 1.0 - stiffness * dt
    a2n = a ** (2 * n)
    return a2n * x0**2 + 2.0 * temperature * dt * (1.0 - a2n) / (1.0 - a * a)


def em_stationary_covariance(hessian: np.ndarray, dt: float, diffusion: np.ndarray) -> np.ndarray:
    """Exact stationary covariance of Euler–Maruyama on :math:`U = x^\\top H x/2` with diffusion matrix D.

    :math:`x_{n+1} = (I - \\Delta t H)x_n + \\sqrt{2\\Delta t}D^{1/2}\\xi_n`, so
    :math:`C = (I-\\Delta tH)C(I-\\Delta tH)^\\top + 2\\Delta t D`.
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=float))
    D = np.atleast_2d(np.asarray(diffusion, dtype=float))
    A = np.eye(H.shape[0]) - dt * H
    return stationary_covariance_linear(A, np.linalg.cholesky(2.0 * dt * D))


def lm_harmonic_variance(stiffness: float, dt: float, temperature: float) -> float:
    """Exact stationary variance of Leimkuhler–Matthews on :math:`U = kx^2/2`: exactly T/k.

    With :math:`a = 1-k\\Delta t`, :math:`\\sigma^2 = 2T\\Delta t` and :math:`\\mathrm{Cov}(x_n,\\xi_n)=\\sigma/2`:
    :math:`V = a^2V + \\sigma^2/2 + a\\sigma^2/2`, so :math:`V = \\sigma^2/(2(1-a)) = T/k` for
    :math:`0<k\\Delta t<2`.
    """
    k, h = float(stiffness), float(dt)
    if not 0.0 < k * h < 2.0:
        raise ValueError(f"Leimkuhler–Matthews on a harmonic well is stable only for 0 < k*dt < 2. Got {k * h:g}.")
    return float(temperature) / k


def lm_stationary_covariance(hessian: np.ndarray, dt: float, temperature: np.ndarray | float) -> np.ndarray:
    """Exact stationary covariance of Leimkuhler–Matthews on :math:`U = x^\\top Hx/2` (per-coordinate T allowed).

    Augmented state :math:`Y_n = (x_n, \\xi_n)`:
    :math:`Y_{n+1} = \\begin{pmatrix}A & S/2\\\\ 0 & 0\\end{pmatrix}Y_n + \\begin{pmatrix}S/2\\\\ I\\end{pmatrix}\\xi_{n+1}`,
    :math:`A = I-\\Delta tH`, :math:`S = \\mathrm{diag}(\\sqrt{2T_i\\Delta t})`. Returns the x block.
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=float))
    d = H.shape[0]
    S = np.diag(np.sqrt(2.0 * np.broadcast_to(np.asarray(temperature, float), (d,)) * dt))
    A = np.block([[np.eye(d) - dt * H, 0.5 * S], [np.zeros((d, d)), np.zeros((d, d))]])
    B = np.vstack([0.5 * S, np.eye(d)])
    return stationary_covariance_linear(A, B)[:d, :d]


def baoab_harmonic_covariance(hessian: np.ndarray, dt: float, temperature: float, friction: float,
                              mass: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact stationary covariances ``(C_xx, C_vv, C_xv)`` of BAOAB on :math:`U = x^\\top Hx/2`.

    One step is the linear map B·A·O·A·B on :math:`(x, v)` with noise only in O; its stationary
    covariance solves the discrete Lyapunov equation. Velocities are recorded after the final B.
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=float))
    d = H.shape[0]
    minv = np.diag(1.0 / np.broadcast_to(np.asarray(mass, float), (d,)))
    h = 0.5 * dt
    c = math.exp(-friction * dt)
    I, Z = np.eye(d), np.zeros((d, d))
    Bk = np.block([[I, Z], [-h * minv @ H, I]])
    Ad = np.block([[I, h * I], [Z, I]])
    O = np.block([[I, Z], [Z, c * I]])
    noise = np.vstack([Z, np.sqrt((1.0 - c * c) * temperature * minv)])
    A = Bk @ Ad @ O @ Ad @ Bk
    Bn = Bk @ Ad @ noise
    C = stationary_covariance_linear(A, Bn)
    return C[:d, :d], C[d:, d:], C[:d, d:]


def baoab_harmonic_variances(stiffness: float, dt: float, temperature: float, mass: float = 1.0) -> tuple[float, float]:
    """Closed forms for BAOAB on :math:`U=kx^2/2`: :math:`\\langle x^2\\rangle = T/k` and
    :math:`\\langle v^2\\rangle = (T/m)(1 - \\Delta t^2 k/(4m))`, independent of the friction
    (Leimkuhler & Matthews 2013, harmonic analysis). Stable for :math:`\\Delta t^2 k/m < 4`."""
    w2h2 = dt * dt * stiffness / mass
    if not 0.0 < w2h2 < 4.0:
        raise ValueError(f"BAOAB on a harmonic well is stable only for dt^2 k / m < 4. Got {w2h2:g}.")
    return temperature / stiffness, (temperature / mass) * (1.0 - 0.25 * w2h2)


def gibbs_expectation_1d(U: Callable[[np.ndarray], np.ndarray], f: Callable[[np.ndarray], np.ndarray],
                         temperature: float, bounds: tuple[float, float], points: tuple[float, ...] = ()) -> float:
    """:math:`\\int f e^{-U/T} / \\int e^{-U/T}` over ``bounds`` by adaptive quadrature (QUADPACK).

    ``U`` is shifted by its minimum on a grid for numerical safety; choose ``bounds`` wide enough
    that the density is negligible at the ends, and list any discontinuity of ``f`` in ``points``.
    """
    from scipy import integrate

    grid = np.linspace(bounds[0], bounds[1], 4001)
    u0 = float(np.min(U(grid)))

    def w(x: float) -> float:
        return math.exp(-(float(U(np.array([x]))[0]) - u0) / temperature)

    kw = dict(limit=400, epsabs=1e-11, epsrel=1e-10, points=tuple(points) or None)
    z = integrate.quad(w, *bounds, **kw)[0]
    num = integrate.quad(lambda x: float(f(np.array([x]))[0]) * w(x), *bounds, **kw)[0]
    return num / z


def double_well_gibbs(temperature: float, barrier: float = 1.0, separation: float = 2.0, tilt: float = 0.0,
                      stiffness: float = 1.0) -> dict[str, float]:
    """Gibbs averages of :class:`~stochdyn.landscapes.DoubleWell` by quadrature.

    The density factorises: :math:`x_0` has density :math:`\\propto e^{-U_0(x_0)/T}` with
    :math:`U_0 = h((x_0/a)^2-1)^2 + t x_0`, the other coordinates are independent
    :math:`\\mathcal N(0, T/k)`. Returns ``mean_x0``, ``var_x0``, ``mean_x0_sq``, ``mean_x0_4``,
    ``p_right`` (probability of :math:`x_0 > 0`), ``var_transverse`` and ``mean_U0``.
    """
    a = 0.5 * separation

    def U0(x: np.ndarray) -> np.ndarray:
        return barrier * ((x / a) ** 2 - 1.0) ** 2 + tilt * x

    # the density is negligible where U0 exceeds its minimum by 60 T
    L = a * (1.0 + math.sqrt(1.0 + 60.0 * temperature / barrier)) + abs(tilt) / max(barrier, 1e-12)
    bounds = (-L, L)
    m1 = gibbs_expectation_1d(U0, lambda x: x, temperature, bounds)
    m2 = gibbs_expectation_1d(U0, lambda x: x**2, temperature, bounds)
    m4 = gibbs_expectation_1d(U0, lambda x: x**4, temperature, bounds)
    pr = gibbs_expectation_1d(U0, lambda x: (x > 0).astype(float), temperature, bounds, points=(0.0,))
    mu = gibbs_expectation_1d(U0, U0, temperature, bounds)
    return {"mean_x0": m1, "mean_x0_sq": m2, "var_x0": m2 - m1 * m1, "mean_x0_4": m4, "p_right": pr,
            "var_transverse": temperature / stiffness, "mean_U0": mu}


class GridDensity:
    """A 1-D probability density known on quadrature nodes, with its exact Nyström interpolant.

    ``x``, ``weights``, ``pdf``: nodes, quadrature weights and density values (so
    ``sum(weights * pdf * f(x))`` integrates f); calling the object evaluates the density anywhere;
    :meth:`expectation` and :meth:`probability` integrate it. ``leak`` is the probability per step of
    leaving the interval (a check that the interval holds the chain).
    """

    def __init__(self, x: np.ndarray, weights: np.ndarray, pdf: np.ndarray, interpolant: Callable, leak: float):
        self.x, self.weights, self.pdf, self.leak = x, weights, pdf, float(leak)
        self._interpolant = interpolant

    def __call__(self, s: np.ndarray | float) -> np.ndarray:
        return self._interpolant(np.asarray(s, dtype=float))

    def expectation(self, f: Callable[[np.ndarray], np.ndarray]) -> float:
        """:math:`\\int f\\,p`, by the nodes' quadrature."""
        return float(np.sum(self.weights * self.pdf * f(self.x)))

    def probability(self, low: float = -math.inf, high: float = math.inf, cells: int = 200) -> float:
        """:math:`P(\\text{low} \\le X \\le \\text{high})`, integrating the interpolant over the interval exactly
        (composite Gauss–Legendre), so the ends need not fall on cell edges."""
        lo, hi = max(float(low), float(self.x[0])), min(float(high), float(self.x[-1]))
        if hi <= lo:
            return 0.0
        g, w = np.polynomial.legendre.leggauss(8)
        edges = np.linspace(lo, hi, cells + 1)
        half = 0.5 * np.diff(edges)
        nodes = ((0.5 * (edges[1:] + edges[:-1]))[:, None] + half[:, None] * g).ravel()
        return float(np.sum(self(nodes) * (half[:, None] * w).ravel()))


def em_stationary_density_1d(potential: Any, dt: float, temperature: float, *, bounds: tuple[float, float] | None = None,
                             coordinate: int = 0, gradient: Callable | None = None, cells_per_sigma: float = 2.0,
                             max_nodes: int = 6000) -> GridDensity:
    r"""Exact stationary density of the 1-D Euler–Maruyama chain at finite step (not the Gibbs density).

    The chain :math:`x_{n+1} = x_n - \Delta t\,U'(x_n) + \sqrt{2T\Delta t}\,\xi_n` (what
    :class:`~stochdyn.EulerMaruyama` and ``SGD(lr=dt, gradient_noise=2T/dt)`` simulate) has Gaussian
    transition density :math:`p(y\mid x) = \mathcal N(y;\,x-\Delta t U'(x),\,2T\Delta t)`; its
    stationary density solves the balance equation

    .. math::
        \pi(y) = \int p(y\mid x)\,\pi(x)\,dx,\qquad \int\pi = 1,

    solved here by the Nyström method (composite 8-point Gauss–Legendre nodes, cells no wider than
    :math:`\sqrt{2T\Delta t}` / ``cells_per_sigma``; Kress, *Linear Integral Equations*, 3rd ed.,
    §12.1). The interpolant :math:`\pi(y) = \sum_j w_j p(y\mid x_j)\pi_j` is exact to quadrature
    accuracy at every y. It differs from :math:`e^{-U/T}/Z` at O(Δt) (Talay & Tubaro 1990, Stoch.
    Anal. Appl. 8, 483) and tends to it as Δt → 0; on :math:`U = kx^2/2` it is the Gaussian of
    variance :math:`T/(k(1-k\Delta t/2))` (:func:`em_harmonic_variance`). For a separable landscape
    (e.g. :class:`~stochdyn.landscapes.DoubleWell`) it is the exact marginal of one coordinate.

    For a superlinear force (e.g. a quartic well) the chain is, strictly, not ergodic: from far
    enough out a step overshoots ever further (Mattingly, Stuart & Higham 2002, Stoch. Proc. Appl.
    101, 185; Hutzenthaler, Jentzen & Kloeden 2011, Proc. R. Soc. A 467, 1563). This is then the
    quasi-stationary law on ``bounds``, which the chain leaves with probability ``leak`` per step
    (reported; ~e^-50 with the default bounds).

    Parameters
    ----------
    potential : Landscape or callable
        U (a landscape along ``coordinate``, others at its ``center`` or 0).
    dt, temperature : float
        Step and T > 0.
    bounds : (float, float), optional
        Interval for the density; default where U exceeds its minimum by 50 T, widened by 10 steps'
        noise.
    gradient : callable, optional
        U' for a callable potential (default: central differences; a landscape's own gradient).

    Returns
    -------
    GridDensity
    """
    from .escape import _check_em_args, _em_nodes, _em_step_kernel, _far_wall, _potential_and_derivative, _sparse

    T, h = _check_em_args(temperature, dt)
    U, dU = _potential_and_derivative(potential, coordinate, gradient)
    sigma = math.sqrt(2.0 * T * h)
    if bounds is None:
        lo = _far_wall(U, 0.0, T) - 10.0 * sigma
        hi = -_far_wall(lambda s: U(-np.asarray(s)), 0.0, T) + 10.0 * sigma
    else:
        lo, hi = sorted(float(v) for v in bounds)
    x, w = _em_nodes([lo, hi], sigma, cells_per_sigma, max_nodes)
    from scipy import sparse
    from scipy.sparse.linalg import splu

    P = _sparse(_em_step_kernel(dU, h, T, x, x, w))  # P[j, i] = p(x_i | x_j) w_i
    # pi = K pi with K_ij = p(x_i | x_j) w_j: the eigenvector of K's largest eigenvalue (1, or 1 - leak),
    # by inverse iteration with a shift just above 1 (the next eigenvalue is 1 - O(dt * slowest rate))
    K = sparse.diags(1.0 / w) @ P.T @ sparse.diags(w)
    lu = splu((K - (1.0 + 1e-10) * sparse.identity(x.size)).tocsc())
    pi = np.ones(x.size)
    for _ in range(4):
        pi = lu.solve(pi)
        pi /= np.sum(w * pi)
    leak = float(np.sum(w * pi * (1.0 - np.asarray(P.sum(axis=1)).ravel())))

    def interpolant(s: np.ndarray) -> np.ndarray:
        flat = np.atleast_1d(s).ravel()
        out = _em_step_kernel(dU, h, T, x, flat, np.ones(flat.size)).T @ (w * pi)
        return out.reshape(np.shape(s))

    return GridDensity(x, w, pi, interpolant, leak)


__all__ += ["GridDensity", "em_stationary_density_1d"]
