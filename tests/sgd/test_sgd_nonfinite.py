"""A replica whose loss or gradient becomes non-finite is flagged in ``diverged`` at that step, exactly
like a non-finite state (issue 13), for built-in paths, user per-sample losses and augmentations.

The cases are deterministic: the parameters move by a constant step, so the step at which the loss
first becomes non-finite is known exactly (no statistics involved)."""

import warnings

import numpy as np
import pytest

import stochdyn as sd
from deferred import deferred

P = sd.problems


@deferred(P.per_sample_loss(dim=1, check=False))
def _nan_beyond(theta, row, grad, edge=1.05):
    """Gradient -1 everywhere (theta grows by lr per step); the loss is NaN once theta > edge."""
    grad[0] = -1.0 + 0.0 * row[0]
    return np.nan if theta[0] > edge else -theta[0]


def _run(integ, target, x0, n_steps=20, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.DivergenceWarning)
        return sd.simulate(integ, target, x0=x0, n_replicas=6, n_steps=n_steps, record_every=1, rng=3, **kw)


@pytest.mark.parametrize("record_extra", [(), None], ids=["batch_path", "per_sample_path"])
def test_a_nan_loss_with_a_finite_gradient_flags_the_replica_at_that_step(record_extra):
    prob = _nan_beyond(np.ones((10, 1)))
    # theta_t = 0.1 t; the loss of step s is evaluated at theta_{s-1}: first above 1.05 at s = 12
    ds = _run(sd.SGD(lr=0.1, batch_size=3, record_extra=record_extra), prob, [0.0])
    assert np.all(ds.diverged.values) and np.all(ds.diverged_step.values == 12)
    assert np.all(np.isfinite(ds.x.sel(time=11).values)) and np.all(np.isnan(ds.x.sel(time=12).values))


@deferred(P.augmentation(n_normals=1))
def _infinite_feature(row, out, z, s=1.0):
    out[0] = row[0] + s * z[0] * 1e308 * 1e308  # +-inf
    out[1] = row[1]


@deferred(P.per_sample_loss(dim=1, check=False))
def _loss_reads_the_row(theta, row, grad):
    grad[0] = theta[0]
    return 0.5 * theta[0] ** 2 + row[0]


def test_an_augmentation_that_makes_the_loss_infinite_flags_the_replica():
    prob = _loss_reads_the_row(np.column_stack([np.ones(10), np.zeros(10)]))
    aug = sd.Augmentation(copies=2, transform=_infinite_feature())
    ds = _run(sd.SGD(lr=0.1, batch_size=3, augmentation=aug), prob, [1.0], n_steps=4)
    assert np.all(ds.diverged_step.values == 1)  # the state stays finite; only the loss is not
    assert np.all(np.isnan(ds.x.sel(time=1).values))


@deferred(sd.landscapes.landscape(dim=1, check=False))
def _nan_energy_beyond(x, grad, edge=5.05):
    grad[0] = -1.0
    return np.nan if x[0] > edge else -x[0]


@pytest.mark.parametrize("integ", [sd.SGD(lr=0.1), sd.Adam(lr=0.1)], ids=["SGD", "Adam"])
def test_a_nan_energy_on_a_landscape_flags_the_replica(integ):
    ds = _run(integ, _nan_energy_beyond(), [4.5], n_steps=12)
    steps = ds.diverged_step.values
    assert np.all(steps == steps[0]) and 1 <= steps[0] <= 12
    x_before = ds.x.sel(time=steps[0] - 1).values[:, 0]
    assert np.all(x_before > 5.05) and np.all(ds.x.sel(time=steps[0] - 2).values[:, 0] <= 5.05)
