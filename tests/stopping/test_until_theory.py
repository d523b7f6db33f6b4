"""Runs that stop against exact finite-N and finite-step theory: fixation of one mutant in the
Wright–Fisher and Moran chains, and the mean first-passage time of the Euler–Maruyama chain."""

import math

import numpy as np

import stochdyn as sd

th = sd.theory
A = sd.analysis


def _one_mutant(R, N):
    x0 = np.zeros((R, N, 1))
    x0[:, 0, 0] = 1.0
    return x0


def test_wright_fisher_fixation_against_the_exact_chain():
    # N = 50, one mutant of relative fitness 1.1; 6000 populations until absorption (checked every generation).
    # Exact chain: fixation 0.1756, E[T | fixation] = 54.5, E[T | loss] = 4.34 generations. Each comparison at
    # 4 standard errors (SE: 0.005, 0.6, 0.07, ...): a false failure in ~1e-4 of runs per comparison.
    N, r, R = 50, 1.1, 6000
    until = sd.stopping.Fixation(allele=1) | sd.stopping.Fixation(allele=0)
    ds = sd.simulate(sd.WrightFisher(population_size=N, mutation_rate=0.0), sd.fitness.MultiplicativeFitness([[0.0, r - 1]]),
                     _one_mutant(R, N), n_replicas=R, n_steps=2000, record_every=1000, rng=12, until=until)
    exact = th.absorption_times(N, r, 1, generations=[2, 10, 40])
    assert bool(ds["stopped"].all())
    p = A.fixation_probability(ds)
    assert abs(float(p["value"]) - exact["fixation_probability"]) < 4 * float(p["standard_error"])
    assert float(p["ci_low"]) < exact["fixation_probability"] < float(p["ci_high"])
    assert abs(float(p["fixation_time"]) - exact["mean_fixation_time"]) < 4 * float(p["fixation_time_standard_error"])
    assert abs(float(p["loss_time"]) - exact["mean_loss_time"]) < 4 * float(p["loss_time_standard_error"])
    ht = A.hitting_times(ds)
    assert abs(float(ht["value"]) - exact["mean_time"]) < 4 * float(ht["standard_error"])
    # which rule fired = which allele fixed; the conditional means are the conditional fixation/loss times
    np.testing.assert_array_equal(ht["rule_count"].values, [int(p["n_fixed"]), int(p["n_lost"])])
    assert abs(float(ht["conditional_mean"][0]) - exact["mean_fixation_time"]) < 4 * float(ht["conditional_standard_error"][0])
    for t, s in zip([2, 10, 40], exact["survival"]):
        km = ht["survival"].sel(duration=t, method="ffill")
        assert abs(float(km) - s) < 4 * float(ht["survival_standard_error"].sel(duration=t, method="ffill"))


def test_moran_fixation_against_the_exact_formula():
    # N = 20, r = 1.2: (1 - 1/r)/(1 - 1/r^N) = 0.1711; 4000 populations, SE 0.006, 4 SE
    N, r, R = 20, 1.2, 4000
    ds = sd.simulate(sd.Moran(population_size=N, mutation_rate=0.0), sd.fitness.MultiplicativeFitness([[0.0, r - 1]]),
                     _one_mutant(R, N), n_replicas=R, n_steps=1000, record_every=500, rng=13,
                     until=sd.stopping.Fixation())
    p = A.fixation_probability(ds)
    exact = th.moran_fixation_probability(r, N)
    assert int(p["n_censored"]) == 0
    assert abs(float(p["value"]) - exact) < 4 * float(p["standard_error"])
    times = th.absorption_times(N, r, 1, model="moran")
    assert abs(float(p["fixation_time"]) - times["mean_fixation_time"]) < 4 * float(p["fixation_time_standard_error"])


def test_mean_first_passage_time_of_the_euler_maruyama_chain():
    # 1-D double well, T = 0.5, dt = 0.05, from -1 until x >= 1, checked after every step: the exact
    # finite-step MFPT of the chain (Nystrom, record_every=1) is 9.69, the continuous-time one 10.26.
    # 4000 replicas (about 2 % censored at t = 40), SE ~ 0.16: the estimate is within 4 SE of the chain's
    # value, and the test can see the finite-step bias (0.57 > 3 SE).
    land = sd.landscapes.DoubleWell(dim=1)
    T, dt = 0.5, 0.05
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), land, [-1.0], n_replicas=4000, n_steps=800,
                     record_every=400, rng=14, until=sd.stopping.Region(0, above=1.0))
    ht = A.hitting_times(ds)
    exact = th.em_mfpt_1d(land, -1.0, 1.0, T, dt)
    assert int(ht["n_censored"]) > 0  # the exponential tail is in use
    assert abs(float(ht["value"]) - exact) < 4 * float(ht["standard_error"])
    assert abs(th.mfpt_1d(land, -1.0, 1.0, T) - exact) > 3 * float(ht["standard_error"])
