"""Benchmark: an ensemble of mini-batch SGD runs on least squares, stochdyn vs NumPy vs PyTorch, in one run.

Problem (issue 3): least squares with N = 10^4 examples, d = 20, batch 32 drawn with replacement,
10^3 replicas x 10^4 steps, lr = 0.01. Baselines train the same replicas, vectorised over replicas:

* NumPy: per step, draw a (R, B) index array, gather the rows (R, B, d), residuals and gradients,
  update — with ``np.take`` + batched ``matmul`` (the faster of the two forms tried) and with
  ``einsum``;
* PyTorch (CPU, optional: ``pip install torch``): ``index_select`` + ``bmm`` with a hand-written
  gradient, and the idiomatic version with autograd and ``torch.optim.SGD``; each with 1 thread and
  with all threads (OpenMP threads spin badly on a busy machine, so both are timed).

Baselines run fewer steps (``--baseline-steps``) and are compared by throughput (replica-steps per
second); the ratios use the FASTEST variant of each baseline. stochdyn runs with all threads, and
with NUMBA_NUM_THREADS=1 in a subprocess whose records are compared bit for bit with the
multi-threaded run. The machine may be shared: the load average is printed before and after.

Usage::

    python benchmarks/bench_sgd.py              # the issue's sizes
    python benchmarks/bench_sgd.py --quick      # 10x fewer steps
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

N, D, B, R, LR = 10_000, 20, 32, 1_000, 0.01

SETUP = textwrap.dedent(f"""
    import numpy as np
    import stochdyn as sd
    PROB = sd.problems.LeastSquares.from_data(sd.problems.gaussian_regression({N}, {D}, noise=0.5, seed=0))
    INTEG = sd.SGD(lr={LR}, batch_size={B}, record_extra=())
""")


def run_stochdyn(n_steps: int, record_every: int):
    ns: dict = {}
    exec(SETUP, ns)
    sd = ns["sd"]
    sd.simulate(ns["INTEG"], ns["PROB"], n_replicas=R, n_steps=record_every, record_every=record_every, rng=1)  # warm
    t0 = time.perf_counter()
    ds = sd.simulate(ns["INTEG"], ns["PROB"], n_replicas=R, n_steps=n_steps, record_every=record_every, rng=1)
    return time.perf_counter() - t0, ds, ns["PROB"]


def run_numpy(prob, n_steps: int, form: str) -> tuple[float, float]:
    X, y = np.ascontiguousarray(prob.rows[:, :D]), np.ascontiguousarray(prob.rows[:, D])
    rng = np.random.default_rng(1)
    theta = np.zeros((R, D))

    def step() -> None:
        idx = rng.integers(0, N, size=(R, B))
        if form == "matmul":
            Xb = np.take(X, idx, axis=0)
            res = (Xb @ theta[:, :, None])[..., 0] - y[idx]
            theta[:] -= LR * (res[:, None, :] @ Xb)[:, 0, :] / B
        else:
            Xb = X[idx]
            res = np.einsum("rbd,rd->rb", Xb, theta) - y[idx]
            theta[:] -= LR * np.einsum("rb,rbd->rd", res, Xb) / B

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    return time.perf_counter() - t0, float(np.mean(prob.value(theta)))


def run_torch(prob, n_steps: int, autograd: bool, threads: int) -> tuple[float, float]:
    import torch

    torch.set_num_threads(threads)
    X = torch.from_numpy(np.ascontiguousarray(prob.rows[:, :D]))
    y = torch.from_numpy(np.ascontiguousarray(prob.rows[:, D]))
    gen = torch.Generator().manual_seed(1)
    theta = torch.zeros((R, D), dtype=torch.float64, requires_grad=autograd)
    opt = torch.optim.SGD([theta], lr=LR) if autograd else None

    def step() -> None:
        idx = torch.randint(0, N, (R * B,), generator=gen)
        Xb = X.index_select(0, idx).reshape(R, B, D)
        yb = y.index_select(0, idx).reshape(R, B)
        if autograd:
            opt.zero_grad(set_to_none=True)
            res = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2) - yb
            (0.5 * (res * res).mean(dim=1)).sum().backward()  # summed over replicas: each gets its own gradient
            opt.step()
        else:
            with torch.no_grad():
                res = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2) - yb
                theta.sub_(LR * torch.bmm(res.unsqueeze(1), Xb).squeeze(1) / B)

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    elapsed = time.perf_counter() - t0
    return elapsed, float(np.mean(prob.value(theta.detach().numpy())))


def one_thread_records(n_steps: int, record_every: int) -> tuple[np.ndarray, float]:
    """Records of the same run with NUMBA_NUM_THREADS=1 (a subprocess), and its time."""
    code = SETUP + textwrap.dedent(f"""
        import sys, time
        sd.simulate(INTEG, PROB, n_replicas={R}, n_steps={record_every}, record_every={record_every}, rng=1)
        t0 = time.perf_counter()
        ds = sd.simulate(INTEG, PROB, n_replicas={R}, n_steps={n_steps}, record_every={record_every}, rng=1)
        np.save(sys.argv[1], ds.x.values)
        print(time.perf_counter() - t0)
    """)
    path = "/tmp/bench_sgd_one_thread.npy"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, path], check=True, env=env, capture_output=True, text=True)
    return np.load(path), float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--baseline-steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="10x fewer steps everywhere")
    args = ap.parse_args()
    steps, bsteps = args.steps, args.baseline_steps
    if args.quick:
        steps, bsteps = steps // 10, max(50, bsteps // 10)
    every = steps // 10

    import numba

    print(f"least squares N={N}, d={D}, batch {B} with replacement, {R} replicas, lr={LR}")
    print(f"cores {os.cpu_count()}, numba threads {numba.get_num_threads()}, load average before {os.getloadavg()[0]:.2f}")
    rows = []  # (name, steps, seconds, throughput, final mean loss, baseline group or None)
    t_sd, ds, prob = run_stochdyn(steps, every)
    tp_sd = R * steps / t_sd
    rows.append((f"stochdyn SGD ({numba.get_num_threads()} threads)", steps, t_sd, tp_sd,
                 float(ds.energy.isel(time=-1).mean()), None))
    one, t_one = one_thread_records(steps, every)
    rows.append(("stochdyn SGD (1 thread)", steps, t_one, R * steps / t_one, float(np.nan), None))
    same = np.array_equal(one, ds.x.values)
    for form in ("matmul", "einsum"):
        t_np, loss_np = run_numpy(prob, bsteps, form)
        rows.append((f"NumPy, {'take + batched matmul' if form == 'matmul' else 'fancy indexing + einsum'}", bsteps,
                     t_np, R * bsteps / t_np, loss_np, "NumPy"))
    try:
        import torch

        for autograd in (False, True):
            for threads in sorted({1, os.cpu_count() or 1}):
                t_t, loss_t = run_torch(prob, bsteps, autograd, threads)
                name = f"PyTorch, {'autograd + optim.SGD' if autograd else 'hand-written gradient'} ({threads} thr.)"
                rows.append((name, bsteps, t_t, R * bsteps / t_t, loss_t, "PyTorch"))
    except ImportError:
        print("PyTorch is not installed (pip install torch): skipping the PyTorch baseline")
    print(f"\n{'implementation':<50}{'steps':>7}{'seconds':>9}{'replica-steps/s':>17}{'stochdyn x':>12}{'loss':>9}")
    for name, n, t, tp, loss, _ in rows:
        print(f"{name:<50}{n:>7}{t:>9.2f}{tp:>17.3g}{tp_sd / tp:>12.1f}{loss:>9.4f}")
    print(f"(loss: mean full-batch loss of the replicas after the run; the minimum is {float(prob.value(prob.minimizer())):.4f})")
    for group, target in (("NumPy", 5.0), ("PyTorch", 10.0)):
        best = max((r for r in rows if r[5] == group), key=lambda r: r[3], default=None)
        if best is not None:
            ratio = tp_sd / best[3]
            print(f"stochdyn vs the fastest {group} variant: {ratio:.1f}x (target >= {target:g}x: "
                  f"{'met' if ratio >= target else 'NOT met'})")
    print(f"bit-identical records with 1 and {numba.get_num_threads()} threads ({steps} steps): {same}")
    print(f"load average after {os.getloadavg()[0]:.2f} (above the core count, the numbers are contended)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
