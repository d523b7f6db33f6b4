"""Autocorrelation functions, integrated autocorrelation times and effective sample sizes.

All three treat the replicas of an ensemble as independent realisations of one stationary process:
autocovariances are computed per replica (by FFT) and averaged over the ensemble, so a thousand short
replicas estimate the correlation as well as one long run of the same total length.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_choice, check_int, check_real
from ._base import check_dims, estimate, record_spacing, select, sqrt

__all__ = ["autocorrelation", "integrated_autocorrelation_time", "effective_sample_size"]

_OWNER_ACF = "autocorrelation"


def _autocovariance(x: np.ndarray, max_lag: int, adjusted: bool) -> np.ndarray:
    """Autocovariance of each row of ``x`` (last axis time, already centred) at lags 0..max_lag.

    :math:`\\hat C(k) = \\frac{1}{n-k}\\sum_{t=0}^{n-k-1} x_t x_{t+k}` (``adjusted``) or with
    :math:`1/n`; by FFT with zero padding (Wiener–Khinchin). Rows with a non-finite entry give NaN.
    """
    n = x.shape[-1]
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    bad = ~np.all(np.isfinite(x), axis=-1, keepdims=True)
    f = np.fft.rfft(np.where(bad, 0.0, x), n=nfft, axis=-1)
    acov = np.fft.irfft(f * np.conj(f), n=nfft, axis=-1)[..., : max_lag + 1]
    acov /= (n - np.arange(max_lag + 1)) if adjusted else n
    return np.where(bad, np.nan, acov)


def _ensemble_autocovariance(x: xr.DataArray, dim: str, ensemble: tuple[str, ...], max_lag: int, center: str,
                             adjusted: bool) -> xr.DataArray:
    if center == "ensemble":
        x = x - x.mean((dim,) + ensemble)
    else:
        x = x - x.mean(dim)
    if x.chunks is not None:
        x = x.chunk({dim: -1})
    return xr.apply_ufunc(
        _autocovariance, x, input_core_dims=[[dim]], output_core_dims=[["lag"]], dask="parallelized",
        output_dtypes=[float], dask_gufunc_kwargs={"output_sizes": {"lag": max_lag + 1}},
        kwargs={"max_lag": max_lag, "adjusted": adjusted},
    )


def _lag_coords(da: xr.DataArray, dim: str, max_lag: int) -> dict[str, Any]:
    h, steps, units = record_spacing(da, dim)
    k = np.arange(max_lag + 1)
    return {"lag": ("lag", k * h, {"long_name": "lag", "units": units}),
            "lag_step": ("lag", k * steps, {"long_name": "lag in integrator steps", "units": "1"})}


def _setup(obj: xr.Dataset | xr.DataArray, var: str | None, dim: str, ensemble: str | Iterable[str] | None,
           max_lag: int | None, owner: str,
           default_max_lag: Callable[[int], int]) -> tuple[xr.DataArray, str, tuple[str, ...], int, int]:
    da = select(obj, var, ("x", "energy"), owner)
    (dim,) = check_dims("dim", dim, da, owner)
    ens = check_dims("ensemble", ensemble, da, owner, default=("replica",))
    if dim in ens:
        raise ValidationError(f"The 'ensemble' parameter of {owner} must not contain the lag dimension {dim!r}.")
    n = da.sizes[dim]
    if n < 4:
        raise ValidationError(f"{owner} needs at least 4 records along {dim!r}. Got {n}.")
    if max_lag is None:
        max_lag = default_max_lag(n)
    max_lag = check_int("max_lag", max_lag, owner, ge=1, le=n - 1)
    return da, dim, ens, n, max_lag


def autocorrelation(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dim: str = "time",
                    ensemble: str | Iterable[str] | None = None, max_lag: int | None = None,
                    center: str = "ensemble", adjusted: bool = True, min_replicas: int = 8) -> xr.Dataset:
    r"""Ensemble-averaged autocorrelation function along ``dim``, with standard errors.

    .. math::
        \hat\rho(k) = \frac{\sum_r \hat C_r(k)}{\sum_r \hat C_r(0)},\qquad
        \hat C_r(k) = \frac{1}{n-k}\sum_{t=0}^{n-k-1} (x_{r,t}-\bar x)(x_{r,t+k}-\bar x),

    with :math:`\bar x` the mean over the ensemble and time (``center="ensemble"``, right for a
    stationary ensemble) or each replica's own time mean (``center="series"``), and :math:`1/n` in
    place of :math:`1/(n-k)` if ``adjusted=False`` (the positive-definite estimator; Priestley 1981,
    §5.3). The standard error treats replicas as independent: with
    :math:`R \ge` ``min_replicas`` it is the spread over replicas of the linearised ratio,
    :math:`\mathrm{sd}_r(\hat C_r(k)-\hat\rho(k)\hat C_r(0))/(\sqrt R\,\overline{C(0)})`; otherwise
    Bartlett's formula :math:`\mathrm{Var}\,\hat\rho(k) \approx (1+2\sum_{j<k}\hat\rho_j^2)/(nR)`
    (Bartlett 1946; Box & Jenkins 1976, eq. 2.1.13).

    Parameters
    ----------
    obj : Dataset or DataArray
        The data; from a Dataset, ``var`` (default ``x``, else ``energy``) is used.
    dim : str
        The lag dimension (default ``time``; its coordinate must be uniformly spaced).
    ensemble : str or sequence of str, optional
        Dimensions of independent realisations to average over (default ``replica`` if present).
        Other dimensions (``dim`` coordinate index, swept parameters) are kept.
    max_lag : int, optional
        Largest lag in records (default ``min(n - 1, max(10, n // 4))``).

    Returns
    -------
    Dataset
        ``value`` and ``standard_error`` along the new dimension ``lag`` (coordinate in the units of
        ``time``, and ``lag_step`` in integrator steps).
    """
    owner = _OWNER_ACF
    check_choice("center", center, ("ensemble", "series"), owner)
    min_replicas = check_int("min_replicas", min_replicas, owner, ge=2)
    da, dim, ens, n, max_lag = _setup(obj, var, dim, ensemble, max_lag, owner, lambda n: min(n - 1, max(10, n // 4)))
    acov = _ensemble_autocovariance(da.astype(float), dim, ens, max_lag, center, bool(adjusted))
    mean_acov = acov.mean(ens) if ens else acov
    c0 = mean_acov.isel(lag=0)
    rho = mean_acov / c0
    R = int(np.prod([da.sizes[e] for e in ens])) if ens else 1
    if ens and R >= min_replicas:
        stacked = acov.stack(_ens=ens) if len(ens) > 1 else acov.rename({ens[0]: "_ens"})
        resid = stacked - rho * stacked.isel(lag=0)
        count = stacked.isel(lag=0).count("_ens")
        se = resid.std("_ens", ddof=1) / (np.sqrt(count) * np.abs(c0))
        method = "spread over independent replicas (linearised ratio)"
    else:
        sq = (rho**2).cumsum("lag") - rho**2  # sum_{j<k} rho_j^2, with rho_0^2 = 1 included
        lag_positive = xr.DataArray(np.arange(max_lag + 1) > 0, dims="lag")
        se = sqrt((2.0 * sq - 1.0).clip(min=1.0) / (n * R)).where(lag_positive, 0.0)
        method = "Bartlett's formula"
    coords = _lag_coords(da, dim, max_lag)
    rho = rho.assign_coords(coords)
    se = se.assign_coords(coords)
    return estimate(rho, se, long_name=f"autocorrelation of {da.attrs.get('long_name', da.name or 'data')}",
                    units="1", estimator="ensemble-averaged autocovariance ratio C(k)/C(0)", method=method)


def _sokal_window(rho: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrated time with Sokal's automatic window: smallest M with M >= c * tau(M)."""
    taus = 2.0 * np.cumsum(rho, axis=-1) - 1.0
    m = np.arange(rho.shape[-1])
    ok = m >= c * taus
    has = np.any(ok, axis=-1)
    M = np.where(has, np.argmax(ok, axis=-1), rho.shape[-1] - 1)
    tau = np.take_along_axis(taus, M[..., None], axis=-1)[..., 0]
    return tau, M.astype(float), has


def _geyer_window(rho: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geyer's initial monotone sequence estimator (Geyer 1992, Stat. Sci. 7, 473)."""
    L = (rho.shape[-1] // 2) * 2
    gamma = rho[..., :L:2] + rho[..., 1:L:2]
    pos = gamma > 0
    first_neg = np.where(np.any(~pos, axis=-1), np.argmax(~pos, axis=-1), gamma.shape[-1])
    k = np.arange(gamma.shape[-1])
    mono = np.minimum.accumulate(np.where(k < first_neg[..., None], gamma, 0.0), axis=-1)
    tau = -1.0 + 2.0 * np.sum(np.where(k < first_neg[..., None], mono, 0.0), axis=-1)
    return tau, 2.0 * first_neg - 1.0, first_neg < gamma.shape[-1]


def integrated_autocorrelation_time(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dim: str = "time",
                                    ensemble: str | Iterable[str] | None = None, method: str = "sokal",
                                    c: float = 5.0, max_lag: int | None = None) -> xr.Dataset:
    r"""Integrated autocorrelation time with an automatic window, in time units and in records.

    .. math::
        \tau = 1 + 2\sum_{k=1}^{M}\hat\rho(k)

    (in records), from the ensemble-averaged autocorrelation :func:`autocorrelation`. ``method``:

    * ``"sokal"`` — the window M is the smallest with :math:`M \ge c\,\tau(M)` (Sokal 1997,
      "Monte Carlo methods in statistical mechanics", §3; with ensemble averaging as in Goodman &
      Weare 2010 / emcee); ``c = 5`` suits nearly exponential decay;
    * ``"geyer"`` — Geyer's initial monotone sequence (Geyer 1992, Stat. Sci. 7, 473).

    Standard error :math:`\tau\sqrt{2(2M+1)/N}` with N the number of samples (records × replicas)
    (Madras & Sokal 1988, J. Stat. Phys. 50, 109, eq. 2.20). ``value`` is :math:`\tau\,h` with h
    the record spacing, so the variance of a time average over a duration :math:`\mathcal T` is
    :math:`\mathrm{Var}(x)\,\tau h/\mathcal T`; for an Ornstein–Uhlenbeck process with rate k it
    tends to 2/k as h → 0. ``records`` holds τ in records and ``window`` the M used;
    ``converged`` is False where no window satisfied the criterion within ``max_lag`` (then τ is a
    lower bound: run longer).
    """
    owner = "integrated_autocorrelation_time"
    check_choice("method", method, ("sokal", "geyer"), owner)
    c = check_real("c", c, owner, gt=0.0)
    da, dim, ens, n, max_lag = _setup(obj, var, dim, ensemble, max_lag, owner, lambda n: n - 1)
    acf = autocorrelation(da, dim=dim, ensemble=ens, max_lag=max_lag)["value"]
    core = _sokal_window if method == "sokal" else _geyer_window
    tau, M, conv = xr.apply_ufunc(
        core, acf.drop_vars(["lag", "lag_step"]), input_core_dims=[["lag"]], output_core_dims=[[], [], []],
        dask="parallelized", output_dtypes=[float, float, bool], kwargs={"c": c},
    )
    N = _n_samples(da, dim, ens)
    se = tau * np.sqrt(2.0 * (2.0 * M + 1.0) / N)
    h, _, units = record_spacing(da, dim)
    return estimate(tau * h, se * h, long_name="integrated autocorrelation time", units=units,
                    estimator=f"tau = 1 + 2 sum_(k<=M) rho(k), window by {method}",
                    method="Madras-Sokal variance formula",
                    records=tau.assign_attrs(long_name="integrated autocorrelation time in records", units="1"),
                    window=M.assign_attrs(long_name="summation window M in records", units="1"),
                    converged=conv.assign_attrs(long_name="window criterion met within max_lag", units="1"))


def _n_samples(da: xr.DataArray, dim: str, ens: tuple[str, ...]) -> xr.DataArray:
    """Records × number of fully finite series in the ensemble."""
    finite = da.notnull().all(dim)
    return finite.sum(ens) * da.sizes[dim] if ens else finite * da.sizes[dim]


def effective_sample_size(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dim: str = "time",
                          ensemble: str | Iterable[str] | None = None, method: str = "sokal",
                          c: float = 5.0) -> xr.Dataset:
    r"""Effective number of independent samples, :math:`N_\mathrm{eff} = N/\tau` (τ in records).

    N counts records × replicas; τ is from :func:`integrated_autocorrelation_time` (Sokal 1997, §3),
    so the standard error of a mean over all samples is :math:`\sqrt{\mathrm{Var}(x)/N_\mathrm{eff}}`.
    The standard error of :math:`N_\mathrm{eff}` follows from that of τ by the delta method.
    """
    tau = integrated_autocorrelation_time(obj, var, dim=dim, ensemble=ensemble, method=method, c=c)
    da = select(obj, var, ("x", "energy"), "effective_sample_size")
    ens = check_dims("ensemble", ensemble, da, "effective_sample_size", default=("replica",))
    N = _n_samples(da, dim, ens)
    t = tau["records"]
    ess = N / t
    se = ess * tau["standard_error"] / tau["value"]
    return estimate(ess, se, long_name="effective sample size", units="1", estimator="N / tau",
                    method="delta method from the standard error of tau", n_samples=N)
