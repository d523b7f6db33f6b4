"""Gradient signal-to-noise ratio along SGD, and the batch-size switch of the adaptive norm test.

Part A (least squares, batch B with replacement, constant): the integrator records per step the mini-batch
gradient norm, ``grad_var`` (tr of the per-draw covariance, unbiased), ``noise_scale`` and ``snr``. Exact:
``sd.theory.sgd_moments`` gives the mean and covariance of theta_t, and ``sd.theory.gradient_noise_moments`` turns
them into E|grad U|^2 and E tr Sigma_1 (both quadratic in theta). The run's SNR is estimated by
``sd.analysis.gradient_noise`` (ratio of averages, |g_B|^2 - tr/B for the signal).

Part B (the switch): ``sd.BatchSchedule.norm_test`` on U = x^2/2 with Gaussian per-draw gradients N(x, sigma^2),
made as 1-D least squares with x_i = 1, y_i = 0 and a user augmentation adding sigma*z to the target. The exact
law of the first switch (and the mean exact SNR where it happens) is ``sd.theory.norm_test_survival``.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


@sd.problems.augmentation(n_normals=1)
def target_noise(row, out, z, s=1.0):
    """Gaussian noise on the target column: with x = 1 and y = 0 the per-draw gradient is theta - s z."""
    out[0] = row[0]
    out[1] = row[1] + s * z[0]


def _part_a(ctx, p):
    data = sd.problems.gaussian_regression(p["n_examples"], p["dim"], noise=p["label_noise"], seed=p["data_seed"],
                                           scales=p["feature_scales"])
    prob = sd.problems.LeastSquares.from_data(data)
    x0 = prob.minimizer() + np.asarray(p["x0_offset"])
    B, lr = p["batch_size"], p["lr"]
    integ = sd.SGD(lr=lr, batch_size=B, record_extra=("grad_norm", "grad_var", "batch_size", "snr"))
    ds = sd.simulate(integ, prob, x0=x0, n_replicas=p["replicas"], n_steps=p["steps"], rng=ctx.rng(1))
    steps = sorted(set(p["checkpoints"]) | set(np.unique(np.round(np.geomspace(1, p["steps"], 14)).astype(int))))
    out = {}
    for t in steps:
        m, C = th.sgd_moments(prob, lr, B, x0, t - 1)  # the statistics recorded at step t are taken at theta_{t-1}
        g2, tr = th.gradient_noise_moments(prob, m, C)
        est = sd.analysis.gradient_noise(ds.isel(time=[t]))
        sel = ds.isel(time=t)
        naive = sd.analysis.ratio(B * sel.grad_norm**2, sel.grad_var, dims="replica")  # no correction of |g_B|^2
        # the records: the same estimators (values as sd.analysis.gradient_noise), SE from batches of replicas
        per = np.column_stack([sel.grad_norm.values ** 2 - sel.grad_var.values / B, sel.grad_var.values])
        batched = {"trace_covariance": batch_standard_error(per[:, 1]), "gradient_norm_sq": batch_standard_error(per[:, 0]),
                   "signal_to_noise": batch_standard_error(per, lambda a: B * a[:, 0].mean() / a[:, 1].mean())}
        out[t] = {"g2": g2, "tr": tr, "est": est, "batched": batched,
                  "naive": (float(naive["value"]), float(naive["standard_error"]))}
    # late in the run the signal is a few % of |g_B|^2: one step's estimate cannot resolve it, so average the
    # per-step estimates over a window of steps, per replica (batch noise is independent from step to step)
    lo, hi = p["window"]
    steps_w = np.arange(lo, hi + 1)
    exact = np.array([th.gradient_noise_moments(prob, *th.sgd_moments(prob, lr, B, x0, int(t) - 1)) for t in steps_w])
    sel = ds.isel(time=steps_w)
    tr_w = sel.grad_var.values  # (replica, step)
    sig_w = sel.grad_norm.values ** 2 - tr_w / B
    per = np.stack([sig_w.mean(axis=1), tr_w.mean(axis=1)], axis=1)  # per replica: mean signal, mean trace
    window = {"steps": (lo, hi), "g2": float(exact[:, 0].mean()), "tr": float(exact[:, 1].mean())}
    window["g2_est"] = batch_standard_error(per[:, 0])
    window["tr_est"] = batch_standard_error(per[:, 1])
    window["snr_est"] = batch_standard_error(per, lambda a: B * a[:, 0].mean() / a[:, 1].mean())
    return out, B, window


def _part_b(ctx, p):
    N = p["max_batch"]
    prob = sd.problems.LeastSquares(np.ones((N, 1)), np.zeros(N))
    B0, kappa, lr, s = p["norm_batch"], p["norm_theta"], p["norm_lr"], p["noise_std"]
    integ = sd.SGD(lr=lr, batch_size=B0, batch_schedule=sd.BatchSchedule.norm_test(theta=kappa, max_batch=N),
                   augmentation=sd.Augmentation(copies=1, transform=target_noise(s=s)),
                   record_extra=("batch_size", "snr", "grad_var", "grad_norm"))
    n = p["norm_steps"]
    ds = sd.simulate(integ, prob, x0=[p["x0"]], n_replicas=p["norm_replicas"], n_steps=n, rng=ctx.rng(2))
    Bt = ds.batch_size.values[:, 1:]  # batch of steps 1..n
    grown = Bt > B0
    switched = grown.any(axis=1)
    # the test fires at step T; the batch of step T + 1 is the first larger one
    T = np.where(switched, np.argmax(grown, axis=1), n)  # argmax gives the index of step T + 1, i.e. T
    x = ds.x.values[:, :, 0]
    lam_at = B0 * (x[np.arange(x.shape[0]), np.maximum(T - 1, 0)] / s) ** 2  # exact SNR at theta_{T-1}
    S, lam_exact = th.norm_test_survival(p["x0"], lr, B0, kappa, n, noise_std=s, switch_snr=True)
    t = np.arange(n + 1)
    q = 1.0 - lr
    mean_snr = B0 / s**2 * ((q**t * p["x0"]) ** 2 + lr**2 * s**2 / B0 * (1 - q ** (2 * t)) / (1 - q * q))
    t_star = int(np.argmax(mean_snr <= 1 / kappa**2))
    snr1 = ds.snr.values[:, 1]
    return {"T": T, "switched": switched, "lam_at": lam_at, "S": S, "lam_exact": lam_exact, "mean_snr": mean_snr,
            "t_star": t_star, "snr1": snr1, "B0": B0, "kappa": kappa, "lam0": B0 * (p["x0"] / s) ** 2, "n": n}


def run(ctx):
    p = ctx.params
    a, B, win = _part_a(ctx, p)
    b = _part_b(ctx, p)
    name = ctx.figure(_figure(p, a, B, b, win), "snr")
    for t in p["checkpoints"]:
        r = a[t]
        for q, key, what in (("trace_covariance", "tr", "tr Sigma_1 (grad_var)"),
                             ("gradient_norm_sq", "g2", "|grad U|^2 (|g_B|^2 - grad_var/B)"),
                             ("signal_to_noise", None, "SNR B|grad U|^2/tr Sigma_1 (ratio of averages)")):
            exact = r[key] if key else B * r["g2"] / r["tr"]
            ctx.record(f"least squares, step {t}: {what}", *r["batched"][q], exact, figure=name)
    lo, hi = win["steps"]
    for key, exact, what in (("tr_est", win["tr"], "tr Sigma_1 (grad_var)"),
                             ("g2_est", win["g2"], "|grad U|^2 (|g_B|^2 - grad_var/B)"),
                             ("snr_est", B * win["g2"] / win["tr"], "SNR B|grad U|^2/tr Sigma_1 (ratio of averages)")):
        ctx.record(f"least squares, steps {lo}–{hi} (per-replica window average): {what}", *win[key], exact,
                   figure=name)
    n, S, T, B0 = b["n"], b["S"], b["T"], b["B0"]
    if not b["switched"].all():
        raise AssertionError(f"{(~b['switched']).sum()} replicas never switched in {n} steps (exact P = {S[-1]:.3g})")
    nu = B0 - 1
    ctx.record(f"norm test: mean recorded SNR at step 1 (exact SNR {b['lam0']:g})", b["snr1"].mean(),
               b["snr1"].std(ddof=1) / math.sqrt(T.size), (1 + b["lam0"]) * nu / (nu - 2), figure=name)
    ctx.record("norm test: mean switch step", T.mean(), T.std(ddof=1) / math.sqrt(T.size), S[:-1].sum(), figure=name)
    ts = b["t_star"]
    frac = (T <= ts).mean()
    ctx.record(f"norm test: fraction switched by step {ts} (where E SNR crosses 1/theta^2)", frac,
               math.sqrt(max(frac * (1 - frac), 1.0 / T.size) / T.size), 1 - S[ts], figure=name)
    ctx.record("norm test: mean exact SNR at the switch", b["lam_at"].mean(),
               b["lam_at"].std(ddof=1) / math.sqrt(T.size), b["lam_exact"], figure=name)


def _figure(p, a, B, b, win):
    sd.plot.use_style("paper")
    fig, axes = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.4))
    pal = sd.plot.PALETTE
    # (a) SNR along the least-squares run
    ax = axes[0]
    steps = np.array(sorted(a))
    exact = np.array([B * a[t]["g2"] / a[t]["tr"] for t in steps])
    est = np.array([[float(a[t]["est"].sel(quantity="signal_to_noise")[k]) for k in ("value", "standard_error")]
                    for t in steps])
    naive = np.array([a[t]["naive"] for t in steps])
    ax.plot(steps, exact, "-", color=pal[0], lw=1.2, label=r"exact SNR $B\,E|\nabla U|^2/E\,\mathrm{tr}\Sigma_1$")
    ax.errorbar(steps, est[:, 0], yerr=2 * est[:, 1], fmt="o", ms=3, color=pal[0], mec="k", mew=0.4,
                label="estimate, corrected signal (± 2 SE)")
    ax.plot(steps, exact + 1, "--", color=pal[1], lw=1.0, label="exact SNR + 1")
    ax.errorbar(steps, naive[:, 0], yerr=2 * naive[:, 1], fmt="s", ms=3, color=pal[1], mec="k", mew=0.4,
                label=r"$B\langle|g_B|^2\rangle/\langle\mathrm{tr}\hat\Sigma\rangle$ (uncorrected)")
    lo, hi = win["steps"]
    v, e = win["snr_est"]
    ax.errorbar([math.sqrt(lo * hi)], [v], yerr=[2 * e], xerr=[[math.sqrt(lo * hi) - lo], [hi - math.sqrt(lo * hi)]],
                fmt="D", ms=3.5, color=pal[2], mec="k", mew=0.4, label=f"window {lo}–{hi}, averaged per replica")
    ax.set(xscale="log", yscale="log", xlabel="step [count]", ylabel="signal-to-noise ratio [1]",
           title=f"(a) least squares, B = {B}")
    ax.legend(fontsize=5.5, loc="lower left")
    # (b) the exact SNR of the Gaussian model and where the test fires
    ax = axes[1]
    t = np.arange(b["n"] + 1)
    k2 = 1 / b["kappa"] ** 2
    ax.plot(t, b["mean_snr"], color=pal[0], lw=1.2, label=r"exact $E\,\mathrm{SNR}(x_t)$, constant B")
    ax.axhline(k2, color=pal[3], ls="--", lw=1.0, label=rf"threshold $1/\vartheta^2$ = {k2:.3g}")
    ax.axhline(k2 - 1, color=pal[3], ls=":", lw=1.0, label=r"$1/\vartheta^2 - 1$ (estimate's bias removed)")
    ax.vlines(b["t_star"], 1e-3, b["mean_snr"][0], color="0.4", ls="-.", lw=0.8, label=rf"crossing $t^*$ = {b['t_star']}")
    m, se = b["lam_at"].mean(), b["lam_at"].std(ddof=1) / math.sqrt(b["lam_at"].size)
    ax.axhline(b["lam_exact"], color=pal[2], lw=1.2, label=f"exact mean SNR at the switch = {b['lam_exact']:.3g}")
    ax.errorbar([np.mean(b["T"])], [m], yerr=[2 * se], xerr=[2 * np.std(b["T"]) / math.sqrt(b["T"].size)], fmt="D",
                ms=4, color=pal[2], mec="k", mew=0.4, label="simulated (mean step, mean SNR)")
    ax.set(yscale="log", xlabel="step [count]", ylabel="exact SNR [1]", xlim=(0, 2.2 * b["t_star"]),
           ylim=(0.5 * b["mean_snr"][int(2.2 * b["t_star"])], 50 * b["mean_snr"][0]),  # room for the legend
           title=rf"(b) norm test, $B_0$ = {b['B0']}, $\vartheta$ = {b['kappa']:g}")
    ax.legend(fontsize=5.5, loc="upper right")
    # (c) the law of the switch step
    ax = axes[2]
    cdf_sim = np.array([(b["T"] <= s).mean() for s in t])
    ax.step(t, cdf_sim, where="post", color=pal[0], lw=1.4, label="simulated")
    ax.plot(t, 1 - b["S"], "k--", lw=0.9, label="exact")
    ax.axvline(b["t_star"], color="0.4", ls="-.", lw=0.8, label=r"$t^*$")
    ax.set(xlabel="step of the first switch [count]", ylabel="fraction switched [1]", xlim=(0, 2.2 * b["t_star"]),
           title="(c) when the batch grows")
    ax.legend(fontsize=6, loc="lower right")
    return fig
