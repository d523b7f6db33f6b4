"""Benchmark: ensembles of mini-batch SGD and Adam runs, stochdyn vs NumPy vs PyTorch, in one run.

Workloads (issue 11, item 3), each 10^3 replicas with batches of 32 drawn with replacement from
N = 10^4 examples with 20 features:

* ``ls-sgd``: least squares (d = 20), SGD lr = 0.01 — the issue's reference problem;
* ``ls-adam``: the same problem with Adam (lr = 1e-3);
* ``logistic-sgd``: binary logistic regression (d = 20), SGD lr = 0.1;
* ``mlp-sgd``: a one-hidden-layer tanh network with 8 hidden units (d = 177), SGD lr = 0.01.

Baselines train the same replicas, vectorised over replicas, with hand-written gradients:

* NumPy: per step, draw an (R, B) index array, gather the rows (R, B, d) with ``np.take``, then
  batched ``matmul`` (the faster of the two forms tried; least squares also times ``einsum``);
* PyTorch (CPU, optional: ``pip install ".[bench]"``): ``index_select`` + ``bmm``, with 1 thread
  and with all threads (OpenMP threads spin badly on a busy machine, so both are timed); least
  squares also times the idiomatic version with autograd and ``torch.optim.SGD``.

stochdyn records the first and the last step only (like the baselines, which compute the final loss
outside the timing: for the logistic and network problems each record's full-batch loss is a pass
over all N examples per replica). Baselines run fewer steps (``--baseline-steps``) and are compared by throughput (replica-steps per
second); the ratios use the FASTEST variant of each baseline (targets: >= 5x NumPy, >= 10x
PyTorch). stochdyn runs with all threads, and again with NUMBA_NUM_THREADS=1 in a subprocess whose
records are compared bit for bit with the multi-threaded run. The machine may be shared: the load
average is printed before and after (above the core count, the numbers are contended), and a
per-core ratio from process CPU times (stochdyn with one thread against NumPy and one-thread
PyTorch) is printed beside each target line: on a busy machine it is the better estimate of the
ratio per core; on an idle one the all-thread ratio is about the thread count times it.

Usage::

    python benchmarks/bench_sgd.py                      # every workload at the issue's sizes
    python benchmarks/bench_sgd.py --quick              # 10x fewer steps
    python benchmarks/bench_sgd.py --only ls-sgd,ls-adam
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

N, P, B, R, H = 10_000, 20, 32, 1_000, 8
TARGETS = {"NumPy": 5.0, "PyTorch": 10.0}

#: name -> (problem expression, integrator expression, fraction of the steps, learning rate, Adam?)
WORKLOADS = {
    "ls-sgd": (f"P.LeastSquares.from_data(P.gaussian_regression({N}, {P}, noise=0.5, seed=0))",
               f"sd.SGD(lr=0.01, batch_size={B}, record_extra=())", 1.0, 0.01, False),
    "ls-adam": (f"P.LeastSquares.from_data(P.gaussian_regression({N}, {P}, noise=0.5, seed=0))",
                f"sd.Adam(lr=1e-3, batch_size={B}, record_extra=())", 1.0, 1e-3, True),
    "logistic-sgd": (f"P.LogisticRegression.from_data(P.imbalanced_classes({N}, {P}, fractions=(0.5, 0.5), seed=0))",
                     f"sd.SGD(lr=0.1, batch_size={B}, record_extra=())", 1.0, 0.1, False),
    "mlp-sgd": (f"P.OneHiddenLayer.from_data(P.gaussian_regression({N}, {P}, noise=0.5, seed=0), hidden={H})",
                f"sd.SGD(lr=0.01, batch_size={B}, record_extra=())", 0.25, 0.01, False),
}

SETUP = textwrap.dedent("""
    import numpy as np
    import stochdyn as sd
    P = sd.problems
    PROB = {problem}
    INTEG = {integ}
    X0 = PROB.init_params({R}, seed=1) if hasattr(PROB, "init_params") else None
""")


def _setup(name: str) -> str:
    problem, integ = WORKLOADS[name][:2]
    return SETUP.format(problem=problem, integ=integ, R=R)


def run_stochdyn(name: str, n_steps: int, record_every: int):
    ns: dict = {}
    exec(_setup(name), ns)
    sd = ns["sd"]
    run = dict(x0=ns["X0"], n_replicas=R, record_every=record_every, rng=1, progress=False)
    sd.simulate(ns["INTEG"], ns["PROB"], n_steps=1, **{**run, "record_every": 1})  # compile or load, warm up
    t0 = time.perf_counter()
    ds = sd.simulate(ns["INTEG"], ns["PROB"], n_steps=n_steps, **run)
    return time.perf_counter() - t0, ds, ns["PROB"], ns["X0"]


def one_thread_records(name: str, n_steps: int, record_every: int) -> tuple[np.ndarray, float]:
    """Records of the same run with NUMBA_NUM_THREADS=1 (a subprocess), and its process CPU time."""
    code = _setup(name) + textwrap.dedent(f"""
        import sys, time
        run = dict(x0=X0, n_replicas={R}, record_every={record_every}, rng=1, progress=False)
        sd.simulate(INTEG, PROB, n_steps=1, **{{**run, "record_every": 1}})
        c0 = time.process_time()
        ds = sd.simulate(INTEG, PROB, n_steps={n_steps}, **run)
        print(time.process_time() - c0)
        np.save(sys.argv[1], ds.x.values)
    """)
    path = f"/tmp/bench_sgd_one_thread_{os.getpid()}.npy"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, path], check=True, env=env, capture_output=True, text=True)
    out = np.load(path)
    os.remove(path)
    return out, float(proc.stdout.split()[-1])


# ---------------------------------------------------------------------------------------------------
# Baselines: one vectorised step over all replicas; ``theta`` is (R, d) in the problem's layout
# ---------------------------------------------------------------------------------------------------
def _numpy_gradient(kind: str, X, y, idx, theta, form: str):
    if kind == "mlp":
        Xb = np.take(X, idx, axis=0)  # (R, B, p)
        W = theta[:, :H * P].reshape(R, H, P)
        c, v, b = theta[:, H * P:H * P + H], theta[:, H * P + H:H * P + 2 * H], theta[:, -1]
        a = np.tanh(Xb @ W.transpose(0, 2, 1) + c[:, None, :])  # (R, B, H)
        se = ((a @ v[:, :, None])[..., 0] + b[:, None] - y[idx]) / B  # (R, B)
        delta = se[:, :, None] * v[:, None, :] * (1.0 - a * a)
        gW = delta.transpose(0, 2, 1) @ Xb  # (R, H, p)
        gv = (se[:, None, :] @ a)[:, 0, :]
        return np.concatenate([gW.reshape(R, H * P), delta.sum(axis=1), gv, se.sum(axis=1)[:, None]], axis=1)
    if form == "einsum":
        Xb = X[idx]
        res = np.einsum("rbd,rd->rb", Xb, theta) - y[idx]
        return np.einsum("rb,rbd->rd", res, Xb) / B
    Xb = np.take(X, idx, axis=0)
    z = (Xb @ theta[:, :, None])[..., 0]
    res = (1.0 / (1.0 + np.exp(-z)) if kind == "logistic" else z) - y[idx]
    return (res[:, None, :] @ Xb)[:, 0, :] / B


def run_numpy(name: str, prob, x0, n_steps: int, form: str) -> tuple[float, float, float]:
    kind = name.split("-")[0]
    lr, adam = WORKLOADS[name][3], WORKLOADS[name][4]
    X, y = np.ascontiguousarray(prob.rows[:, :P]), np.ascontiguousarray(prob.rows[:, P])
    rng = np.random.default_rng(1)
    theta = np.zeros((R, prob.dim)) if x0 is None else x0.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    t = [0]

    def step() -> None:
        g = _numpy_gradient(kind, X, y, rng.integers(0, N, size=(R, B)), theta, form)
        if adam:
            t[0] += 1
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            theta[:] -= lr * (m / (1 - 0.9 ** t[0])) / (np.sqrt(v / (1 - 0.999 ** t[0])) + 1e-8)
        else:
            theta[:] -= lr * g

    step()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        step()
    return time.perf_counter() - t0, time.process_time() - c0, float(np.mean(prob.value(theta)))


def run_torch(name: str, prob, x0, n_steps: int, autograd: bool, threads: int) -> tuple[float, float, float]:
    import torch

    kind = name.split("-")[0]
    lr, adam = WORKLOADS[name][3], WORKLOADS[name][4]
    torch.set_num_threads(threads)
    X = torch.from_numpy(np.ascontiguousarray(prob.rows[:, :P]))
    y = torch.from_numpy(np.ascontiguousarray(prob.rows[:, P]))
    gen = torch.Generator().manual_seed(1)
    theta = torch.from_numpy(np.zeros((R, prob.dim)) if x0 is None else x0.copy()).requires_grad_(autograd)
    opt = torch.optim.SGD([theta], lr=lr) if autograd else None
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    t = [0]

    def gradient(idx):
        Xb = X.index_select(0, idx).reshape(R, B, P)
        yb = y.index_select(0, idx).reshape(R, B)
        if kind == "mlp":
            W = theta[:, :H * P].reshape(R, H, P)
            c, v_, b = theta[:, H * P:H * P + H], theta[:, H * P + H:H * P + 2 * H], theta[:, -1]
            a = torch.tanh(torch.bmm(Xb, W.transpose(1, 2)) + c[:, None, :])
            se = (torch.bmm(a, v_[:, :, None])[..., 0] + b[:, None] - yb) / B
            delta = se[:, :, None] * v_[:, None, :] * (1.0 - a * a)
            gW = torch.bmm(delta.transpose(1, 2), Xb)
            gv = torch.bmm(se[:, None, :], a)[:, 0, :]
            return torch.cat([gW.reshape(R, H * P), delta.sum(dim=1), gv, se.sum(dim=1)[:, None]], dim=1)
        z = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2)
        res = (torch.sigmoid(z) if kind == "logistic" else z) - yb
        return torch.bmm(res.unsqueeze(1), Xb).squeeze(1) / B

    def step() -> None:
        idx = torch.randint(0, N, (R * B,), generator=gen)
        if autograd:  # least squares only
            opt.zero_grad(set_to_none=True)
            Xb = X.index_select(0, idx).reshape(R, B, P)
            res = torch.bmm(Xb, theta.unsqueeze(2)).squeeze(2) - y.index_select(0, idx).reshape(R, B)
            (0.5 * (res * res).mean(dim=1)).sum().backward()  # summed over replicas: each gets its own gradient
            opt.step()
            return
        with torch.no_grad():
            g = gradient(idx)
            if adam:
                t[0] += 1
                m.mul_(0.9).add_(0.1 * g)
                v.mul_(0.999).add_(0.001 * g * g)
                theta.sub_(lr * (m / (1 - 0.9 ** t[0])) / ((v / (1 - 0.999 ** t[0])).sqrt() + 1e-8))
            else:
                theta.sub_(lr * g)

    step()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        step()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return elapsed, cpu, float(np.mean(prob.value(theta.detach().numpy())))


def bench(name: str, steps: int, bsteps: int, torch_ok: bool) -> tuple[dict[str, float], dict[str, float], bool]:
    """Time one workload and print its table. Returns {group: ratio} by wall-clock throughput (all threads),
    {group: ratio} per core (process CPU time of the one-thread runs: stochdyn with 1 thread against
    NumPy and 1-thread PyTorch) and whether the 1- and n-thread records agree."""
    import numba

    frac = WORKLOADS[name][2]
    steps, bsteps = max(10, int(steps * frac)), max(10, int(bsteps * frac))
    every = steps  # records: first and last step (a record's full-batch loss is a pass over the data)
    t_sd, ds, prob, x0 = run_stochdyn(name, steps, every)
    tp_sd = R * steps / t_sd
    one, cpu_one = one_thread_records(name, steps, every)
    cpu_sd = R * steps / cpu_one  # replica-steps per CPU second, one thread
    rows = [(f"stochdyn ({numba.get_num_threads()} threads)", steps, t_sd, tp_sd, float("nan"),
             float(ds.energy.isel(time=-1).mean()), None),
            ("stochdyn (1 thread, CPU time)", steps, cpu_one, cpu_sd, cpu_sd, float("nan"), None)]
    same = np.array_equal(one, ds.x.values)
    for form in ("matmul", "einsum") if name == "ls-sgd" else ("matmul",):
        t_np, c_np, loss_np = run_numpy(name, prob, x0, bsteps, form)
        label = "take + batched matmul" if form == "matmul" else "fancy indexing + einsum"
        rows.append((f"NumPy, {label}", bsteps, t_np, R * bsteps / t_np, R * bsteps / c_np, loss_np, "NumPy"))
    if torch_ok:
        for autograd in (False, True) if name == "ls-sgd" else (False,):
            for threads in sorted({1, os.cpu_count() or 1}):
                t_t, c_t, loss_t = run_torch(name, prob, x0, bsteps, autograd, threads)
                label = "autograd + optim.SGD" if autograd else "hand-written gradient"
                rows.append((f"PyTorch, {label} ({threads} thr.)", bsteps, t_t, R * bsteps / t_t,
                             R * bsteps / c_t if threads == 1 else float("nan"), loss_t, "PyTorch"))
    print(f"\n[{name}] {WORKLOADS[name][1]} on {WORKLOADS[name][0].split('(')[0]}, d = {prob.dim}")
    print(f"{'implementation':<50}{'steps':>7}{'seconds':>9}{'replica-steps/s':>17}{'stochdyn x':>12}"
          f"{'per CPU s':>11}{'loss':>10}")
    for label, n, t, tp, tpc, loss, _ in rows:
        print(f"{label:<50}{n:>7}{t:>9.2f}{tp:>17.3g}{tp_sd / tp:>12.1f}{tpc:>11.3g}{loss:>10.4f}")
    ratios, per_core = {}, {}
    for group, target in TARGETS.items():
        members = [r for r in rows if r[6] == group]
        if members:
            ratios[group] = tp_sd / max(r[3] for r in members)
            per_core[group] = cpu_sd / max(r[4] for r in members if r[4] == r[4])
            print(f"[{name}] stochdyn vs the fastest {group} variant: {ratios[group]:.1f}x (target >= {target:g}x: "
                  f"{'met' if ratios[group] >= target else 'NOT met'}); per core (CPU time, 1 thread each): "
                  f"{per_core[group]:.1f}x")
    print(f"[{name}] bit-identical records with 1 and {numba.get_num_threads()} threads ({steps} steps): {same}")
    return ratios, per_core, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--baseline-steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="10x fewer steps everywhere")
    ap.add_argument("--only", default="", help=f"comma-separated workloads (default: all of {', '.join(WORKLOADS)})")
    args = ap.parse_args()
    steps, bsteps = args.steps, args.baseline_steps
    if args.quick:
        steps, bsteps = steps // 10, max(50, bsteps // 10)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    import numba

    try:
        import torch  # noqa: F401

        torch_ok = True
    except ImportError:
        torch_ok = False
        print("PyTorch is not installed (pip install '.[bench]'): skipping the PyTorch baselines")
    print(f"{R} replicas, batches of {B} with replacement from N={N} examples with {P} features")
    print(f"cores {os.cpu_count()}, numba threads {numba.get_num_threads()}, load average before {os.getloadavg()[0]:.2f}")
    summary = {name: bench(name, steps, bsteps, torch_ok) for name in names}
    print("\nsummary (stochdyn throughput / fastest baseline; targets >= 5x NumPy, >= 10x PyTorch; "
          "in brackets: per core, CPU time)")
    for name, (ratios, per_core, same) in summary.items():
        parts = [f"{g} {r:.1f}x ({'met' if r >= TARGETS[g] else 'NOT met'}) [{per_core[g]:.1f}x]" for g, r in ratios.items()]
        print(f"  {name:<14} {', '.join(parts)}; 1 vs n threads bit-identical: {same}")
    print(f"load average after {os.getloadavg()[0]:.2f} (above the core count, the numbers are contended)")
    if not all(same for *_, same in summary.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
