"""Adam's effective step against the batch size: the square-root rule and where it breaks.

Model: per-example gradients that do not depend on the parameters (a linear loss l_i = u_i . theta), so every
step of Adam sees i.i.d. mini-batch gradients of known law: in coordinate c, u_ic = G_c +- sigma_c with equal
probability (mean G_c, variance sigma_c^2, no skew). Adam (bias-corrected, beta1 = 0.9, beta2 = 0.999) runs
``burn_in`` steps, then its effective step multiplier E[m_hat / (sqrt(v_hat) + eps)] is the average update over
``average_steps`` steps divided by lr, per replica (replicas are independent: their spread gives the standard
error). Theory: ``sd.theory.adam_expected_step`` — G / sqrt(G^2 + sigma^2/B), the beta2 -> 1 limit in which v_hat
concentrates at E[g^2] = G^2 + sigma^2/B; its noise-dominated asymptote is G sqrt(B) / sigma.
"""

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th


@sd.problems.per_sample_loss(dim=2)
def linear(theta, row, grad):
    """l = u . theta with u the data row: the gradient u is the same at every theta."""
    grad[0] = row[0]
    grad[1] = row[1]
    return row[0] * theta[0] + row[1] * theta[1]


def run(ctx):
    p = ctx.params
    G, S = np.asarray(p["grad_mean"], float), np.asarray(p["grad_std"], float)
    signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)
    prob = linear(np.tile(G + signs * S, (p["copies"], 1)))
    T0, T1 = p["burn_in"], p["average_steps"]
    n = T0 + T1
    sims, recs = {}, []
    for j, B in enumerate(p["batch_sizes"]):
        integ = sd.Adam(lr=p["lr"], beta1=p["beta1"], beta2=p["beta2"], batch_size=B, record_extra=())
        # records at steps 0, T0 and T0 + T1 (n_steps must be a multiple of record_every)
        ds = sd.simulate(integ, prob, x0=np.zeros(2), n_replicas=p["replicas"], n_steps=n, record_every=np.gcd(T0, n),
                         rng=ctx.rng(j))
        x = ds.x.sel(time=[float(T0), float(n)]).values  # (replica, 2, dim)
        step = (x[:, 0] - x[:, 1]) / (p["lr"] * T1)  # mean of m_hat / (sqrt(v_hat) + eps) over the window
        sims[B] = (step.mean(axis=0), step.std(axis=0, ddof=1) / np.sqrt(step.shape[0]))
        exact = -th.adam_expected_step(G, S**2, B, lr=1.0, eps=1e-8)
        for c in range(2):
            recs.append((f"effective step, coordinate {c} (G/sigma = {G[c] / S[c]:g}), B = {B}", sims[B][0][c],
                         sims[B][1][c], exact[c]))
    name = ctx.figure(_figure(G, S, sims, p), "adam")
    for r in recs:
        ctx.record(*r, figure=name)


def _figure(G, S, sims, p):
    sd.plot.use_style("paper")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=sd.plot.figsize(2, 0.42))
    Bs = np.array(sorted(sims))
    fine = np.unique(np.geomspace(1, Bs.max() * 1.5, 200).astype(int))
    for c in range(2):
        col = sd.plot.PALETTE[c]
        r = G[c] / S[c]
        exact = [-th.adam_expected_step(G[c], S[c] ** 2, int(b), lr=1.0) for b in fine]
        ax1.plot(fine, exact, "-", color=col, lw=1.2, label=rf"$G/\sigma$ = {r:g}: exact ($\beta_2\to1$)")
        ax1.plot(fine, r * np.sqrt(fine), "--", color=col, lw=0.9, label=rf"$G/\sigma$ = {r:g}: $\sqrt{{B}}\,G/\sigma$")
        m = np.array([sims[B][0][c] for B in Bs])
        e = np.array([sims[B][1][c] for B in Bs])
        ax1.errorbar(Bs, m, yerr=2 * e, fmt="o", ms=3.5, color=col, mec="k", mew=0.4)
        x = Bs * r * r
        ax2.errorbar(x, m / (r * np.sqrt(Bs)), yerr=2 * e / (r * np.sqrt(Bs)), fmt="os"[c], ms=3.5, color=col,
                     mec="k", mew=0.4, label=rf"simulation, $G/\sigma$ = {r:g} (± 2 SE)")
    ax1.axhline(1.0, color="k", ls=":", lw=0.8, label="sign limit (signal-dominated)")
    ax1.plot([], [], "ko", ms=3.5, label="Adam simulation (± 2 SE)")
    ax1.set(xscale="log", yscale="log", xlabel="batch size B [count]",
            ylabel=r"effective step $\mathbb{E}[\hat m/\sqrt{\hat v}]$ [1]", ylim=(0.05, 3),
            title=rf"Adam, $\beta_1$ = {p['beta1']:g}, $\beta_2$ = {p['beta2']:g}")
    ax1.legend(fontsize=5.8, loc="lower right")
    u = np.geomspace(1e-3, 1e3, 200)
    ax2.plot(u, 1 / np.sqrt(1 + u), "k-", lw=1.2, label=r"exact: $1/\sqrt{1 + BG^2/\sigma^2}$")
    ax2.axhline(1.0, color="k", ls="--", lw=0.9, label="square-root rule")
    ax2.set(xscale="log", xlabel=r"signal-to-noise ratio $B\,G^2/\sigma^2$ [1]",
            ylabel=r"effective step / ($\sqrt{B}\,G/\sigma$) [1]", ylim=(0, 1.15),
            title="where the square-root rule breaks")
    ax2.legend(fontsize=6, loc="lower left")
    return fig
