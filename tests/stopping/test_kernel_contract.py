"""The kernel-side stopping contract works: a prototype kernel with the hooks (proto_kernel.py)
reproduces the driver-level ``until`` bit for bit, is bit-identical on 1 and 2 threads and in
chunks, loads from the disk cache in a new process, and compiles no stopping code for until=None."""

import os
import pathlib
import subprocess
import sys
import textwrap

import numba
import numpy as np

import stochdyn as sd
import proto_kernel

HERE = pathlib.Path(__file__).parent
LAND = sd.landscapes.DoubleWell(dim=2, tilt=0.2)
INTEG = sd.EulerMaruyama(dt=0.01, temperature=0.5)
RUN = dict(x0=[0.0, 0.0], n_replicas=64, n_steps=600, record_every=20, rng=11)
UNTIL = sd.stopping.Region(0, above=0.9) | sd.stopping.EnergyBelow(-0.19) | sd.stopping.Region(0, below=-1.3)


def test_prototype_kernel_reproduces_the_driver_level_until():
    ds = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    out_x, out_e, stop_step, stop_rule, _ = proto_kernel.run(INTEG, LAND, until=UNTIL, **RUN)
    assert set(ds["stop_rule"].values.tolist()) == {0, 1, 2}  # every part of the combination fires somewhere
    np.testing.assert_array_equal(stop_step, ds["stop_step"].values)
    np.testing.assert_array_equal(stop_rule, ds["stop_rule"].values)
    np.testing.assert_array_equal(out_x, ds["x"].values)
    np.testing.assert_array_equal(out_e, ds["energy"].values)
    # without a rule the prototype is the production kernel
    free = sd.simulate(INTEG, LAND, **RUN)
    np.testing.assert_array_equal(proto_kernel.run(INTEG, LAND, **RUN)[0], free["x"].values)


def test_prototype_kernel_is_bit_identical_across_threads_and_chunks():
    ref = proto_kernel.run(INTEG, LAND, until=UNTIL, **RUN)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = proto_kernel.run(INTEG, LAND, until=UNTIL, chunk=60, block=3, **RUN)
    finally:
        numba.set_num_threads(old)
    for a, b in zip(ref, one):
        np.testing.assert_array_equal(a, b)


_SCRIPT = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, {here!r})
    import numpy as np
    import stochdyn as sd
    import proto_kernel
    from stochdyn.stopping import _compiled
    land = sd.landscapes.DoubleWell(dim=2)
    integ = sd.EulerMaruyama(dt=0.01, temperature=0.5)
    run = dict(x0=[-1.0, 0.0], n_replicas=8, n_steps=40, record_every=20, rng=1)
    proto_kernel.run(integ, land, **run)
    none_only = [str(s) for s in proto_kernel.em_until.signatures]
    interpreter_untouched = _compiled.interpreter._compiled is None
    proto_kernel.run(integ, land, until=sd.stopping.Region(0, above=0.0), **run)
    k = proto_kernel.em_until
    print(json.dumps(dict(none_only=none_only, interpreter_untouched=interpreter_untouched,
                          hits=sum(k.stats.cache_hits.values()), misses=sum(k.stats.cache_misses.values()),
                          cfunc_hits=_compiled.interpreter.get().cache_hits)))
""")


def _fresh_process(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", _SCRIPT.format(here=str(HERE))], env=env, capture_output=True,
                         text=True, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_prototype_kernel_caches_and_compiles_nothing_for_until_none(tmp_path):
    first = _fresh_process(tmp_path)
    # until=None: one specialisation with the rule typed `none` (the branches were pruned while typing:
    # calling a `none` would not type) and the rule interpreter never compiled
    assert len(first["none_only"]) == 1 and ", none, " in first["none_only"][0]
    assert first["interpreter_untouched"]
    assert first["misses"] == 2 and first["hits"] == 0
    second = _fresh_process(tmp_path)  # a new process: both specialisations and the interpreter from the cache
    assert second["hits"] == 2 and second["misses"] == 0 and second["cfunc_hits"] == 1
