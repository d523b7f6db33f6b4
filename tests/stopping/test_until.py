"""simulate(..., until=): invariance (threads, chunks, subsets, stores and resume), what a stopped
replica records, which energy each family's rules see, and the initial state."""

import json

import numba
import numpy as np
import pytest

import stochdyn as sd
from stochdyn import stopping as st
from stochdyn.io.schema import step_times
from stochdyn.stopping._run import StopTracker

LAND = sd.landscapes.DoubleWell(dim=2, tilt=0.1)
INTEG = sd.EulerMaruyama(dt=0.01, temperature=0.5)
RUN = dict(x0=[-1.0, 0.0], n_replicas=60, n_steps=800, record_every=40, rng=5)
UNTIL = st.Region(0, above=0.8) | st.Region(0, below=-1.7)


def assert_same(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


def test_until_is_invariant_to_threads_chunks_and_subsets():
    ref = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    assert 10 < int(ref["stopped"].sum()) < 60
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sd.simulate(INTEG, LAND, until=UNTIL, chunk_steps=120, **RUN)
    finally:
        numba.set_num_threads(old)
    assert_same(ref, one)
    ids = [3, 17, 40, 59]
    sub = sd.simulate(INTEG, LAND, until=UNTIL, **{**RUN, "n_replicas": None}, replicas=ids)
    assert_same(ref.sel(replica=ids), sub)


def test_stop_variables_and_attributes():
    ds = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    stopped = ds["stopped"].values
    np.testing.assert_array_equal(stopped, ds["stop_step"].values >= 0)
    # stop_time is the time coordinate's own function of the step (exact to the decimal dt: 0.83, not 83 * 0.01)
    np.testing.assert_array_equal(ds["stop_time"].values[stopped], step_times(ds["stop_step"].values[stopped], 0.01))
    on_records = np.isin(ds["stop_step"].values, ds["step"].values) & stopped
    np.testing.assert_array_equal(ds["stop_time"].values[on_records],
                                  ds["time"].sel(time=ds["stop_time"].values[on_records]).values)
    assert np.all(np.isnan(ds["stop_time"].values[~stopped])) and np.all(ds["stop_rule"].values[~stopped] == -1)
    # the rule held at the stop: x0 >= 0.8 (rule 0) or <= -1.7 (rule 1), on the frozen final record
    final = ds["x"].isel(time=-1, dim=0).values
    rule = ds["stop_rule"].values
    assert np.all(final[rule == 0] >= 0.8) and np.all(final[rule == 1] <= -1.7) and set(rule[stopped]) == {0, 1}
    assert ds["stop_rule"].attrs["flag_meanings"] == "x0_above_0.8 x0_below_-1.7"
    assert st.rule_from_dict(json.loads(ds.attrs["until"])) == UNTIL
    assert ds.attrs["n_stopped"] == int(stopped.sum())


def test_initial_state_can_stop_at_step_zero_and_diverged_replicas_never_stop():
    x0 = np.array([[-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    ds = sd.simulate(INTEG, LAND, x0, n_replicas=3, n_steps=40, record_every=20, rng=1, until=st.Region(0, above=0.5))
    np.testing.assert_array_equal(ds["stop_step"].values[1:], [0, 0])
    np.testing.assert_array_equal(ds["x"].values[1:], np.broadcast_to(x0[1:, None], (2, 3, 2)))
    # a step far too large: every replica blows up, is frozen as NaN and is not "stopped" by a rule that NaN never meets
    with pytest.warns(sd.DivergenceWarning):
        bad = sd.simulate(sd.EulerMaruyama(dt=2.0, temperature=0.1), LAND, [3.0, 0.0], n_replicas=4, n_steps=10,
                          until=st.Region(0, above=1e300))
    assert bad["diverged"].all() and not bad["stopped"].any()


def test_store_and_resume_with_until(tmp_path, monkeypatch):
    ref = sd.simulate(INTEG, LAND, until=UNTIL, **RUN)
    whole = sd.simulate(INTEG, LAND, until=UNTIL, store=tmp_path / "a.zarr", chunk_steps=80, **RUN)
    assert_same(ref, whole.load())
    # interrupt after three chunks, then resume: the checkpoint keeps stop_step, stop_rule and the frozen records
    calls = {"n": 0}
    original = StopTracker.advance

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StopTracker, "advance", failing)
    with pytest.raises(KeyboardInterrupt):
        sd.simulate(INTEG, LAND, until=UNTIL, store=tmp_path / "b.zarr", chunk_steps=80, **RUN)
    monkeypatch.setattr(StopTracker, "advance", original)
    resumed = sd.simulate(INTEG, LAND, until=UNTIL, store=tmp_path / "b.zarr", chunk_steps=80, resume=True, **RUN)
    assert_same(ref, resumed.load())
    # a different rule is a different run
    with pytest.raises(sd.ValidationError, match="until"):
        sd.simulate(INTEG, LAND, until=st.Region(0, above=0.9), store=tmp_path / "b.zarr", resume=True, **RUN)


def test_energy_each_family_reads():
    # the first step with energy < u, against the free run recorded at every step
    cases = [
        (sd.EulerMaruyama(dt=0.01, temperature=0.5), LAND, [0.0, 0.0], "energy", -0.05),
        (sd.CMAES(sigma0=0.5), sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0], "best_energy", 3.0),
        (sd.GeneticAlgorithm(population_size=10), LAND, [1.0, 0.5], "best_energy", -0.09),
    ]
    for integ, land, x0, var, u in cases:
        kw = dict(n_replicas=12, n_steps=30, record_every=1, rng=3)
        free = sd.simulate(integ, land, x0, **kw)
        ds = sd.simulate(integ, land, x0, until=st.EnergyBelow(u), **kw)
        below = free[var].values < u
        first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
        assert 0 < (first >= 0).sum() < 12, integ.name
        np.testing.assert_array_equal(ds["stop_step"].values, first, err_msg=integ.name)
    # populations: the lowest U in the population, i.e. -log(best fitness) / s with W = exp(-s U)
    wf = sd.WrightFisher(population_size=20, selection=2.0, mutation_scale=0.2)
    kw = dict(n_replicas=10, n_steps=40, record_every=1, rng=4)
    free = sd.simulate(wf, LAND, [1.0, 0.0], **kw)
    umin = -np.log(free["best_fitness"].values) / 2.0
    lows = np.unique(umin.min(axis=1))
    u = 0.5 * (lows[lows.size // 2 - 1] + lows[lows.size // 2])  # between two replicas' lowest values: no ties
    assert np.min(np.abs(umin - u)) > 1e-9
    ds = sd.simulate(wf, LAND, [1.0, 0.0], until=st.EnergyBelow(u), **kw)
    below = umin < u
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    assert 0 < (first >= 0).sum() < 10
    np.testing.assert_array_equal(ds["stop_step"].values, first)


# -- families the golden catalogue does not stop (tests/stopping/test_until_golden.py covers the others) --------
RASTRIGIN = sd.landscapes.Rastrigin(dim=3)
OTHER_FAMILIES = {
    "one_plus_one": (sd.OnePlusOneES(sigma0=0.3), sd.landscapes.Harmonic(stiffness=[1.0, 2.0, 3.0]), [1.0, 1.0, 1.0], "best_energy"),
    "sep_cmaes": (sd.SepCMAES(sigma0=0.5), RASTRIGIN, [2.0, 1.0, -1.0], "best_energy"),
    "cmaes_ipop": (sd.CMAES(sigma0=0.5, restarts="ipop", max_restarts=2), RASTRIGIN, [2.0, 1.0, -1.0], "best_energy"),
    "xnes": (sd.XNES(sigma0=0.5), RASTRIGIN, [2.0, 1.0, -1.0], "best_energy"),
    "snes": (sd.SNES(sigma0=0.5), RASTRIGIN, [2.0, 1.0, -1.0], "best_energy"),
    # the full-batch loss each step (a rule that reads energy on a finite-sum problem)
    "sgd_problem": (sd.SGD(lr=0.05, batch_size=4), sd.problems.LeastSquares.from_data(sd.problems.gaussian_regression(40, 2, seed=1)),
                    [1.0, -1.0], "energy"),
}


@pytest.mark.parametrize("name", sorted(OTHER_FAMILIES))
def test_other_families_stop_as_the_reference_path(name, monkeypatch):
    # time to target: u = the median over replicas of the final value, so about half stop; the kernel path
    # (pieces with compaction, chunks of one record, one thread) is bit-identical to the reference path
    integ, target, x0, var = OTHER_FAMILIES[name]
    kw = dict(n_replicas=10, n_steps=40, record_every=5, rng=7)
    u = float(np.median(sd.simulate(integ, target, x0, **kw)[var].values[:, -1]))
    from stochdyn.stopping import _run

    ds = sd.simulate(integ, target, x0, until=st.EnergyBelow(u), **kw)
    assert 0 < int(ds["stopped"].sum()) < 10
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        with monkeypatch.context() as m:
            m.setattr(_run, "PIECE_WORK", 1)
            assert_same(ds, sd.simulate(integ, target, x0, until=st.EnergyBelow(u), chunk_steps=5, **kw))
    finally:
        numba.set_num_threads(old)
    monkeypatch.setattr(_run, "REFERENCE", True)
    assert_same(ds, sd.simulate(integ, target, x0, until=st.EnergyBelow(u), **kw))


STORE_FAMILIES = {  # (integrator, target, x0, rule, a streamed variable): a population, an ES with halting, SGD
    "wright_fisher": (sd.WrightFisher(population_size=40, mutation_rate=0.0),
                      sd.fitness.MultiplicativeFitness([[0.0, 0.02]]), np.r_[np.ones(20), np.zeros(20)][:, None],
                      st.Fixation(allele=1) | st.Fixation(allele=0), "allele_frequency"),
    "cmaes": (sd.CMAES(sigma0=0.5), RASTRIGIN, [2.0, 1.0, -1.0], st.EnergyBelow(3.0), "population_mean"),
    "sgd": (sd.SGD(lr=0.05, batch_size=4), OTHER_FAMILIES["sgd_problem"][1], [1.0, -1.0], st.EnergyBelow(0.44), "x"),
}


@pytest.mark.parametrize("name", sorted(STORE_FAMILIES))
def test_store_resume_and_repair_with_until(tmp_path, monkeypatch, name):
    # interrupted after two chunks then resumed, and a deleted chunk of a complete store recomputed from step 0
    # (with the rule: stopped replicas' frozen records come back): all bit-identical to the run in memory
    integ, target, x0, until, var = STORE_FAMILIES[name]
    kw = dict(n_replicas=12, n_steps=60, record_every=5, chunk_steps=10, rng=2, until=until)
    if np.ndim(x0) == 2:
        x0 = np.broadcast_to(x0, (12,) + np.shape(x0))
    ref = sd.simulate(integ, target, x0, **kw)
    assert 0 < int(ref["stopped"].sum()) < 12
    calls = {"n": 0}
    original = StopTracker.advance

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    store = tmp_path / "run.zarr"
    monkeypatch.setattr(StopTracker, "advance", failing)
    with pytest.raises(KeyboardInterrupt):
        sd.simulate(integ, target, x0, store=store, **kw)
    monkeypatch.setattr(StopTracker, "advance", original)
    assert_same(ref, sd.simulate(integ, target, x0, store=store, resume=True, **kw).load())
    last = ref.sizes["time"] // 2 - 1  # the last chunk of records (two records per chunk), after stops
    chunk = store / var / "c" / "0" / str(last)
    (chunk if chunk.is_file() else next(f for f in chunk.rglob("*") if f.is_file())).unlink()
    from stochdyn.ensemble.store import RepairedStoreWarning

    with pytest.warns(RepairedStoreWarning, match=var):
        repaired = sd.simulate(integ, target, x0, store=store, resume=True, **kw)
    assert_same(ref, repaired.load())


def test_sweep_with_until_runs_each_point_as_simulate(tmp_path):
    # every point of a sweep with a rule is the simulate run of that point with its own seed, in memory and
    # in a sweep store (the stop variables gain the sweep dimension); the CLI takes the spec's [until]
    from stochdyn.ensemble.sweeps import point_key
    from stochdyn.random import stream_key

    kw = dict(n_replicas=12, n_steps=200, record_every=40)
    ds = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3, 0.6]}, rng=5, until=UNTIL, **kw)
    assert ds["stopped"].dims == ("temperature", "replica") and 0 < int(ds["stopped"].sum()) < 24
    assert st.rule_from_dict(json.loads(ds.attrs["until"])) == UNTIL
    for T in (0.3, 0.6):
        seed = point_key(stream_key(5), {"integrator.temperature": T}).seed_sequence
        one = sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=T), LAND, [-1.0, 0.0], rng=seed, until=UNTIL, **kw)
        for v in ("x", "stopped", "stop_step", "stop_rule"):
            np.testing.assert_array_equal(ds[v].sel(temperature=T).values, one[v].values, err_msg=v)
    stored = sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3, 0.6]}, rng=5, until=UNTIL,
                      store=tmp_path / "sweep", **kw)
    np.testing.assert_array_equal(stored["stop_step"].values, ds["stop_step"].values)
    with pytest.raises(sd.ValidationError, match="Fixation"):
        sd.sweep(INTEG, LAND, [-1.0, 0.0], grid={"integrator.temperature": [0.3]}, until=st.Fixation(), **kw)
    from stochdyn.cli import main

    spec = tmp_path / "sweep.toml"
    spec.write_text('[landscape]\ntype = "DoubleWell"\ndim = 2\ntilt = 0.1\n[integrator]\ntype = "EulerMaruyama"\n'
                    'dt = 0.01\n[run]\nn_replicas = 12\nn_steps = 200\nrecord_every = 40\nseed = 5\nx0 = [-1.0, 0.0]\n'
                    '[sweep.integrator]\ntemperature = [0.3, 0.6]\n[[until]]\ntype = "Region"\ncoordinate = 0\nabove = 0.8\n'
                    '[[until]]\ntype = "Region"\ncoordinate = 0\nbelow = -1.7\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "cli"), "--workers", "0"]) == 0
    cli = sd.open_sweep(tmp_path / "cli")
    np.testing.assert_array_equal(cli["stop_step"].values, ds["stop_step"].values)
