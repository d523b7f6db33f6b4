"""How hot is this ensemble? Four temperature estimators, each with its standard error.

They measure different things and agree only at equilibrium with an exact sampler, which is what
makes them useful side by side: at finite step the kinetic, configurational and positional
temperatures of a Langevin scheme differ from the bath temperature, each in its own known way
(see :mod:`stochdyn.theory`), and the temperature of an SGD run is whatever its noise makes it.
All take the landscape from the data's attributes when it is not given.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_array, check_choice, check_int, check_spd
from ._base import (apply_points, check_burn_in, check_dims, constant_hessian, estimate, landscape_of, run_parameter,
                    select)
from .averages import average, ratio
from .stationarity import (batch_counts, batch_fraction_variance, batches, coordinate_samples, discard_burn_in,
                           _gl_grid)

__all__ = [
    "temperature",
    "kinetic_temperature",
    "configurational_temperature",
    "variance_temperature",
    "histogram_temperature",
]

_SAMPLE_DIMS = ("replica", "time", "individual")


def _prepare(obj: xr.Dataset | xr.DataArray, var: str | None, default: str | Iterable[str], burn_in: int | str | None,
             owner: str) -> xr.DataArray:
    burn_in = check_burn_in(burn_in, owner)
    if burn_in is not None:
        obj = discard_burn_in(obj, burn_in)
    return select(obj, var, default, owner)


def _dims(dims: str | Iterable[str] | None, da: xr.DataArray, per_coordinate: bool, owner: str) -> tuple[str, ...]:
    default = _SAMPLE_DIMS if per_coordinate else _SAMPLE_DIMS + ("dim",)
    return check_dims("dims", dims, da, owner, default=default)


def kinetic_temperature(ds: xr.Dataset, *, mass: Any = None, var: str = "v", burn_in: int | str | None = None,
                        per_coordinate: bool = False, dims: str | Iterable[str] | None = None) -> xr.Dataset:
    r"""Kinetic temperature from equipartition of momenta, :math:`T_\mathrm{kin} = \langle m_i v_i^2\rangle`.

    Averaged over replicas, records and (unless ``per_coordinate``) coordinates; k_B = 1. Masses
    from ``mass`` or the integrator's attributes (default 1). For BAOAB on a harmonic well the
    recorded velocities give exactly :math:`T(1 - h^2k/(4m))` at step h (Leimkuhler & Matthews
    2013; :func:`stochdyn.theory.baoab_harmonic_variances`): the kinetic temperature of a
    discretised scheme is not the bath temperature. Standard error as in :func:`average`.
    """
    owner = "kinetic_temperature"
    v = _prepare(ds, var, var, burn_in, owner)
    m = run_parameter(ds, "mass", 1.0) if mass is None else mass
    m = check_array("mass", m, owner, ndim=(0, 1), gt=0.0)
    if m.ndim == 1:
        if "dim" not in v.dims or v.sizes["dim"] != m.size:
            raise ValidationError(f"The 'mass' parameter of {owner} must be a scalar or have one entry per coordinate. "
                                  f"Got {m.size} entries.")
        m = xr.DataArray(m, dims="dim", coords={"dim": v["dim"]} if "dim" in v.coords else None)
    e = m * v**2
    est = average(e, dims=_dims(dims, v, per_coordinate, owner))
    est["value"].attrs.update(long_name="kinetic temperature")
    est.attrs.update(long_name="kinetic temperature", estimator="<m v^2> (equipartition)")
    return est


def _laplacian(landscape: Any, pts: np.ndarray) -> np.ndarray:
    """Diagonal of the Hessian at points ``(..., d)`` (``landscape.hessian``, evaluated in blocks)."""
    if hasattr(landscape, "hessian_diagonal"):
        return np.asarray(landscape.hessian_diagonal(pts))
    H = constant_hessian(landscape)
    if H is not None:
        return np.broadcast_to(np.diag(H), pts.shape).copy()
    flat = pts.reshape(-1, pts.shape[-1])
    out = np.empty_like(flat)
    for i in range(0, flat.shape[0], 4096):
        out[i:i + 4096] = np.diagonal(landscape.hessian(flat[i:i + 4096]), axis1=-2, axis2=-1)
    return out.reshape(pts.shape)


def configurational_temperature(ds: xr.Dataset, landscape: Any = None, *, var: str = "x",
                                burn_in: int | str | None = None, per_coordinate: bool = False,
                                dims: str | Iterable[str] | None = None) -> xr.Dataset:
    r"""Configurational temperature :math:`T_\mathrm{conf} = \langle|\nabla U|^2\rangle / \langle\Delta U\rangle`.

    Exact for the Gibbs density at any temperature, because integration by parts gives
    :math:`\langle \partial_i U\,\partial_i U\rangle = T\langle\partial_i^2 U\rangle` for each i
    (Rugh 1997, PRL 78, 772; Jepps, Ayton & Evans 2000, PRE 62, 4757); ``per_coordinate`` returns
    the ratio for each coordinate separately. Needs positions only, so it applies to overdamped
    schemes, SGD and populations alike. The Laplacian is the trace of ``landscape.hessian``
    (central differences of the gradient). On a harmonic well sampled by Euler–Maruyama it equals
    :math:`T/(1-k\Delta t/2)` exactly, the discretisation bias of the scheme. Standard error by
    the delta method for a ratio of means (:func:`ratio`).

    Parameters
    ----------
    landscape : optional
        Anything with ``grad(x)`` and ``hessian(x)`` (or ``hessian_diagonal(x)``) on points
        ``(..., dim)``; default rebuilt from ``ds.attrs["target"]``.
    """
    owner = "configurational_temperature"
    x = _prepare(ds, var, var, burn_in, owner)
    land = landscape_of(ds, landscape, owner)
    g = apply_points(land.grad, x, out_core=True)
    lap = apply_points(lambda p: _laplacian(land, p), x, out_core=True)
    d = _dims(dims, x, per_coordinate, owner)
    if not per_coordinate and "dim" in x.dims:
        g2, lap = (g**2).sum("dim"), lap.sum("dim")
        d = tuple(k for k in d if k != "dim")
    else:
        g2 = g**2
    est = ratio(g2, lap, dims=d, long_name="configurational temperature")
    est.attrs.update(estimator="<|grad U|^2> / <laplacian U>")
    return est


def _basin_hessian(ds: xr.Dataset, x: xr.DataArray, stiffness: Any, hessian: Any, landscape: Any,
                   owner: str) -> np.ndarray:
    d = x.sizes["dim"] if "dim" in x.dims else 1
    if stiffness is not None and hessian is not None:
        raise ValidationError(f"{owner} takes 'stiffness' or 'hessian', not both.")
    if hessian is not None:
        return check_spd("hessian", hessian, owner, dim=d)
    if stiffness is not None:
        k = check_array("stiffness", stiffness, owner, ndim=(0, 1), gt=0.0)
        return np.diag(np.broadcast_to(k, (d,)).astype(float))
    land = landscape_of(ds, landscape, owner)
    H = constant_hessian(land)
    if H is None:  # curvature at the ensemble mean position, taken as the bottom of the basin
        centre = np.asarray(x.mean([k for k in x.dims if k != "dim"]).values, dtype=float).reshape(d)
        H = land.hessian(centre)
    H = np.atleast_2d(np.asarray(H, dtype=float))
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        raise ValidationError(f"{owner}: the Hessian at the ensemble mean is not positive definite, so the ensemble "
                              "is not in a quadratic basin; pass 'stiffness' or 'hessian' for the basin.") from None
    return H


def variance_temperature(ds: xr.Dataset, landscape: Any = None, *, stiffness: Any = None, hessian: Any = None,
                         var: str = "x", burn_in: int | str | None = None, per_coordinate: bool = False,
                         dims: str | Iterable[str] | None = None) -> xr.Dataset:
    r"""Temperature from the position covariance in a quadratic basin, :math:`T = \mathrm{tr}(HC)/d`.

    In a basin :math:`U \approx \tfrac12 (x-\mu)^\top H (x-\mu)` the Gibbs covariance is
    :math:`C = T H^{-1}`, so :math:`T = \langle (x-\bar x)^\top H (x-\bar x)\rangle / d`; with
    ``per_coordinate``, :math:`T_i = \mathrm{Var}(x_i)/(H^{-1})_{ii}` (:math:`= k_i\mathrm{Var}(x_i)`
    for a diagonal H). H from ``hessian``, ``stiffness``, a :class:`~stochdyn.landscapes.Harmonic`
    landscape, or the landscape's Hessian at the ensemble mean. This is how the effective temperature
    of SGD is usually read off (e.g. Mandt, Hoffman & Blei 2017, JMLR 18, 1). The mean
    :math:`\bar x` is the sample mean over ``dims``; the standard error is that of the mean of the
    quadratic form (:func:`average`).
    """
    owner = "variance_temperature"
    x = _prepare(ds, var, var, burn_in, owner)
    H = _basin_hessian(ds, x, stiffness, hessian, landscape, owner)
    d = H.shape[0]
    sample = tuple(k for k in _dims(dims, x, True, owner) if k != "dim")
    y = x - x.mean(sample)
    if "dim" not in x.dims:
        y = y.expand_dims({"dim": 1}, axis=-1)
    if per_coordinate:
        hinv = np.diag(np.linalg.inv(H))
        q = y**2 / xr.DataArray(hinv, dims="dim", coords={"dim": y["dim"]} if "dim" in y.coords else None)
        name = "positional temperature per coordinate"
    else:
        q = apply_points(lambda p: np.einsum("...i,ij,...j->...", p, H, p) / d, y)
        name = "positional temperature tr(HC)/d"
    est = average(q, dims=sample)
    est["value"].attrs.update(long_name=name)
    est.attrs.update(long_name=name, estimator="quadratic form of the position covariance with the basin Hessian")
    return est


def histogram_temperature(ds: xr.Dataset, landscape: Any = None, *, potential: Callable | None = None,
                          coordinate: int = 0, bins: int | Any = 40, range: tuple[float, float] | None = None,
                          var: str = "x", burn_in: int | str | None = None, at: Any = None, n_batches: int = 32,
                          min_replicas: int = 8) -> xr.Dataset:
    r"""Temperature from a maximum-likelihood fit of the stationary histogram to :math:`e^{-U/T}`.

    The counts :math:`n_b` of coordinate ``coordinate`` are fitted by the binned likelihood
    :math:`\prod_b q_b(\beta)^{n_b}`, :math:`q_b \propto \int_{\text{bin } b} e^{-\beta F(s)}ds`
    (8-point Gauss–Legendre per bin, normalised over the histogram range), F the potential along
    the coordinate (``potential``, or U with the other coordinates at ``at``: the marginal free
    energy of a one-dimensional or separable landscape). The maximiser solves
    :math:`\sum_b \hat p_b \bar F_b(\beta) = \sum_b q_b(\beta)\bar F_b(\beta)` with :math:`\bar F_b`
    the within-bin mean of F. Its standard error is the sandwich
    :math:`\mathrm{Var}(\hat\beta) = \mathrm{Var}(\overline{\bar F_{b(i)}})/J^2`,
    :math:`J = \sum_b q_b(\bar F_b - \bar F)^2`, with the variance of the sample mean of the score from
    batch means (replicas, or time blocks), so correlation is accounted for; T = 1/β by the delta
    method. For independent samples this is the Fisher information of the binned exponential family.
    """
    from scipy import optimize

    owner = "histogram_temperature"
    burn_in = check_burn_in(burn_in, owner)
    n_batches = check_int("n_batches", n_batches, owner, ge=2)
    da = coordinate_samples(ds, var, coordinate, burn_in, owner)
    if potential is None:
        land = landscape_of(ds, landscape, owner)
        from ..theory.escape import potential_along  # theory (SciPy) is imported on use

        potential = potential_along(land, coordinate, at)
    samples = batches(da, n_batches, "replica", "time", min_replicas)
    vals = samples[np.isfinite(samples)]
    edges = np.histogram_bin_edges(vals, bins=bins, range=range)
    counts = batch_counts(samples, edges)
    K = edges.size - 1
    node_rows, weight_rows = [], []
    for b in np.arange(K):
        nb, wb, _ = _gl_grid(edges[b], edges[b + 1], 1)
        node_rows.append(nb)
        weight_rows.append(wb)
    nodes, w = np.array(node_rows), np.array(weight_rows)
    F = np.asarray(potential(nodes), dtype=float)
    F = F - F.min()
    n_tot = counts.sum(axis=0)
    N = n_tot.sum()
    if N < 2 or np.count_nonzero(n_tot) < 2:
        raise ValidationError(f"{owner} needs samples in at least two bins.")

    def model(beta: float) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-beta * F) * w
        mass = e.sum(axis=1)
        return mass / mass.sum(), (e * F).sum(axis=1) / np.where(mass > 0, mass, 1.0)

    def nll(logb: float) -> float:
        q, _ = model(np.exp(logb))
        return -float(np.sum(n_tot * np.log(np.maximum(q, 1e-300))))

    spread = float(np.ptp(F)) or 1.0
    res = optimize.minimize_scalar(nll, bounds=(np.log(1e-6 / spread), np.log(1e6 / spread)), method="bounded",
                                   options={"xatol": 1e-10})
    beta = float(np.exp(res.x))
    q, fbar = model(beta)
    J = float(np.sum(q * (fbar - np.sum(q * fbar)) ** 2))
    score = counts @ fbar
    _, var_mean = batch_fraction_variance(score, counts.sum(axis=1))
    se_beta = float(np.sqrt(var_mean)) / J
    est = estimate(1.0 / beta, se_beta / beta**2, long_name="temperature from the stationary histogram", units="1",
                   estimator="binned maximum likelihood fit of exp(-U/T)",
                   method="sandwich variance with batch means", n_samples=float(N))
    est.attrs.update(coordinate=int(coordinate), bins=int(K))
    return est


_METHODS: dict[str, Callable[..., xr.Dataset]] = {
    "kinetic": kinetic_temperature, "configurational": configurational_temperature,
    "variance": variance_temperature, "histogram": histogram_temperature,
}


def temperature(ds: xr.Dataset, method: str = "auto", **kwargs: Any) -> xr.Dataset:
    """Temperature of an ensemble by one of the estimators of this module.

    ``method``: ``"kinetic"`` (:func:`kinetic_temperature`), ``"configurational"``
    (:func:`configurational_temperature`), ``"variance"`` (:func:`variance_temperature`),
    ``"histogram"`` (:func:`histogram_temperature`) or ``"auto"``: kinetic when velocities were
    recorded, otherwise configurational. ``kwargs`` go to the estimator.
    """
    check_choice("method", method, ("auto", *_METHODS), "temperature")
    if method == "auto":
        method = "kinetic" if isinstance(ds, xr.Dataset) and "v" in ds.data_vars else "configurational"
    est = _METHODS[method](ds, **kwargs)
    est.attrs["temperature_method"] = method
    return est
