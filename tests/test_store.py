"""Streaming to zarr, checkpoints, kill-and-resume, mismatched resumes, bounded memory, export."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from stochdyn.ensemble.store import StoreMismatchError, read_checkpoint

L = sd.landscapes
LAND = L.DoubleWell(dim=2, tilt=0.1)
RUN = dict(x0=[-1.0, 0.0], n_replicas=500, n_steps=1200, record_every=40, rng=31)
INTEGRATORS = {
    "EulerMaruyama": lambda: sd.EulerMaruyama(dt=0.01, temperature=0.5),
    "LeimkuhlerMatthews": lambda: sd.LeimkuhlerMatthews(dt=0.01, temperature=0.5),
    "BAOAB": lambda: sd.BAOAB(dt=0.01, temperature=0.5, friction=2.0),
}


def assert_same(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    for k in a.coords:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


@pytest.mark.parametrize("name", INTEGRATORS)
@pytest.mark.parametrize("chunk_steps", [40, 280, None])
def test_streamed_run_equals_in_memory_run(tmp_path, name, chunk_steps):
    mem = sd.simulate(INTEGRATORS[name](), LAND, **RUN)
    st = sd.simulate(INTEGRATORS[name](), LAND, store=tmp_path / "run.zarr", chunk_steps=chunk_steps, **RUN)
    assert_same(mem, st)
    assert st.attrs["status"] == "complete" and read_checkpoint(tmp_path / "run.zarr")["complete"]


CHILD = textwrap.dedent(
    """
    import sys, stochdyn as sd
    print("go", flush=True)
    sd.simulate(sd.LeimkuhlerMatthews(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=2, tilt=0.1),
                x0=[-1.0, 0.0], n_replicas=2000, n_steps=20000, record_every=100, rng=77,
                store=sys.argv[1], chunk_steps=200)
    """
)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    kw = dict(x0=[-1.0, 0.0], n_replicas=2000, n_steps=20000, record_every=100, rng=77)
    integ = sd.LeimkuhlerMatthews(dt=0.01, temperature=0.5)
    reference = sd.simulate(integ, LAND, **kw)
    rnd = random.Random(20261128)
    interrupted = 0
    for trial in range(3):
        store = tmp_path / f"killed-{trial}.zarr"
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "go"
        # kill at a random moment after the first checkpoint (so the store exists), whatever the load
        deadline = time.monotonic() + 60
        while not (store / ".stochdyn-checkpoint.npz").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        ck = read_checkpoint(store) if store.exists() else None
        if ck is not None and not ck["complete"]:
            interrupted += 1
            with pytest.warns(UserWarning, match="unfinished run"):
                partial = sd.open_dataset(store)
            assert partial.sizes["time"] == ck["records_complete"]  # never a half-written record
            assert_same(reference.isel(time=slice(0, ck["records_complete"])).drop_vars(["diverged", "diverged_step"]),
                        partial.drop_vars(["diverged", "diverged_step"]))
        resumed = sd.simulate(integ, LAND, store=store, resume=True, **kw)
        assert_same(reference, resumed)
        again = sd.simulate(integ, LAND, store=store, resume=True, **kw)  # already complete: just reopens
        assert_same(reference, again)
    assert interrupted >= 1, "no kill landed mid-run; the test did not test resumption"


def test_mismatched_or_existing_store_is_refused(tmp_path):
    store = tmp_path / "run.zarr"
    sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=store, **RUN)
    with pytest.raises(FileExistsError, match="resume=True"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=store, **RUN)
    with pytest.raises(StoreMismatchError, match="integrator: stored"):
        sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.6), LAND, store=store, resume=True, **RUN)
    with pytest.raises(StoreMismatchError, match="seed: stored"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=store, resume=True, **dict(RUN, rng=32))
    with pytest.raises(StoreMismatchError, match="x0: stored"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=store, resume=True, **dict(RUN, x0=[1.0, 0.0]))
    with pytest.raises(StoreMismatchError, match="target: stored"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), L.DoubleWell(dim=2), store=store, resume=True, **RUN)
    with pytest.raises(sd.ValidationError, match="ending in .zarr"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=tmp_path / "run.nc", **RUN)
    with pytest.raises(sd.ValidationError, match="needs a 'store'"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, resume=True, **RUN)
    (tmp_path / "other.zarr").mkdir()
    with pytest.raises(StoreMismatchError, match="no stochdyn checkpoint"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=tmp_path / "other.zarr", resume=True, **RUN)
    # resume with rng=None picks up the stored seed
    again = sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=store, resume=True, **dict(RUN, rng=None))
    assert again.attrs["seed"] == "31"


MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys, numpy as np, stochdyn as sd
    kw = dict(x0=[-1.0, 0.0], n_replicas=200_000, n_steps=400, record_every=10, rng=1)
    integ = sd.EulerMaruyama(dt=0.01, temperature=0.5)
    sd.simulate(integ, sd.landscapes.DoubleWell(dim=2), n_replicas=10, n_steps=10, record_every=10,
                store=sys.argv[1] + "-warm.zarr")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ds = sd.simulate(integ, sd.landscapes.DoubleWell(dim=2), store=sys.argv[1], chunk_steps=20, **kw)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((peak - base) * 1024, ds.x.nbytes + ds.energy.nbytes)
    """
)


def test_streamed_run_memory_is_bounded_by_a_chunk(tmp_path):
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "big.zarr")], capture_output=True,
                         text=True, check=True).stdout.split()
    grew, recorded = int(out[0]), int(out[1])
    # records: 41 x 2e5 replicas x 3 floats = 197 MB; held in memory, the peak would grow by at
    # least that. Streaming holds the state (~13 MB) and a 2-record buffer (~10 MB).
    assert recorded > 190e6
    assert grew < recorded / 2, f"peak memory grew by {grew / 1e6:.0f} MB for {recorded / 1e6:.0f} MB of records"


def test_export_netcdf_of_a_finished_store(tmp_path):
    st = sd.simulate(INTEGRATORS["BAOAB"](), LAND, store=tmp_path / "run.zarr", **RUN)
    path = sd.io.export_netcdf(tmp_path / "run.zarr", tmp_path / "run.nc")
    back = sd.open_dataset(path)
    assert_same(st, back)
    assert back.attrs["seed"] == "31"
