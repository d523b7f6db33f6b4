"""Shared helpers for the SGD tests: Monte Carlo standard errors and one-step estimator samples.

Tolerance convention (tests/…/common notes): a single check passes within 4 standard errors, so a
correct implementation fails under a new seed with probability < 1e-4; every test also checks
that the alternative it must rule out is many standard errors away.
"""

from __future__ import annotations

import numpy as np

import stochdyn as sd

Z = 4.0


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and its standard error (independent replicas)."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])


def cov_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample covariance (replicas on axis 0) and the SE of each entry (delta method on the centred
    products; the O(1/R) error of centring at the sample mean is negligible at these R)."""
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(axis=0)
    prod = c[:, :, None] * c[:, None, :]
    return np.cov(x.T, ddof=1).reshape(prod.shape[1:]), prod.std(axis=0, ddof=1) / np.sqrt(x.shape[0])


def trace_var_se(x: np.ndarray) -> tuple[float, float]:
    """tr Cov of the rows of x and its standard error."""
    x = np.asarray(x, dtype=np.float64)
    s = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
    return float(s.sum() / (x.shape[0] - 1)), float(s.std(ddof=1) / np.sqrt(x.shape[0]))


def one_step_gradients(integrator, problem, theta0, n_replicas: int, rng: int) -> np.ndarray:
    """Samples of the gradient estimate at ``theta0``: one step with lr = 1 gives theta1 = theta0 - g."""
    ds = sd.simulate(integrator, problem, x0=theta0, n_replicas=n_replicas, n_steps=1, rng=rng)
    return np.asarray(theta0) - ds.x.isel(time=1).values


def assert_within(sim, se, expected, what: str, z: float = Z) -> None:
    sim, se, expected = (np.asarray(v, dtype=np.float64) for v in (sim, se, expected))
    dev = np.abs(sim - expected) / se
    assert np.all(dev < z), f"{what}: simulated {sim} vs expected {expected}, |z| = {dev} (SE {se})"
