"""Maximum stable learning rate against the batch size, and learning-rate warm-up, on 1-D least squares.

The data are 48 Gaussian features x_i with targets y_i = 0 (interpolation: theta* = 0 and every per-example
gradient vanishes there), so one SGD step multiplies the error by alpha = 1 - lr * mean_batch(x_i^2) and
theta_n = theta_0 * prod_t alpha_t exactly. Two notions of stability, both exact here:

* mean square: E theta_n^2 = theta_0^2 prod_t E alpha_t^2, stable iff lr < eta_ms(B)
  (``sd.theory.sgd_stability_limit``; for d = 1 with replacement 2H / (H^2 + Var(x^2)/B));
* almost sure: E log|theta_n| = log|theta_0| + sum_t gamma(lr_t), gamma = E log|alpha|
  (``sd.theory.sgd_lyapunov_exponent_1d``); single runs converge iff gamma < 0, and overflow (the driver's
  divergence detection) iff gamma > 0.

The mean-square factor is measured over one step (its estimate has a finite variance; over many steps the mean
square is carried by rare replicas and cannot be estimated from an ensemble, see the README). The runs start at
theta_0 = 1 and are recorded every 10 steps.
"""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


def _one_step_factor(prob, lr, B, sampling, R, seed):
    """Simulated E theta_1^2 from theta_0 = 1 (mean, SE) and its exact value."""
    ds = sd.simulate(sd.SGD(lr=lr, batch_size=B, sampling=sd.Sampling(sampling), record_extra=()), prob, x0=[1.0],
                     n_replicas=R, n_steps=1, rng=seed)
    e2 = ds.x.isel(time=1).values[:, 0] ** 2
    m, C = th.sgd_moments(prob, lr, B, [1.0], 1, sampling=sampling)
    return (*batch_standard_error(e2), float(C[0, 0] + m[0] ** 2))  # SE from batches of replicas


def _run(prob, lr, schedule, p, R, n, seed):
    integ = sd.SGD(lr=lr, batch_size=1, lr_schedule=schedule, record_extra=())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sd.DivergenceWarning)
        ds = sd.simulate(integ, prob, x0=[1.0], n_replicas=R, n_steps=n, record_every=10, rng=seed)
    msgs = [str(w.message) for w in caught if "diverged" in str(w.message)]
    return ds, msgs


def run(ctx):
    p = ctx.params
    data = sd.problems.gaussian_regression(p["n_examples"], 1, noise=0.0, seed=p["data_seed"], theta=[0.0])
    prob = sd.problems.LeastSquares.from_data(data)
    H = float(prob.hessian[0, 0])
    # ---- the mean-square limit against B, checked by the one-step factor at the limit ----------------
    factors = {}
    for i, (mode, Bs) in enumerate((("with_replacement", p["batch_sizes"]), ("without_replacement", p["batch_sizes_wor"]))):
        for j, B in enumerate(Bs):
            eta = th.sgd_stability_limit(prob, B, sampling=mode)
            factors[mode, B, 1.0] = (eta, *_one_step_factor(prob, eta, B, mode, p["factor_replicas"], ctx.rng(1, i, j)))
    eta1 = th.sgd_stability_limit(prob, 1)
    for k, f in enumerate(p["around"]):
        factors["with_replacement", 1, f] = (f * eta1, *_one_step_factor(prob, f * eta1, 1, "with_replacement",
                                                                          p["factor_replicas"], ctx.rng(2, k)))
    # ---- runs at B = 1: constant or warmed-up, mean-square unstable or almost-surely unstable ---------
    W, n_rec = p["warmup_steps"], p["record_step"]
    warm = sd.LRSchedule.warmup(W)
    runs = {}
    for k, (tag, f) in enumerate((("ms", p["lr_unstable_ms"]), ("as", p["lr_divergent"]))):
        lr = f * eta1
        for m, (label, sched) in enumerate((("constant", None), ("warm-up", warm))):
            ds, msgs = _run(prob, lr, sched, p, p["run_replicas"], p["run_steps"], ctx.rng(3, k, m))
            steps = ds.step.values
            lrs = lr * (warm.factor(np.arange(1, steps[-1] + 1)) if sched is not None else np.ones(steps[-1]))
            gam = th.sgd_lyapunov_exponent_1d(prob, lrs, 1)
            m2 = np.array([_exact_m2(prob, e) for e in lrs]) if tag == "ms" else None
            runs[tag, label] = {"lr": lr, "ds": ds, "msgs": msgs, "mean_log": np.concatenate([[0.0], np.cumsum(gam)]),
                                "log_ms": None if m2 is None else np.concatenate([[0.0], np.cumsum(np.log(m2))])}
    rate_sims = []
    for k, f in enumerate(p["rate_lrs"]):
        ds = sd.simulate(sd.SGD(lr=f * eta1, batch_size=1, record_extra=()), prob, x0=[1.0], n_replicas=1000,
                         n_steps=100, record_every=100, rng=ctx.rng(4, k))
        lg = np.log(np.abs(ds.x.isel(time=-1).values[:, 0])) / 100
        rate_sims.append((f * eta1, lg.mean(), lg.std(ddof=1) / math.sqrt(lg.size)))
    name = ctx.figure(_figure(p, prob, H, eta1, factors, runs, rate_sims), "stability")
    # ---- records ---------------------------------------------------------------------------------------
    for (mode, B, f), (eta, m, se, exact) in factors.items():
        where = f"eta_ms(B) = {eta:.4f}" if f == 1.0 else f"{f:g} x eta_ms(1) = {eta:.4f}"
        ctx.record(f"one-step mean-square factor E[theta_1^2]/theta_0^2 at {where}, B = {B}, "
                   f"{mode.replace('_', ' ')}", m, se, exact, figure=name)
    for (tag, label), r in runs.items():
        ds = r["ds"]
        k = int(np.searchsorted(ds.step.values, n_rec))
        lg = np.log(np.abs(ds.x.isel(time=k).values[:, 0]))
        what = "mean-square unstable" if tag == "ms" else "almost-surely unstable"
        ctx.record(f"E log|theta_n| at n = {n_rec}, {label}, final lr = {r['lr']:.4f} ({what})", lg.mean(),
                   lg.std(ddof=1) / math.sqrt(lg.size), r["mean_log"][n_rec], figure=name)


def _exact_m2(prob, lr):
    m, C = th.sgd_moments(prob, lr, 1, [1.0], 1)
    return float(C[0, 0] + m[0] ** 2)


def _figure(p, prob, H, eta1, factors, runs, rate_sims):
    sd.plot.use_style("paper")
    fig, axes = plt.subplots(2, 2, figsize=sd.plot.figsize(2, 1.0))
    pal = sd.plot.PALETTE
    # (a) limits against B
    ax = axes[0, 0]
    Bs = np.unique(np.round(np.geomspace(1, prob.n, 30)).astype(int))
    for mode, c, ls in (("with_replacement", pal[0], "-"), ("without_replacement", pal[1], "--")):
        ax.plot(Bs, [th.sgd_stability_limit(prob, int(B), sampling=mode) for B in Bs], ls=ls, color=c, lw=1.3,
                label=f"mean-square limit, {mode.replace('_', ' ')}")
    ax.axhline(2 / H, color="0.3", ls=":", lw=1.0, label=r"gradient descent $2/H$")
    ax.set(xscale="log", xlabel="batch size B [count]", ylabel=r"learning rate $\eta$ [1]",
           title=r"(a) maximum mean-square stable $\eta$ against B")
    ax.legend(fontsize=6, loc="lower right")
    # (b) the one-step factor at the limit
    ax = axes[0, 1]
    for (mode, B, f), (eta, m, se, exact) in factors.items():
        c = pal[0] if mode == "with_replacement" else pal[1]
        mk = "o" if f == 1.0 else ("v" if f < 1 else "^")
        ax.errorbar(B * (1.0 if mode == "with_replacement" else 1.08), m, yerr=2 * se, fmt=mk, ms=4, color=c, mec="k",
                    mew=0.4)
        ax.plot(B * (1.0 if mode == "with_replacement" else 1.08), exact, "_", color="k", ms=10, mew=1.2)
    ax.axhline(1.0, color="0.3", lw=0.8, ls=":")
    ax.plot([], [], "o", color=pal[0], ms=4, label=r"at $\eta_{ms}(B)$, with replacement")
    ax.plot([], [], "o", color=pal[1], ms=4, label=r"at $\eta_{ms}(B)$, without replacement")
    ax.plot([], [], "v", color=pal[0], ms=4, label=rf"B = 1 at {min(p['around']):g}, {max(p['around']):g} $\eta_{{ms}}$")
    ax.plot([], [], "_", color="k", ms=10, mew=1.2, label="exact")
    ax.set(xscale="log", xlabel="batch size B [count]", ylabel=r"$E\,\theta_1^2/\theta_0^2$ [1]",
           title="(b) one-step mean-square factor (± 2 SE)")
    ax.legend(fontsize=6, loc="upper right")
    # (c) growth rates against the learning rate (B = 1)
    ax = axes[1, 0]
    etas = np.linspace(0.05, max(max(p["rate_lrs"]), p["lr_divergent"]) * 1.08 * eta1, 400)
    ax.plot(etas / eta1, th.sgd_lyapunov_exponent_1d(prob, etas, 1), color=pal[2], lw=1.0,
            label=r"almost sure: $\gamma = E\log|\alpha|$ (exact)")
    ax.plot(etas / eta1, [0.5 * math.log(_exact_m2(prob, e)) for e in etas], color=pal[3], lw=1.3,
            label=r"mean square: $\frac{1}{2}\log E\alpha^2$ (exact)")
    r = np.array(rate_sims)
    ax.errorbar(r[:, 0] / eta1, r[:, 1], yerr=2 * r[:, 2], fmt="o", ms=3.5, color=pal[2], mec="k", mew=0.4,
                label=r"simulation: $\log|\theta_{100}|/100$ ± 2 SE")
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(1.0, color=pal[3], lw=0.8, ls=":", label=r"$\eta_{ms}(1)$")
    ax.axvline(2 / H / eta1, color="0.3", lw=0.8, ls=":", label=r"gradient descent $2/H$")
    for tag, c in (("ms", pal[4]), ("as", pal[1])):
        ax.axvline(runs[tag, "constant"]["lr"] / eta1, color=c, lw=1.0, ls="--",
                   label="final lr of the runs in (d)" if tag == "ms" else None)
    ax.set(xlabel=r"learning rate $\eta/\eta_{ms}(1)$ [1]", ylabel="growth rate per step [1]",
           title="(c) B = 1: two stability limits", ylim=(-1.0, 1.2))
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    # (d) runs with and without warm-up
    ax = axes[1, 1]
    for (tag, label), r in runs.items():
        c = pal[4] if tag == "ms" else pal[1]
        ls = "-" if label == "constant" else "--"
        ds = r["ds"]
        with np.errstate(divide="ignore"):  # replicas that underflow to 0 after ~2500 steps of decay
            lg = np.log(np.abs(ds.x.values[:, :, 0]))
        ok = np.isfinite(lg).all(axis=0)
        steps = ds.step.values
        ax.plot(steps[ok], lg[:, ok].mean(axis=0), ls=ls, color=c, lw=1.6, alpha=0.6)
        ax.plot(np.arange(r["mean_log"].size), r["mean_log"], ls=ls, color="k", lw=0.7)
        if r["log_ms"] is not None and label == "constant":
            ax.plot(np.arange(r["log_ms"].size), 0.5 * r["log_ms"], ls=":", color=c, lw=1.2)
        nd = int(ds.attrs["n_diverged"])
        if nd:
            first = ds["diverged_step"].values
            first = first[first >= 0]
            ax.plot(np.median(first), 709.78, marker="x", color=c, ms=6, mew=1.5)
        lab = f"{label}, final lr {r['lr'] / (runs['ms', 'constant']['lr'] / p['lr_unstable_ms']):g}" + r" $\eta_{ms}$"
        ax.plot([], [], ls=ls, color=c, lw=1.6, label=f"{lab}: {nd}/{ds.sizes['replica']} overflowed")
    ax.plot([], [], "k-", lw=0.7, label=r"exact $\sum_t\gamma(\eta_t)$")
    ax.plot([], [], ":", color=pal[4], lw=1.2, label=r"exact $\log\sqrt{E\,\theta_n^2}$ (constant)")
    ax.plot([], [], "x", color="0.3", ms=6, mew=1.5, label="median overflow step")
    ax.axhline(709.78, color="0.6", lw=0.6)
    ax.set(xlabel="step [count]", ylabel=r"$E\log|\theta_n - \theta^*|$ [1]", ylim=(-800, 900),
           title=f"(d) B = 1, linear warm-up over {p['warmup_steps']} steps")
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig
