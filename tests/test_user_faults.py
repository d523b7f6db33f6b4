"""Faults in user code: exceptions, out-of-range access and non-finite values in user functions.

The promise (docs/getting-started.md, "Faults in your code"; docs/scale.md's table): an exception in
any user function — landscape, per-sample loss (batch and per-sample paths), augmentation, fitness
map, stopping rule — stops the run with :class:`sd.UserCodeError` naming the exception, the replica and
the step, and never prints Numba's "Exception ignored" lines; reading past an array is refused at
definition at the dimension of use, and at run time raises IndexError instead of reading memory; a
non-finite value with a finite gradient freezes the replica like a non-finite state.

The oracle for the replica and step is a *twin* of each faulty function that returns, where the
faulty one raises, what the generated wrapper writes on a fault (U = -inf and a NaN gradient, a NaN
augmented row, W = NaN, "the rule holds"). Everything else being equal, the kernel freezes exactly
the same replicas at the same steps in both runs (the twin's run shows them in ``diverged_step`` or
``stop_step``), and the error must name the first of them, by step then replica. For Langevin the
reported point is also checked against the recorded state of a run with no fault at all. Runs are
a few dozen replicas and steps: the module takes seconds (most of it compiling the user functions).
"""

import math
import re
import warnings

import numpy as np
import pytest

import stochdyn as sd
from deferred import deferred
from stochdyn.ensemble.store import read_checkpoint

L, P = sd.landscapes, sd.problems
INSIDE = [[-1.0], [0.0], [0.5]]  # check points away from the region x > 1.2 where the faulty functions fail


@pytest.fixture(autouse=True)
def no_unraisable_lines(capfd):
    """No test may let Numba print "Exception ignored in ..." (PyErr_WriteUnraisable) on stderr."""
    yield
    assert "Exception ignored" not in capfd.readouterr().err


def _first(steps: np.ndarray) -> tuple[int, int]:
    """(step, replica) of the first frozen replica: lowest step, then lowest replica."""
    return min((int(s), r) for r, s in enumerate(steps) if s >= 0)


def _twin(integ, target, **run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.DivergenceWarning)
        return sd.simulate(integ, target, **run)


def _error(integ, target, **run) -> sd.UserCodeError:
    with pytest.raises(sd.UserCodeError) as info:
        sd.simulate(integ, target, **run)
    return info.value


def _names(err: sd.UserCodeError, kind: str, name: str, exc: type, message: str, step: int, replica: int) -> None:
    assert (err.kind, err.function, err.replica, err.step) == (kind, name, replica, step)
    assert type(err.exception) is exc and str(err.exception) == message
    assert f"{exc.__name__}: {message}" in str(err) and f"(replica {replica}, step {step})" in str(err)
    assert err.__cause__ is err.exception  # the user's own traceback is shown above the error


# -- landscapes ------------------------------------------------------------------------------------
@deferred(L.landscape(dim=1, check_points=INSIDE))
def cliff_raises(x, grad):
    grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
    if x[0] > 1.2:
        raise ValueError("beyond the cliff")
    return (x[0] * x[0] - 1.0) ** 2


@deferred(L.landscape(dim=1, check_points=INSIDE))
def cliff_twin(x, grad):
    if x[0] > 1.2:
        grad[0] = np.nan
        return -np.inf
    grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
    return (x[0] * x[0] - 1.0) ** 2


@deferred(L.landscape(dim=1))
def well(x, grad):
    grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
    return (x[0] * x[0] - 1.0) ** 2


FAMILIES = {
    "EulerMaruyama": (sd.EulerMaruyama(dt=0.01, temperature=0.3), [1.0], 60),
    "SGLD on a landscape": (sd.SGLD(lr=0.01, temperature=0.3), [1.0], 60),
    "OnePlusOneES": (sd.OnePlusOneES(sigma0=0.3), [0.0], 20),
    "WrightFisher": (sd.WrightFisher(population_size=20, mutation_rate=0.5, mutation_scale=0.1), [1.0], 10),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_raising_landscape_stops_the_run_naming_replica_and_step(family):
    integ, x0, n = FAMILIES[family]
    run = dict(x0=x0, n_replicas=16, n_steps=n, record_every=n // 2, rng=1)
    step, replica = _first(_twin(integ, cliff_twin(), **run).diverged_step.values)
    err = _error(integ, cliff_raises(), **run)
    _names(err, "landscape", "cliff_raises", ValueError, "beyond the cliff", step, replica)
    assert err.inputs["x"][0] > 1.2


def test_the_reported_point_is_the_state_at_that_step():
    # no fault anywhere: the chains are the faulty run's until a replica first reaches x > 1.2, whose
    # state there is where the landscape raised
    integ, run = sd.EulerMaruyama(dt=0.01, temperature=0.3), dict(x0=[1.0], n_replicas=16, n_steps=60, rng=1)
    ref = sd.simulate(integ, well(), record_every=1, **run).x.values[..., 0]
    step, replica = min((int(s), int(r)) for r, s in np.argwhere(ref > 1.2))
    err = _error(integ, cliff_raises(), record_every=30, **run)
    assert (err.replica, err.step) == (replica, step)
    np.testing.assert_array_equal(err.inputs["x"], [ref[replica, step]])


def test_a_fault_in_the_initial_state_names_its_replica():
    err = _error(sd.EulerMaruyama(dt=0.01), cliff_raises(), x0=[[0.0], [1.0], [1.5], [2.0]], n_replicas=4,
                 n_steps=10, rng=1)
    assert (err.replica, err.step) == (2, 0) and err.inputs["x"][0] == 1.5
    # a genetic algorithm draws its initial populations around x0: the replica is found by halving
    # the replicas; the twin's -inf is refused by the initial check, which names the same replica
    ga, run = sd.GeneticAlgorithm(population_size=10), dict(x0=[0.0], n_replicas=16, n_steps=10, rng=1)
    with pytest.raises(sd.ValidationError, match=r"initial point of replica (\d+) \(U = -inf\)") as twin:
        sd.simulate(ga, cliff_twin(), **run)
    err = _error(ga, cliff_raises(), **run)
    assert (err.replica, err.step) == (int(re.search(r"replica (\d+)", str(twin.value)).group(1)), 0)


@deferred(L.landscape(dim=1, check_points=INSIDE))
def reads_past_its_end(x, grad):  # cliff_raises with x[1] instead of the raise
    grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
    k = 1 if x[0] > 1.2 else 0  # x[1] does not exist at dim 1
    return (x[k] * x[0] - 1.0) ** 2


def test_out_of_range_at_run_time_raises_instead_of_reading_memory():
    integ, run = sd.EulerMaruyama(dt=0.01, temperature=0.3), dict(x0=[1.0], n_replicas=16, n_steps=60, rng=1)
    step, replica = _first(_twin(integ, cliff_twin(), record_every=30, **run).diverged_step.values)
    err = _error(integ, reads_past_its_end(), record_every=30, **run)
    _names(err, "landscape", "reads_past_its_end", IndexError, "index 1 is out of bounds for axis 0 with size 1",
           step, replica)


def test_out_of_range_is_refused_at_definition_at_the_dimension_of_use():
    with pytest.raises(sd.ValidationError, match=r"raised IndexError: index 1 is out of bounds .* definition check at dim 1"):
        @L.landscape(dim=1)
        def second_coordinate(x, grad):
            grad[0] = 1.0
            return x[0] + x[1]

    @L.landscape
    def first_two(x, grad):  # no fixed dimension: checked at each dimension it is made with
        grad[:] = 0.0
        grad[0] = grad[1] = 1.0
        return x[0] + x[1]

    assert first_two(dim=3).dim == 3
    with pytest.raises(sd.ValidationError, match=r"'first_two' raised IndexError.*definition check at dim 1"):
        first_two(dim=1)
    assert first_two(dim=2).value([1.0, 2.0]) == 3.0


def test_the_definition_check_reports_an_exception_as_such():
    with pytest.raises(sd.ValidationError) as info:
        @L.landscape(dim=1)
        def positive_only(x, grad):
            if x[0] < 0.0:
                raise ValueError("x must be positive")
            grad[0] = 1.0
            return x[0]
    assert "raised ValueError: x must be positive at x=[" in str(info.value)
    assert "disagrees" not in str(info.value)


def test_evaluating_a_raising_landscape_raises_at_once():
    land = cliff_raises()
    np.testing.assert_array_equal(land.value([[0.0], [1.0]]), [1.0, 0.0])
    with pytest.raises(sd.UserCodeError, match=r"'cliff_raises' raised ValueError: beyond the cliff at x=\[1\.5\] when"):
        land.value([[0.0], [1.5]])


@deferred(L.landscape(dim=1, check_points=INSIDE))
def nan_cliff(x, grad):
    grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
    return (x[0] * x[0] - 1.0) ** 2 if x[0] <= 1.2 else np.nan  # the value is NaN beyond, the gradient never


@pytest.mark.parametrize("family", ["SGLD on a landscape", "WrightFisher"])
def test_a_nan_value_with_a_finite_gradient_freezes_the_replica(family):
    # like -inf (the twin), a NaN U freezes the replica at the step it appears (Langevin: tests/test_divergence.py)
    integ, x0, n = FAMILIES[family]
    run = dict(x0=x0, n_replicas=16, n_steps=n, record_every=n // 2, rng=1)
    want = _twin(integ, cliff_twin(), **run).diverged_step.values
    with pytest.warns(sd.DivergenceWarning):
        ds = sd.simulate(integ, nan_cliff(), **run)
    np.testing.assert_array_equal(ds.diverged_step.values, want)
    assert np.any(want >= 0)


# -- per-sample losses and augmentations ---------------------------------------------------------
@deferred(P.per_sample_loss(dim=1))
def square_raises(theta, row, grad):
    if theta[0] > 1.2:
        raise ValueError("theta too large")
    r = theta[0] - row[0]
    grad[0] = r
    return 0.5 * r * r


@deferred(P.per_sample_loss(dim=1))
def square_twin(theta, row, grad):
    if theta[0] > 1.2:
        grad[0] = np.nan
        return -np.inf
    r = theta[0] - row[0]
    grad[0] = r
    return 0.5 * r * r


@deferred(P.augmentation(n_normals=1))
def jitter(row, out, z, s=0.1):
    out[0] = row[0] + s * z[0]


@deferred(P.augmentation(n_normals=1))
def jitter_raises(row, out, z, s=0.1):
    if z[0] > 1.5:
        raise ValueError("large jitter")
    out[0] = row[0] + s * z[0]


@deferred(P.augmentation(n_normals=1))
def jitter_twin(row, out, z, s=0.1):
    out[0] = np.nan if z[0] > 1.5 else row[0] + s * z[0]


ROWS = np.random.default_rng(0).normal(1.0, 1.0, size=(40, 1))
SGD_RUN = dict(x0=[0.8], n_replicas=16, n_steps=40, record_every=20, rng=1)


@pytest.mark.parametrize("path", ["batch", "per-sample"])
def test_a_raising_per_sample_loss_stops_the_run_naming_replica_and_step(path):
    # plain SGD calls the batch function; with an augmentation, the per-sample one
    aug = None if path == "batch" else sd.Augmentation(copies=1, transform=jitter())
    integ = sd.SGD(lr=0.2, batch_size=2, augmentation=aug)
    step, replica = _first(_twin(integ, square_twin(ROWS), **SGD_RUN).diverged_step.values)
    err = _error(integ, square_raises(ROWS), **SGD_RUN)
    _names(err, "per-sample loss", "square_raises", ValueError, "theta too large", step, replica)
    assert err.inputs["theta"][0] > 1.2 and err.inputs["row"].shape == (1,)


@deferred(P.per_sample_loss(dim=1))
def square_nan(theta, row, grad):
    r = theta[0] - row[0]
    grad[0] = r
    return 0.5 * r * r if theta[0] <= 1.2 else np.nan  # NaN beyond 1.2, the gradient never


def test_a_nan_loss_with_a_finite_gradient_freezes_the_replica():
    integ = sd.SGD(lr=0.2, batch_size=2)
    want = _twin(integ, square_twin(ROWS), **SGD_RUN).diverged_step.values
    with pytest.warns(sd.DivergenceWarning):
        ds = sd.simulate(integ, square_nan(ROWS), **SGD_RUN)
    np.testing.assert_array_equal(ds.diverged_step.values, want)
    assert np.any(want >= 0)


def test_a_raising_augmentation_stops_the_run_naming_replica_and_step():
    def integ(transform):
        return sd.SGD(lr=0.05, batch_size=2, augmentation=sd.Augmentation(copies=2, transform=transform))

    step, replica = _first(_twin(integ(jitter_twin()), square_twin(ROWS), **SGD_RUN).diverged_step.values)
    err = _error(integ(jitter_raises()), square_twin(ROWS), **SGD_RUN)
    _names(err, "augmentation", "jitter_raises", ValueError, "large jitter", step, replica)
    assert err.inputs["z"][0] > 1.5 and err.inputs["s"] == 0.1


def test_user_losses_and_augmentations_out_of_range_are_refused_before_any_work():
    with pytest.raises(sd.ValidationError, match=r"'third_column' raised IndexError.*gradient check"):
        @P.per_sample_loss(dim=1)
        def third_column(theta, row, grad):
            grad[0] = row[2]
            return theta[0] * row[2]

        third_column(np.ones((5, 2)))

    @P.augmentation
    def one_too_far(row, out, z):
        for j in range(row.shape[0] + 1):
            out[j] = row[j] + z[0]

    integ = sd.SGD(lr=0.1, batch_size=2, augmentation=sd.Augmentation(copies=1, transform=one_too_far()))
    with pytest.raises(sd.ValidationError, match=r"'one_too_far' raised IndexError.*on rows of square_twin \(length 1\)"):
        sd.simulate(integ, square_twin(ROWS), **SGD_RUN)


def test_a_raising_loss_is_reported_by_its_check_and_by_evaluations():
    @P.per_sample_loss(dim=1)
    def raises_below_100(theta, row, grad):
        if theta[0] < 100.0:
            raise ValueError("no loss here")
        grad[0] = 0.0
        return 0.0

    with pytest.raises(sd.ValidationError, match=r"'raises_below_100' raised ValueError: no loss here.*gradient check"):
        raises_below_100(ROWS)
    prob = square_raises(ROWS)
    with pytest.raises(sd.UserCodeError, match=r"theta=\[2\.0\]"):
        prob.value([2.0])
    with pytest.raises(sd.UserCodeError, match="theta too large"):
        prob.per_sample([2.0])


# -- fitness maps and stopping rules -------------------------------------------------------------
@sd.fitness.fitness_map
def w_raises(u, s):
    if u > 0.3:
        raise ValueError("u too large")
    return math.exp(-s * u)


@sd.fitness.fitness_map
def w_twin(u, s):
    return np.nan if u > 0.3 else math.exp(-s * u)


def test_a_raising_fitness_map_stops_the_run_naming_replica_and_step():
    def integ(fitness):
        return sd.WrightFisher(population_size=20, fitness=fitness, mutation_rate=0.5, mutation_scale=0.1)

    run = dict(x0=[1.0], n_replicas=16, n_steps=10, record_every=5, rng=1)
    step, replica = _first(_twin(integ("w_twin"), L.DoubleWell(dim=1), **run).diverged_step.values)
    err = _error(integ("w_raises"), L.DoubleWell(dim=1), **run)
    _names(err, "fitness map", "w_raises", ValueError, "u too large", step, replica)
    assert err.inputs["u"] > 0.3 and err.inputs["s"] == 1.0
    with pytest.raises(sd.UserCodeError, match="u too large at u=0.5"):
        w_raises([0.1, 0.5])


@deferred(sd.stopping.rule(needs_energy=False))
def below_raises(x, energy):
    if x[0, 0] > 1.2:
        raise ValueError("rule fails beyond 1.2")
    return x[0, 0] < -0.2


@deferred(sd.stopping.rule(needs_energy=False))
def below_twin(x, energy):
    return True if x[0, 0] > 1.2 else x[0, 0] < -0.2


def test_a_raising_stopping_rule_stops_the_run_naming_replica_and_step():
    # the twin's stops below -0.2 are real and some come first: the error skips them
    integ, run = sd.EulerMaruyama(dt=0.01, temperature=0.3), dict(x0=[0.5], n_replicas=16, n_steps=100,
                                                                   record_every=50, rng=1)
    twin = sd.simulate(integ, L.DoubleWell(dim=1), until=below_twin(), **run)
    final = twin.x.isel(time=-1, dim=0).values
    stops = twin.stop_step.values
    assert _first(stops)[1] != _first(np.where(final > 1.2, stops, -1))[1], "the test needs a real stop first"
    step, replica = _first(np.where(final > 1.2, stops, -1))
    err = _error(integ, L.DoubleWell(dim=1), until=below_raises(), **run)
    _names(err, "stopping rule", "below_raises", ValueError, "rule fails beyond 1.2", step, replica)


def test_a_rule_reading_past_the_state_is_refused_at_the_dimension_of_the_run():
    @sd.stopping.rule(needs_energy=False)
    def second_coordinate_rule(x, energy):
        return x[0, 1] > 0.0

    run = dict(n_replicas=4, n_steps=10, rng=1)
    with pytest.raises(sd.ValidationError, match=r"'second_coordinate_rule' raised IndexError.*shape \(1, 1\)"):
        sd.simulate(sd.EulerMaruyama(dt=0.01), L.DoubleWell(dim=1), until=second_coordinate_rule(), **run)
    sd.simulate(sd.EulerMaruyama(dt=0.01), L.DoubleWell(dim=2), until=second_coordinate_rule(), **run)
    with pytest.raises(sd.ValidationError, match=r"'raises_at_once' raised ValueError: no.*definition check"):
        @sd.stopping.rule
        def raises_at_once(x, energy):
            if x[0, 0] < 10.0:
                raise ValueError("no")
            return True


# -- streamed runs ---------------------------------------------------------------------------------
def test_a_store_keeps_the_chunks_before_the_fault_and_resumes_once_fixed(tmp_path):
    pytest.importorskip("zarr")
    integ = sd.EulerMaruyama(dt=0.01, temperature=0.3)
    # the first fault is at step 54 (a run without it shows the first replica above 1.2 there), in the
    # third chunk of four records (steps 0-15, 20-35, 40-55): the store keeps the first two
    run = dict(x0=[0.0], n_replicas=16, n_steps=80, record_every=5, rng=1, chunk_steps=20, progress=False)

    @L.landscape(dim=1, check_points=INSIDE)
    def fixable(x, grad):
        grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
        if x[0] > 1.2:
            raise ValueError("beyond the cliff")
        return (x[0] * x[0] - 1.0) ** 2

    with pytest.raises(sd.UserCodeError, match=r"\(replica 7, step 54\)"):
        sd.simulate(integ, fixable(), store=tmp_path / "run.zarr", **run)
    ck = read_checkpoint(tmp_path / "run.zarr")
    assert (ck["step"], ck["records_complete"]) == (35, 8)

    @L.landscape(dim=1, check_points=INSIDE)
    def fixable(x, grad):  # noqa: F811 - the same landscape, fixed: the store is its run
        grad[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0)
        return (x[0] * x[0] - 1.0) ** 2

    resumed = sd.simulate(integ, fixable(), store=tmp_path / "run.zarr", resume=True, **run).load()
    fresh = sd.simulate(integ, fixable(), **run)
    for k in ("x", "energy", "diverged_step"):
        np.testing.assert_array_equal(resumed[k].values, fresh[k].values)
