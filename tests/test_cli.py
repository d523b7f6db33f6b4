"""The command line: `stochdyn run` on model cards, `stochdyn info`, and one-line errors with exit 2."""

import subprocess
import sys
from pathlib import Path

import pytest

import stochdyn as sd
from stochdyn.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"
GOOD = """
[model]
name = "tiny"
[landscape]
type = "DoubleWell"
dim = 2
[integrator]
type = "EulerMaruyama"
dt = 0.001
temperature = 0.5
[run]
n_replicas = 20
n_steps = 100
record_every = 50
seed = 4
x0 = [-1.0, 0.0]
[expected]
mean_x1 = 0.0
"""


def test_run_model_card_writes_dataset_and_summary(tmp_path, capsys):
    out = tmp_path / "harmonic.nc"
    assert main(["run", str(MODELS / "harmonic.toml"), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "var_x1" in text and "z =" in text and f"wrote {out}" in text
    ds = sd.open_dataset(out)
    assert ds.attrs["spec_name"] == "harmonic" and ds.sizes["replica"] == 20000


@pytest.mark.parametrize("model", sorted(p.name for p in MODELS.glob("*.toml")))
def test_every_model_card_is_valid(model):
    sd.spec.load_spec(MODELS / model)


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace("dt = 0.001", "dtt = 0.001"),
     r"\[integrator\] dtt: unknown key for integrator EulerMaruyama \(did you mean 'dt'\?\); allowed: dt, temperature"),
    (lambda s: s.replace("dt = 0.001", 'dt = "small"'), r"'dt' parameter of EulerMaruyama must be a real number"),
    (lambda s: s.replace("temperature = 0.5", "temperature = -0.5"), r"'temperature'.*>= 0.0"),
    (lambda s: s.replace("n_replicas = 20", "n_replicas = 0"), r"\[run\] n_replicas: must be an integer >= 1; got 0"),
    (lambda s: s.replace("seed = 4", "seed = 4\ncolour = 3"), r"\[run\] colour: unknown key"),
    (lambda s: s.replace("x0 = [-1.0, 0.0]", 'x0_file = "missing.npy"'), r"\[run\] x0_file: no such file"),
    (lambda s: s.replace("[model]", "[modle]"), r"\[modle\]: unknown table"),
    (lambda s: s.replace('type = "DoubleWell"', 'type = "TripleWell"'),
     r"\[landscape\] type: unknown landscape type 'TripleWell' \(did you mean 'DoubleWell'\?\)"),
    (lambda s: s.replace("mean_x1 = 0.0", "mean_x7 = 0.0"), r"\[expected\] mean_x7: coordinate 7 does not exist"),
    (lambda s: s.replace("n_steps = 100", "n_steps = 101"), "multiple of record_every"),
    (lambda s: s + "\n[extra\n", "not valid TOML"),
])
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, edit, match):
    spec = tmp_path / "spec.toml"
    spec.write_text(edit(GOOD))
    out = tmp_path / "out.nc"
    assert main(["run", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    import re
    assert re.search(match, err), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["spec.toml"]


def test_missing_spec_and_bad_output_extension(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "-o", str(tmp_path / "o.nc")]) == 2
    assert "no such spec file" in capsys.readouterr().err
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD)
    assert main(["run", str(spec), "-o", str(tmp_path / "o.csv")]) == 2
    assert "extension" in capsys.readouterr().err


def test_console_entry_point_info():
    out = subprocess.run([sys.executable, "-m", "stochdyn", "info"], capture_output=True, text=True, check=True).stdout
    assert "numba threads" in out and "kernel cache" in out and sd.__version__ in out


def test_all_diverged_run_summarises_without_error(tmp_path, capsys):
    """Every replica diverging is reported, not a ZeroDivisionError from the summary."""
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD.replace("dt = 0.001", "dt = 5.0").replace("x0 = [-1.0, 0.0]", "x0 = [30.0, 0.0]"))
    with pytest.warns(sd.DivergenceWarning):
        assert main(["run", str(spec), "-o", str(tmp_path / "o.nc"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "diverged replicas: 20" in out and "every replica diverged" in out
    assert "checks against the model card: none possible" in out


def test_output_piped_into_head_is_not_an_error(tmp_path):
    """`stochdyn run … | head -1`: the reader goes away after one line; the run still completes and
    writes its output, with no BrokenPipeError traceback."""
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD)
    out = tmp_path / "o.nc"
    p = subprocess.Popen([sys.executable, "-m", "stochdyn", "run", str(spec), "-o", str(out), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()  # like head -1
    err = p.stderr.read().decode()
    assert p.wait() == 0 and first.startswith(b"running tiny"), err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert sd.open_dataset(out).sizes["replica"] == 20


@pytest.mark.parametrize("command", [[], ["run"], ["sweep"], ["reproduce"], ["verify"]])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit):
        main(command + ["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "stochdyn " + (command[0] if command else "run") in text


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace("dim = 2", "dim = 2\nbarier = 2.0"),
     r"\[landscape\] barier: unknown key for landscape DoubleWell \(did you mean 'barrier'\?\); allowed: dim, barrier"),
    (lambda s: s.replace("[run]", "[rnu]"), r"\[rnu\]: unknown table \(did you mean 'run'\?\)"),
    (lambda s: s.replace("seed = 4", "sed = 4"), r"\[run\] sed: unknown key \(did you mean 'seed'\?\)"),
    (lambda s: s.replace('type = "EulerMaruyama"', 'type = "EulerMaruyma"'),
     r"\[integrator\] type: unknown integrator type 'EulerMaruyma' \(did you mean 'EulerMaruyama'\?\)"),
    (lambda s: s.replace("n_steps = 100", "n_steps = 18446744073709551616"), r"n_steps: must be an integer <= "),
])
def test_spec_typos_get_a_did_you_mean(tmp_path, capsys, edit, match):
    import re

    spec = tmp_path / "spec.toml"
    spec.write_text(edit(GOOD))
    assert main(["run", str(spec), "-o", str(tmp_path / "o.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err


def test_cli_errors_speak_cli(tmp_path, capsys):
    """Messages name command-line options, never Python arguments such as format= or resume=True."""
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD)
    assert main(["run", str(spec), "-o", str(tmp_path / "o.txt")]) == 2
    assert main(["run", str(spec), "-o", str(tmp_path / "o.nc"), "--no-progress"]) == 0
    assert main(["run", str(spec), "-o", str(tmp_path / "o.nc")]) == 2
    assert main(["run", str(spec), "-o", str(tmp_path / "o.zarr"), "--resume", "--overwrite"]) == 2
    errs = capsys.readouterr().err
    assert "=" not in errs.replace("--", ""), errs
    assert "--overwrite" in errs and ".nc (netCDF) or .zarr" in errs


def test_verify_and_reproduce_say_what_they_do(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD)
    assert main(["run", str(spec), "-o", str(tmp_path / "o.zarr"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "o.zarr")]) == 0
    assert "intact (every checksum verified)" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.zarr")]) == 2
    (tmp_path / "analyses").mkdir()
    main(["reproduce", "--out", str(tmp_path / "res"), "--studies", str(tmp_path / "analyses")])
    assert f"running the study.py files in {tmp_path / 'analyses'}" in capsys.readouterr().out
