"""``until=`` against the saved golden records of every family (tests/golden): a rule that never holds
changes nothing, bit for bit; a rule that holds for some replicas leaves the others bit-identical,
and a stopped replica's records follow the free run up to its stop step and repeat afterwards. The
kernel path is also bit-identical to the phase-1 reference path (one kernel call per step, the rule
evaluated outside the kernels), on one thread in chunks of one record with compaction between
pieces, and for a subset of replicas run alone (what a shard runs)."""

import os
import pathlib
import sys

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.stopping import _run as stop_run

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "golden"))
from cases import cases  # noqa: E402

SAVED = np.load(pathlib.Path(__file__).parents[1] / "golden" / "records.npz")
NAMES = list(cases())
#: per-step quantities that need a step to be taken: after the stop they read as in the initial record
DIAGNOSTICS = {"batch_loss", "grad_norm", "lr", "batch_size", "grad_var", "noise_scale", "snr", "gradient",
               "population_energy"}


def _saved(name):
    return {k.split("/", 1)[1]: SAVED[k] for k in SAVED.files if k.split("/", 1)[0] == name}


def _run(name, until, **more):
    integ, target, x0, kw = cases()[name]
    return sd.simulate(integ(), target(), x0, until=until, **{**kw, **more})


def assert_same(a, b, name):
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=f"{name}: {v}")


def check_kernel_path(name, until, ds, monkeypatch):
    """``ds`` (the kernel path) equals the reference path, a one-thread run in one-record chunks split
    into pieces with compaction, and a subset of its replicas run alone."""
    import numba

    kw = cases()[name][3]
    with monkeypatch.context() as m:
        m.setattr(stop_run, "REFERENCE", True)
        assert_same(ds, _run(name, until), f"{name} (reference path)")
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        with monkeypatch.context() as m:
            m.setattr(stop_run, "PIECE_WORK", 1)
            assert_same(ds, _run(name, until, chunk_steps=kw["record_every"]), f"{name} (1 thread, chunks)")
    finally:
        numba.set_num_threads(threads)
    ids = np.flatnonzero(ds["stopped"].values)[:2].tolist() + [int(np.flatnonzero(~ds["stopped"].values)[0])]
    assert_same(ds.sel(replica=ids), _run(name, until, n_replicas=None, replicas=ids), f"{name} (subset)")


def _state(rec):
    """The recorded state a geometric rule reads: the population/search mean if recorded, else x."""
    return rec["population_mean"] if "population_mean" in rec else rec["x"]


@pytest.mark.parametrize("name", NAMES)
def test_until_changes_nothing_until_it_holds(name, monkeypatch):
    saved = _saved(name)
    # 1. a rule that never holds: records bit-identical to the saved free run, nothing stopped
    ds = _run(name, sd.stopping.Region(0, above=1e300))
    for v, a in saved.items():
        np.testing.assert_array_equal(ds[v].values, a, err_msg=f"{name}: {v}")
    assert not ds["stopped"].any() and np.all(ds["stop_step"].values == -1)
    # 2. a rule that holds for some replicas: x_0 (or its population mean) beyond the quartile of the replicas'
    # later recorded extremes that the initial state is not beyond (at least a quarter reach it; replicas
    # can also reach it between records)
    s = _state(saved)[..., 0]
    if "best_energy" in saved and np.all(saved["best_energy"] == saved["best_energy"][:, :1]):
        return  # this short (1+1)-ES run never finds a better point: nothing to stop at (part 1 still ran)
    up = float(np.quantile(s[:, 1:].max(axis=1), 0.75))
    down = float(np.quantile(s[:, 1:].min(axis=1), 0.25))
    if np.all(s[:, 0] < up):
        rule, beyond = sd.stopping.Region(0, above=up), (lambda v: v >= up)
    elif np.all(s[:, 0] > down):
        rule, beyond = sd.stopping.Region(0, below=down), (lambda v: v <= down)
    else:  # an evolution strategy that may not move x_0: the time to target of its best value so far
        s = saved["best_energy"]
        u = float(np.quantile(s[:, -1], 0.25))
        assert np.all(s[:, 0] >= u)
        rule, beyond = sd.stopping.EnergyBelow(u), (lambda v: v < u)
    ds = _run(name, rule)
    stopped = ds["stopped"].values
    assert 0 < stopped.sum() < stopped.size
    steps = ds["step"].values
    for v, a in saved.items():
        np.testing.assert_array_equal(ds[v].values[~stopped], a[~stopped], err_msg=f"{name}: {v} of a live replica")
        if a.ndim < 2:  # per-replica results (diverged): compared with the live ones above only
            continue
        new = ds[v].values
        for r in np.flatnonzero(stopped):
            at = int(ds["stop_step"][r])
            before = steps < at
            np.testing.assert_array_equal(new[r, before], a[r, before], err_msg=f"{name}: {v} before the stop")
            after = np.flatnonzero(steps >= at)
            for k in after[2:]:
                np.testing.assert_array_equal(new[r, k], new[r, after[1]], err_msg=f"{name}: {v} repeats")
            if at in steps:  # stopped at a record step: that record is the free run's
                np.testing.assert_array_equal(new[r, after[0]], a[r, after[0]])
                if v not in DIAGNOSTICS and after.size > 1:  # and the state repeats in the later ones
                    np.testing.assert_array_equal(new[r, after[1]], a[r, after[0]], err_msg=f"{name}: {v} frozen")
    # the rule did not hold at the records before the stop, and held at a recorded stop step
    st = s
    for r in range(st.shape[0]):
        at = int(ds["stop_step"][r])
        seen = steps < at if at >= 0 else np.ones_like(steps, dtype=bool)
        assert not np.any(beyond(st[r, seen]))
        if at in steps:
            assert beyond(st[r, list(steps).index(at)])
    assert np.all(ds["stop_rule"].values[stopped] == 0) and np.all(ds["stop_rule"].values[~stopped] == -1)
    check_kernel_path(name, rule, ds, monkeypatch)
