"""The model cards of runs that stop: [until], [compare] and x0_population are read and checked against
the run (tests/docs/test_docs_model_cards.py runs every card and checks its [expected] values)."""

import pathlib

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.spec import load_spec, parse_spec, summarize

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
CARDS = ["wf_fixation.toml", "mfpt_sharp_flat.toml", "mfpt_sharp_flat_reverse.toml", "cmaes_time_to_target.toml"]


def test_cards_separate_checks_from_comparisons():
    # every card of a run that stops reads its rule; exact values are [expected] (tests/docs runs each card
    # and checks them), approximations such as Kimura's and Kramers' are [compare], printed and not checked
    specs = {c: load_spec(MODELS / c) for c in CARDS}
    assert all(s.until is not None for s in specs.values())
    assert set(specs["wf_fixation.toml"].compare) == {"fixation_probability__kimura"}
    assert set(specs["mfpt_sharp_flat_reverse.toml"].compare) == {"mean_hitting_time__kramers",
                                                                 "mean_hitting_time__continuous_time"}
    assert not specs["cmaes_time_to_target.toml"].expected and "CMA-ES" in specs["cmaes_time_to_target.toml"].no_exact_theory
    data = {"landscape": {"type": "DoubleWell", "dim": 1}, "integrator": {"type": "EulerMaruyama", "dt": 0.01},
            "run": {"n_replicas": 2, "n_steps": 2}}
    with pytest.raises(sd.spec.SpecError, match=r"\[compare\] median_x0: unknown observable"):
        parse_spec({**data, "compare": {"median_x0": 1.0}})
    ds = sd.simulate(sd.EulerMaruyama(dt=0.01), sd.landscapes.DoubleWell(dim=1), n_replicas=4, n_steps=2, rng=0)
    text = summarize(ds, {"mean_x0": 0.0}, {"var_x0__guess": 1.0})
    assert text.index("checks against the model card") < text.index("for comparison, not checked")
    assert "var_x0__guess" in text.split("for comparison, not checked")[1]


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
