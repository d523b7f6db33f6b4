"""Reproducible studies: each claim of the chapter as a simulation, its theory, a figure and a verdict.

A study is a folder ``analyses/<name>/`` with

* ``README.md`` — the claim, the model, the theory and its source, and what the study found;
* ``spec.toml`` — ``[study]`` (``claim``, ``seed``, ``z_bound``) and ``[full]`` / ``[quick]`` tables
  of parameters (``[quick]`` overrides ``[full]``: small enough for CI, still checking the claim);
* ``study.py`` — ``def run(ctx: StudyContext) -> None`` that simulates, compares with theory
  (``ctx.record(...)``) and draws (``ctx.figure(...)``).

:func:`reproduce` runs the chosen studies and writes ``DIR/results.json``, ``DIR/report.md`` and
every figure as PNG and PDF. Each record holds the simulated value with its Monte Carlo standard
error, the theory value, ``z = (simulated - theory) / standard_error`` and ``passed = |z| <=
z_bound``. Everything is seeded from the spec, so a study is bit-reproducible.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
import tomllib
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._logging import logger
from ._resources import studies_folder
from ._validation import ValidationError
from ._version import __version__

__all__ = ["Record", "Bound", "StudyContext", "Study", "find_studies", "reproduce", "DEFAULT_STUDIES_DIR",
           "batch_standard_error", "chi_square_quantile"]

DEFAULT_STUDIES_DIR = "analyses"


@dataclass
class Record:
    """One checked quantity of a study (a row of ``results.json``)."""

    study: str
    claim: str
    quantity: str
    simulated: float
    standard_error: float
    theory: float
    z: float
    passed: bool
    figure: str


@dataclass
class Bound:
    """A quantity checked against a limit (a row of ``results.json``'s ``bounds``).

    ``passed = value <= limit`` (``relation = "<="``) or ``value >= limit`` (``">="``). ``timed``
    marks a wall-clock measurement: machine-dependent, reported but not asserted by the tests.
    """

    study: str
    claim: str
    quantity: str
    value: float
    limit: float
    relation: str
    units: str
    timed: bool
    passed: bool
    figure: str


@dataclass
class Study:
    """A study folder: its name, claim, bound on |z| and parameters."""

    name: str
    path: Path
    claim: str
    z_bound: float
    seed: int
    full: dict[str, Any]
    quick: dict[str, Any]
    title: str = ""

    def params(self, quick: bool) -> dict[str, Any]:
        return {**self.full, **self.quick} if quick else dict(self.full)


@dataclass
class StudyContext:
    """What a study's ``run`` gets: its parameters, a seed, and ways to record and draw."""

    study: Study
    quick: bool
    out: Path
    records: list[Record] = field(default_factory=list)
    bounds: list[Bound] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Any]:
        """The study's parameters (``[full]``, overridden by ``[quick]`` in quick mode)."""
        return self.study.params(self.quick)

    def rng(self, *keys: int) -> np.random.SeedSequence:
        """A seed for one simulation of this study: the spec's seed, spawned by ``keys``."""
        return np.random.SeedSequence(self.study.seed, spawn_key=tuple(int(k) for k in keys))

    def record(self, quantity: str, simulated: float, standard_error: float, theory: float,
               figure: str | None = None, z_bound: float | None = None) -> Record:
        """Compare a simulated quantity with theory: z = (simulated - theory) / standard_error."""
        se = float(standard_error)
        if not (se > 0 and math.isfinite(se)):
            raise ValidationError(f"study {self.study.name}: quantity {quantity!r} needs a positive finite standard error, got {se}")
        z = (float(simulated) - float(theory)) / se
        bound = self.study.z_bound if z_bound is None else z_bound
        fig = figure if figure is not None else (self.figures[-1] if self.figures else "")
        rec = Record(self.study.name, self.study.claim, quantity, float(simulated), se, float(theory), float(z),
                     bool(abs(z) <= bound), fig)
        self.records.append(rec)
        return rec

    def bound(self, quantity: str, value: float, limit: float, relation: str = "<=", units: str = "",
              timed: bool = False, figure: str | None = None) -> Bound:
        """Check a quantity without Monte Carlo error against a limit: ``value <= limit`` or ``value >= limit``.

        ``timed=True`` marks a wall-clock measurement (reported in results.json and report.md, but
        machine-dependent, so the test suite does not assert it).
        """
        if relation not in ("<=", ">="):
            raise ValidationError(f"study {self.study.name}: bound {quantity!r} needs relation '<=' or '>=', got {relation!r}")
        value, limit = float(value), float(limit)
        if not (math.isfinite(value) and math.isfinite(limit)):
            raise ValidationError(f"study {self.study.name}: bound {quantity!r} needs finite values, got {value}, {limit}")
        passed = value <= limit if relation == "<=" else value >= limit
        fig = figure if figure is not None else (self.figures[-1] if self.figures else "")
        b = Bound(self.study.name, self.study.claim, quantity, value, limit, relation, units, bool(timed), bool(passed), fig)
        self.bounds.append(b)
        return b

    def figure(self, fig: Any, name: str) -> str:
        """Save a matplotlib figure as ``figures/<study>-<name>.png`` and ``.pdf``; return the PNG path (relative to DIR)."""
        import matplotlib.pyplot as plt

        rel = Path("figures") / f"{self.study.name}-{name}"
        (self.out / "figures").mkdir(parents=True, exist_ok=True)
        fig.savefig(self.out / rel.with_suffix(".png"), dpi=150)
        fig.savefig(self.out / rel.with_suffix(".pdf"))
        plt.close(fig)
        self.figures.append(str(rel.with_suffix(".png")))
        return str(rel.with_suffix(".png"))


def batch_standard_error(values: Any, statistic: Callable[[np.ndarray], Any] | None = None,
                         groups: int | None = None) -> tuple[Any, Any]:
    """An estimate over replicas (axis 0) and its standard error from batches of replicas.

    The replicas are split into G consecutive groups of equal size (a remainder is dropped from the SE
    only); ``statistic`` (default: the mean over axis 0) is computed on all replicas (the estimate) and
    on each group, and SE = sd(group values)/√G. Unlike the plug-in SE of a second moment, √((m̂₄ − ŝ⁴)/R),
    whose sample fourth moment is low exactly when the estimate is low, the spread of G group values of
    about R/G replicas each is nearly independent of their mean (the group values are close to Gaussian).
    (estimate − truth)/SE is then Student-t with G − 1 degrees of freedom: with the default
    G = min(100, R // 10), P(|t| > 4) = 1.2e-4 for G = 100 (6.3e-5 for a normal z).

    Parameters
    ----------
    values : array (R, ...)
        Per-replica values, replicas on axis 0 (or replica indices, for a statistic that selects them
        from a Dataset).
    statistic : callable, optional
        Maps an array of replicas (m, ...) to the estimate; default ``lambda v: v.mean(axis=0)``.
    groups : int, optional
        G >= 2 batches; default ``min(100, R // 10)``.
    """
    v = np.asarray(values)  # any dtype: e.g. replica indices for a statistic that selects replicas
    R = v.shape[0]
    fn = statistic if statistic is not None else (lambda a: a.mean(axis=0))
    G = min(100, R // 10) if groups is None else int(groups)
    if G < 2 or R // G < 2:
        raise ValidationError(f"batch_standard_error needs at least 2 groups of 2 replicas; got {R} replicas, {G} groups")
    m = R // G
    parts = np.array([fn(v[g * m:(g + 1) * m]) for g in range(G)], dtype=float)
    return fn(v), parts.std(axis=0, ddof=1) / math.sqrt(G)


def chi_square_quantile(chi2: float, dof: int) -> float:
    """The normal quantile z = Φ⁻¹(P(χ²_dof <= chi2)) of a fit's χ²: N(0, 1) when the fit's model is right.

    Record it with standard error 1 and theory 0: |z| > 4 flags a fit too poor (or too good) to trust.
    """
    from scipy import stats

    if dof < 1:
        raise ValidationError(f"chi_square_quantile needs dof >= 1, got {dof}")
    lower = stats.chi2.logcdf(chi2, dof)
    upper = stats.chi2.logsf(chi2, dof)
    return float(stats.norm.isf(math.exp(upper)) if upper < lower else stats.norm.ppf(math.exp(lower)))


def _load_study(folder: Path) -> Study:
    spec_file = folder / "spec.toml"
    if not spec_file.is_file() or not (folder / "study.py").is_file():
        raise ValidationError(f"{folder}: a study folder needs spec.toml and study.py")
    try:
        spec = tomllib.loads(spec_file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{spec_file}: not valid TOML: {exc}") from None
    meta = spec.get("study", {})
    for key in ("claim", "seed"):
        if key not in meta:
            raise ValidationError(f"{spec_file}: [study] needs '{key}'")
    unknown = set(spec) - {"study", "full", "quick"}
    if unknown:
        raise ValidationError(f"{spec_file}: unknown table(s) {sorted(unknown)}; allowed: study, full, quick")
    return Study(name=folder.name, path=folder, claim=str(meta["claim"]), z_bound=float(meta.get("z_bound", 4.0)),
                 seed=int(meta["seed"]), full=dict(spec.get("full", {})), quick=dict(spec.get("quick", {})),
                 title=str(meta.get("title", folder.name.replace("_", " "))))


def find_studies(root: str | Path | None = None) -> dict[str, Study]:
    """All study folders under ``root`` (folders holding spec.toml and study.py), by name; ``root=None``
    means the studies shipped with stochdyn (the repository's ``analyses/``)."""
    root = studies_folder() if root is None else Path(root)
    if not root.is_dir():
        raise ValidationError(
            f"No studies folder {str(root)!r}: run from the stochdyn repository root, or pass --studies DIR."
        )
    studies = {p.name: _load_study(p) for p in sorted(root.iterdir()) if (p / "study.py").is_file()}
    by_seed: dict[int, list[str]] = {}
    for name, st in studies.items():
        by_seed.setdefault(st.seed, []).append(name)
    shared = {seed: names for seed, names in by_seed.items() if len(names) > 1}
    if shared:
        raise ValidationError(f"Studies must not share a seed (their runs would share random streams): {shared}")
    return studies


def _run_function(study: Study) -> Callable[[StudyContext], None]:
    spec = importlib.util.spec_from_file_location(f"stochdyn_study_{study.name}", study.path / "study.py")
    if spec is None or spec.loader is None:  # never for a .py file; a clear error if it ever happens
        raise ImportError(f"Python cannot load {study.path / 'study.py'} as a module.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ValidationError(f"{study.path / 'study.py'} must define run(ctx)")
    return module.run


def reproduce(names: list[str] | None = None, out: str | Path = "reproduce-out", quick: bool = False,
              studies_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run studies and write ``out/results.json``, ``out/report.md`` and the figures.

    ``studies_dir=None`` runs the studies shipped with stochdyn. Progress messages go to ``log``, by
    default the ``stochdyn`` logger at INFO level (``logging.basicConfig(level=logging.INFO)`` shows them).

    Returns the results dictionary (also written as JSON). A study that raises is reported in
    ``errors`` with its traceback; the others still run.
    """
    import matplotlib

    matplotlib.use("Agg")
    log = logger.info if log is None else log
    all_studies = find_studies(studies_dir)
    chosen = names or list(all_studies)
    missing = [n for n in chosen if n not in all_studies]
    if missing:
        raise ValidationError(f"Unknown stud{'y' if len(missing) == 1 else 'ies'} {missing}; known: {', '.join(all_studies)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    bounds: list[Bound] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in chosen:
        study = all_studies[name]
        ctx = StudyContext(study, quick, out)
        matplotlib.rcdefaults()  # a style set by one study never leaks into the next
        t0, c0 = time.perf_counter(), time.process_time()
        log(f"[{name}] {study.claim}")
        try:
            _run_function(study)(ctx)
            if not ctx.records and not ctx.bounds:
                raise ValidationError(f"study {name} recorded no comparison with theory")
        except Exception:
            errors[name] = traceback.format_exc()
            log(f"[{name}] FAILED with an error:\n{errors[name]}")
        timings[name] = time.perf_counter() - t0
        records.extend(ctx.records)
        bounds.extend(ctx.bounds)
        for r in ctx.records:
            log(f"    {'ok  ' if r.passed else 'FAIL'} {r.quantity}: {r.simulated:.5g} ± {r.standard_error:.2g} "
                f"vs theory {r.theory:.5g} (z = {r.z:+.2f})")
        for b in ctx.bounds:
            log(f"    {'ok  ' if b.passed else 'FAIL'} {b.quantity}: {b.value:.5g} {b.relation} {b.limit:.5g} {b.units}"
                f"{' (timed: reported, not asserted)' if b.timed else ''}")
        log(f"[{name}] {timings[name]:.1f} s (CPU {time.process_time() - c0:.1f} s, all threads)")
    results = {
        "stochdyn_version": __version__,
        "quick": bool(quick),
        "records": [asdict(r) for r in records],
        "bounds": [asdict(b) for b in bounds],
        "errors": errors,
        "seconds": timings,
    }
    _atomic_write(out / "results.json", json.dumps(results, indent=1))
    _atomic_write(out / "report.md", _report(all_studies, chosen, records, bounds, errors, quick))
    n_pass = sum(r.passed for r in records)
    untimed = [b for b in bounds if not b.timed]
    timed = [b for b in bounds if b.timed]
    log(f"{n_pass} of {len(records)} checks against theory passed; {sum(b.passed for b in untimed)} of {len(untimed)} "
        f"bounds held; {sum(b.passed for b in timed)} of {len(timed)} timed bounds held (reported); "
        f"{len(errors)} studies failed with errors; wrote {out}/results.json")
    return results


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _report(studies: dict[str, Study], chosen: list[str], records: list[Record], bounds: list[Bound],
            errors: dict[str, str], quick: bool) -> str:
    lines = [f"# stochdyn studies{' (quick)' if quick else ''}", "",
             f"stochdyn {__version__}. Each study checks one claim: z = (simulated − theory) / standard error; "
             "a check passes when |z| is within the study's stated bound.", ""]
    for name in chosen:
        st = studies[name]
        recs = [r for r in records if r.study == name]
        bnds = [b for b in bounds if b.study == name]
        lines += [f"## {st.title}", "", f"**Claim.** {st.claim}", ""]
        if name in errors:
            lines += ["**The study failed with an error:**", "", "```", errors[name].strip(), "```", ""]
        for fig in dict.fromkeys([r.figure for r in recs if r.figure] + [b.figure for b in bnds if b.figure]):
            lines += [f"![{name}]({fig})", ""]
        if recs:
            lines += ["| quantity | simulated | SE | theory | z | passed |", "|---|---|---|---|---|---|"]
            for r in recs:
                lines.append(f"| {r.quantity} | {r.simulated:.6g} | {r.standard_error:.2g} | {r.theory:.6g} | "
                             f"{r.z:+.2f} | {'yes' if r.passed else '**no**'} |")
            lines.append("")
        if bnds:
            lines += ["| bound | value | limit | held |", "|---|---|---|---|"]
            for b in bnds:
                held = "yes" if b.passed else "**no**"
                lines.append(f"| {b.quantity}{' (timed: reported, not asserted)' if b.timed else ''} | {b.value:.6g} "
                             f"{b.units} | {b.relation} {b.limit:.6g} | {held} |")
            lines.append("")
        lines += [f"Details: `analyses/{name}/README.md`.", ""]
    return "\n".join(lines)
