"""The study framework: discovery, records with z-scores, figures as PNG and PDF, report and results.json."""

import json

import pytest

import stochdyn as sd
from stochdyn.cli import main
from stochdyn.studies import reproduce

STUDY = '''
import matplotlib.pyplot as plt
import numpy as np
import stochdyn as sd

def run(ctx):
    p = ctx.params
    k, T, dt = 4.0, 1.0, p["dt"]
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), sd.landscapes.Harmonic(stiffness=k, dim=1),
                     n_replicas=p["replicas"], n_steps=200, record_every=200, rng=ctx.rng(1))
    x = ds.x.isel(time=-1, dim=0).values
    c = x - x.mean()
    se = np.sqrt((np.mean(c**4) - np.mean(c**2) ** 2) / x.size)
    fig, ax = plt.subplots()
    ax.hist(x, bins=50)
    ax.set(xlabel="x (1)", ylabel="count (1)")
    ctx.figure(fig, "histogram")
    ctx.record("stationary variance", x.var(), se, sd.theory.em_harmonic_variance(k, dt, T))
    ctx.record("continuous-time variance T/k (expected to fail)", x.var(), se, T / k, z_bound=4)
'''


def _make(tmp_path, body=STUDY):
    folder = tmp_path / "analyses" / "toy_variance"
    folder.mkdir(parents=True)
    (folder / "study.py").write_text(body)
    (folder / "spec.toml").write_text('[study]\nclaim = "EM variance is T/(k(1-k dt/2))"\nseed = 5\n'
                                      "[full]\ndt = 0.1\nreplicas = 40000\n[quick]\nreplicas = 20000\n")
    (folder / "README.md").write_text("toy")
    return tmp_path / "analyses"


def test_reproduce_writes_records_figures_and_report(tmp_path):
    root = _make(tmp_path)
    out = tmp_path / "out"
    res = reproduce(out=out, quick=True, studies_dir=root, log=lambda s: None)
    data = json.loads((out / "results.json").read_text())
    assert data == json.loads(json.dumps(res)) and data["quick"] is True and data["stochdyn_version"] == sd.__version__
    good, bad = data["records"]
    assert set(good) >= {"study", "claim", "quantity", "simulated", "standard_error", "theory", "z", "passed", "figure"}
    assert good["passed"] and abs(good["z"]) <= 4 and not bad["passed"]  # k dt = 0.4: 25% above T/k
    assert good["figure"] == "figures/toy_variance-histogram.png"
    assert (out / good["figure"]).is_file() and (out / "figures/toy_variance-histogram.pdf").is_file()
    report = (out / "report.md").read_text()
    assert "EM variance" in report and "![toy_variance](figures/toy_variance-histogram.png)" in report
    again = reproduce(out=tmp_path / "again", quick=True, studies_dir=root, log=lambda s: None)
    assert again["records"] == res["records"]  # seeded: bit-reproducible


def test_errors_are_reported_and_cli_exit_codes(tmp_path, capsys):
    root = _make(tmp_path, "def run(ctx):\n    raise RuntimeError('boom')\n")
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--studies", str(root), "--quick"]) == 1
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "boom" in data["errors"]["toy_variance"]
    assert main(["reproduce", "nope", "--out", str(tmp_path / "o"), "--studies", str(root)]) == 2
    assert "Unknown study ['nope']" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--studies", str(tmp_path / "missing")]) == 2
