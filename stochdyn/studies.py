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

__all__ = ["Record", "StudyContext", "Study", "find_studies", "reproduce", "DEFAULT_STUDIES_DIR"]

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
    return {p.name: _load_study(p) for p in sorted(root.iterdir()) if (p / "study.py").is_file()}


def _run_function(study: Study) -> Callable[[StudyContext], None]:
    spec = importlib.util.spec_from_file_location(f"stochdyn_study_{study.name}", study.path / "study.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
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
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in chosen:
        study = all_studies[name]
        ctx = StudyContext(study, quick, out)
        matplotlib.rcdefaults()  # a style set by one study never leaks into the next
        t0 = time.perf_counter()
        log(f"[{name}] {study.claim}")
        try:
            _run_function(study)(ctx)
            if not ctx.records:
                raise ValidationError(f"study {name} recorded no comparison with theory")
        except Exception:
            errors[name] = traceback.format_exc()
            log(f"[{name}] FAILED with an error:\n{errors[name]}")
        timings[name] = time.perf_counter() - t0
        records.extend(ctx.records)
        for r in ctx.records:
            log(f"    {'ok  ' if r.passed else 'FAIL'} {r.quantity}: {r.simulated:.5g} ± {r.standard_error:.2g} "
                f"vs theory {r.theory:.5g} (z = {r.z:+.2f})")
        log(f"[{name}] {timings[name]:.1f} s")
    results = {
        "stochdyn_version": __version__,
        "quick": bool(quick),
        "records": [asdict(r) for r in records],
        "errors": errors,
        "seconds": timings,
    }
    _atomic_write(out / "results.json", json.dumps(results, indent=1))
    _atomic_write(out / "report.md", _report(all_studies, chosen, records, errors, quick))
    n_pass = sum(r.passed for r in records)
    log(f"{n_pass} of {len(records)} checks passed; {len(errors)} studies failed with errors; wrote {out}/results.json")
    return results


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _report(studies: dict[str, Study], chosen: list[str], records: list[Record], errors: dict[str, str],
            quick: bool) -> str:
    lines = [f"# stochdyn studies{' (quick)' if quick else ''}", "",
             f"stochdyn {__version__}. Each study checks one claim: z = (simulated − theory) / standard error; "
             "a check passes when |z| is within the study's stated bound.", ""]
    for name in chosen:
        st = studies[name]
        recs = [r for r in records if r.study == name]
        lines += [f"## {st.title}", "", f"**Claim.** {st.claim}", ""]
        if name in errors:
            lines += ["**The study failed with an error:**", "", "```", errors[name].strip(), "```", ""]
        for fig in dict.fromkeys(r.figure for r in recs if r.figure):
            lines += [f"![{name}]({fig})", ""]
        if recs:
            lines += ["| quantity | simulated | SE | theory | z | passed |", "|---|---|---|---|---|---|"]
            for r in recs:
                lines.append(f"| {r.quantity} | {r.simulated:.6g} | {r.standard_error:.2g} | {r.theory:.6g} | "
                             f"{r.z:+.2f} | {'yes' if r.passed else '**no**'} |")
            lines.append("")
        lines += [f"Details: `analyses/{name}/README.md`.", ""]
    return "\n".join(lines)
