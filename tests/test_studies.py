"""Every study of the chapter, in quick mode: runs, checks every claim against theory, writes its outputs.

This is what `stochdyn reproduce --quick` does in CI. A failed check is a finding to explain in
the study's README (and fix in the code or the theory), never a bound to widen: each study states
its |z| bound in spec.toml and why in its README.
"""

import json
from pathlib import Path

import pytest

from stochdyn.studies import find_studies, reproduce

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
KEYS = {"study", "claim", "quantity", "simulated", "standard_error", "theory", "z", "passed", "figure"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    return out, reproduce(out=out, quick=True, studies_dir=ANALYSES, log=lambda s: None)


def test_every_study_has_spec_script_and_readme():
    studies = find_studies(ANALYSES)
    assert len(studies) >= 15
    for name, st in studies.items():
        readme = (st.path / "README.md").read_text()
        assert len(readme) > 500, name
        assert st.quick, f"{name}: no [quick] parameters"


def test_quick_reproduce_passes_every_check(quick):
    out, res = quick
    assert res["errors"] == {}, "\n".join(res["errors"].values())
    failed = [f"{r['study']}: {r['quantity']} z={r['z']:+.2f}" for r in res["records"] if not r["passed"]]
    assert not failed, failed
    studies = {r["study"] for r in res["records"]}
    assert studies == set(find_studies(ANALYSES))


def test_results_json_and_report_layout(quick):
    out, res = quick
    data = json.loads((out / "results.json").read_text())
    assert isinstance(data["stochdyn_version"], str) and data["quick"] is True
    for r in data["records"]:
        assert KEYS <= set(r) and isinstance(r["passed"], bool)
        assert r["figure"] and (out / r["figure"]).is_file() and (out / r["figure"]).with_suffix(".pdf").is_file()
        assert abs(r["z"] - (r["simulated"] - r["theory"]) / r["standard_error"]) < 1e-9 * max(1.0, abs(r["z"]))
    report = (out / "report.md").read_text()
    for name in find_studies(ANALYSES):
        assert f"analyses/{name}/README.md" in report
