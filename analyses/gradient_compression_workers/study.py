"""Gradient compression with K data-parallel workers: the variance each scheme adds, the total batch needed to
make up for it, the bias of scaled sign and top-k, and what error feedback does.

Model: per-example gradients that do not depend on the parameters (a linear loss l_i = u_i . theta) taking 4
distinct values G + z_j in d = 8, so the law of every worker's share mean is enumerable: the exact theory is
``sd.theory.compressed_gradient_moments`` (exact mean and covariance of the server average for every compressor,
by enumerating each worker's multinomial share law). The estimators are sampled with the SGD integrator and
``sd.Workers`` (one step with lr = 1 gives theta0 - g_hat); error feedback is run for many steps.
"""

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error


@sd.problems.per_sample_loss(dim=8)
def linear(theta, row, grad):
    """l = u . theta with u the data row: the gradient u is the same at every theta."""
    s = 0.0
    for j in range(8):
        grad[j] = row[j]
        s += row[j] * theta[j]
    return s


def _problem(p):
    G = np.asarray(p["grad_mean"], dtype=float)
    z = np.random.default_rng(p["data_seed"]).normal(size=(p["distinct"], G.size))
    z -= z.mean(axis=0)
    z *= p["noise"] * np.sqrt(G.size / (z**2).sum(axis=1).mean())  # tr Sigma_1 = d noise^2
    return linear(np.tile(G + z, (p["copies"], 1))), G


def _schemes(p):
    K = p["workers"]
    out = {"none": sd.Workers(K)}
    for s in p["levels"]:
        out[f"QSGD s={s}"] = sd.Workers(K, "quantize", levels=s)
    out["scaled sign"] = sd.Workers(K, "sign", error_feedback=False)
    out[f"top-{p['topk']}"] = sd.Workers(K, "topk", k=p["topk"], error_feedback=False)
    return out


def _mse_theory(prob, G, b, w):
    m, c = th.compressed_gradient_moments(prob, np.zeros(G.size), b, w)
    return float(np.trace(c) + np.sum((m - G) ** 2)), m - G


def _one_step(prob, G, b, w, R, seed):
    ds = sd.simulate(sd.SGD(lr=1.0, batch_size=b, workers=w, record_extra=()), prob, x0=np.zeros(G.size),
                     n_replicas=R, n_steps=1, rng=seed)
    return -ds.x.isel(time=1).values


def _mse_record(g, G):
    e = np.sum((g - G) ** 2, axis=1)
    return batch_standard_error(e)  # SE from batches of replicas, not the plug-in fourth moment


def run(ctx):
    p = ctx.params
    prob, G = _problem(p)
    K = p["workers"]
    schemes = _schemes(p)
    grid = np.arange(K, p["theory_batches"] + 1, K)
    curve = {name: np.array([_mse_theory(prob, G, int(b), w)[0] for b in grid]) for name, w in schemes.items()}
    V0 = curve["none"][list(grid).index(p["reference_batch"])]  # = tr Sigma_1 / b0
    recs, sims = [], {}
    # 1. one-step error of every scheme at a few total batch sizes
    for i, (name, w) in enumerate(schemes.items()):
        for j, b in enumerate(p["batch_sizes"]):
            g = _one_step(prob, G, b, w, p["replicas"], ctx.rng(1, i, j))
            mse, bias = _mse_theory(prob, G, b, w)
            sims[name, b] = _mse_record(g, G)
            recs.append((f"E|g - grad U|^2, {name}, b = {b}", *sims[name, b], mse))
            if b == p["batch_sizes"][1] and name != "none":
                if np.linalg.norm(bias) > 1e-12:  # biased: the mean error along its direction
                    u = bias / np.linalg.norm(bias)
                    what = "bias along its direction"
                else:  # unbiased: the mean error along G
                    u = G / np.linalg.norm(G)
                    what = "mean error along grad U (unbiased)"
                proj = (g - G) @ u
                recs.append((f"{what}, {name}, b = {b}", proj.mean(), proj.std(ddof=1) / np.sqrt(proj.size), bias @ u))
    # 2. the total batch that matches the uncompressed MSE at b0 (unbiased quantisation)
    needed = {}
    for i, s in enumerate(p["levels"]):
        name = f"QSGD s={s}"
        ok = np.nonzero(curve[name] <= V0)[0]
        if ok.size == 0:
            continue
        needed[name] = int(grid[ok[0]])
        for j, b in enumerate(sorted({needed[name] - K, needed[name]} - {0})):
            if (name, b) not in sims:
                sims[name, b] = _mse_record(_one_step(prob, G, b, schemes[name], p["replicas"], ctx.rng(2, i, j)), G)
            recs.append((f"E|g - grad U|^2, {name}, b = {b} ({'matches' if b == needed[name] else 'misses'} "
                         f"b0 = {p['reference_batch']} uncompressed)", *sims[name, b], _mse_theory(prob, G, b, schemes[name])[0]))
    # 3. error feedback: the accumulated update over many steps
    ef = {}
    for i, name in enumerate(["scaled sign", f"top-{p['topk']}"]):
        base = schemes[name]
        _, bias = _mse_theory(prob, G, p["ef_batch"], base)
        u = bias / np.linalg.norm(bias)
        for j, feedback in enumerate((False, True)):
            w = sd.Workers(K, base.compression, k=base.k, error_feedback=feedback)
            ds = sd.simulate(sd.SGD(lr=1.0, batch_size=p["ef_batch"], workers=w, record_extra=()), prob,
                             x0=np.zeros(G.size), n_replicas=p["ef_replicas"], n_steps=p["ef_steps"],
                             record_every=p["ef_record_every"], rng=ctx.rng(3, i, j))
            moved = -ds.x.values  # (replica, time, d): the accumulated update sum_t g_t
            t = ds.step.values
            dev = (moved - t[None, :, None] * G) @ u  # accumulated error along the bias direction
            k0 = int(np.searchsorted(t, p["ef_burn_in"]))
            rate = (dev[:, -1] - dev[:, k0]) / (t[-1] - t[k0])  # mean error per step after the burn-in
            ef[name, feedback] = (t, dev.mean(axis=0), dev.std(axis=0, ddof=1) / np.sqrt(dev.shape[0]), bias @ u)
            recs.append((f"{name}, {'with' if feedback else 'without'} error feedback: accumulated error per step "
                         f"along the bias (steps {t[k0]}..{t[-1]}, b = {p['ef_batch']})", rate.mean(),
                         rate.std(ddof=1) / np.sqrt(rate.size), 0.0 if feedback else bias @ u))
    # the floor of unbiased quantisation: as b grows every worker's mean tends to G, leaving q_s(G)/K, so the
    # uncompressed error tr Sigma_1 / b0 can be matched only for b0 < tr Sigma_1 K / q_s(G)
    tr1 = curve["none"][0] * grid[0]
    floors = {f"QSGD s={s}": tr1 * K / th.compression_error(G, "quantize", levels=s) for s in p["levels"]}
    name = ctx.figure(_figure(grid, curve, sims, V0, needed, ef, p, floors), "compression")
    for r in recs:
        ctx.record(*r, figure=name)


def _figure(grid, curve, sims, V0, needed, ef, p, floors):
    from matplotlib import ticker

    sd.plot.use_style("paper")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.4), width_ratios=(1.3, 1, 1))
    for n, (name, mse) in enumerate(curve.items()):
        c = sd.plot.PALETTE[n]
        ax1.plot(grid, mse, "-", color=c, lw=1.1, label=name + (" (sampling only)" if name == "none" else ""))
        pts = sorted((b, *v) for (nm, b), v in sims.items() if nm == name)
        b_, m_, e_ = np.array(pts).T
        ax1.errorbar(b_, m_, yerr=2 * e_, fmt="o", ms=3.2, color=c, mec="k", mew=0.4)
        if name in needed:
            ax1.plot(needed[name], curve[name][list(grid).index(needed[name])], "*", ms=8, color=c, mec="k", mew=0.4)
    first = ax1.legend(fontsize=5.5, loc="lower left", title="exact (lines)", title_fontsize=5.5)
    ax1.add_artist(first)
    marks = [ax1.axhline(V0, color="k", ls=":", lw=0.9, label=f"uncompressed at b0 = {p['reference_batch']}"),
             ax1.plot([], [], "k*", ms=7, label="batch needed to match it")[0],
             ax1.plot([], [], "ko", ms=3.2, label="simulation (± 2 SE)")[0]]
    ax1.set(xscale="log", yscale="log", xlabel="total batch b [count]", ylabel=r"$\mathbb{E}|\hat g-\nabla U|^2$ [a.u.]",
            title=f"server-average error, K = {p['workers']} workers", ylim=(None, 30 * V0))
    ax1.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax1.legend(handles=marks, fontsize=5.5, loc="upper right")
    none = curve["none"]
    for n, s in enumerate(p["levels"]):
        name = f"QSGD s={s}"
        c = sd.plot.PALETTE[1 + n]
        ratio = []
        for V in none:  # the uncompressed error at b0 = each grid value
            ok = np.nonzero(curve[name] <= V)[0]
            ratio.append(grid[ok[0]] if ok.size else np.nan)
        ax2.plot(grid, np.array(ratio) / grid, "o-", ms=2.2, color=c, lw=1, label=name)
        ax2.axvline(floors[name], color=c, ls=":", lw=1)
    ax2.plot([], [], "k:", lw=1, label=r"b0 where $\mathrm{tr}\Sigma_1/b_0$ = floor $q_s(G)/K$")
    ax2.set(xscale="log", xlabel="uncompressed batch b0 [count]", ylabel="batch needed / b0 [1]",
            title=f"batch restoring the error (b ≤ {grid[-1]})", ylim=(0, None))
    ax2.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax2.legend(fontsize=5.5, loc="upper left")
    for n, name in enumerate(["scaled sign", f"top-{p['topk']}"]):
        for feedback in (False, True):
            t, m, se, slope = ef[name, feedback]
            c = sd.plot.PALETTE[3 + n]
            keep = t > 0
            ax3.plot(t[keep], m[keep] / t[keep], "-" if feedback else "--", color=c, lw=1.1,
                     label=f"{name}, {'with' if feedback else 'no'} error feedback")
            ax3.fill_between(t[keep], (m - 2 * se)[keep] / t[keep], (m + 2 * se)[keep] / t[keep], color=c, alpha=0.3,
                             lw=0)
            if not feedback:
                ax3.axhline(slope, color="k", ls=":", lw=0.8)
    ax3.axhline(0.0, color="0.5", lw=0.6)
    ax3.plot([], [], "k:", lw=0.8, label="exact one-step bias")
    ax3.set(xscale="log", xlabel="step t [count]", ylabel="accumulated error / t, along the bias [a.u.]",
            title=f"accumulated update, b = {p['ef_batch']}")
    ax3.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax3.legend(fontsize=5.5, loc="center right", bbox_to_anchor=(1.0, 0.72))
    return fig
