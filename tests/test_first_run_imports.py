"""A run loads from the kernel cache in a new process in <= 0.5 s (issue 10), and importing ``dask.array``
alone costs about 0.3 s: no ``simulate`` may import it, with or without a stopping rule. (xarray imports
it while checking the type of the data of a ``DataArray`` built from a NumPy array, when dask is
installed; the Dataset's variables are made with ``stochdyn.io.schema.fast_variable``, which skips
that check.) Checked in a fresh process, since an import is once per process."""

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("dask")

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
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["stopped"] > 0  # the rule held somewhere: its variables were built
    assert seen == {"plain": False, "until": False, "stopped": seen["stopped"]}
