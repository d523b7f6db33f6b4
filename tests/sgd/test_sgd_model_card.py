"""The least-squares SGD model card runs through the spec machinery and meets its exact expectations."""

from pathlib import Path

import numpy as np

import stochdyn as sd
from stochdyn import theory as th

CARD = Path(__file__).resolve().parents[2] / "models" / "least_squares_sgd.toml"


def test_model_card_values_are_the_exact_theory():
    spec = sd.spec.load_spec(CARD)
    prob, integ = spec.target, spec.integrator
    C = th.sgd_stationary_covariance(prob, integ.lr, integ.batch_size, sampling=integ.sampling)
    ts = prob.minimizer()
    exp = spec.expected
    np.testing.assert_allclose([exp["var_x0"], exp["var_x1"]], np.diag(C), rtol=1e-12)
    np.testing.assert_allclose([exp["mean_x0"], exp["mean_x1"]], ts, rtol=1e-12)
    np.testing.assert_allclose(exp["mean_energy"], prob.value(ts) + 0.5 * np.trace(prob.hessian @ C), rtol=1e-12)


def test_model_card_run_meets_its_expectations():
    spec = sd.spec.load_spec(CARD)
    ds = sd.spec.run_spec(spec, progress=False)
    for key, value in spec.expected.items():
        sim, se = sd.spec.observable(ds, key)
        assert abs(sim - value) < 4 * se, f"{key}: {sim} vs {value} (SE {se})"
