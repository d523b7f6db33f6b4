"""Shared, cached ensembles with known answers for the analysis tests (built once per session).

Each is started in its exact stationary law where one is known, so no burn-in muddies the check.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import xarray as xr

import stochdyn as sd

#: Euler-Maruyama on U = (k0 x0^2 + k1 x1^2)/2
EM_K = np.array([1.0, 4.0])
EM_T = 0.5
EM_DT = 0.05
EM_EVERY = 4


@functools.lru_cache(maxsize=None)
def em_harmonic() -> xr.Dataset:
    """1000 replicas x 1001 records (every 4 steps) of EM on a 2-D harmonic well, stationary from t = 0.

    Per coordinate the chain is the AR(1) x_{n+1} = (1 - k dt) x_n + sqrt(2 T dt) xi with stationary
    variance T / (k (1 - k dt / 2)) (stochdyn.theory.em_harmonic_variance).
    """
    var = np.array([sd.theory.em_harmonic_variance(k, EM_DT, EM_T) for k in EM_K])
    x0 = np.random.default_rng(11).normal(size=(1000, 2)) * np.sqrt(var)
    return sd.simulate(sd.EulerMaruyama(dt=EM_DT, temperature=EM_T), sd.landscapes.Harmonic(stiffness=EM_K), x0=x0,
                       n_replicas=1000, n_steps=4000, record_every=EM_EVERY, rng=12)


BAOAB_K = np.array([1.0, 4.0])
BAOAB_T = 0.5
BAOAB_DT = 0.2


@functools.lru_cache(maxsize=None)
def baoab_harmonic() -> xr.Dataset:
    """2000 replicas of BAOAB (friction 1) on a 2-D harmonic well; positions start in their exact
    stationary law N(0, T/k); the velocities relax within the first few time units (burn in 25 records)."""
    x0 = np.random.default_rng(21).normal(size=(2000, 2)) * np.sqrt(BAOAB_T / BAOAB_K)
    return sd.simulate(sd.BAOAB(dt=BAOAB_DT, temperature=BAOAB_T, friction=1.0), sd.landscapes.Harmonic(stiffness=BAOAB_K),
                       x0=x0, n_replicas=2000, n_steps=1500, record_every=5, rng=22)


def double_well_gibbs_samples(n: int, temperature: float, seed: int) -> np.ndarray:
    """Independent draws from exp(-(x^2 - 1)^2 / T) on the line, by rejection from a uniform on [-3, 3]."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        x = rng.uniform(-3.0, 3.0, 4 * n)
        keep = rng.uniform(size=x.size) < np.exp(-((x * x - 1.0) ** 2) / temperature)
        out.append(x[keep])
    return np.concatenate(out)[:n]


def as_run(x: np.ndarray, landscape, temperature: float, dt: float = 1.0) -> xr.Dataset:
    """Wrap samples ``x`` (replica, time, dim) as a stochdyn-like Dataset with the attributes the
    analyses read (target landscape, integrator temperature)."""
    R, n, d = x.shape
    ds = xr.Dataset(
        {"x": (("replica", "time", "dim"), x, {"long_name": "position", "units": "1"}),
         "energy": (("replica", "time"), landscape.value(x), {"long_name": "potential energy U(x)", "units": "1"})},
        coords={"replica": np.arange(R), "time": ("time", np.arange(n) * dt, {"long_name": "time", "units": "1"}),
                "step": ("time", np.arange(n)), "dim": np.arange(d)},
        attrs={"target": json.dumps(landscape.to_dict()),
               "integrator": json.dumps({"type": "EulerMaruyama", "dt": dt, "temperature": temperature})},
    )
    return ds
