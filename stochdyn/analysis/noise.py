"""Gradient-noise statistics: the noise scale and signal-to-noise ratio of mini-batch gradients.

For per-example gradients :math:`g_i` with mean :math:`G` and covariance :math:`\\Sigma`, a
mini-batch of B draws with replacement has mean G and covariance :math:`\\Sigma/B`, so
:math:`E|g_B|^2 = |G|^2 + \\mathrm{tr}\\Sigma/B`. The *gradient noise scale*
:math:`B_\\mathrm{noise} = \\mathrm{tr}\\Sigma/|G|^2` is the batch size at which signal and noise are
equal (McCandlish, Kaplan, Amodei et al. 2018, "An empirical model of large-batch training",
arXiv:1812.06162, §2.2 "B_simple"), and the signal-to-noise ratio of a batch-B gradient is
:math:`\\mathrm{SNR} = B|G|^2/\\mathrm{tr}\\Sigma = B/B_\\mathrm{noise}`.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int, check_real
from ._base import check_burn_in, check_dims, estimate, select
from .averages import average, ratio
from .stationarity import discard_burn_in

__all__ = ["gradient_noise_statistics", "gradient_noise"]

_QUANTITIES = ["gradient_norm_sq", "trace_covariance", "noise_scale", "signal_to_noise"]


def _stack(parts: dict[str, xr.Dataset], long_name: str, method: str) -> xr.Dataset:
    value = xr.concat([parts[q]["value"] for q in _QUANTITIES], dim="quantity", coords="minimal",
                      compat="override").assign_coords(quantity=_QUANTITIES)
    se = xr.concat([parts[q]["standard_error"] for q in _QUANTITIES], dim="quantity", coords="minimal",
                   compat="override").assign_coords(quantity=_QUANTITIES)
    return estimate(value, se, long_name=long_name, units="1", estimator="noise scale tr(Sigma)/|G|^2 and "
                    "SNR B|G|^2/tr(Sigma)", method=method)


def gradient_noise_statistics(grads: xr.DataArray | Any, *, batch_size: int = 1, sample_dim: str = "sample",
                              param_dim: str = "param") -> xr.Dataset:
    r"""Noise statistics of a set of per-example gradients (e.g. all N examples at one parameter value).

    With :math:`\bar g` the sample mean of n gradients and :math:`S = \frac{1}{n-1}\sum_i|g_i-\bar g|^2`
    (unbiased for :math:`\mathrm{tr}\Sigma`), :math:`\widehat{|G|^2} = |\bar g|^2 - S/n` is unbiased for
    :math:`|G|^2`; then :math:`B_\mathrm{noise} = S/\widehat{|G|^2}` and
    :math:`\mathrm{SNR} = B\,\widehat{|G|^2}/S` (McCandlish et al. 2018, App. A). Standard errors
    treat the n gradients as independent draws (for the whole finite dataset they describe sampling
    from it with replacement): :math:`\mathrm{SE}(S)` from the spread of :math:`|g_i-\bar g|^2`,
    :math:`\mathrm{SE}(\widehat{|G|^2}) \approx 2\sqrt{\bar g^\top \hat\Sigma\,\bar g/n}`, the ratios by
    the delta method (ignoring their covariance).

    Parameters
    ----------
    grads : DataArray or array (n, d)
        Per-example gradients with dimensions ``sample_dim`` and ``param_dim`` (other dims kept).
    batch_size : int
        B, for the signal-to-noise ratio.

    Returns
    -------
    Dataset
        ``value``/``standard_error`` along ``quantity`` = gradient_norm_sq, trace_covariance,
        noise_scale, signal_to_noise.
    """
    owner = "gradient_noise_statistics"
    B = check_int("batch_size", batch_size, owner, ge=1)
    if not isinstance(grads, xr.DataArray):
        arr = np.asarray(grads, dtype=float)
        if arr.ndim != 2:
            raise ValidationError(f"The 'grads' parameter of {owner} must be (n, d) or a DataArray. Got shape {arr.shape}.")
        grads = xr.DataArray(arr, dims=(sample_dim, param_dim))
    check_dims("sample_dim", sample_dim, grads, owner)
    check_dims("param_dim", param_dim, grads, owner)
    n = grads.sizes[sample_dim]
    if n < 2:
        raise ValidationError(f"{owner} needs at least 2 gradients along {sample_dim!r}. Got {n}.")
    gbar = grads.mean(sample_dim)
    dev = grads - gbar
    d2 = (dev**2).sum(param_dim)
    S = d2.sum(sample_dim) / (n - 1)
    se_S = d2.std(sample_dim, ddof=1) / np.sqrt(n)
    G2 = (gbar**2).sum(param_dim) - S / n
    proj = (dev * gbar).sum(param_dim)
    se_G2 = 2.0 * proj.std(sample_dim, ddof=1) / np.sqrt(n)
    ns = S / G2
    se_ns = np.abs(ns) * np.sqrt((se_S / S) ** 2 + (se_G2 / G2) ** 2)
    snr = B / ns
    se_snr = snr * se_ns / np.abs(ns)
    parts = {q: xr.Dataset({"value": v, "standard_error": s}) for q, v, s in
             zip(_QUANTITIES, (G2, S, ns, snr), (se_G2, se_S, se_ns, se_snr))}
    out = _stack(parts, "gradient noise statistics of per-example gradients", "independent draws, delta method")
    out.attrs["batch_size"] = B
    return out


def gradient_noise(ds: xr.Dataset, *, trace_var: str = "grad_var", norm_var: str = "grad_norm",
                   batch_size: Any = "batch_size", burn_in: int | str | None = None,
                   dims: str | Iterable[str] | None = None) -> xr.Dataset:
    r"""Gradient noise scale and signal-to-noise ratio over a run, from per-step mini-batch statistics.

    Each step records the mini-batch gradient norm :math:`|g_B|` (``norm_var``) and an unbiased
    estimate of :math:`\mathrm{tr}\Sigma` (``trace_var``). Since :math:`E|g_B|^2 = |G|^2 +
    \mathrm{tr}\Sigma/B`, :math:`|g_B|^2 - \mathrm{tr}\Sigma/B` estimates :math:`|G|^2` without bias.
    Over replicas and records (after ``burn_in``):
    :math:`B_\mathrm{noise} = \langle\mathrm{tr}\Sigma\rangle/\langle|g_B|^2-\mathrm{tr}\Sigma/B\rangle`,
    a ratio of averages, as McCandlish et al. (2018, App. A.1) recommend over an average of
    ratios; :math:`\mathrm{SNR} = \langle B(|g_B|^2 - \mathrm{tr}\Sigma/B)\rangle/\langle\mathrm{tr}\Sigma\rangle`.
    Standard errors: :func:`average` and :func:`ratio` (replicas as batches). ``batch_size`` is a
    number, or the name of a recorded variable or of an integrator attribute.

    Returns
    -------
    Dataset
        ``value``/``standard_error`` along ``quantity`` = gradient_norm_sq, trace_covariance,
        noise_scale, signal_to_noise (for the batch size of each step).
    """
    owner = "gradient_noise"
    burn_in = check_burn_in(burn_in, owner)
    if burn_in is not None:
        ds = discard_burn_in(ds, burn_in)
    tr = select(ds, trace_var, trace_var, owner).astype(float)
    g = select(ds, norm_var, norm_var, owner).astype(float)
    B: xr.DataArray | float  # recorded per step, or one number
    if isinstance(batch_size, str):
        if batch_size in ds.data_vars:
            B = ds[batch_size].astype(float)
        else:
            from ._base import run_parameter

            val = run_parameter(ds, batch_size)
            if val is None:
                raise ValidationError(f"{owner} could not find the batch size {batch_size!r} in the data; pass a number.")
            B = float(check_real("batch_size", val, owner, gt=0.0))
    else:
        B = float(check_real("batch_size", batch_size, owner, gt=0.0))
    dims = check_dims("dims", dims, tr, owner, default=("replica", "time"))
    signal = g**2 - tr / B
    G2 = average(signal, dims=dims)
    S = average(tr, dims=dims)
    ns = ratio(tr, signal, dims=dims)
    snr = ratio(B * signal, tr, dims=dims)
    parts = {"gradient_norm_sq": G2, "trace_covariance": S, "noise_scale": ns, "signal_to_noise": snr}
    return _stack(parts, "gradient noise statistics over the run", ns.attrs["method"])
