"""Canonical figures of every plot function compared pixel by pixel with stored baselines
(tests/plot/baseline/).

Style, fonts (DejaVu Sans, bundled with Matplotlib), DPI and hinting are pinned, and the data are
NumPy-generated with fixed seeds, so the comparison is stable; ``compare_images`` allows a small RMS
difference (on the 0-255 scale) for anti-aliasing changes between FreeType/Matplotlib versions. After an
intended change of a figure, regenerate with ``STOCHDYN_UPDATE_BASELINES=1 python -m pytest
tests/plot/test_plot_baseline.py`` and look at the new images before committing them.
"""

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.testing.compare import compare_images  # noqa: E402

import stochdyn as sd  # noqa: E402
from plot_data import (double_well_run, es_run, loss_runs, passages, population_run, relaxing_run,  # noqa: E402
                       stopped_run, temperature_estimates)

BASELINE = Path(__file__).with_name("baseline")
UPDATE = os.environ.get("STOCHDYN_UPDATE_BASELINES") == "1"
TOL = 6.0
PINNED = {"figure.dpi": 100, "savefig.dpi": 100, "text.hinting": "none",
          "text.antialiased": True, "font.sans-serif": ["DejaVu Sans"], "svg.hashsalt": "stochdyn"}



def _animation_first_frame(tmp):
    """animate_ensemble's GIF, first frame redrawn as a figure (the GIF itself is checked in test_plot_figures)."""
    from PIL import Image

    gif = sd.plot.animate_ensemble(double_well_run(R=30, n=3), Path(tmp) / "cloud.gif", fps=4, dpi=60)
    with Image.open(gif) as im:
        frame = im.convert("RGB")
    fig, ax = plt.subplots(figsize=(frame.width / 100, frame.height / 100))
    ax.imshow(frame)
    ax.set_axis_off()
    return ax


CASES = {
    "histogram_vs_gibbs": lambda tmp: sd.plot.histogram_vs_gibbs(double_well_run(), bins=30),
    "trajectory_fan": lambda tmp: sd.plot.trajectory_fan(relaxing_run()),
    "trajectory_fan_es_best_energy": lambda tmp: sd.plot.trajectory_fan(es_run(), "best_energy"),
    "landscape_mueller_brown": lambda tmp: sd.plot.landscape_contours(sd.landscapes.MuellerBrown(scale=0.1),
                                                                      resolution=120),
    "escape_time_distribution": lambda tmp: sd.plot.escape_time_distribution(passages(), theory_rate=0.5),
    "loss_curves": lambda tmp: sd.plot.loss_curves(loss_runs()),
    "ensemble_snapshot": lambda tmp: sd.plot.ensemble_snapshot(double_well_run(), resolution=120),
    "ensemble_snapshot_population": lambda tmp: sd.plot.ensemble_snapshot(population_run(), resolution=120),
    "temperature_scan": lambda tmp: sd.plot.temperature_scan(temperature_estimates(), "lr", hue="batch_size",
                                                             theory=lambda lr, B: lr / (2 * B)),
    "autocorrelation": lambda tmp: sd.plot.autocorrelation(
        sd.analysis.autocorrelation(relaxing_run().isel(time=slice(60, None)), max_lag=20).isel(dim=0),
        theory=lambda t: 0.95 ** (t / 0.1)),
    "animate_ensemble_first_frame": _animation_first_frame,
    "survival_vs_theory": lambda tmp: sd.plot.survival_vs_theory(
        stopped_run(), {"exponential, rate 1/2": lambda t: np.exp(-0.5 * t),
                        "rate 0.45 (pairs)": (np.linspace(0, 6, 7), np.exp(-0.45 * np.linspace(0, 6, 7)))}),
}


def test_every_plot_function_has_a_baseline():
    drawn = {name.split("_es_")[0].replace("_first_frame", "").replace("_population", "") for name in CASES}
    drawn |= {"landscape_contours"} if "landscape_mueller_brown" in CASES else set()
    functions = [n for n in sd.plot.__all__ if callable(getattr(sd.plot, n)) and n not in
                 ("use_style", "style", "figsize", "available_styles", "style_path", "axis_label")]
    assert not [n for n in functions if n not in drawn], f"plot functions without a baseline image: {set(functions) - drawn}"


@pytest.mark.parametrize("name", list(CASES))
def test_figure_matches_baseline(name, tmp_path):
    with sd.plot.style("paper"), matplotlib.rc_context(PINNED):
        ax = CASES[name](tmp_path)
        actual = tmp_path / f"{name}.png"
        ax.figure.savefig(actual, dpi=100)
        plt.close(ax.figure)
    expected = BASELINE / f"{name}.png"
    if UPDATE:
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
    assert expected.exists(), f"missing baseline {expected}; create it with STOCHDYN_UPDATE_BASELINES=1"
    err = compare_images(str(expected), str(actual), tol=TOL)
    assert err is None, err
