"""Benchmark: what the fault handling of user code costs (issue 13 item 2).

User functions are compiled with bounds checks and called through a wrapper that catches their
exceptions (stochdyn/_faults.py). Times, in one run, on the workloads of bench_langevin.py:

  * W1: DoubleWell(dim=2), T = 1/3, dt = 1e-3, EulerMaruyama, ``--replicas`` x ``--steps`` — the
    built-in landscape against the same formula as a user landscape compiled with bounds checks
    (the default) and without (``stochdyn._faults.BOUNDSCHECK = False`` before the definition);
  * L16: a 16-dimensional Rastrigin written as a loop, through EulerMaruyama (the columns wrapper)
    and CMA-ES (the value-only wrapper, whose inlined gradient must still be dropped), with and
    without bounds checks;
  * the definition of a user landscape (compiling its wrapper and running the gradient check).

Final states are compared bit for bit. The machine is shared: rates are best of ``--repeat``, and
single-thread rows are timed in CPU time by default (a loaded machine disturbs it less).

    python benchmarks/bench_user_code.py [--replicas 10000] [--steps 10000] [--repeat 3] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np

import stochdyn as sd
from stochdyn import _faults

T, DT = 1.0 / 3.0, 1e-3


def define(boundscheck: bool, name: str):
    """The user landscapes, compiled with or without bounds checks."""
    _faults.BOUNDSCHECK = boundscheck
    try:
        def dw(x, grad):
            q = x[0] * x[0] - 1.0
            grad[0] = 4.0 * q * x[0]
            grad[1] = x[1]
            return q * q + 0.5 * x[1] * x[1]

        def ras(x, grad, a=10.0):
            u = 0.0
            for i in range(x.shape[0]):
                u += x[i] * x[i] - a * math.cos(2.0 * math.pi * x[i]) + a
                grad[i] = 2.0 * x[i] + 2.0 * math.pi * a * math.sin(2.0 * math.pi * x[i])
            return u

        dw.__name__, ras.__name__ = f"user_dw_{name}", f"user_ras_{name}"
        return sd.landscapes.landscape(dim=2)(dw)(), sd.landscapes.landscape(ras)(dim=16)
    finally:
        _faults.BOUNDSCHECK = True


def best_of(fn, repeat: int, clock) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="clock of the single-thread rows")
    args = ap.parse_args()
    R, N = args.replicas, args.steps
    clock1 = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads available; single-thread rows in "
          f"{args.clock} time, best of {args.repeat}")

    t_def = {}
    for bc in (True, False):
        times = []
        for i in range(4):
            t0 = time.process_time()
            define(bc, f"def{int(bc)}{i}")
            times.append(time.process_time() - t0)
        t_def[bc] = min(times[1:])  # the first one also loads shared code
    lands = {"bounds-checked": define(True, "bc"), "unchecked": define(False, "nobc")}
    builtin = sd.landscapes.DoubleWell(dim=2)
    em = sd.EulerMaruyama(dt=DT, temperature=T)

    def w1(land):
        return lambda: sd.simulate(em, land, x0=[-1.0, 0.0], n_replicas=R, n_steps=N, record_every=N, rng=0,
                                   progress=False).x.values

    def l16(land):
        return lambda: sd.simulate(sd.EulerMaruyama(dt=1e-4, temperature=1.0), land, n_replicas=R // 5,
                                   n_steps=N // 5, record_every=N // 5, rng=0, progress=False).x.values

    def cma(land):
        return lambda: sd.simulate(sd.CMAES(sigma0=0.5, population_size=16), land, x0=np.ones(16),
                                   n_replicas=max(1, R // 50), n_steps=max(1, N // 50), record_every=max(1, N // 50),
                                   rng=0, progress=False).population_mean.values

    rows = []
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(threads)
        clock = clock1 if threads == 1 else time.perf_counter
        pairs = [("W1 user DoubleWell: checked / unchecked", w1(lands["bounds-checked"][0]), w1(lands["unchecked"][0]), R * N),
                 ("W1 user DoubleWell (checked) / built-in", w1(lands["bounds-checked"][0]), w1(builtin), R * N),
                 ("L16 EulerMaruyama: checked / unchecked", l16(lands["bounds-checked"][1]), l16(lands["unchecked"][1]),
                  (R // 5) * (N // 5)),
                 ("L16 CMA-ES: checked / unchecked", cma(lands["bounds-checked"][1]), cma(lands["unchecked"][1]),
                  16 * max(1, R // 50) * max(1, N // 50))]
        for label, fa, fb, work in pairs:
            fa(), fb()  # compile or load
            ta = tb = math.inf
            for _ in range(args.repeat):  # interleaved, so both see the same machine state
                t, out_a = best_of(fa, 1, clock)
                ta = min(ta, t)
                t, out_b = best_of(fb, 1, clock)
                tb = min(tb, t)
            rows.append((threads, label, work / ta, work / tb, np.array_equal(out_a, out_b)))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print("\nrates (evaluations or replica-steps per second), interleaved, best of each; results bit-identical?")
    for threads, label, a, b, same in rows:
        print(f"  {threads}t  {label:<42} {a:10.3g} / {b:10.3g} = {a / b:5.3f}   identical: {same}")
    print(f"\ndefinition of a user landscape (compile + gradient check, CPU): bounds-checked {t_def[True]:.3f} s, "
          f"unchecked {t_def[False]:.3f} s")


if __name__ == "__main__":
    main()
