"""Saying when compiling (issue 10): a run that compiles kernels says so once on stderr before it
starts, and the CLI summary says "includes ... compiling"; a run that loads every kernel from the
cache says neither. Both runs are `stochdyn run` in a subprocess sharing one fresh NUMBA_CACHE_DIR,
so the first is a genuinely cold cache whatever the test session has compiled before."""

import os
import subprocess
import sys

SPEC = """
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
n_replicas = 8
n_steps = 10
seed = 4
"""


def _run(tmp_path, cache, name):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "stochdyn", "run", str(spec), "-o", str(tmp_path / name)],
                          env=env, capture_output=True, text=True, check=True)


def test_notice_on_a_cold_cache_only(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    cold = _run(tmp_path, cache, "a.nc")
    assert cold.stderr.count("stochdyn: compiling the machine code for EulerMaruyama on DoubleWell") == 1
    assert "once per environment" in cold.stderr
    assert "compiling the kernels" in cold.stdout  # the run summary
    warm = _run(tmp_path, cache, "b.nc")
    assert "compiling" not in warm.stderr
    assert "compiling" not in warm.stdout
