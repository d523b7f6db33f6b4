"""Canonical figures compared pixel by pixel with stored baselines (tests/plot/baseline/).

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
import pytest  # noqa: E402
from matplotlib.testing.compare import compare_images  # noqa: E402

import stochdyn as sd  # noqa: E402
from plot_data import double_well_run, passages, relaxing_run  # noqa: E402

BASELINE = Path(__file__).with_name("baseline")
UPDATE = os.environ.get("STOCHDYN_UPDATE_BASELINES") == "1"
TOL = 6.0
PINNED = {"figure.dpi": 100, "savefig.dpi": 100, "text.hinting": "none",
          "text.antialiased": True, "font.sans-serif": ["DejaVu Sans"], "svg.hashsalt": "stochdyn"}

CASES = {
    "histogram_vs_gibbs": lambda: sd.plot.histogram_vs_gibbs(double_well_run(), bins=30),
    "trajectory_fan": lambda: sd.plot.trajectory_fan(relaxing_run()),
    "landscape_mueller_brown": lambda: sd.plot.landscape_contours(sd.landscapes.MuellerBrown(scale=0.1), resolution=120),
    "escape_time_distribution": lambda: sd.plot.escape_time_distribution(passages(), theory_rate=0.5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_figure_matches_baseline(name, tmp_path):
    with sd.plot.style("paper"), matplotlib.rc_context(PINNED):
        ax = CASES[name]()
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
