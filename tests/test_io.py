"""Datasets: the documented layout, provenance attributes, and identical netCDF/zarr round trips."""

import json

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd


@pytest.fixture(scope="module")
def ds():
    return sd.simulate(sd.BAOAB(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=3, tilt=0.1),
                       x0=[-1.0, 0.0, 0.0], n_replicas=50, n_steps=100, record_every=10, rng=123)


def test_layout_and_metadata(ds):
    assert dict(ds.sizes) == {"replica": 50, "time": 11, "dim": 3}
    assert ds["x"].dims == ("replica", "time", "dim") and ds["v"].dims == ("replica", "time", "dim")
    assert ds["step"].dims == ("time",) and ds["step"].dtype == np.int64
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * 0.01)
    for name in list(ds.data_vars) + list(ds.coords):
        assert ds[name].attrs.get("long_name") and "units" in ds[name].attrs, name
    info = sd.io.run_info(ds)
    assert info["integrator"] == {"type": "BAOAB", "dt": 0.01, "temperature": 0.5, "friction": 1.0, "mass": 1.0,
                                  "initial_velocity": "thermal"}
    assert info["target"]["type"] == "DoubleWell" and info["target"]["tilt"] == 0.1
    assert info["run"]["n_steps"] == 100 and info["seed"] == 123
    assert ds.attrs["integrator_dt"] == 0.01 and ds.attrs["target_barrier"] == 1.0
    assert ds.attrs["stochdyn_version"] == sd.__version__ and ds.attrs["numba_version"]
    # energies are U at the recorded positions
    land = sd.landscapes.landscape_from_dict(info["target"])
    np.testing.assert_allclose(ds.energy.values, land.value(ds.x.values), rtol=1e-12)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_open_round_trip_is_identical(ds, tmp_path, suffix):
    path = sd.save(ds, tmp_path / f"run{suffix}")
    back = sd.open_dataset(path)
    xr.testing.assert_identical(ds, back)
    assert back["diverged"].dtype == bool and back["step"].dtype == np.int64
    json.loads(back.attrs["integrator"])


def test_save_is_atomic_and_refuses_unknown_formats(ds, tmp_path):
    with pytest.raises(sd.ValidationError, match="extension"):
        sd.save(ds, tmp_path / "run.txt")
    path = sd.save(ds, tmp_path / "sub" / "run.nc")
    with pytest.raises(FileExistsError):
        sd.save(ds, path, overwrite=False)
    bad = ds.copy()
    bad.attrs["unstorable"] = {"a": 1}  # dict attributes cannot be written to netCDF
    with pytest.raises(Exception):
        sd.save(bad, tmp_path / "bad.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no partial or temporary file left
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["run.nc"]
    with pytest.raises(FileNotFoundError):
        sd.open_dataset(tmp_path / "missing.nc")
