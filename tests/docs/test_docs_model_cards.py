"""Every model card in models/ prints its outcome and checks it against theory.

Each card runs here with fewer replicas (1/8, at least 8) and otherwise its own settings, so every
[expected] value is still the exact answer for the run (the theory does not depend on the number of
replicas; only the standard error grows). A check passes within 4.5 standard errors: with about 20
checks of independent runs, a correct card fails with probability < 2e-4; the tests of the theory
themselves (tests/evolution, tests/sgd, test_langevin_theory) resolve much smaller errors.

Values in a card's [compare] table (``mean_hitting_time__kramers``: approximations such as Kramers'
or Kimura's, which may be far off) are printed beside the checks, never checked. A card may go without
an [expected] table only where no exact theory exists, and then says why in [model] no_exact_theory.
"""

import re
from pathlib import Path

import pytest

import stochdyn as sd
from stochdyn.spec import format_estimate, load_spec, observable, parse_spec, run_spec, summarize

MODELS = Path(__file__).resolve().parents[2] / "models"
CARDS = sorted(p for p in MODELS.glob("*.toml") if load_spec(p).sweep is None)


def test_every_card_has_expected_values():
    # a card checks exact theory in [expected], or says in [model] no_exact_theory why it cannot
    # ([compare] values are printed, never checked, so they do not count)
    assert CARDS
    missing = [p.name for p in CARDS if not load_spec(p).expected and len(load_spec(p).no_exact_theory) < 40]
    assert not missing, f"model cards without an [expected] table or a no_exact_theory reason: {missing}"
    both = [p.name for p in CARDS if load_spec(p).expected and load_spec(p).no_exact_theory]
    assert not both, f"model cards with [expected] values that also claim no exact theory: {both}"


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_card_prints_outcome_and_passes_its_checks(card):
    spec = load_spec(card)
    spec.run["n_replicas"] = max(8, spec.run["n_replicas"] // 8)
    x0 = spec.run.get("x0")
    if x0 is not None and len(getattr(x0, "shape", ())) >= 2:
        spec.run["x0"] = x0[: spec.run["n_replicas"]]
    ds = run_spec(spec, progress=False)
    text = summarize(ds, spec.expected, spec.compare)
    assert "final " in text and "over replicas" in text, text  # the outcome
    assert ("checks against the model card" in text) == bool(spec.expected)
    assert all(key in text for key in spec.compare) and ("for comparison, not checked" in text) == bool(spec.compare)
    for key, value in spec.expected.items():
        assert key in text
        sim, se = observable(ds, key)
        assert se > 0, key
        assert abs(sim - value) <= 4.5 * se, f"{card.name}: {key} = {format_estimate(sim, se)}, expected {value}"


def test_sweep_card_ships_and_runs(tmp_path):
    sweeps = [p for p in MODELS.glob("*.toml") if load_spec(p).sweep is not None]
    assert sweeps, "no model card with a [sweep] table in models/"
    readme = (MODELS.parent / "README.md").read_text()
    assert any(f"stochdyn sweep models/{p.name}" in readme for p in sweeps), "README must name the sweep card"
    from stochdyn.cli import main

    small = tmp_path / sweeps[0].name  # the card with 4 replicas x 20 steps per point
    text = sweeps[0].read_text()
    for key, value in (("n_replicas", 4), ("n_steps", 20), ("record_every", 10)):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    small.write_text(text)
    assert main(["sweep", str(small), "--out", str(tmp_path / "store")]) == 0
    ds = sd.open_sweep(tmp_path / "store")
    assert {"temperature", "barrier"} <= set(ds.dims)
    assert ds.sizes["replica"] == 4


@pytest.mark.parametrize("value, se, text", [
    (0.0014620237, 0.0000146, "0.001462 ± 0.000015"),   # the SGD card's variance: the SE shows
    (0.3335, 0.0047, "0.3335 ± 0.0047"),
    (229.15, 0.92, "229.15 ± 0.92"),
    (1e-9, 3e-11, "(1.000 ± 0.030)e-9"),
    (0.5, 0.0, "0.5 ± 0"),
])
def test_estimates_print_the_digits_their_standard_error_supports(value, se, text):
    assert format_estimate(value, se) == text


def test_observable_names_are_validated_against_the_run():
    base = {"landscape": {"type": "DoubleWell", "dim": 2}, "integrator": {"type": "BAOAB", "dt": 0.01},
            "run": {"n_replicas": 4, "n_steps": 20, "record_every": 10}}
    parse_spec({**base, "expected": {"var_v_x1": 1.0, "mean_energy_step10": 0.5}})
    for key, msg in [("mean_sigma", "records no variable 'sigma'"), ("var_v_x2", "coordinate 2"),
                     ("mean_energy_step5", "not recorded"), ("mean_v", "use mean_v_x<i>"),
                     ("median_x0", "unknown observable")]:
        with pytest.raises(sd.ValidationError, match=msg):
            parse_spec({**base, "expected": {key: 0.0}})
