"""The study framework: discovery, records with z-scores, figures as PNG and PDF, report and results.json."""

import json

import numpy as np
import pytest

import stochdyn as sd
from stochdyn._validation import ValidationError
from stochdyn.cli import main
from stochdyn.studies import batch_standard_error, chi_square_quantile, find_studies, reproduce

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


BOUNDS = '''
def run(ctx):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ctx.figure(fig, "empty")
    ctx.bound("bytes per point", 48.0, 64.0, "<=", units="B")
    ctx.bound("speed-up", 0.5, 2.0, ">=", timed=True)
'''


def test_bounds_are_written_and_timed_ones_only_reported(tmp_path):
    root = _make(tmp_path, BOUNDS)
    res = reproduce(out=tmp_path / "out", quick=True, studies_dir=root, log=lambda s: None)
    assert res["errors"] == {} and res["records"] == []
    held, timed = res["bounds"]
    assert held["passed"] and held["relation"] == "<=" and held["units"] == "B" and not held["timed"]
    assert timed["timed"] and not timed["passed"]  # 0.5 >= 2 is false: reported as not held
    assert held["figure"] == "figures/toy_variance-empty.png"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| bytes per point | 48 B | <= 64 | yes |" in report
    assert "speed-up (timed: reported, not asserted)" in report


def test_studies_must_not_share_a_seed(tmp_path):
    root = _make(tmp_path)
    twin = root / "twin"
    twin.mkdir()
    for f in ("study.py", "spec.toml", "README.md"):
        (twin / f).write_text((root / "toy_variance" / f).read_text())
    with pytest.raises(ValidationError, match="must not share a seed"):
        find_studies(root)


def test_batch_standard_error_does_not_shrink_with_the_estimate():
    # squared standard normals (chi^2_1: skewness g = 2.8, kurtosis k = 15), R = 20000, 300 repetitions. The
    # plug-in SE of their mean, sd/sqrt(R), is correlated with the mean by g/sqrt(k - 1) = 0.76 whatever R; the
    # SE from 100 batches of m = 200 replicas by (g/sqrt(m))/sqrt(2 + (k - 3)/m) = 0.14. The sampling SE of a
    # correlation from 300 repetitions is ~0.05, so the bounds 0.6 and 0.3 are 3 SE away.
    rng = np.random.default_rng(0)
    est, plug, batch = [], [], []
    for _ in range(300):
        v = rng.standard_normal(20000) ** 2
        m, se = batch_standard_error(v)
        est.append(m)
        plug.append(v.std(ddof=1) / np.sqrt(v.size))
        batch.append(se)
    assert np.corrcoef(est, plug)[0, 1] > 0.6
    assert abs(np.corrcoef(est, batch)[0, 1]) < 0.3
    # and it estimates the right thing: the mean batch SE is sqrt(2/R) within 3 % (its own SE: ~0.4 %)
    assert abs(np.mean(batch) / np.sqrt(2 / 20000) - 1) < 0.03
    # any statistic, any trailing shape: the variance of each column
    v = rng.standard_normal((4000, 2)) * [1.0, 3.0]
    s2, se = batch_standard_error(v, lambda a: a.var(axis=0, ddof=1), groups=50)
    assert s2.shape == se.shape == (2,) and np.all(np.abs(se / (np.sqrt(2 / 4000) * np.array([1.0, 9.0])) - 1) < 0.5)
    with pytest.raises(ValidationError, match="at least 2 groups"):
        batch_standard_error(np.ones(3))


def test_chi_square_quantile_is_the_normal_quantile_of_the_chi_square_cdf():
    from scipy import stats

    assert abs(chi_square_quantile(stats.chi2.median(3), 3)) < 1e-12
    assert abs(chi_square_quantile(stats.chi2.ppf(0.975, 2), 2) - stats.norm.ppf(0.975)) < 1e-9
    assert abs(chi_square_quantile(stats.chi2.ppf(0.01, 5), 5) - stats.norm.ppf(0.01)) < 1e-9
    assert abs(chi_square_quantile(stats.chi2.isf(1e-20, 2), 2) - stats.norm.isf(1e-20)) < 1e-6  # far tail, no cancellation
