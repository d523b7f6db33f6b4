"""The getting-started figure: an ensemble in the double well, relaxing towards the Gibbs density.

    python docs/examples/first_figure.py  ->  docs/images/first_figure.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import stochdyn as sd  # noqa: E402

T = 1 / 3
land = sd.landscapes.DoubleWell(dim=2)
ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=T), land, x0=[-1.0, 0.0],
                 n_replicas=10_000, n_steps=50_000, record_every=500, rng=0)

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(7.0, 2.8), constrained_layout=True)
x0 = ds.x.sel(dim=0)
right = (x0 > 0).mean("replica")
se = np.sqrt(right * (1 - right) / ds.sizes["replica"])
ax0.fill_between(ds.time, right - 2 * se, right + 2 * se, color="C0", alpha=0.3, lw=0)
ax0.plot(ds.time, right, color="C0", label="simulation (±2 SE)")
ax0.axhline(0.5, color="k", ls="--", lw=1, label="Gibbs value 1/2")
ax0.set(xlabel="time $t$ [a.u.]", ylabel="fraction with $x_0 > 0$ [dimensionless]",
        title="replicas in the right well now", ylim=(0, 0.6))
ax0.legend(loc="lower right", fontsize=7, frameon=False)

grid = np.linspace(-2, 2, 400)
u0 = (grid**2 - 1) ** 2
gibbs = np.exp(-u0 / T)
gibbs /= np.trapezoid(gibbs, grid)
for t, color in [(1.0, "C1"), (5.0, "C2"), (50.0, "C0")]:
    ax1.hist(x0.sel(time=t, method="nearest"), bins=80, range=(-2, 2), density=True, histtype="step", color=color,
             label=f"t = {t:g}")
ax1.plot(grid, gibbs, "k--", lw=1, label=r"Gibbs $\propto e^{-U/T}$")
ax1.set(xlabel="position $x_0$ [a.u.]", ylabel="probability density [1/a.u.]", title="histogram of $x_0$ over replicas")
ax1.legend(fontsize=7, frameon=False)
out = Path(__file__).resolve().parents[1] / "images" / "first_figure.png"
fig.savefig(out, dpi=150)
print(f"wrote {out}")
