"""Datasets: the documented layout, provenance attributes, and identical netCDF/zarr round trips."""

import json
import sys
from pathlib import Path

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


def test_building_the_dataset_does_not_import_dask():
    # xarray imports dask.array (~0.3 s) when it checks data for dask arrays; a run's Dataset is built
    # without those checks (fastpath variables, explicit pandas indexes), so a cached run stays fast
    script = (
        "import sys, numpy as np\n"
        "from stochdyn.integrators.base import Variable\n"
        "from stochdyn.io.schema import build_dataset\n"
        "v = [Variable('x', ('dim',), (2,), 'position', '1')]\n"
        "ds = build_dataset(v, {'x': np.zeros((3, 4, 2))}, np.arange(3), np.arange(4), np.arange(4) * 0.5, 'time', '1',\n"
        "                   np.full(3, -1), {'a': 1})\n"
        "assert ds.sel(step=2).time.item() == 1.0 and set(ds.xindexes) == {'replica', 'time', 'dim', 'step'}\n"
        "print('dask' in sys.modules)\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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


def test_select_by_time_as_typed_and_by_step(tmp_path):
    """``ds.sel(time=0.7)`` and ``ds.sel(step=700)`` work, in memory and after a round trip."""
    ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=0.5), sd.landscapes.DoubleWell(dim=2), x0=[-1.0, 0.0],
                     n_replicas=5, n_steps=1000, record_every=10, rng=1)
    for d in (ds, sd.open_dataset(sd.save(ds, tmp_path / "r.nc")), sd.open_dataset(sd.save(ds, tmp_path / "r.zarr"))):
        a, b = d.x.sel(time=0.7), d.x.sel(step=700)
        xr.testing.assert_identical(a, b)
        assert int(a.step) == 700 and float(a.time) == 0.7
        assert d.sel(time=[0.07, 0.33, 0.99]).sizes["time"] == 3
    assert 700 * 1e-3 != 0.7  # the naive product misses the typed value: what this test guards against


# dt as a user types it; the steps cover small counts and counts near the exact-integer limit
DTS = ["0.1", "0.01", "0.001", "1e-4", "0.003", "0.007", "0.05", "0.025", "0.2", "0.3", "0.7", "1.1", "2.5e-3",
       "0.0125", "3.3e-5", "0.3333333333333333", "1e-30", "1e-22", "2.5e10", "1", "0.9"]


@pytest.mark.parametrize("dt", DTS)
def test_times_are_the_decimal_products_of_step_and_dt(dt):
    """time[k] is the double nearest to step[k] x dt computed exactly in decimal — the number a user
    types — for every dt above, including steps where step * dt is one ulp off (0.1 * 3)."""
    from decimal import Decimal

    from stochdyn.io.schema import step_times

    steps = np.concatenate([np.arange(0, 2000), [10**6 + 7, 2**40 + 3]])
    got = step_times(steps, float(dt))
    want = np.array([float(Decimal(int(k)) * Decimal(repr(float(dt)))) for k in steps])
    np.testing.assert_array_equal(got, want)


def _all_cases():
    sys.path.insert(0, str(Path(__file__).parent / "golden"))
    from cases import cases

    return cases()


def test_cf_units_and_provenance_for_every_integrator():
    """Every variable and coordinate of every family has a long name and CF-valid units (counts
    such as generations are "1"), and every Dataset says where it came from (history, source)."""
    for name, (integ, target, x0, kw) in _all_cases().items():
        ds = sd.simulate(integ(), target(), x0, **kw)
        for v in list(ds.data_vars) + list(ds.coords):
            assert ds[v].attrs.get("long_name"), (name, v)
            assert ds[v].attrs.get("units") in ("1",), (name, v, ds[v].attrs.get("units"))
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert ds.attrs["source"].startswith(f"stochdyn {sd.__version__}"), name
        assert "stochdyn.simulate(" in ds.attrs["history"] and str(kw["n_steps"]) in ds.attrs["history"], name
        assert ds.time.attrs["long_name"] in ("time", "step", "generation"), name


def test_model_card_provenance_and_relative_paths(tmp_path, monkeypatch):
    """A spec run stores the model card's description (comment) and reference (references), the
    command line (history) and the spec path relative — never the user's absolute path."""
    from stochdyn.cli import main

    models = Path(__file__).resolve().parents[1] / "models"
    spec = tmp_path / "cards" / "dw.toml"
    spec.parent.mkdir()
    text = (models / "double_well.toml").read_text()
    spec.write_text(text.replace("n_replicas = 10000", "n_replicas = 50"))
    monkeypatch.chdir(tmp_path)
    for out in ("dw.nc", "dw.zarr"):
        absolute = out.endswith(".zarr")  # typed as absolute paths: stored relative all the same
        args = [str(spec), "-o", str(tmp_path / out)] if absolute else ["cards/dw.toml", "-o", out]
        assert main(["run", *args, "--no-progress"]) == 0
        ds = sd.open_dataset(out)
        card = sd.spec.load_spec(spec)
        assert ds.attrs["comment"] == card.description and ds.attrs["references"] == card.reference
        assert ds.attrs["spec_source"] == "cards/dw.toml"
        assert ds.attrs["history"].endswith(f"stochdyn run cards/dw.toml -o {out} --no-progress")
        assert not any(str(tmp_path) in str(v) for v in ds.attrs.values()), "absolute path in the attributes"


def test_data_file_paths_are_stored_relative_to_the_spec(tmp_path):
    """Large problem data are named by ``*_file`` keys, made absolute to load them; the attributes
    store them relative to the spec's folder again."""
    spec = sd.spec.Spec(name="s", target=None, integrator=None, run={}, source=str(tmp_path / "cards" / "s.toml"))
    attrs = {"target": json.dumps({"type": "LeastSquares", "X_file": str(tmp_path / "cards" / "data" / "X.npy")}),
             "target_X_file": str(tmp_path / "cards" / "data" / "X.npy")}
    out = sd.spec._relative_file_keys(attrs, spec)
    assert json.loads(out["target"])["X_file"] == "data/X.npy" and out["target_X_file"] == "data/X.npy"
