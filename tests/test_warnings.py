"""stochdyn's warnings name the user's line, through every entry point and from Dask workers, and
progress messages go through the ``stochdyn`` logger instead of print."""

import logging
import warnings

import pytest

import stochdyn as sd
from stochdyn._warnings import call_collecting_warnings, reemit, warn
from stochdyn.cli import main
from stochdyn.spec import parse_spec, run_spec
from stochdyn.studies import reproduce

# Euler–Maruyama on U = x^2/2 with dt = 3: x -> -2x + noise, so |x| doubles every step and overflows
# to inf after about 1024 steps; the first step (all a sweep's warm-up runs) stays finite.
INTEG = sd.EulerMaruyama(dt=3.0, temperature=0.1)
LAND = sd.landscapes.Harmonic(stiffness=1.0, dim=1)
RUN = dict(n_replicas=2, n_steps=1100, record_every=1)


def _only_divergence(record):
    return [w for w in record if issubclass(w.category, sd.DivergenceWarning)]


def test_simulate_sweep_and_spec_warnings_name_the_callers_line():
    with pytest.warns(sd.DivergenceWarning) as rec:
        sd.simulate(INTEG, LAND, [1.0], rng=0, **RUN)
    with pytest.warns(sd.DivergenceWarning) as rec_sweep:
        sd.sweep(INTEG, LAND, [1.0], grid={"integrator.temperature": [0.1, 0.2]}, workers="serial", rng=0, **RUN)
    spec = parse_spec({"landscape": {"type": "Harmonic", "dim": 1, "stiffness": 1.0},
                       "integrator": {"type": "EulerMaruyama", "dt": 3.0, "temperature": 0.1},
                       "run": {**RUN, "seed": 0, "x0": [1.0]}})
    with pytest.warns(sd.DivergenceWarning) as rec_spec:
        run_spec(spec, progress=False)
    for record, n in ((rec, 1), (rec_sweep, 2), (rec_spec, 1)):
        found = _only_divergence(record)
        assert len(found) == n and all(w.filename == __file__ for w in found), [(w.filename, w.lineno) for w in found]


def test_warnings_from_dask_workers_reach_the_caller():
    pytest.importorskip("distributed")
    with pytest.warns(sd.DivergenceWarning, match="2 of 2 replicas became non-finite") as rec:
        sd.sweep(INTEG, LAND, [1.0], grid={"integrator.temperature": [0.1, 0.2]}, workers=1, rng=0, **RUN)
    found = _only_divergence(rec)
    # one per point, raised in the worker process and raised again here (the warm-up runs one step)
    assert len(found) == 2 and all(w.filename == __file__ for w in found)


def test_collected_warnings_obey_the_callers_filters():
    def noisy(x):
        warnings.warn("from a worker", sd.DivergenceWarning)
        warnings.warn("another", UserWarning)
        return 2 * x

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # collection shows nothing and raises nothing
        result, caught = call_collecting_warnings(noisy, 21)
    assert result == 42 and caught == [(sd.DivergenceWarning, "from a worker"), (UserWarning, "another")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.DivergenceWarning)
        with pytest.raises(sd.DivergenceWarning, match="from a worker"):
            reemit(caught)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=UserWarning)
        reemit(caught)
        warn("direct", RuntimeWarning)
    assert [(w.category, str(w.message), w.filename) for w in rec] == [
        (sd.DivergenceWarning, "from a worker", __file__), (RuntimeWarning, "direct", __file__)]


TOY = "def run(ctx):\n    ctx.record('one', 1.0, 0.1, 1.0)\n"


def test_reproduce_logs_progress_instead_of_printing(tmp_path, caplog, capsys):
    folder = tmp_path / "studies" / "toy"
    folder.mkdir(parents=True)
    (folder / "study.py").write_text(TOY)
    (folder / "spec.toml").write_text('[study]\nclaim = "one is one"\nseed = 1\n')
    with caplog.at_level(logging.INFO, logger="stochdyn"):
        reproduce(out=tmp_path / "out", studies_dir=tmp_path / "studies")
    messages = [r.getMessage() for r in caplog.records if r.name == "stochdyn"]
    assert messages[0] == "[toy] one is one" and "1 of 1 checks against theory passed" in messages[-1]
    assert capsys.readouterr().out == ""  # a library does not print
    assert main(["reproduce", "--studies", str(tmp_path / "studies"), "--out", str(tmp_path / "cli")]) == 0
    assert "[toy] one is one" in capsys.readouterr().out  # the command line shows the logger's messages
    assert not [h for h in logging.getLogger("stochdyn").handlers if type(h) is logging.StreamHandler]  # removed
