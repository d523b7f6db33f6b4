"""One ensemble across a Dask cluster (simulate with workers=/client=/scheduler=): bit-identical to the
serial run whatever the cluster, with and without a stopping rule, in memory and in one zarr store;
an interrupted sharded run resumes its unfinished shards only."""

import os

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.ensemble import shards
from stochdyn.ensemble.sweeps import _run_point
from stochdyn.io.schema import run_info

distributed = pytest.importorskip("distributed")

LAND = sd.landscapes.DoubleWell(dim=2, tilt=0.1)
INTEG = sd.EulerMaruyama(dt=0.01, temperature=0.5)
RUN = dict(x0=[-1.0, 0.0], n_replicas=37, n_steps=400, record_every=40, rng=5)
UNTIL = sd.stopping.Region(0, above=0.8)
# timings and timestamps differ between runs
VOLATILE = {"created", "elapsed_seconds", "compile_seconds", "history", "n_shards", "status", "fingerprint",
            "shards_fingerprint"}


def assert_same(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    for k in a.coords:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    assert {k: v for k, v in a.attrs.items() if k not in VOLATILE} == {k: v for k, v in b.attrs.items()
                                                                       if k not in VOLATILE}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as client:
        yield lc, client


def test_sharded_runs_are_bit_identical_to_the_serial_run(cluster, tmp_path):
    lc, client = cluster
    serial = sd.simulate(INTEG, LAND, **RUN)
    stopped = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    assert 0 < int(stopped["stopped"].sum()) < 37
    assert_same(serial, sd.simulate(INTEG, LAND, workers=2, **RUN))  # a LocalCluster of 2 processes
    via_client = sd.simulate(INTEG, LAND, client=client, until=UNTIL, **RUN)
    assert_same(stopped, via_client)
    assert via_client.attrs["n_shards"] == 8  # four per worker
    # a scheduler address, into one zarr store: the shards are gathered into it and removed
    store = tmp_path / "run.zarr"
    at_address = sd.simulate(INTEG, LAND, scheduler=lc.scheduler_address, until=UNTIL, store=store, **RUN)
    assert_same(stopped, at_address.load())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]
    assert run_info(at_address)["run"]["replicas"] == "all"
    # a complete store of the same run is returned on resume; without resume it is not overwritten
    assert_same(stopped, sd.simulate(INTEG, LAND, client=client, until=UNTIL, store=store, resume=True, **RUN).load())
    with pytest.raises(FileExistsError, match="resume=True"):
        sd.simulate(INTEG, LAND, client=client, until=UNTIL, store=store, **RUN)
    # a subset of replicas, sharded, is that subset of the serial run
    ids = [2, 3, 11, 30, 31, 36]
    sub = sd.simulate(INTEG, LAND, client=client, until=UNTIL, **{**RUN, "n_replicas": None}, replicas=ids)
    np.testing.assert_array_equal(sub["x"].values, stopped["x"].sel(replica=ids).values)
    # populations that stop at fixation (a per-replica kernel that halts), sharded: the same as serial
    wf = sd.WrightFisher(population_size=40, mutation_rate=0.0)
    geno = sd.fitness.MultiplicativeFitness([[0.0, 0.02]])
    x0 = np.broadcast_to(np.r_[np.ones(20), np.zeros(20)][:, None], (24, 40, 1))
    fix = sd.stopping.Fixation(allele=1) | sd.stopping.Fixation(allele=0)
    kw = dict(n_replicas=24, n_steps=60, record_every=5, rng=2, until=fix)
    serial_wf = sd.simulate(wf, geno, x0, **kw)
    assert 0 < int(serial_wf["stopped"].sum()) < 24
    assert_same(serial_wf, sd.simulate(wf, geno, x0, client=client, **kw))


def test_an_interrupted_sharded_run_resumes_its_unfinished_shards(cluster, tmp_path, monkeypatch):
    lc, client = cluster
    reference = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    store = tmp_path / "run.zarr"

    def first_shard_then_interrupt(jobs, *args):
        _run_point(*jobs[0], threads=None)
        raise KeyboardInterrupt

    monkeypatch.setattr(shards, "_execute", first_shard_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sd.simulate(INTEG, LAND, client=client, until=UNTIL, store=store, **RUN)
    monkeypatch.undo()
    shard_dir = tmp_path / "run.zarr.shards"
    assert not store.exists() and (shard_dir / shards.MANIFEST).is_file()
    done = shard_dir / "shard-00000.zarr" / ".stochdyn-checkpoint.npz"
    before = os.stat(done).st_mtime_ns
    with pytest.raises(FileExistsError, match="resume=True"):
        sd.simulate(INTEG, LAND, client=client, until=UNTIL, store=store, **RUN)
    with pytest.raises(sd.ValidationError, match="different run"):
        sd.simulate(INTEG, LAND, client=client, store=store, resume=True, **RUN)  # no rule: another run
    resumed = sd.simulate(INTEG, LAND, client=client, until=UNTIL, store=store, resume=True, **RUN)
    assert_same(reference, resumed.load())
    assert not shard_dir.exists()


def test_shard_plan_and_serial_choice():
    assert shards.shard_plan(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert shards.shard_plan(3, 8) == [(0, 1), (1, 2), (2, 3)]
    # workers="serial" (or 0) runs in this process, as sd.sweep does
    assert_same(sd.simulate(INTEG, LAND, **RUN), sd.simulate(INTEG, LAND, workers="serial", **RUN))
    with pytest.raises(sd.ValidationError, match="'workers' parameter"):
        sd.simulate(INTEG, LAND, workers=-1, **RUN)
