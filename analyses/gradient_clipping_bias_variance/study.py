"""Bias, variance and MSE of the norm-clipped gradient estimate, and the MSE-optimal threshold.

Each estimate is one SGD step with ``clip_norm=C`` and ``lr = 1`` from a fixed point x0, so the clipped
gradient is ``x0 - x1`` (the kernel's own clipping) and an ensemble of replicas is an ensemble of independent
estimates. Every threshold uses the same seed: the clipping consumes no random numbers, so the estimates at
different C come from the same draws (common random numbers) and differences of MSEs are paired.

* The chapter's model (problem 3150556): a non-negative scalar estimate with exponentially distributed
  magnitude, target its mean. Realised as 1-D least squares with x_i = 1 and y_i = -a_i, a_i ~ Exp(1)
  (N examples): at theta = 0 the per-example gradient is a_i and a batch of one draws it uniformly. Exact:
  ``sd.theory.finite_sum_clipping_error`` (sums over the N examples); the continuous exponential law
  ``sd.theory.exponential_clipping_mse`` is drawn beside it.
* Gaussian noise: on ``Harmonic(stiffness=1, dim=d)`` at x0 = |G| e_1 with ``gradient_noise = s^2``, the estimate
  is G + s xi, xi ~ N(0, I_d). Exact: ``sd.theory.gaussian_clipping_error`` (quadrature).
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy import optimize

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


def _estimates(integ, target, x0, R, seed):
    """Clipped one-step gradient estimates (R, d) and the norms before clipping (R,)."""
    ds = sd.simulate(integ, target, x0=x0, n_replicas=R, n_steps=1, rng=seed)
    return np.asarray(x0) - ds.x.isel(time=1).values, ds.grad_norm.isel(time=1).values


def _stats(g, G, C, r):
    """Per-replica squared error, pathwise dMSE/dC sample, and the estimate (for bias and variance)."""
    err = ((g - G) ** 2).sum(axis=1)
    unit = g / np.linalg.norm(g, axis=1)[:, None]
    der = 2.0 * (C - unit @ G) * (r > C)
    return err, der


def _mean_se(x):
    """Mean over replicas; SE from batches of replicas (these are squared errors: no plug-in fourth moment)."""
    m, se = batch_standard_error(np.asarray(x))
    return float(m), float(se)


def _bias_variance(g, G):
    """Unbiased bias^2 = |mean - G|^2 - tr(S)/R and the variance tr(S), with standard errors."""
    R = g.shape[0]
    m = g.mean(axis=0)
    S = np.cov(g.T, ddof=1).reshape(g.shape[1], g.shape[1])
    b = m - G
    bias2, se_b = float(b @ b - np.trace(S) / R), float(2.0 * math.sqrt(max(b @ S @ b, 0.0) / R))
    _, se_v = batch_standard_error(g, lambda a: np.var(a, axis=0, ddof=1).sum())
    return (bias2, se_b), (float(np.trace(S)), float(se_v))


def _optimum(G, s, d):
    return optimize.minimize_scalar(lambda C: th.gaussian_clipping_error(C, G, s, d)["mse"], bounds=(1e-3 * G, 3 * G),
                                    method="bounded", options={"xatol": 1e-10}).x


def run(ctx):
    p = ctx.params
    R = p["replicas"]
    # ---- the chapter's model: exponential magnitudes ----------------------------------------------------
    a = np.random.default_rng(p["data_seed"]).exponential(1.0, size=p["n_examples"])
    prob = sd.problems.LeastSquares(np.ones((a.size, 1)), -a)
    mu = float(a.mean())
    G1 = np.array([mu])
    seed_a = ctx.rng(0)
    rec_c = {"0.5": 0.5 * mu, "1": mu, "2": 2.0 * mu}
    exp_grid = np.unique(np.concatenate([np.geomspace(0.1, 4.0, p["curve_points"]) * mu, list(rec_c.values())]))
    exp_sim = {}
    for C in exp_grid:
        g, r = _estimates(sd.SGD(lr=1.0, batch_size=1, clip_norm=float(C)), prob, [0.0], R, seed_a)
        exp_sim[C] = (g, _stats(g, G1, C, r))
    # ---- Gaussian noise in d dimensions, and in one ----------------------------------------------------
    gauss = {}
    for k, (d, s) in enumerate(((p["dim"], p["noise_std"]), (p["dim_scalar"], p["noise_std_scalar"]))):
        Gn = p["grad_norm"]
        G = np.zeros(d)
        G[0] = Gn
        land = sd.landscapes.Harmonic(stiffness=1.0, dim=d)
        C_opt = _optimum(Gn, s, d)
        grid = np.unique(np.concatenate([np.geomspace(0.1, 3.0, p["curve_points"]) * Gn, [Gn, C_opt]]))
        sims = {}
        for C in grid:
            g, r = _estimates(sd.SGD(lr=1.0, gradient_noise=s * s, clip_norm=float(C)), land, G, R, ctx.rng(1, k))
            sims[C] = (g, _stats(g, G, C, r))
        gauss[d] = {"s": s, "G": G, "C_opt": C_opt, "grid": grid, "sims": sims}
    name = ctx.figure(_figure(p, a, mu, exp_grid, exp_sim, gauss), "mse")

    # ---- records --------------------------------------------------------------------------------------
    def exact_exp(C):
        return th.finite_sum_clipping_error(prob, [0.0], C)

    for lab, C in rec_c.items():
        ctx.record(f"exponential magnitudes: MSE at C = {lab} |G|", *_mean_se(exp_sim[C][1][0]), exact_exp(C)["mse"],
                   figure=name)
    for lab in ("0.5", "2"):
        C = rec_c[lab]
        diff = exp_sim[C][1][0] - exp_sim[mu][1][0]
        ctx.record(f"exponential magnitudes: MSE(C = {lab} |G|) - MSE(C = |G|) (paired)", *_mean_se(diff),
                   exact_exp(C)["mse"] - exact_exp(mu)["mse"], figure=name)
    (b2, se_b), (var, se_v) = _bias_variance(exp_sim[mu][0], G1)
    ctx.record("exponential magnitudes: bias^2 at C = |G|", b2, se_b, exact_exp(mu)["bias_sq"], figure=name)
    ctx.record("exponential magnitudes: variance at C = |G|", var, se_v, exact_exp(mu)["variance"], figure=name)
    for d, gd in gauss.items():
        s, G, C_opt, sims = gd["s"], gd["G"], gd["C_opt"], gd["sims"]
        Gn = float(G[0])
        tag = f"Gaussian noise, d = {d}, s = {s:g}"
        exact = {C: th.gaussian_clipping_error(C, Gn, s, d) for C in (Gn, C_opt)}
        ctx.record(f"{tag}: dMSE/dC at C = |G| (> 0: |G| is not optimal)", *_mean_se(sims[Gn][1][1]),
                   exact[Gn]["dmse"], figure=name)
        ctx.record(f"{tag}: MSE(|G|) - MSE(C* = {C_opt:.4f}) (paired)", *_mean_se(sims[Gn][1][0] - sims[C_opt][1][0]),
                   exact[Gn]["mse"] - exact[C_opt]["mse"], figure=name)
        if d == p["dim"]:
            for C, lab in ((Gn, "|G|"), (C_opt, f"C* = {C_opt:.4f}")):
                ctx.record(f"{tag}: MSE at C = {lab}", *_mean_se(sims[C][1][0]), exact[C]["mse"], figure=name)
            ctx.record(f"{tag}: dMSE/dC at C* = {C_opt:.4f}", *_mean_se(sims[C_opt][1][1]), exact[C_opt]["dmse"],
                       figure=name)
            (b2, se_b), (var, se_v) = _bias_variance(sims[C_opt][0], G)
            ctx.record(f"{tag}: bias^2 at C*", b2, se_b, exact[C_opt]["bias_sq"], figure=name)
            ctx.record(f"{tag}: variance at C*", var, se_v, exact[C_opt]["variance"], figure=name)


def _figure(p, a, mu, exp_grid, exp_sim, gauss):
    sd.plot.use_style("paper")
    fig, axes = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.52))
    pal = sd.plot.PALETTE
    prob = sd.problems.LeastSquares(np.ones((a.size, 1)), -a)
    fine = np.geomspace(0.1, 4.0, 120) * mu
    ex = [th.finite_sum_clipping_error(prob, [0.0], C) for C in fine]
    ax = axes[0]
    for key, c, lab in (("mse", pal[0], "MSE"), ("bias_sq", pal[1], "bias²"), ("variance", pal[2], "variance")):
        ax.plot(fine / mu, [e[key] for e in ex], color=c, lw=1.2, label=f"{lab} (exact, N = {a.size})")
    ax.plot(fine / mu, th.exponential_clipping_mse(fine, mu)[0], "k:", lw=1.0, label="MSE, exponential law")
    m = np.array([_mean_se(exp_sim[C][1][0]) for C in exp_grid])
    ax.errorbar(exp_grid / mu, m[:, 0], yerr=2 * m[:, 1], fmt="o", ms=3, color=pal[0], mec="k", mew=0.4,
                label="MSE, simulation ± 2 SE")
    ax.axvline(1.0, color="0.4", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="threshold C / |G| [1]", ylabel="squared error [a.u.]",
           title="exponential magnitudes: C* = |G|")
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    for ax, d in zip(axes[1:], gauss):
        gd = gauss[d]
        Gn, s, C_opt = float(gd["G"][0]), gd["s"], gd["C_opt"]
        fine = np.geomspace(0.1, 3.0, 80) * Gn
        ex = [th.gaussian_clipping_error(C, Gn, s, d) for C in fine]
        for key, c, lab in (("mse", pal[0], "MSE"), ("bias_sq", pal[1], "bias²"), ("variance", pal[2], "variance")):
            ax.plot(fine / Gn, [e[key] for e in ex], color=c, lw=1.2, label=f"{lab} (exact)")
        grid = gd["grid"]
        m = np.array([_mean_se(gd["sims"][C][1][0]) for C in grid])
        ax.errorbar(grid / Gn, m[:, 0], yerr=2 * m[:, 1], fmt="o", ms=3, color=pal[0], mec="k", mew=0.4,
                    label="MSE, simulation ± 2 SE")
        ax.axhline(d * s * s, color="0.6", lw=0.8, ls=":", label=r"no clipping: $d s^2$")
        ax.axvline(1.0, color="0.4", lw=0.8, ls="--", label="C = |G|")
        ax.axvline(C_opt / Gn, color=pal[3], lw=1.0, ls="-.", label=f"C* = {C_opt / Gn:.3f} |G|")
        ax.set(xscale="log", xlabel="threshold C / |G| [1]", ylabel="squared error [a.u.]",
               title=f"Gaussian noise, d = {d}: C* < |G|")
        ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig
