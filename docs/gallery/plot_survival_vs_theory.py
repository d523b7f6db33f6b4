"""
Survival of runs that stop
==========================

Hitting times of runs that stop: one mutant until it fixes or is lost, against the exact chain.

3000 Wright–Fisher populations (N = 50, one mutant of relative fitness 1.1) run until absorption
(``until=sd.stopping.Fixation()``, checked every generation): the Kaplan–Meier survival of "not yet
absorbed" with its 95 % band, against the exact survival of the absorbing chain
(``sd.theory.absorption_times``). The fast early losses and the slow tail of the fixation paths show
as two slopes on the log scale.
"""

import numpy as np

import stochdyn as sd

sd.plot.use_style("paper")
N, R = 50, 3000
x0 = np.zeros((R, N, 1))
x0[:, 0, 0] = 1.0  # one mutant in every population
ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=0.0),
                 sd.fitness.MultiplicativeFitness([[0.0, 0.1]]), x0, n_replicas=R,
                 n_steps=150, record_every=150, rng=12, until=sd.stopping.Fixation())
t = np.arange(0, 151)
exact = sd.theory.absorption_times(N, 1.1, 1, generations=t)
ax = sd.plot.survival_vs_theory(ds, {"exact Wright–Fisher chain": (t, exact["survival"])})
