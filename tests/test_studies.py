"""Every study of the chapter, in quick mode: runs, checks every claim against theory, writes its outputs.

This is what `stochdyn reproduce --quick` does in CI. A failed check is a finding to explain in
the study's README (and fix in the code or the theory), never a bound to widen: each study states
its |z| bound in spec.toml and why in its README.
"""

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from stochdyn.ensemble import driver
from stochdyn.studies import StudyContext, find_studies, reproduce

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
KEYS = {"study", "claim", "quantity", "simulated", "standard_error", "theory", "z", "passed", "figure"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick run, with the random streams of every run recorded: (study, origin, seed material, state words).

    Two runs share random streams exactly when their seed sequences give the same state words (not
    the same spelling: SeedSequence(5) and SeedSequence([5, 0]) are one sequence): the stream of replica
    r of a ``simulate`` call is a function of (the sequence's first two 64-bit words, r)
    (``StreamKey.words``), and NumPy's generators are seeded from its first four words, which begin
    with the same two.
    Recorded: every ``stream_key`` the driver builds (whatever ``rng`` a study passed) and every seed
    sequence ``ctx.rng`` hands out (also those a study turns into a NumPy generator).
    """
    out = tmp_path_factory.mktemp("reproduce")
    names = set(find_studies(ANALYSES))
    streams, current = [], {"study": None}

    def log(line):
        m = re.match(r"\[(\w+)\] ", line)
        if m and m.group(1) in names:
            current["study"] = m.group(1)

    def material(ss):
        return f"entropy {ss.entropy}, spawn key {tuple(ss.spawn_key)}"

    real_key, real_rng = driver.stream_key, StudyContext.rng

    def recording_key(rng, *args, **kwargs):
        key = real_key(rng, *args, **kwargs)
        streams.append((current["study"], "simulate", material(key.seed_sequence), tuple(int(w) for w in key.words)))
        return key

    def recording_rng(self, *keys):
        ss = real_rng(self, *keys)
        streams.append((self.study.name, "ctx.rng", material(ss), tuple(int(w) for w in ss.generate_state(4, np.uint64))))
        return ss

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "stream_key", recording_key)
        mp.setattr(StudyContext, "rng", recording_rng)
        res = reproduce(out=out, quick=True, studies_dir=ANALYSES, log=log)
    return out, res, streams


def test_every_study_has_spec_script_and_readme():
    studies = find_studies(ANALYSES)
    assert len(studies) >= 15
    for name, st in studies.items():
        readme = (st.path / "README.md").read_text()
        assert len(readme) > 500, name
        assert st.quick, f"{name}: no [quick] parameters"


def test_quick_reproduce_passes_every_check(quick):
    out, res, _ = quick
    assert res["errors"] == {}, "\n".join(res["errors"].values())
    failed = [f"{r['study']}: {r['quantity']} z={r['z']:+.2f}" for r in res["records"] if not r["passed"]]
    assert not failed, failed
    assert len(res["records"]) >= 240
    studies = {r["study"] for r in res["records"]}
    assert studies == set(find_studies(ANALYSES))
    # bounds without Monte Carlo error must hold; timed ones (wall clock) are only reported
    broken = [f"{b['study']}: {b['quantity']}" for b in res["bounds"] if not b["timed"] and not b["passed"]]
    assert not broken, broken


def test_no_two_studies_share_random_streams(quick):
    _, _, streams = quick
    users = defaultdict(set)  # the first two state words (the stream key of a simulate call) -> studies
    seen = defaultdict(set)
    for study, origin, what, words in streams:
        assert study is not None, f"a stream ({origin}, {what}) was drawn outside any study"
        users[words[:2]].add(study)
        seen[words[:2]].add(f"{study}: {origin} {what}")
    assert {s for ss in users.values() for s in ss} == set(find_studies(ANALYSES)), \
        "every study draws its randomness through simulate or ctx.rng"
    shared = [sorted(seen[w]) for w, s in users.items() if len(s) > 1]
    assert not shared, f"studies sharing random streams: {shared}"


def test_results_json_and_report_layout(quick):
    out, res, _ = quick
    data = json.loads((out / "results.json").read_text())
    assert isinstance(data["stochdyn_version"], str) and data["quick"] is True
    for r in data["records"]:
        assert KEYS <= set(r) and isinstance(r["passed"], bool)
        assert r["figure"] and (out / r["figure"]).is_file() and (out / r["figure"]).with_suffix(".pdf").is_file()
        assert abs(r["z"] - (r["simulated"] - r["theory"]) / r["standard_error"]) < 1e-9 * max(1.0, abs(r["z"]))
    for b in data["bounds"]:
        assert {"study", "quantity", "value", "limit", "relation", "units", "timed", "passed", "figure"} <= set(b)
        assert b["passed"] == (b["value"] <= b["limit"] if b["relation"] == "<=" else b["value"] >= b["limit"])
        assert b["figure"] and (out / b["figure"]).is_file()
    report = (out / "report.md").read_text()
    for name in find_studies(ANALYSES):
        assert f"analyses/{name}/README.md" in report
