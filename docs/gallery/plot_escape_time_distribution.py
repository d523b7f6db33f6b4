"""
Escape-time distribution
========================

Survival of the left well against the exact rate.

1000 overdamped replicas start at the left minimum of the double well (T = 0.25, barrier 4 T); the
Kaplan–Meier survival of "not yet at x >= 1", the censored exponential fit with its 95 % band, and
exp(-t / MFPT) with the exact mean first-passage time by quadrature (``sd.theory.mfpt_1d``).
"""

import stochdyn as sd

sd.plot.use_style("paper")
land = sd.landscapes.DoubleWell(dim=1)
ds = sd.simulate(sd.EulerMaruyama(dt=2e-3, temperature=0.25), land, x0=[-1.0], n_replicas=1000, n_steps=60_000,
                 record_every=10, rng=5)
passages = sd.analysis.first_passage_times(ds, sd.analysis.interval(0, low=1.0))
mfpt = sd.theory.mfpt_1d(land, -1.0, 1.0, 0.25)
ax = sd.plot.escape_time_distribution(passages, theory_rate=1.0 / mfpt)
