"""Sweeps: labelled grid Datasets, point seeds independent of the other points, serial = local
cluster = explicit client (bit-identical), sweep stores with resume, bad sweeps rejected clearly."""

import json

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.cli import main

L = sd.landscapes
LAND = L.DoubleWell(dim=2)
INTEG = sd.EulerMaruyama(dt=0.01, temperature=0.5)
GRID = {"integrator.temperature": [0.3, 0.5], "target.barrier": [1.0, 2.0, 3.0]}
RUN = dict(n_replicas=200, n_steps=400, record_every=100, rng=3)


def assert_same(a, b):
    assert set(a.data_vars) == set(b.data_vars) and dict(a.sizes) == dict(b.sizes)
    for k in list(a.data_vars) + list(a.coords):
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


@pytest.fixture(scope="module")
def serial():
    return sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, workers="serial", **RUN)


def test_grid_layout_and_point_equals_a_plain_run(serial):
    assert serial["x"].dims == ("temperature", "barrier", "replica", "time", "dim")
    assert serial["temperature"].values.tolist() == [0.3, 0.5] and serial["barrier"].attrs["units"] == "1"
    assert "integrator_temperature" not in serial.attrs and json.loads(serial.attrs["sweep"])["keys"] == list(GRID)
    # a point is the plain run with the point's parameters and the point's derived seed
    key = sd.ensemble.sweeps.point_key(sd.random.stream_key(3), {"integrator.temperature": 0.5, "target.barrier": 2.0})
    plain = sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.5), L.DoubleWell(dim=2, barrier=2.0), [-1.0, 0.0],
                        rng=key.seed_sequence, **{k: v for k, v in RUN.items() if k != "rng"})
    np.testing.assert_array_equal(serial.x.sel(temperature=0.5, barrier=2.0).values, plain.x.values)


def test_a_point_does_not_depend_on_the_other_points(serial):
    alone = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"target.barrier": [3.0], "integrator.temperature": [0.3]},
                     workers="serial", **RUN)
    np.testing.assert_array_equal(alone.x.values[0, 0], serial.x.sel(temperature=0.3, barrier=3.0).values)
    listed = sd.sweep(INTEG, LAND, [-1.0, 0.0], points=[{"integrator.temperature": 0.5, "target.barrier": 1.0}],
                      workers="serial", **RUN)
    assert listed["x"].dims[0] == "point" and listed["temperature"].values.tolist() == [0.5]
    np.testing.assert_array_equal(listed.x.values[0], serial.x.sel(temperature=0.5, barrier=1.0).values)


def test_local_cluster_and_explicit_client_give_identical_datasets(serial):
    import distributed

    cluster_run = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, workers=2, **RUN)
    assert_same(serial, cluster_run)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        client_run = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, client=client, **RUN)
        address_run = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3]},
                               scheduler=lc.scheduler_address, **RUN)
    assert_same(serial, client_run)
    np.testing.assert_array_equal(address_run.x.values[0], sd.sweep(
        INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3]}, workers="serial", **RUN).x.values[0])


def test_sweeping_the_step_gives_a_time_coordinate_per_point():
    ds = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.dt": [0.01, 0.02]}, workers="serial", **RUN)
    assert ds["time"].dims == ("dt", "time")
    np.testing.assert_allclose(ds["time"].values, [[0, 1, 2, 3, 4], [0, 2, 4, 6, 8]])


def test_sweep_store_resumes_and_matches(serial, tmp_path):
    store = tmp_path / "sweep"
    a = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, workers="serial", store=store, **RUN)
    assert_same(serial.drop_vars("point_seed_spawn_key"), a.drop_vars("point_seed_spawn_key").load())
    with pytest.raises(FileExistsError, match="resume=True"):
        sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, workers="serial", store=store, **RUN)
    # lose one point's store: resume recomputes only what is missing
    import shutil
    victim = sorted(p for p in store.iterdir() if p.suffix == ".zarr")[0]
    shutil.rmtree(victim)
    b = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid=GRID, workers="serial", store=store, resume=True, **RUN)
    assert_same(a.load(), b.load())
    with pytest.raises(sd.ValidationError, match="different sweep"):
        sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3]}, workers="serial", store=store,
                 resume=True, **RUN)


@pytest.mark.parametrize("kwargs, match", [
    (dict(grid={"temperature": [0.1]}), "must be 'integrator.<parameter>'"),
    (dict(grid={"integrator.temp": [0.1]}), "EulerMaruyama has no parameter 'temp'"),
    (dict(grid={"target.height": [0.1]}), "DoubleWell has no parameter 'height'"),
    (dict(grid={"integrator.temperature": []}), "non-empty list"),
    (dict(grid={"integrator.temperature": [0.1, 0.1]}), "distinct"),
    (dict(grid={"integrator.temperature": [0.1, -1.0]}), "'temperature' parameter of EulerMaruyama"),
    (dict(grid={"target.barrier": [1.0, 0.0]}), "'barrier' parameter of DoubleWell must be > 0"),
    (dict(grid={"integrator.dt": [0.1]}, points=[{"integrator.dt": 0.1}]), "exactly one of"),
    (dict(grid={"integrator.dt": [0.1]}, workers=-1), "'workers' parameter of sweep"),
])
def test_bad_sweeps_are_rejected_before_running(kwargs, match):
    with pytest.raises(sd.ValidationError, match=match):
        sd.sweep(INTEG, LAND, [-1.0, 0.0], **{**RUN, **kwargs})


SPEC = """
[landscape]
type = "DoubleWell"
dim = 2
[integrator]
type = "EulerMaruyama"
dt = 0.01
temperature = 0.5
[run]
n_replicas = 50
n_steps = 200
record_every = 100
seed = 9
x0 = [-1.0, 0.0]
[sweep.integrator]
temperature = [0.3, 0.6]
[sweep.landscape]
barrier = [1.0, 2.0]
"""


def test_cli_sweep_writes_a_store_and_rejects_bad_tables(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    ds = sd.open_sweep(tmp_path / "out")
    assert ds["x"].dims[:2] == ("temperature", "barrier") and ds.sizes["replica"] == 50
    assert main(["run", str(spec), "-o", str(tmp_path / "x.nc")]) == 2
    assert "stochdyn sweep" in capsys.readouterr().err
    spec.write_text(SPEC.replace("barrier = [1.0, 2.0]", "barrier = [1.0, -2.0]"))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "[sweep]" in err and "'barrier' parameter of DoubleWell must be > 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
