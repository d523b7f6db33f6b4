"""Same rng => bit-identical results, whatever the thread count, chunking, or replica subset."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd

L = sd.landscapes
INTEGRATORS = {
    "EulerMaruyama": lambda: sd.EulerMaruyama(dt=0.01, temperature=0.5),
    "EulerMaruyama-full-noise": lambda: sd.EulerMaruyama(dt=0.01, diffusion=[[0.5, 0.1], [0.1, 0.2]]),
    "LeimkuhlerMatthews": lambda: sd.LeimkuhlerMatthews(dt=0.01, temperature=[0.5, 0.2]),
    "BAOAB": lambda: sd.BAOAB(dt=0.01, temperature=0.5, friction=2.0, mass=[1.0, 3.0]),
}
RUN = dict(n_replicas=300, n_steps=600, record_every=20, rng=2026)


def _data(ds):
    return {k: ds[k].values for k in ds.data_vars}


def _assert_same_data(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    assert set(a.coords) == set(b.coords)
    for k in a.coords:
        xr.testing.assert_identical(a[k], b[k])


@pytest.mark.parametrize("name", INTEGRATORS)
def test_chunking_does_not_change_results(name):
    land = L.DoubleWell(dim=2, tilt=0.1)
    a = sd.simulate(INTEGRATORS[name](), land, x0=[-1.0, 0.0], **RUN)
    b = sd.simulate(INTEGRATORS[name](), land, x0=[-1.0, 0.0], chunk_steps=20, **RUN)
    c = sd.simulate(INTEGRATORS[name](), land, x0=[-1.0, 0.0], chunk_steps=420, **RUN)
    _assert_same_data(a, b)
    _assert_same_data(a, c)


@pytest.mark.parametrize("name", INTEGRATORS)
def test_replica_subset_reproduces_those_replicas(name):
    land = L.DoubleWell(dim=2)
    full = sd.simulate(INTEGRATORS[name](), land, x0=[-1.0, 0.0], **RUN)
    ids = [3, 7, 150, 299]
    run = dict(RUN, n_replicas=None)
    part = sd.simulate(INTEGRATORS[name](), land, x0=[-1.0, 0.0], replicas=ids, **run)
    _assert_same_data(full.sel(replica=ids), part)


def test_same_seed_same_data_other_seed_other_data():
    land = L.DoubleWell(dim=2)
    integ = INTEGRATORS["EulerMaruyama"]()
    a = sd.simulate(integ, land, **RUN)
    b = sd.simulate(integ, land, **RUN)
    _assert_same_data(a, b)
    c = sd.simulate(integ, land, **dict(RUN, rng=2027))
    assert not np.array_equal(a.x.values, c.x.values)
    d = sd.simulate(integ, land, **dict(RUN, rng=sd.random.seed_sequence_from_attrs(a.attrs)))
    _assert_same_data(a, d)


SCRIPT = textwrap.dedent(
    """
    import hashlib, numba, numpy as np, stochdyn as sd
    assert numba.get_num_threads() == {threads}
    integs = [sd.EulerMaruyama(dt=0.01, temperature=0.5),
              sd.EulerMaruyama(dt=0.01, diffusion=[[0.5, 0.1], [0.1, 0.2]]),
              sd.LeimkuhlerMatthews(dt=0.01, temperature=[0.5, 0.2]),
              sd.BAOAB(dt=0.01, temperature=0.5, friction=2.0, mass=[1.0, 3.0])]
    h = hashlib.sha256()
    for integ in integs:
        ds = sd.simulate(integ, sd.landscapes.DoubleWell(dim=2, tilt=0.1), x0=[-1.0, 0.0],
                         n_replicas=1000, n_steps=400, record_every=40, rng=7)
        for k in sorted(ds.data_vars):
            h.update(np.ascontiguousarray(ds[k].values).tobytes())
    print(h.hexdigest())
    """
)


def test_thread_count_does_not_change_results():
    digests = []
    for threads in (1, 2):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(threads=threads)], env=env, capture_output=True,
                             text=True, check=True)
        digests.append(out.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]
