"""Where does the variance come from? Decomposition by the law of total variance, ensemble mean and
variance over time, quantile bands, loss-fluctuation amplitude against batch size, power-law fits."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_array, check_bool
from ._base import check_burn_in, check_dims, estimate, run_parameter, select, sqrt
from .averages import average
from .stationarity import discard_burn_in

__all__ = [
    "variance_decomposition",
    "ensemble_mean",
    "ensemble_variance",
    "quantile_bands",
    "fluctuation_amplitude",
    "power_law_fit",
]

_SAMPLE_DIMS = ("replica", "time", "individual")


def _group_stats(da: xr.DataArray, dims: tuple[str, ...], groups: str) -> tuple[xr.DataArray, ...]:
    """Per-group count, mean and (1/n) variance over ``dims``, grouped by a dimension or a coordinate."""
    if groups in dims:
        inner = [d for d in dims if d != groups]
        n = da.count(inner) if inner else da.notnull().astype(float)
        m = da.mean(inner) if inner else da
        w = da.var(inner) if inner else xr.zeros_like(da)
        return n.rename({groups: "group"}), m.rename({groups: "group"}), w.rename({groups: "group"})
    if groups not in da.coords or not set(da[groups].dims) <= set(dims):
        raise ValidationError(f"The 'groups' parameter of variance_decomposition must be one of the dims {dims} or a "
                              f"coordinate along them. Got {groups!r}.")
    g = da.stack(_sample=dims).groupby(groups)
    return tuple(r.rename({groups: "group"}) for r in (g.count("_sample"), g.mean("_sample"), g.var("_sample")))


def variance_decomposition(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, groups: str = "replica",
                           dims: str | Iterable[str] | None = None, unbiased: bool = False) -> xr.Dataset:
    r"""Split the variance over ``dims`` into between-group and within-group parts (law of total variance).

    .. math::
        \underbrace{\tfrac1N\sum_{g,i}(x_{gi}-\bar x)^2}_{\text{total}}
        = \underbrace{\sum_g \tfrac{n_g}{N}(\bar x_g-\bar x)^2}_{\text{between}}
        + \underbrace{\sum_g \tfrac{n_g}{N} s_g^2}_{\text{within}},\qquad s_g^2 = \tfrac1{n_g}\sum_i(x_{gi}-\bar x_g)^2,

    exact for the sample. ``groups`` is a dimension among ``dims`` (each index a group: ``"replica"``
    with ``dims=("replica", "time")`` splits ensemble spread from temporal fluctuation; ``"example"``
    with augmentations along another dim splits between-example from within-augmentation variance) or
    a coordinate along ``dims`` whose labels define the groups. Standard errors treat groups as
    independent draws: each part is a weighted mean of per-group terms, with a ratio-estimator
    standard error over groups.

    With ``unbiased=True`` (balanced groups of n, G groups), the one-way random-effects ANOVA
    estimates of the *population* variance components are returned instead:
    :math:`\hat\sigma_w^2 = \frac{n}{n-1}\text{within}`,
    :math:`\hat\sigma_b^2 = \frac{G}{G-1}\text{between} - \hat\sigma_w^2/n`, total their sum
    (Searle, Casella & McCulloch 1992, *Variance Components*, §3.5). For a mean of M examples with A
    augmentations each, :math:`\mathrm{Var} = \sigma_b^2/M + \sigma_w^2/(MA)`.

    Returns
    -------
    Dataset
        ``value`` and ``standard_error`` along ``component`` = total, between, within, and
        ``fraction_between``.
    """
    owner = "variance_decomposition"
    da = select(obj, var, ("x", "energy"), owner)
    dims = check_dims("dims", dims, da, owner, default=_SAMPLE_DIMS)
    unbiased = check_bool("unbiased", unbiased, owner)
    if len(dims) < 2 and groups in dims:
        raise ValidationError(f"{owner} needs a dimension inside the groups besides {groups!r}; 'dims' = {dims}.")
    n, m, w = _group_stats(da, dims, groups)
    N = n.sum("group")
    G = n.count("group")
    grand = (n * m).sum("group") / N
    b_term = (m - grand) ** 2
    parts = {"between": b_term, "within": w, "total": w + b_term}
    val: dict[str, xr.DataArray] = {}
    se: dict[str, xr.DataArray] = {}
    for k, a in parts.items():
        v = (n * a).sum("group") / N
        resid = n * (a - v)
        val[k] = v
        se[k] = sqrt((resid**2).sum("group") * G / (G - 1)) / N
    if unbiased:
        nbar = N / G
        sw = val["within"] * nbar / (nbar - 1)
        sb = val["between"] * G / (G - 1) - sw / nbar
        val = {"between": sb, "within": sw, "total": sb + sw}
        se = {"between": se["between"] * G / (G - 1), "within": se["within"] * nbar / (nbar - 1),
              "total": se["total"] * G / (G - 1)}
    comp = ["total", "between", "within"]
    value = xr.concat([val[c] for c in comp], dim="component").assign_coords(component=comp)
    stderr = xr.concat([se[c] for c in comp], dim="component").assign_coords(component=comp)
    units = da.attrs.get("units", "1")
    vunits = "1" if units in ("1", "") else f"({units})^2"
    return estimate(value, stderr, long_name=f"variance of {da.attrs.get('long_name', da.name or 'data')}",
                    units=vunits, estimator="law of total variance" + (" (ANOVA components)" if unbiased else ""),
                    method="ratio estimator over independent groups",
                    fraction_between=(val["between"] / val["total"]).assign_attrs(long_name="between / total", units="1"))


def ensemble_mean(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dim: str | Iterable[str] = "replica") -> xr.Dataset:
    r"""Mean over the ensemble at each time, with standard error :math:`s/\sqrt R` (replicas independent)."""
    da = select(obj, var, ("x", "energy", "population_mean"), "ensemble_mean")
    dims = check_dims("dim", dim, da, "ensemble_mean")
    n = da.count(dims)
    return estimate(da.mean(dims), da.std(dims, ddof=1) / np.sqrt(n),
                    long_name=f"ensemble mean of {da.attrs.get('long_name', da.name or 'data')}",
                    units=da.attrs.get("units", "1"), estimator="sample mean over replicas", method="independent replicas")


def ensemble_variance(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, dim: str | Iterable[str] = "replica") -> xr.Dataset:
    r"""Unbiased variance over the ensemble at each time, :math:`s^2 = \frac{1}{R-1}\sum_r (x_r-\bar x)^2`.

    Standard error :math:`\sqrt{(\hat\mu_4 - s^4)/R}` (the large-R variance of :math:`s^2`, e.g. Kendall
    & Stuart, vol. 1, §10.5; :math:`2s^4/(R-1)` for Gaussian data), from the sample fourth moment.
    """
    da = select(obj, var, ("x", "energy", "population_mean"), "ensemble_variance")
    dims = check_dims("dim", dim, da, "ensemble_variance")
    n = da.count(dims)
    dev2 = (da - da.mean(dims)) ** 2
    s2 = dev2.sum(dims) / (n - 1)
    mu4 = (dev2**2).mean(dims)
    se = np.sqrt(((mu4 - s2**2) / n).clip(min=0.0))
    units = da.attrs.get("units", "1")
    return estimate(s2, se, long_name=f"ensemble variance of {da.attrs.get('long_name', da.name or 'data')}",
                    units="1" if units in ("1", "") else f"({units})^2", estimator="unbiased sample variance over replicas",
                    method="fourth-moment formula")


def quantile_bands(obj: xr.Dataset | xr.DataArray, var: str | None = None, *,
                   quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), dim: str | Iterable[str] = "replica") -> xr.DataArray:
    """Quantiles over the ensemble at each time (NaN replicas skipped): a ``quantile`` dimension is added."""
    da = select(obj, var, ("x", "energy", "population_mean"), "quantile_bands")
    dims = check_dims("dim", dim, da, "quantile_bands")
    q = check_array("quantiles", quantiles, "quantile_bands", ndim=1, ge=0.0, min_size=1)
    if np.any(q > 1):
        raise ValidationError(f"The 'quantiles' parameter of quantile_bands must lie in [0, 1]. Got {list(quantiles)}.")
    if da.chunks is not None:
        da = da.chunk({d: -1 for d in dims})
    import warnings

    with warnings.catch_warnings():  # a time where every replica is NaN (e.g. a loss not defined at step 0) is NaN
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        out = da.quantile(q, dim=dims, skipna=True)
    return out.assign_attrs(da.attrs)


def _collect_runs(runs: Any, by: str) -> xr.Dataset | list[tuple[float, xr.Dataset]]:
    if isinstance(runs, xr.Dataset):
        return runs
    if isinstance(runs, Mapping):
        return [(float(k), v) for k, v in runs.items()]
    items = list(runs)
    out = []
    for ds in items:
        val = ds.attrs.get(f"integrator_{by}", run_parameter(ds, by))
        if val is None:
            raise ValidationError(f"fluctuation_amplitude could not find {by!r} in a run's attributes; pass a mapping "
                                  f"{{{by}: dataset}} instead.")
        out.append((float(val), ds))
    return out


def fluctuation_amplitude(runs: Any, var: str | None = None, *, by: str = "batch_size",
                          burn_in: int | str | None = "auto") -> xr.Dataset:
    r"""Amplitude of the loss fluctuations of each run, against ``by`` (default the batch size).

    :math:`A = \sqrt{\langle (\ell_{r,t} - \bar\ell_r)^2\rangle}`: the root-mean-square deviation of the
    recorded loss from each replica's own time average after ``burn_in``, averaged over replicas and
    records, with the standard error of the mean square from :func:`average` propagated by the delta
    method, :math:`\mathrm{SE}(A) = \mathrm{SE}(A^2)/(2A)`. ``var`` defaults to the mini-batch loss
    ``batch_loss`` (else ``loss``, else ``energy``, the full-batch loss).

    Parameters
    ----------
    runs : Dataset, mapping or sequence of Datasets
        A sweep Dataset with dimension ``by``; a mapping ``{value of by: Dataset}``; or Datasets
        whose integrator attributes hold ``by``.
    """
    owner = "fluctuation_amplitude"
    burn_in = check_burn_in(burn_in, owner)
    collected = _collect_runs(runs, by)
    if isinstance(collected, xr.Dataset):
        pairs = None
        datasets = [collected]
    else:
        if not collected:
            raise ValidationError(f"{owner} needs at least one run.")
        pairs = sorted(collected, key=lambda kv: kv[0])
        datasets = [ds for _, ds in pairs]
    results = []
    for ds in datasets:
        da = select(discard_burn_in(ds, burn_in) if burn_in is not None else ds, var,
                    ("batch_loss", "loss", "energy"), owner)
        dev2 = (da - da.mean("time")) ** 2
        ms = average(dev2, dims=[d for d in ("replica", "time") if d in dev2.dims])
        amp = np.sqrt(ms["value"])
        results.append(estimate(amp, ms["standard_error"] / (2.0 * amp), long_name=f"fluctuation amplitude of "
                                f"{da.attrs.get('long_name', da.name)}", units=da.attrs.get("units", "1"),
                                estimator="rms deviation from each replica's time mean", method=ms.attrs["method"]))
    if pairs is None:
        return results[0]
    out = xr.concat(results, dim=by, combine_attrs="override").assign_coords({by: [k for k, _ in pairs]})
    return out


def power_law_fit(est: xr.Dataset, dim: str) -> xr.Dataset:
    r"""Weighted least-squares fit of :math:`y = c\,x^{a}` to an estimate along ``dim``.

    Fits :math:`\log y = \log c + a\log x` with weights :math:`(y/\mathrm{SE}_y)^2` (the variance of
    :math:`\log y` is :math:`(\mathrm{SE}_y/y)^2` by the delta method); parameter standard errors from
    the weighted normal equations, scaled by :math:`\sqrt{\chi^2/\nu}` when that exceeds 1 (Bevington &
    Robinson, *Data Reduction*, §6.4). Returns ``value``/``standard_error`` along ``parameter`` =
    exponent, prefactor, with attribute ``chi2_per_dof``.
    """
    owner = "power_law_fit"
    if not isinstance(est, xr.Dataset) or "value" not in est or dim not in est["value"].dims:
        raise ValidationError(f"{owner} takes an estimate Dataset (value, standard_error) with dimension {dim!r}.")
    if est["value"].ndim != 1:
        raise ValidationError(f"{owner} fits one curve: select the other dimensions first. Got {est['value'].dims}.")
    x = np.asarray(est[dim].values, dtype=float)
    y = np.asarray(est["value"].values, dtype=float)
    s = np.asarray(est["standard_error"].values, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(s) & (s > 0)
    if ok.sum() < 2:
        raise ValidationError(f"{owner} needs at least two positive points with positive standard errors.")
    X = np.column_stack([np.log(x[ok]), np.ones(ok.sum())])
    w = (y[ok] / s[ok]) ** 2
    A = X.T @ (w[:, None] * X)
    coef = np.linalg.solve(A, X.T @ (w * np.log(y[ok])))
    cov = np.linalg.inv(A)
    resid = np.log(y[ok]) - X @ coef
    dof = int(ok.sum()) - 2
    chi2 = float(np.sum(w * resid**2) / dof) if dof > 0 else float("nan")
    if dof > 0 and chi2 > 1:
        cov = cov * chi2
    a, lc = coef
    se_a, se_lc = np.sqrt(np.diag(cov))
    c = float(np.exp(lc))
    out = estimate(xr.DataArray([a, c], dims="parameter", coords={"parameter": ["exponent", "prefactor"]}),
                   xr.DataArray([se_a, c * se_lc], dims="parameter", coords={"parameter": ["exponent", "prefactor"]}),
                   long_name=f"power law fit against {dim}", units="1", estimator="weighted least squares in log-log",
                   method="normal equations, scaled by sqrt(chi2/dof) if > 1")
    out.attrs["chi2_per_dof"] = chi2
    return out
