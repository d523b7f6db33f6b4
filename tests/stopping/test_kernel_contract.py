"""The kernel-side stopping contract (docs/design.md, "Stopping rules"): with ``until=None`` a kernel is
compiled with the rule argument typed ``none`` (every branch that uses it pruned: calling a ``none``
would not even type) and no rule function is compiled; a run with a rule adds one
specialisation; both load from the disk cache in a new process."""

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import json
    import stochdyn as sd
    from stochdyn.integrators._kernels import langevin as k
    from stochdyn.stopping import _compiled
    land = sd.landscapes.DoubleWell(dim=2)
    integ = sd.EulerMaruyama(dt=0.01, temperature=0.5)
    run = dict(x0=[-1.0, 0.0], n_replicas=8, n_steps=40, record_every=20, rng=1, progress=False)
    sd.simulate(integ, land, **run)
    none_only = [str(s) for s in k.euler_maruyama.signatures]
    interpreter_untouched = _compiled.interpreter._compiled is None and all(
        f._compiled is None for f in _compiled.RULE_FUNCS.values())
    ds = sd.simulate(integ, land, until=sd.stopping.Region(0, above=-0.5) | sd.stopping.EnergyBelow(-1.0), **run)
    kern = k.euler_maruyama
    print(json.dumps(dict(none_only=none_only, interpreter_untouched=interpreter_untouched,
                          n_sigs=len(kern.signatures), stopped=int(ds["stopped"].sum()),
                          hits=sum(kern.stats.cache_hits.values()), misses=sum(kern.stats.cache_misses.values()),
                          cfunc_hits=_compiled.interpreter.get().cache_hits)))
""")


def _fresh_process(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_until_none_compiles_no_stopping_code_and_both_specialisations_cache(tmp_path):
    first = _fresh_process(tmp_path)
    assert len(first["none_only"]) == 1 and ", none, " in first["none_only"][0]
    assert first["interpreter_untouched"]
    assert first["n_sigs"] == 2 and first["misses"] == 2 and first["hits"] == 0 and first["stopped"] > 0
    second = _fresh_process(tmp_path)  # a new process: both specialisations and the interpreter from the cache
    assert second["hits"] == 2 and second["misses"] == 0 and second["cfunc_hits"] == 1
