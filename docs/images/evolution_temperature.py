"""Render docs/images/evolution_temperature.png: population size as inverse temperature (Sella & Hirsh 2005).

A haploid population with a continuous trait x on a tilted 1-D double well, fitness W = exp(-s U(x)),
rare small mutations (N * mutation_rate = 0.05). The histogram of the population mean over replicas
and generations is compared with the Boltzmann density exp(-beta U) / Z, beta = (N-1) s for Moran and
2(N-1) s for Wright-Fisher. Run from the repository root:

    python docs/images/evolution_temperature.py
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import integrate

import stochdyn as sd

S = 0.25
LAND = sd.landscapes.DoubleWell(dim=1, tilt=0.3)
R, T, EVERY, BURN = 1000, 10_000, 50, 0


def boltzmann(beta, x):
    u = LAND.value(x[:, None])
    z = integrate.quad(lambda y: np.exp(-beta * LAND.value(np.array([[y]]))[0]), -3, 3)[0]
    return np.exp(-beta * u) / z


def boltzmann_sample(beta, n, seed):
    """Initial traits drawn from exp(-beta U)/Z by inverting the CDF on a fine grid (start at stationarity)."""
    grid = np.linspace(-3, 3, 20_001)
    cdf = np.cumsum(boltzmann(beta, grid))
    cdf /= cdf[-1]
    return np.interp(np.random.default_rng(seed).uniform(size=n), cdf, grid)


def run(integ_cls, N, beta, seed):
    mu = 0.05 / N
    x0 = boltzmann_sample(beta, R, seed)[:, None]
    ds = sd.simulate(integ_cls(population_size=N, mutation_rate=mu, mutation_scale=0.15, selection=S), LAND, x0,
                     n_replicas=R, n_steps=T, record_every=EVERY, rng=seed)
    return ds["population_mean"].sel(dim=0).values[:, BURN // EVERY:].ravel()


def main():
    cases = [(sd.Moran, 5, "Moran, N = 5", (5 - 1) * S), (sd.Moran, 9, "Moran, N = 9", (9 - 1) * S),
             (sd.WrightFisher, 5, "Wright–Fisher, N = 5", 2 * (5 - 1) * S)]
    xs = np.linspace(-2.0, 2.0, 400)
    bins = np.linspace(-2.0, 2.0, 61)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    for ax, (cls, N, label, beta) in zip(axes, cases):
        m = run(cls, N, beta, seed=N + (100 if cls is sd.WrightFisher else 0))
        ax.hist(m, bins=bins, density=True, color="0.75", label="population mean (simulated)")
        ax.plot(xs, boltzmann(beta, xs), "C3", lw=2, label=rf"$e^{{-\beta U}}/Z$, $\beta = {beta:g}$")
        ax.set_title(label)
        ax.set_xlabel("trait x")
        p_theory = integrate.trapezoid(boltzmann(beta, xs) * (xs > 0), xs)
        ax.text(0.64, 0.95, f"P(x > 0)\nsimulated {np.mean(m > 0):.2f}\nBoltzmann {p_theory:.2f}",
                transform=ax.transAxes, va="top", fontsize=8)
        ax.legend(loc="center right", fontsize=8, frameon=False)
    axes[0].set_ylabel("density")
    fig.suptitle(rf"Population size as inverse temperature: $W = e^{{-sU}}$, s = {S}; Moran $\beta=(N-1)s$, "
                 rf"Wright–Fisher $\beta\approx 2(N-1)s$", fontsize=10)
    fig.tight_layout()
    out = os.path.join(os.path.dirname(__file__), "evolution_temperature.png")
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
