"""Built-in landscapes: Harmonic, DoubleWell, MuellerBrown, Rosenbrock, Rastrigin, GaussianMixture, SharpFlat.

Each is one row function ``_<name>_row(x, g, th) -> U`` (Numba, writes the gradient into ``g``),
a block cfunc that applies it to ``n`` rows and a columns cfunc that applies it to ``n`` points
stored by coordinate (the Langevin kernels' layout; for ``Harmonic`` and ``DoubleWell`` written
out coordinate by coordinate so that the loop over points vectorises, with the same operations in
the same order, hence the same numbers); the Python class validates the parameters and packs them
into ``theta``. Formulas are in the class docstrings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import carray, njit

from .._numba_utils import lazy_cfunc, lazy_columns_cfunc
from .._validation import ValidationError, check_array, check_choice, check_int, check_real, check_spd
from .base import Landscape, register

__all__ = ["Harmonic", "DoubleWell", "MuellerBrown", "Rosenbrock", "Rastrigin", "GaussianMixture", "SharpFlat"]


# ---------------------------------------------------------------------------------------------
# Harmonic: U = 1/2 (x - c)^T H (x - c);  theta = [mode, c (d), k (d) | H (d*d)]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _harmonic_row(x, g, th):
    d = x.shape[0]
    u = 0.0
    if th[0] == 0.0:  # diagonal stiffness
        for i in range(d):
            y = x[i] - th[1 + i]
            g[i] = th[1 + d + i] * y
            u += 0.5 * g[i] * y
    else:  # full Hessian
        for i in range(d):
            acc = 0.0
            for j in range(d):
                acc += th[1 + d + i * d + j] * (x[j] - th[1 + j])
            g[i] = acc
            u += 0.5 * acc * (x[i] - th[1 + i])
    return u


@lazy_cfunc
def _harmonic_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _harmonic_row(x[r], g[r], th)


@lazy_columns_cfunc
def _harmonic_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    if th[0] == 0.0:  # diagonal stiffness: coordinate by coordinate, vectorised over the points
        for r in range(n):
            v[r] = 0.0
        for i in range(d):
            c = th[1 + i]
            k = th[1 + d + i]
            for r in range(n):
                y = x[i, r] - c
                gi = k * y
                g[i, r] = gi
                v[r] += 0.5 * gi * y
    else:
        for r in range(n):
            v[r] = _harmonic_row(x[:, r], g[:, r], th)


@register
class Harmonic(Landscape):
    r"""Quadratic well :math:`U(x) = \tfrac12 (x-c)^\top H (x-c)`.

    Give either ``stiffness`` (a scalar with ``dim``, or one positive value per coordinate, so
    :math:`H = \mathrm{diag}(k)`) or ``hessian`` (a symmetric positive-definite matrix).
    At temperature T the Gibbs density is Gaussian with covariance :math:`T H^{-1}`.

    Parameters
    ----------
    stiffness : float or array of shape (dim,), optional
        Curvatures :math:`k_i > 0`.
    hessian : array of shape (dim, dim), optional
        Full symmetric positive-definite Hessian.
    center : array of shape (dim,), optional
        Position of the minimum (default the origin).
    dim : int, optional
        Needed only with a scalar ``stiffness`` (default 1).
    """

    _block = _harmonic_block
    _columns = _harmonic_columns

    plot_bounds: tuple[tuple[float, float], ...] = ((-3.0, 3.0), (-3.0, 3.0))

    def __init__(self, stiffness: Any = None, hessian: Any = None, center: Any = None, dim: int | None = None):
        owner = "Harmonic"
        if (stiffness is None) == (hessian is None):
            raise ValidationError("Harmonic needs exactly one of 'stiffness' or 'hessian'.")
        if hessian is not None:
            H = check_spd("hessian", hessian, owner)
            d = H.shape[0]
            mode, curv = 1.0, H.ravel()
            params: dict[str, Any] = {"hessian": H}
        else:
            k = check_array("stiffness", stiffness, owner, ndim=(0, 1), gt=0.0, min_size=1)
            if k.ndim == 0:
                d = 1 if dim is None else check_int("dim", dim, owner, ge=1)
                k = np.full(d, float(k))
            else:
                d = k.shape[0]
            mode, curv = 0.0, k
            params = {"stiffness": k}
        if dim is not None and check_int("dim", dim, owner, ge=1) != d:
            raise ValidationError(f"The 'dim' parameter of Harmonic must match the stiffness/hessian size {d}. Got {dim}.")
        c = np.zeros(d) if center is None else check_array("center", center, owner, shape=(d,))
        params["center"] = c
        self.hessian_matrix = np.diag(curv) if mode == 0.0 else curv.reshape(d, d).copy()
        self.center = c
        super().__init__(d, np.concatenate([[mode], c, curv]), params)
        s = 3.0 * np.sqrt(1.0 / np.diag(self.hessian_matrix).min())
        self.plot_bounds = tuple((float(ci - s), float(ci + s)) for ci in c[:2])

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if "stiffness" in self._params:
            out.pop("hessian", None)
        return out


# ---------------------------------------------------------------------------------------------
# DoubleWell: U = h ((x0/a)^2 - 1)^2 + t x0 + k/2 sum_{i>0} x_i^2;  theta = [h, 1/a^2, t, k, 4h/a^2]
# (combined constants: the fewest operations in the hot path)
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _double_well_row(x, g, th):
    h = th[0]
    inv_a2 = th[1]
    t = th[2]
    k = th[3]
    c = th[4]
    q = x[0] * x[0] * inv_a2 - 1.0
    g[0] = c * q * x[0] + t
    u = h * q * q + t * x[0]
    for i in range(1, x.shape[0]):
        g[i] = k * x[i]
        u += 0.5 * k * x[i] * x[i]
    return u


@lazy_cfunc
def _double_well_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _double_well_row(x[r], g[r], th)


@lazy_columns_cfunc
def _double_well_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    h = th[0]
    inv_a2 = th[1]
    t = th[2]
    k = th[3]
    c = th[4]
    for r in range(n):
        x0 = x[0, r]
        q = x0 * x0 * inv_a2 - 1.0
        g[0, r] = c * q * x0 + t
        v[r] = h * q * q + t * x0
    for i in range(1, d):
        for r in range(n):
            xi = x[i, r]
            g[i, r] = k * xi
            v[r] += 0.5 * k * xi * xi


@register
class DoubleWell(Landscape):
    r"""Double well along :math:`x_0`, harmonic in the other coordinates.

    .. math::
        U(x) = h\,\big((x_0/a)^2 - 1\big)^2 + t\,x_0 + \tfrac{k}{2}\sum_{i>0} x_i^2,
        \qquad a = \text{separation}/2 .

    With the defaults (``barrier=1``, ``separation=2``, ``tilt=0``, ``stiffness=1``) this is
    :math:`(x_0^2-1)^2 + \tfrac12\sum_{i>0}x_i^2`: minima at :math:`x_0=\pm1`, barrier height 1 at
    :math:`x_0=0`. A positive ``tilt`` lowers the left well.

    Parameters
    ----------
    dim : int
        Dimension (>= 1).
    barrier : float
        Barrier height h > 0 of the untilted well.
    separation : float
        Distance 2a > 0 between the untilted minima.
    tilt : float
        Linear asymmetry t.
    stiffness : float
        Curvature k > 0 of the transverse coordinates.
    """

    _block = _double_well_block
    _columns = _double_well_columns

    plot_bounds: tuple[tuple[float, float], ...] = ((-2.0, 2.0), (-1.5, 1.5))

    def __init__(self, dim: int = 2, barrier: float = 1.0, separation: float = 2.0, tilt: float = 0.0, stiffness: float = 1.0):
        owner = "DoubleWell"
        dim = check_int("dim", dim, owner, ge=1)
        h = check_real("barrier", barrier, owner, gt=0.0)
        s = check_real("separation", separation, owner, gt=0.0)
        t = check_real("tilt", tilt, owner)
        k = check_real("stiffness", stiffness, owner, gt=0.0)
        a = 0.5 * s
        super().__init__(dim, np.array([h, 1.0 / (a * a), t, k, 4.0 * h / (a * a)]),
                         {"barrier": h, "separation": s, "tilt": t, "stiffness": k})
        w = 1.0 / math.sqrt(k)
        self.plot_bounds = ((-2.0 * a, 2.0 * a), (-1.5 * max(w, a), 1.5 * max(w, a)))[: min(dim, 2)]


# ---------------------------------------------------------------------------------------------
# Mueller-Brown: U = s * sum_k A_k exp(a_k dx^2 + b_k dx dy + c_k dy^2);
# theta = [s, A(4), a(4), b(4), c(4), x0(4), y0(4)]
# ---------------------------------------------------------------------------------------------
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_X0 = (1.0, 0.0, -0.5, -1.0)
_MB_Y0 = (0.0, 0.5, 1.5, 1.0)


@njit(inline="always", cache=True)
def _mueller_brown_row(x, g, th):
    s = th[0]
    u = 0.0
    g0 = 0.0
    g1 = 0.0
    for k in range(4):
        dx = x[0] - th[17 + k]
        dy = x[1] - th[21 + k]
        a = th[5 + k]
        b = th[9 + k]
        c = th[13 + k]
        e = th[1 + k] * math.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        u += e
        g0 += e * (2.0 * a * dx + b * dy)
        g1 += e * (b * dx + 2.0 * c * dy)
    g[0] = s * g0
    g[1] = s * g1
    return s * u


@lazy_cfunc
def _mueller_brown_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _mueller_brown_row(x[r], g[r], th)


@lazy_columns_cfunc
def _mueller_brown_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _mueller_brown_row(x[:, r], g[:, r], th)


@register
class MuellerBrown(Landscape):
    r"""The Müller–Brown potential (Müller & Brown 1979, Theor. Chim. Acta 53, 75), times ``scale``.

    .. math::
        U(x, y) = s \sum_{k=1}^{4} A_k \exp\!\big(a_k (x-x_k)^2 + b_k (x-x_k)(y-y_k) + c_k (y-y_k)^2\big)

    with the standard constants A = (-200, -100, -170, 15), a = (-1, -1, -6.5, 0.7),
    b = (0, 0, 11, 0.6), c = (-10, -10, -6.5, 0.7), x_k = (1, 0, -0.5, -1), y_k = (0, 0.5, 1.5, 1).
    Minima near (-0.558, 1.442) (U = -146.7), (0.623, 0.028) (-108.2) and (-0.050, 0.467) (-80.8).
    Energies are large: ``scale=0.1`` with temperatures of order 1–10 is a common choice.
    Two-dimensional only.
    """

    _block = _mueller_brown_block
    _columns = _mueller_brown_columns

    plot_bounds: tuple[tuple[float, float], ...] = ((-1.5, 1.2), (-0.5, 2.0))

    def __init__(self, scale: float = 1.0, dim: int = 2):
        if check_int("dim", dim, "MuellerBrown", ge=1) != 2:
            raise ValidationError(f"The 'dim' parameter of MuellerBrown must be 2. Got {dim}.")
        s = check_real("scale", scale, "MuellerBrown", gt=0.0)
        theta = np.concatenate([[s], _MB_A, _MB_a, _MB_b, _MB_c, _MB_X0, _MB_Y0])
        super().__init__(2, theta, {"scale": s})

    #: approximate positions of the three minima (unscaled potential)
    minima = np.array([[-0.55822363, 1.44172584], [0.62349941, 0.02803776], [-0.05001084, 0.46669421]])


# ---------------------------------------------------------------------------------------------
# Rosenbrock: U = sum_{i<d-1} b (x_{i+1} - x_i^2)^2 + (a - x_i)^2;  theta = [a, b]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _rosenbrock_row(x, g, th):
    a = th[0]
    b = th[1]
    d = x.shape[0]
    u = 0.0
    for i in range(d):
        g[i] = 0.0
    for i in range(d - 1):
        q = x[i + 1] - x[i] * x[i]
        p = a - x[i]
        u += b * q * q + p * p
        g[i] += -4.0 * b * q * x[i] - 2.0 * p
        g[i + 1] += 2.0 * b * q
    return u


@lazy_cfunc
def _rosenbrock_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _rosenbrock_row(x[r], g[r], th)


@lazy_columns_cfunc
def _rosenbrock_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _rosenbrock_row(x[:, r], g[:, r], th)


@register
class Rosenbrock(Landscape):
    r"""Rosenbrock's banana valley, :math:`U(x)=\sum_{i=0}^{d-2} b\,(x_{i+1}-x_i^2)^2 + (a-x_i)^2`.

    Global minimum U = 0 at :math:`x = (a, a^2, \dots)` for the standard a = 1: all ones.
    Stiff along the valley walls (curvature ~ 2b·(1 + 4a²)): explicit schemes need small steps.
    """

    _block = _rosenbrock_block
    _columns = _rosenbrock_columns

    plot_bounds: tuple[tuple[float, float], ...] = ((-2.0, 2.0), (-1.0, 3.0))

    def __init__(self, dim: int = 2, a: float = 1.0, b: float = 100.0):
        dim = check_int("dim", dim, "Rosenbrock", ge=2)
        a = check_real("a", a, "Rosenbrock")
        b = check_real("b", b, "Rosenbrock", gt=0.0)
        super().__init__(dim, np.array([a, b]), {"a": a, "b": b})


# ---------------------------------------------------------------------------------------------
# Rastrigin: U = A d + sum (x_i^2 - A cos(2 pi x_i));  theta = [A]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _rastrigin_row(x, g, th):
    A = th[0]
    tau = 2.0 * math.pi
    u = 0.0
    for i in range(x.shape[0]):
        u += A + x[i] * x[i] - A * math.cos(tau * x[i])
        g[i] = 2.0 * x[i] + A * tau * math.sin(tau * x[i])
    return u


@lazy_cfunc
def _rastrigin_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _rastrigin_row(x[r], g[r], th)


@lazy_columns_cfunc
def _rastrigin_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _rastrigin_row(x[:, r], g[:, r], th)


@register
class Rastrigin(Landscape):
    r"""Rastrigin's function, :math:`U(x) = A d + \sum_i \big(x_i^2 - A\cos(2\pi x_i)\big)`.

    Global minimum U = 0 at the origin, a local minimum near every integer lattice point.
    """

    _block = _rastrigin_block
    _columns = _rastrigin_columns

    plot_bounds: tuple[tuple[float, float], ...] = ((-5.12, 5.12), (-5.12, 5.12))

    def __init__(self, dim: int = 2, amplitude: float = 10.0):
        dim = check_int("dim", dim, "Rastrigin", ge=1)
        A = check_real("amplitude", amplitude, "Rastrigin", ge=0.0)
        super().__init__(dim, np.array([A]), {"amplitude": A})
        self.plot_bounds = Rastrigin.plot_bounds[: min(dim, 2)]


# ---------------------------------------------------------------------------------------------
# GaussianMixture; theta = [form, K, confinement, lw(K), mu(K*d), P(K*d*d)]
#   form 0 ("log-density"): U = -log sum_k w_k N(x; mu_k, S_k)  (lw_k = log w_k - 1/2 log det(2 pi S_k))
#   form 1 ("wells"):       U = -sum_k w_k exp(-q_k/2) + c/2 |x|^2  (lw_k = log w_k)
#   with q_k = (x - mu_k)^T P_k (x - mu_k), P_k = S_k^{-1}
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _gm_quad(x, th, k, d, K, with_grad, g, weight):
    # q_k; if with_grad, also g += weight * P_k (x - mu_k)
    mu0 = 3 + K + k * d
    p0 = 3 + K + K * d + k * d * d
    q = 0.0
    for i in range(d):
        acc = 0.0
        for j in range(d):
            acc += th[p0 + i * d + j] * (x[j] - th[mu0 + j])
        q += acc * (x[i] - th[mu0 + i])
        if with_grad:
            g[i] += weight * acc
    return q


@njit(inline="always", cache=True)
def _gaussian_mixture_row(x, g, th):
    d = x.shape[0]
    K = int(th[1])
    c = th[2]
    if th[0] == 0.0:
        m = -np.inf
        for k in range(K):
            lk = th[3 + k] - 0.5 * _gm_quad(x, th, k, d, K, False, g, 0.0)
            if lk > m:
                m = lk
        for i in range(d):
            g[i] = 0.0
        s = 0.0
        for k in range(K):
            lk = th[3 + k] - 0.5 * _gm_quad(x, th, k, d, K, False, g, 0.0)
            s += math.exp(lk - m)
        for k in range(K):
            lk = th[3 + k] - 0.5 * _gm_quad(x, th, k, d, K, False, g, 0.0)
            _gm_quad(x, th, k, d, K, True, g, math.exp(lk - m) / s)
        u = -(m + math.log(s))
    else:
        u = 0.0
        for i in range(d):
            g[i] = c * x[i]
            u += 0.5 * c * x[i] * x[i]
        for k in range(K):
            q = _gm_quad(x, th, k, d, K, False, g, 0.0)
            e = math.exp(th[3 + k] - 0.5 * q)
            u -= e
            _gm_quad(x, th, k, d, K, True, g, e)
    return u


@lazy_cfunc
def _gaussian_mixture_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _gaussian_mixture_row(x[r], g[r], th)


@lazy_columns_cfunc
def _gaussian_mixture_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _gaussian_mixture_row(x[:, r], g[:, r], th)


@register
class GaussianMixture(Landscape):
    r"""Landscape made of Gaussian wells with centres :math:`\mu_k`, covariances :math:`\Sigma_k`, weights :math:`w_k`.

    ``form="log-density"`` (default):
    :math:`U(x) = -\log \sum_k w_k\, \mathcal N(x;\mu_k,\Sigma_k)` with :math:`\sum_k w_k = 1`.
    Confining, and at temperature T = 1 its Gibbs density *is* the mixture — an exact target.

    ``form="wells"``: :math:`U(x) = -\sum_k w_k \exp(-\tfrac12 (x-\mu_k)^\top\Sigma_k^{-1}(x-\mu_k))
    + \tfrac{c}{2}|x|^2`, wells of depth :math:`w_k`; the Gibbs density is normalisable only with
    ``confinement`` c > 0.

    Parameters
    ----------
    means : array (K, dim)
    covariances : float, array (K,), (K, dim) or (K, dim, dim)
        Isotropic variance (shared or per component), diagonal variances, or full SPD matrices.
    weights : array (K,), optional
        Positive; normalised to sum 1 for the log-density form. Default equal.
    form : {"log-density", "wells"}
    confinement : float
        c >= 0, only for ``form="wells"``.
    """

    _block = _gaussian_mixture_block
    _columns = _gaussian_mixture_columns

    def __init__(self, means: Any, covariances: Any = 1.0, weights: Any = None, form: str = "log-density",
                 confinement: float = 0.0, dim: int | None = None):
        owner = "GaussianMixture"
        mu = check_array("means", means, owner, ndim=2, min_size=1)
        K, d = mu.shape
        if dim is not None and check_int("dim", dim, owner, ge=1) != d:
            raise ValidationError(f"The 'dim' parameter of GaussianMixture must match means.shape[1] = {d}. Got {dim}.")
        form = check_choice("form", form, ("log-density", "wells"), owner)
        c = check_real("confinement", confinement, owner, ge=0.0)
        if form == "log-density" and c != 0.0:
            raise ValidationError("The 'confinement' parameter of GaussianMixture applies only to form='wells'.")
        cov = np.asarray(covariances, dtype=np.float64)
        if cov.ndim == 0:
            covs = np.broadcast_to(check_real("covariances", float(cov), owner, gt=0.0) * np.eye(d), (K, d, d)).copy()
        elif cov.shape == (K,):
            check_array("covariances", cov, owner, gt=0.0)
            covs = cov[:, None, None] * np.eye(d)[None]
        elif cov.shape == (K, d):
            check_array("covariances", cov, owner, gt=0.0)
            covs = np.stack([np.diag(ci) for ci in cov])
        elif cov.shape == (K, d, d):
            covs = np.stack([check_spd(f"covariances[{k}]", cov[k], owner) for k in range(K)])
        else:
            raise ValidationError(
                f"The 'covariances' parameter of GaussianMixture must be a scalar or have shape ({K},), ({K}, {d}) "
                f"or ({K}, {d}, {d}). Got shape {cov.shape}."
            )
        w = np.full(K, 1.0 / K) if weights is None else check_array("weights", weights, owner, shape=(K,), gt=0.0)
        prec = np.linalg.inv(covs)
        if form == "log-density":
            w = w / w.sum()
            _, logdet = np.linalg.slogdet(2.0 * np.pi * covs)
            lw = np.log(w) - 0.5 * logdet
        else:
            lw = np.log(w)
        theta = np.concatenate([[0.0 if form == "log-density" else 1.0, K, c], lw, mu.ravel(), prec.ravel()])
        params: dict[str, Any] = {"means": mu, "covariances": covs, "weights": w, "form": form}
        if form == "wells":
            params["confinement"] = c
        self.means, self.covariances, self.weights = mu, covs, w
        super().__init__(d, theta, params)
        span = np.sqrt(np.max(np.diagonal(covs, axis1=1, axis2=2), axis=0))
        lo = mu.min(axis=0) - 3.0 * span
        hi = mu.max(axis=0) + 3.0 * span
        self.plot_bounds = tuple((float(lo[i]), float(hi[i])) for i in range(min(d, 2)))


# ---------------------------------------------------------------------------------------------
# SharpFlat: U = h ((x0/a)^2 - 1)^2 exp(kappa tanh(x0/a)) + k/2 sum_{i>0} x_i^2;
# theta = [h, 1/a, kappa, k]
# ---------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _sharp_flat_row(x, g, th):
    h = th[0]
    inv_a = th[1]
    kappa = th[2]
    k = th[3]
    s = x[0] * inv_a
    t = math.tanh(s)
    p = s * s - 1.0
    e = math.exp(kappa * t)
    g[0] = h * e * (4.0 * s * p + kappa * p * p * (1.0 - t * t)) * inv_a
    u = h * p * p * e
    for i in range(1, x.shape[0]):
        g[i] = k * x[i]
        u += 0.5 * k * x[i] * x[i]
    return u


@lazy_cfunc
def _sharp_flat_block(xp, gp, vp, n, d, tp, nt):
    x = carray(xp, (n, d))
    g = carray(gp, (n, d))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _sharp_flat_row(x[r], g[r], th)


@lazy_columns_cfunc
def _sharp_flat_columns(xp, gp, vp, n, d, ld, tp, nt):
    x = carray(xp, (d, ld))
    g = carray(gp, (d, ld))
    v = carray(vp, (n,))
    th = carray(tp, (nt,))
    for r in range(n):
        v[r] = _sharp_flat_row(x[:, r], g[:, r], th)


def _sharp_flat_barrier(kappa: float) -> tuple[float, float]:
    r"""``(M, s*)``: the maximum of :math:`(s^2-1)^2 e^{\kappa\tanh s}` on (-1, 1) and where it is: the root of
    :math:`4s + \kappa(s^2-1)(1-\tanh^2 s)` (the derivative over :math:`(s^2-1)e^{\kappa\tanh s}`; -4 at -1, +4 at 1),
    by Brent's method to machine precision."""
    from scipy import optimize

    q = lambda s: 4.0 * s + kappa * (s * s - 1.0) * (1.0 - math.tanh(s) ** 2)  # noqa: E731
    s_star = float(optimize.brentq(q, -1.0, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    return (s_star * s_star - 1.0) ** 2 * math.exp(kappa * math.tanh(s_star)), s_star


@register
class SharpFlat(Landscape):
    r"""A flat and a sharp minimum of the same depth, separated by one barrier (harmonic in the other coordinates).

    .. math::
        U(x) = h\,\big(s^2 - 1\big)^2 e^{\kappa \tanh s} + \tfrac{k}{2}\sum_{i>0} x_i^2,\qquad s = x_0/a .

    Both minima, :math:`x_0 = -a` (flat) and :math:`x_0 = +a` (sharp), have U = 0 exactly; their
    curvatures are :math:`U'' = 8h\,e^{\mp\kappa\tanh 1}/a^2`, and the barrier between them has height
    :math:`h\,M(\kappa)` with :math:`M(\kappa) = \max_{|s|<1}(s^2-1)^2e^{\kappa\tanh s}` (at the saddle
    :math:`a s^*`, a little on the sharp side). The constructor takes the three quantities of the
    sharp-versus-flat question — both curvatures and the barrier — and solves for
    :math:`\kappa = \ln(k_s/k_f)/(2\tanh 1)`, :math:`h = \Delta U/M(\kappa)`, :math:`a^2 = 8h\,e^{-\kappa\tanh 1}/k_f`
    (M and the saddle by Brent's method, to machine precision). Smooth everywhere, so the exact 1-D theory applies along
    :math:`x_0` (the coordinates evolve independently under isotropic overdamped noise):
    :func:`stochdyn.theory.mfpt_1d`, :func:`~stochdyn.theory.em_mfpt_1d`,
    :func:`~stochdyn.theory.em_transition_rates_1d`, :func:`~stochdyn.theory.em_stationary_density_1d`,
    and Kramers' rates from :attr:`minima` and :attr:`saddle`. The chapter's claim: at equal depth the
    sharp minimum is escaped faster and occupied less (by :math:`\sqrt{k_f/k_s}` at low temperature).

    Parameters
    ----------
    dim : int
        Dimension (>= 1; the extra coordinates are harmonic).
    curvature_flat, curvature_sharp : float
        :math:`U''` at the flat and at the sharp minimum (> 0; any order, but the "sharp" one is on the right).
    barrier : float
        :math:`\Delta U > 0`, the same from both minima.
    stiffness : float
        Curvature k > 0 of the other coordinates.
    """

    _block = _sharp_flat_block
    _columns = _sharp_flat_columns

    def __init__(self, dim: int = 1, curvature_flat: float = 1.0, curvature_sharp: float = 9.0, barrier: float = 1.0,
                 stiffness: float = 1.0):
        owner = "SharpFlat"
        dim = check_int("dim", dim, owner, ge=1)
        kf = check_real("curvature_flat", curvature_flat, owner, gt=0.0)
        ks = check_real("curvature_sharp", curvature_sharp, owner, gt=0.0)
        dU = check_real("barrier", barrier, owner, gt=0.0)
        k = check_real("stiffness", stiffness, owner, gt=0.0)
        t1 = math.tanh(1.0)
        kappa = math.log(ks / kf) / (2.0 * t1)
        M, s_star = _sharp_flat_barrier(kappa)
        h = dU / M
        a = math.sqrt(8.0 * h * math.exp(-kappa * t1) / kf)
        super().__init__(dim, np.array([h, 1.0 / a, kappa, k]),
                         {"curvature_flat": kf, "curvature_sharp": ks, "barrier": dU, "stiffness": k})
        self.height, self.scale, self.kappa = h, a, kappa
        #: the flat minimum, then the sharp one (rows), both at U = 0
        self.minima = np.zeros((2, dim))
        self.minima[:, 0] = (-a, a)
        #: the saddle point between them
        self.saddle = np.zeros(dim)
        self.saddle[0] = a * s_star
        w = 1.0 / math.sqrt(k)
        self.plot_bounds = ((-2.0 * a, 2.0 * a), (-1.5 * max(w, a), 1.5 * max(w, a)))[: min(dim, 2)]
