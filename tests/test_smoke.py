"""Smoke test: the public contract of DESIGN.md in a few lines."""

import numpy as np

import stochdyn as sd


def test_design_example_runs_and_has_the_contracted_layout():
    land = sd.landscapes.DoubleWell(dim=2)
    ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1 / 3), land, x0=[-1.0, 0.0],
                     n_replicas=100, n_steps=200, record_every=100, rng=0)
    assert ds["x"].dims == ("replica", "time", "dim")
    assert ds["energy"].dims == ("replica", "time")
    assert list(ds["step"].values) == [0, 100, 200]
    np.testing.assert_allclose(ds["time"].values, [0.0, 0.1, 0.2])
    for name in ("x", "energy", "diverged", "diverged_step"):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs
    assert ds.attrs["stochdyn_version"] == sd.__version__
    assert ds.attrs["seed"] == "0"


def test_a_single_replica_from_a_single_point():
    ds = sd.simulate(sd.BAOAB(dt=1e-2), sd.landscapes.DoubleWell(dim=2), x0=[-1.0, 0.0], n_replicas=1, n_steps=10, rng=0)
    assert ds.sizes["replica"] == 1 and np.isfinite(ds.x).all()


def test_progress_bar_when_asked_and_silence_otherwise(capsys):
    run = dict(n_replicas=50, n_steps=400, record_every=100, rng=0, chunk_steps=100)
    sd.simulate(sd.EulerMaruyama(dt=1e-3), sd.landscapes.DoubleWell(dim=2), progress=True, **run)
    err = capsys.readouterr().err
    assert "EulerMaruyama on DoubleWell" in err and "400" in err  # tqdm's bar, on stderr
    sd.simulate(sd.EulerMaruyama(dt=1e-3), sd.landscapes.DoubleWell(dim=2), progress=None, **run)
    assert capsys.readouterr().err == ""  # not a terminal (and a short run): no bar
