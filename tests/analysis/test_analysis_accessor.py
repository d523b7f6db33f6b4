"""The ``.sd`` accessor is registered by ``import stochdyn`` and forwards to stochdyn.analysis."""

import os
import subprocess
import sys

import numpy as np
import xarray as xr

import stochdyn as sd
from analysis_data import em_harmonic


def test_accessor_methods_are_the_analysis_functions():
    ds = em_harmonic()
    xr.testing.assert_identical(ds.sd.tau(), sd.analysis.integrated_autocorrelation_time(ds))
    xr.testing.assert_identical(ds.x.sd.autocorrelation(max_lag=5), sd.analysis.autocorrelation(ds.x, max_lag=5))
    xr.testing.assert_identical(ds.sd.configurational_temperature(), sd.analysis.configurational_temperature(ds))
    xr.testing.assert_identical(ds.energy.sd.ensemble_mean(), sd.analysis.ensemble_mean(ds.energy))
    assert ds.sd.landscape == sd.landscapes.Harmonic(stiffness=[1.0, 4.0])
    assert ds.sd.info["integrator"]["type"] == "EulerMaruyama"
    rate = ds.sd.escape_rate(sd.analysis.interval(1, low=0.5))
    assert float(rate["value"]) > 0 and "ci_high" in rate
    assert ds.sd.tau.__doc__ == sd.analysis.integrated_autocorrelation_time.__doc__


def test_import_stochdyn_registers_the_accessor_without_importing_matplotlib():
    code = ("import sys, xarray as xr, stochdyn; "
            "assert hasattr(xr.Dataset(), 'sd'); assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_summary_formats_a_scalar_estimate():
    est = sd.analysis.average(xr.DataArray(np.arange(10.0), dims="time"), dims="time")
    assert "±" in sd.analysis.summary(est)


def test_swept_dimensions_and_their_coordinates_are_kept():
    ds = em_harmonic().isel(replica=slice(0, 100), time=slice(0, 200))
    sweep = xr.concat([ds, ds.isel(replica=slice(50, 100))], dim="lr", join="outer")  # point 2: half the replicas
    sweep = sweep.assign_coords(lr=("lr", [0.1, 0.2], {"long_name": "learning rate", "units": "1"}))
    A = sd.analysis
    for est, dims in ((A.configurational_temperature(sweep, per_coordinate=True), ("lr", "dim")),
                      (A.integrated_autocorrelation_time(sweep), ("lr", "dim")),
                      (A.average(sweep["energy"]), ("lr",)),
                      (A.variance_decomposition(sweep["x"], groups="replica", dims=("replica", "time")),
                       ("component", "lr", "dim"))):
        assert est["value"].dims == dims
        assert list(est["lr"].values) == [0.1, 0.2] and est["lr"].attrs["long_name"] == "learning rate"
    # each sweep point is estimated from its own data (NaN padding of the shorter point is skipped)
    t = A.configurational_temperature(sweep, per_coordinate=True)["value"]
    np.testing.assert_allclose(t.sel(lr=0.1).values, A.configurational_temperature(ds, per_coordinate=True)["value"])
    np.testing.assert_allclose(t.sel(lr=0.2).values, A.configurational_temperature(
        ds.isel(replica=slice(50, 100)), per_coordinate=True)["value"])
