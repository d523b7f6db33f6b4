"""Benchmark: compile latency of every family's first run (issue 10).

For each case, one tiny ``simulate`` (8 replicas, 10 steps) runs in its own subprocess with a
fresh, empty ``NUMBA_CACHE_DIR`` (a student's first run: everything is compiled), then again in a
new process with that cache (everything is loaded). Times are measured inside the subprocess,
after ``import stochdyn`` (import time is printed separately), from building the target to the
returned Dataset. Both wall-clock and process CPU time are printed: on a shared machine the CPU
time is the better estimate of the wall-clock time on an idle one (compilation is single-threaded).
The table gives the targets of issue 10 and whether each is met, and whether the "compiling"
notice appeared on the cold run and stayed away on the warm one.

    python benchmarks/bench_compile.py [--only EulerMaruyama,SGD] [--judge wall|cpu] [--repeat 1]

The script measures whatever the tree holds: it knows nothing about how a family compiles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

#: seconds: first call on an empty cache, by group (issue 10); cache load target for every case
TARGETS = {"langevin": 3.0, "sgd-plain": 6.0, "sgd-practices": 10.0, "es": 5.0, "popgen": 4.0}
CACHED_TARGET = 0.5

_LS = "P.LeastSquares.from_data(P.gaussian_regression(200, 5, noise=0.5, seed=1))"
_LS_LABELLED = ("(lambda d: P.LeastSquares(d.X, d.X @ [1.0, -1.0] + 0.3 * d.labels, labels=d.labels))"
                "(P.imbalanced_classes(90, 2, fractions=(0.6, 0.3, 0.1), seed=1))")
_GENO = "sd.fitness.NKFitness(n_sites=6, k_epistasis=2, n_alleles=3, seed=1)"
_DW = "L.DoubleWell(dim=2)"
_RA = "L.Rastrigin(dim=3)"

#: name -> (group, integrator expression, target expression[, stopping rule expression])
CASES = {
    "EulerMaruyama": ("langevin", "sd.EulerMaruyama(dt=1e-3, temperature=1/3)", _DW),
    "LeimkuhlerMatthews": ("langevin", "sd.LeimkuhlerMatthews(dt=1e-3, temperature=1/3)", _DW),
    "BAOAB": ("langevin", "sd.BAOAB(dt=1e-3, temperature=1/3)", _DW),
    "SGD": ("sgd-plain", "sd.SGD(lr=0.01, batch_size=4)", _LS),
    "Adam": ("sgd-plain", "sd.Adam(lr=0.01, batch_size=4)", _LS),
    "SGLD": ("sgd-plain", "sd.SGLD(lr=0.01, temperature=0.01, batch_size=4)", _LS),
    "SGD all practices": (
        "sgd-practices",
        "sd.SGD(lr=0.01, batch_size=6, momentum=0.5, sampling=sd.Sampling('stratified'), clip_norm=1.0, "
        "lr_schedule=sd.LRSchedule.cosine(10, warmup_steps=2), batch_schedule=sd.BatchSchedule.norm_test(0.8, 40), "
        "augmentation=sd.Augmentation(copies=2, noise=0.1), workers=sd.Workers(3, 'topk', k=1))",
        _LS_LABELLED,
    ),
    "OnePlusOneES": ("es", "sd.OnePlusOneES(sigma0=0.5)", _RA),
    "CSAES": ("es", "sd.CSAES(sigma0=0.5)", _RA),
    "CMAES": ("es", "sd.CMAES(sigma0=0.5)", _RA),
    "CMAES ipop": ("es", "sd.CMAES(sigma0=0.5, restarts='ipop')", _RA),
    "CMAES bipop": ("es", "sd.CMAES(sigma0=0.5, restarts='bipop')", _RA),
    "SepCMAES": ("es", "sd.SepCMAES(sigma0=0.5)", _RA),
    "XNES": ("es", "sd.XNES(sigma0=0.5)", _RA),
    "SNES": ("es", "sd.SNES(sigma0=0.5)", _RA),
    "OpenES": ("es", "sd.OpenES(sigma=0.2, n_pairs=5)", _RA),
    "GeneticAlgorithm": ("es", "sd.GeneticAlgorithm(population_size=10)", _RA),
    "WrightFisher continuous": ("popgen", "sd.WrightFisher(population_size=30)", _DW),
    "WrightFisher genotypes": ("popgen", "sd.WrightFisher(population_size=20, mutation_rate=0.05)", _GENO),
    "Moran continuous": ("popgen", "sd.Moran(population_size=16)", _DW),
    "Moran genotypes": ("popgen", "sd.Moran(population_size=12, mutation_rate=0.05)", _GENO),
    # a first run with a stopping rule (issue 12): the kernel's specialisation with the rule and the interpreter
    "EulerMaruyama until": ("langevin", "sd.EulerMaruyama(dt=1e-3, temperature=1/3)", _DW,
                            "sd.stopping.Region(0, above=1.0) | sd.stopping.EnergyBelow(-1.0)"),
    "SGD until": ("sgd-plain", "sd.SGD(lr=0.01, batch_size=4)", _LS, "sd.stopping.EnergyBelow(0.1)"),
    "CMAES until": ("es", "sd.CMAES(sigma0=0.5)", _RA, "sd.stopping.EnergyBelow(0.1)"),
    "WrightFisher genotypes until": ("popgen", "sd.WrightFisher(population_size=20, mutation_rate=0.05)", _GENO,
                                     "sd.stopping.Fixation()"),
}

SCRIPT = textwrap.dedent(
    """
    import json, time
    w0, c0 = time.perf_counter(), time.process_time()
    import numpy as np
    import stochdyn as sd
    L, P = sd.landscapes, sd.problems
    w1, c1 = time.perf_counter(), time.process_time()
    integ = {integ}
    target = {target}
    sd.simulate(integ, target, n_replicas=8, n_steps=10, rng=0, progress=False, until={until})
    w2, c2 = time.perf_counter(), time.process_time()
    print(json.dumps({{"import": w1 - w0, "wall": w2 - w1, "cpu": c2 - c1}}))
    """
)


def run_case(name: str, cache: str) -> dict:
    _, integ, target, *until = CASES[name]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    code = SCRIPT.format(integ=integ, target=target, until=until[0] if until else None)
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["notice"] = "stochdyn: compiling" in out.stderr
    return res


def measure(name: str, repeat: int) -> tuple[dict, dict]:
    """Best of ``repeat`` (cold, warm) pairs, each with its own fresh cache directory."""
    best_cold: dict = {}
    best_warm: dict = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
            cold = run_case(name, cache)
            warm = run_case(name, cache) if "error" not in cold else cold
        if "error" in cold or "error" in warm:
            return cold, warm
        if not best_cold or cold["wall"] < best_cold["wall"]:
            best_cold = cold
        if not best_warm or warm["wall"] < best_warm["wall"]:
            best_warm = warm
    return best_cold, best_warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--judge", choices=("wall", "cpu"), default="wall",
                    help="time compared with the targets (cpu: process CPU time, for a loaded machine)")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many cold/warm pairs")
    args = ap.parse_args()
    names = [n for n in CASES if not args.only or any(o.strip() == n for o in args.only.split(","))]
    if not names:
        sys.exit(f"no case named {args.only!r}; cases: {', '.join(CASES)}")
    print(f"first call of a tiny simulate (8 replicas x 10 steps), import excluded; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; targets judged on {args.judge} time\n")
    head = (f"{'case':<26} {'first call: wall / cpu':>23} {'target':>7} {'met':>4}   "
            f"{'cache load: wall / cpu':>23} {'target':>7} {'met':>4}   {'notice':>13}   import")
    print(head)
    print("-" * len(head))
    n_met = n_all = 0
    for name in names:
        group = CASES[name][0]
        cold, warm = measure(name, args.repeat)
        if "error" in cold or "error" in warm:
            print(f"{name:<26} failed: {cold.get('error') or warm.get('error')}")
            continue
        ok_cold = cold[args.judge] <= TARGETS[group]
        ok_warm = warm[args.judge] <= CACHED_TARGET
        n_met += ok_cold + ok_warm
        n_all += 2
        notice = ("yes" if cold["notice"] else "MISSING") + " / " + ("no" if not warm["notice"] else "WRONG")
        print(f"{name:<26} {cold['wall']:10.2f} / {cold['cpu']:5.2f} s {TARGETS[group]:6.1f}s {'yes' if ok_cold else 'NO':>4}   "
              f"{warm['wall']:10.2f} / {warm['cpu']:5.2f} s {CACHED_TARGET:6.1f}s {'yes' if ok_warm else 'NO':>4}   "
              f"{notice:>13}   {warm['import']:.2f} s", flush=True)
    print(f"\n{n_met} of {n_all} targets met (notice: on the cold run / on the warm run)")


if __name__ == "__main__":
    main()
