"""Streaming to zarr, checkpoints, mismatched resumes, bounded memory, export, plain-tool readability.

Kills, damage, full disks and bad outputs are in test_faults.py."""

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

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
    (tmp_path / "other.zarr").mkdir()  # a folder holding something else is never taken over
    (tmp_path / "other.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(StoreMismatchError, match="no stochdyn checkpoint and is not a store of this run"):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=tmp_path / "other.zarr", resume=True, **RUN)
    assert (tmp_path / "other.zarr" / "notes.txt").read_text() == "mine"
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


def _plain_open_without_warnings(path):
    """Open a store the way plain tools do and read everything; any warning fails the test."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.open_zarr(path).load()
        xr.open_dataset(path, engine="zarr").load()
        zarr.open(str(path), mode="r")
        group = zarr.open_group(str(path), mode="r")
        for _, arr in group.arrays():
            arr[...]
    meta = json.loads((Path(path) / "zarr.json").read_text())
    assert meta.get("consolidated_metadata"), f"{path}: metadata not consolidated"


def test_every_kind_of_store_opens_in_plain_xarray_and_zarr_without_a_warning(tmp_path, monkeypatch):
    """Streamed (finished and unfinished), saved, sweep-point and command-line stores: consolidated
    metadata, the checkpoint out of readers' way, no warning from xarray or zarr."""
    ds = sd.simulate(INTEGRATORS["BAOAB"](), LAND, store=tmp_path / "run.zarr", chunk_steps=200, **RUN)
    sd.save(ds, tmp_path / "saved.zarr")
    sd.sweep(INTEGRATORS["EulerMaruyama"](), LAND, grid={"integrator.temperature": [0.4, 0.6]}, workers="serial",
             store=tmp_path / "sweep", **RUN)
    from stochdyn.cli import main
    from stochdyn.ensemble import store as st

    spec = tmp_path / "spec.toml"
    spec.write_text((Path(__file__).resolve().parents[1] / "models" / "harmonic.toml").read_text()
                    .replace("n_replicas = 20000", "n_replicas = 200"))
    assert main(["run", str(spec), "-o", str(tmp_path / "cli.zarr"), "--no-progress"]) == 0
    orig = st.ZarrRecorder.commit

    def stop_after_two_chunks(self, k0, n, state, elapsed):
        if k0 >= 10:
            raise KeyboardInterrupt
        orig(self, k0, n, state, elapsed)

    monkeypatch.setattr(st.ZarrRecorder, "commit", stop_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        sd.simulate(INTEGRATORS["EulerMaruyama"](), LAND, store=tmp_path / "unfinished.zarr", chunk_steps=200, **RUN)
    monkeypatch.undo()
    stores = ["run.zarr", "saved.zarr", "cli.zarr", "unfinished.zarr"] + [
        f"sweep/{p.name}" for p in (tmp_path / "sweep").iterdir() if p.suffix == ".zarr"]
    assert len(stores) == 6
    for name in stores:
        _plain_open_without_warnings(tmp_path / name)
        assert sd.io.verify(tmp_path / name) == []


@pytest.mark.parametrize("name", ["BAOAB", "CMAES"])
def test_save_and_streaming_chunk_stores_alike_with_dim_whole(tmp_path, name):
    """``sd.save`` of an in-memory run and the same run streamed use the same zarr chunks, with the
    trailing dimensions (``dim``, ``individual``) whole and CRC-32C checksums on every chunk."""
    import zarr

    integ = INTEGRATORS[name]() if name in INTEGRATORS else sd.CMAES(sigma0=0.5, record_population=True)
    kw = RUN if name in INTEGRATORS else dict(x0=[1.0, 1.0], n_replicas=50, n_steps=40, record_every=2, rng=3)
    mem = sd.simulate(integ, LAND, **kw)
    sd.save(mem, tmp_path / "saved.zarr")
    st = sd.simulate(integ, LAND, store=tmp_path / "streamed.zarr", **kw)
    assert_same(mem, st)
    a, b = zarr.open_group(str(tmp_path / "saved.zarr"), mode="r"), zarr.open_group(str(tmp_path / "streamed.zarr"), mode="r")
    for v in mem.data_vars:
        assert a[v].chunks == b[v].chunks, v
        assert "crc32c" in [c.to_dict()["name"] for c in a[v].metadata.codecs], v
        for d in ("dim", "individual"):
            if d in mem[v].dims:
                assert a[v].chunks[mem[v].dims.index(d)] == mem.sizes[d], (v, d)
