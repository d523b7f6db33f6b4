"""Stationarity and agreement with the Gibbs distribution.

Burn-in detection (MSER on the ensemble mean), Geweke's drift test, stationary histograms with the
Gibbs marginal density overlaid (normalised by quadrature), and KL / chi-square / Kolmogorov–Smirnov
comparisons whose sample size is the *effective* one: correlated samples count less than
independent ones. Correlation is measured by batch means — replicas are independent batches; a
few long runs are cut into contiguous time blocks — so no model of the dynamics is assumed.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int, check_real
from ._base import (check_burn_in, check_dims, estimate, landscape_of, run_temperature, select)
from .averages import average

__all__ = [
    "detect_burn_in",
    "discard_burn_in",
    "geweke_test",
    "GibbsMarginal",
    "gibbs_marginal",
    "stationary_histogram",
    "kl_divergence",
    "chi_square_test",
    "ks_test",
]


# ---------------------------------------------------------------------------------------------
# burn-in
# ---------------------------------------------------------------------------------------------
def _mser(y: np.ndarray, batch: int) -> int:
    """MSER-m truncation point (in records) of one series (White 1997; White, Cobb & Spratt 2000)."""
    nb = y.size // batch
    if nb < 4:
        return 0
    b = y[: nb * batch].reshape(nb, batch).mean(axis=1)
    # MSER(d) = sum_{j>=d} (b_j - mean_{>=d})^2 / (nb - d)^2, for d <= nb/2
    rev = b[::-1]
    n = np.arange(1, nb + 1)
    s1 = np.cumsum(rev)[::-1]
    s2 = np.cumsum(rev * rev)[::-1]
    cnt = n[::-1].astype(float)
    sse = s2 - s1 * s1 / cnt
    mser = sse / cnt**2
    d = int(np.argmin(mser[: nb // 2 + 1]))
    return d * batch


def detect_burn_in(obj: xr.Dataset | xr.DataArray, var: str | Iterable[str] | None = None, *, batch: int = 5,
                   replica_dim: str = "replica", time_dim: str = "time") -> int:
    r"""Number of initial records to discard, by MSER-``batch`` on the ensemble mean.

    For each observed series :math:`y_t` (the mean over replicas — and individuals — of each
    variable and coordinate), averaged in batches of ``batch`` records, the truncation
    :math:`d^* = \arg\min_{d \le n/2} \frac{1}{(n-d)^2}\sum_{j\ge d}(y_j-\bar y_{\ge d})^2`
    balances the bias of the transient against the variance of what is left (MSER-5: White 1997,
    Simulation 69, 323; White, Cobb & Spratt 2000, Proc. Winter Simulation Conf.). Averaging the
    ensemble first makes the transient stand out of the noise. Returns the largest truncation over
    the series (default variables: ``energy`` and ``x``, or ``mean`` for populations).
    """
    owner = "detect_burn_in"
    batch = check_int("batch", batch, owner, ge=1)
    if isinstance(obj, xr.Dataset):
        names = [var] if isinstance(var, str) else list(var) if var is not None else \
            [n for n in ("energy", "x", "population_mean") if n in obj.data_vars]
        arrays = [select(obj, n, n, owner) for n in names]
    else:
        arrays = [obj]
    cut = 0
    for da in arrays:
        if time_dim not in da.dims:
            continue
        other = [d for d in (replica_dim, "individual") if d in da.dims]
        m = da.mean(other) if other else da
        values = m.transpose(..., time_dim).values
        rows = np.asarray(values, dtype=float).reshape(-1, values.shape[-1])
        for row in rows:
            cut = max(cut, _mser(row[np.isfinite(row)], batch))
    return cut


def discard_burn_in(obj: xr.Dataset | xr.DataArray, burn_in: int | str | None = "auto", *,
                    time_dim: str = "time", **kwargs: Any) -> Any:
    """``obj`` without its first ``burn_in`` records (``"auto"``: :func:`detect_burn_in`; None: unchanged).

    The number dropped is written to the attribute ``burn_in_records``.
    """
    burn_in = check_burn_in(burn_in, "discard_burn_in")
    if burn_in is None:
        return obj
    if time_dim not in obj.dims:
        return obj
    if isinstance(burn_in, str):  # "auto", the one string check_burn_in lets through
        burn_in = detect_burn_in(obj, time_dim=time_dim, **kwargs)
    if burn_in >= obj.sizes[time_dim]:
        raise ValidationError(f"The 'burn_in' parameter ({burn_in}) must leave records: the data have "
                              f"{obj.sizes[time_dim]} along {time_dim!r}.")
    out = obj.isel({time_dim: slice(burn_in, None)})
    out.attrs = dict(obj.attrs, burn_in_records=int(burn_in))
    return out


def geweke_test(obj: xr.Dataset | xr.DataArray, var: str | None = None, *, first: float = 0.1, last: float = 0.5,
                time_dim: str = "time", replica_dim: str = "replica") -> xr.Dataset:
    r"""Geweke's test of a drifting mean: early window against late window.

    :math:`z = (\bar x_A - \bar x_B)/\sqrt{\mathrm{SE}_A^2 + \mathrm{SE}_B^2}` with A the first
    ``first`` and B the last ``last`` fraction of the records, each mean and standard error from
    :func:`average` (replicas as batches, or the autocorrelation time) (Geweke 1992, in *Bayesian
    Statistics 4*, 169). Returns ``statistic`` (z per remaining coordinate) and the two-sided
    ``p_value`` under stationarity.
    """
    from scipy import stats

    owner = "geweke_test"
    first = check_real("first", first, owner, gt=0.0, lt=1.0)
    last = check_real("last", last, owner, gt=0.0, lt=1.0)
    if first + last > 1.0:
        raise ValidationError(f"The 'first' and 'last' fractions of {owner} must not overlap. Got {first} + {last} > 1.")
    da = select(obj, var, ("energy", "x", "population_mean"), owner)
    n = da.sizes[time_dim]
    na, nb = max(4, int(first * n)), max(4, int(last * n))
    dims = check_dims("dims", None, da, owner, default=(replica_dim, time_dim, "individual"))
    a = average(da.isel({time_dim: slice(0, na)}), dims=dims)
    b = average(da.isel({time_dim: slice(n - nb, n)}), dims=dims)
    z = (a["value"] - b["value"]) / np.sqrt(a["standard_error"] ** 2 + b["standard_error"] ** 2)
    p = xr.apply_ufunc(lambda v: 2.0 * stats.norm.sf(np.abs(v)), z, dask="parallelized", output_dtypes=[float])
    return xr.Dataset({"statistic": z.assign_attrs(long_name="Geweke z-score", units="1"),
                       "p_value": p.assign_attrs(long_name="two-sided p-value", units="1")},
                      attrs={"test": "Geweke (first vs last window)", "first": first, "last": last})


# ---------------------------------------------------------------------------------------------
# Gibbs marginal densities
# ---------------------------------------------------------------------------------------------
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
_TAIL = 40.0  # the density is negligible where the free energy exceeds its minimum by this many T


def _gl_grid(lo: float, hi: float, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite 8-point Gauss–Legendre nodes and weights on [lo, hi] (``cells`` cells), and the edges."""
    edges = np.linspace(lo, hi, cells + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * _GL_NODES[None, :]).ravel()
    weights = (half[:, None] * _GL_WEIGHTS[None, :]).ravel()
    return nodes, weights, edges


def _low_high(bounds: Any) -> tuple[float, float]:
    """The first two entries of a (low, high) sequence, as a pair."""
    return bounds[0], bounds[1]


def _expand(bounds: tuple[float, float], excess: Callable[[float], bool]) -> tuple[float, float]:
    lo, hi = bounds
    for _ in range(60):
        grow_lo, grow_hi = excess(lo), excess(hi)
        if not grow_lo and not grow_hi:
            return lo, hi
        span = hi - lo
        lo, hi = (lo - 0.5 * span if grow_lo else lo), (hi + 0.5 * span if grow_hi else hi)
    raise ValidationError("The Gibbs density does not decay within a finite window (is the landscape confining "
                          "at this temperature?); pass 'bounds' explicitly.")


class GibbsMarginal:
    r"""The Gibbs marginal density :math:`p(s) \propto e^{-F(s)/T}` of one coordinate, by quadrature.

    :math:`F` is the free energy of coordinate c: :math:`F = U` in one dimension;
    :math:`F(s) = -T\log\int e^{-U(s,y)/T}\,dy` in two (inner integral by composite Gauss–Legendre);
    for ``dim > 2`` the landscape is taken as separable, :math:`F(s) = U(x)` with :math:`x_c = s`
    and the other coordinates at ``at`` — exact for :class:`~stochdyn.landscapes.DoubleWell`,
    diagonal :class:`~stochdyn.landscapes.Harmonic`, :class:`~stochdyn.landscapes.Rastrigin`; pass
    ``potential`` (a vectorised 1-D free energy) for anything else. The normalisation
    :math:`Z=\int e^{-F/T}` is composite 8-point Gauss–Legendre over ``bounds`` (chosen so the
    density has fallen by :math:`e^{-40}` at both ends), accurate to ~1e-12 for smooth F.
    Build with :func:`gibbs_marginal`.
    """

    def __init__(self, free_energy: Callable[[np.ndarray], np.ndarray], temperature: float, bounds: tuple[float, float],
                 cells: int = 1024):
        self.temperature = float(temperature)
        self.free_energy = free_energy
        self.bounds = (float(bounds[0]), float(bounds[1]))
        nodes, w, edges = _gl_grid(*self.bounds, cells)
        f = np.asarray(free_energy(nodes), dtype=float)
        self._fmin = float(np.min(f))
        dens = np.exp(-(f - self._fmin) / self.temperature) * w
        self.normalisation = float(dens.sum())
        self._edges = edges
        self._cdf_edges = np.concatenate([[0.0], np.cumsum(dens.reshape(cells, -1).sum(axis=1))]) / self.normalisation
        self._nodes, self._w = nodes, w

    def pdf(self, s: Any) -> np.ndarray:
        """Normalised density at ``s`` (0 outside ``bounds``)."""
        s = np.asarray(s, dtype=float)
        inside = (s >= self.bounds[0]) & (s <= self.bounds[1])
        f = np.asarray(self.free_energy(np.where(inside, s, self.bounds[0])), dtype=float)
        return np.where(inside, np.exp(-(f - self._fmin) / self.temperature) / self.normalisation, 0.0)

    def cdf(self, s: Any) -> np.ndarray:
        """Cumulative distribution at ``s`` (exact at the quadrature cell edges, linear in between)."""
        return np.interp(np.asarray(s, dtype=float), self._edges, self._cdf_edges, left=0.0, right=1.0)

    def bin_probabilities(self, edges: Any) -> np.ndarray:
        r"""Probability of each bin, :math:`q_b = \int_{e_b}^{e_{b+1}} p(s)\,ds`, by Gauss–Legendre per bin."""
        edges = np.asarray(edges, dtype=float)
        q = np.empty(edges.size - 1)
        for b in range(edges.size - 1):
            nodes, w, _ = _gl_grid(edges[b], edges[b + 1], 4)
            q[b] = np.sum(self.pdf(nodes) * w)
        return q

    def expectation(self, f: Callable[[np.ndarray], np.ndarray]) -> float:
        """:math:`\\int f(s) p(s)\\,ds` by the same quadrature."""
        return float(np.sum(np.asarray(f(self._nodes)) * self.pdf(self._nodes) * self._w))

    def __repr__(self) -> str:
        return f"GibbsMarginal(temperature={self.temperature:g}, bounds=({self.bounds[0]:.4g}, {self.bounds[1]:.4g}))"


def gibbs_marginal(landscape: Any = None, temperature: float = 1.0, coordinate: int = 0, *,
                   potential: Callable[[np.ndarray], np.ndarray] | None = None, bounds: tuple[float, float] | None = None,
                   at: Any = None) -> GibbsMarginal:
    """The Gibbs marginal density of ``coordinate`` at ``temperature`` (see :class:`GibbsMarginal`).

    Parameters
    ----------
    landscape : Landscape, optional
        The potential U; or give ``potential``, a vectorised 1-D free energy F(s).
    temperature : float
        T > 0 (k_B = 1).
    coordinate : int
        Which coordinate's marginal.
    bounds : (float, float), optional
        Integration window; by default grown from the landscape's ``plot_bounds`` until the density
        is negligible at both ends.
    at : array (dim,), optional
        Values of the other coordinates for ``dim > 2`` (default the landscape's ``center`` if it
        has one, else zeros).
    """
    owner = "gibbs_marginal"
    T = check_real("temperature", temperature, owner, gt=0.0)
    if potential is None and landscape is None:
        raise ValidationError(f"{owner} needs a 'landscape' or a 1-D 'potential'.")
    if potential is not None:
        F = potential
        guess = _low_high(bounds) if bounds is not None else (-1.0, 1.0)
    else:
        d = landscape.dim
        c = check_int("coordinate", coordinate, owner, ge=0, lt=d)
        pb = getattr(landscape, "plot_bounds", ((-2.0, 2.0),) * 2)
        guess_c = _low_high(bounds if bounds is not None else pb[min(c, len(pb) - 1)])
        if d == 1:
            def F(s: np.ndarray) -> np.ndarray:
                return landscape.value(np.asarray(s, float)[..., None])
        elif d == 2:
            o = 1 - c
            yb = _expand(_low_high(pb[min(o, len(pb) - 1)]), lambda y: False)
            F = _free_energy_2d(landscape, c, T, guess_c, yb)
        else:
            from ..theory.escape import potential_along  # theory (SciPy) is imported on use

            F = potential_along(landscape, c, at)
        guess = guess_c
    if bounds is None:
        probe = np.linspace(guess[0], guess[1], 401)
        fmin = float(np.min(F(probe)))
        guess = _expand(guess, lambda s: float(F(np.array([s]))[0]) - fmin < _TAIL * T)
    lo, hi = (float(guess[0]), float(guess[1]))
    if not hi > lo:
        raise ValidationError(f"The 'bounds' parameter of {owner} must satisfy low < high. Got {bounds}.")
    return GibbsMarginal(F, T, (lo, hi))


def _free_energy_2d(landscape: Any, c: int, T: float, sb: tuple[float, float], yb: tuple[float, float]) -> Callable:
    """F(s) = -T log int exp(-U/T) dy over the other coordinate, on a window grown until negligible."""
    probe_s = np.linspace(sb[0], sb[1], 41)

    def u(s: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.empty(np.broadcast(s, y).shape + (2,))
        x[..., c] = s
        x[..., 1 - c] = y
        return landscape.value(x)

    umin = float(np.min(u(probe_s[:, None], np.linspace(yb[0], yb[1], 401)[None, :])))

    def too_heavy(y: float) -> bool:
        return float(np.min(u(probe_s, np.full_like(probe_s, y)))) - umin < _TAIL * T

    lo, hi = _expand(yb, too_heavy)
    ny, wy, _ = _gl_grid(lo, hi, 128)

    def F(s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        flat = s.ravel()
        out = np.empty(flat.size)
        for i in range(0, flat.size, 256):
            blk = flat[i:i + 256]
            uu = u(blk[:, None], ny[None, :])
            m = uu.min(axis=1, keepdims=True)
            out[i:i + 256] = m[:, 0] - T * np.log(np.sum(np.exp(-(uu - m) / T) * wy[None, :], axis=1))
        return out.reshape(s.shape)

    return F


# ---------------------------------------------------------------------------------------------
# histograms and goodness of fit
# ---------------------------------------------------------------------------------------------
def coordinate_samples(obj: xr.Dataset | xr.DataArray, var: str | None, coordinate: int, burn_in: int | str | None,
                       owner: str, replica_dim: str = "replica", time_dim: str = "time") -> xr.DataArray:
    """The samples of one coordinate of ``var`` (default ``x``) after the burn-in."""
    if burn_in is not None:
        obj = discard_burn_in(obj, burn_in, time_dim=time_dim)
    da = select(obj, var, ("x",), owner)
    if "dim" in da.dims:
        c = check_int("coordinate", coordinate, owner, ge=0, lt=da.sizes["dim"])
        da = da.isel(dim=c)
    return da


def batches(da: xr.DataArray, n_batches: int, replica_dim: str, time_dim: str, min_replicas: int) -> np.ndarray:
    """Samples as an array (batch, samples-per-batch): replicas, or contiguous time blocks of few replicas."""
    order = [d for d in (replica_dim, time_dim) if d in da.dims]
    da = da.transpose(*order, ...)
    arr = np.asarray(da.values, dtype=float)
    if replica_dim not in da.dims:
        arr = arr[None]
    if arr.ndim == 1:
        arr = arr[:, None]
    R = arr.shape[0]
    if R >= min_replicas or time_dim not in da.dims:
        return arr.reshape(R, -1)
    per = max(2, -(-n_batches // R))
    T = arr.shape[1]
    per = min(per, T)
    L = T // per
    arr = arr[:, : per * L].reshape(R, per, L, *arr.shape[2:])
    return arr.reshape(R * per, -1)


def batch_counts(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per (batch, bin) of ``samples`` (batch, n); the last edge is included, NaN ignored."""
    K = edges.size - 1
    finite = np.isfinite(samples)
    idx = np.searchsorted(edges, np.where(finite, samples, np.inf), side="right") - 1
    idx[samples == edges[-1]] = K - 1
    ok = finite & (idx >= 0) & (idx < K)
    B = samples.shape[0]
    flat = (np.arange(B)[:, None] * K + idx)[ok]
    return np.bincount(flat, minlength=B * K).reshape(B, K).astype(float)


def batch_fraction_variance(counts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled fractions p = sum c / sum n and their variance from the spread over batches (ratio estimator)."""
    B = counts.shape[0]
    p = counts.sum(axis=0) / sizes.sum()
    resid = counts - p[None, ...] * sizes.reshape((B,) + (1,) * (counts.ndim - 1))
    var = resid.var(axis=0, ddof=1) / (B * np.mean(sizes) ** 2)
    return p, var


def stationary_histogram(obj: xr.Dataset | xr.DataArray, landscape: Any = None, temperature: float | None = None, *,
                         var: str | None = None, coordinate: int = 0, bins: int | Any = 40,
                         range: tuple[float, float] | None = None, burn_in: int | str | None = None,
                         potential: Callable | None = None, gibbs: bool = True, n_batches: int = 32,
                         replica_dim: str = "replica", time_dim: str = "time", min_replicas: int = 8) -> xr.Dataset:
    r"""Histogram density of one coordinate over an ensemble, with standard errors and the Gibbs density.

    :math:`\hat p_b = n_b/(N w_b)` over all N finite samples (replicas × records × individuals) of
    coordinate ``coordinate`` of ``var`` (default ``x``) after ``burn_in`` records. Standard errors
    come from batch means: each replica is a batch (or, with fewer than ``min_replicas`` replicas,
    contiguous time blocks, ``n_batches`` in all), :math:`\mathrm{Var}\,\hat p_b` is the spread of
    the batch fractions (ratio estimator) — exact for independent replicas whatever the correlation
    in time. The mean design effect :math:`\bar\delta = \frac{1}{K-1}\sum_b(1-\hat p_b)
    \mathrm{Var}(\hat p_b)/(\hat p_b(1-\hat p_b)/N)` (Rao & Scott 1981, JASA 76, 221) gives the
    effective sample size :math:`N_\mathrm{eff}=N/\bar\delta` used by the tests in this module.

    With a landscape (given, or rebuilt from the data's attributes) or a ``potential`` and a
    temperature (given, or the integrator's), the Gibbs marginal density (:func:`gibbs_marginal`,
    normalised by quadrature) is added: ``gibbs`` (density at the bin centres) and
    ``gibbs_probability`` (its integral over each bin).

    Returns
    -------
    Dataset
        Dimension ``bin`` with coordinates ``bin`` (centres), ``bin_lower``, ``bin_upper``;
        variables ``value`` (density), ``standard_error``, ``counts`` and, with the Gibbs density,
        ``gibbs`` and ``gibbs_probability``; attributes ``n_samples``, ``n_effective``,
        ``design_effect``, ``temperature``, ``coordinate``.
    """
    owner = "stationary_histogram"
    burn_in = check_burn_in(burn_in, owner)
    n_batches = check_int("n_batches", n_batches, owner, ge=2)
    da = coordinate_samples(obj, var, coordinate, burn_in, owner, replica_dim, time_dim)
    samples = batches(da, n_batches, replica_dim, time_dim, min_replicas)
    finite = np.isfinite(samples)
    vals = samples[finite]
    if vals.size < 2:
        raise ValidationError(f"{owner} needs at least 2 finite samples. Got {vals.size}.")
    edges = np.histogram_bin_edges(vals, bins=bins, range=range)
    K = edges.size - 1
    counts_b = batch_counts(samples, edges)
    B = samples.shape[0]
    sizes = finite.sum(axis=1).astype(float)
    N = float(sizes.sum())
    p, var_p = batch_fraction_variance(counts_b, sizes)
    width = np.diff(edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    used = p > 0
    binom = p * (1.0 - p) / N
    deff = float(np.sum(((1.0 - p) * var_p / np.where(used, binom, 1.0))[used]) / max(1, used.sum() - 1)) \
        if used.sum() > 1 else 1.0
    deff = max(deff, 1e-12)
    name = da.attrs.get("long_name", "x")
    cname = f"{name} {coordinate}" if isinstance(obj, xr.Dataset) or "dim" in getattr(obj, "dims", ()) else name
    coords = {"bin": ("bin", centres, {"long_name": cname, "units": da.attrs.get("units", "1")}),
              "bin_lower": ("bin", edges[:-1]), "bin_upper": ("bin", edges[1:])}
    dens = xr.DataArray(p / width, dims="bin", coords=coords)
    se = xr.DataArray(np.sqrt(var_p) / width, dims="bin", coords=coords)
    extra: dict[str, Any] = {"counts": xr.DataArray(counts_b.sum(axis=0), dims="bin", coords=coords)}
    T = None
    if gibbs and (potential is not None or landscape is not None or "target" in obj.attrs):
        land = None if potential is not None else landscape_of(obj, landscape, owner)
        T = run_temperature(obj, temperature, owner)
        marg = gibbs_marginal(land, T, coordinate, potential=potential)
        extra["gibbs"] = xr.DataArray(marg.pdf(centres), dims="bin", coords=coords,
                                      attrs={"long_name": "Gibbs marginal density", "units": "1"})
        extra["gibbs_probability"] = xr.DataArray(marg.bin_probabilities(edges), dims="bin", coords=coords,
                                                  attrs={"long_name": "Gibbs probability of the bin", "units": "1"})
    out = estimate(dens, se, long_name=f"probability density of {cname}", units="1",
                   estimator="histogram n_b / (N w_b)",
                   method=f"batch means over {B} batches ({'replicas' if B == da.sizes.get(replica_dim, 1) else 'time blocks'})",
                   **extra)
    out.attrs.update(n_samples=N, n_effective=N / deff, design_effect=deff, coordinate=int(coordinate),
                     n_batches=B, temperature=np.nan if T is None else T)
    return out


def _histogram_for_test(obj: xr.Dataset | xr.DataArray, owner: str, landscape: Any, temperature: float | None,
                        kw: dict[str, Any]) -> xr.Dataset:
    if isinstance(obj, xr.Dataset) and "value" in obj and "bin" in obj.dims:
        hist = obj
    else:
        hist = stationary_histogram(obj, landscape, temperature, **kw)
    if "gibbs_probability" not in hist:
        raise ValidationError(f"{owner} needs the Gibbs density: give a landscape (or potential) and a temperature.")
    return hist


def _in_range(hist: xr.Dataset) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Observed and Gibbs bin probabilities renormalised over the histogram's range, N and N_eff in range."""
    counts = np.asarray(hist["counts"].values, float)
    q = np.asarray(hist["gibbs_probability"].values, float)
    n_in = counts.sum()
    scale = n_in / hist.attrs["n_samples"]
    return counts / n_in, q / q.sum(), n_in, hist.attrs["n_effective"] * scale


def kl_divergence(obj: xr.Dataset | xr.DataArray, landscape: Any = None, temperature: float | None = None,
                  **histogram_kwargs: Any) -> xr.Dataset:
    r"""Binned Kullback–Leibler divergence of the stationary histogram from the Gibbs density.

    :math:`\widehat{KL} = \sum_b \hat p_b \log(\hat p_b/q_b)` over the histogram's bins (both
    renormalised over its range; :math:`q_b` by quadrature). Standard error by the delta method,
    :math:`\{\sum_b\hat p_b\log^2(\hat p_b/q_b) - \widehat{KL}^2\}/N_\mathrm{eff}`, and the
    plug-in bias :math:`(K-1)/(2N_\mathrm{eff})` (its expectation when the histogram *is* drawn
    from q; Miller 1955; Paninski 2003, Neural Comput. 15, 1191) in ``bias``. ``obj`` is a
    Dataset from :func:`stationary_histogram` or data passed to it with ``histogram_kwargs``.
    """
    hist = _histogram_for_test(obj, "kl_divergence", landscape, temperature, histogram_kwargs)
    p, q, _, neff = _in_range(hist)
    m = (p > 0) & (q > 0)
    lr = np.log(p[m] / q[m])
    kl = float(np.sum(p[m] * lr))
    var = max(0.0, float(np.sum(p[m] * lr * lr)) - kl * kl) / neff
    K = int(np.count_nonzero(q > 0))
    return estimate(kl, math.sqrt(var), long_name="KL divergence of the histogram from Gibbs", units="1",
                    estimator="sum p log(p/q) over bins", method="delta method with the effective sample size",
                    bias=(K - 1) / (2.0 * neff), n_effective=neff)


def _pool_small(expected: np.ndarray, *arrays: np.ndarray, minimum: float = 5.0) -> list[np.ndarray]:
    """Pool cells with expected count < ``minimum`` into one extra cell (Cochran's rule)."""
    small = expected < minimum
    if not small.any():
        return [expected, *arrays]
    return [np.append(a[~small], a[small].sum()) for a in (expected, *arrays)]


def chi_square_test(obj: xr.Dataset | xr.DataArray, landscape: Any = None, temperature: float | None = None,
                    **histogram_kwargs: Any) -> xr.Dataset:
    r"""Pearson chi-square test of the stationary histogram against the Gibbs density, corrected for correlation.

    :math:`X^2 = N_\mathrm{eff}\sum_b (\hat p_b - q_b)^2/q_b` over the histogram's bins (both
    renormalised over its range; cells with expected count below 5 pooled), which is Pearson's
    statistic divided by the mean design effect — the first-order Rao–Scott correction (Rao & Scott
    1981, JASA 76, 221) — referred to :math:`\chi^2_{K-1}`. Returns ``statistic``, ``p_value``,
    ``dof`` and ``n_effective``.
    """
    from scipy import stats

    hist = _histogram_for_test(obj, "chi_square_test", landscape, temperature, histogram_kwargs)
    p, q, _, neff = _in_range(hist)
    e, pp, qq = _pool_small(neff * q, p, q)
    keep = qq > 0
    x2 = float(neff * np.sum((pp[keep] - qq[keep]) ** 2 / qq[keep]))
    dof = int(keep.sum()) - 1
    return xr.Dataset({"statistic": x2, "p_value": float(stats.chi2.sf(x2, dof)), "dof": dof, "n_effective": neff},
                      attrs={"test": "chi-square against Gibbs, Rao-Scott corrected"})


def ks_test(obj: xr.Dataset | xr.DataArray, landscape: Any = None, temperature: float | None = None, *,
            var: str | None = None, coordinate: int = 0, burn_in: int | str | None = None,
            potential: Callable | None = None, cdf: Callable | None = None, n_batches: int = 32,
            n_boot: int = 2000, replica_dim: str = "replica", time_dim: str = "time",
            min_replicas: int = 8) -> xr.Dataset:
    r"""Kolmogorov–Smirnov test of one coordinate against the Gibbs marginal, with an effective sample size.

    :math:`D = \sup_s|\hat F(s) - F(s)|` over all samples, F the Gibbs marginal CDF
    (:func:`gibbs_marginal`, or ``cdf``). Correlated samples: the p-value is that of independent
    samples of the effective size :math:`N_\mathrm{eff}` at which the Kolmogorov law has the same
    median as :math:`\sup_s|\hat F(s)-F(s)|` of the data, the latter estimated by a multiplier
    bootstrap over the independent batches (replicas, or time blocks of few long runs), which keeps the
    full covariance of the empirical process (Kosorok 2008, *Introduction to Empirical Processes*,
    §10.1; ``n_boot`` Gaussian multipliers from a fixed seed, so the result is deterministic). With
    :math:`N_\mathrm{eff}`, :math:`p = P(D_{N_\mathrm{eff}} \ge D)` from the exact finite-n distribution
    (``scipy.stats.kstwo``). Returns ``statistic``, ``p_value``, ``n_effective``, ``n_samples``.
    """
    from scipy import stats

    owner = "ks_test"
    burn_in = check_burn_in(burn_in, owner)
    n_boot = check_int("n_boot", n_boot, owner, ge=100)
    da = coordinate_samples(obj, var, coordinate, burn_in, owner, replica_dim, time_dim)
    if cdf is None:
        land = None if potential is not None else landscape_of(obj, landscape, owner)
        T = run_temperature(obj, temperature, owner)
        cdf = gibbs_marginal(land, T, coordinate, potential=potential).cdf
    samples = batches(da, n_batches, replica_dim, time_dim, min_replicas)
    finite = np.isfinite(samples)
    vals = np.sort(samples[finite])
    N = vals.size
    F = np.asarray(cdf(vals), dtype=float)
    i = np.arange(1, N + 1)
    dplus, dminus = i / N - F, F - (i - 1) / N
    j = int(np.argmax(np.maximum(dplus, dminus)))
    D = float(max(dplus[j], dminus[j]))
    # effective sample size of the KS statistic by a multiplier bootstrap over independent batches
    grid = np.quantile(vals, np.linspace(0.0, 1.0, 257)[1:-1])
    sizes = finite.sum(axis=1).astype(float)
    ordered = np.sort(samples, axis=1)  # NaN sort last and are never <= a grid point
    below = np.stack([np.searchsorted(row, grid, side="right") for row in ordered]).astype(float)
    centred = below - sizes[:, None] * (below.sum(axis=0) / N)[None, :]
    weights = np.random.default_rng(0).standard_normal((n_boot, centred.shape[0]))
    sup = np.abs(weights @ centred).max(axis=1) / N
    neff = max(1.0, (stats.kstwobign.ppf(0.5) / float(np.median(sup))) ** 2)
    pval = float(stats.kstwo.sf(D, max(1, int(round(neff)))))
    return xr.Dataset({"statistic": D, "p_value": pval, "n_effective": neff, "n_samples": float(N)},
                      attrs={"test": "Kolmogorov-Smirnov against Gibbs with effective sample size"})
