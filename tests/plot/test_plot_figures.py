"""Every figure function renders headless to PNG, returns Axes (never shows), and labels every axis
with units; styles load by name; the animation writer degrades gracefully without ffmpeg."""

import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import stochdyn as sd  # noqa: E402
from plot_data import (double_well_run, loss_runs, passages, population_run, relaxing_run,  # noqa: E402
                       stopped_run, temperature_estimates)

UNITS = re.compile(r"\S.*\[[^\]]+\]$")


def _check_labels(fig):
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert UNITS.match(ax.get_ylabel() or ax.get_xlabel()), "colorbar without label and units"
            continue
        assert UNITS.match(ax.get_xlabel()), f"x label without units: {ax.get_xlabel()!r}"
        assert UNITS.match(ax.get_ylabel()), f"y label without units: {ax.get_ylabel()!r}"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _figures():
    dw = double_well_run()
    return {
        "trajectory_fan": lambda: sd.plot.trajectory_fan(relaxing_run()),
        "loss_curves": lambda: sd.plot.loss_curves(loss_runs()),
        "landscape_contours_2d": lambda: sd.plot.landscape_contours(sd.landscapes.MuellerBrown(scale=0.1)),
        "landscape_contours_1d": lambda: sd.plot.landscape_contours(sd.landscapes.DoubleWell(dim=1)),
        "ensemble_snapshot": lambda: sd.plot.ensemble_snapshot(dw),
        "ensemble_snapshot_population": lambda: sd.plot.ensemble_snapshot(population_run()),
        "histogram_vs_gibbs": lambda: sd.plot.histogram_vs_gibbs(dw),
        "histogram_vs_gibbs_many": lambda: sd.plot.histogram_vs_gibbs({"A": dw, "B": dw.isel(replica=slice(0, 10))},
                                                                     coordinate=1),
        "escape_time_distribution": lambda: sd.plot.escape_time_distribution(passages(), theory_rate=0.5),
        "temperature_scan": lambda: sd.plot.temperature_scan(temperature_estimates(), "lr", hue="batch_size",
                                                             theory=lambda lr, B: lr / (2 * B)),
        "autocorrelation": lambda: sd.plot.autocorrelation(
            sd.analysis.autocorrelation(relaxing_run().isel(time=slice(60, None)), max_lag=20).isel(dim=0),
            theory=lambda t: 0.95 ** (t / 0.1)),
        "survival_vs_theory": lambda: sd.plot.survival_vs_theory(stopped_run(), lambda t: np.exp(-0.5 * t)),
        "survival_vs_theory_linear": lambda: sd.plot.survival_vs_theory(sd.analysis.hitting_times(stopped_run()),
                                                                        log=False, label="exponential times"),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_figure_renders_to_png_with_units_on_every_axis(name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Matplotlib or NumPy warnings while drawing
        ax = _figures()[name]()
    assert isinstance(ax, matplotlib.axes.Axes)
    fig = ax.figure
    _check_labels(fig)
    out = tmp_path / f"{name}.png"
    fig.savefig(out)
    assert out.stat().st_size > 5000


def test_figures_draw_on_given_axes_and_in_every_style(tmp_path):
    for name in sd.plot.available_styles():
        with sd.plot.style(name):
            fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6) if name == "paper" else None)
            assert sd.plot.trajectory_fan(relaxing_run(), ax=axes[0]) is axes[0]
            assert sd.plot.histogram_vs_gibbs(double_well_run(), ax=axes[1]) is axes[1]
            fig.savefig(tmp_path / f"{name}.png")
            _check_labels(fig)


def test_styles_and_sizes():
    assert {"paper", "slides"} <= set(sd.plot.available_styles())
    with sd.plot.style("paper", columns=2):
        assert tuple(plt.rcParams["figure.figsize"]) == sd.plot.figsize(2)
        assert plt.rcParams["font.family"] == ["sans-serif"] and plt.rcParams["text.usetex"] is False
        assert plt.rcParams["pdf.fonttype"] == 42
        cycle = [c["color"].lower() for c in plt.rcParams["axes.prop_cycle"]]
        assert cycle[:3] == [c.lstrip("#").lower() for c in sd.plot.PALETTE[:3]] or \
            cycle[:3] == [c.lower() for c in sd.plot.PALETTE[:3]]
    with sd.plot.style("slides"):
        assert plt.rcParams["font.size"] == 16
    assert sd.plot.figsize(1)[0] == 3.4
    with pytest.raises(sd.ValidationError, match="name"):
        sd.plot.use_style("poster")
    with pytest.raises(sd.ValidationError, match="columns"):
        sd.plot.figsize(3)


def test_animation_gif_and_mp4_fallback(tmp_path, monkeypatch):
    ds = double_well_run(R=30, n=4)
    gif = sd.plot.animate_ensemble(ds, tmp_path / "cloud.gif", fps=4, dpi=40)
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 4
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.warns(RuntimeWarning, match="ffmpeg is not available"):
        out = sd.plot.animate_ensemble(ds, tmp_path / "cloud.mp4", fps=4, dpi=40, frames=[0, 3])
    assert out.suffix == ".gif" and out.exists()
    with pytest.raises(sd.ValidationError, match=".gif or .mp4"):
        sd.plot.animate_ensemble(ds, tmp_path / "cloud.avi")


def test_plot_bad_inputs():
    with pytest.raises(sd.ValidationError, match="quantiles"):
        sd.plot.trajectory_fan(relaxing_run(), quantiles=(0.7,))
    with pytest.raises(sd.ValidationError, match="dims"):
        sd.plot.landscape_contours(sd.landscapes.DoubleWell(dim=2), dims=(0, 0))
    with pytest.raises(sd.ValidationError, match="select"):
        sd.plot.temperature_scan(temperature_estimates(), "lr")
    with pytest.raises(sd.ValidationError, match="band"):
        sd.plot.loss_curves(loss_runs(), band="range")
    assert np.isfinite(sd.plot.figsize(2)).all()


def test_every_figure_function_has_a_gallery_example():
    from pathlib import Path

    gallery = Path(__file__).resolve().parents[2] / "docs" / "gallery"
    figure_functions = [n for n in sd.plot.__all__ if n not in
                        ("use_style", "style", "figsize", "available_styles", "style_path", "PALETTE", "COLUMN_WIDTHS",
                         "axis_label")]
    missing = [n for n in figure_functions if not (gallery / f"plot_{n}.py").exists()]
    assert not missing, f"no gallery example for {missing}"


def test_labels_of_evolution_runs_name_the_variable_and_count_generations():
    from plot_data import es_run

    ax = sd.plot.trajectory_fan(es_run(), "best_energy")  # inf at generation 0 is left out, no warning
    assert ax.get_ylabel() == "lowest U evaluated so far [a.u.]"
    assert ax.get_xlabel() == "generation [count]"
    ax = sd.plot.trajectory_fan(es_run(), coordinate=1)
    assert ax.get_ylabel() == "mean of the search distribution $x_{1}$ [a.u.]"
    assert sd.plot.axis_label("step", "1") == "step [count]"
    assert sd.plot.axis_label("time", "1") == "time [a.u.]"


def test_landscape_maps_are_drawn_to_scale_and_resolve_the_explored_range():
    land = sd.landscapes.MuellerBrown(scale=0.1)
    ax = sd.plot.landscape_contours(land)
    assert ax.get_aspect() == 1.0
    (cs,) = [c for c in ax.collections if hasattr(c, "levels") and len(c.levels) > 2][:1]
    top_default = cs.levels.max()
    ax = sd.plot.landscape_contours(land, temperature=0.5)
    (cs,) = [c for c in ax.collections if hasattr(c, "levels") and len(c.levels) > 2][:1]
    umin = cs.levels.min()
    assert np.isclose(cs.levels.max(), umin + 10 * 0.5) and cs.levels.max() < top_default


def test_survival_axis_says_generations_for_a_run_counted_in_generations():
    ds = stopped_run()
    assert sd.plot.survival_vs_theory(ds).get_xlabel() == "hitting time [a.u.]"
    ds["time"].attrs["long_name"] = "generation"
    assert sd.plot.survival_vs_theory(ds).get_xlabel() == "hitting time in generations [count]"
