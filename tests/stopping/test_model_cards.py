"""The model cards of runs that stop: [until] and x0_population are read, checked against the run,
and a small version of each card runs and prints its checks."""

import pathlib

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.spec import load_spec, parse_spec, run_spec, summarize

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
CARDS = ["wf_fixation.toml", "mfpt_sharp_flat.toml", "mfpt_sharp_flat_reverse.toml", "cmaes_time_to_target.toml"]


@pytest.mark.parametrize("card", CARDS)
def test_a_small_version_of_each_card_runs_and_prints_its_checks(card):
    spec = load_spec(MODELS / card)
    assert spec.until is not None
    spec.run["n_replicas"] = 60
    if "x0" in spec.run and np.ndim(spec.run["x0"]) == 3:
        spec.run["x0"] = spec.run["x0"][:60]
    ds = run_spec(spec, progress=False)
    text = summarize(ds, spec.expected)
    assert "stopped (" in text and "mean hitting time" in text
    for key in spec.expected:
        assert key in text


def test_until_tables_are_checked():
    base = load_spec(MODELS / "wf_fixation.toml")
    assert base.until == sd.stopping.Fixation(allele=1) | sd.stopping.Fixation(allele=0)
    assert base.run["x0"].shape == (100000, 100, 1) and base.run["x0"][:, 0, 0].min() == 1.0
    data = {"landscape": {"type": "DoubleWell", "dim": 1}, "integrator": {"type": "EulerMaruyama", "dt": 0.01},
            "run": {"n_replicas": 2, "n_steps": 2}}
    with pytest.raises(sd.spec.SpecError, match=r"\[until\]: Fixation\(\) applies to"):
        parse_spec({**data, "until": {"type": "Fixation"}})
    with pytest.raises(sd.spec.SpecError, match=r"\[until\]: Unknown stopping rule type 'Never'"):
        parse_spec({**data, "until": {"type": "Never"}})
    with pytest.raises(sd.spec.SpecError, match=r"\[run\] x0_population: needs a population integrator"):
        parse_spec({**data, "run": {**data["run"], "x0_population": [[0.0]]}})
    spec = parse_spec({**data, "until": [{"type": "Region", "above": 1.0}, {"type": "Region", "below": -1.0}]})
    assert len(spec.until.rules) == 2


def test_cli_run_takes_workers_and_scheduler(tmp_path, capsys):
    from stochdyn.cli import main

    text = (MODELS / "mfpt_sharp_flat_reverse.toml").read_text()
    spec = tmp_path / "card.toml"
    spec.write_text(text.replace("n_replicas = 4000", "n_replicas = 30").replace("n_steps = 12000", "n_steps = 2000"))
    assert main(["run", str(spec), "-o", str(tmp_path / "a.nc"), "--workers", "0", "--no-progress"]) == 0
    assert "stopped (x[0] <= -1.45443)" in capsys.readouterr().out
    assert main(["run", str(spec), "-o", str(tmp_path / "b.nc"), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert "give --workers or --scheduler, not both" in capsys.readouterr().err
