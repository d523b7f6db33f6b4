r"""Runs that stop: fixation probabilities and hitting times, with censoring handled.

A run made with ``sd.simulate(..., until=RULE)`` (:mod:`stochdyn.stopping`) carries, per replica,
``stopped`` (False: censored at the end of the run), ``stop_step`` (−1 when censored), ``stop_time``
and ``stop_rule`` (which part of an ``|`` combination held). :func:`hitting_times` turns them into a
Kaplan–Meier survival function, a mean hitting time that accounts for the censored replicas, and mean
times conditional on the rule that fired; :func:`fixation_probability` counts fixed and lost
populations with an exact binomial interval.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import xarray as xr

from .._validation import ValidationError, check_int, check_real
from ._base import estimate
from .escape import censored_mean, kaplan_meier

__all__ = ["fixation_probability", "hitting_times", "clopper_pearson"]


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    r"""Exact (Clopper–Pearson) interval for a binomial proportion k/n.

    :math:`[B(\alpha/2; k, n-k+1),\ B(1-\alpha/2; k+1, n-k)]` with B the Beta quantile (Clopper & Pearson
    1934, Biometrika 26, 404), by :meth:`scipy.stats.binomtest(...).proportion_ci(method="exact")`; its
    coverage is at least ``confidence`` for every true proportion.
    """
    from scipy import stats

    if n == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _time_units(ds: xr.Dataset) -> str:
    return ds["time"].attrs.get("units", "1") if "time" in ds.coords else "1"


def _stop_data(ds: xr.Dataset, owner: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """``(duration, reached, horizon, live)`` per replica from a stopped run (diverged replicas excluded)."""
    if not isinstance(ds, xr.Dataset) or "stopped" not in ds or "stop_time" not in ds:
        raise ValidationError(f"{owner} takes the Dataset of a run made with sd.simulate(..., until=RULE) (variables "
                              "'stopped' and 'stop_time'); for passages detected at records use "
                              "sd.analysis.first_passage_times.")
    if ds["stopped"].dims != ("replica",):
        raise ValidationError(f"{owner} pools the replicas of one run: select other dimensions first "
                              f"(the 'stopped' variable has dims {ds['stopped'].dims}).")
    stopped = np.asarray(ds["stopped"].values, dtype=bool)
    horizon = float(ds["time"].values[-1])
    live = ~np.asarray(ds["diverged"].values, dtype=bool) if "diverged" in ds else np.ones_like(stopped)
    duration = np.where(stopped, np.asarray(ds["stop_time"].values, dtype=float), horizon)
    return duration, stopped, horizon, live


def _rule_labels(ds: xr.Dataset) -> list[str]:
    meanings = ds["stop_rule"].attrs.get("flag_meanings", "") if "stop_rule" in ds else ""
    labels = meanings.split()
    if not labels and "until" in ds.attrs:
        labels = [json.loads(ds.attrs["until"]).get("type", "rule")]
    return labels or ["rule"]


def hitting_times(ds: xr.Dataset, *, tail_start: float | None = None, confidence: float = 0.95) -> xr.Dataset:
    r"""Hitting (stopping) times of a run made with ``until=``: survival, mean, and means by rule.

    With :math:`D_i` the stop time of replica i or, if censored, the end of the run :math:`\tau`:

    * ``survival`` :math:`P(T > t)` along dimension ``duration`` — Kaplan–Meier by
      :func:`scipy.stats.ecdf` with Greenwood's standard error and the log-log interval at
      ``confidence`` (:func:`~stochdyn.analysis.survival_function`);
    * ``value`` / ``standard_error`` — the mean hitting time :math:`E[T]`: the sample mean when
      nothing is censored, else empirical up to ``tail_start`` (default :math:`\tau/2`) with an
      exponential tail fitted to the events after it (:func:`~stochdyn.analysis.censored_mean`, which
      says why a constant hazard is the right tail for absorption and escape, and how to check it);
      ``restricted_mean`` is :math:`E[\min(T,\tau)]`, model-free and biased low. When no replica stops
      after the tail start (e.g. optimisation runs stuck for good, for which :math:`E[T] = \infty`) the
      mean is NaN, with a warning, and the rest is still returned;
    * ``conditional_mean`` / ``conditional_standard_error`` along dimension ``rule`` — the mean time of
      the replicas stopped by each part of the rule (e.g. the conditional fixation and loss times of
      ``Fixation(allele=1) | Fixation(allele=0)``), with ``rule_count``. These condition on stopping
      before :math:`\tau`; they equal the conditional means of the process when ``n_censored`` is 0.

    Diverged replicas are left out. Times are in the run's time units (``stop_time``).
    """
    owner = "hitting_times"
    confidence = check_real("confidence", confidence, owner, gt=0.0, lt=1.0)
    duration, reached, horizon, live = _stop_data(ds, owner)
    duration, reached = duration[live], reached[live]
    units = _time_units(ds)
    try:
        r = censored_mean(duration, reached, tail_start)
    except ValidationError as exc:  # e.g. runs that never get there: E[T] is not identified (or infinite)
        if duration.size < 2:
            raise
        warnings.warn(f"hitting_times: no mean hitting time: {exc}", stacklevel=2)
        r = dict(value=np.nan, standard_error=np.nan, restricted_mean=float(duration.mean()),
                 n_events=int(reached.sum()), n_censored=int((~reached).sum()), tail_start=np.nan, tail_rate=np.nan,
                 method=f"not identified: {exc}")
    times, S, se, lo, hi = kaplan_meier(duration, reached, confidence)
    labels = _rule_labels(ds)
    rule = np.asarray(ds["stop_rule"].values)[live] if "stop_rule" in ds else np.where(reached, 0, -1)
    cm, cse, cnt = [], [], []
    for k in range(len(labels)):
        t = duration[reached & (rule == k)]
        cnt.append(t.size)
        cm.append(t.mean() if t.size else np.nan)
        cse.append(t.std(ddof=1) / np.sqrt(t.size) if t.size > 1 else np.nan)
    tc = {"duration": ("duration", times, {"long_name": "hitting time", "units": units})}
    rc = {"rule": ("rule", np.arange(len(labels)), {"long_name": "part of the stopping rule", "units": "1"}),
          "rule_name": ("rule", np.array(labels, dtype=str))}
    surv = lambda v, name: xr.DataArray(v, dims="duration", coords=tc, attrs={"long_name": name, "units": "1"})  # noqa: E731
    by_rule = lambda v, name, u: xr.DataArray(np.asarray(v), dims="rule", coords=rc,  # noqa: E731
                                              attrs={"long_name": name, "units": u})
    return estimate(
        r["value"], r["standard_error"], long_name="mean hitting time", units=units,
        estimator="mean stop time; censored replicas by an exponential tail (see censored_mean)", method=r["method"],
        restricted_mean=xr.DataArray(r["restricted_mean"], attrs={"long_name": "restricted mean E[min(T, horizon)]",
                                                                 "units": units}),
        n_events=r["n_events"], n_censored=r["n_censored"], horizon=horizon, tail_start=r["tail_start"],
        tail_rate=r["tail_rate"],
        survival=surv(S, "survival probability P(T > t) (Kaplan-Meier)"),
        survival_standard_error=surv(se, "standard error of the survival probability (Greenwood)"),
        survival_ci_low=surv(lo, f"lower {confidence:g} bound of the survival probability (log-log)"),
        survival_ci_high=surv(hi, f"upper {confidence:g} bound of the survival probability (log-log)"),
        conditional_mean=by_rule(cm, "mean hitting time of the replicas stopped by this rule", units),
        conditional_standard_error=by_rule(cse, "standard error of the conditional mean", units),
        rule_count=by_rule(np.asarray(cnt, dtype=np.int64), "replicas stopped by this rule", "1"),
    )


def fixation_probability(ds: xr.Dataset, *, allele: int = 1, site: int = 0, confidence: float = 0.95) -> xr.Dataset:
    r"""Probability that ``allele`` fixes at ``site``, with its standard error and an exact binomial interval.

    From the final record of a Wright–Fisher or Moran run on genotypes (its ``allele_frequency``): a
    population is *fixed* if the allele's frequency is 1, *lost* if 0, *censored* otherwise (still
    polymorphic at the end; with ``until=sd.stopping.Fixation()`` the final record repeats the state at
    absorption). With :math:`k` fixed among :math:`n` absorbed:

    * ``value`` :math:`\hat p = k/n`, ``standard_error`` :math:`\sqrt{\hat p(1-\hat p)/n}`;
    * ``ci_low``/``ci_high``: the Clopper–Pearson interval (:func:`clopper_pearson`); with censored
      populations, the union over every fate they could have, :math:`[\mathrm{CP}_{lo}(k, n+c),
      \mathrm{CP}_{hi}(k+c, n+c)]`, which covers p whatever they do (a warning says how many);
    * ``fixation_time`` / ``loss_time`` (with standard errors): mean absorption time conditional on
      fixation / on loss, from ``stop_time`` when the run stopped (else the first record at which the
      frequency reached 1 / 0, resolved to the record spacing); ``n_fixed``, ``n_lost``, ``n_censored``.

    Diverged replicas are left out.
    """
    owner = "fixation_probability"
    if not isinstance(ds, xr.Dataset) or "allele_frequency" not in ds:
        raise ValidationError(f"{owner} takes the Dataset of a WrightFisher or Moran run on genotypes (it needs the "
                              "'allele_frequency' variable).")
    confidence = check_real("confidence", confidence, owner, gt=0.0, lt=1.0)
    freq = ds["allele_frequency"]
    n_sites, n_alleles = freq.sizes["dim"], freq.sizes["allele"]
    site = check_int("site", site, owner, ge=0, lt=n_sites)
    allele = check_int("allele", allele, owner, ge=0, lt=n_alleles)
    f = np.asarray(freq.isel(dim=site, allele=allele).values, dtype=float)  # (replica, time)
    live = ~np.asarray(ds["diverged"].values, dtype=bool) if "diverged" in ds else np.ones(f.shape[0], bool)
    f = f[live]
    final = f[:, -1]
    fixed, lost = final == 1.0, final == 0.0
    k, n_abs = int(fixed.sum()), int((fixed | lost).sum())
    c = int(f.shape[0] - n_abs)
    p = k / n_abs if n_abs else np.nan
    se = np.sqrt(p * (1.0 - p) / n_abs) if n_abs else np.nan
    if c:
        lo, _ = clopper_pearson(k, n_abs + c, confidence)
        _, hi = clopper_pearson(k + c, n_abs + c, confidence)
        warnings.warn(f"{c} of {f.shape[0]} populations were still polymorphic at the end of the run: the estimate "
                      "counts the absorbed ones only, and the interval covers every fate of the others. Run longer "
                      "(with until=sd.stopping.Fixation() it costs only the unfinished populations).", stacklevel=2)
    else:
        lo, hi = clopper_pearson(k, n_abs, confidence)
    # conditional absorption times
    if "stop_time" in ds and "stopped" in ds:
        t_stop = np.asarray(ds["stop_time"].values, dtype=float)[live]
    else:
        t = np.asarray(ds["time"].values, dtype=float)
        absorbed = (f == 1.0) | (f == 0.0)
        t_stop = np.where(absorbed.any(axis=1), t[absorbed.argmax(axis=1)], np.nan)
    units = _time_units(ds)

    def mean_se(mask: np.ndarray) -> tuple[float, float]:
        v = t_stop[mask]
        v = v[np.isfinite(v)]
        return (float(v.mean()) if v.size else np.nan, float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else np.nan)

    (tf, tfse), (tl, tlse) = mean_se(fixed), mean_se(lost)
    u = lambda v, name: xr.DataArray(v, attrs={"long_name": name, "units": units})  # noqa: E731
    return estimate(p, se, long_name=f"fixation probability of allele {allele} at site {site}", units="1",
                    estimator="fixed / absorbed populations at the end of the run",
                    method=f"binomial; interval: Clopper-Pearson {confidence:g}" + (" (widened for censoring)" if c else ""),
                    ci_low=lo, ci_high=hi, n_fixed=k, n_lost=int(lost.sum()), n_censored=c,
                    fixation_time=u(tf, "mean time to fixation, given fixation"),
                    fixation_time_standard_error=u(tfse, "standard error of the mean fixation time"),
                    loss_time=u(tl, "mean time to loss, given loss"),
                    loss_time_standard_error=u(tlse, "standard error of the mean loss time"))
