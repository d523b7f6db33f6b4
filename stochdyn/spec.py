"""Study specs: TOML files that name a target, an integrator, run settings and known answers.

A spec has the tables ``[model]`` (name, description), one target table (``[landscape]``, or
another registered in :data:`TARGET_BUILDERS`), ``[integrator]``, ``[run]`` and optionally
``[expected]``::

    [model]
    name = "double_well"
    [landscape]
    type = "DoubleWell"
    dim = 2
    [integrator]
    type = "EulerMaruyama"
    dt = 1e-3
    temperature = 0.3333333333333333
    [run]
    n_replicas = 10000
    n_steps = 10000
    record_every = 100
    seed = 0
    x0 = [-1.0, 0.0]
    [expected]        # ensemble statistics of the final record, compared with z-scores
    var_x1 = 0.3333333333333333

Every problem is reported as a :class:`SpecError`: one line naming the file, the table, the key
and what is allowed.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._validation import ValidationError
from .integrators.base import INTEGRATORS, Integrator, integrator_from_dict
from .landscapes.base import landscape_from_dict

__all__ = ["Spec", "SpecError", "load_spec", "parse_spec", "run_spec", "TARGET_BUILDERS", "observable", "summarize"]

#: target table name -> builder from the table's dict (other families register theirs here)
TARGET_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {"landscape": landscape_from_dict}

RUN_KEYS: dict[str, str] = {
    "n_replicas": "integer >= 1",
    "n_steps": "integer >= 1",
    "record_every": "integer >= 1",
    "seed": "integer >= 0",
    "x0": "a point [x_0, ..., x_{d-1}] or one point per replica",
    "x0_file": "path of a .npy file with x0 (relative to the spec)",
    "x0_population": "one population [[x_0, ...], ...] (population_size rows) given to every replica",
    "chunk_steps": "integer >= 1",
    "progress": "true or false",
}
MODEL_KEYS = ("name", "description", "reference")


class SpecError(ValidationError):
    """A spec file is missing, unreadable or has a bad key or value."""


@dataclass
class Spec:
    """A parsed, validated spec."""

    name: str
    target: Any
    integrator: Integrator
    run: dict[str, Any]
    expected: dict[str, float] = field(default_factory=dict)
    description: str = ""
    source: str = "<spec>"
    sweep: dict[str, list[Any]] | None = None
    until: Any = None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(data, base_dir=path.parent, source=str(path))


def _fail(source: str, where: str, msg: str) -> SpecError:
    return SpecError(f"{source}: {where}: {msg}")


def parse_spec(data: dict[str, Any], base_dir: Path | str = ".", source: str = "<spec>") -> Spec:
    """Validate a spec given as a dict (as read from TOML)."""
    base_dir = Path(base_dir)
    known = {"model", "integrator", "run", "expected", "sweep", "until", *TARGET_BUILDERS}
    for key in data:
        if key not in known:
            raise _fail(source, f"[{key}]", f"unknown table; allowed tables: {', '.join(sorted(known))}")
    targets = [k for k in TARGET_BUILDERS if k in data]
    if len(targets) != 1:
        raise _fail(source, "spec", f"needs exactly one target table, one of [{'], ['.join(TARGET_BUILDERS)}]")
    for key in ("integrator", "run"):
        if key not in data:
            raise _fail(source, "spec", f"missing table [{key}]")
        if not isinstance(data[key], dict):
            raise _fail(source, f"[{key}]", "must be a table")

    model = data.get("model", {})
    for key in model:
        if key not in MODEL_KEYS:
            raise _fail(source, f"[model] {key}", f"unknown key; allowed keys: {', '.join(MODEL_KEYS)}")
    name = str(model.get("name", Path(source).stem))

    tname = targets[0]
    try:
        target = TARGET_BUILDERS[tname](_resolve_files(dict(data[tname]), base_dir, source, tname))
    except SpecError:
        raise
    except ValidationError as exc:
        raise _fail(source, f"[{tname}]", str(exc)) from None

    integ = dict(data["integrator"])
    if "type" not in integ:
        raise _fail(source, "[integrator] type", f"missing; one of {', '.join(sorted(INTEGRATORS))}")
    try:
        integrator = integrator_from_dict(integ)
        integrator.check_target(target)
    except ValidationError as exc:
        raise _fail(source, "[integrator]", str(exc)) from None

    run = dict(data["run"])
    for key in run:
        if key not in RUN_KEYS:
            raise _fail(source, f"[run] {key}", f"unknown key; allowed keys: {', '.join(RUN_KEYS)}")
    for key in ("n_replicas", "n_steps"):
        if key not in run:
            raise _fail(source, f"[run] {key}", f"missing; {RUN_KEYS[key]}")
    for key in ("n_replicas", "n_steps", "record_every", "seed", "chunk_steps"):
        if key in run:
            v = run[key]
            lo = 0 if key == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise _fail(source, f"[run] {key}", f"must be an integer >= {lo}; got {v!r}")
    if "progress" in run and not isinstance(run["progress"], bool):
        raise _fail(source, "[run] progress", f"must be true or false; got {run['progress']!r}")
    if sum(k in run for k in ("x0", "x0_file", "x0_population")) > 1:
        raise _fail(source, "[run]", "give one of x0, x0_file or x0_population")
    if "x0_population" in run:
        pop = np.asarray(run.pop("x0_population"), dtype=float)
        n = getattr(integrator, "population_size", None)
        if n is None or pop.ndim != 2 or pop.shape[0] != n:
            raise _fail(source, "[run] x0_population", f"needs a population integrator and {n} rows (population_size) "
                        f"of the dimension; got shape {pop.shape}")
        run["x0"] = np.broadcast_to(pop, (int(run["n_replicas"]),) + pop.shape)
    if "x0_file" in run:
        f = base_dir / str(run.pop("x0_file"))
        if not f.is_file():
            raise _fail(source, "[run] x0_file", f"no such file: {f}")
        try:
            run["x0"] = np.load(f)
        except Exception as exc:
            raise _fail(source, "[run] x0_file", f"cannot read {f} as .npy: {exc}") from None
    if "x0" in run:
        try:
            integrator.prepare_x0(run["x0"], target, int(run["n_replicas"]))
        except ValidationError as exc:
            raise _fail(source, "[run] x0", str(exc)) from None
    rec = run.get("record_every", 1)
    if run["n_steps"] % rec:
        raise _fail(source, "[run] n_steps", f"must be a multiple of record_every ({rec}); got {run['n_steps']}")

    expected = dict(data.get("expected", {}))
    for key, v in expected.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _fail(source, f"[expected] {key}", f"must be a finite number; got {v!r}")
        try:
            _parse_observable(key, integrator.dim(target))
        except ValueError as exc:
            raise _fail(source, f"[expected] {key}", str(exc)) from None
    grid = _parse_sweep(data["sweep"], source, integrator, target) if "sweep" in data else None
    until = _parse_until(data["until"], source, integrator, target) if "until" in data else None
    return Spec(name=name, target=target, integrator=integrator, run=run, expected={k: float(v) for k, v in expected.items()},
                description=str(model.get("description", "")), source=source, sweep=grid, until=until)


def _parse_until(table: Any, source: str, integrator: Integrator, target: Any) -> Any:
    """``[until]`` (one rule: ``type = "Fixation"``, parameters) or ``[[until]]`` (rules combined with ``|``)."""
    from .stopping import rule_from_dict

    try:
        rule = rule_from_dict(table)
        rule.check_target(integrator, target)
    except ValidationError as exc:
        raise _fail(source, "[until]", str(exc)) from None
    return rule


def _parse_sweep(table: Any, source: str, integrator: Integrator, target: Any) -> dict[str, list[Any]]:
    """``[sweep]`` as ``"integrator.dt" = [...]`` keys or ``[sweep.integrator]``/``[sweep.landscape]`` tables."""
    from .ensemble.sweeps import _apply, sweep_points

    if not isinstance(table, dict) or not table:
        raise _fail(source, "[sweep]", "must be a table of parameter value lists")
    grid: dict[str, list[Any]] = {}
    for key, val in table.items():
        if isinstance(val, dict):
            for sub, vals in val.items():
                grid[f"{key}.{sub}"] = vals
        else:
            grid[key] = val
    try:
        _, _, pts = sweep_points(grid=grid)
        for p in pts:
            _apply(integrator, target, p)
    except ValidationError as exc:
        raise _fail(source, "[sweep]", str(exc)) from None
    return grid


def _resolve_files(table: dict[str, Any], base_dir: Path, source: str, tname: str) -> dict[str, Any]:
    """Keys ending in ``_file`` name files relative to the spec; check they exist and make them absolute."""
    for key, v in list(table.items()):
        if key.endswith("_file"):
            f = base_dir / str(v)
            if not f.is_file():
                raise _fail(source, f"[{tname}] {key}", f"no such file: {f}")
            table[key] = str(f)
    return table


def run_spec(spec: Spec, progress: bool | None = None, store: str | Path | None = None, resume: bool = False,
             workers: int | str | None = None, scheduler: str | None = None):
    """Simulate a spec and return the Dataset (the spec's name and source are added to the attributes).

    With ``store`` the run streams into that zarr store with checkpoints (and ``resume``
    continues an interrupted one); ``workers``/``scheduler`` split the replicas into shards run on
    Dask (bit-identical to the serial run); see :func:`stochdyn.simulate`.
    """
    from .ensemble.driver import simulate

    run = dict(spec.run)
    seed = run.pop("seed", None)
    prog = run.pop("progress", progress)
    extra = {} if store is None else {"store": store, "resume": resume}
    if workers is not None or scheduler is not None:
        extra.update(workers=workers, scheduler=scheduler)
    if spec.until is not None:
        extra["until"] = spec.until
    ds = simulate(spec.integrator, spec.target, run.pop("x0", None), rng=seed, progress=prog, **run, **extra)
    ds.attrs["spec_name"] = spec.name
    ds.attrs["spec_source"] = spec.source
    if store is not None:
        import zarr

        zarr.open_group(str(store), mode="r+").attrs.update({"spec_name": spec.name, "spec_source": spec.source})
    return ds


# -- observables of the final record, for [expected] and the run summary ------------------------
_OBS = re.compile(r"^(?:(mean|var|p_positive)_x(\d+)|(mean_energy|fixation_probability|fixation_time|mean_hitting_time"
                  r"|stopped_fraction))(?:__\w+)?$")


def _parse_observable(name: str, dim: int) -> tuple[str, int | None]:
    m = _OBS.match(name)
    if not m:
        raise ValueError("unknown observable; use mean_x<i>, var_x<i>, p_positive_x<i>, mean_energy, or for runs "
                         "with [until]: fixation_probability, fixation_time, mean_hitting_time, stopped_fraction "
                         "(any of them with a suffix __label to print one value several times, e.g. "
                         "fixation_probability__kimura)")
    if m.group(3):
        return m.group(3), None
    i = int(m.group(2))
    if i >= dim:
        raise ValueError(f"coordinate {i} does not exist in dimension {dim}")
    return m.group(1), i


#: observables of runs with [until]
_STOP_KINDS = ("fixation_probability", "fixation_time", "mean_hitting_time", "stopped_fraction")


def _estimate_of(func: Callable, value: str = "value", se: str = "standard_error") -> Callable:
    def get(ds) -> tuple[float, float]:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # censoring is reported by the run summary
            est = func(ds)
        return float(est[value]), float(est[se])

    return get


def _stopped_fraction(ds) -> tuple[float, float]:
    p = float(ds["stopped"].mean())
    n = ds.sizes["replica"]
    return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def _stop_observables() -> dict[str, Callable]:
    from .analysis import fixation_probability, hitting_times

    return {"fixation_probability": _estimate_of(fixation_probability),
            "fixation_time": _estimate_of(fixation_probability, "fixation_time", "fixation_time_standard_error"),
            "mean_hitting_time": _estimate_of(hitting_times), "stopped_fraction": _stopped_fraction}


def observable(ds, name: str) -> tuple[float, float]:
    """An ensemble statistic of the final record and its standard error over independent replicas.

    ``mean_x<i>``, ``var_x<i>`` (SE from the fourth central moment), ``p_positive_x<i>``
    (binomial SE) and ``mean_energy``; diverged replicas are excluded. Runs with ``[until]``:
    ``fixation_probability`` and ``fixation_time`` (:func:`stochdyn.analysis.fixation_probability`),
    ``mean_hitting_time`` (:func:`stochdyn.analysis.hitting_times`) and ``stopped_fraction``.
    """
    kind, i = _parse_observable(name, ds.sizes.get("dim", 0))
    if kind in _STOP_KINDS:
        return _stop_observables()[kind](ds)
    live = ~ds["diverged"].values
    if kind == "mean_energy":
        v = ds["energy"].isel(time=-1).values[live]
    else:
        v = ds["x"].isel(time=-1).sel(dim=i).values[live]
    n = v.size
    if kind in ("mean", "mean_energy"):
        return float(v.mean()), float(v.std(ddof=1) / math.sqrt(n))
    if kind == "var":
        c = v - v.mean()
        m2 = float(np.mean(c**2))
        m4 = float(np.mean(c**4))
        return float(np.var(v, ddof=1)), math.sqrt(max(m4 - m2 * m2, 0.0) / n)
    p = float(np.mean(v > 0))
    return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def summarize(ds, expected: dict[str, float] | None = None) -> str:
    """A short text summary of a run: what ran, how fast, the final ensemble, and checks against [expected]."""
    import json

    integ = json.loads(ds.attrs.get("integrator", "{}"))
    targ = json.loads(ds.attrs.get("target", "{}"))
    R = ds.sizes["replica"]
    n_steps = int(ds["step"].values[-1])
    secs = float(ds.attrs.get("elapsed_seconds", float("nan")))
    lines = [
        f"{integ.get('type')} on {targ.get('type')}: {R} replicas x {n_steps} steps "
        f"in {secs:.2f} s ({R * n_steps / secs:.3g} replica-steps/s; the first run in a new environment "
        f"includes compiling the kernels), seed {ds.attrs.get('seed')}",
        f"diverged replicas: {int(ds['diverged'].sum())}",
    ]
    if "stopped" in ds:
        lines.append(_stop_summary(ds))
    if "x" in ds and "dim" in ds["x"].dims and ds["x"].ndim == 3:
        for i in range(min(ds.sizes["dim"], 4)):
            m, se = observable(ds, f"mean_x{i}")
            v, sev = observable(ds, f"var_x{i}")
            lines.append(f"final x[{i}]: mean {m:+.4f} ± {se:.4f}, variance {v:.4f} ± {sev:.4f}")
    if expected:
        lines.append("checks against the model card (z = (simulated - expected) / standard error):")
        for key, val in expected.items():
            sim, se = observable(ds, key)
            z = (sim - val) / se if se > 0 else float("inf")
            lines.append(f"  {key:<16} simulated {sim:.5g} ± {se:.2g}   expected {val:.5g}   z = {z:+.2f}")
    return "\n".join(lines)


def _stop_summary(ds) -> str:
    """One line on a run with [until]: how many stopped, and the mean hitting time."""
    import json

    from .analysis import hitting_times

    n, k = ds.sizes["replica"], int(ds["stopped"].sum())
    rule = " | ".join(json.loads(ds.attrs.get("until_rules", "[]"))) or "the rule"
    line = f"stopped ({rule}): {k} of {n} replicas, {n - k} censored at the end"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ht = hitting_times(ds)
    units = ds["time"].attrs.get("units", "")
    units = "" if units == "1" else units
    out = [line, f"  mean hitting time {float(ht['value']):.5g} ± {float(ht['standard_error']):.2g} {units} "
                 f"({ht.attrs['method']})"]
    for k, name in enumerate(ht["rule_name"].values):
        if int(ht["rule_count"][k]):
            out.append(f"  stopped by {name}: {int(ht['rule_count'][k])}, mean time {float(ht['conditional_mean'][k]):.5g}"
                       f" ± {float(ht['conditional_standard_error'][k]):.2g} {units}")
    return "\n".join(out)
