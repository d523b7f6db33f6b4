"""Bad input never reaches a kernel: every public argument is checked up front, and the message
names the argument, the value and what is allowed."""

import numpy as np
import pytest

import stochdyn as sd

L = sd.landscapes
DW = L.DoubleWell(dim=2)


@pytest.mark.parametrize("make, match", [
    (lambda: sd.EulerMaruyama(dt=-1), r"The 'dt' parameter of EulerMaruyama must be > 0.0. Got -1."),
    (lambda: sd.EulerMaruyama(dt=0.0), r"'dt' parameter of EulerMaruyama must be > 0.0"),
    (lambda: sd.EulerMaruyama(dt="fast"), r"'dt' parameter of EulerMaruyama must be a real number > 0.0. Got 'fast'"),
    (lambda: sd.EulerMaruyama(dt=float("inf")), r"'dt' parameter of EulerMaruyama must be finite"),
    (lambda: sd.EulerMaruyama(dt=0.1, temperature=-0.5), r"'temperature' parameter of EulerMaruyama must have every entry >= 0.0"),
    (lambda: sd.EulerMaruyama(dt=0.1, temperature=1.0, diffusion=np.eye(2)), "not both"),
    (lambda: sd.EulerMaruyama(dt=0.1, diffusion=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (lambda: sd.LeimkuhlerMatthews(dt=0.1, temperature=[1.0, np.nan]), "finite"),
    (lambda: sd.BAOAB(dt=0.1, friction=0.0), r"'friction' parameter of BAOAB must be > 0.0. Got 0.0"),
    (lambda: sd.BAOAB(dt=0.1, mass=[1.0, -1.0]), r"'mass' parameter of BAOAB must have every entry > 0.0"),
    (lambda: sd.BAOAB(dt=0.1, temperature=-1.0), r"'temperature' parameter of BAOAB must be >= 0.0"),
    (lambda: sd.BAOAB(dt=0.1, initial_velocity="hot"), r"'initial_velocity' parameter of BAOAB must be one of 'thermal', 'zero'"),
])
def test_bad_integrator_parameters(make, match):
    with pytest.raises(sd.ValidationError, match=match):
        make()


EM = sd.EulerMaruyama(dt=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_replicas=0, n_steps=10), r"'n_replicas' parameter of simulate must be >= 1. Got 0"),
    (dict(n_replicas=2.5, n_steps=10), r"'n_replicas' parameter of simulate must be an integer"),
    (dict(n_steps=10), "needs 'n_replicas'"),
    (dict(n_replicas=4, n_steps=0), r"'n_steps' parameter of simulate must be >= 1"),
    (dict(n_replicas=4, n_steps=10, record_every=0), r"'record_every' parameter of simulate must be >= 1"),
    (dict(n_replicas=4, n_steps=10, record_every=3), r"must be a multiple of record_every \(3\)"),
    (dict(n_replicas=4, n_steps=10, chunk_steps=3, record_every=2), r"'chunk_steps'.*multiple of record_every"),
    (dict(n_replicas=4, n_steps=10, x0=[0.0, 0.0, 0.0]), r"'x0' parameter of simulate must have the landscape's dimension 2"),
    (dict(n_replicas=4, n_steps=10, x0=np.zeros((3, 2))), r"'x0'.*shape \(2,\) or \(n_replicas, dim\) = \(4, 2\)"),
    (dict(n_replicas=4, n_steps=10, x0=[0.0, np.inf]), r"'x0' parameter of simulate must contain only finite values"),
    (dict(n_replicas=4, n_steps=10, rng=-3), r"'rng' parameter must be a non-negative integer seed"),
    (dict(n_replicas=4, n_steps=10, rng="abc"), r"'rng' parameter must be an int >= 0"),
    (dict(n_steps=10, replicas=[1, 1]), "distinct"),
    (dict(n_steps=10, replicas=[1.5]), "sequence of integers"),
    (dict(n_replicas=3, n_steps=10, replicas=[1, 2]), "must equal len"),
    (dict(n_replicas=4, n_steps=10, progress="yes"), "'progress'"),
    (dict(n_replicas=10**7, n_steps=10**6, record_every=1), r"needs about .* of memory .* is available on this machine"),
])
def test_bad_run_arguments(kwargs, match):
    with pytest.raises(sd.ValidationError, match=match):
        sd.simulate(EM, DW, **kwargs)


def test_wrong_integrator_or_target():
    with pytest.raises(sd.ValidationError, match="must be a stochdyn integrator"):
        sd.simulate("EulerMaruyama", DW, n_replicas=2, n_steps=2)
    with pytest.raises(sd.ValidationError, match="runs on a landscape"):
        sd.simulate(EM, lambda x: x**2, n_replicas=2, n_steps=2)
    with pytest.raises(sd.ValidationError, match=r"one entry per coordinate \(2\)"):
        sd.simulate(sd.LeimkuhlerMatthews(dt=0.1, temperature=[1.0, 1.0, 1.0]), DW, n_replicas=2, n_steps=2)
    with pytest.raises(sd.ValidationError, match=r"'diffusion' parameter of EulerMaruyama must be \(2, 2\)"):
        sd.simulate(sd.EulerMaruyama(dt=0.1, diffusion=np.eye(3)), DW, n_replicas=2, n_steps=2)


def test_validation_error_is_a_value_error():
    assert issubclass(sd.ValidationError, ValueError)


@pytest.mark.parametrize("make", [lambda: sd.SGD(lr=-1), lambda: sd.landscapes.Harmonic(stiffness=-1.0),
                                  lambda: sd.landscapes.Harmonic(stiffness=np.float64(-1.0))])
def test_messages_end_with_one_full_stop(make):
    """'Got -1.' — never NumPy's '-1.' followed by the sentence's full stop ('Got -1..')."""
    with pytest.raises(sd.ValidationError) as info:
        make()
    assert not str(info.value).endswith("..") and "Got -1" in str(info.value)
