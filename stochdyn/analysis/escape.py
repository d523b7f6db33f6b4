"""First-passage and escape times between regions, escape rates with confidence intervals.

Regions are callables on points ``(..., dim) -> bool``: the helpers :func:`interval`,
:func:`halfspace` and :func:`ball` build common ones, any function of the position will do. Passages
are detected on the *recorded* states, so times are resolved to the record spacing and an excursion
into the target shorter than that can be missed: record often enough for the question asked.
Durations carry a ``reached`` flag; replicas (or stays) that have not reached the target by the end
are right-censored, which :func:`escape_rate` accounts for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_array, check_int, check_real
from ._base import check_dims, estimate, select

__all__ = [
    "interval",
    "halfspace",
    "ball",
    "first_passage_times",
    "passage_times",
    "escape_rate",
    "mean_first_passage_time",
    "survival_function",
    "censored_mean",
    "kaplan_meier",
]


# ---------------------------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Interval:
    coordinate: int
    low: float
    high: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        s = np.asarray(x)[..., self.coordinate]
        return (s >= self.low) & (s <= self.high)

    def __str__(self) -> str:
        return f"{self.low:g} <= x[{self.coordinate}] <= {self.high:g}"


@dataclass(frozen=True)
class _HalfSpace:
    normal: tuple[float, ...]
    offset: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) @ np.asarray(self.normal) >= self.offset

    def __str__(self) -> str:
        return f"n.x >= {self.offset:g}, n = {list(self.normal)}"


@dataclass(frozen=True)
class _Ball:
    center: tuple[float, ...]
    radius: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.sum((np.asarray(x) - np.asarray(self.center)) ** 2, axis=-1) <= self.radius**2

    def __str__(self) -> str:
        return f"|x - {list(self.center)}| <= {self.radius:g}"


def interval(coordinate: int = 0, low: float = -np.inf, high: float = np.inf) -> Callable[[np.ndarray], np.ndarray]:
    """Region ``low <= x[coordinate] <= high`` (either bound may be infinite)."""
    c = check_int("coordinate", coordinate, "interval", ge=0)
    lo = float(low)
    hi = float(high)
    if np.isnan(lo) or np.isnan(hi) or not lo < hi:
        raise ValidationError(f"The bounds of interval must satisfy low < high. Got low={low}, high={high}.")
    return _Interval(c, lo, hi)


def halfspace(normal: Any, offset: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """Region ``normal · x >= offset``."""
    n = check_array("normal", normal, "halfspace", ndim=1, min_size=1)
    if not np.any(n):
        raise ValidationError("The 'normal' parameter of halfspace must not be the zero vector.")
    return _HalfSpace(tuple(float(v) for v in n), check_real("offset", offset, "halfspace"))


def ball(center: Any, radius: float) -> Callable[[np.ndarray], np.ndarray]:
    """Region ``|x - center| <= radius``."""
    c = check_array("center", center, "ball", ndim=1, min_size=1)
    return _Ball(tuple(float(v) for v in c), check_real("radius", radius, "ball", gt=0.0))


def _membership(x: xr.DataArray, region: Callable, name: str, owner: str) -> xr.DataArray:
    if not callable(region):
        raise ValidationError(f"The '{name}' parameter of {owner} must be a region: a callable on points (..., dim) "
                              f"returning booleans, e.g. sd.analysis.interval(0, low=1.0). Got {type(region).__name__}.")
    if "dim" not in x.dims:
        x = x.expand_dims({"dim": 1}, axis=-1)
    return xr.apply_ufunc(lambda p: np.asarray(region(p), dtype=bool) & np.all(np.isfinite(p), axis=-1), x,
                          input_core_dims=[["dim"]], dask="parallelized", output_dtypes=[bool])


# ---------------------------------------------------------------------------------------------
# first passages
# ---------------------------------------------------------------------------------------------
def _first_passage_core(in_target: np.ndarray, in_start: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    n = t.size
    started = np.any(in_start, axis=-1)
    i0 = np.where(started, np.argmax(in_start, axis=-1), n - 1)
    after = in_target & (np.arange(n) >= i0[..., None])
    reached = np.any(after, axis=-1) & started
    i1 = np.argmax(after, axis=-1)
    t0 = t[i0]
    duration = np.where(reached, t[i1] - t0, t[-1] - t0)
    duration = np.where(started, duration, 0.0)
    return duration, reached, started


def first_passage_times(obj: xr.Dataset | xr.DataArray, target: Callable, *, start: Callable | None = None,
                        var: str | None = None, time_dim: str = "time") -> xr.Dataset:
    r"""First time each replica's recorded state lies in ``target``.

    The clock starts at the first record (or, with ``start``, at the first record in ``start``); the
    passage time is the time of the first later record in ``target``. Replicas that never get there
    are right-censored at the end of the run. Works lazily on Dask data (the time axis is put in
    one chunk).

    Returns
    -------
    Dataset
        Per replica (and any other non-time dimension): ``duration`` (passage time, or time observed
        if censored), ``reached`` (bool), ``passage_time`` (NaN if censored) and ``started``.
    """
    owner = "first_passage_times"
    x = select(obj, var, ("x", "population_mean"), owner)
    inside = _membership(x, target, "target", owner)
    init = _membership(x, start, "start", owner) if start is not None else xr.ones_like(inside)
    if inside.chunks is not None:
        inside, init = inside.chunk({time_dim: -1}), init.chunk({time_dim: -1})
    t = np.asarray(x[time_dim].values, dtype=float)
    dur, reached, started = xr.apply_ufunc(
        _first_passage_core, inside, init, input_core_dims=[[time_dim], [time_dim]],
        output_core_dims=[[], [], []], dask="parallelized", output_dtypes=[float, bool, bool], kwargs={"t": t})
    units = x[time_dim].attrs.get("units", "1") if time_dim in x.coords else "1"
    out = xr.Dataset({
        "duration": dur.assign_attrs(long_name="time to first passage (time observed if censored)", units=units),
        "reached": reached.assign_attrs(long_name="target reached before the end of the run", units="1"),
        "passage_time": dur.where(reached).assign_attrs(long_name="first-passage time", units=units),
        "started": started.assign_attrs(long_name="the start region was visited", units="1"),
    })
    out.attrs.update(target=str(target), start=str(start) if start is not None else "first record")
    return out


def passage_times(obj: xr.Dataset | xr.DataArray, source: Callable, target: Callable, *, var: str | None = None,
                  time_dim: str = "time", replica_dim: str = "replica") -> xr.Dataset:
    r"""Every transition from ``source`` to ``target`` along each trajectory (repeated escapes).

    The trajectory is assigned to the last region it visited (``source`` or ``target``); an event
    starts at the first record of each stay committed to ``source`` and ends at the first record in
    ``target``. So for a long equilibrium run the mean duration is the mean first-passage time from
    ``source`` to ``target`` and 1/mean the transition rate. A final stay that has not reached
    ``target`` is right-censored. Computed eagerly (the number of events depends on the data).

    Returns
    -------
    Dataset
        Dimension ``event`` with ``replica`` (id), ``start_time``, ``duration``, ``reached`` and
        ``passage_time`` (NaN if censored).
    """
    owner = "passage_times"
    x = select(obj, var, ("x", "population_mean"), owner)
    if replica_dim not in x.dims:
        x = x.expand_dims({replica_dim: [0]})
    a = _membership(x, source, "source", owner).transpose(replica_dim, time_dim, ...)
    b = _membership(x, target, "target", owner).transpose(replica_dim, time_dim, ...)
    if a.ndim != 2:
        raise ValidationError(f"{owner} expects data with dims ({replica_dim}, {time_dim}[, dim]); "
                              f"select other dimensions first. Got {x.dims}.")
    A, B = np.asarray(a.values), np.asarray(b.values)
    if np.any(A & B):
        raise ValidationError(f"The 'source' and 'target' regions of {owner} overlap.")
    t = np.asarray(x[time_dim].values, dtype=float)
    ids = np.asarray(x[replica_dim].values)
    rep, t0s, durs, hits = [], [], [], []
    state = np.where(A, 1, np.where(B, 2, 0))
    for r in range(state.shape[0]):
        s = state[r]
        idx = np.flatnonzero(s)
        if idx.size == 0:
            continue
        labels = s[idx]
        change = np.flatnonzero(np.diff(labels)) + 1
        starts = np.concatenate([[0], change])  # first index (into idx) of each committed stay
        for j, k in enumerate(starts):
            if labels[k] != 1:
                continue
            t_begin = t[idx[k]]
            if j + 1 < starts.size:
                rep.append(ids[r]); t0s.append(t_begin); durs.append(t[idx[starts[j + 1]]] - t_begin); hits.append(True)
            else:
                rep.append(ids[r]); t0s.append(t_begin); durs.append(t[-1] - t_begin); hits.append(False)
    units = x[time_dim].attrs.get("units", "1") if time_dim in x.coords else "1"
    dur = np.asarray(durs, dtype=float)
    hit = np.asarray(hits, dtype=bool)
    out = xr.Dataset({
        "replica": ("event", np.asarray(rep, dtype=ids.dtype), {"long_name": "replica id", "units": "1"}),
        "start_time": ("event", np.asarray(t0s, dtype=float), {"long_name": "entry into the source region", "units": units}),
        "duration": ("event", dur, {"long_name": "time from source to target (time observed if censored)", "units": units}),
        "reached": ("event", hit, {"long_name": "target reached", "units": "1"}),
        "passage_time": ("event", np.where(hit, dur, np.nan), {"long_name": "passage time", "units": units}),
    })
    out.attrs.update(source=str(source), target=str(target))
    return out


def _passage_dims(passages: xr.Dataset, dims: Any, owner: str) -> tuple[str, ...]:
    if not isinstance(passages, xr.Dataset) or "duration" not in passages or "reached" not in passages:
        raise ValidationError(f"{owner} takes the output of first_passage_times or passage_times.")
    return check_dims("dims", dims, passages["duration"], owner, default=("replica", "event"))


def escape_rate(passages: xr.Dataset, *, confidence: float = 0.95, offset: float = 0.0,
                dims: str | Iterable[str] | None = None) -> xr.Dataset:
    r"""Escape rate by the exponential maximum-likelihood estimate with right-censoring, with a confidence interval.

    With d observed passages and total time at risk :math:`E = \sum_i (t_i - t_0)_+` (observed
    durations and censoring times alike, less ``offset`` :math:`t_0`, e.g. a relaxation time inside
    the well), :math:`\hat\lambda = d/E`, :math:`\mathrm{SE} = \hat\lambda/\sqrt d`, and the interval
    :math:`[\chi^2_{2d}(\alpha/2)/(2E),\ \chi^2_{2d+2}(1-\alpha/2)/(2E)]` — exact for a fixed number
    of events, conservative for fixed-time censoring (Cox & Oakes 1984, *Analysis of Survival Data*,
    §3.2; Lawless 2003, §2.2). Assumes the waiting time is exponential after ``offset`` (check with
    :func:`survival_function`). Returns ``value`` (rate), ``standard_error``, ``ci_low``, ``ci_high``,
    ``mean_time`` (1/rate), ``n_events``, ``exposure``.
    """
    from scipy import stats

    owner = "escape_rate"
    confidence = check_real("confidence", confidence, owner, gt=0.0, lt=1.0)
    offset = check_real("offset", offset, owner, ge=0.0)
    dims = _passage_dims(passages, dims, owner)
    dur = passages["duration"]
    hit = passages["reached"] & (dur >= offset)
    d = hit.sum(dims)
    E = (dur - offset).clip(min=0.0).sum(dims)
    lam = d / E
    alpha = 1.0 - confidence

    def ci(d_: Any, e_: Any) -> tuple[Any, Any]:
        d_ = np.asarray(d_, dtype=float)
        lo = np.where(d_ > 0, stats.chi2.ppf(alpha / 2, 2 * np.maximum(d_, 1)) / (2 * e_), 0.0)
        hi = stats.chi2.ppf(1 - alpha / 2, 2 * d_ + 2) / (2 * e_)
        return lo, hi

    lo, hi = xr.apply_ufunc(ci, d, E, output_core_dims=[[], []], dask="parallelized", output_dtypes=[float, float])
    units = dur.attrs.get("units", "1")
    runits = f"1/({units})" if units not in ("1", "") else "1"
    return estimate(lam, lam / np.sqrt(d), long_name="escape rate", units=runits,
                    estimator="exponential MLE with right-censoring, d / exposure",
                    method=f"chi-square interval, confidence {confidence:g}",
                    ci_low=lo, ci_high=hi, mean_time=(1.0 / lam).assign_attrs(units=units), n_events=d, exposure=E)


def censored_mean(duration: Any, reached: Any, tail_start: float | None = None) -> dict[str, Any]:
    r"""Mean of a waiting time from right-censored samples, by a constant-hazard (exponential) tail.

    Samples :math:`D_i = \min(T_i, c_i)` with :math:`\delta_i = 1[T_i \le c_i]`. With no censoring this is
    the sample mean (model-free). Otherwise the hazard is taken constant after :math:`t_0` = ``tail_start``
    (default: half the smallest censoring time; :math:`t_0 \le \min c_i` so that :math:`\min(T_i, t_0)`
    is observed for every sample):

    .. math::
        \hat m = \overline{\min(D, t_0)} + \hat S(t_0)/\hat\lambda,\qquad
        \hat S(t_0) = \overline{1[D > t_0]},\qquad
        \hat\lambda = \frac{\#\{i: \delta_i = 1, D_i > t_0\}}{\sum_i (D_i - t_0)_+},

    the maximum-likelihood estimate of a piecewise model (empirical before :math:`t_0`, exponential after;
    Cox & Oakes 1984, *Analysis of Survival Data*, §3.2 and §6.2). Why an exponential tail: a first passage
    or an absorption of a Markov process from a confining well or a finite chain has a survival function
    that decays as :math:`C e^{-\lambda_1 t}` at long times, :math:`\lambda_1` the smallest rate of the
    process killed at the target (its quasi-stationary decay; e.g. Collet, Martínez & San Martín 2013,
    *Quasi-Stationary Distributions*, ch. 2-3), so the tail is exponential once the fast modes have decayed —
    check on the survival plot (a straight line on a log scale after :math:`t_0`). The restricted mean
    :math:`\overline{\min(D, c)}` (``restricted_mean``) needs no model but is biased low. The standard error
    is the delta method over independent samples (``m = a + b e / c`` in per-sample means).

    Returns
    -------
    dict
        ``value``, ``standard_error``, ``restricted_mean``, ``n``, ``n_events``, ``n_censored``,
        ``tail_start``, ``tail_rate``, ``tail_events``, ``method``.
    """
    D = np.asarray(duration, dtype=float).ravel()
    hit = np.asarray(reached, dtype=bool).ravel()
    ok = np.isfinite(D)
    D, hit = D[ok], hit[ok]
    n = D.size
    if n < 2:
        raise ValidationError(f"A mean waiting time needs at least 2 samples. Got {n}.")
    out: dict[str, Any] = dict(n=n, n_events=int(hit.sum()), n_censored=int((~hit).sum()),
                               restricted_mean=float(D.mean()), tail_start=np.nan, tail_rate=np.nan, tail_events=0)
    if hit.all():
        out.update(value=float(D.mean()), standard_error=float(D.std(ddof=1) / np.sqrt(n)),
                   method="sample mean (no censoring)")
        return out
    c_min = float(D[~hit].min())
    t0 = 0.5 * c_min if tail_start is None else check_real("tail_start", tail_start, "censored_mean", ge=0.0)
    if t0 > c_min:
        raise ValidationError(f"The 'tail_start' parameter ({t0:g}) must not exceed the earliest censoring time "
                              f"({c_min:g}): before it every waiting time must be observed.")
    a = np.minimum(D, t0)
    b = (D > t0).astype(float)
    e = np.clip(D - t0, 0.0, None)
    c = (hit & (D > t0)).astype(float)
    if c.sum() == 0:
        raise ValidationError(f"No event after the tail start t0 = {t0:g} ({int((~hit).sum())} of {n} censored): the "
                              "rate of the tail cannot be estimated. Run longer, or lower tail_start (if some never get "
                              "there, the mean is infinite).")
    am, bm, em, cm = a.mean(), b.mean(), e.mean(), c.mean()
    value = am + bm * em / cm
    z = a + (em / cm) * b + (bm / cm) * e - (bm * em / cm**2) * c
    out.update(value=float(value), standard_error=float(z.std(ddof=1) / np.sqrt(n)), tail_start=float(t0),
               tail_rate=float(cm / em), tail_events=int(c.sum()),
               method=f"empirical before t0 = {t0:g}, exponential tail after (censored MLE), delta-method SE")
    return out


def mean_first_passage_time(passages: xr.Dataset, *, dims: str | Iterable[str] | None = None,
                            tail_start: float | None = None) -> xr.Dataset:
    r"""Mean of the passage times, with censored passages handled, and its standard error.

    Without censoring: the sample mean, :math:`\mathrm{SE} = \mathrm{sd}/\sqrt n`. With passages that did
    not reach the target by the end of the run: the exponential-tail estimate of :func:`censored_mean`
    (empirical up to ``tail_start``, constant hazard after; default half the earliest censoring time),
    pooled over ``dims``. Also returns ``restricted_mean`` (mean observed time, a lower bound),
    ``n_events``, ``n_censored`` and ``tail_rate``.
    """
    owner = "mean_first_passage_time"
    dims = _passage_dims(passages, dims, owner)
    dur = passages["duration"]
    units = dur.attrs.get("units", "1")
    if not bool((~passages["reached"]).any()):
        n = dur.count(dims)
        return estimate(dur.mean(dims), dur.std(dims, ddof=1) / np.sqrt(n), long_name="mean first-passage time",
                        units=units, estimator="sample mean of passage times", method="independent passages",
                        n_events=n)
    extra = [d for d in dur.dims if d not in dims]
    if extra:
        raise ValidationError(f"{owner} with censored passages pools every dimension: select {extra} first.")
    r = censored_mean(dur.values, passages["reached"].values, tail_start)
    return estimate(r["value"], r["standard_error"], long_name="mean first-passage time", units=units,
                    estimator="mean passage time with an exponential tail for censored passages",
                    method=r["method"], restricted_mean=r["restricted_mean"], n_events=r["n_events"],
                    n_censored=r["n_censored"], tail_start=r["tail_start"], tail_rate=r["tail_rate"])


def survival_function(passages: xr.Dataset, *, confidence: float = 0.95) -> xr.Dataset:
    r"""Kaplan–Meier estimate of :math:`P(\text{passage time} > t)` with Greenwood's standard error.

    :math:`\hat S(t) = \prod_{t_i\le t}(1 - d_i/n_i)` (Kaplan & Meier 1958, JASA 53, 457) by
    :func:`scipy.stats.ecdf` on :class:`scipy.stats.CensoredData`, evaluated at the distinct event times;
    :math:`\mathrm{Var}\,\hat S = \hat S^2 \sum_{t_i\le t} d_i/(n_i(n_i-d_i))` (Greenwood 1926), and the
    "exponential Greenwood" (log-log) interval of SciPy at ``confidence``. Over all passages pooled.
    Returns ``value``, ``standard_error``, ``ci_low`` and ``ci_high`` along dimension ``duration`` (the
    distinct event times, starting at 0).
    """
    _passage_dims(passages, None, "survival_function")
    dur = np.asarray(passages["duration"].values, dtype=float).ravel()
    hit = np.asarray(passages["reached"].values, dtype=bool).ravel()
    ok = np.isfinite(dur)
    times, S, se, lo, hi = kaplan_meier(dur[ok], hit[ok], check_real("confidence", confidence, "survival_function",
                                                                       gt=0.0, lt=1.0))
    units = passages["duration"].attrs.get("units", "1")
    coords = {"duration": ("duration", times, {"long_name": "passage time", "units": units})}
    da = lambda v: xr.DataArray(v, dims="duration", coords=coords)  # noqa: E731
    return estimate(da(S), da(se), long_name="survival probability", units="1", estimator="Kaplan-Meier (scipy.stats.ecdf)",
                    method="Greenwood; interval: exponential Greenwood (log-log)", ci_low=da(lo), ci_high=da(hi))


def kaplan_meier(duration: np.ndarray, reached: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, ...]:
    """``(times, S, SE, ci_low, ci_high)`` at 0 and the distinct event times (see :func:`survival_function`)."""
    from scipy import stats

    dur = np.asarray(duration, dtype=float)
    hit = np.asarray(reached, dtype=bool)
    times = np.unique(dur[hit])
    if times.size == 0:
        one = np.ones(1)
        return np.zeros(1), one, np.zeros(1), one, one
    sf = stats.ecdf(stats.CensoredData(uncensored=dur[hit], right=dur[~hit])).sf
    S = sf.evaluate(times)
    at_risk = dur.size - np.searchsorted(np.sort(dur), times, side="left")
    events = np.bincount(np.searchsorted(times, dur[hit]), minlength=times.size)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined where S is 0 or 1: filled below
        g = np.cumsum(np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0))
        ci = sf.confidence_interval(confidence, method="log-log")
        lo, hi = ci.low.evaluate(times), ci.high.evaluate(times)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, S)
    se = S * np.sqrt(g)
    if times[0] == 0.0:  # events at time 0: S(0) < 1 is the first entry
        return times, S, se, lo, hi
    cat = lambda first, v: np.concatenate([[first], v])  # noqa: E731
    return cat(0.0, times), cat(1.0, S), cat(0.0, se), cat(1.0, lo), cat(1.0, hi)
