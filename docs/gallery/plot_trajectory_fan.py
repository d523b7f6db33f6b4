"""
Trajectory fan
==============

An overdamped Langevin ensemble leaving the left well of a double well.

Median, 25–75 % and 5–95 % bands over 1000 Euler–Maruyama replicas, with three single replicas:
the bands widen as replicas hop the barrier one by one while most of them still sit in the left well.
"""

import stochdyn as sd

sd.plot.use_style("paper")
ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=0.3), sd.landscapes.DoubleWell(dim=2), x0=[-1.0, 0.0],
                 n_replicas=1000, n_steps=40_000, record_every=200, rng=1)
ax = sd.plot.trajectory_fan(ds, coordinate=0)
