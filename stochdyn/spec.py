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

``[expected]`` holds exact values the run must reproduce within its standard error (the model-card
tests check them). ``[compare]`` holds reference values printed beside the same statistics without
being checked — approximations such as Kimura's diffusion or Kramers' rate, whose difference from
the run is the point. A card with no exact theory has no ``[expected]`` and says why in
``[model] no_exact_theory = "..."``.

Every problem is reported as a :class:`SpecError`: one line naming the file, the table, the key
and what is allowed.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._validation import ValidationError
from .integrators.base import INTEGRATORS, Integrator, integrator_from_dict
from .landscapes.base import landscape_from_dict

__all__ = ["Spec", "SpecError", "load_spec", "parse_spec", "run_spec", "TARGET_BUILDERS", "observable", "summarize", "format_estimate"]

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
MODEL_KEYS = ("name", "description", "reference", "no_exact_theory")
#: largest integer accepted in [run] (steps and counts are int64)
MAX_INT = 2**63 - 1


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
    reference: str = ""
    until: Any = None
    compare: dict[str, float] = field(default_factory=dict)
    no_exact_theory: str = ""


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


def _did_you_mean(word: str, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(source: str, where: str, key: str, allowed: Any, what: str = "unknown key") -> SpecError:
    allowed = list(allowed)
    return _fail(source, where, f"{what}{_did_you_mean(key, allowed)}; allowed: {', '.join(map(str, allowed))}")


def _target_registry(tname: str) -> dict[str, type] | None:
    if tname == "landscape":
        from .landscapes.base import LANDSCAPES

        return LANDSCAPES
    if tname == "genotypes":
        from .fitness import GENOTYPE_LANDSCAPES

        return GENOTYPE_LANDSCAPES
    if tname == "problem":
        from .problems.base import PROBLEMS

        return PROBLEMS
    return None


def _init_keys(make: Callable[..., Any]) -> list[str] | None:
    """Keyword parameters of a class's constructor, or of a factory such as a bound ``from_data``
    (``None`` if it takes ``**kwargs``)."""
    params = list(inspect.signature(make).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_target_table(source: str, tname: str, table: dict[str, Any]) -> None:
    """Unknown target types and (for landscapes and genotypes) unknown keys, with a 'did you mean'."""
    registry = _target_registry(tname)
    if registry is None:
        return
    kind = table.get("type")
    if kind not in registry:
        what = "missing" if kind is None else f"unknown {tname} type {kind!r}"
        raise _unknown(source, f"[{tname}] type", str(kind), sorted(registry), what)
    keys = _init_keys(registry[kind]) if tname != "problem" else None  # problems also take data and file keys
    if keys is not None:
        for key in table:
            if key != "type" and key not in keys:
                raise _unknown(source, f"[{tname}] {key}", key, keys, f"unknown key for {tname} {kind}")


def _check_integrator_table(source: str, table: dict[str, Any]) -> None:
    import dataclasses

    kind = table.get("type")
    if kind not in INTEGRATORS:
        what = "missing" if kind is None else f"unknown integrator type {kind!r}"
        raise _unknown(source, "[integrator] type", str(kind), sorted(INTEGRATORS), what)
    fields = [f.name for f in dataclasses.fields(INTEGRATORS[kind])]
    for key in table:
        if key != "type" and key not in fields:
            raise _unknown(source, f"[integrator] {key}", key, fields, f"unknown key for integrator {kind}")


def parse_spec(data: dict[str, Any], base_dir: Path | str = ".", source: str = "<spec>") -> Spec:
    """Validate a spec given as a dict (as read from TOML)."""
    base_dir = Path(base_dir)
    known = {"model", "integrator", "run", "expected", "compare", "sweep", "until", *TARGET_BUILDERS}
    for key in data:
        if key not in known:
            raise _unknown(source, f"[{key}]", key, sorted(known), "unknown table")
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
            raise _unknown(source, f"[model] {key}", key, MODEL_KEYS)
    name = str(model.get("name", Path(source).stem))

    tname = targets[0]
    if not isinstance(data[tname], dict):
        raise _fail(source, f"[{tname}]", "must be a table")
    _check_target_table(source, tname, data[tname])
    try:
        target = TARGET_BUILDERS[tname](_resolve_files(dict(data[tname]), base_dir, source, tname))
    except SpecError:
        raise
    except ValidationError as exc:
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        registry = _target_registry(tname)
        if bad and registry and data[tname].get("type") in registry:
            cls = registry[data[tname]["type"]]
            keys = [k for k in (_init_keys(cls) or []) + (_init_keys(getattr(cls, "from_data", cls)) or [])
                    if k not in ("self", "data", "cls")]
            raise _unknown(source, f"[{tname}] {bad.group(1)}", bad.group(1), dict.fromkeys(keys),
                           f"unknown key for {tname} {data[tname]['type']}") from None
        raise _fail(source, f"[{tname}]", str(exc)) from None

    integ = dict(data["integrator"])
    _check_integrator_table(source, integ)
    try:
        integrator = integrator_from_dict(integ)
        integrator.check_target(target)
    except ValidationError as exc:
        raise _fail(source, "[integrator]", str(exc)) from None

    run = dict(data["run"])
    for key in run:
        if key not in RUN_KEYS:
            raise _unknown(source, f"[run] {key}", key, RUN_KEYS)
    for key in ("n_replicas", "n_steps"):
        if key not in run:
            raise _fail(source, f"[run] {key}", f"missing; {RUN_KEYS[key]}")
    for key in ("n_replicas", "n_steps", "record_every", "seed", "chunk_steps"):
        if key in run:
            v = run[key]
            lo = 0 if key == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise _fail(source, f"[run] {key}", f"must be an integer >= {lo}; got {v!r}")
            if key != "seed" and v > MAX_INT:
                raise _fail(source, f"[run] {key}", f"must be an integer <= {MAX_INT} (2**63 - 1); got {v!r}")
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
        try:  # a single point is checked for one replica: nothing of the run's size is allocated here
            integrator.prepare_x0(run["x0"], target, int(run["n_replicas"]) if np.ndim(run["x0"]) >= 2 else 1)
        except ValidationError as exc:
            raise _fail(source, "[run] x0", str(exc)) from None
    rec = run.get("record_every", 1)
    if run["n_steps"] % rec:
        raise _fail(source, "[run] n_steps", f"must be a multiple of record_every ({rec}); got {run['n_steps']}")

    expected, compare = (_parse_values(data, table, source, integrator, target, run) for table in ("expected", "compare"))
    grid = _parse_sweep(data["sweep"], source, integrator, target) if "sweep" in data else None
    until = _parse_until(data["until"], source, integrator, target) if "until" in data else None
    return Spec(name=name, target=target, integrator=integrator, run=run, expected=expected,
                description=str(model.get("description", "")), source=source, sweep=grid,
                reference=str(model.get("reference", "")), until=until, compare=compare,
                no_exact_theory=str(model.get("no_exact_theory", "")))


def _parse_values(data: dict[str, Any], table: str, source: str, integrator: Integrator, target: Any,
                  run: dict[str, Any]) -> dict[str, float]:
    """``[expected]`` or ``[compare]``: observable name -> a finite number."""
    values = dict(data.get(table, {}))
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _fail(source, f"[{table}] {key}", f"must be a finite number; got {v!r}")
        try:
            _check_observable(key, integrator, target, run)
        except ValueError as exc:
            raise _fail(source, f"[{table}] {key}", str(exc)) from None
    return {k: float(v) for k, v in values.items()}


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


def _relative(path: str) -> str:
    """A path as stored in attributes: relative to the current folder when inside it, else its name."""
    p = os.path.abspath(path)
    rel = os.path.relpath(p)
    return rel if not rel.startswith("..") else os.path.basename(p)


def spec_attrs(spec: Spec, history: str | None = None) -> dict[str, str]:
    """Provenance of a spec run: its name and (relative) path, the model card's description
    (``comment``) and reference (``references``), and optionally a ``history`` line (the command)."""
    import datetime as _dt

    out = {"spec_name": spec.name, "spec_source": _relative(spec.source)}
    if spec.description:
        out["comment"] = spec.description
    if spec.reference:
        out["references"] = spec.reference
    if history:
        out["history"] = f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}: {history}"
    return out


def _relative_file_keys(attrs: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """Target ``*_file`` paths made absolute for loading are stored relative to the spec's folder."""
    import json

    base = os.path.dirname(os.path.abspath(spec.source))

    def rel(v: Any) -> Any:
        return os.path.relpath(v, base) if isinstance(v, str) and os.path.isabs(v) else v

    out: dict[str, Any] = {}
    if "target" in attrs:
        try:
            targ = json.loads(attrs["target"])
        except (TypeError, ValueError):
            targ = None
        if isinstance(targ, dict) and any(k.endswith("_file") for k in targ):
            out["target"] = json.dumps({k: rel(v) if k.endswith("_file") else v for k, v in targ.items()})
    out.update({k: rel(v) for k, v in attrs.items() if k.startswith("target_") and k.endswith("_file")})
    return out


def run_spec(spec: Spec, progress: bool | None = None, store: str | Path | None = None, resume: bool = False,
             history: str | None = None, workers: int | str | None = None, scheduler: str | None = None):
    """Simulate a spec and return the Dataset, with the spec's provenance in its attributes.

    Added attributes: ``spec_name``, ``spec_source`` (relative path), ``comment`` and ``references``
    (the model card's description and reference) and, if given, ``history`` (e.g. the command line).
    With ``store`` the run streams into that zarr store with checkpoints (and ``resume``
    continues an interrupted one); ``workers``/``scheduler`` split the replicas into shards run on
    Dask (bit-identical to the serial run); see :func:`stochdyn.simulate`.
    """
    from .ensemble.driver import simulate

    run = dict(spec.run)
    seed = run.pop("seed", None)
    prog = run.pop("progress", progress)
    extra: dict[str, Any] = {} if store is None else {"store": store, "resume": resume}
    if workers is not None or scheduler is not None:
        extra.update(workers=workers, scheduler=scheduler)
    if spec.until is not None:
        extra["until"] = spec.until
    ds = simulate(spec.integrator, spec.target, run.pop("x0", None), rng=seed, progress=prog, **run, **extra)
    new = {**spec_attrs(spec, history), **_relative_file_keys(ds.attrs, spec)}
    ds.attrs.update(new)
    if store is not None:
        from .ensemble.store import update_attrs

        update_attrs(store, new)
    return ds


# -- observables of the final record, for [expected] and the run summary ------------------------
_STATE = re.compile(r"^(mean|var|p_positive)_x(\d+)$")
_VAR = re.compile(r"^(mean|var)_([a-z][a-z0-9_]*?)(?:_x(\d+))?$")
_STEP = re.compile(r"^(.*)_step(\d+)$")
#: the state of a population or evolution-strategy replica: its population (or search) mean
_POP_MEAN = ("population_mean", "mean")
#: an optional suffix ``__label`` prints one observable several times (e.g. ``fixation_probability__kimura``)
_LABEL = re.compile(r"^(.*?)__\w+$")


def _parse_observable(name: str, dim: int, variables: dict[str, tuple[str, ...]] | None = None,
                      ) -> tuple[str, int | None, str | None, int | None]:
    """``(kind, coordinate, variable, step)`` of an observable name; ValueError if unknown.

    ``variables`` maps the run's per-replica variables to their extra dimensions (from the
    integrator); without it any variable name is accepted.
    """
    m = _LABEL.match(name)
    if m:
        name = m.group(1)
    if name in _STOP_KINDS:
        return name, None, None, None
    step = None
    m = _STEP.match(name)
    if m:
        name, step = m.group(1), int(m.group(2))
    m = _STATE.match(name)
    if m:
        coord = int(m.group(2))
        if coord >= dim:
            raise ValueError(f"coordinate {coord} does not exist in dimension {dim}")
        return m.group(1), coord, None, step
    m = _VAR.match(name)
    if not m:
        raise ValueError("unknown observable; use mean_x<i>, var_x<i>, p_positive_x<i> (the state, or a "
                         "population's mean), mean_<variable>, var_<variable> or mean_<variable>_x<i>, "
                         "var_<variable>_x<i> (a recorded variable), "
                         "each optionally with _step<k> (at step k instead of the last), or for runs with "
                         "[until]: fixation_probability, fixation_time, mean_hitting_time, stopped_fraction; "
                         "any of them with a suffix __label to print one value several times")
    kind, var, i = m.group(1), m.group(2), None if m.group(3) is None else int(m.group(3))
    if variables is not None:
        if var not in variables:
            raise ValueError(f"the run records no variable {var!r}; it records {', '.join(sorted(variables))}")
        if (variables[var] == ("dim",)) != (i is not None) or variables[var] not in ((), ("dim",)):
            raise ValueError(f"variable {var!r} has dimensions {variables[var] or '()'}: use {kind}_{var}"
                             + ("_x<i>" if variables[var] == ("dim",) else ""))
        if i is not None and i >= dim:
            raise ValueError(f"coordinate {i} does not exist in dimension {dim}")
    return kind, i, var, step


def _check_observable(name: str, integrator: Integrator, target: Any, run: dict[str, Any]) -> None:
    variables = {v.name: tuple(v.dims) for v in integrator.variables(target)}
    variables.pop("x", None)
    _, _, _, step = _parse_observable(name, integrator.dim(target), variables)
    rec, n = int(run.get("record_every", 1)), int(run["n_steps"])
    if step is not None and (step % rec or step > n):
        raise ValueError(f"step {step} is not recorded (records every {rec} steps up to {n})")


def _state(ds) -> Any:
    """Per-replica state over time: ``x`` (replica, time, dim), or a population's mean."""
    if "x" in ds and ds["x"].dims == ("replica", "time", "dim"):
        return ds["x"]
    for name in _POP_MEAN:
        if name in ds:
            return ds[name]
    raise ValueError("the run records neither x (replica, time, dim) nor a population mean")


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
    """An ensemble statistic of the final record (or of step k with ``_step<k>``) and its standard error
    over independent replicas.

    ``mean_x<i>``, ``var_x<i>`` (SE from the fourth central moment), ``p_positive_x<i>`` (binomial SE)
    of the state — positions or parameters, or for population and evolution-strategy runs the
    population (search) mean; ``mean_<variable>``, ``var_<variable>`` and ``mean_<variable>_x<i>``,
    ``var_<variable>_x<i>`` of a recorded per-replica variable (``mean_energy``, ``mean_best_energy``,
    ``mean_sigma``, ``mean_variance_x1``, ``var_v_x0``, ...). Diverged replicas are excluded. Runs with
    ``[until]``: ``fixation_probability`` and ``fixation_time`` (:func:`stochdyn.analysis.fixation_probability`),
    ``mean_hitting_time`` (:func:`stochdyn.analysis.hitting_times`) and ``stopped_fraction``.
    """
    kind, i, var, step = _parse_observable(name, ds.sizes.get("dim", 0))
    if kind in _STOP_KINDS:
        return _stop_observables()[kind](ds)
    live = ~ds["diverged"].values
    da = _state(ds) if var is None else ds[var]
    if step is None:
        da = da.isel(time=-1)
    else:
        k = np.flatnonzero(ds["step"].values == step)
        if not k.size:
            raise ValueError(f"step {step} is not recorded")
        da = da.isel(time=int(k[0]))
    if i is not None:
        da = da.sel(dim=i)
    v = np.asarray(da.values, dtype=float)[live]
    n = v.size
    if n < 2:  # every replica diverged (or one left): no estimate
        return float(v.mean()) if n else float("nan"), float("nan")
    if kind == "mean":
        return float(v.mean()), float(v.std(ddof=1) / math.sqrt(n))
    if kind == "var":
        c = v - v.mean()
        m2 = float(np.mean(c**2))
        m4 = float(np.mean(c**4))
        return float(np.var(v, ddof=1)), math.sqrt(max(m4 - m2 * m2, 0.0) / n)
    p = float(np.mean(v > 0))
    return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def format_estimate(value: float, se: float, digits: int = 2) -> str:
    """``"value ± se"`` with ``digits`` significant digits of the standard error and the value rounded
    to the same decimal place (``0.001462 ± 0.000015``; scientific notation for very small or large)."""
    if not (math.isfinite(se) and se > 0):
        return f"{value:.6g} ± {se:.2g}"
    e = math.floor(math.log10(se)) - (digits - 1)
    if -7 <= e <= 6 and abs(value) < 1e9:
        decimals = max(0, -e)
        return f"{value:.{decimals}f} ± {se:.{decimals}f}"
    top = math.floor(math.log10(abs(value))) if value != 0 and abs(value) >= se else e + digits - 1
    decimals = max(0, top - e)
    return f"({value / 10.0**top:.{decimals}f} ± {se / 10.0**top:.{decimals}f})e{top:+d}"


#: per-replica scalar outcomes printed for population and evolution-strategy runs, when recorded
_OUTCOMES = ("energy", "best_energy", "mean_fitness", "sigma")


def summarize(ds, expected: dict[str, float] | None = None, compare: dict[str, float] | None = None) -> str:
    """A short text summary of a run: what ran, how fast, the final ensemble, checks against [expected]
    and, not checked, the reference values of [compare]."""
    import json

    integ = json.loads(ds.attrs.get("integrator", "{}"))
    targ = json.loads(ds.attrs.get("target", "{}"))
    R = ds.sizes["replica"]
    n_steps = int(ds["step"].values[-1])
    secs = float(ds.attrs.get("elapsed_seconds", float("nan")))
    rate = R * n_steps / secs if secs > 0 else float("nan")
    compiled = float(ds.attrs.get("compile_seconds", 0.0))
    note = f"; includes {compiled:.1f} s compiling the kernels, done once per environment" if compiled > 0 else ""
    lines = [
        f"{integ.get('type')} on {targ.get('type')}: {R} replicas x {n_steps} steps "
        f"in {secs:.2f} s ({rate:.3g} replica-steps/s{note}), seed {ds.attrs.get('seed')}",
        f"diverged replicas: {int(ds['diverged'].sum())}",
    ]
    if "stopped" in ds:
        lines.append(_stop_summary(ds))
    if int(ds["diverged"].sum()) == R:
        lines.append("every replica diverged: no statistics of the final state (see the divergence warning for the likely cause)")
        if expected:
            lines.append("checks against the model card: none possible")
        return "\n".join(lines)
    try:
        state = _state(ds)
    except ValueError:
        state = None
    if state is not None and "dim" in state.dims:
        what = "x" if state.name == "x" else state.name
        for i in range(min(ds.sizes["dim"], 4)):
            m, se = observable(ds, f"mean_x{i}")
            v, sev = observable(ds, f"var_x{i}")
            lines.append(f"final {what}[{i}] over replicas: mean {format_estimate(m, se)}, "
                         f"variance {format_estimate(v, sev)}")
        if ds.sizes["dim"] > 4:
            lines.append(f"  ({ds.sizes['dim'] - 4} more coordinates)")
    if state is None or state.name != "x":
        for var in _OUTCOMES:
            if var in ds and ds[var].dims == ("replica", "time"):
                m, se = observable(ds, f"mean_{var}")
                lines.append(f"final {ds[var].attrs.get('long_name', var)}, mean over replicas: {format_estimate(m, se)}")
    if expected:
        lines.append("checks against the model card (z = (simulated - expected) / standard error):")
        for key, val in expected.items():
            sim, se = observable(ds, key)
            z = (sim - val) / se if se > 0 else (float("nan") if math.isnan(se) else float("inf"))
            lines.append(f"  {key:<28} simulated {format_estimate(sim, se):<24} expected {val:.6g}   z = {z:+.2f}")
    if compare:
        lines.append("for comparison, not checked (approximate theory; difference in standard errors):")
        for key, val in compare.items():
            sim, se = observable(ds, key)
            z = (sim - val) / se if se > 0 else float("nan")
            lines.append(f"  {key:<28} simulated {format_estimate(sim, se):<24} reference {val:.6g}   {z:+.2f} SE")
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
