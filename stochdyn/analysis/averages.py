"""Averages over an ensemble and over time, with standard errors that respect correlation.

The one rule used throughout stochdyn.analysis: replicas are independent, records of one replica are
not. So the standard error of an average over replicas (and time, and coordinates) comes from the
spread of the per-replica averages whenever there are enough replicas; with few replicas it comes
from the integrated autocorrelation time of the series.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import xarray as xr

from .._validation import check_int
from ._base import check_dims, estimate, select, sqrt
from .correlation import integrated_autocorrelation_time

__all__ = ["average", "ratio"]


def _stderr(da: xr.DataArray, dims: tuple[str, ...], replica_dim: str, time_dim: str, min_replicas: int) -> tuple[xr.DataArray, str]:
    if replica_dim in dims and da.sizes[replica_dim] >= min_replicas:
        per = da.mean([d for d in dims if d != replica_dim]) if len(dims) > 1 else da
        n = per.count(replica_dim)
        return per.std(replica_dim, ddof=1) / np.sqrt(n), "spread of per-replica averages (replicas independent)"
    if time_dim in dims and da.sizes[time_dim] >= 4:
        ens = (replica_dim,) if replica_dim in dims else ()
        inner = [d for d in dims if d not in (replica_dim, time_dim)]
        series = da.mean(inner) if inner else da
        tau = integrated_autocorrelation_time(series, dim=time_dim, ensemble=ens)["records"]
        n = series.count((time_dim,) + ens)
        var = series.var((time_dim,) + ens, ddof=1)
        return sqrt(var * tau.clip(min=1.0) / n), "integrated autocorrelation time of the series (Sokal window)"
    n = da.count(dims)
    return da.std(dims, ddof=1) / np.sqrt(n), "independent samples"


def average(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dims: str | Iterable[str] | None = None,
            replica_dim: str = "replica", time_dim: str = "time", min_replicas: int = 8) -> xr.Dataset:
    r"""Mean over ``dims`` with its standard error (NaN entries, e.g. diverged replicas, are skipped).

    Standard error, in order of preference:

    1. ``replica_dim`` is averaged and has at least ``min_replicas`` entries: batch means with
       replicas as batches, :math:`\mathrm{SE} = \mathrm{sd}_r(\bar x_r)/\sqrt R`, where
       :math:`\bar x_r` averages replica r over the other ``dims`` — exact for independent replicas
       whatever the correlation in time or between coordinates;
    2. otherwise, ``time_dim`` is averaged: :math:`\mathrm{SE}^2 = \mathrm{Var}(x)\,\tau/N` with τ
       the integrated autocorrelation time in records (Sokal 1997, §3) of the series averaged over
       the other non-time dims, N the number of samples;
    3. otherwise the samples are taken as independent: :math:`\mathrm{sd}/\sqrt N`.

    Parameters
    ----------
    obj : Dataset or DataArray
        From a Dataset, ``var`` (default ``x``, else ``energy``).
    dims : str or sequence of str, optional
        Dimensions to average over (default: all of ``replica``, ``time``, ``individual`` present).

    Returns
    -------
    Dataset
        ``value`` and ``standard_error`` over the remaining dimensions; attribute ``method`` says
        which standard error was used.
    """
    owner = "average"
    da = select(obj, var, ("x", "energy"), owner)
    dims = check_dims("dims", dims, da, owner, default=(replica_dim, time_dim, "individual"))
    min_replicas = check_int("min_replicas", min_replicas, owner, ge=2)
    value = da.mean(dims)
    se, method = _stderr(da, dims, replica_dim, time_dim, min_replicas)
    return estimate(value, se, long_name=f"mean of {da.attrs.get('long_name', da.name or 'data')}",
                    units=da.attrs.get("units", "1"), estimator="sample mean", method=method)


def ratio(numerator: xr.DataArray, denominator: xr.DataArray, *, dims: str | Iterable[str] | None = None,
          replica_dim: str = "replica", time_dim: str = "time", min_replicas: int = 8, long_name: str = "ratio",
          units: str = "1") -> xr.Dataset:
    r"""Ratio of means :math:`\hat r = \langle a\rangle/\langle b\rangle` with a delta-method standard error.

    :math:`\mathrm{SE}(\hat r) = \mathrm{SE}\big(\langle a - \hat r\, b\rangle\big)/|\langle b\rangle|`
    (linearisation of the ratio; e.g. Cochran 1977, *Sampling Techniques*, §6.3), where the standard
    error of the mean of the residual is computed as in :func:`average`.
    """
    owner = "ratio"
    a = numerator
    b = denominator
    dims = check_dims("dims", dims, a, owner, default=(replica_dim, time_dim, "individual"))
    min_replicas = check_int("min_replicas", min_replicas, owner, ge=2)
    mb = b.mean(dims)
    r = a.mean(dims) / mb
    se, method = _stderr(a - r * b, dims, replica_dim, time_dim, min_replicas)
    return estimate(r, se / np.abs(mb), long_name=long_name, units=units, estimator="ratio of means",
                    method=f"delta method; {method}")
