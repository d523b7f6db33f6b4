"""A sweep pasted into a script just works: serial by default, and ``workers=N`` outside a
``if __name__ == "__main__":`` guard runs serially with a warning instead of failing in Dask's nanny."""

import subprocess
import sys
import textwrap

SWEEP = """
import stochdyn as sd
ds = sd.sweep(sd.EulerMaruyama(dt=1e-2, temperature=0.5), sd.landscapes.DoubleWell(dim=1), x0=[-1.0],
              grid={{"integrator.temperature": [0.2, 0.3]}}, n_replicas=4, n_steps=10, rng=1{workers})
print("dims", ds.x.dims)
"""


def _run(tmp_path, code):
    script = tmp_path / "pasted.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_default_sweep_in_a_script_runs_serially(tmp_path):
    proc = _run(tmp_path, SWEEP.format(workers=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dims ('temperature', 'replica', 'time', 'dim')" in proc.stdout
    assert "Nanny" not in proc.stderr and "Warning" not in proc.stderr


def test_local_cluster_outside_a_main_guard_falls_back_to_serial_with_a_warning(tmp_path):
    proc = _run(tmp_path, "def main():\n" + textwrap.indent(SWEEP.format(workers=", workers=2"), "    ") + "\nmain()\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runs serially" in proc.stderr and 'if __name__ == "__main__"' in proc.stderr
    assert "Nanny" not in proc.stderr
    assert "dims" in proc.stdout

