"""Benchmark: overdamped Langevin through the public API against hand-written kernels and NumPy (issue 11).

W1: DoubleWell(dim=2), T = 1/3, dt = 1e-3, 10^4 replicas x 10^4 steps. Times, in one run:
  * stochdyn.simulate (EulerMaruyama) with 1 and 2 threads, recording only the final state and,
    separately, every 100th step;
  * a hand-written single-purpose Numba kernel (2-D state in registers, the same xoroshiro128++
    streams and ziggurat normals, one replica at a time), whose final states must be bit-identical
    to stochdyn's;
  * plain NumPy vectorised over replicas (numpy.random.Generator normals), one core;
  * H100: a 100-dimensional Harmonic landscape (1000 replicas), stochdyn vs NumPy;
  * normals per second: the scalar ziggurat (one replica after the other) and the same ziggurat
    drawn in SIMD lanes across replicas (stochdyn.random._core.normal_lanes, what the kernels use);
  * compilation: the first call in a fresh process with an empty kernel cache, and in a second
    process that loads the cache (see benchmarks/bench_compile.py for every family).
Prints rates and the target lines of issue 11 (met / not met). The machine is shared: rates are
best of ``--repeat``, and single-thread rows can be timed in CPU time (``--clock cpu``), which a
loaded machine disturbs less; 2-thread rows are always wall-clock.

    python benchmarks/bench_langevin.py [--replicas 10000] [--steps 10000] [--repeat 3] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numba
import numpy as np
from numba import njit, prange

import stochdyn as sd
from stochdyn.random._core import normal, normal_lanes

T, DT = 1.0 / 3.0, 1e-3


@njit(parallel=True, cache=True)
def hand_kernel(x, rng, dt, sigma, n_steps):
    """Single-purpose Euler-Maruyama for U = (x0^2 - 1)^2 + x1^2/2, state kept in registers."""
    for r in prange(x.shape[0]):
        x0 = x[r, 0]
        x1 = x[r, 1]
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for _ in range(n_steps):
            q = x0 * x0 - 1.0
            g0 = 4.0 * q * x0
            w0, s0, s1 = normal(s0, s1)
            x0 = x0 - dt * g0 + sigma * w0
            w1, s0, s1 = normal(s0, s1)
            x1 = x1 - dt * x1 + sigma * w1
        x[r, 0] = x0
        x[r, 1] = x1
        rng[r, 0] = s0
        rng[r, 1] = s1


@njit(cache=True)
def scalar_normals(rng, out):
    """The scalar ziggurat, replica after replica: ``out[r, :]`` from replica r's stream."""
    for r in range(out.shape[0]):
        s0 = rng[r, 0]
        s1 = rng[r, 1]
        for j in range(out.shape[1]):
            out[r, j], s0, s1 = normal(s0, s1)
        rng[r, 0] = s0
        rng[r, 1] = s1


@njit(cache=True)
def lane_normals(S0, S1, out, scratch, live):
    """The lanes ziggurat as the kernels use it: blocks of 128 replicas in the SIMD lanes, each draw
    written where the kernels want it, ``out[j, r]`` = replica r's j-th normal."""
    m, R = out.shape
    for r0 in range(0, R, 128):
        n = min(128, R - r0)
        for j in range(m):
            normal_lanes(S0[r0:], S1[r0:], out[j, r0:], scratch, live, n)


def numpy_em(R: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """Euler-Maruyama on W1 vectorised over replicas in NumPy."""
    gen = np.random.default_rng(seed)
    x = np.zeros((R, 2))
    x[:, 0] = -1.0
    sigma = math.sqrt(2.0 * T * DT)
    z = np.empty((R, 2))
    g = np.empty((R, 2))
    for _ in range(n_steps):
        x0 = x[:, 0]
        np.multiply(4.0 * (x0 * x0 - 1.0), x0, out=g[:, 0])
        g[:, 1] = x[:, 1]
        gen.standard_normal(out=z)
        x -= DT * g
        x += sigma * z
    return x


def numpy_harmonic(k: np.ndarray, R: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """Euler-Maruyama on U = sum_i k_i x_i^2 / 2 vectorised over replicas in NumPy."""
    gen = np.random.default_rng(seed)
    x = np.zeros((R, k.size))
    sigma = math.sqrt(2.0 * T * DT)
    z = np.empty_like(x)
    for _ in range(n_steps):
        gen.standard_normal(out=z)
        x -= DT * (k * x)
        x += sigma * z
    return x


def best_of(fn, repeat: int, clock=time.perf_counter) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


COMPILE_SCRIPT = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import stochdyn as sd
    t1 = time.perf_counter()
    sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=1/3), sd.landscapes.DoubleWell(dim=2), x0=[-1.0, 0.0],
                n_replicas=8, n_steps=10, rng=0)
    t2 = time.perf_counter()
    print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
    """
)


def compile_times() -> tuple[tuple[float, float], tuple[float, float]]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True, check=True)
            imp, first = (float(v) for v in out.stdout.split())
            runs.append((imp, first))
    return runs[0], runs[1]


def target(label: str, value: float, goal: float, unit: str = "x") -> None:
    print(f"  {label:<52} {value:7.2f}{unit}  (target >= {goal:g}{unit})  {'met' if value >= goal else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="clock for the single-thread rows")
    args = ap.parse_args()
    R, N = args.replicas, args.steps
    work = R * N
    clock1 = time.process_time if args.clock == "cpu" else time.perf_counter
    land = sd.landscapes.DoubleWell(dim=2)
    integ = sd.EulerMaruyama(dt=DT, temperature=T)
    max_threads = numba.config.NUMBA_NUM_THREADS
    print(f"W1: DoubleWell(dim=2), T=1/3, dt=1e-3: {R} replicas x {N} steps; numba {numba.__version__}, "
          f"up to {max_threads} threads, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"single-thread rows in {args.clock} time")

    (imp0, first0), (imp1, first1) = compile_times()
    print(f"first call, empty kernel cache: import {imp0:.2f} s + first simulate {first0:.2f} s (compilation)")
    print(f"later process, cache loaded:    import {imp1:.2f} s + first simulate {first1:.2f} s")

    def run_sd(record_every: int):
        return sd.simulate(integ, land, x0=[-1.0, 0.0], n_replicas=R, n_steps=N, record_every=record_every, rng=0,
                           progress=False)

    rates: dict[str, float] = {}
    finals = {}
    rng0 = sd.random.stream_key(0).streams(np.arange(R))
    x_start = np.tile([-1.0, 0.0], (R, 1))

    def run_hand():
        xx = x_start.copy()
        hand_kernel(xx, rng0.copy(), DT, math.sqrt(2 * T * DT), N)
        return xx

    thread_counts = sorted({1, min(2, max_threads)})
    for threads in thread_counts:
        numba.set_num_threads(threads)
        clock = clock1 if threads == 1 else time.perf_counter
        run_sd(N)  # warm up
        hand_kernel(x_start.copy(), rng0.copy(), DT, math.sqrt(2 * T * DT), 1)
        sd_t = hand_t = math.inf
        for _ in range(args.repeat):  # interleaved, so both see the same machine state
            sd_t = min(sd_t, best_of(lambda: run_sd(N), 1, clock))
            hand_t = min(hand_t, best_of(run_hand, 1, clock))
        rates[f"stochdyn final-only {threads}t"] = work / sd_t
        rates[f"hand-written numba {threads}t"] = work / hand_t
        rates[f"stochdyn every-100 {threads}t"] = work / best_of(lambda: run_sd(100), args.repeat, clock)
        finals[threads] = run_sd(N).x.isel(time=-1).values
        identical = np.array_equal(run_hand(), finals[threads])
        print(f"  {threads} thread(s): hand-written kernel final states bit-identical to stochdyn: {identical}")
    numba.set_num_threads(max_threads)
    n_np = max(100, N // 10)
    rates["numpy 1 core"] = R * n_np / best_of(lambda: numpy_em(R, n_np), max(1, args.repeat - 1), clock1)
    same_threads = np.array_equal(finals[1], finals[max(finals)])
    print(f"  stochdyn final states identical for 1 and {max(finals)} threads: {same_threads}")

    # H100: a 100-dimensional harmonic well
    k = np.linspace(1.0, 10.0, 100)
    h100 = sd.landscapes.Harmonic(stiffness=k)
    Rh, Nh = 1000, max(100, N // 10)

    def run_h100():
        return sd.simulate(integ, h100, n_replicas=Rh, n_steps=Nh, record_every=Nh, rng=0, progress=False)

    run_h100()
    t2 = max(thread_counts)
    numba.set_num_threads(1)
    rates["H100 stochdyn 1t"] = Rh * Nh / best_of(run_h100, args.repeat, clock1)
    numba.set_num_threads(t2)
    rates["H100 stochdyn"] = Rh * Nh / best_of(run_h100, args.repeat)
    numba.set_num_threads(max_threads)
    n_hnp = max(20, Nh // 5)
    rates["H100 numpy 1 core"] = Rh * n_hnp / best_of(lambda: numpy_harmonic(k, Rh, n_hnp), max(1, args.repeat - 1),
                                                        clock1)

    # normals per second, one thread
    Rn, Mn = 4096, 1000
    state = sd.random.stream_key(1).streams(np.arange(Rn))
    a = np.empty((Rn, Mn))
    b = np.empty((Mn, Rn))
    scalar_normals(state.copy(), a[:, :1])
    S0, S1 = state[:, 0].copy(), state[:, 1].copy()
    scratch, live = np.empty(Rn, dtype=np.uint64), np.ones(Rn, dtype=np.bool_)
    lane_normals(S0.copy(), S1.copy(), b[:1], scratch, live)
    rates["normals scalar ziggurat"] = Rn * Mn / best_of(lambda: scalar_normals(state.copy(), a), args.repeat, clock1)
    rates["normals in SIMD lanes"] = Rn * Mn / best_of(lambda: lane_normals(S0.copy(), S1.copy(), b, scratch, live),
                                                       args.repeat, clock1)
    print(f"  lanes normals identical to the scalar ziggurat: {np.array_equal(a, b.T)}")

    print("\nrates (replica-steps per second; normals per second)")
    for name, v in rates.items():
        print(f"  {name:<30} {v:10.3g}")
    print("\ntargets (issue 11; issue 10 for compilation)")
    for threads in thread_counts:
        target(f"W1 stochdyn / hand-written kernel, {threads} thread(s)",
               rates[f"stochdyn final-only {threads}t"] / rates[f"hand-written numba {threads}t"], 0.9)
    target(f"W1 stochdyn {t2} threads / NumPy", rates[f"stochdyn final-only {t2}t"] / rates["numpy 1 core"], 6.0)
    print(f"  {'(W1 stochdyn 1 thread / NumPy)':<52} {rates['stochdyn final-only 1t'] / rates['numpy 1 core']:7.2f}x")
    target(f"H100 stochdyn {t2} threads / NumPy", rates["H100 stochdyn"] / rates["H100 numpy 1 core"], 3.0)
    print(f"  {'(H100 stochdyn 1 thread / NumPy)':<52} {rates['H100 stochdyn 1t'] / rates['H100 numpy 1 core']:7.2f}x")
    target("stretch: W1 stochdyn / hand-written kernel, 1 thread",
           rates["stochdyn final-only 1t"] / rates["hand-written numba 1t"], 1.5)
    print(f"  {'W1 stochdyn ' + str(t2) + '-thread speed-up':<52} {rates[f'stochdyn final-only {t2}t'] / rates['stochdyn final-only 1t']:7.2f}x")
    print(f"  {'W1 recording every 100 steps / final only':<52} {rates[f'stochdyn every-100 {t2}t'] / rates[f'stochdyn final-only {t2}t']:7.2f}x")
    print(f"  {'normals: SIMD lanes / scalar ziggurat':<52} {rates['normals in SIMD lanes'] / rates['normals scalar ziggurat']:7.2f}x")
    print(f"  {'compilation, first call (target <= 3 s)':<52} {first0:7.2f} s  {'met' if first0 <= 3 else 'NOT MET'}")
    print(f"  {'compilation, cache load (target <= 0.5 s)':<52} {first1:7.2f} s  {'met' if first1 <= 0.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
