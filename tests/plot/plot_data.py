"""Small deterministic data sets (NumPy only, fixed seeds) for the figure tests, shaped like stochdyn runs."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

import stochdyn as sd


def run(x: np.ndarray, landscape, temperature: float, dt: float = 0.1, extra: dict | None = None) -> xr.Dataset:
    """Wrap positions ``x`` (replica, time, dim) — or (replica, time, individual, dim) — as a run Dataset."""
    dims = ("replica", "time", "individual", "dim") if x.ndim == 4 else ("replica", "time", "dim")
    R, n = x.shape[:2]
    ds = xr.Dataset(
        {"x": (dims, x, {"long_name": "position", "units": "1"})},
        coords={"replica": np.arange(R), "time": ("time", np.arange(n) * dt, {"long_name": "time", "units": "1"}),
                "step": ("time", np.arange(n)), "dim": np.arange(x.shape[-1])},
        attrs={"target": json.dumps(landscape.to_dict()),
               "integrator": json.dumps({"type": "EulerMaruyama", "dt": dt, "temperature": temperature})},
    )
    if x.ndim == 3:
        ds["energy"] = (("replica", "time"), landscape.value(x), {"long_name": "potential energy U(x)", "units": "1"})
    for k, v in (extra or {}).items():
        ds[k] = v
    return ds


def double_well_run(R: int = 40, n: int = 150, T: float = 0.5, seed: int = 0) -> xr.Dataset:
    """Independent Gibbs samples of DoubleWell(dim=2) at T (rejection for x0, normal for x1)."""
    rng = np.random.default_rng(seed)
    m = R * n
    x0 = np.empty(0)
    while x0.size < m:
        c = rng.uniform(-3.0, 3.0, 4 * m)
        x0 = np.concatenate([x0, c[rng.uniform(size=c.size) < np.exp(-((c * c - 1.0) ** 2) / T)]])
    x = np.stack([x0[:m], rng.normal(0.0, np.sqrt(T), m)], axis=-1).reshape(R, n, 2)
    return run(x, sd.landscapes.DoubleWell(dim=2), T)


def relaxing_run(R: int = 300, n: int = 120, seed: int = 1) -> xr.Dataset:
    """Ornstein-Uhlenbeck replicas relaxing from x = 2 towards the harmonic minimum (AR(1), 1-D)."""
    rng = np.random.default_rng(seed)
    a, s = 0.95, np.sqrt(0.5 * (1 - 0.95**2))
    x = np.empty((R, n, 1))
    x[:, 0] = 2.0
    for t in range(1, n):
        x[:, t] = a * x[:, t - 1] + s * rng.normal(size=(R, 1))
    return run(x, sd.landscapes.Harmonic(stiffness=1.0), 0.5)


def population_run(seed: int = 2) -> xr.Dataset:
    """Three populations of 30 individuals on the double well (replica, time, individual, dim)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-1.0, 0.0], [1.0, 0.3], [0.9, -0.5]])
    x = centres[:, None, None, :] + 0.25 * rng.normal(size=(3, 4, 30, 2))
    return run(x, sd.landscapes.DoubleWell(dim=2), 0.5)


def passages(seed: int = 3) -> xr.Dataset:
    """Censored exponential waiting times (rate 0.5, horizon 6) as first_passage_times returns them."""
    t = np.random.default_rng(seed).exponential(2.0, 500)
    return xr.Dataset({"duration": ("replica", np.minimum(t, 6.0), {"units": "1"}), "reached": ("replica", t <= 6.0)})


def loss_runs(seed: int = 4) -> dict[int, xr.Dataset]:
    """Mini-batch-loss-like curves: a decay plus AR(1) fluctuations of size ~ 1/sqrt(B)."""
    rng = np.random.default_rng(seed)
    out = {}
    t = np.arange(200.0)
    for B in (4, 32):
        e = np.zeros((20, t.size))
        for k in range(1, t.size):
            e[:, k] = 0.7 * e[:, k - 1] + 0.5 * rng.normal(size=20)
        loss = 0.2 + np.exp(-t / 40.0) + 0.3 * e / np.sqrt(B)
        out[B] = xr.Dataset({"batch_loss": (("replica", "time"), np.abs(loss), {"long_name": "mini-batch loss", "units": "1"})},
                            coords={"time": ("time", t, {"long_name": "step", "units": "1"})})
    return out


def temperature_estimates() -> xr.Dataset:
    """A temperature-like estimate along learning rate and batch size (T = lr / (2B) with 3 % noise)."""
    lr = np.array([0.01, 0.02, 0.05, 0.1])
    B = np.array([4, 32])
    val = lr[None, :] / (2 * B[:, None]) * (1 + 0.03 * np.random.default_rng(5).normal(size=(2, 4)))
    return sd.analysis.estimate(xr.DataArray(val, dims=("batch_size", "lr"), coords={"batch_size": B, "lr": lr}),
                                xr.DataArray(0.03 * val, dims=("batch_size", "lr"), coords={"batch_size": B, "lr": lr}),
                                long_name="temperature")


def es_run(seed: int = 6) -> xr.Dataset:
    """An evolution-strategy-like run: best U so far per replica over generations (inf before the first
    evaluation, as an ES records it at generation 0), with the attributes an ES run has."""
    rng = np.random.default_rng(seed)
    g = np.arange(60)
    best = 10.0 * np.exp(-g[None, :] / 15.0) * np.exp(0.3 * rng.normal(size=(30, 1))) + 0.05
    best = np.minimum.accumulate(best * (1 + 0.02 * rng.normal(size=best.shape)), axis=1)
    best[:, 0] = np.inf
    return xr.Dataset(
        {"best_energy": (("replica", "time"), best, {"long_name": "lowest U evaluated so far", "units": "1"}),
         "population_mean": (("replica", "time", "dim"), rng.normal(size=(30, 60, 2)),
                             {"long_name": "mean of the search distribution", "units": "1"})},
        coords={"replica": np.arange(30), "time": ("time", g.astype(float), {"long_name": "generation", "units": "generation"}),
                "step": ("time", g), "dim": np.arange(2)})


def stopped_run(seed: int = 7) -> xr.Dataset:
    """A run made with ``until=``: exponential hitting times (rate 0.5, time step 0.1), censored at t = 6,
    with the variables ``stopped``, ``stop_step`` and ``stop_time`` that sd.simulate records."""
    t = np.round(np.random.default_rng(seed).exponential(2.0, 400), 1)
    horizon = 6.0
    stopped = t <= horizon
    step = np.where(stopped, np.rint(t / 0.1), -1).astype(np.int64)
    times = np.array([0.0, 3.0, horizon])
    return xr.Dataset(
        {"stopped": ("replica", stopped), "stop_step": ("replica", step),
         "stop_time": ("replica", np.where(stopped, t, np.nan), {"long_name": "stop time", "units": "1"})},
        coords={"replica": np.arange(t.size), "time": ("time", times, {"long_name": "time", "units": "1"}),
                "step": ("time", np.rint(times / 0.1).astype(np.int64))})
