"""
Temperature scan
================

Temperature against learning rate for two batch sizes, with the exact finite-step theory.

The idealised model of SGD: gradient steps of size lr on a harmonic well (k = 1) with additive
gradient noise of variance sigma^2 / B per coordinate. This is Euler–Maruyama with T = lr sigma^2 / (2B),
so the measured positional temperature k Var(x) is exactly T / (1 - k lr / 2)
(``sd.theory.em_harmonic_variance``): proportional to lr / B, bending up at large lr.
"""

import numpy as np
import xarray as xr

import stochdyn as sd

sd.plot.use_style("paper")
land = sd.landscapes.Harmonic(stiffness=[1.0, 1.0])
sigma2, lrs, batches = 1.0, [0.02, 0.05, 0.1, 0.2, 0.4], [4, 32]
rows = []
for B in batches:
    est = [sd.analysis.variance_temperature(
        sd.simulate(sd.SGD(lr=lr, gradient_noise=sigma2 / B), land, x0=[0.0, 0.0], n_replicas=400,
                    n_steps=int(40 / lr), record_every=int(1 / lr) if lr < 1 else 1, rng=6), burn_in=10)
        for lr in lrs]
    rows.append(xr.concat(est, dim="lr").assign_coords(lr=lrs))
temperature = xr.concat(rows, dim="batch_size").assign_coords(batch_size=batches)


def theory(lr, B):
    return np.array([sd.theory.em_harmonic_variance(1.0, h, h * sigma2 / (2 * B)) for h in lr])


ax = sd.plot.temperature_scan(temperature, "lr", hue="batch_size", theory=theory)
