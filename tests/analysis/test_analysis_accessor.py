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
