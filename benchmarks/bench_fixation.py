"""Benchmark: fixation of one mutant in 10^6 Wright–Fisher populations, run until absorption vs to a fixed horizon.

N = 100 haploid individuals, one site, a mutant of relative fitness r = 1.05 (MultiplicativeFitness
[[0, 0.05]]), no mutation; every population starts with one mutant. Two ways to measure its fixation
probability:

  * ``until=Fixation()``: every population stops at absorption (checked every generation), so the
    run costs the sum of the absorption times (mean 15.2 generations);
  * a fixed horizon H long enough for all but ~1/R of the populations to be absorbed (from the exact
    chain, stochdyn.theory.absorption_times): every population runs H generations.

The fixed-horizon cost per population is measured on a sample (``--sample`` populations x
``--sample-steps`` generations: cost per population-generation) and multiplied by H — running 10^6 x H
generations in full would take hours, and its cost is linear in both. Target (issue 12): per-population
cost >= 10x lower until absorption. The estimate is printed against the exact chain and Kimura's
diffusion value. Memory: about 9 GB peak for 10^6 populations (9.2 GB measured: state, offspring and alias tables); use
``--replicas`` on a smaller machine. The machine is shared: read the ratio, not the seconds.

    python benchmarks/bench_fixation.py [--replicas 1000000] [--sample 20000] [--sample-steps 200] [--repeat 1]
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np

import stochdyn as sd
from bench_wright_fisher import timed  # best of `repeat` calls (this folder is on sys.path)

N, R_FIT = 100, 1.05


def population(R: int) -> np.ndarray:
    x0 = np.zeros((R, N, 1))
    x0[:, 0, 0] = 1.0
    return x0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--sample-steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    R = args.replicas
    th = sd.theory
    integ = sd.WrightFisher(population_size=N, mutation_rate=0.0)
    geno = sd.fitness.MultiplicativeFitness([[0.0, R_FIT - 1.0]])
    exact = th.absorption_times(N, R_FIT, 1, generations=np.arange(1, 20001))
    H = int(np.argmax(exact["survival"] < 1.0 / R)) + 1  # all but ~1/R absorbed by then
    print(f"WrightFisher N={N}, r={R_FIT}, one mutant; {R} populations; threads {numba.get_num_threads()}")
    print(f"fixed horizon from the exact chain: H = {H} generations (P(not absorbed) < 1/R); "
          f"mean absorption time {exact['mean_time']:.2f}")
    # warm up (compile) both paths
    sd.simulate(integ, geno, population(8), n_replicas=8, n_steps=4, record_every=4, rng=1,
                until=sd.stopping.Fixation())
    sd.simulate(integ, geno, population(8), n_replicas=8, n_steps=4, record_every=4, rng=1)

    t_until, ds = timed(lambda: sd.simulate(integ, geno, population(R), n_replicas=R, n_steps=H, record_every=H,
                                            rng=0, until=sd.stopping.Fixation(), progress=False), args.repeat)
    S, G = args.sample, args.sample_steps
    t_fixed, _ = timed(lambda: sd.simulate(integ, geno, population(S), n_replicas=S, n_steps=G, record_every=G, rng=0,
                                           progress=False), args.repeat)
    per_until = t_until / R
    per_fixed = t_fixed / (S * G) * H
    lived = float(np.where(ds["stopped"], ds["stop_step"], H).sum())
    print(f"until absorption : {t_until:8.2f} s for {R} populations ({lived / R:.2f} generations each on average) "
          f"-> {per_until * 1e6:8.2f} us per population")
    print(f"fixed horizon    : {t_fixed:8.2f} s for {S} x {G} generations -> {per_fixed * 1e6:8.2f} us per population "
          f"over H = {H}")
    ratio = per_fixed / per_until
    print(f"per-population cost, fixed horizon / until absorption: {ratio:.1f}x  (target >= 10x: "
          f"{'met' if ratio >= 10 else 'NOT met'})")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        p = sd.analysis.fixation_probability(ds)
    kimura = th.kimura_fixation_probability(math.log(R_FIT), N)
    se = float(p["standard_error"])
    print(f"fixation probability {float(p['value']):.6f} ± {se:.6f} ({int(p['n_censored'])} censored); exact chain "
          f"{exact['fixation_probability']:.6f} (z = {(float(p['value']) - exact['fixation_probability']) / se:+.2f}), "
          f"Kimura {kimura:.6f} (z = {(float(p['value']) - kimura) / se:+.2f})")


if __name__ == "__main__":
    main()
