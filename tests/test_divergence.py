"""Numerical blow-up is detected per replica, frozen as NaN, flagged and warned about — never a crash,
and the other replicas are exactly what they would have been without the bad ones."""

import numpy as np
import pytest

import stochdyn as sd
from deferred import deferred

L = sd.landscapes


@deferred(L.landscape(dim=1))
def steep_quartic(x, grad):
    grad[0] = x[0] ** 3
    return 0.25 * x[0] ** 4


INTEGRATORS = {
    "EulerMaruyama": lambda: sd.EulerMaruyama(dt=0.1, temperature=0.01),
    "LeimkuhlerMatthews": lambda: sd.LeimkuhlerMatthews(dt=0.1, temperature=0.01),
    "BAOAB": lambda: sd.BAOAB(dt=0.1, temperature=0.01, initial_velocity="zero"),
}


@pytest.mark.parametrize("name", INTEGRATORS)
def test_blow_up_is_frozen_flagged_and_isolated(name):
    # overdamped: x -> x - dt x^3 is unstable for dt x^2 > 2 (|x| > 4.5); BAOAB needs dt*omega < 2
    # with omega^2 = 3 x^2 (|x| > 11.5): replicas started at 25 and -30 blow up in every scheme
    x0 = np.array([[1.0], [25.0], [0.5], [-30.0], [2.0]])
    with pytest.warns(sd.DivergenceWarning, match=r"2 of 5 replicas became non-finite.*dt=0.1 is probably too large"):
        ds = sd.simulate(INTEGRATORS[name](), steep_quartic(), x0=x0, n_replicas=5, n_steps=50, record_every=5, rng=3)
    bad = np.array([False, True, False, True, False])
    np.testing.assert_array_equal(ds.diverged.values, bad)
    steps = ds.diverged_step.values
    assert np.all(steps[~bad] == -1) and np.all((steps[bad] >= 1) & (steps[bad] <= 50))
    for r in np.flatnonzero(bad):
        after = ds["step"].values >= steps[r]
        assert np.all(np.isnan(ds.x.values[r, after])) and np.all(np.isnan(ds.energy.values[r, after]))
        assert np.all(np.isfinite(ds.x.values[r, ~after]))
    assert np.all(np.isfinite(ds.x.values[~bad])) and np.all(np.isfinite(ds.energy.values[~bad]))
    assert ds.attrs["n_diverged"] == 2
    # the healthy replicas are bit-identical to a run without the bad ones
    good = sd.simulate(INTEGRATORS[name](), steep_quartic(), x0=x0[~bad], replicas=np.flatnonzero(~bad),
                       n_steps=50, record_every=5, rng=3)
    np.testing.assert_array_equal(ds.x.values[~bad], good.x.values)


def test_every_replica_diverging_is_still_not_a_crash():
    with pytest.warns(sd.DivergenceWarning, match="4 of 4"):
        ds = sd.simulate(sd.EulerMaruyama(dt=2.5), L.Harmonic(stiffness=1.0, dim=2), x0=[1.0, 1.0],
                         n_replicas=4, n_steps=3000, record_every=1000, rng=0)
    assert ds.diverged.all() and np.isnan(ds.x.isel(time=-1)).all()


@deferred(L.landscape(dim=1, check_points=[[-1.0], [0.0], [0.5]]))
def cliff(x, grad):
    grad[0] = -1.0
    return -x[0] if x[0] < 1.0 else np.nan  # the energy is NaN beyond x = 1, the gradient never


@deferred(L.landscape(dim=1))
def slope(x, grad):
    grad[0] = -1.0
    return -x[0]


@pytest.mark.parametrize("name", INTEGRATORS)
def test_non_finite_energy_is_flagged_like_a_non_finite_state(name):
    # cliff and slope have the same gradient, so the chains are identical until a replica first
    # reaches x >= 1, where cliff's energy is NaN: that replica must be frozen and flagged at exactly
    # that step, and every other record must be the slope run's, bit for bit
    integ = {"EulerMaruyama": sd.EulerMaruyama(dt=0.01, temperature=0.1),
             "LeimkuhlerMatthews": sd.LeimkuhlerMatthews(dt=0.01, temperature=0.1),
             "BAOAB": sd.BAOAB(dt=0.01, temperature=0.1, friction=2.0)}[name]
    x0 = np.array([[-0.5], [0.0], [0.5], [0.9]])
    run = dict(x0=x0, n_replicas=4, n_steps=300, record_every=1, rng=5)
    ref = sd.simulate(integ, slope(), **run)
    first = [int(np.argmax(ref.x.values[r, :, 0] >= 1.0)) if np.any(ref.x.values[r, :, 0] >= 1.0) else -1
             for r in range(4)]
    assert sum(f > 0 for f in first) >= 2, "the test needs replicas that cross x = 1"
    with pytest.warns(sd.DivergenceWarning):
        ds = sd.simulate(integ, cliff(), **run)
    np.testing.assert_array_equal(ds.diverged_step.values, first)
    for r, f in enumerate(first):
        before = slice(None) if f < 0 else slice(0, f)
        np.testing.assert_array_equal(ds.x.values[r, before], ref.x.values[r, before])
        np.testing.assert_array_equal(ds.energy.values[r, before], ref.energy.values[r, before])
        if f >= 0:
            assert np.all(np.isnan(ds.x.values[r, f:])) and np.all(np.isnan(ds.energy.values[r, f:]))
