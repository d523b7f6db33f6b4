"""Benchmark: evaluations CMA-ES needs, stochdyn against pycma, in one run (issue 17).

Part 1 — evaluations to f < 1e-8 on sphere, ellipsoid (condition 1e6), cigar (1e6) and Rosenbrock in
10-D and 20-D, from the same starting points (uniform in [-1, 1]^n per run, seeded), sigma0 = 2,
default population size:

  * stochdyn ``CMAES`` (default: active covariance update) and ``CMAES(active=False)``;
  * pycma (``cma``) with its default options (they include the active update) and with
    ``CMA_active=False``; each run stops at ``ftarget = 1e-8`` (skipped with a message when ``cma``
    is not installed: ``pip install cma``, or the ``bench`` extra).

Prints, per row, the median evaluations with the interquartile range over the successful runs, the
number of successful runs, and the ratios with their targets: stochdyn's default within 10% of
pycma's default (ratio <= 1.10) and never worse than the plain update (active / plain <= 1).

Part 2 — restarts: success rate (best f < 1e-8) on 10-D Rastrigin within a fixed budget of
evaluations, stochdyn ``CMAES(restarts="ipop" | "bipop", max_evaluations=budget)`` against
``cma.fmin2(..., restarts=9, incpopsize=2, bipop=False | True)`` with the same budget, x0 uniform in
[-4, 4]^10 per run, sigma0 = 2. Target: stochdyn's success rate at least pycma's for the same
restart scheme (the difference is printed with its standard error).

    python benchmarks/bench_cmaes_evals.py [--runs 21] [--restart-runs 21] [--budget 100000] [--dims 10,20]

pycma runs in Python at about a millisecond per generation: with the defaults the script takes
tens of minutes; ``--runs 101`` reproduces the comparison of issue 17.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import stochdyn as sd

TARGET, SIGMA0 = 1e-8, 2.0


@sd.landscapes.landscape(check=False)
def ellipsoid(x, grad):
    n = x.shape[0]
    u = 0.0
    for i in range(n):
        a = 10.0 ** (6.0 * i / (n - 1))
        grad[i] = 2.0 * a * x[i]
        u += a * x[i] * x[i]
    return u


@sd.landscapes.landscape(check=False)
def cigar(x, grad):
    u = x[0] * x[0]
    grad[0] = 2.0 * x[0]
    for i in range(1, x.shape[0]):
        grad[i] = 2e6 * x[i]
        u += 1e6 * x[i] * x[i]
    return u


def _numpy(name):
    def sphere(X):
        return np.sum(X**2, axis=-1)

    def ell(X):
        n = X.shape[-1]
        return np.sum(10.0 ** (6.0 * np.arange(n) / (n - 1)) * X**2, axis=-1)

    def cig(X):
        return X[..., 0] ** 2 + 1e6 * np.sum(X[..., 1:] ** 2, axis=-1)

    def rosen(X):
        return np.sum(100.0 * (X[..., 1:] - X[..., :-1] ** 2) ** 2 + (1.0 - X[..., :-1]) ** 2, axis=-1)

    return {"sphere": sphere, "ellipsoid": ell, "cigar": cig, "rosenbrock": rosen}[name]


def _landscape(name, n):
    if name == "sphere":
        return sd.landscapes.Rastrigin(dim=n, amplitude=0.0)
    if name == "rosenbrock":
        return sd.landscapes.Rosenbrock(dim=n)
    return (ellipsoid if name == "ellipsoid" else cigar)(dim=n)


def stochdyn_evals(name, n, x0, active, max_gens):
    """Evaluations until best f < TARGET per run (NaN if not reached within max_gens generations)."""
    ds = sd.simulate(sd.CMAES(sigma0=SIGMA0, active=active), _landscape(name, n), x0, n_replicas=x0.shape[0],
                     n_steps=max_gens, record_every=1, rng=1, progress=False)
    best = ds["best_energy"].values
    ev = ds["evaluations"].values
    hit = best < TARGET
    first = np.argmax(hit, axis=1)
    out = ev[np.arange(len(first)), first].astype(float)
    out[~hit.any(axis=1)] = np.nan
    return out


def pycma_evals(name, n, x0, active, max_evals):
    import cma

    f = _numpy(name)
    out = np.full(x0.shape[0], np.nan)
    for r in range(x0.shape[0]):
        opts = {"verbose": -9, "seed": r + 1, "ftarget": TARGET, "maxfevals": max_evals}
        if not active:
            opts["CMA_active"] = False
        es = cma.CMAEvolutionStrategy(x0[r], SIGMA0, opts)
        while not es.stop():
            X = es.ask()
            es.tell(X, f(np.asarray(X)).tolist())
        if es.best.f < TARGET:
            out[r] = es.countevals  # whole generations, as stochdyn counts (ftarget stops after that one)
    return out


def ratio_se(a, b, n_boot=2000, seed=0):
    """Ratio of the medians of the successful runs of ``a`` and ``b`` and its bootstrap standard error."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    g = np.random.default_rng(seed)
    boot = [np.median(g.choice(a, a.size)) / np.median(g.choice(b, b.size)) for _ in range(n_boot)]
    return float(np.median(a) / np.median(b)), float(np.std(boot))


def verdict(r, se, target):
    if r <= target:
        return "met"
    return "not met (within 2 SE)" if r - target <= 2 * se else "NOT met"


def summary(ev):
    ok = ev[np.isfinite(ev)]
    if ok.size == 0:
        return float("nan"), "   (none)", 0
    q1, med, q3 = np.percentile(ok, [25, 50, 75])
    return med, f"{med:8.0f} [{q1:6.0f}-{q3:6.0f}]", ok.size


def restarts_part(args, have_pycma):
    n, B, R = 10, args.budget, args.restart_runs
    land = sd.landscapes.Rastrigin(dim=n)
    x0 = np.random.default_rng(2).uniform(-4, 4, size=(R, n))
    lam0 = sd.CMAES().strategy(n)["lam"]
    print(f"\nRestarts on Rastrigin(dim={n}), budget {B} evaluations, {R} runs, x0 uniform in [-4, 4]^{n}, "
          f"sigma0 = {SIGMA0}: success rate (best f < {TARGET:g})")
    for mode in ("ipop", "bipop"):
        t0 = time.perf_counter()
        ds = sd.simulate(sd.CMAES(sigma0=SIGMA0, restarts=mode, max_evaluations=B), land, x0, n_replicas=R,
                         n_steps=B // lam0, record_every=B // lam0, rng=3, progress=False)
        ok_sd = ds["best_energy"].isel(time=-1).values < TARGET
        t_sd = time.perf_counter() - t0
        line = f"  {mode.upper():<6} stochdyn {ok_sd.mean():5.2f} ({t_sd:6.1f} s)"
        if have_pycma:
            import cma

            t0 = time.perf_counter()
            ok_py = np.zeros(R, dtype=bool)
            for r in range(R):
                res = cma.fmin2(None, x0[r], SIGMA0, {"verbose": -9, "seed": r + 1, "ftarget": TARGET, "maxfevals": B},
                                restarts=9, incpopsize=2, bipop=mode == "bipop",
                                parallel_objective=lambda X: _rastrigin_np(np.asarray(X)).tolist())
                ok_py[r] = res[1].result.fbest < TARGET
            t_py = time.perf_counter() - t0
            diff = ok_sd.mean() - ok_py.mean()
            se = math.sqrt((ok_sd.var() + ok_py.var()) / R) or float("nan")
            verdict = "met" if diff >= 0 else ("NOT met" if diff < -2 * se else "not met (within 2 SE)")
            line += (f"   pycma {ok_py.mean():5.2f} ({t_py:6.1f} s)   difference {diff:+.2f} +- {se:.2f} SE  "
                     f"(target: stochdyn >= pycma: {verdict})")
        print(line)


def _rastrigin_np(X):
    return 10.0 * X.shape[-1] + np.sum(X**2 - 10.0 * np.cos(2 * np.pi * X), axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--restart-runs", type=int, default=21)
    ap.add_argument("--budget", type=int, default=100_000)
    ap.add_argument("--dims", default="10,20")
    ap.add_argument("--functions", default="sphere,ellipsoid,cigar,rosenbrock")
    ap.add_argument("--skip-restarts", action="store_true")
    args = ap.parse_args()
    try:
        import cma

        have_pycma = True
        print(f"pycma {cma.__version__}")
    except ImportError:
        have_pycma = False
        print("pycma is not installed (pip install cma, or the bench extra): skipping the pycma columns")
    print(f"Evaluations to f < {TARGET:g}: median [interquartile range] over successful runs (successes/runs), "
          f"{args.runs} runs, sigma0 = {SIGMA0}, default lambda, x0 uniform in [-1, 1]^n\n")
    cols = ["stochdyn active", "stochdyn plain"] + (["pycma default", "pycma plain"] if have_pycma else [])
    print(f"{'function':<11}{'n':>3}  " + "".join(f"{c:>27}" for c in cols)
          + "   active/pycma default (+- bootstrap SE)   active/plain (+- SE)")
    n_met = n_rows = 0
    for n in (int(v) for v in args.dims.split(",")):
        x0 = np.random.default_rng(n).uniform(-1, 1, size=(args.runs, n))
        lam = sd.CMAES().strategy(n)["lam"]
        for name in args.functions.split(","):
            max_evals = 2000 * n * (3 if name in ("ellipsoid", "rosenbrock") else 1)
            res = {"stochdyn active": stochdyn_evals(name, n, x0, True, max_evals // lam),
                   "stochdyn plain": stochdyn_evals(name, n, x0, False, max_evals // lam)}
            if have_pycma:
                res["pycma default"] = pycma_evals(name, n, x0, True, max_evals)
                res["pycma plain"] = pycma_evals(name, n, x0, False, max_evals)
            cells, meds = [], {}
            for c in cols:
                med, text, k = summary(res[c])
                meds[c] = med
                cells.append(f"{text} ({k:>3}/{args.runs})")
            r_plain, se_plain = ratio_se(res["stochdyn active"], res["stochdyn plain"])
            v_plain = verdict(r_plain, se_plain, 1.0)
            tail = f"   {'':>24}   {r_plain:5.3f} +- {se_plain:5.3f} ({v_plain})"
            ok = v_plain == "met"
            if have_pycma:
                r_py, se_py = ratio_se(res["stochdyn active"], res["pycma default"])
                v_py = verdict(r_py, se_py, 1.10)
                ok = ok and v_py == "met"
                tail = f"   {r_py:5.3f} +- {se_py:5.3f} ({v_py})   {r_plain:5.3f} +- {se_plain:5.3f} ({v_plain})"
            n_met += ok
            n_rows += 1
            print(f"{name:<11}{n:>3}  " + "".join(f"{c:>27}" for c in cells) + tail, flush=True)
    print(f"\n{n_met} of {n_rows} rows meet both targets (median evaluations: active <= 1.10 x pycma default; "
          "active <= plain)")
    if not args.skip_restarts:
        restarts_part(args, have_pycma)


if __name__ == "__main__":
    main()
