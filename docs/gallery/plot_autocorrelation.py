"""
Autocorrelation
===============

An Ornstein–Uhlenbeck ensemble's autocorrelation against the exact discrete-time answer.

Euler–Maruyama on U = x^2 / 2 with a coarse step dt = 0.1: the ensemble ACF (± two standard errors)
follows (1 - dt)^n exactly, visibly below the continuous-time exp(-t).
"""

import numpy as np

import stochdyn as sd

sd.plot.use_style("paper")
dt = 0.1
ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=1.0), sd.landscapes.Harmonic(stiffness=1.0), x0=[0.0],
                 n_replicas=500, n_steps=10_000, record_every=1, rng=7)
acf = sd.analysis.autocorrelation(sd.analysis.discard_burn_in(ds, 100), max_lag=40).isel(dim=0)
ax = sd.plot.autocorrelation(acf, theory=lambda t: (1 - dt) ** (t / dt), label="Euler–Maruyama")
t = np.linspace(0, 4, 200)
ax.plot(t, np.exp(-t), color="0.5", lw=0.8, ls=":", label="continuous time, exp(-t)")
ax.legend()
