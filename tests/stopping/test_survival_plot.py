"""sd.plot.survival_vs_theory renders headless, labels its axes with units, and takes theory as a
function, a (times, survival) pair or a mapping of them."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import stochdyn as sd  # noqa: E402


def test_survival_vs_theory(tmp_path):
    land = sd.landscapes.DoubleWell(dim=1)
    ds = sd.simulate(sd.EulerMaruyama(dt=0.05, temperature=0.5), land, [-1.0], n_replicas=300, n_steps=200,
                     record_every=200, rng=3, until=sd.stopping.Region(0, above=1.0))
    k = 1.0 / sd.theory.em_mfpt_1d(land, -1.0, 1.0, 0.5, 0.05)
    t = np.linspace(0, 10, 50)
    ax = sd.plot.survival_vs_theory(ds, {"exponential": lambda s: np.exp(-k * s), "pair": (t, np.exp(-k * t))})
    assert ax.get_xlabel() == "hitting time [a.u.]"
    assert ax.get_ylabel() == "survival probability [dimensionless]"
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0].startswith("simulation (Kaplan–Meier)") and "censored" in labels[0] and len(labels) == 3
    ax.figure.savefig(tmp_path / "s.png")
    ax2 = sd.plot.survival_vs_theory(sd.analysis.hitting_times(ds), lambda s: np.exp(-k * s), log=False)
    assert ax2.get_yscale() == "linear"
    with pytest.raises(sd.ValidationError, match="a function S\\(t\\) or a pair"):
        sd.plot.survival_vs_theory(ds, 3.0)
    plt.close("all")
