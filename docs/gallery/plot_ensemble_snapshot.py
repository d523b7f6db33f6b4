"""
Ensemble snapshot
=================

1000 Langevin replicas on the Müller–Brown landscape after t = 20.

All replicas started in the deepest (upper-left) minimum; at temperature 1.5 (in units of the scaled
potential) some have crossed into the two lower basins; the colours resolve the 10 T above the minimum
where the replicas are.
"""

import stochdyn as sd

sd.plot.use_style("paper")
land = sd.landscapes.MuellerBrown(scale=0.1)
ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1.5), land, x0=land.minima[0], n_replicas=1000,
                 n_steps=20_000, record_every=1000, rng=3)
ax = sd.plot.ensemble_snapshot(ds, time=-1)
