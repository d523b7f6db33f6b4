"""Variance decomposition of the augmented mini-batch gradient: sigma_b^2/M + sigma_w^2/(MA).

Model: one-feature least squares (64 examples) with the built-in Gaussian feature-noise augmentation
(``sd.Augmentation(copies=A, noise=s)``), at a parameter value away from the optimum. Each estimator is sampled
with the SGD integrator (one step, lr = 1: theta1 = theta0 - g). Theory: ``sd.theory.augmented_variance`` with the
exact sigma_b^2, sigma_w^2 of ``sd.theory.least_squares_augmentation_moments`` (Isserlis' theorem). The components
are also estimated directly: per-example augmented gradients (a one-example problem per drawn example) split by
``sd.analysis.variance_decomposition(..., unbiased=True)`` (one-way random-effects ANOVA).
"""

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


def _one_step(integ, prob, theta, R, seed):
    ds = sd.simulate(integ, prob, x0=theta, n_replicas=R, n_steps=1, rng=seed)
    return theta - ds.x.isel(time=1, dim=0).values


def run(ctx):
    p = ctx.params
    data = sd.problems.gaussian_regression(p["n_examples"], 1, noise=p["label_noise"], seed=p["data_seed"])
    prob = sd.problems.LeastSquares.from_data(data)
    theta = np.asarray(p["theta"], dtype=float)
    s = p["aug_noise"]
    mean, sb2, sw2 = th.least_squares_augmentation_moments(prob, theta, s)
    recs, grid = [], {}
    for i, M in enumerate(p["examples"]):
        for j, A in enumerate(p["copies"]):
            integ = sd.SGD(lr=1.0, batch_size=M, augmentation=sd.Augmentation(copies=A, noise=s), record_extra=())
            g = _one_step(integ, prob, theta, p["replicas"], ctx.rng(1, i, j))
            v, se = batch_standard_error(g, lambda a: a.var(ddof=1))  # SE from batches, not the sample 4th moment
            grid[M, A] = (float(v), float(se))
            recs.append((f"Var(g), M = {M}, A = {A}", *grid[M, A], th.augmented_variance(sb2, sw2, M, A)))
            if M == max(p["examples"]) and A == max(p["copies"]):
                # unbiased for the augmented objective U + (s^2/2)|theta|^2 (Bishop 1995), not for U itself
                recs.append((f"mean of g, M = {M}, A = {A} (augmented objective's gradient)", g.mean(),
                             g.std(ddof=1) / np.sqrt(g.size), mean[0]))
    comp = _components(prob, theta, s, p, ctx)
    recs.append(("sigma_b^2 (ANOVA over examples)", float(comp.value.sel(component="between")),
                 float(comp.standard_error.sel(component="between")), sb2))
    recs.append(("sigma_w^2 (ANOVA within examples)", float(comp.value.sel(component="within")),
                 float(comp.standard_error.sel(component="within")), sw2))
    name = ctx.figure(_figure(grid, comp, sb2, sw2, p), "decomposition")
    for r in recs:
        ctx.record(*r, figure=name)


def _components(prob, theta, s, p, ctx):
    """Augmented gradients of G examples drawn with replacement, n copies each, split by one-way ANOVA."""
    rng = np.random.default_rng(ctx.rng(2))
    picks = rng.integers(0, prob.n, size=p["anova_groups"])
    X, y = prob.rows[:, :-1], prob.rows[:, -1]
    integ = sd.SGD(lr=1.0, batch_size=1, augmentation=sd.Augmentation(copies=1, noise=s), record_extra=())
    rows = []
    for k, i in enumerate(picks):  # a one-example problem: every draw is example i, with a fresh augmentation
        one = sd.problems.LeastSquares(X[i:i + 1], y[i:i + 1])
        rows.append(_one_step(integ, one, theta, p["anova_copies"], ctx.rng(3, k)))
    da = xr.DataArray(np.array(rows), dims=("example", "augmentation"))
    return sd.analysis.variance_decomposition(da, groups="example", dims=("example", "augmentation"), unbiased=True)


def _figure(grid, comp, sb2, sw2, p):
    from matplotlib import ticker

    sd.plot.use_style("paper")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.36), width_ratios=(1.25, 1.1, 0.8))
    As = np.geomspace(1, max(p["copies"]), 50)
    for n, M in enumerate(p["examples"]):
        c = sd.plot.PALETTE[n]
        ax1.plot(As, sb2 / M + sw2 / (M * As), "-", color=c, lw=1.1, label=f"M = {M}")
        ax1.axhline(sb2 / M, color=c, ls=":", lw=0.8)
        A_, v_, e_ = np.array([(A, *grid[M, A]) for A in p["copies"]]).T
        ax1.errorbar(A_, v_, yerr=2 * e_, fmt="o", ms=3.2, color=c, mec="k", mew=0.4)
    ax1.plot([], [], "k-", lw=1.1, label=r"$\sigma_b^2/M+\sigma_w^2/(MA)$")
    ax1.plot([], [], "k:", lw=0.8, label=r"floor $\sigma_b^2/M$ ($A\to\infty$)")
    ax1.plot([], [], "ko", ms=3.2, label="simulation (± 2 SE)")
    ax1.set(xscale="log", yscale="log", xlabel="augmentations per example A [count]",
            ylabel=r"Var$(\hat g)$ [a.u.]", title="variance against A")
    ax1.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    lo, hi = sb2 / max(p["examples"]), sb2 + sw2
    ax1.set_ylim(lo / 2, hi * 8)
    ax1.legend(fontsize=6, loc="upper right", ncol=2)
    C = max(p["examples"])  # fixed budget of M * A gradient evaluations
    A2 = np.geomspace(1, C, 50)
    ax2.plot(A2, sb2 * A2 / C + sw2 / C, "-", color="k", lw=1.1, label=f"M A = {C}: $A\\sigma_b^2/{C}+\\sigma_w^2/{C}$")
    pts = [(A, *grid[M, A]) for (M, A) in grid if M * A == C]
    if pts:
        A_, v_, e_ = np.array(pts).T
        ax2.errorbar(A_, v_, yerr=2 * e_, fmt="s", ms=3.5, color=sd.plot.PALETTE[4], mec="k", mew=0.4,
                     label="simulation (± 2 SE)")
    ax2.set(xscale="log", yscale="log", xlabel="augmentations per example A [count]", ylabel=r"Var$(\hat g)$ [a.u.]",
            title=f"equal cost: M A = {C} gradient evaluations")
    ax2.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 4.0)))
    ax2.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax2.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax2.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax2.legend(fontsize=6, loc="upper left")
    parts = ["between", "within"]
    vals = [float(comp.value.sel(component=c)) for c in parts]
    errs = [2 * float(comp.standard_error.sel(component=c)) for c in parts]
    ax3.bar([0, 1], vals, yerr=errs, color=[sd.plot.PALETTE[5], sd.plot.PALETTE[2]], edgecolor="k", lw=0.4,
            label="ANOVA estimate (± 2 SE)")
    ax3.plot([0, 1], [sb2, sw2], "k_", ms=16, mew=1.5, label="exact")
    ax3.set_xticks([0, 1], [r"$\sigma_b^2$ between", r"$\sigma_w^2$ within"])
    ax3.set(ylabel="variance component [a.u.]", title="the two components", ylim=(0, 1.45 * max(vals + [sw2])))
    ax3.legend(fontsize=6, loc="upper left")
    return fig
