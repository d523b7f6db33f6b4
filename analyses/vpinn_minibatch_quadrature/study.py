"""Mini-batched quadrature in a variational PINN: the Ritz energy of -u'' = f on (0, 1) with a sine basis.

``sd.problems.RitzEnergy1D``: U(theta) = sum_i w_i [u'(x_i)^2 / 2 - f(x_i) u(x_i)] over Gauss-Legendre points
x_i with weights w_i; a mini-batch draws B points uniformly (with replacement) and reweights by N w_i, so the
batch energy and gradient are unbiased. Theory: ``sd.theory.minibatch_loss_variance`` and
``gradient_noise_covariance`` (the variance of sampling quadrature points), and for training the exact moments of
SGD on this quadratic (``sgd_moments``, ``sgd_stationary_covariance``: multiplicative noise, finite step); the
Galerkin solution theta* is ``problem.minimizer()``.

Memory: the chapter's point that mini-batching makes training tractable because memory grows with the batch, not
with the quadrature grid, is measured with ``tracemalloc`` on a NumPy evaluation of the batch energy and its
gradient that computes the trial functions at the sampled points only (as a network evaluates its activations):
peak bytes against the batch size B and the grid size, beside the full-quadrature evaluation. These are bounds
(no Monte Carlo error), not z-scores. Variance-type standard errors come from batches of replicas.
"""

import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


def run(ctx):
    p = ctx.params
    prob = sd.problems.RitzEnergy1D(n_basis=p["n_basis"], n_quad=p["n_quad"], forcing=p["forcing"])
    ts, H = prob.minimizer(), prob.hessian
    U_star = float(prob.value(ts))
    recs = []
    # 1. the estimators at a point half-way through training (theta = theta*/2)
    theta = 0.5 * ts
    U0 = float(prob.value(theta))
    est = {}
    for j, B in enumerate(p["estimator_batches"]):
        ds = sd.simulate(sd.SGD(lr=1.0, batch_size=B, record_extra=("batch_loss",)), prob, x0=theta,
                         n_replicas=p["estimator_replicas"], n_steps=1, rng=ctx.rng(1, j))
        L = ds.batch_loss.isel(time=1).values
        g = theta - ds.x.isel(time=1).values
        v, v_se = batch_standard_error(L, lambda a: a.var(ddof=1))
        tr, tr_se = batch_standard_error(g, lambda a: a.var(axis=0, ddof=1).sum())
        est[B] = (float(v), float(v_se), float(tr), float(tr_se))
        recs += [(f"mean batch energy, B = {B}", L.mean(), L.std(ddof=1) / np.sqrt(L.size), U0),
                 (f"Var(batch energy), B = {B}", est[B][0], est[B][1], th.minibatch_loss_variance(prob, theta, B)),
                 (f"tr Cov(batch gradient), B = {B}", *est[B][2:],
                  np.trace(th.gradient_noise_covariance(prob, theta, B)))]
        if B == p["estimator_batches"][0]:
            gU = prob.grad(theta)
            proj = g @ (gU / np.linalg.norm(gU))
            recs.append((f"mean batch gradient along grad U, B = {B}", proj.mean(), proj.std(ddof=1) / np.sqrt(proj.size),
                         np.linalg.norm(gU)))
    # 2. training from u = 0 with SGD on mini-batches of quadrature points
    runs = {}
    for j, B in enumerate(p["train_batches"]):
        ds = sd.simulate(sd.SGD(lr=p["lr"], batch_size=B, record_extra=()), prob, x0=np.zeros(prob.dim),
                         n_replicas=p["train_replicas"], n_steps=p["train_steps"], record_every=p["record_every"],
                         rng=ctx.rng(2, j))
        steps = ds.step.values
        exact = [th.sgd_moments(prob, p["lr"], B, np.zeros(prob.dim), int(n)) for n in steps]
        excess = np.array([float(prob.value(m)) - U_star + 0.5 * np.trace(H @ C) for m, C in exact])
        l2 = np.array([0.5 * (np.sum((m - ts) ** 2) + np.trace(C)) for m, C in exact])  # E |u - u*|^2_L2
        x = ds.x.isel(time=-1).values
        e = ds.energy.isel(time=-1).values - U_star
        d2 = 0.5 * np.sum((x - ts) ** 2, axis=1)  # |u_theta - u_theta*|^2 in L2(0, 1): sin(k pi x) are orthogonal
        recs += [(f"E[U] - U* after {steps[-1]} steps, B = {B}", *batch_standard_error(e), excess[-1]),
                 (f"E |u - u_Galerkin|^2_L2 after {steps[-1]} steps, B = {B}", *batch_standard_error(d2), l2[-1]),
                 (f"E theta_1 after {steps[-1]} steps, B = {B}", x[:, 0].mean(), x[:, 0].std(ddof=1) / np.sqrt(len(x)),
                  exact[-1][0][0])]
        stat = 0.5 * np.trace(H @ th.sgd_stationary_covariance(prob, p["lr"], B))
        runs[B] = (steps, ds.energy.values - U_star, excess, stat, x)
    mem = _memory(p)
    name = ctx.figure(_figure(prob, est, runs, theta, p, mem), "vpinn")
    for r in recs:
        ctx.record(*r, figure=name)
    _memory_bounds(ctx, mem, name)


def _ritz_loss_and_grad(theta, x, w):
    """Batch Ritz energy sum_i w_i (u'(x_i)^2/2 - f u(x_i)) (f = 1) and its gradient, the trial functions
    sin(k pi x) evaluated at the given points only: every array is (points,) or (points, K)."""
    k = np.arange(1, theta.size + 1) * np.pi
    arg = np.multiply.outer(x, k)
    s = np.sin(arg)
    c = np.cos(arg) * k
    u, du = s @ theta, c @ theta
    loss = float(np.sum(w * (0.5 * du * du - u)))
    return loss, c.T @ (w * du) - s.T @ w


def _peak_bytes(fn, repeats=3):
    """Peak bytes allocated (tracemalloc) while fn runs, above what was allocated before; min over repeats (the
    arrays are deterministic, Python's small-object bookkeeping is not)."""
    best = None
    for _ in range(repeats):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        best = peak if best is None else min(best, peak)
    return best


def _memory(p):
    """Peak memory of one mini-batch evaluation against (grid size, batch size), and of the full-quadrature one."""
    theta = np.full(p["n_basis"], 0.1)
    grids, batches = p["memory_grids"], p["memory_batches"]
    mini = np.zeros((len(grids), len(batches)))
    sizes = sorted(set(grids) | set(batches))
    full = np.zeros(len(sizes))
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        for i, n in enumerate(sizes):
            nodes = (np.arange(n) + 0.5) / n  # the quadrature grid (midpoint rule; memory does not depend on the rule)
            weights = np.full(n, 1.0 / n)
            full[i] = _peak_bytes(lambda: _ritz_loss_and_grad(theta, nodes, weights))
            if n not in grids:
                continue
            rng = np.random.default_rng(i)
            for j, B in enumerate(batches):
                idx = rng.integers(0, n, size=B)  # drawn before measuring: the sampler is not the evaluation
                mini[grids.index(n), j] = _peak_bytes(
                    lambda: _ritz_loss_and_grad(theta, nodes[idx], weights[idx] * (n / B)))
    finally:
        if not started:
            tracemalloc.stop()
    return dict(grids=np.array(grids), batches=np.array(batches), mini=mini, sizes=np.array(sizes), full=full)


def _memory_bounds(ctx, mem, figure):
    g, b, mini, sizes, full = mem["grids"], mem["batches"], mem["mini"], mem["sizes"], mem["full"]
    spread = (mini.max(axis=0) / mini.min(axis=0) - 1.0).max()
    ctx.bound(f"memory, mini-batch evaluation: largest relative spread of the peak over grids of {g.min()}–{g.max()} "
              f"points, at any B in {b.min()}–{b.max()} (it does not grow with the grid)", spread, 0.05, "<=",
              figure=figure)
    same = np.array([mini[-1, j] / full[list(sizes).index(B)] - 1.0 for j, B in enumerate(b)])
    ctx.bound(f"memory: a batch of B points (B = {b.min()}–{b.max()}) against the full evaluation of a B-point grid, "
              "largest relative difference (memory is set by the points evaluated at once)", np.abs(same).max(), 0.15,
              "<=", figure=figure)
    growth = (full[-1] / full[0]) / (sizes[-1] / sizes[0])
    ctx.bound(f"memory, full-quadrature evaluation: peak growth from {sizes[0]} to {sizes[-1]} points over the growth "
              f"of the grid ({sizes[-1] // sizes[0]}×; it grows with the grid)", growth, 0.5, ">=", figure=figure)


def _figure(prob, est, runs, theta, p, mem):
    from matplotlib import ticker

    sd.plot.use_style("paper")
    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(7.0, 5.4))
    xs = np.linspace(0, 1, 201)
    k = np.arange(1, prob.dim + 1) * np.pi
    basis = np.sin(np.outer(xs, k))
    B = min(runs)
    u = runs[B][4] @ basis.T
    lo, mid, hi = np.quantile(u, [0.05, 0.5, 0.95], axis=0)
    ax1.fill_between(xs, lo, hi, color=sd.plot.PALETTE[5], alpha=0.5, lw=0, label=f"SGD, B = {B}: 5–95 % of replicas")
    ax1.plot(xs, mid, color=sd.plot.PALETTE[0], lw=1, label="SGD: median")
    ax1.plot(xs, prob.solution(xs), "k--", lw=1.1, label=f"Galerkin solution ({prob.dim} modes)")
    if p["forcing"] == "constant":
        ax1.plot(xs, xs * (1 - xs) / 2, ":", color=sd.plot.PALETTE[1], lw=1.2, label="exact u = x(1-x)/2")
    ax1.set(xlabel="x [1]", ylabel="u(x) [1]", title=f"solution after {p['train_steps']} steps",
            ylim=(min(0.0, lo.min()) * 1.1, hi.max() * 1.6))
    ax1.legend(fontsize=6.5, loc="upper center")
    for n, (B, (steps, energy, excess, stat, _)) in enumerate(sorted(runs.items())):
        c = sd.plot.PALETTE[n]
        m = energy.mean(axis=0)
        se = energy.std(axis=0, ddof=1) / np.sqrt(energy.shape[0])
        ax2.errorbar(steps[1::4], m[1::4], yerr=2 * se[1::4], fmt="o", ms=2.5, color=c, mec="k", mew=0.3,
                     label=f"B = {B}: simulation (± 2 SE)")
        ax2.plot(steps, excess, "-", color=c, lw=1.1, label=f"B = {B}: exact (sgd_moments)")
        ax2.axhline(stat, color=c, ls=":", lw=0.9)
    ax2.plot([], [], "k:", lw=0.9, label="exact stationary level")
    ax2.set(yscale="log", xlabel="step [count]", ylabel=r"$\mathbb{E}\,U(\theta_t) - U(\theta^*)$ [a.u.]",
            title=f"training, lr = {p['lr']:g}")
    ax2.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax2.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax2.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax2.legend(fontsize=6.5, loc="upper right")
    Bs = np.geomspace(1, 64, 50)
    v1 = th.minibatch_loss_variance(prob, theta, 1)
    t1 = np.trace(th.gradient_noise_covariance(prob, theta, 1))
    ax3.plot(Bs, v1 / Bs, "-", color=sd.plot.PALETTE[2], lw=1.1, label="Var(batch energy): exact")
    ax3.plot(Bs, t1 / Bs, "-", color=sd.plot.PALETTE[3], lw=1.1, label="tr Cov(batch gradient): exact")
    b_ = np.array(sorted(est))
    ax3.errorbar(b_, [est[b][0] for b in b_], yerr=[2 * est[b][1] for b in b_], fmt="o", ms=3, color=sd.plot.PALETTE[2],
                 mec="k", mew=0.4, label="simulation (± 2 SE)")
    ax3.errorbar(b_, [est[b][2] for b in b_], yerr=[2 * est[b][3] for b in b_], fmt="s", ms=3,
                 color=sd.plot.PALETTE[3], mec="k", mew=0.4, label="simulation (± 2 SE)")
    ax3.set(xscale="log", yscale="log", xlabel="quadrature points per batch B [count]", ylabel="variance [a.u.]",
            title=r"estimators at $\theta=\theta^*/2$")
    ax3.legend(fontsize=6.5, loc="center left")
    # memory of one evaluation: grows with the batch, not with the grid (full quadrature: with the grid)
    for i, (n, mk) in enumerate(zip(mem["grids"], ("o", "s", "^", "D"))):
        ax4.plot(mem["batches"], mem["mini"][i] / 1024, mk, ms=3.5, mfc="none", color=sd.plot.PALETTE[i],
                 label=f"batch from a grid of {n}")
    ax4.plot(mem["sizes"], mem["full"] / 1024, "k-", lw=0.9, label="full quadrature of a grid of that size")
    ax4.set(xscale="log", yscale="log", xlabel="points evaluated at once [count]", ylabel="peak memory [KiB]",
            title="memory of one batch energy + gradient (tracemalloc)")
    ax4.legend(fontsize=6.5, loc="upper left")
    return fig
