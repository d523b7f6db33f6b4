"""
Histogram against Gibbs
=======================

Stationary histograms of three Langevin schemes at one temperature against the Gibbs density.

Euler–Maruyama, Leimkuhler–Matthews and BAOAB on the double well at T = 0.5 with the same fairly
large step dt = 0.05, each histogram with ± one standard error, against the Gibbs marginal normalised by
quadrature. Euler–Maruyama's first-order bias narrows the wells a little: its exact stationary law
(``sd.theory.em_stationary_density_1d``) has <x^2> = 0.820 against the Gibbs value 0.852 (Lab 1 resolves
the difference); Leimkuhler–Matthews and BAOAB are second-order accurate and sit on the Gibbs curve.
"""

import stochdyn as sd

sd.plot.use_style("paper")
land = sd.landscapes.DoubleWell(dim=1)
kw = dict(x0=[-1.0], n_replicas=1000, n_steps=20_000, record_every=50, rng=4)
runs = {
    "Euler–Maruyama": sd.simulate(sd.EulerMaruyama(dt=0.05, temperature=0.5), land, **kw),
    "Leimkuhler–Matthews": sd.simulate(sd.LeimkuhlerMatthews(dt=0.05, temperature=0.5), land, **kw),
    "BAOAB": sd.simulate(sd.BAOAB(dt=0.05, temperature=0.5, friction=2.0), land, **kw),
}
ax = sd.plot.histogram_vs_gibbs(runs, land, 0.5, burn_in=40, bins=45)
