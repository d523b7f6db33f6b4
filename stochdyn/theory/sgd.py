r"""Exact results for mini-batch SGD: gradient-noise covariances, moments, stability, estimator variances.

Conventions (as in :mod:`stochdyn.problems`): :math:`U(\theta)=\sum_i w_i\ell_i(\theta)` (default
:math:`w_i=1/N`, the mean loss); the mini-batch estimator is
:math:`\hat g=\sum_h (N_h/n_h)\sum_{j\in h} w_{i_j}\nabla\ell_{i_j}` over strata h (one stratum
unless sampling is stratified). Writing :math:`u_i = N_h w_i \nabla\ell_i` (the one-draw estimate in
stratum h), its covariance is exactly

.. math::
    \mathrm{Cov}(\hat g) = \sum_h \kappa_h\,\frac1{N_h}\sum_{i\in h}(u_i-\bar u_h)(u_i-\bar u_h)^\top,\qquad
    \kappa_h = \begin{cases}1/n_h & \text{with replacement}\\
    \dfrac{N_h-n_h}{n_h(N_h-1)} & \text{without replacement (finite-population correction)}\end{cases}

(Cochran 1977, *Sampling Techniques*, 3rd ed., Thm 2.2 and eq. 5.3). With B draws from one
stratum this is :math:`\Sigma_1/B` or :math:`\Sigma_1 (N-B)/(B(N-1))`, :math:`\Sigma_1` the
per-example covariance (divisor N).

**Exact moments on quadratic problems.** When per-sample gradients are affine,
:math:`\nabla\ell_i(\theta) = A_i\theta - b_i` (least squares, the Ritz energy), the mini-batch
gradient is :math:`\hat g = M e + \zeta` with :math:`e=\theta-\theta^*`, :math:`M=\sum c_jA_{i_j}`
(mean H) and :math:`\zeta = \hat g(\theta^*)` (mean 0). The noise is *multiplicative*: its
covariance depends on e through M, so an additive-noise Lyapunov equation is not exact. Instead,
with the state :math:`z = (e, [v], 1)` (v the momentum buffer) one step is the random affine map
:math:`z' = \Phi z + n`, :math:`\Phi = F + E\,D\,S` with F, E deterministic, S selecting
:math:`(e,1)`, :math:`D = [M-H,\ \zeta]` and n independent Gaussian noise (additive gradient noise,
SGLD). Because D is independent of z and linear in the draws, the second moment
:math:`Z=\mathbb E[zz^\top]` obeys the closed linear recursion

.. math::
    Z' = F Z F^\top + E\,\mathcal K(S Z S^\top)\,E^\top + Q,\qquad
    \mathcal K(W) = \mathbb E[D W D^\top] = \sum_h \kappa_h\frac1{N_h}\sum_{i\in h} D_i W D_i^\top,

:math:`D_i = [\tilde A_i - \bar A_h,\ \tilde\zeta_i - \bar\zeta_h]` (tilde: scaled by :math:`N_h w_i`).
This is the second-moment operator of least-mean-squares (Défossez & Bach 2015, AISTATS,
"Averaged least-mean-squares: bias-variance trade-offs and optimal sampling distributions";
for mini-batches Jain, Kakade, Kidambi, Netrapalli & Sidford 2018, JMLR 18(223), "Parallelizing
stochastic gradient descent for least squares regression"), extended here to stratified and
without-replacement designs and to momentum. It gives exact moments at every step, the exact
stationary covariance at finite step and batch, and the mean-square stability limit (spectral
radius of the operator < 1).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import linalg

from .._validation import ValidationError, check_int, check_real

__all__ = [
    "gradient_noise_covariance",
    "stratum_gradient_std",
    "stratified_allocation",
    "stratified_variance",
    "sgd_moments",
    "sgd_stationary_covariance",
    "sgd_stability_limit",
    "sgd_moment_operator_radius",
    "small_step_covariance",
    "effective_temperature",
    "sgd_temperature_expansion",
    "equipartition_temperature",
    "augmented_variance",
    "least_squares_augmentation_moments",
    "compression_error",
    "quantization_variance_bound",
    "adam_expected_step",
]


# ----------------------------------------------------------------------------------------------------
# Sampling designs
# ----------------------------------------------------------------------------------------------------
def _sampling_parts(sampling: Any) -> tuple[str, str, Any]:
    if sampling is None:
        return "with_replacement", "proportional", None
    if isinstance(sampling, str):
        return sampling, "proportional", None
    return sampling.mode, sampling.allocation, sampling.stratum_std


def stratified_allocation(problem: Any, batch_size: int, allocation: str = "proportional",
                          stratum_std: Any = None) -> np.ndarray:
    r"""Draws per stratum :math:`n_h` used by stratified sampling (the kernels' own rounding).

    Proportional: :math:`n_h\propto N_h`; Neyman (Neyman 1934; Cochran 1977 §5.5):
    :math:`n_h\propto N_h S_h`; largest-remainder rounding with :math:`1\le n_h\le N_h`.
    Strata are the problem's labels in increasing order.
    """
    from ..integrators._kernels.sgd import allocate

    _, starts, _ = problem.strata()
    sizes = np.diff(starts).astype(np.float64)
    B = check_int("batch_size", batch_size, "stratified_allocation", ge=sizes.size, le=problem.n)
    a = sizes if allocation == "proportional" else sizes * np.asarray(stratum_std, dtype=np.float64)
    out = np.zeros(sizes.size, dtype=np.int64)
    allocate(B, a, starts, out)
    return out


def _design(problem: Any, batch_size: int | None, sampling: Any) -> list[tuple[np.ndarray, float]]:
    """``[(indices of stratum h, kappa_h), ...]`` for the estimator's covariance (see module docstring)."""
    N = problem.n
    mode, allocation, std = _sampling_parts(sampling)
    if batch_size is None:
        return [(np.arange(N), 0.0)]
    B = check_int("batch_size", batch_size, "theory", ge=1, le=N)
    if mode == "with_replacement":
        return [(np.arange(N), 1.0 / B)]
    if mode in ("without_replacement", "epoch"):
        return [(np.arange(N), 0.0 if N == 1 else (N - B) / (B * (N - 1)))]
    if mode == "stratified":
        order, starts, _ = problem.strata()
        n_h = stratified_allocation(problem, B, allocation, std)
        out = []
        for h in range(n_h.size):
            idx = order[starts[h]:starts[h + 1]]
            Nh = idx.size
            out.append((idx, 0.0 if Nh == 1 else (Nh - n_h[h]) / (n_h[h] * (Nh - 1))))
        return out
    raise ValidationError(f"Unknown sampling mode {mode!r}.")


def _scaled(problem: Any, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``N_h w_i * values[i]`` for the examples of one stratum (axis 0 indexes examples)."""
    w = problem.weights[idx] * idx.size
    return values[idx] * w.reshape((-1,) + (1,) * (values.ndim - 1))


def gradient_noise_covariance(problem: Any, theta: Any, batch_size: int | None = None,
                              sampling: Any = "with_replacement") -> np.ndarray:
    r"""Exact covariance of the mini-batch gradient estimator at ``theta`` (d x d).

    See the module docstring: :math:`\sum_h\kappa_h N_h^{-1}\sum_{i\in h}(u_i-\bar u_h)(u_i-\bar u_h)^\top`,
    :math:`u_i = N_h w_i\nabla\ell_i(\theta)`. ``batch_size=None`` is the full batch (zero).
    ``sampling``: ``"with_replacement"``, ``"without_replacement"`` (also the per-step law of
    ``"epoch"``), or a :class:`~stochdyn.Sampling` (stratified: its allocation).
    """
    _, grads = problem.per_sample(np.asarray(theta, dtype=np.float64))
    d = problem.dim
    cov = np.zeros((d, d))
    for idx, kappa in _design(problem, batch_size, sampling):
        if kappa == 0.0:
            continue
        u = _scaled(problem, idx, grads)
        c = u - u.mean(axis=0)
        cov += kappa * (c.T @ c) / idx.size
    return cov


def stratum_gradient_std(problem: Any, theta: Any) -> np.ndarray:
    r""":math:`S_h = \sqrt{\mathrm{tr}\,\mathrm{Cov}_h(N w_i\nabla\ell_i)}` per stratum (divisor :math:`N_h-1`).

    The per-unit standard deviation of Cochran's Neyman allocation :math:`n_h\propto N_h S_h`
    (Cochran 1977, eq. 5.26), for the gradient vector (trace of its covariance). Pass it as
    ``Sampling("stratified", "neyman", stratum_std=...)``.
    """
    _, grads = problem.per_sample(np.asarray(theta, dtype=np.float64))
    order, starts, _ = problem.strata()
    y = grads * (problem.n * problem.weights)[:, None]
    out = []
    for h in range(starts.size - 1):
        yh = y[order[starts[h]:starts[h + 1]]]
        out.append(math.sqrt(((yh - yh.mean(axis=0)) ** 2).sum() / max(yh.shape[0] - 1, 1)))
    return np.array(out)


def stratified_variance(problem: Any, theta: Any, batch_size: int, allocation: str = "proportional",
                        stratum_std: Any = None) -> float:
    r"""Exact :math:`\mathrm{tr}\,\mathrm{Cov}(\hat g)` of the stratified estimator (draws without replacement
    within strata): :math:`\sum_h W_h^2 S_h^2 (1-n_h/N_h)/n_h`, :math:`W_h = N_h/N` (Cochran 1977, eq. 5.3)."""
    from ..integrators.sgd import Sampling

    samp = Sampling("stratified", allocation, stratum_std)
    return float(np.trace(gradient_noise_covariance(problem, theta, batch_size, samp)))


# ----------------------------------------------------------------------------------------------------
# Exact moments of SGD on problems with affine per-sample gradients
# ----------------------------------------------------------------------------------------------------
def _affine(problem: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not hasattr(problem, "affine_gradients"):
        raise ValidationError(f"{problem.name} has no affine per-sample gradients; exact SGD moments need a quadratic "
                              "problem (LeastSquares, RitzEnergy1D).")
    A, b = problem.affine_gradients()
    H = np.einsum("i,ikl->kl", problem.weights, A)
    theta_star = np.linalg.solve(H, problem.weights @ b)
    return A, b, H, theta_star


def _noise_operator(problem: Any, batch_size: int | None, sampling: Any) -> np.ndarray:
    r"""Matrix of :math:`\mathcal K`: ``vec(E[D W D^T]) = K @ vec(W)`` (row-major vec), shape (d^2, (d+1)^2)."""
    mode, _, _ = _sampling_parts(sampling)
    if mode == "epoch":
        raise ValidationError("Epoch-wise sampling is not a Markov chain in theta alone (batches within an epoch are "
                              "disjoint); the exact moment theory covers with/without replacement and stratified.")
    A, b, H, ts = _affine(problem)
    d = problem.dim
    G = np.concatenate([A, (A @ ts - b)[:, :, None]], axis=2)  # per-sample [A_i, grad l_i(theta*)]
    rows = []
    for idx, kappa in _design(problem, batch_size, sampling):
        if kappa == 0.0:
            continue
        u = _scaled(problem, idx, G)
        D = (u - u.mean(axis=0)).reshape(idx.size, -1)
        rows.append(D * math.sqrt(kappa / idx.size))
    if not rows:
        return np.zeros((d * d, (d + 1) ** 2))
    X = np.concatenate(rows)
    P = (X.T @ X).reshape(d, d + 1, d, d + 1)
    return P.transpose(0, 2, 1, 3).reshape(d * d, (d + 1) ** 2)


def _step_matrices(d: int, lr: float, momentum: float, nesterov: bool, gradient_noise: Any, temperature: float,
                   H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(F, E, S, Q)`` of one step on z = (e, [v], 1): z' = (F + E D S) z + n, Cov(n) = Q."""
    I = np.eye(d)
    mom = momentum > 0.0
    nz = (2 * d if mom else d) + 1
    F = np.eye(nz)
    E = np.zeros((nz, d))
    if not mom:
        E[:d] = -lr * I
    else:
        mu = momentum
        F[:d, d:2 * d] = -lr * (mu * mu if nesterov else mu) * I
        F[d:2 * d, d:2 * d] = mu * I
        E[:d] = -lr * ((1.0 + mu) if nesterov else 1.0) * I
        E[d:2 * d] = I
    S = np.zeros((d + 1, nz))
    S[:d, :d] = I
    S[d, nz - 1] = 1.0
    F = F + E @ np.hstack([H, np.zeros((d, 1))]) @ S  # the mean gradient H e
    Q = np.zeros((nz, nz))
    if gradient_noise is not None:
        Sg = np.asarray(gradient_noise, dtype=np.float64)
        Sg = Sg * I if Sg.ndim == 0 else (np.diag(Sg) if Sg.ndim == 1 else Sg)
        Q += E @ Sg @ E.T
    if temperature > 0.0:
        Q[:d, :d] += 2.0 * lr * temperature * I
    return F, E, S, Q


def _transfer(F: np.ndarray, E: np.ndarray, S: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Matrix T with vec(Z') = T vec(Z) (+ vec Q): F (x) F + (E (x) E) K (S (x) S)."""
    return np.kron(F, F) + np.kron(E, E) @ K @ np.kron(S, S)


def _check_lr(lr: Any, n_steps: int | None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(lr, dtype=np.float64))
    if np.any(arr <= 0) or not np.all(np.isfinite(arr)):
        raise ValidationError(f"The 'lr' parameter must be > 0. Got {lr!r}.")
    if n_steps is not None and arr.size not in (1, n_steps):
        raise ValidationError(f"The 'lr' parameter must be a scalar or have n_steps={n_steps} entries. Got {arr.size}.")
    return arr


def sgd_moments(problem: Any, lr: Any, batch_size: int | None, x0: Any, n_steps: int, *,
                sampling: Any = "with_replacement", momentum: float = 0.0, nesterov: bool = False,
                gradient_noise: Any = None, temperature: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact mean and covariance of :math:`\theta_n` after ``n_steps`` of SGD from ``x0`` on a quadratic problem.

    Iterates the closed second-moment recursion of the module docstring (exact at any step size,
    batch size and sampling design; plain, heavy-ball or Nesterov SGD; optional additive gradient
    noise of covariance ``gradient_noise`` and SGLD ``temperature``). ``lr`` may be one value per
    step (a schedule: ``lr * LRSchedule.factor(1..n)``). Momentum starts at zero.
    """
    n = check_int("n_steps", n_steps, "sgd_moments", ge=0)
    lrs = _check_lr(lr, n if n > 0 else None)
    _, _, H, ts = _affine(problem)
    d = problem.dim
    K = _noise_operator(problem, batch_size, sampling)
    x0 = np.asarray(x0, dtype=np.float64)
    mom = momentum > 0.0
    z0 = np.concatenate([x0 - ts, np.zeros(d) if mom else [], [1.0]])
    Z = np.outer(z0, z0)
    cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for t in range(n):
        eta = float(lrs[t if lrs.size > 1 else 0])
        if eta not in cache:
            F, E, S, Q = _step_matrices(d, eta, momentum, nesterov, gradient_noise, temperature, H)
            cache[eta] = (_transfer(F, E, S, K), Q.ravel())
        T, q = cache[eta]
        Z = (T @ Z.ravel() + q).reshape(Z.shape)
    m = Z[:d, -1]
    return m + ts, Z[:d, :d] - np.outer(m, m)


def sgd_stationary_covariance(problem: Any, lr: float, batch_size: int | None, *, sampling: Any = "with_replacement",
                              momentum: float = 0.0, nesterov: bool = False, gradient_noise: Any = None,
                              temperature: float = 0.0) -> np.ndarray:
    r"""Exact stationary covariance of constant-step SGD on a quadratic problem (d x d).

    At stationarity the mean is :math:`\theta^*` (the momentum buffer's mean is 0), so the
    constant coordinate drops out and the covariance C of y = (e, [v]) solves the linear equation
    :math:`C = F C F^\top + E\,[\mathcal K_{MM}(S C S^\top) + \Sigma_\zeta]\,E^\top + Q` — a
    generalised discrete Lyapunov equation whose extra term is the multiplicative noise. Raises if
    the step is not mean-square stable (see :func:`sgd_stability_limit`).
    """
    eta = float(_check_lr(lr, None)[0])
    _, _, H, _ = _affine(problem)
    d = problem.dim
    K = _noise_operator(problem, batch_size, sampling)
    F, E, S, Q = _step_matrices(d, eta, momentum, nesterov, gradient_noise, temperature, H)
    ny = F.shape[0] - 1
    T = _transfer(F, E, S, K).reshape(ny + 1, ny + 1, ny + 1, ny + 1)
    Tyy = T[:ny, :ny, :ny, :ny].reshape(ny * ny, ny * ny)
    rho = max(abs(np.linalg.eigvals(Tyy)))
    if rho >= 1.0:
        raise ValueError(f"SGD with lr={eta:g}, batch_size={batch_size} is not mean-square stable (spectral radius "
                         f"{rho:.6g} >= 1): no stationary covariance.")
    rhs = T[:ny, :ny, ny, ny] + Q[:ny, :ny]  # the additive noise zeta zeta^T (from the constant) plus Q
    C = np.linalg.solve(np.eye(ny * ny) - Tyy, rhs.ravel()).reshape(ny, ny)
    C = 0.5 * (C + C.T)
    return C[:d, :d]


def sgd_moment_operator_radius(problem: Any, lr: float, batch_size: int | None, *, sampling: Any = "with_replacement",
                               momentum: float = 0.0, nesterov: bool = False) -> float:
    """Spectral radius of the second-moment operator on y = (e, [v]); mean-square stable iff < 1."""
    eta = float(_check_lr(lr, None)[0])
    _, _, H, _ = _affine(problem)
    d = problem.dim
    F, E, S, _ = _step_matrices(d, eta, momentum, nesterov, None, 0.0, H)
    ny = F.shape[0] - 1
    T = _transfer(F, E, S, _noise_operator(problem, batch_size, sampling)).reshape((ny + 1,) * 4)
    return float(max(abs(np.linalg.eigvals(T[:ny, :ny, :ny, :ny].reshape(ny * ny, ny * ny)))))


def sgd_stability_limit(problem: Any, batch_size: int | None, *, sampling: Any = "with_replacement",
                        momentum: float = 0.0, nesterov: bool = False, rtol: float = 1e-10) -> float:
    r"""The largest learning rate for which SGD on a quadratic problem is mean-square stable.

    Bisection on the spectral radius of the exact second-moment operator (stable set (0, eta_max)).
    It lies below the deterministic limit :math:`2(1+\mu)/\lambda_{\max}(H)` and grows with the
    batch size towards it (Jain et al. 2018, JMLR 18(223), §3: the "critical batch size").
    For d = 1 plain SGD with replacement it is :math:`2H/(H^2 + \mathrm{Var}(\tilde A)/B)`.
    """
    _, _, H, _ = _affine(problem)
    hi = 2.0 * (1.0 + momentum) / float(np.linalg.eigvalsh(H)[-1]) * (1.0 + 1e-9)

    def stable(eta: float) -> bool:
        return sgd_moment_operator_radius(problem, eta, batch_size, sampling=sampling, momentum=momentum,
                                          nesterov=nesterov) < 1.0

    lo = hi
    while not stable(lo):
        lo *= 0.5
        if lo < 1e-12 * hi:
            raise ValueError("No stable learning rate found.")
    if stable(hi):
        return hi
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo


def small_step_covariance(hessian: Any, lr: float, noise_cov: Any) -> np.ndarray:
    r"""Small-step limit of SGD's stationary covariance: :math:`HC + CH = \eta\Sigma`.

    SGD with step :math:`\eta` and gradient-noise covariance :math:`\Sigma` (at the minimum) is the
    Euler–Maruyama discretisation of :math:`d\theta = -H\theta\,dt + \sqrt{\eta\Sigma}\,dW` (the
    Ornstein–Uhlenbeck approximation; Mandt, Hoffman & Blei 2017, JMLR 18(134), eq. 11), whose
    stationary covariance solves this continuous Lyapunov equation; the finite-step correction is
    O(eta) relative (:func:`sgd_stationary_covariance` is exact).
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=np.float64))
    return linalg.solve_continuous_lyapunov(H, float(lr) * np.atleast_2d(np.asarray(noise_cov, dtype=np.float64)))


def effective_temperature(lr: Any, noise_cov: Any) -> Any:
    r""":math:`T = \eta\,\mathrm{tr}\,\Sigma_B/(2d)`: the temperature of isotropic noise with the same power.

    The chapter's matching condition :math:`\mathrm{Cov}(\xi)=2T/\eta\cdot I` solved for T. With
    :math:`\Sigma_B = \Sigma_1/B` this is the :math:`T\propto\eta/B` rule (Jastrzębski et al. 2017,
    "Three factors influencing minima in SGD"). In the small-step limit it equals the
    equipartition temperature :math:`\mathrm{tr}(HC)/d` of :func:`equipartition_temperature`
    (take the trace of :math:`HC+CH=\eta\Sigma_B`).
    """
    S = np.atleast_2d(np.asarray(noise_cov, dtype=np.float64))
    T = np.asarray(lr, dtype=np.float64) * float(np.trace(S)) / (2.0 * S.shape[0])
    return float(T) if T.ndim == 0 else T  # lr may be an array


def sgd_temperature_expansion(problem: Any, batch_size: int | None, *,
                              sampling: Any = "with_replacement") -> tuple[float, float, float]:
    r"""First-order expansion in the learning rate of SGD's variance temperature on a quadratic problem.

    The exact stationary covariance C(η) (:func:`sgd_stationary_covariance`) solves
    :math:`HC + CH - \eta HCH = \eta[\Sigma_* + \mathcal M(C)]`, with :math:`\Sigma_*` the mini-batch
    gradient covariance at :math:`\theta^*` and :math:`\mathcal M(C)` its multiplicative part, the
    covariance of :math:`(H_B - H)e` averaged over :math:`e \sim (0, C)`. Writing
    :math:`C = \eta C_1 + \eta^2 C_2 + O(\eta^3)`:
    :math:`HC_1 + C_1H = \Sigma_*` and :math:`HC_2 + C_2H = HC_1H + \mathcal M(C_1)`, so the variance
    temperature :math:`T = \mathrm{tr}(HC)/d` (:func:`equipartition_temperature`) is

    .. math:: T(\eta) = \underbrace{\frac{\eta\,\mathrm{tr}\,\Sigma_*}{2d}}_{\text{small-step law}}
              \Big(1 + (c_{\rm step} + c_{\rm mult})\,\eta + O(\eta^2)\Big),\quad
              c_{\rm step} = \frac{\mathrm{tr}(H^2C_1)}{\mathrm{tr}\,\Sigma_*},\
              c_{\rm mult} = \frac{\mathrm{tr}\,\mathcal M(C_1)}{\mathrm{tr}\,\Sigma_*}.

    The small-step law :func:`effective_temperature` (the chapter's :math:`T = \eta\,\mathrm{tr}\Sigma/(2dB)`
    with replacement) is the leading term; its relative error is :math:`(c_{\rm step} + c_{\rm mult})\eta`
    to first order: :math:`c_{\rm step}` (the finite step, independent of B) and :math:`c_{\rm mult}`
    (the multiplicative noise, ∝ 1/B). Returns ``(T1, c_step, c_mult)`` with :math:`T \approx T_1\eta`.
    """
    _, _, H, _ = _affine(problem)
    d = problem.dim
    K = _noise_operator(problem, batch_size, sampling)
    W = np.zeros((d + 1, d + 1))
    W[d, d] = 1.0
    S0 = (K @ W.ravel()).reshape(d, d)  # gradient-noise covariance at theta*
    C1 = linalg.solve_continuous_lyapunov(H, S0)
    W = np.zeros((d + 1, d + 1))
    W[:d, :d] = C1
    M1 = (K @ W.ravel()).reshape(d, d)
    tr0 = float(np.trace(S0))
    return tr0 / (2.0 * d), float(np.trace(H @ H @ C1)) / tr0, float(np.trace(M1)) / tr0


def equipartition_temperature(hessian: Any, cov: Any) -> float:
    r""":math:`\mathrm{tr}(HC)/d`: the temperature read off a stationary covariance C in a quadratic basin.

    For a Gibbs law :math:`C = T H^{-1}` it returns T; for SGD it is the mean over modes of
    :math:`h_k C_{kk}` in H's eigenbasis (each mode's "kinetic" temperature).
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=np.float64))
    return float(np.trace(H @ np.atleast_2d(np.asarray(cov, dtype=np.float64)))) / H.shape[0]


# ----------------------------------------------------------------------------------------------------
# Augmentation, compression, Adam
# ----------------------------------------------------------------------------------------------------
def augmented_variance(sigma_b2: float, sigma_w2: float, n_examples: int, copies: int) -> float:
    r"""Variance of the augmented mini-batch mean: :math:`\sigma_b^2/M + \sigma_w^2/(MA)`.

    M examples drawn with replacement, each averaged over A independent augmentations; law of total
    variance with :math:`\sigma_b^2 = \mathrm{Var}_i(\mathbb E[g\mid i])` (between examples) and
    :math:`\sigma_w^2 = \mathbb E_i\,\mathrm{Var}(g\mid i)` (within augmentations) — the chapter's
    problem 3150644. For vectors pass traces.
    """
    M = check_int("n_examples", n_examples, "augmented_variance", ge=1)
    A = check_int("copies", copies, "augmented_variance", ge=1)
    return float(sigma_b2) / M + float(sigma_w2) / (M * A)


def least_squares_augmentation_moments(problem: Any, theta: Any, noise: float) -> tuple[np.ndarray, float, float]:
    r"""Exact mean and variance parts of the Gaussian-augmented least-squares gradient at ``theta``.

    With :math:`\tilde x = x + \sigma\varepsilon` and :math:`u = N w_i \tilde x(\tilde x^\top\theta - y_i)`:
    :math:`\mathbb E[u\mid i] = N w_i (x_i r_i + \sigma^2\theta)` (the ridge term of Bishop 1995,
    Neural Comput. 7, 108), and by Isserlis' theorem
    :math:`\mathrm{tr}\,\mathrm{Var}(u\mid i) = (Nw_i)^2[\sigma^2(\|\theta\|^2\|x_i\|^2 + 2r_i\theta^\top x_i + p\,r_i^2)
    + \sigma^4(p+1)\|\theta\|^2]`, :math:`r_i = x_i^\top\theta-y_i`, p features. Returns
    (mean gradient of the augmented objective, :math:`\sigma_b^2`, :math:`\sigma_w^2`) with traces
    over coordinates and plain means over examples (the with-replacement one-draw law). The ridge
    part of the problem (``l2``) is deterministic and included in the mean.
    """
    th = np.asarray(theta, dtype=np.float64)
    s2 = check_real("noise", noise, "least_squares_augmentation_moments", ge=0.0) ** 2
    X, y = problem.rows[:, :-1], problem.rows[:, -1]
    p = X.shape[1]
    c = problem.n * problem.weights
    r = X @ th - y
    mean_i = c[:, None] * (X * r[:, None] + s2 * th) + problem.hyper[0] * th
    t2 = th @ th
    var_i = c**2 * (s2 * (t2 * np.einsum("ij,ij->i", X, X) + 2.0 * r * (X @ th) + p * r * r) + s2 * s2 * (p + 1) * t2)
    mbar = mean_i.mean(axis=0)
    return mbar, float(((mean_i - mbar) ** 2).sum(axis=1).mean()), float(var_i.mean())


def compression_error(v: Any, compression: str, levels: int = 1, k: int = 1) -> float:
    r""":math:`\mathbb E\|C(v)-v\|^2` for one compressed vector (exact).

    * ``quantize`` (QSGD, unbiased; Alistarh et al. 2017, Lemma 3.1):
      :math:`(\|v\|/s)^2\sum_i\tau_i(1-\tau_i)`, :math:`\tau_i = s|v_i|/\|v\| - \lfloor s|v_i|/\|v\|\rfloor`
      — a variance; K independent workers averaging add :math:`\sum_k (b_k/B)^2\,\cdot` of theirs;
    * ``sign`` (scaled, deterministic): :math:`\|v\|^2 - \|v\|_1^2/d` — a bias;
    * ``topk`` (deterministic): the squared norm of the dropped coordinates, at most
      :math:`(1-k/d)\|v\|^2` (Stich et al. 2018) — a bias, removed on average by error feedback.
    """
    v = np.asarray(v, dtype=np.float64)
    nrm = float(np.linalg.norm(v))
    if compression == "quantize":
        if nrm == 0.0:
            return 0.0
        a = levels * np.abs(v) / nrm
        tau = a - np.floor(a)
        return (nrm / levels) ** 2 * float(np.sum(tau * (1.0 - tau)))
    if compression == "sign":
        return nrm**2 - float(np.abs(v).sum()) ** 2 / v.size
    if compression == "topk":
        order = np.argsort(-np.abs(v), kind="stable")
        return float(np.sum(v[order[k:]] ** 2))
    raise ValidationError(f"Unknown compression {compression!r}; one of 'quantize', 'sign', 'topk'.")


def quantization_variance_bound(dim: int, levels: int) -> float:
    r"""QSGD's bound :math:`\mathbb E\|Q_s(v)-v\|^2 \le \min(d/s^2, \sqrt d/s)\,\|v\|^2` (Alistarh et al. 2017, Lemma 3.1), per :math:`\|v\|^2`."""
    return min(dim / levels**2, math.sqrt(dim) / levels)


def adam_expected_step(grad_mean: Any, grad_var: Any, batch_size: int, lr: float = 1.0, eps: float = 0.0) -> np.ndarray:
    r"""Expected Adam step per coordinate, :math:`-\eta\,G/(\sqrt{G^2+\sigma^2/B}+\epsilon)`.

    With :math:`\beta_2\to1` the second-moment estimate concentrates at
    :math:`\mathbb E[\hat g^2] = G^2 + \sigma^2/B` while :math:`\hat m` averages to G (Kingma & Ba
    2015, §3). In the noise-dominated regime :math:`\sigma^2/B\gg G^2` the step is
    :math:`-\eta G\sqrt B/\sigma`: it grows like :math:`\sqrt B`, the square-root scaling rule
    (the chapter's problem 3150553; Malladi et al. 2022, NeurIPS, "On the SDEs and scaling rules
    for adaptive gradient algorithms"). ``grad_var`` is the per-example variance :math:`\sigma^2`.
    """
    G = np.asarray(grad_mean, dtype=np.float64)
    s2 = np.asarray(grad_var, dtype=np.float64)
    B = check_int("batch_size", batch_size, "adam_expected_step", ge=1)
    return -float(lr) * G / (np.sqrt(G * G + s2 / B) + eps)


# ----------------------------------------------------------------------------------------------------
# Fourth moments of SGD on quadratic problems: the loss and its fluctuations
# ----------------------------------------------------------------------------------------------------
def _strata_draws(problem: Any, batch_size: int | None, sampling: Any) -> list[tuple[np.ndarray, int, bool]]:
    """``[(indices of stratum h, draws n_h, with replacement?), ...]`` of the mini-batch design."""
    N = problem.n
    mode, allocation, std = _sampling_parts(sampling)
    if batch_size is None:
        return []
    B = check_int("batch_size", batch_size, "theory", ge=1, le=N)
    if mode == "with_replacement":
        return [(np.arange(N), B, True)]
    if mode == "without_replacement":
        return [(np.arange(N), B, False)]
    if mode == "stratified":
        order, starts, _ = problem.strata()
        n_h = stratified_allocation(problem, B, allocation, std)
        return [(order[starts[h]:starts[h + 1]], int(n_h[h]), False) for h in range(n_h.size)]
    raise ValidationError(f"The fourth-moment theory covers with/without replacement and stratified sampling. Got {mode!r}.")


_SLOTS = ("ab", "cd", "ef", "gh")  # (row, column) letters of the four tensor slots


def _pairings(m2: np.ndarray) -> np.ndarray:
    """Sum over the three pairings of four slots of ``m2 (x) m2`` (an 8-index tensor, slot order kept)."""
    return (np.einsum("abcd,efgh->abcdefgh", m2, m2) + np.einsum("abef,cdgh->abcdefgh", m2, m2)
            + np.einsum("abgh,cdef->abcdefgh", m2, m2))


def _draw_mean_moments(Dt: np.ndarray, n: int, replace: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Moments of order 2, 3, 4 of the mean of n draws from the centred matrices ``Dt`` (N_h, p, q).

    With replacement (i.i.d. uniform draws): :math:`\mu_2/n`, :math:`\mu_3/n^2`,
    :math:`\mu_4/n^3 + (n-1)/n^3\sum_{\rm pairings}\mu_2\otimes\mu_2` (:math:`\mu_k` the k-th moment of one draw).
    Without replacement, from the inclusion probabilities :math:`\pi_k = n^{(k)}/N^{(k)}` (falling
    factorials) by Möbius inversion over set partitions, terms with a singleton block vanishing because
    the population is centred: :math:`E_2 = (\pi_1-\pi_2)m_2/n^2`, :math:`E_3 = (\pi_1-3\pi_2+2\pi_3)m_3/n^3`,
    :math:`E_4 = [(\pi_1-7\pi_2+12\pi_3-6\pi_4)m_4 + (\pi_2-2\pi_3+\pi_4)\sum_{\rm pairings}m_2\otimes m_2]/n^4`
    with :math:`m_k=\sum_i D_i^{\otimes k}` (Tukey 1950, JASA 45, 501; Cochran 1977 §2.3 for k = 2).
    """
    Nh, p, q = Dt.shape
    V = Dt.reshape(Nh, p * q)
    W = (V[:, :, None] * V[:, None, :]).reshape(Nh, -1)  # rows D_i (x) D_i: the sums below are BLAS products
    m2 = (V.T @ V).reshape((p, q) * 2)
    m3 = (W.T @ V).reshape((p, q) * 3)
    m4 = (W.T @ W).reshape((p, q) * 4)
    if replace:
        return m2 / (Nh * n), m3 / (Nh * n * n), m4 / (Nh * n**3) + (n - 1) / (n**3 * Nh * Nh) * _pairings(m2)
    pi = [1.0]
    for k in range(4):
        pi.append(pi[-1] * max(n - k, 0) / max(Nh - k, 1))
    c2 = pi[1] - pi[2]
    c3 = pi[1] - 3 * pi[2] + 2 * pi[3]
    c4 = pi[1] - 7 * pi[2] + 12 * pi[3] - 6 * pi[4]
    cp = pi[2] - 2 * pi[3] + pi[4]
    return c2 * m2 / n**2, c3 * m3 / n**3, (c4 * m4 + cp * _pairings(m2)) / n**4


def _estimator_moments(problem: Any, batch_size: int | None, sampling: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Moments of order 2, 3, 4 of :math:`D = [M-H,\ \zeta]` (the centred mini-batch gradient map, d x (d+1)).

    Strata are independent: :math:`E_k = \sum_h E_{k,h}` for k = 2, 3 and
    :math:`E_4 = \sum_h E_{4,h} + \sum_{\rm pairings}(E_2\otimes E_2 - \sum_h E_{2,h}\otimes E_{2,h})`.
    """
    A, b, _, ts = _affine(problem)
    d = problem.dim
    G = np.concatenate([A, (A @ ts - b)[:, :, None]], axis=2)
    shapes = ((d, d + 1),) * 2
    E2, E3, E4 = np.zeros(shapes[0] * 2), np.zeros(shapes[0] * 3), np.zeros(shapes[0] * 4)
    cross = np.zeros_like(E4)
    for idx, n, replace in _strata_draws(problem, batch_size, sampling):
        u = _scaled(problem, idx, G)
        e2, e3, e4 = _draw_mean_moments(u - u.mean(axis=0), n, replace)
        E2 += e2
        E3 += e3
        E4 += e4
        cross -= _pairings(e2)
    return E2, E3, E4 + cross + _pairings(E2)


def _fourth_moment_transfer(F: np.ndarray, E: np.ndarray, S: np.ndarray,
                            moments: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    r"""Matrix of :math:`E[\Phi^{\otimes 4}]`, :math:`\Phi = F + E D S`, in Kronecker layout (nz^4 x nz^4).

    Expands the product over the subsets of the four slots holding the random part :math:`X = EDS`
    (mean zero, so one-slot terms vanish); the slots' moments of X are those of D mapped by E and S.
    """
    import itertools

    nz = F.shape[0]
    E2, E3, E4 = moments
    emb = [E, S.T] * 4  # D[k, l] -> X[a, b] = E[a, k] D[k, l] S[l, b] for each slot
    X2 = np.einsum("abcd,ia,jb,kc,ld->ijkl", E2, *emb[:4], optimize=True)
    X3 = np.einsum("abcdef,ia,jb,kc,ld,me,nf->ijklmn", E3, *emb[:6], optimize=True)
    X4 = np.einsum("abcdefgh,ia,jb,kc,ld,me,nf,og,ph->ijklmnop", E4, *emb, optimize=True)
    X = {2: X2, 3: X3, 4: X4}
    out = "".join(s[0] for s in _SLOTS) + "".join(s[1] for s in _SLOTS)
    T = np.zeros((nz,) * 8)
    for k in (0, 2, 3, 4):
        for sub in itertools.combinations(range(4), k):
            specs = [_SLOTS[j] for j in range(4) if j not in sub]
            ops = [F] * len(specs)
            if sub:
                specs.append("".join(_SLOTS[j] for j in sub))
                ops.append(X[k])
            T += np.einsum(",".join(specs) + "->" + out, *ops, optimize=True)
    return T.reshape(nz**4, nz**4)


def _symmetric_basis(nz: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Lift (nz^4 x m) from values on sorted index tuples to the full symmetric tensor, and the pick (m,) indices."""
    import itertools

    tuples: list[tuple[int, ...]] = list(itertools.combinations_with_replacement(range(nz), 4))
    pos = {t: k for k, t in enumerate(tuples)}
    lift = np.zeros((nz**4, len(tuples)))
    for flat, idx in enumerate(itertools.product(range(nz), repeat=4)):
        lift[flat, pos[tuple(sorted(idx))]] = 1.0
    pick = np.array([np.ravel_multi_index(t, (nz,) * 4) for t in tuples])
    return lift, pick, tuples


def _reduced_fourth_operator(problem: Any, lr: float, batch_size: int | None, sampling: Any, momentum: float,
                             nesterov: bool, moments: Any = None) -> tuple[np.ndarray, np.ndarray, list, int]:
    _, _, H, _ = _affine(problem)
    d = problem.dim
    F, E, S, _ = _step_matrices(d, lr, momentum, nesterov, None, 0.0, H)
    nz = F.shape[0]
    T = _fourth_moment_transfer(F, E, S, moments or _estimator_moments(problem, batch_size, sampling))
    lift, pick, tuples = _symmetric_basis(nz)
    return T[pick] @ lift, lift, tuples, nz


def sgd_fourth_moment_radius(problem: Any, lr: float, batch_size: int | None, *, sampling: Any = "with_replacement",
                             momentum: float = 0.0, nesterov: bool = False) -> float:
    r"""Spectral radius of the exact fourth-moment operator of SGD (moments of order 1 to 4 of the parameters).

    Below 1 the stationary law has finite fourth moments, so the loss (quadratic in θ) has a finite
    stationary variance. The operator is :math:`E[\Phi^{\otimes4}]` on symmetric tensors of
    :math:`z = (e, [v], 1)` without the constant; it is block-triangular by order, so the radius is the
    largest over orders 1 to 4. It exceeds 1 already below the mean-square limit
    :func:`sgd_stability_limit`: the loss variance diverges before the mean loss does (heavy tails of
    products of random contractions; Kesten 1973, Acta Math. 131, 207).
    """
    eta = float(_check_lr(lr, None)[0])
    R, _, tuples, nz = _reduced_fourth_operator(problem, eta, batch_size, sampling, momentum, nesterov)
    keep = [k for k, t in enumerate(tuples) if t != (nz - 1,) * 4]
    return float(max(abs(np.linalg.eigvals(R[np.ix_(keep, keep)]))))


def _loss_forms(problem: Any, batch_size: int | None, sampling: Any, nz: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Quadratic forms in z = (e, [v], 1): :math:`U - U^* = \tfrac12 z^\top L_U z` and the 4-tensor
    :math:`K` with :math:`\mathrm{Var}(L_B\mid\theta) = \tfrac14\langle K, z^{\otimes4}\rangle`."""
    A, b, H, ts = _affine(problem)
    d = problem.dim
    losses, _ = problem.per_sample(ts)
    grads0 = A @ ts - b
    LU = np.zeros((nz, nz))
    LU[:d, :d] = H
    K = np.zeros((nz,) * 4)
    for idx, kappa in _design(problem, batch_size, sampling):
        if kappa == 0.0:
            continue
        c = problem.weights[idx] * idx.size  # N_h w_i
        Li = np.zeros((idx.size, nz, nz))
        Li[:, :d, :d] = c[:, None, None] * A[idx]
        Li[:, :d, -1] = Li[:, -1, :d] = c[:, None] * grads0[idx]
        Li[:, -1, -1] = 2.0 * c * losses[idx]
        Li -= Li.mean(axis=0)
        K += kappa / idx.size * np.einsum("iab,icd->abcd", Li, Li)
    return LU, K


def sgd_loss_moments(problem: Any, lr: Any, batch_size: int | None, *, x0: Any = None, n_steps: int | None = None,
                     sampling: Any = "with_replacement", momentum: float = 0.0,
                     nesterov: bool = False) -> dict[str, float]:
    r"""Exact mean and variance of the full-batch loss U(θ) and of the mini-batch loss, for SGD on a quadratic problem.

    U is quadratic, so its variance needs the fourth moments of θ. With :math:`z=(e,[v],1)` and one
    step :math:`z'=\Phi z`, :math:`\Phi = F + EDS` (module docstring), the fourth moment tensor obeys
    the closed linear recursion :math:`E[z'^{\otimes4}] = E[\Phi^{\otimes4}]\,E[z^{\otimes4}]` (D is
    independent of z). :math:`E[\Phi^{\otimes4}]` needs the moments of order 2 to 4 of the mini-batch
    mean, exact for sampling with replacement, without replacement (finite population) and stratified
    (:func:`_draw_mean_moments`). This extends the second-moment operator of Défossez & Bach (2015)
    and Jain et al. (2018) to fourth order.

    The mini-batch loss :math:`L_B(\theta)=\sum_j c_j\ell_{i_j}(\theta)` is drawn independently of θ
    (the batch of the next step), so :math:`\mathrm{Var}\,L_B = \mathrm{Var}\,U +
    E[\mathrm{Var}(L_B\mid\theta)]` with :math:`\mathrm{Var}(L_B\mid\theta) = \sum_h\kappa_h N_h^{-1}
    \sum_{i\in h}(\tilde\ell_i-\bar\ell_h)^2` (the covariance formula of the module docstring applied
    to the losses), a quartic polynomial in θ.

    Parameters
    ----------
    lr : float or array
        Learning rate (an array: one per step, with ``x0``).
    x0, n_steps : optional
        Start and number of steps for the transient; omitted: the stationary law (raises if the
        fourth-moment operator is not stable, see :func:`sgd_fourth_moment_radius`).

    Returns
    -------
    dict
        ``mean_loss`` E[U], ``var_loss`` Var U, ``mean_batch_loss`` (= E[U]), ``var_batch_loss``,
        ``mean_sq_distance`` :math:`E|\theta-\theta^*|^2` and ``var_sq_distance``.
    """
    mom = momentum > 0.0
    d = problem.dim
    _, _, _, ts = _affine(problem)
    moments = _estimator_moments(problem, batch_size, sampling)
    stationary = x0 is None
    if stationary:
        if n_steps is not None:
            raise ValidationError("sgd_loss_moments: 'n_steps' needs 'x0' (without x0 the result is the stationary law).")
        eta = float(_check_lr(lr, None)[0])
        R, lift, tuples, nz = _reduced_fourth_operator(problem, eta, batch_size, sampling, momentum, nesterov, moments)
        one = tuples.index((nz - 1,) * 4)
        keep = [k for k in range(len(tuples)) if k != one]
        rho = float(max(abs(np.linalg.eigvals(R[np.ix_(keep, keep)]))))
        if rho >= 1.0:
            raise ValueError(f"SGD with lr={eta:g}, batch_size={batch_size}: the fourth-moment operator is not stable "
                             f"(spectral radius {rho:.6g} >= 1), so the stationary loss variance is infinite.")
        A = np.eye(len(tuples)) - R
        A[one] = 0.0
        A[one, one] = 1.0
        rhs = np.zeros(len(tuples))
        rhs[one] = 1.0
        Z = (lift @ np.linalg.solve(A, rhs)).reshape((nz,) * 4)
    else:
        n = check_int("n_steps", n_steps, "sgd_loss_moments", ge=0)
        lrs = _check_lr(lr, n if n > 0 else None)
        x0 = np.asarray(x0, dtype=np.float64)
        z = np.concatenate([x0 - ts, np.zeros(d) if mom else [], [1.0]])
        nz = z.size
        Zv = np.einsum("a,b,c,d->abcd", z, z, z, z).ravel()
        _, _, H, _ = _affine(problem)
        cache: dict[float, np.ndarray] = {}
        for t in range(n):
            eta = float(lrs[t if lrs.size > 1 else 0])
            if eta not in cache:
                F, E, S, _ = _step_matrices(d, eta, momentum, nesterov, None, 0.0, H)
                cache[eta] = _fourth_moment_transfer(F, E, S, moments)
            Zv = cache[eta] @ Zv
        Z = Zv.reshape((nz,) * 4)
    last = nz - 1
    Z2 = Z[:, :, last, last]
    LU, K = _loss_forms(problem, batch_size, sampling, nz)
    mean_exc = 0.5 * float(np.einsum("ab,ab->", LU, Z2))
    var_U = 0.25 * float(np.einsum("ab,cd,abcd->", LU, LU, Z)) - mean_exc**2
    cond = 0.25 * float(np.einsum("abcd,abcd->", K, Z))
    Id = np.zeros((nz, nz))
    Id[:d, :d] = np.eye(d)
    m_sq = float(np.einsum("ab,ab->", Id, Z2))
    var_sq = float(np.einsum("ab,cd,abcd->", Id, Id, Z)) - m_sq**2
    U_star = float(problem.value(ts))
    return {"mean_loss": U_star + mean_exc, "var_loss": var_U, "mean_batch_loss": U_star + mean_exc,
            "var_batch_loss": var_U + cond, "mean_sq_distance": m_sq, "var_sq_distance": var_sq}


__all__ += ["sgd_fourth_moment_radius", "sgd_loss_moments"]


# ----------------------------------------------------------------------------------------------------
# Studies (issue 6): loss-estimate variance, per-stratum variance terms, compressed workers, meta-gradients
# ----------------------------------------------------------------------------------------------------
def minibatch_loss_variance(problem: Any, theta: Any, batch_size: int | None,
                            sampling: Any = "with_replacement") -> float:
    r"""Exact variance of the mini-batch estimate of U (the recorded ``batch_loss``) at ``theta``.

    The scalar case of :func:`gradient_noise_covariance`:
    :math:`\sum_h\kappa_h N_h^{-1}\sum_{i\in h}(u_i-\bar u_h)^2` with :math:`u_i = N_h w_i\ell_i(\theta)`
    (Cochran 1977, Thm 2.2 and eq. 5.3). On a quadrature problem (:class:`~stochdyn.problems.RitzEnergy1D`)
    this is the variance of estimating the quadrature sum from B sampled quadrature points.
    """
    losses, _ = problem.per_sample(np.asarray(theta, dtype=np.float64))
    var = 0.0
    for idx, kappa in _design(problem, batch_size, sampling):
        u = _scaled(problem, idx, losses)
        var += kappa * float(np.mean((u - u.mean()) ** 2))
    return var


def stratum_variance_terms(problem: Any, theta: Any, batch_size: int, allocation: str = "proportional",
                           stratum_std: Any = None) -> np.ndarray:
    r"""Each stratum's term :math:`W_h^2 S_h^2 (1-n_h/N_h)/n_h` of :func:`stratified_variance` (they sum to it).

    :math:`W_h = N_h/N`, :math:`S_h` from :func:`stratum_gradient_std` (divisor :math:`N_h-1`), :math:`n_h`
    from :func:`stratified_allocation` (Cochran 1977, eq. 5.3). Dividing term h by :math:`W_h^2` gives the
    variance (trace) of the stratum-mean estimator :math:`\bar y_h` itself. Neyman allocation
    (:math:`n_h\propto N_hS_h`) minimises the sum; it makes neither the terms nor the stratum-mean variances
    equal (without the finite-population factor the terms are :math:`\propto W_hS_h` and the stratum-mean
    variances :math:`\propto S_h/N_h`); what it equalises is the marginal gain
    :math:`-\partial V/\partial n_h = W_h^2S_h^2/n_h^2` of one more draw in each stratum.
    """
    _, starts, _ = problem.strata()
    sizes = np.diff(starts).astype(np.float64)
    n_h = stratified_allocation(problem, batch_size, allocation, stratum_std).astype(np.float64)
    S = stratum_gradient_std(problem, theta)
    return (sizes / problem.n) ** 2 * S**2 * (1.0 - n_h / sizes) / n_h


def _compositions(n: int, m: int) -> np.ndarray:
    """All (c_1..c_m) of non-negative integers summing to n, as rows of an int array (stars and bars)."""
    import itertools

    if m == 1:
        return np.array([[n]], dtype=np.int64)
    bars = np.array(list(itertools.combinations(range(n + m - 1), m - 1)), dtype=np.int64).reshape(-1, m - 1)
    edges = np.column_stack([np.full(len(bars), -1), bars, np.full(len(bars), n + m - 1)])
    return np.diff(edges, axis=1) - 1


def discrete_mean_law(points: Any, probs: Any, n: int, max_terms: int = 5_000_000) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact law of the mean of n i.i.d. draws from a discrete distribution on the rows of ``points``.

    The mean is :math:`\sum_j c_j x_j/n` with counts :math:`c\sim\mathrm{Multinomial}(n, p)`; returns
    ``(means, probabilities)`` over all :math:`\binom{n+m-1}{m-1}` count vectors (m support points;
    refused above ``max_terms``). This is how the mini-batch gradient of a sampling-with-replacement
    design is distributed when the per-example gradients take m distinct values.
    """
    from scipy.special import gammaln

    X = np.atleast_2d(np.asarray(points, dtype=np.float64))
    p = _check_probs(probs, X.shape[0])
    n = check_int("n", n, "discrete_mean_law", ge=1)
    m = X.shape[0]
    terms = math.comb(n + m - 1, m - 1)
    if terms > max_terms:
        raise ValidationError(f"discrete_mean_law: the exact law of a mean of {n} draws from {m} distinct values has "
                              f"{terms} terms (> {max_terms}); use fewer distinct values or fewer draws.")
    c = _compositions(n, m)
    logp = gammaln(n + 1) - gammaln(c + 1).sum(axis=1) + c @ np.log(p)
    return (c @ X) / n, np.exp(logp)


def _check_probs(probs: Any, m: int) -> np.ndarray:
    """Validated probabilities: m positive numbers summing to 1 (to 1e-12)."""
    from .._validation import check_array

    p = check_array("probs", probs, "discrete_mean_law", shape=(m,), gt=0.0)
    if abs(p.sum() - 1.0) > 1e-12:
        raise ValidationError(f"The 'probs' parameter of discrete_mean_law must sum to 1. Got {p.sum()!r}.")
    return p


def _compressed_moments(g: np.ndarray, w: np.ndarray, compression: str, levels: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of C(g) when g takes the rows of ``g`` with probabilities ``w`` (the kernel's compressors)."""
    d = g.shape[1]
    extra = np.zeros(d)  # E[diag Cov(C(g) | g)]: only the randomised quantiser has one
    if compression == "none":
        c = g
    elif compression == "quantize":
        c = g
        nrm = np.linalg.norm(g, axis=1)
        safe = np.where(nrm > 0, nrm, 1.0)
        a = levels * np.abs(g) / safe[:, None]
        tau = a - np.floor(a)
        extra = w @ ((nrm[:, None] / levels) ** 2 * tau * (1.0 - tau))
    elif compression == "sign":
        c = (np.abs(g).sum(axis=1) / d)[:, None] * np.sign(g)
    elif compression == "topk":
        keep = np.argsort(-np.abs(g), axis=1, kind="stable")[:, :k]  # ties to the lower index, as the kernel
        c = np.zeros_like(g)
        np.put_along_axis(c, keep, np.take_along_axis(g, keep, axis=1), axis=1)
    else:
        raise ValidationError(f"Unknown compression {compression!r}; one of 'none', 'quantize', 'sign', 'topk'.")
    mean = w @ c
    dev = c - mean
    return mean, (dev.T * w) @ dev + np.diag(extra)


def compressed_gradient_moments(problem: Any, theta: Any, batch_size: int, workers: Any,
                                max_terms: int = 5_000_000) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact mean and covariance of the server's gradient estimate with K compressing workers (one step).

    The batch of B draws *with replacement* is split into K shares of sizes :math:`b_k` (as the
    kernel: ``B // K`` plus one for the first ``B % K``); worker k sends :math:`C(g_k)` of its own
    estimate :math:`g_k = b_k^{-1}\sum_{j\in k} N w_{i_j}\nabla\ell_{i_j}` and the server averages
    :math:`\hat g = \sum_k (b_k/B)\,C(g_k)`. The workers are independent, so
    :math:`\mathbb E\hat g = \sum_k (b_k/B)\,\mathbb E C(g_k)` and
    :math:`\mathrm{Cov}\,\hat g = \sum_k (b_k/B)^2\,\mathrm{Cov}\,C(g_k)`, with
    :math:`\mathrm{Cov}\,C(g) = \mathbb E[\mathrm{Cov}(C(g)\mid g)] + \mathrm{Cov}(\mathbb E[C(g)\mid g])`. The
    law of :math:`g_k` is enumerated exactly (:func:`discrete_mean_law` over the distinct per-example
    gradients), so this is exact for every compressor:

    * ``quantize`` (QSGD; Alistarh et al. 2017, NeurIPS, Lemma 3.1): unbiased, conditional covariance
      :math:`\mathrm{diag}\big((\|g\|/s)^2\tau_i(1-\tau_i)\big)` — it adds
      :math:`\sum_k (b_k/B)^2\,\mathbb E\,\mathrm{compression\_error}(g_k)` to the sampling variance;
    * ``sign`` (scaled sign :math:`\|g\|_1/d\,\mathrm{sign}\,g`) and ``topk`` are deterministic given g and
      biased: :math:`\mathbb E\hat g\ne\nabla U`.

    Error feedback makes the estimate depend on the replica's history, so it has no one-step law here;
    its first step equals the plain compressor's (the memory starts at zero). Returns ``(mean, cov)``.
    """
    from ..integrators.sgd import Workers

    if not isinstance(workers, Workers):
        raise ValidationError(f"The 'workers' parameter of compressed_gradient_moments must be a Workers. Got {workers!r}.")
    B = check_int("batch_size", batch_size, "compressed_gradient_moments", ge=workers.n_workers)
    _, grads = problem.per_sample(np.asarray(theta, dtype=np.float64))
    u = grads * (problem.n * problem.weights)[:, None]
    pts, counts = np.unique(u, axis=0, return_counts=True)
    K = workers.n_workers
    sizes = [B // K + (1 if k < B % K else 0) for k in range(K)]
    mean = np.zeros(problem.dim)
    cov = np.zeros((problem.dim, problem.dim))
    for b in sorted(set(sizes)):
        g, w = discrete_mean_law(pts, counts / counts.sum(), b, max_terms)
        mb, cb = _compressed_moments(g, w, workers.compression, workers.levels, workers.k)
        n_b = sizes.count(b)
        mean += n_b * (b / B) * mb
        cov += n_b * (b / B) ** 2 * cb
    return mean, cov


def _meta_parts(problem: Any, theta: Any, inner_lr: float) -> dict[str, Any]:
    A, b, H, _ = _affine(problem)
    c = problem.n * problem.weights
    At, bt = A * c[:, None, None], b * c[:, None]  # per-draw terms: E over uniform i gives H and the mean of b
    th = np.asarray(theta, dtype=np.float64)
    alpha = check_real("inner_lr", inner_lr, "meta_gradient", gt=0.0)
    cbar = bt.mean(axis=0)
    D = At - H

    def noise(x: np.ndarray) -> np.ndarray:  # per-example gradient minus the full gradient, at x: (N, d)
        return At @ x - bt - (H @ x - cbar)

    phi = th - alpha * (H @ th - cbar)  # full-batch inner step
    P = np.eye(problem.dim) - alpha * H
    return {"alpha": alpha, "H": H, "D": D, "noise": noise, "theta": th, "phi": phi, "P": P,
            "grad_phi": H @ phi - cbar}


def meta_gradient_expectation(problem: Any, theta: Any, inner_lr: float, batch_size: int | None,
                              same_batch: bool = False) -> np.ndarray:
    r"""Exact expectation of the one-step MAML meta-gradient estimator on a quadratic problem.

    Inner step on a mini-batch S of B draws with replacement: :math:`\phi_S = \theta - \alpha\nabla L_S(\theta)`;
    the meta-gradient of the outer loss :math:`L_{S'}(\phi_S)` is
    :math:`\hat g = (I-\alpha H_S)\nabla L_{S'}(\phi_S)` (Finn, Abbeel & Levine 2017, ICML, with the
    exact second-order term), :math:`H_S=\nabla^2L_S`. With per-sample gradients
    :math:`\nabla\tilde\ell_i = \tilde A_i\theta-\tilde b_i` (scaled by :math:`Nw_i`), :math:`D_i=\tilde A_i-H`
    and :math:`\varepsilon_i(x) = \nabla\tilde\ell_i(x)-\nabla U(x)`, :math:`P = I-\alpha H`,
    :math:`\bar\phi = \theta-\alpha\nabla U(\theta)`:

    .. math::
        \text{independent } S':\quad \mathbb E\hat g = P\nabla U(\bar\phi) + \frac{\alpha^2}{B}\,\overline{D_iH\varepsilon_i(\theta)},
        \qquad \text{same batch } S'=S:\quad \mathbb E\hat g + b(\alpha, B),

    with the bias :func:`meta_gradient_bias`. The first term is the gradient of the full-batch
    meta-objective :math:`U(\theta-\alpha\nabla U(\theta))`; the :math:`\alpha^2/B` term is the gradient of
    the extra :math:`\tfrac{\alpha^2}{2B}\mathrm{tr}(H\Sigma_1(\theta))` that a noisy inner step adds to
    :math:`\mathbb E_S U(\phi_S)` (the objective the independent estimator is unbiased for). Bars are
    means over the N examples. ``batch_size=None`` gives the full-batch meta-gradient.
    Derivation: expand :math:`H_S = H+\Delta_H`, :math:`\nabla L_S = \nabla U + \delta` and keep the moments
    of the B i.i.d. draws, which are exact to third order because the problem is quadratic.
    """
    q = _meta_parts(problem, theta, inner_lr)
    full = q["P"] @ q["grad_phi"]
    if batch_size is None:
        return full
    B = check_int("batch_size", batch_size, "meta_gradient_expectation", ge=1)
    e = q["noise"](q["theta"])
    out = full + q["alpha"] ** 2 / B * np.einsum("ikl,lm,im->k", q["D"], q["H"], e) / e.shape[0]
    if same_batch:
        out = out + meta_gradient_bias(problem, theta, inner_lr, B)
    return out


def meta_gradient_bias(problem: Any, theta: Any, inner_lr: float, batch_size: int) -> np.ndarray:
    r"""Exact bias from reusing the inner step's mini-batch for the meta-gradient (quadratic problems).

    For one inner SGD step :math:`\phi_S=\theta-\alpha\nabla L_S(\theta)` on B draws with replacement, the
    same-batch estimator :math:`(I-\alpha H_S)\nabla L_S(\phi_S) = (I-\alpha H_S)^2\nabla L_S(\theta)` minus
    the independent-batch estimator :math:`(I-\alpha H_S)\nabla L_{S'}(\phi_S)` has expectation

    .. math::
        b(\alpha, B) = -\frac{\alpha}{B}\Big[(I-\alpha H)\,M(\theta) + M(\bar\phi)\Big] + \frac{\alpha^2}{B^2}\,T(\theta),
        \qquad M(x) = \overline{D_i\,\varepsilon_i(x)},\quad T(x) = \overline{D_i^2\,\varepsilon_i(x)},

    with :math:`D_i = \tilde A_i - H` (per-example Hessian minus the mean), :math:`\varepsilon_i(x)` the
    per-example gradient noise at x (see :func:`meta_gradient_expectation`) and
    :math:`\bar\phi=\theta-\alpha\nabla U(\theta)`. M is the covariance between per-example curvature and
    per-example gradient: the bias exists because the batch that sets the step is also the batch that
    measures the outer gradient. To leading order :math:`b\approx -\tfrac{2\alpha}{B}M(\theta)`: linear in
    the inner learning rate, inverse in the batch size, zero when curvature and gradient noise are
    uncorrelated (e.g. identical per-example Hessians). Derived here (expansion in :math:`\Delta_H = H_S-H`
    and :math:`\delta = \nabla L_S-\nabla U`, whose moments over B i.i.d. draws are
    :math:`\mathbb E[\Delta_H\delta] = M/B`, :math:`\mathbb E[\Delta_H^2\delta] = T/B^2`); the chapter's
    problem 3150584. Only sampling with replacement is covered.
    """
    q = _meta_parts(problem, theta, inner_lr)
    B = check_int("batch_size", batch_size, "meta_gradient_bias", ge=1)
    D, alpha, N = q["D"], q["alpha"], q["D"].shape[0]
    e_th, e_phi = q["noise"](q["theta"]), q["noise"](q["phi"])
    M_th = np.einsum("ikl,il->k", D, e_th) / N
    M_phi = np.einsum("ikl,il->k", D, e_phi) / N
    T = np.einsum("ikl,ilm,im->k", D, D, e_th) / N
    return -alpha / B * (q["P"] @ M_th + M_phi) + alpha**2 / B**2 * T


__all__ += ["minibatch_loss_variance", "stratum_variance_terms", "discrete_mean_law", "compressed_gradient_moments",
            "meta_gradient_expectation", "meta_gradient_bias"]


# ----------------------------------------------------------------------------------------------------
# Gradient-noise statistics along a trajectory; the norm test of adaptive batch sizes
# ----------------------------------------------------------------------------------------------------
def gradient_noise_moments(problem: Any, mean: Any, cov: Any = None) -> tuple[float, float]:
    r"""Exact :math:`E|\nabla U(\theta)|^2` and :math:`E\,\mathrm{tr}\,\Sigma_1(\theta)` for θ with a given mean and covariance.

    On a quadratic problem both are quadratic in θ, so they depend on its law only through the mean
    and covariance (from :func:`sgd_moments`): :math:`E|\nabla U|^2 = |H(m-\theta^*)|^2 + \mathrm{tr}(HCH)`
    and :math:`\mathrm{tr}\,\Sigma_1(\theta) = N^{-1}\sum_i|\tilde u_i(\theta)-\nabla U(\theta)|^2`
    (:math:`\tilde u_i = Nw_i\nabla\ell_i`, the one-draw covariance of :func:`gradient_noise_covariance`,
    estimated without bias by the recorded ``grad_var`` under sampling with replacement), whose
    expectation is :math:`\mathrm{tr}(K\,E[zz^\top])` with :math:`z=(\theta-\theta^*,1)`,
    :math:`K=N^{-1}\sum_i D_i^\top D_i`. The gradient noise scale of McCandlish et al. (2018) at the
    ensemble is the ratio of the two; the signal-to-noise ratio of a batch of B is B times its inverse.
    """
    A, b, H, ts = _affine(problem)
    d = problem.dim
    m = np.asarray(mean, dtype=np.float64) - ts
    C = np.zeros((d, d)) if cov is None else np.asarray(cov, dtype=np.float64)
    G = np.concatenate([A, (A @ ts - b)[:, :, None]], axis=2)
    u = _scaled(problem, np.arange(problem.n), G)
    D = u - u.mean(axis=0)
    K = np.einsum("iab,iac->bc", D, D) / problem.n
    Z = np.zeros((d + 1, d + 1))
    Z[:d, :d] = C + np.outer(m, m)
    Z[:d, d] = Z[d, :d] = m
    Z[d, d] = 1.0
    return float(m @ H @ H @ m + np.trace(H @ C @ H)), float(np.einsum("ab,ab->", K, Z))


def _norm_test_kernel(x: np.ndarray, y: np.ndarray, lr: float, B: int, theta: float, noise_std: float,
                      curvature: float) -> np.ndarray:
    """k[i, j]: density of moving from x[i] to y[j] in one step without the test firing."""
    from scipy import stats

    g = (x[:, None] - y[None, :]) / lr
    sd_mean = noise_std / math.sqrt(B)
    dens = stats.norm.pdf(g, loc=curvature * x[:, None], scale=sd_mean) / lr
    return dens * stats.chi2.cdf((B - 1) * B * theta**2 * g * g / noise_std**2, B - 1)


def norm_test_survival(x0: float, lr: float, batch_size: int, theta: float, n_steps: int, *, noise_std: float = 1.0,
                       curvature: float = 1.0, points_per_width: int = 12,
                       switch_snr: bool = False) -> np.ndarray | tuple[np.ndarray, float]:
    r"""P(the norm test has not fired in the first t steps), t = 0..n_steps, for Gaussian per-draw gradients.

    Model: :math:`U = \tfrac h2 x^2` and i.i.d. per-draw gradients :math:`g_j\sim\mathcal N(hx,\sigma^2)`;
    SGD with batch B takes :math:`x' = x - \eta\bar g`, and the norm test of
    :class:`~stochdyn.BatchSchedule` fires when :math:`S^2 > B\vartheta^2\bar g^2` (:math:`S^2` the sample
    variance; Byrd, Chin, Nocedal & Wu 2012, Math. Program. 134, 127). For Gaussian draws
    :math:`\bar g` and :math:`S^2` are independent, :math:`(B-1)S^2/\sigma^2\sim\chi^2_{B-1}`
    (Cochran's theorem), and the step depends on :math:`\bar g` only, so the density :math:`f_t` of x
    on the event "no firing yet" obeys the exact one-dimensional recursion

    .. math:: f_{t+1}(x') = \int f_t(x)\,\frac1\eta\,\varphi\!\Big(\tfrac{x-x'}\eta;\,hx,\tfrac{\sigma^2}B\Big)\,
              F_{\chi^2_{B-1}}\!\Big(\tfrac{(B-1)B\vartheta^2}{\sigma^2}\big(\tfrac{x-x'}\eta\big)^2\Big)\,dx,

    with :math:`f_1` in closed form from :math:`x_0`. It is integrated by the trapezoidal rule on a
    uniform grid of ``points_per_width`` points per one-step spread :math:`\eta\sigma/\sqrt B`
    (Gaussian integrands: the error falls faster than any power of the spacing; the unit test
    checks grid convergence). Given x, the recorded ratio :math:`B\bar g^2/S^2` (``snr``) is
    non-central F(1, B−1; λ) with λ = :math:`Bh^2x^2/\sigma^2` the exact SNR, of mean
    :math:`(1+\lambda)(B-1)/(B-3)`: it overestimates the SNR by about one, so the test fires around
    :math:`\lambda\approx 1/\vartheta^2 - 1`, not at :math:`\lambda = 1/\vartheta^2`.

    With ``switch_snr=True`` also returns the mean exact SNR :math:`E[\lambda(x_{T-1})\mid T\le n]` at the
    parameters where the test fired (T the first firing step):
    :math:`\sum_t\int f_{t-1}(x)\,P(\text{fire}\mid x)\,\lambda(x)\,dx / P(T\le n)`, with
    :math:`P(\text{fire}\mid x) = 1-\int k(x,x')\,dx'` from the same kernel.
    """
    owner = "norm_test_survival"
    B = check_int("batch_size", batch_size, owner, ge=2)
    n = check_int("n_steps", n_steps, owner, ge=0)
    lr = check_real("lr", lr, owner, gt=0.0)
    theta = check_real("theta", theta, owner, gt=0.0)
    s = check_real("noise_std", noise_std, owner, gt=0.0)
    h = check_real("curvature", curvature, owner, gt=0.0)
    x0 = check_real("x0", x0, owner)
    w = lr * s / math.sqrt(B)
    q = abs(1.0 - lr * h)
    if q >= 1.0:
        raise ValidationError(f"{owner}: lr * curvature must lie in (0, 2) for a stable mean. Got {lr * h:g}.")
    spread = w / math.sqrt(1.0 - q * q)  # stationary standard deviation bounds every step's spread
    lo, hi = min(0.0, x0, q * x0) - 10.0 * spread, max(0.0, x0, q * x0) + 10.0 * spread
    grid = np.linspace(lo, hi, int(math.ceil((hi - lo) / w * points_per_width)) + 1)
    dx = grid[1] - grid[0]
    f = _norm_test_kernel(np.array([x0]), grid, lr, B, theta, s, h)[0]
    K = _norm_test_kernel(grid, grid, lr, B, theta, s, h)
    wts = np.full(grid.size, dx)
    wts[[0, -1]] *= 0.5
    out = np.ones(n + 1)
    fire = 1.0 - K @ wts  # P(fire | x) on the grid
    lam = B * (h * grid / s) ** 2
    lam0 = B * (h * x0 / s) ** 2
    acc = 0.0
    f_prev: np.ndarray  # the density one step back, set from the second step on (read from t = 2)
    for t in range(1, n + 1):
        out[t] = float(wts @ f)
        acc += (1.0 - out[1]) * lam0 if t == 1 else float((f_prev * wts * fire) @ lam)
        f_prev = f
        f = (f * wts) @ K
    if switch_snr:
        return out, acc / (1.0 - out[-1])
    return out


# ----------------------------------------------------------------------------------------------------
# Gradient clipping: bias, variance and MSE of the clipped estimator
# ----------------------------------------------------------------------------------------------------
def exponential_clipping_mse(threshold: Any, mean: float) -> tuple[Any, Any]:
    r"""MSE of the clipped magnitude :math:`\min(g, C)` about :math:`\mu` when :math:`g\sim\mathrm{Exp}` with mean μ.

    :math:`E[(\min(g,C)-\mu)^2] = \mu^2 - 2\mu C e^{-C/\mu}` and its derivative
    :math:`2(C-\mu)e^{-C/\mu}`, zero at :math:`C=\mu`: the chapter's "simplified model" (problem
    3150556), in which the MSE-optimal threshold is the true magnitude. The zero at the target is
    not special to the exponential law: for any non-negative scalar estimate,
    :math:`\partial_C E[(\min(g,C)-\mu)^2] = 2(C-\mu)P(g>C)`. Returns ``(mse, dmse/dC)``.
    """
    mu = check_real("mean", mean, "exponential_clipping_mse", gt=0.0)
    C = np.asarray(threshold, dtype=np.float64)
    e = np.exp(-C / mu)
    mse, der = mu * mu - 2.0 * mu * C * e, 2.0 * (C - mu) * e
    return (float(mse), float(der)) if C.ndim == 0 else (mse, der)


def finite_sum_clipping_error(problem: Any, theta: Any, threshold: float) -> dict[str, float]:
    r"""Exact bias², variance, MSE and dMSE/dC of the norm-clipped one-example gradient at ``theta``.

    The estimate is :math:`\tilde u_i = Nw_i\nabla\ell_i(\theta)` with i uniform (a batch of one),
    clipped to :math:`\tilde u_i\min(1, C/|\tilde u_i|)`; all expectations are finite sums over the N
    examples, about the true gradient :math:`G=\nabla U(\theta)`. The derivative is
    :math:`E[2(C - G\cdot\hat u)\,1\{|\tilde u|>C\}]`, :math:`\hat u = \tilde u/|\tilde u|`.
    """
    C = check_real("threshold", threshold, "finite_sum_clipping_error", gt=0.0)
    _, grads = problem.per_sample(np.asarray(theta, dtype=np.float64))
    u = grads * (problem.n * problem.weights)[:, None]
    G = u.mean(axis=0)
    r = np.linalg.norm(u, axis=1)
    f = np.minimum(1.0, C / np.where(r > 0, r, 1.0))
    clipped = u * f[:, None]
    m = clipped.mean(axis=0)
    bias2 = float(np.sum((m - G) ** 2))
    var = float(np.mean(np.sum((clipped - m) ** 2, axis=1)))
    unit = u / np.where(r > 0, r, 1.0)[:, None]
    der = float(np.mean(2.0 * (C - unit @ G) * (r > C)))
    return {"bias_sq": bias2, "variance": var, "mse": bias2 + var, "dmse": der}


@functools.lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1] (cached: computing them costs an eigenproblem)."""
    return np.polynomial.legendre.leggauss(n)


def gaussian_clipping_error(threshold: float, grad_norm: float, noise_std: float, dim: int,
                            nodes: int = 200) -> dict[str, float]:
    r"""Exact bias², variance, MSE and dMSE/dC of norm clipping for :math:`\hat g\sim\mathcal N(G, s^2 I_d)`.

    With :math:`r=|\hat g|` (:math:`r^2/s^2` non-central :math:`\chi^2_d` with
    :math:`\lambda=|G|^2/s^2`) and the mean direction cosine given r,
    :math:`E[\cos\phi\mid r] = I_{d/2}(a)/I_{d/2-1}(a)`, :math:`a = r|G|/s^2` (the von Mises–Fisher
    mean resultant; Mardia & Jupp 2000, *Directional Statistics*, §9.3), the clipped estimate
    :math:`\hat g\min(1,C/r)` has mean :math:`E[\min(r,C)\,E[\cos\phi\mid r]]` along G (zero across),
    second moment :math:`E[\min(r,C)^2]`, and :math:`\partial_C\mathrm{MSE} = 2E[(C-|G|E[\cos\phi\mid r])\,1\{r>C\}]`:
    one-dimensional integrals over r, done by Gauss–Legendre quadrature (``nodes`` per piece) on
    :math:`[r_{lo}, C]` and :math:`[C, r_{hi}]` (the integrands are smooth on each piece;
    :math:`r_{lo,hi} = |G| \mp s(\sqrt d + 9)`, outside which the mass is below :math:`e^{-40}`).
    Unlike the scalar model of :func:`exponential_clipping_mse`, the optimal threshold here is below
    :math:`|G|` (the clipping also shrinks the noise across G, as in James–Stein shrinkage).
    """
    from scipy import special, stats

    owner = "gaussian_clipping_error"
    C = check_real("threshold", threshold, owner, gt=0.0)
    G = check_real("grad_norm", grad_norm, owner, ge=0.0)
    s = check_real("noise_std", noise_std, owner, gt=0.0)
    d = check_int("dim", dim, owner, ge=1)
    lam = G * G / (s * s)
    law = stats.ncx2(d, lam) if lam > 0 else stats.chi2(d)
    reach = s * (math.sqrt(d) + 9.0)  # P(|xi| > sqrt(d) + 9) < exp(-81/2) (Gaussian concentration)
    r_lo, r_hi = max(0.0, G - reach), G + reach
    t, w = _gauss_legendre(check_int("nodes", nodes, owner, ge=2))

    def piece(a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nodes r, weights times the density of r, and E[cos | r] on [a, b]."""
        if b <= a:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        r = 0.5 * (b - a) * t + 0.5 * (b + a)
        dens = law.pdf((r / s) ** 2) * 2.0 * r / (s * s)  # density of r = s sqrt(q)
        arg = r * G / (s * s)
        cos = special.ive(d / 2, arg) / special.ive(d / 2 - 1, arg) if G > 0 else np.zeros_like(r)
        return r, 0.5 * (b - a) * w * dens, cos

    rb, wb, cb = piece(r_lo, min(C, r_hi))
    ra, wa, ca = piece(max(C, r_lo), r_hi)
    along = float(wb @ (rb * cb) + wa @ (C * ca))
    second = float(wb @ rb**2 + wa.sum() * C * C)
    der = float(2.0 * (wa @ (C - G * ca)))
    bias2 = (along - G) ** 2
    var = second - along**2
    return {"bias_sq": bias2, "variance": var, "mse": bias2 + var, "dmse": der}


def sgd_second_moment_operator(problem: Any, lr: float, batch_size: int | None, *,
                               sampling: Any = "with_replacement") -> np.ndarray:
    r"""Matrix T of plain SGD's homogeneous second-moment map, :math:`\mathrm{vec}\,E[e'e'^\top] = T\,\mathrm{vec}\,E[ee^\top]`.

    :math:`W\mapsto (I-\eta H)W(I-\eta H) + \eta^2\mathcal K_{MM}(W)` (d² x d², row-major vec): the
    part of the recursion of the module docstring that does not involve the noise at θ*. Its spectral
    radius is :func:`sgd_moment_operator_radius`; its top eigenvector (a positive semi-definite
    matrix) is the direction of slowest decay, or fastest growth above :func:`sgd_stability_limit`.
    """
    eta = float(_check_lr(lr, None)[0])
    _, _, H, _ = _affine(problem)
    d = problem.dim
    F, E, S, _ = _step_matrices(d, eta, 0.0, False, None, 0.0, H)
    T = _transfer(F, E, S, _noise_operator(problem, batch_size, sampling)).reshape((d + 1,) * 4)
    return T[:d, :d, :d, :d].reshape(d * d, d * d)


__all__ += ["gradient_noise_moments", "norm_test_survival", "exponential_clipping_mse", "finite_sum_clipping_error",
            "gaussian_clipping_error", "sgd_second_moment_operator"]


# ----------------------------------------------------------------------------------------------------
# SGD as Langevin: which temperature, and the shape of the stationary law
# ----------------------------------------------------------------------------------------------------
def configurational_temperature_quadratic(hessian: Any, cov: Any) -> float:
    r""":math:`\mathrm{tr}(H^2C)/\mathrm{tr}\,H`: the configurational temperature of a law with covariance C
    centred at the minimum of :math:`U = \tfrac12 e^\top He`.

    :math:`T_{\rm conf} = \langle|\nabla U|^2\rangle/\langle\Delta U\rangle` (Rugh 1997, PRL 78, 772;
    :func:`stochdyn.analysis.configurational_temperature`) with :math:`\nabla U = He` and
    :math:`\Delta U = \mathrm{tr}\,H`. For a Gibbs law :math:`C = TH^{-1}` it is T, like
    :func:`equipartition_temperature`; for SGD's anisotropic stationary law the two differ: this one
    weights each mode's temperature :math:`h_kC_{kk}` by its curvature :math:`h_k`, the equipartition
    temperature weights them equally.
    """
    H = np.atleast_2d(np.asarray(hessian, dtype=np.float64))
    C = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    return float(np.trace(H @ H @ C) / np.trace(H))


def sgd_stationary_moments_1d(problem: Any, lr: float, batch_size: int, order: int = 4) -> np.ndarray:
    r"""Exact stationary raw moments :math:`\mathbb E[e^k]`, k = 0..``order``, of constant-step SGD on a
    one-parameter quadratic problem (:math:`e = \theta-\theta^*`; mini-batches drawn with replacement).

    One step is the random affine map :math:`e' = \alpha e + \beta` with
    :math:`\alpha = 1-\eta M`, :math:`\beta = -\eta\zeta` (M, ζ the batch means of the scaled per-example
    :math:`A_i` and :math:`A_i\theta^*-b_i`, see the module docstring), independent of e. So

    .. math::
        \mathbb E[e^k]\,\big(1-\mathbb E[\alpha^k]\big) = \sum_{j<k}\binom kj\,\mathbb E[\alpha^j\beta^{k-j}]\,\mathbb E[e^j],

    with the joint moments of :math:`(\alpha,\beta)` (a sum of B i.i.d. draws) by repeated binomial
    convolution of one draw's moments — all exact. The k-th moment is finite iff
    :math:`\mathbb E|\alpha|^k<1`: the stationary law of such a recursion has a power-law tail
    :math:`P(|e|>x)\sim x^{-\kappa}` with :math:`\mathbb E|\alpha|^\kappa = 1` (Kesten 1973, Acta Math.
    131, 207; Goldie 1991, Ann. Appl. Probab. 1, 126; for SGD Gürbüzbalaban, Şimşekli & Zhu 2021,
    ICML, "The heavy-tail phenomenon in SGD"), so higher moments diverge at smaller learning rates than
    the variance: the stationary law of SGD is not Gaussian. Raises ValueError when a requested
    moment is infinite (checked through :math:`\mathbb E[\alpha^{2\lceil k/2\rceil}] < 1`, which
    bounds :math:`\mathbb E|\alpha|^k`). ``order=2`` reproduces :func:`sgd_stationary_covariance`.
    """
    owner = "sgd_stationary_moments_1d"
    eta = float(_check_lr(lr, None)[0])
    K = check_int("order", order, owner, ge=1)
    A, b, _, ts = _affine(problem)
    if problem.dim != 1:
        raise ValidationError(f"{owner} needs a one-parameter problem. Got dim={problem.dim}.")
    B = check_int("batch_size", batch_size, owner, ge=1)
    c = problem.n * problem.weights
    a = c * A[:, 0, 0]
    z = c * (A[:, 0, 0] * ts[0] - b[:, 0])
    al, be = (1.0 - eta * a) / B, -eta * z / B  # one draw's share of (alpha, beta)
    Kx = K + K % 2  # joint moments up to an even order, to check the last moment's existence
    binom = np.array([[math.comb(p, r) for r in range(Kx + 1)] for p in range(Kx + 1)], dtype=np.float64)
    one = np.array([[np.mean(al**p * be**q) if p + q <= Kx else 0.0 for q in range(Kx + 1)] for p in range(Kx + 1)])
    mom = one.copy()
    for _ in range(B - 1):  # E[(S + u)^p (T + v)^q] from the moments of S, T and of one draw (u, v)
        new = np.zeros_like(mom)
        for p in range(Kx + 1):
            for q in range(Kx + 1 - p):
                new[p, q] = sum(binom[p, r] * binom[q, s] * mom[p - r, q - s] * one[r, s]
                                for r in range(p + 1) for s in range(q + 1))
        mom = new
    m = np.zeros(K + 1)
    m[0] = 1.0
    for k in range(1, K + 1):
        even = k + k % 2
        if mom[even, 0] >= 1.0:
            raise ValueError(f"SGD with lr={eta:g}, batch_size={B}: the stationary moment of order {k} is infinite "
                             f"(E[alpha^{even}] = {mom[even, 0]:.6g} >= 1; a heavy tail).")
        m[k] = sum(binom[k, j] * mom[j, k - j] * m[j] for j in range(k)) / (1.0 - mom[k, 0])
    return m


__all__ += ["configurational_temperature_quadratic", "sgd_stationary_moments_1d"]


# ----------------------------------------------------------------------------------------------------
# Almost-sure stability of SGD in one dimension
# ----------------------------------------------------------------------------------------------------
def sgd_lyapunov_exponent_1d(problem: Any, lr: Any, batch_size: int, max_terms: int = 5_000_000) -> Any:
    r"""Exact growth rate :math:`\gamma = E\log|1-\eta\bar a_B|` of :math:`\log|\theta_n-\theta^*|` for SGD on a 1-D quadratic problem.

    One step multiplies the error by :math:`\alpha = 1-\eta\bar a_B` (:math:`\bar a_B` the batch mean of the
    scaled per-example curvatures :math:`Nw_iA_i`, with replacement) and adds the noise at θ*. Without
    that noise (interpolation, :math:`\zeta = 0`), :math:`\log|e_n| = \log|e_0| + \sum_t\log|\alpha_t|`
    exactly, so :math:`E\log|e_n| = \log|e_0| + \sum_t\gamma(\eta_t)` for any schedule, and runs converge
    (:math:`\gamma<0`) or overflow (:math:`\gamma>0`) almost surely; with noise, a stationary law exists iff
    :math:`\gamma<0` (Brandt 1986, Adv. Appl. Probab. 18, 211). This is a different limit from the
    mean-square one (:func:`sgd_stability_limit`, :math:`E\alpha^2<1`): by Jensen
    :math:`2\gamma \le \log E\alpha^2`, so between the two limits the mean square diverges while almost every
    run converges. The law of :math:`\bar a_B` is exact (:func:`discrete_mean_law` over the distinct
    curvatures; refused above ``max_terms``). ``lr`` may be an array (one γ per value).
    """
    A, _, _, _ = _affine(problem)
    if problem.dim != 1:
        raise ValidationError(f"sgd_lyapunov_exponent_1d needs a one-parameter problem. Got dim={problem.dim}.")
    B = check_int("batch_size", batch_size, "sgd_lyapunov_exponent_1d", ge=1)
    a = problem.n * problem.weights * A[:, 0, 0]
    values, counts = np.unique(a, return_counts=True)
    means, probs = discrete_mean_law(values[:, None], counts / counts.sum(), B, max_terms=max_terms)
    eta = _check_lr(lr, None)
    with np.errstate(divide="ignore"):
        g = np.log(np.abs(1.0 - eta[:, None] * means[:, 0][None, :])) @ probs
    return float(g[0]) if np.ndim(lr) == 0 else g


__all__ += ["sgd_lyapunov_exponent_1d"]
