"""Loss fluctuations of constant-step SGD on least squares against the batch size, with the exact fourth-moment theory.

Two observables, both recorded by the SGD integrator: the full-batch loss U(theta_t) (``energy``) and the
mini-batch loss of each step (``batch_loss``, the loss of the step's batch at the parameters before the step).
Their exact means and variances at every step come from ``sd.theory.sgd_loss_moments`` (closed recursion of the
fourth moments of theta; finite learning rate, finite batch, with or without replacement). Every replica starts
at theta* and is measured at ``n_records`` records after ``burn_in`` steps; the theory is evaluated at the same
steps, so nothing assumes that the run is stationary.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error

MODES = ("with_replacement", "without_replacement")
LABEL = {"with_replacement": "with replacement", "without_replacement": "without replacement"}


def _problem(p):
    data = sd.problems.gaussian_regression(p["n_examples"], p["dim"], noise=p["label_noise"], seed=p["data_seed"],
                                           scales=p["feature_scales"])
    return sd.problems.LeastSquares.from_data(data)


def _variance_estimate(values, means):
    """Mean over records and replicas of (value - exact mean)^2; SE from batches of replicas (per-replica
    averages of a few squares are skewed: their plug-in SE would shrink with the estimate)."""
    per_replica = ((values - means[None, :]) ** 2).mean(axis=1)
    return batch_standard_error(per_replica)


def _measure(prob, p, mode, B, seed):
    """Simulated and exact variances of U and of the mini-batch loss for one design, averaged over the records."""
    ts = prob.minimizer()
    gap, K = p["record_gap"], p["n_records"]
    n = p["burn_in"] + K * gap
    integ = sd.SGD(lr=p["lr"], batch_size=B, sampling=sd.Sampling(mode), record_extra=("batch_loss",))
    ds = sd.simulate(integ, prob, x0=ts, n_replicas=p["replicas"], n_steps=n, record_every=gap, rng=seed)
    steps = ds.step.values
    sel = steps > p["burn_in"]
    out = {}
    for name, var, lag in (("U", "energy", 0), ("L", "batch_loss", 1)):  # batch_loss of step t is at theta_{t-1}
        exact = [th.sgd_loss_moments(prob, p["lr"], B, x0=ts, n_steps=int(t) - lag, sampling=mode)
                 for t in steps[sel]]
        key = "loss" if name == "U" else "batch_loss"
        means = np.array([e[f"mean_{key}"] for e in exact])
        v, se = _variance_estimate(ds[var].values[:, sel], means)
        out[name] = (v, se, float(np.mean([e[f"var_{key}"] for e in exact])))
    return out


def run(ctx):
    p = ctx.params
    prob = _problem(p)
    ts, H, N = prob.minimizer(), prob.hessian, prob.n
    lr = p["lr"]
    results = {}
    for i, mode in enumerate(MODES):
        for j, B in enumerate(p["batch_sizes"]):
            results[mode, B] = _measure(prob, p, mode, B, ctx.rng(i, j))
    # exact stationary curves and the simple laws (small step, theta frozen at theta*, sampling with replacement)
    grid = np.unique(np.round(np.geomspace(1, N - 1, p["theory_batches"])).astype(int))
    curves = {(mode, k): [] for mode in MODES for k in ("U", "L")}
    for mode in MODES:
        for B in grid:
            r = th.sgd_loss_moments(prob, lr, int(B), sampling=mode)
            curves[mode, "U"].append(math.sqrt(r["var_loss"]))
            curves[mode, "L"].append(math.sqrt(r["var_batch_loss"]))
    C1 = th.small_step_covariance(H, lr, th.gradient_noise_covariance(prob, ts, 1))
    law_U = math.sqrt(0.5 * np.trace(H @ C1 @ H @ C1))  # Gaussian OU law at B = 1; std(U) ~ law_U / B
    law_L = math.sqrt(th.minibatch_loss_variance(prob, ts, 1))  # sampling noise of the loss at theta*: / sqrt(B)
    curve_runs = {}
    for k, B in enumerate(p["curve_batches"]):
        integ = sd.SGD(lr=lr, batch_size=B, record_extra=("batch_loss",))
        ds = sd.simulate(integ, prob, x0=ts + np.asarray(p["curve_offset"]), n_replicas=p["curve_replicas"],
                         n_steps=p["curve_steps"], rng=ctx.rng(9, k))
        curve_runs[B] = ds.isel(time=slice(1, None))  # record 0 has no mini-batch loss yet
    fig = _figure(p, prob, results, grid, curves, law_U, law_L, curve_runs)
    name = ctx.figure(fig, "amplitude")
    for mode in MODES:
        for B in p["batch_sizes"]:
            for key, what in (("U", "full-batch loss U"), ("L", "mini-batch loss")):
                v, se, exact = results[mode, B][key]
                amp = math.sqrt(v)
                ctx.record(f"std of the {what}, B = {B}, {LABEL[mode]}", amp, se / (2 * amp), math.sqrt(exact),
                           figure=name)


def _figure(p, prob, results, grid, curves, law_U, law_L, curve_runs):
    sd.plot.use_style("paper")
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=sd.plot.figsize(2, 0.46), gridspec_kw={"width_ratios": [1, 1.25]})
    sd.plot.loss_curves(curve_runs, band="quantile", ax=ax0)
    ax0.axhline(float(prob.value(prob.minimizer())), color="0.3", ls=":", lw=0.8)
    ax0.set(xlabel="step [count]", ylabel="mini-batch loss [a.u.]",
            title=f"loss curves (mean, 10–90 % band, one run), lr = {p['lr']:g}")
    N = prob.n
    colors = {"U": sd.plot.PALETTE[0], "L": sd.plot.PALETTE[1]}
    fine = np.geomspace(1, N - 1, 100)
    for key, what, law, slope in (("U", "full-batch loss U", law_U, 1.0), ("L", "mini-batch loss", law_L, 0.5)):
        c = colors[key]
        for mode, ls, mk in (("with_replacement", "-", "o"), ("without_replacement", "--", "s")):
            ax1.plot(grid, curves[mode, key], ls=ls, color=c, lw=1.1)
            Bs = list(p["batch_sizes"])
            amp = np.array([math.sqrt(results[mode, B][key][0]) for B in Bs])
            se = np.array([results[mode, B][key][1] / (2 * math.sqrt(results[mode, B][key][0])) for B in Bs])
            ax1.errorbar(Bs, amp, yerr=2 * se, fmt=mk, ms=3.5, color=c, mec="k", mew=0.4, mfc=c if mk == "o" else "w",
                         zorder=3)
        ax1.plot(fine, law / fine**slope, ":", color=c, lw=1.0)
        ax1.plot([], [], "-", color=c, lw=3, label=what)
    ax1.plot([], [], "k-", lw=1.1, label="exact, with replacement")
    ax1.plot([], [], "k--", lw=1.1, label="exact, without replacement")
    ax1.plot([], [], "k:", lw=1.0, label=r"simple laws $\propto 1/B$ (U), $1/\sqrt{B}$ (mini-batch)")
    ax1.plot([], [], "ko", ms=3.5, label="simulation ± 2 SE (open: without repl.)")
    ax1.set(xscale="log", yscale="log", xlabel="batch size B [count]", ylabel="stationary std of the loss [a.u.]",
            title=f"fluctuation amplitude, N = {N}")
    ax1.legend(fontsize=6, loc="lower left")
    return fig
