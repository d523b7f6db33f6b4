"""What a first run in a new process pays besides its own kernels (issue 10: a cached run loads in
<= 0.5 s, a first call compiles in seconds). Checked in fresh processes: imports and compiled
specialisations are once per process.

* Importing ``dask.array`` alone costs about 0.3 s: no ``simulate`` may import it, with or without a
  stopping rule. (xarray imports it while checking the type of the data of a ``DataArray`` built
  from a NumPy array, when dask is installed; the Dataset's variables are made with
  ``stochdyn.io.schema.fast_variable``, which skips that check.)
* A run with a stopping rule compiles each helper of its kernel once: an ``if until_fn is None:``
  around a call is not pruned by Numba when there is a rule, so a helper called on both sides with
  different argument types was compiled twice (``_draw_lanes`` of SGD, ~0.5 s).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json, sys
    import stochdyn as sd
    integ, land = sd.EulerMaruyama(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=2)
    run = dict(x0=[-1.0, 0.0], n_replicas=8, n_steps=20, record_every=10, rng=1, progress=False)
    seen = {}
    sd.simulate(integ, land, **run)
    seen["plain"] = "dask.array" in sys.modules
    ds = sd.simulate(integ, land, until=sd.stopping.Region(0, above=-0.5) | sd.stopping.EnergyBelow(-1.0), **run)
    seen["until"] = "dask.array" in sys.modules
    seen["stopped"] = int(ds["stopped"].sum())
    print(json.dumps(seen))
""")


def test_simulate_with_or_without_a_stopping_rule_does_not_import_dask_array():
    pytest.importorskip("dask")
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["stopped"] > 0  # the rule held somewhere: its variables were built
    assert seen == {"plain": False, "until": False, "stopped": seen["stopped"]}


_SGD_UNTIL = textwrap.dedent("""
    import json
    import stochdyn as sd
    from stochdyn.integrators._kernels import sgd
    prob = sd.problems.LeastSquares.from_data(sd.problems.gaussian_regression(200, 5, noise=0.5, seed=1))
    ds = sd.simulate(sd.SGD(lr=0.05, batch_size=4), prob, n_replicas=8, n_steps=40, rng=0, progress=False,
                     until=sd.stopping.EnergyBelow(0.5))
    print(json.dumps({"draw_lanes": len(sgd._draw_lanes.signatures), "kernel": len(sgd.sgd_problem.signatures)}))
""")


def test_a_run_with_a_stopping_rule_compiles_each_sgd_helper_once(tmp_path):
    # an empty kernel cache: a kernel loaded from the cache compiles no helper (a few seconds of compiling)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _SGD_UNTIL], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"draw_lanes": 1, "kernel": 1}
