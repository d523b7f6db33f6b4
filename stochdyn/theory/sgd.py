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
