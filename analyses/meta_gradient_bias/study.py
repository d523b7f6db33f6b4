"""Bias of the one-step MAML meta-gradient when the inner step and the outer gradient reuse one mini-batch.

The SGD integrator runs SGD; it does not expose the mini-batch it drew, so it cannot form a meta-gradient on
the same batch. The estimators are therefore simulated here with plain NumPy, vectorised over independent
mini-batch draws seeded through ``ctx.rng`` (B uniform indices with replacement, the law of the kernels'
with-replacement sampling). Theory: ``sd.theory.meta_gradient_bias`` and
``sd.theory.meta_gradient_expectation``.
"""

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th


def _problem(p):
    data = sd.problems.gaussian_regression(p["n_examples"], p["dim"], noise=p["label_noise"], seed=p["data_seed"],
                                           scales=p["feature_scales"])
    return sd.problems.LeastSquares.from_data(data)


def _meta_gradients(prob, theta, alpha, B, draws, seed, chunk=400000):
    """Samples of the same-batch and the independent-batch one-step meta-gradients (draws, d) each."""
    A, b = prob.affine_gradients()
    c = prob.n * prob.weights
    A2 = (A * c[:, None, None]).reshape(prob.n, -1)
    b2 = b * c[:, None]
    rng = np.random.default_rng(seed)
    d = prob.dim
    I = np.eye(d)
    same, indep = [], []
    start = 0
    while start < draws:
        r = min(chunk // B, draws - start)
        idx = rng.integers(0, prob.n, size=(2, r, B))  # S and S' (with replacement)
        HS, HT = A2[idx].mean(axis=2).reshape(2, r, d, d)
        cS, cT = b2[idx].mean(axis=2)
        phi = theta - alpha * (HS @ theta - cS)  # inner SGD step on S
        Pm = I - alpha * HS  # d phi / d theta
        same.append(np.einsum("rij,rj->ri", Pm, np.einsum("rij,rj->ri", HS, phi) - cS))
        indep.append(np.einsum("rij,rj->ri", Pm, np.einsum("rij,rj->ri", HT, phi) - cT))
        start += r
    return np.concatenate(same), np.concatenate(indep)


def run(ctx):
    p = ctx.params
    prob = _problem(p)
    theta = np.asarray(p["theta"], dtype=float)
    alphas, batches = p["inner_lrs"], p["batch_sizes"]
    sim = np.zeros((len(alphas), len(batches)))
    se = np.zeros_like(sim)
    theory = np.zeros_like(sim)
    size = np.zeros_like(sim)  # |E g_indep|: the size of the meta-gradient the bias is compared with
    pending = []
    for i, a in enumerate(alphas):
        for j, B in enumerate(batches):
            same, indep = _meta_gradients(prob, theta, a, B, p["draws"], ctx.rng(i, j))
            bias = th.meta_gradient_bias(prob, theta, a, B)
            J = th.meta_gradient_expectation(prob, theta, a, B)
            u = bias / np.linalg.norm(bias)
            proj = (same - indep) @ u  # paired difference: same S, so most of the sampling noise cancels
            sim[i, j], se[i, j] = proj.mean(), proj.std(ddof=1) / np.sqrt(proj.size)
            theory[i, j], size[i, j] = np.linalg.norm(bias), np.linalg.norm(J)
            if a == p["record_lr"] or B == p["record_batch"]:
                pending.append((f"bias along its direction, inner lr {a:g}, B = {B}", sim[i, j], se[i, j], theory[i, j]))
                # the rest of the bias vector: its components orthogonal to the exact direction must vanish
                ortho = np.linalg.svd(u[None, :])[2][1:]  # (d - 1, d) orthonormal complement of u
                for k, v in enumerate(ortho):
                    q = (same - indep) @ v
                    pending.append((f"bias orthogonal to its direction{'' if len(ortho) == 1 else f' ({k})'}, inner lr "
                                    f"{a:g}, B = {B}", q.mean(), q.std(ddof=1) / np.sqrt(q.size), 0.0))
            if a == p["record_lr"] and B == p["record_batch"]:
                # each estimator's mean against its exact expectation; the independent-batch one is unbiased for
                # grad E_S U(phi_S), the meta-objective with a mini-batch inner step
                Js = th.meta_gradient_expectation(prob, theta, a, B, same_batch=True)
                for k in range(prob.dim):
                    for what, g, t in (("independent-batch", indep, J), ("same-batch", same, Js)):
                        pending.append((f"{what} meta-gradient, component {k} (inner lr {a:g}, B = {B})",
                                        g[:, k].mean(), g[:, k].std(ddof=1) / np.sqrt(len(g)), t[k]))
    lead = 2 * np.linalg.norm(_leading_M(prob, theta))
    name = ctx.figure(_figure(alphas, batches, sim, se, theory, size, lead), "bias")
    for q in pending:
        ctx.record(*q, figure=name)


def _leading_M(prob, theta):
    """M(theta) = mean_i (A_i - H)(grad l_i(theta) - grad U(theta)): the leading-order bias is -2 alpha M / B."""
    return -th.meta_gradient_bias(prob, theta, 1e-9, 10**9) * 1e18 / 2


def _figure(alphas, batches, sim, se, theory, size, lead):
    from matplotlib import ticker

    sd.plot.use_style("paper")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=sd.plot.figsize(2, 0.42))
    fine_a = np.geomspace(min(alphas), max(alphas), 100)
    colors = sd.plot.PALETTE
    shown_b = [B for B in (1, 4, 16, 64) if B in batches]
    for n, B in enumerate(shown_b):
        j, c = batches.index(B), colors[n]
        ax1.errorbar(alphas, sim[:, j], yerr=2 * se[:, j], fmt="o", ms=3.5, color=c, mec="k", mew=0.4, label=f"B = {B}")
        ax1.plot(alphas, theory[:, j], "-", color=c, lw=1.2)
        ax1.plot(fine_a, lead * fine_a / B, ":", color=c, lw=0.9)
    ax1.plot([], [], "k-", lw=1.2, label="exact theory")
    ax1.plot([], [], "k:", lw=0.9, label=r"leading order $2\alpha|M|/B$")
    ax1.set(xscale="log", yscale="log", xlabel=r"inner learning rate $\alpha$ [1]",
            ylabel=r"bias $|\mathbb{E}\,\hat g_{\rm same} - \mathbb{E}\,\hat g_{\rm indep}|$ [a.u.]",
            title="bias against the inner learning rate")
    ax1.set_ylim(top=8 * theory.max())
    ax1.xaxis.set_major_locator(ticker.FixedLocator(alphas))
    ax1.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax1.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax1.legend(fontsize=6.5, loc="upper left", ncol=2)
    fine_b = np.geomspace(min(batches), max(batches), 100)
    shown_a = [a for a in (0.05, 0.2, 0.4) if a in alphas]
    for n, a in enumerate(shown_a):
        i, c = alphas.index(a), colors[4 + n]
        ax2.errorbar(batches, sim[i] / size[i], yerr=2 * se[i] / size[i], fmt="s", ms=3.5, color=c, mec="k", mew=0.4,
                     label=rf"$\alpha$ = {a:g}")
        ax2.plot(batches, theory[i] / size[i], "-", color=c, lw=1.2)
        ax2.plot(fine_b, lead * a / fine_b / np.interp(fine_b, batches, size[i]), ":", color=c, lw=0.9)
    ax2.set(xscale="log", yscale="log", xlabel="batch size B [count]",
            ylabel=r"relative bias $|b|\,/\,|\mathbb{E}\,\hat g_{\rm indep}|$ [1]",
            title="relative bias against the batch size (points: simulation ± 2 SE)")
    ax2.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax2.legend(fontsize=6.5, loc="lower left")
    return fig
