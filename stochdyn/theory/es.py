r"""Evolution strategies: progress rates on the sphere and linear function, and Gaussian smoothing.

Sphere: :math:`U(x) = \|x\|^2` in n dimensions, distance R to the optimum, step size σ,
normalised :math:`\sigma^* = \sigma n / R`, progress :math:`\varphi = \mathrm E[R - R']`,
:math:`\varphi^* = \varphi n / R`. Exact finite-n values use that :math:`\|x + \sigma z\|^2/\sigma^2`
is noncentral :math:`\chi^2_n(R^2/\sigma^2)`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import integrate, special

def _stats() -> Any:
    from scipy import stats  # imported on use: scipy.stats costs ~0.2 s at import

    return stats


__all__ = [
    "one_plus_one_success_probability",
    "one_plus_one_progress",
    "one_plus_one_progress_normalized",
    "normal_order_statistics",
    "progress_coefficient",
    "mu_mu_lambda_progress_normalized",
    "smoothed_rastrigin_value",
    "smoothed_rastrigin_gradient",
    "smoothed_rastrigin_curvature",
    "smoothed_quartic_gradient",
    "xnes_linear_expectations",
]


def one_plus_one_success_probability(sigma: float, R: float, n: int) -> float:
    r"""Exact probability that an offspring :math:`x + \sigma z` is better than x on the sphere:
    :math:`P(\chi'^2_n(\lambda) < \lambda)` with :math:`\lambda = R^2/\sigma^2`."""
    lam = (R / sigma) ** 2
    return float(_stats().ncx2.cdf(lam, n, lam))


def one_plus_one_progress(sigma: float, R: float, n: int) -> float:
    r"""Exact one-step progress :math:`\mathrm E[R - \min(R, \|x+\sigma z\|)]` of the (1+1)-ES on the sphere.

    :math:`\varphi = \int_0^{\lambda} (R - \sigma\sqrt q)\, f_{\chi'^2_n(\lambda)}(q)\,dq`, :math:`\lambda = R^2/\sigma^2`.
    """
    lam = (R / sigma) ** 2
    pdf = _stats().ncx2(n, lam).pdf
    val, _ = integrate.quad(lambda q: (R - sigma * math.sqrt(q)) * pdf(q), 0.0, lam, limit=200, epsabs=1e-13, epsrel=1e-10)
    return float(val)


def one_plus_one_progress_normalized(sigma_star: float | np.ndarray) -> np.ndarray:
    r"""Asymptotic (n → ∞) normalised progress of the (1+1)-ES on the sphere (Rechenberg 1973; Beyer 2001):
    :math:`\varphi^* = \frac{\sigma^*}{\sqrt{2\pi}}e^{-\sigma^{*2}/8} - \frac{\sigma^{*2}}{2}\big(1 - \Phi(\sigma^*/2)\big)`."""
    s = np.asarray(sigma_star, dtype=float)
    return s / math.sqrt(2 * math.pi) * np.exp(-s * s / 8) - 0.5 * s * s * _stats().norm.sf(s / 2)


def normal_order_statistics(lam: int, moment: int = 1) -> np.ndarray:
    r"""Moments of the order statistics of λ standard normals, largest first:
    :math:`E[X^q_{\lambda:\lambda}], \dots, E[X^q_{1:\lambda}]` for ``moment`` q.

    :math:`E[X^q_{k:\lambda}] = \frac{\lambda!}{(k-1)!(\lambda-k)!}\int x^q\,\Phi(x)^{k-1}(1-\Phi(x))^{\lambda-k}\varphi(x)\,dx`, by quadrature.
    """
    out = np.empty(lam)
    norm = _stats().norm
    for k in range(1, lam + 1):
        logc = special.gammaln(lam + 1) - special.gammaln(k) - special.gammaln(lam - k + 1)

        def f(x: float, k: int = k, logc: float = logc) -> float:
            return x**moment * math.exp(logc + (k - 1) * norm.logcdf(x) + (lam - k) * norm.logsf(x) + norm.logpdf(x))

        out[lam - k] = integrate.quad(f, -12, 12, limit=200, epsabs=1e-13)[0]
    return out


def progress_coefficient(mu: int, lam: int, weights: np.ndarray | None = None) -> float:
    r"""Progress coefficient :math:`c_w = \sum_{i\le\mu} w_i\,E[X_{\lambda-i+1:\lambda}]` (weights summing to 1).

    Equal weights give :math:`c_{\mu/\mu,\lambda}` (Beyer 2001). On a linear function a
    (μ/μ_w, λ)-ES with step size σ moves its mean by exactly :math:`\sigma c_w` per generation along
    the descent direction, in expectation, in any dimension.
    """
    w = np.full(mu, 1.0 / mu) if weights is None else np.asarray(weights, dtype=float)
    return float(np.dot(w, normal_order_statistics(lam)[:mu]))


def xnes_linear_expectations(lam: int, dim: int, utilities: np.ndarray) -> tuple[float, float]:
    r"""Exact one-generation expectations of xNES (and SNES) on a linear U, from B = I.

    The offspring are ranked by their component along the gradient only, so with utilities
    :math:`u_k` (best first, :math:`\sum_k u_k = 0`) the search gradients have
    :math:`\mathrm E[G_\delta] = -c_u\,\hat g` with :math:`c_u = \sum_k u_k E[X_{\lambda-k+1:\lambda}]`
    (:math:`\hat g` the unit gradient) and :math:`\mathrm E[G_\sigma] = \frac1n\sum_k u_k
    E[X^2_{\lambda-k+1:\lambda}]` (the other n − 1 coordinates are unranked and contribute
    :math:`\sum_k u_k = 0`). Returns :math:`(c_u, \mathrm E[G_\sigma])`; the mean moves
    :math:`-\eta_\mu\sigma c_u\hat g` and :math:`\mathrm E[\log\sigma'/\sigma] = \frac{\eta_\sigma}{2}\mathrm E[G_\sigma]`.
    """
    u = np.asarray(utilities, dtype=float)
    return (float(np.dot(u, normal_order_statistics(lam))),
            float(np.dot(u, normal_order_statistics(lam, moment=2))) / dim)


def mu_mu_lambda_progress_normalized(sigma_star: float | np.ndarray, mu: int, lam: int) -> np.ndarray:
    r"""Asymptotic normalised progress of the (μ/μ_I, λ)-ES on the sphere: :math:`c_{\mu/\mu,\lambda}\sigma^* - \sigma^{*2}/(2\mu)` (Beyer 2001)."""
    s = np.asarray(sigma_star, dtype=float)
    return progress_coefficient(mu, lam) * s - s * s / (2 * mu)


def smoothed_rastrigin_value(x: np.ndarray, sigma: float, amplitude: float = 10.0) -> np.ndarray:
    r"""Gaussian-smoothed Rastrigin, :math:`U_\sigma(x) = \mathrm E[U(x + \sigma\varepsilon)]
    = \sum_i \big(A + x_i^2 + \sigma^2 - A\cos(2\pi x_i)\,e^{-2\pi^2\sigma^2}\big)`."""
    x = np.asarray(x, dtype=float)
    damp = math.exp(-2 * math.pi**2 * sigma**2)
    return np.sum(amplitude + x**2 + sigma**2 - amplitude * np.cos(2 * math.pi * x) * damp, axis=-1)


def smoothed_rastrigin_gradient(x: np.ndarray, sigma: float, amplitude: float = 10.0) -> np.ndarray:
    r""":math:`\nabla U_\sigma(x)_i = 2x_i + 2\pi A\sin(2\pi x_i)\,e^{-2\pi^2\sigma^2}`: the ripples of
    :math:`\nabla U` damped by :math:`e^{-2\pi^2\sigma^2}`; this is what :class:`~stochdyn.OpenES` estimates."""
    x = np.asarray(x, dtype=float)
    return 2 * x + 2 * math.pi * amplitude * np.sin(2 * math.pi * x) * math.exp(-2 * math.pi**2 * sigma**2)


def smoothed_rastrigin_curvature(x: np.ndarray, sigma: float, amplitude: float = 10.0) -> np.ndarray:
    r""":math:`\mathrm E[\partial_{ii}U(x+\sigma\varepsilon)] = 2 + 4\pi^2 A\cos(2\pi x_i)\,e^{-2\pi^2\sigma^2}`
    for Rastrigin: the expected change of SNES's log step sizes with raw utilities (Stein's lemma,
    :math:`\mathrm E[U(x+\sigma\varepsilon)(\varepsilon_i^2-1)] = \sigma^2\mathrm E[\partial_{ii}U]`)."""
    x = np.asarray(x, dtype=float)
    return 2 + 4 * math.pi**2 * amplitude * np.cos(2 * math.pi * x) * math.exp(-2 * math.pi**2 * sigma**2)


def smoothed_quartic_gradient(x: np.ndarray, sigma: float) -> np.ndarray:
    r"""For :math:`U = \sum_i x_i^4`: :math:`\nabla\mathrm E[U(x+\sigma\varepsilon)]_i = 4x_i^3 + 12\sigma^2 x_i`."""
    x = np.asarray(x, dtype=float)
    return 4 * x**3 + 12 * sigma**2 * x
