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
