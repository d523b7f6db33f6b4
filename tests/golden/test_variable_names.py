"""No variable or coordinate that any integrator records shares a name with an ``xarray.Dataset``
method or property (issue 16, item 3): a variable called ``mean`` would be hidden behind
``ds.mean``. The check runs on the Datasets of the golden cases (one or more runs of every family)
plus the strategies the golden catalogue does not hold, and on a run that stops (its ``stopped``,
``stop_step``, ``stop_time`` and ``stop_rule``); a registered integrator without a run here fails
the test, so a new family cannot skip it."""

import numpy as np
import pytest
import xarray as xr

import stochdyn as sd
from stochdyn.integrators.base import INTEGRATORS

from cases import cases, run

_DATASET_NAMES = {name for name in dir(xr.Dataset) if not name.startswith("_")}
_RASTRIGIN_RUN = dict(n_replicas=4, n_steps=6, record_every=3, rng=1)
#: integrators the golden catalogue does not hold: name -> a tiny run
_EXTRA = {
    "sep_cmaes": lambda: sd.simulate(sd.SepCMAES(sigma0=0.5), sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0],
                                     **_RASTRIGIN_RUN),
    "xnes": lambda: sd.simulate(sd.XNES(sigma0=0.5), sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0],
                                **_RASTRIGIN_RUN),
    "snes": lambda: sd.simulate(sd.SNES(sigma0=0.5), sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0],
                                **_RASTRIGIN_RUN),
    "em_until": lambda: sd.simulate(sd.EulerMaruyama(dt=0.01, temperature=0.5), sd.landscapes.DoubleWell(dim=1),
                                    [-1.0], n_replicas=8, n_steps=50, rng=3,
                                    until=sd.stopping.Region(coordinate=0, above=0.0)),
}


def _runs():
    return {**{name: (lambda name=name: run(name)) for name in cases()}, **_EXTRA}


@pytest.mark.parametrize("name", list(_runs()))
def test_no_recorded_name_is_a_dataset_attribute(name):
    ds = _runs()[name]()
    names = set(ds.variables) | set(ds.dims)
    assert not names & _DATASET_NAMES, f"{name}: {sorted(names & _DATASET_NAMES)} hidden behind Dataset attributes"


def test_every_registered_integrator_is_checked():
    checked = {type(cases()[name][0]()).__name__ for name in cases()} | {"SepCMAES", "XNES", "SNES"}
    assert set(INTEGRATORS) <= checked, f"no run checks the names of {sorted(set(INTEGRATORS) - checked)}"


def test_the_stopping_variables_are_checked():
    ds = _EXTRA["em_until"]()
    assert {"stopped", "stop_step", "stop_time"} <= set(ds.variables)
    assert np.any(ds["stopped"].values)
