"""Mini-batched quadrature in a variational PINN: the Ritz energy of -u'' = f on (0, 1) with a sine basis.

``sd.problems.RitzEnergy1D``: U(theta) = sum_i w_i [u'(x_i)^2 / 2 - f(x_i) u(x_i)] over Gauss-Legendre points
x_i with weights w_i; a mini-batch draws B points uniformly (with replacement) and reweights by N w_i, so the
batch energy and gradient are unbiased. Theory: ``sd.theory.minibatch_loss_variance`` and
``gradient_noise_covariance`` (the variance of sampling quadrature points), and for training the exact moments of
SGD on this quadratic (``sgd_moments``, ``sgd_stationary_covariance``: multiplicative noise, finite step); the
Galerkin solution theta* is ``problem.minimizer()``.
"""

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th


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
        v = sd.analysis.ensemble_variance(ds.batch_loss.isel(time=1))
        s = ((g - g.mean(axis=0)) ** 2).sum(axis=1)
        est[B] = (float(v.value), float(v.standard_error), s.mean(), s.std(ddof=1) / np.sqrt(s.size))
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
        recs += [(f"E[U] - U* after {steps[-1]} steps, B = {B}", e.mean(), e.std(ddof=1) / np.sqrt(e.size), excess[-1]),
                 (f"E |u - u_Galerkin|^2_L2 after {steps[-1]} steps, B = {B}", d2.mean(),
                  d2.std(ddof=1) / np.sqrt(d2.size), l2[-1]),
                 (f"E theta_1 after {steps[-1]} steps, B = {B}", x[:, 0].mean(), x[:, 0].std(ddof=1) / np.sqrt(len(x)),
                  exact[-1][0][0])]
        stat = 0.5 * np.trace(H @ th.sgd_stationary_covariance(prob, p["lr"], B))
        runs[B] = (steps, ds.energy.values - U_star, excess, stat, x)
    name = ctx.figure(_figure(prob, est, runs, theta, p), "vpinn")
    for r in recs:
        ctx.record(*r, figure=name)


def _figure(prob, est, runs, theta, p):
    from matplotlib import ticker

    sd.plot.use_style("paper")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.36))
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
    ax1.legend(fontsize=6, loc="upper center")
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
    ax2.legend(fontsize=5.5, loc="upper right")
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
    ax3.legend(fontsize=5.5, loc="center left")
    return fig
