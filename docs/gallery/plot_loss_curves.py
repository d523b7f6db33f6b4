"""
Loss curves over batch sizes
============================

Mini-batch SGD on least squares, from far away to the noise floor.

Mean over 200 replicas (thick), ± one standard deviation across replicas (band) and one single run
(thin) for batch sizes 4, 16 and 64 at the same learning rate: small batches reach the floor as fast
per step but fluctuate more around it.
"""

import numpy as np

import stochdyn as sd

sd.plot.use_style("paper")
data = sd.problems.data.gaussian_regression(n=1024, d=8, noise=0.5, seed=0)
problem = sd.problems.LeastSquares(data.X, data.y)
runs = {B: sd.simulate(sd.SGD(lr=0.02, batch_size=B), problem, x0=np.full(8, 3.0), n_replicas=200,
                       n_steps=3000, record_every=10, rng=2)
        for B in (4, 16, 64)}
ax = sd.plot.loss_curves(runs)
