"""Langevin integrators: overdamped Euler–Maruyama and Leimkuhler–Matthews, underdamped BAOAB.

All three run on any :class:`~stochdyn.landscapes.Landscape`; temperatures are in the units of U
(k_B = 1) and the ``time`` coordinate is ``step * dt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._numba_utils import run_blocks
from .._validation import ValidationError, check_array, check_choice, check_real, check_spd
from ..landscapes.base import Landscape
from ..random._core import fill_normal
from ._kernels import langevin as _k
from .base import Integrator, State, Variable, as_float_tuple, register_integrator

__all__ = ["EulerMaruyama", "LeimkuhlerMatthews", "BAOAB"]


def _check_landscape(integrator: Integrator, target: Any) -> None:
    if not isinstance(target, Landscape):
        raise ValidationError(
            f"{integrator.name} runs on a landscape (a stochdyn.landscapes.Landscape). Got {type(target).__name__}."
        )


def _per_coordinate(name: str, value: Any, owner: str, d: int, *, ge: float | None = None, gt: float | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(d, float(arr))
    if arr.shape != (d,):
        raise ValidationError(
            f"The '{name}' parameter of {owner} must be a scalar or have one entry per coordinate ({d}). "
            f"Got shape {arr.shape}."
        )
    return check_array(name, arr, owner, ge=ge, gt=gt)


def _validated_scalar_or_vector(name: str, value: Any, owner: str, *, ge: float | None = None, gt: float | None = None) -> Any:
    arr = check_array(name, value, owner, ndim=(0, 1), ge=ge, gt=gt, min_size=1)
    return as_float_tuple(arr)


def lanes(n_replicas: int, d: int) -> int:
    """Replicas per block of a Langevin kernel: a multiple of 8 (SIMD lanes), 128 unless the block's
    three (d, B) buffers would outgrow a core's L2 cache (1 MiB), and no more than the replicas need.
    Measured on a 100-D harmonic well: 16 lanes 5.0 ns per coordinate-step, 64 lanes 3.2 ns, 128
    lanes 3.0 ns. Results never depend on it."""
    cap = max(8, min(128, (2**20 // (24 * max(d, 1))) // 8 * 8))
    return int(min(cap, -(-n_replicas // 8) * 8))


def _block_buffers(d: int, B: int) -> tuple[np.ndarray, ...]:
    """One thread's block buffers: three (d, B) (positions, gradients, and velocities / previous
    noise / correlated noise), three (B,) floats, the generator words, raw draws and live flags."""
    f2 = np.empty((3, d, B))
    f1 = np.empty((3, B))
    u = np.empty((3, B), dtype=np.uint64)
    return f2[0], f2[1], f2[2], f1[0], f1[1], f1[2], u[0], u[1], u[2], np.empty(B, dtype=np.bool_)


def _position_variables(d: int) -> list[Variable]:
    return [
        Variable("x", ("dim",), (d,), "position", "1"),
        Variable("energy", (), (), "potential energy U(x)", "1"),
    ]


class _Langevin(Integrator):
    family = "langevin"
    time_long_name = "time"
    #: the time step (a field of every concrete Langevin integrator; declared here, not a field of this base)
    dt: float

    def check_target(self, target: Any) -> None:
        _check_landscape(self, target)

    def time_of_step(self, steps: np.ndarray) -> np.ndarray:
        from ..io.schema import step_times

        return step_times(steps, self.dt)  # exact to the decimal dt as typed

    def _base_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        R, d = x0.shape
        return State(arrays={"x": x0, "rng": rng, "diverged": np.full(R, -1, dtype=np.int64)})

    def record(self, target: Landscape, state: State, out: dict[str, np.ndarray], k: int) -> None:
        # the kernel itself, for no steps, writing its initial state: the same compiled code
        self._run(target, state, 0, 1, out, k, True)

    def advance(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
                k0: int, block: int) -> None:
        self._run(target, state, n_steps, record_every, out, k0, False)

    def _run(self, target: Landscape, state: State, n_steps: int, record_every: int, out: dict[str, np.ndarray],
             k0: int, record_first: bool) -> None:
        kernel, args = self._kernel(target, state, n_steps, record_every, out, k0, record_first)
        R, d = state.arrays["x"].shape
        B = lanes(R, d)
        nb = -(-R // B)
        run_blocks(kernel, args + state.until_args(nb, d), nb, lambda: _block_buffers(d, B))

    def _kernel(self, target, state, n_steps, record_every, out, k0, record_first) -> tuple[Any, tuple]:
        """The kernel and its arguments up to the block size (see ``_kernels/langevin.py``)."""
        raise NotImplementedError

    def divergence_hint(self, target: Any) -> str:
        return (
            f"dt={self.dt:g} is probably too large for the landscape's stiffness "
            "(an explicit step is stable only while dt * curvature stays below about 2; "
            "check landscape.hessian(x) where the replicas go)"
        )


@register_integrator
@dataclass(frozen=True)
class EulerMaruyama(_Langevin):
    r"""Euler–Maruyama scheme for overdamped Langevin dynamics.

    .. math::
        X_{n+1} = X_n - \nabla U(X_n)\,\Delta t + \sqrt{2\,\Delta t}\; D^{1/2}\,\xi_n,
        \qquad \xi_n \sim \mathcal N(0, I),

    the discretisation of :math:`dX = -\nabla U\,dt + \sqrt{2D}\,dW` (Kloeden & Platen 1992, §9.1).
    With ``temperature`` T, :math:`D = T\,I` and the continuous-time stationary density is Gibbs,
    :math:`\propto e^{-U/T}`; at finite :math:`\Delta t` the stationary law is biased at first order
    (on a harmonic well the variance is :math:`T/(k(1-k\Delta t/2))`, see
    :func:`stochdyn.theory.em_harmonic_variance`).

    Parameters
    ----------
    dt : float
        Step :math:`\Delta t > 0`.
    temperature : float or sequence of float, optional
        T >= 0, or one temperature per coordinate (:math:`D=\mathrm{diag}(T_i)`). Default 1.
    diffusion : array (dim, dim), optional
        A constant symmetric positive-definite diffusion matrix D instead of ``temperature``
        (additive anisotropic noise with the drift unchanged — the idealised SGD noise model;
        the stationary law is then not Gibbs in general).
    """

    dt: float
    temperature: Any = None
    diffusion: Any = None

    def __post_init__(self) -> None:
        owner = "EulerMaruyama"
        object.__setattr__(self, "dt", check_real("dt", self.dt, owner, gt=0.0))
        if self.diffusion is not None:
            if self.temperature is not None:
                raise ValidationError("EulerMaruyama takes 'temperature' or 'diffusion', not both.")
            D = check_spd("diffusion", self.diffusion, owner)
            object.__setattr__(self, "diffusion", as_float_tuple(D))
        else:
            T = 1.0 if self.temperature is None else self.temperature
            object.__setattr__(self, "temperature", _validated_scalar_or_vector("temperature", T, owner, ge=0.0))

    def check_target(self, target: Any) -> None:
        super().check_target(target)
        d = target.dim
        if self.diffusion is not None and len(self.diffusion) != d:
            raise ValidationError(
                f"The 'diffusion' parameter of EulerMaruyama must be ({d}, {d}) for this {d}-dimensional landscape. "
                f"Got ({len(self.diffusion)}, {len(self.diffusion)})."
            )
        if self.temperature is not None:
            _per_coordinate("temperature", self.temperature, "EulerMaruyama", d)

    def noise(self, d: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(sigma, chol, full)``: per-coordinate noise scales, or the Cholesky factor of 2 D dt."""
        if self.diffusion is not None:
            chol = np.linalg.cholesky(2.0 * self.dt * np.asarray(self.diffusion))
            return np.zeros(d), np.ascontiguousarray(chol), True
        T = _per_coordinate("temperature", self.temperature, "EulerMaruyama", d)
        return np.sqrt(2.0 * T * self.dt), np.zeros((d, d)), False

    def variables(self, target: Landscape) -> list[Variable]:
        return _position_variables(target.dim)

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        return self._base_state(target, x0, rng)

    def _kernel(self, target, state, n_steps, record_every, out, k0, record_first):
        sigma, chol, full = self.noise(target.dim)
        a = state.arrays
        kernel = _k.euler_maruyama_full if full else _k.euler_maruyama
        return kernel, (target.compiled_columns, target.theta, a["x"], a["rng"], a["diverged"], chol if full else sigma,
                        self.dt, state.step, n_steps, record_every, record_first, out["x"], out["energy"], k0)


@register_integrator
@dataclass(frozen=True)
class LeimkuhlerMatthews(_Langevin):
    r"""Leimkuhler–Matthews scheme for overdamped Langevin dynamics.

    .. math::
        X_{n+1} = X_n - \nabla U(X_n)\,\Delta t + \sqrt{2T\Delta t}\;\frac{\xi_n + \xi_{n+1}}{2},

    one gradient and one normal vector per step, like Euler–Maruyama, but stationary averages are
    second-order accurate in :math:`\Delta t` (Leimkuhler & Matthews 2013, Appl. Math. Res. Express
    2013(1), 34; Leimkuhler, Matthews & Stoltz 2016, IMA J. Numer. Anal. 36, 13). On a harmonic well
    its stationary variance is exactly T/k for every stable step. The noise ``xi_{n+1}`` drawn in
    one step is reused in the next, so it is part of the state.

    Parameters
    ----------
    dt : float
        Step > 0.
    temperature : float or sequence of float
        T >= 0 (or one per coordinate). Default 1.
    """

    dt: float
    temperature: Any = 1.0

    def __post_init__(self) -> None:
        owner = "LeimkuhlerMatthews"
        object.__setattr__(self, "dt", check_real("dt", self.dt, owner, gt=0.0))
        object.__setattr__(self, "temperature", _validated_scalar_or_vector("temperature", self.temperature, owner, ge=0.0))

    def check_target(self, target: Any) -> None:
        super().check_target(target)
        _per_coordinate("temperature", self.temperature, "LeimkuhlerMatthews", target.dim)

    def variables(self, target: Landscape) -> list[Variable]:
        return _position_variables(target.dim)

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        state = self._base_state(target, x0, rng)
        xi = np.empty_like(x0)
        fill_normal(rng, xi)  # xi_0, drawn from each replica's own stream
        state.arrays["xi"] = xi
        return state

    def _kernel(self, target, state, n_steps, record_every, out, k0, record_first):
        T = _per_coordinate("temperature", self.temperature, "LeimkuhlerMatthews", target.dim)
        a = state.arrays
        return _k.leimkuhler_matthews, (target.compiled_columns, target.theta, a["x"], a["xi"], a["rng"],
                                        a["diverged"], np.sqrt(2.0 * T * self.dt), self.dt, state.step, n_steps,
                                        record_every, record_first, out["x"], out["energy"], k0)


@register_integrator
@dataclass(frozen=True)
class BAOAB(_Langevin):
    r"""BAOAB splitting for underdamped Langevin dynamics.

    .. math::
        dX = V\,dt,\qquad M\,dV = -\nabla U(X)\,dt - \gamma M V\,dt + \sqrt{2\gamma T M}\,dW,

    integrated per step :math:`h` as B (half kick), A (half drift), O (exact Ornstein–Uhlenbeck
    velocity update :math:`V \leftarrow cV + \sqrt{(1-c^2)T/m}\,\xi`, :math:`c = e^{-\gamma h}`),
    A, B (Leimkuhler & Matthews 2013, Appl. Math. Res. Express 2013(1), 34; *Molecular Dynamics*,
    Springer 2015, §7). One force evaluation per step. Configurational averages are second-order
    accurate and exact on harmonic wells (:math:`\langle x^2\rangle = T/k`); the velocity variance is
    :math:`(T/m)(1 - h^2 k/(4m))` there (see :func:`stochdyn.theory.baoab_harmonic_covariance`).

    Parameters
    ----------
    dt : float
        Step h > 0.
    temperature : float
        T >= 0. Default 1.
    friction : float
        :math:`\gamma > 0`. Default 1.
    mass : float or sequence of float
        m > 0 (or one per coordinate). Default 1.
    initial_velocity : {"thermal", "zero"}
        Draw :math:`V_0 \sim \mathcal N(0, T/m)` from each replica's stream (default) or start at rest.
    """

    dt: float
    temperature: float = 1.0
    friction: float = 1.0
    mass: Any = 1.0
    initial_velocity: str = "thermal"

    def __post_init__(self) -> None:
        owner = "BAOAB"
        object.__setattr__(self, "dt", check_real("dt", self.dt, owner, gt=0.0))
        object.__setattr__(self, "temperature", check_real("temperature", self.temperature, owner, ge=0.0))
        object.__setattr__(self, "friction", check_real("friction", self.friction, owner, gt=0.0))
        object.__setattr__(self, "mass", _validated_scalar_or_vector("mass", self.mass, owner, gt=0.0))
        check_choice("initial_velocity", self.initial_velocity, ("thermal", "zero"), owner)

    def check_target(self, target: Any) -> None:
        super().check_target(target)
        _per_coordinate("mass", self.mass, "BAOAB", target.dim)

    def variables(self, target: Landscape) -> list[Variable]:
        return _position_variables(target.dim) + [Variable("v", ("dim",), (target.dim,), "velocity", "1")]

    def init_state(self, target: Landscape, x0: np.ndarray, rng: np.ndarray) -> State:
        state = self._base_state(target, x0, rng)
        v = np.zeros_like(x0)
        if self.initial_velocity == "thermal":
            fill_normal(rng, v)
            v *= np.sqrt(self.temperature / _per_coordinate("mass", self.mass, "BAOAB", target.dim))
        state.arrays["v"] = v
        return state

    def _kernel(self, target, state, n_steps, record_every, out, k0, record_first):
        m = _per_coordinate("mass", self.mass, "BAOAB", target.dim)
        c = math.exp(-self.friction * self.dt)
        vscale = np.sqrt((1.0 - c * c) * self.temperature / m)
        a = state.arrays
        return _k.baoab, (target.compiled_columns, target.theta, a["x"], a["v"], a["rng"], a["diverged"], 1.0 / m, c,
                          vscale, self.dt, state.step, n_steps, record_every, record_first, out["x"], out["v"],
                          out["energy"], k0)
