"""SGD as the Euler–Maruyama chain of overdamped Langevin dynamics: where the analogy is exact, and where not.

Part 1, the idealised model (DoubleWell, dim 2): ``SGD(lr=eta, gradient_noise=2T/eta)`` and
``EulerMaruyama(dt=eta, temperature=T)`` are run from the same seed and compared bit for bit (the study
stops with an error if they differ); the stationary law of that chain is compared with its exact
finite-step law (``sd.theory.em_stationary_density_1d``, Nyström, for the double-well coordinate; the
closed form T/(k(1 - k eta/2)) for the harmonic one) through the configurational temperature
<|U'|^2>/<U''> of each coordinate, which equals T for the Gibbs law.

Part 2, real mini-batch SGD on least squares: the gradient noise of actual SGD steps (one step with
lr = 1 from a fixed point, so the step *is* minus the mini-batch gradient) against its exact covariance
(``gradient_noise_covariance``); the stationary covariance in the Hessian's eigenbasis against the exact
second-moment recursion (``sgd_stationary_covariance``): the temperature of each mode h_k C_kk, equal
for every mode under Gibbs; and the shape of the stationary law (excess kurtosis, 0 for a Gaussian)
against ``sgd_stationary_moments_1d`` for one parameter.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error

# DoubleWell(dim=2) with its defaults: U = (x0^2 - 1)^2 + x1^2 / 2
DW_D1 = lambda s: 4.0 * s * (s * s - 1.0)  # noqa: E731
DW_D2 = lambda s: 12.0 * s * s - 4.0  # noqa: E731


def mean_se(per_replica):
    """Mean over independent replicas (axis 0) and its standard error from batches of replicas (the values are
    squares: the plug-in SE, a sample fourth moment, would shrink with the estimate)."""
    m, se = batch_standard_error(np.asarray(per_replica, dtype=float))
    return float(m), float(se)


def em_configurational_temperatures(eta, T):
    """Exact <U'^2>/<U''> of each coordinate under the Euler–Maruyama chain's stationary law."""
    law = th.em_stationary_density_1d(sd.landscapes.DoubleWell(dim=1), eta, T)
    return law.expectation(lambda s: DW_D1(s) ** 2) / law.expectation(DW_D2), th.em_harmonic_variance(1.0, eta, T)


# ------------------------------------------------------------------------------------------------
# part 1: the idealised model is Euler–Maruyama
# ------------------------------------------------------------------------------------------------
def idealised(ctx, p):
    land = sd.landscapes.DoubleWell(dim=2)
    T = p["temperature"]
    runs = []
    for i, eta in enumerate(p["lrs"]):
        m = max(1, round(p["record_time"] / eta))
        burn = math.ceil(p["burn_time"] / (eta * m))  # records
        n = m * (burn + math.ceil(p["sample_time"] / (eta * m)))
        sgd = sd.simulate(sd.SGD(lr=eta, gradient_noise=2.0 * T / eta, record_extra=()), land, x0=[-1.0, 0.0],
                          n_replicas=p["replicas"], n_steps=n, record_every=m, rng=ctx.rng(1, i))
        em = sd.simulate(sd.EulerMaruyama(dt=eta, temperature=T), land, x0=[-1.0, 0.0], n_steps=n, record_every=m,
                         rng=ctx.rng(1, i), replicas=list(range(p["identity_replicas"])))
        a = sgd.x.isel(replica=slice(0, p["identity_replicas"])).values
        if not np.array_equal(a, em.x.values):
            raise AssertionError(f"SGD(lr={eta}, gradient_noise={2 * T / eta}) and EulerMaruyama(dt={eta}, T={T}) "
                                 f"differ by up to {np.max(np.abs(a - em.x.values)):.3g}: they should be one chain")
        est = sd.analysis.configurational_temperature(sgd, land, per_coordinate=True, burn_in=burn)
        runs.append(dict(eta=eta, sgd=sgd, em=em, burn=burn, tconf=est, exact=em_configurational_temperatures(eta, T),
                         compared=a.size))
    return land, runs


# ------------------------------------------------------------------------------------------------
# part 2: real mini-batch noise on least squares
# ------------------------------------------------------------------------------------------------
def least_squares(p, d):
    data = sd.problems.gaussian_regression(p["n_examples"], d, noise=p["label_noise"], seed=p["data_seed"],
                                           scales=p["feature_scales"][:d])
    return sd.problems.LeastSquares.from_data(data)


def noise_samples(ctx, key, prob, theta, B, sampling, draws):
    """xi = g_hat - grad U at theta, from one real SGD step per replica with lr = 1 (the step is -g_hat)."""
    ds = sd.simulate(sd.SGD(lr=1.0, batch_size=B, sampling=sampling, record_extra=()), prob, x0=theta,
                     n_replicas=draws, n_steps=1, rng=ctx.rng(*key))
    return theta - ds.x.isel(time=-1).values - prob.grad(theta)


def gradient_noise(ctx, p, prob):
    ts = prob.minimizer()
    h, V = np.linalg.eigh(prob.hessian)  # ascending: V[:, 0] soft, V[:, 1] stiff
    B, draws = p["noise_batch"], p["noise_draws"]
    xi = noise_samples(ctx, (2, 0), prob, ts, B, None, draws)
    S = th.gradient_noise_covariance(prob, ts, B)
    recs = [(f"tr Cov(xi) at theta*, B = {B} (with replacement)", *mean_se((xi**2).sum(axis=1)), np.trace(S)),
            (f"Var(xi) along the stiff Hessian direction, B = {B}", *mean_se((xi @ V[:, 1]) ** 2), V[:, 1] @ S @ V[:, 1]),
            (f"Var(xi) along the soft Hessian direction, B = {B}", *mean_se((xi @ V[:, 0]) ** 2), V[:, 0] @ S @ V[:, 0])]
    theta = ts + np.asarray(p["offset"], dtype=float)
    xi_off = noise_samples(ctx, (2, 1), prob, theta, B, None, draws)
    recs.append((f"tr Cov(xi) at theta* + {p['offset']}, B = {B}", *mean_se((xi_off**2).sum(axis=1)),
                 np.trace(th.gradient_noise_covariance(prob, theta, B))))
    Bf = p["fpc_batch"]
    xi_f = noise_samples(ctx, (2, 2), prob, ts, Bf, sd.Sampling("without_replacement"), draws)
    recs.append((f"tr Cov(xi) at theta*, B = {Bf} of N = {prob.n} without replacement", *mean_se((xi_f**2).sum(axis=1)),
                 np.trace(th.gradient_noise_covariance(prob, ts, Bf, "without_replacement"))))
    return dict(xi=xi, S=S, V=V, h=h, B=B, records=recs)


def stationary_modes(ctx, p, prob):
    """Stationary covariance of real SGD in the Hessian's eigenbasis: the temperature h_k C_kk of each mode."""
    ts = prob.minimizer()
    h, V = np.linalg.eigh(prob.hessian)
    B = p["stationary_batch"]
    eta_max = th.sgd_stability_limit(prob, B)
    out = []
    for j, f in enumerate(p["stationary_fractions"]):
        eta = f * eta_max
        m = math.ceil(1.0 / (eta * h[0]))  # a relaxation time of the slowest mode, in steps
        ds = sd.simulate(sd.SGD(lr=eta, batch_size=B, record_extra=()), prob, x0=ts,
                         n_replicas=p["stationary_replicas"], n_steps=30 * m, record_every=m, rng=ctx.rng(3, j))
        e = ds.x.values[:, 11:, :] - ts  # after 10 relaxation times
        modes = h * (e @ V) ** 2  # (replica, record, mode): h_k (v_k . e)^2
        C = th.sgd_stationary_covariance(prob, eta, B)
        out.append(dict(eta=eta, f=f, sim=[mean_se(modes[:, :, k].mean(axis=1)) for k in range(2)],
                        exact=[h[k] * V[:, k] @ C @ V[:, k] for k in range(2)]))
    return dict(runs=out, eta_max=eta_max, h=h, V=V, B=B)


def excess_kurtosis(ctx, p, prob):
    """Excess kurtosis of the stationary law of one-parameter SGD (B = 1): simulated and exact."""
    ts = prob.minimizer()[0]
    H = float(prob.hessian[0, 0])
    eta_max = th.sgd_stability_limit(prob, 1)
    out = []
    for j, f in enumerate(p["kurtosis_fractions"]):
        eta = f * eta_max
        mom = th.sgd_stationary_moments_1d(prob, eta, 1, order=8)  # the 8th moment is finite: the SE is valid
        m = math.ceil(1.0 / (eta * H))
        ds = sd.simulate(sd.SGD(lr=eta, batch_size=1, record_extra=()), prob, x0=[ts],
                         n_replicas=p["kurtosis_replicas"], n_steps=110 * m, record_every=m, rng=ctx.rng(4, j))
        e = ds.x.isel(dim=0).values[:, 11:] - ts
        u, v = (e**2).mean(axis=1), (e**4).mean(axis=1)  # per replica; the stationary mean is exactly theta*
        k, se = batch_standard_error(np.column_stack([u, v]), lambda a: a[:, 1].mean() / a[:, 0].mean() ** 2 - 3.0)
        out.append(dict(eta=eta, f=f, sim=(float(k), float(se)), exact=mom[4] / mom[2] ** 2 - 3.0))
    lo, hi = 0.0, 1.0  # the learning rate (fraction of lr_max) beyond which the 4th moment is infinite
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        try:
            th.sgd_stationary_moments_1d(prob, mid * eta_max, 1, order=4)
            lo = mid
        except ValueError:
            hi = mid
    curve = []
    for f in np.linspace(0.01, 0.985 * lo, 120):
        mom = th.sgd_stationary_moments_1d(prob, f * eta_max, 1, order=4)
        curve.append((f, mom[4] / mom[2] ** 2 - 3.0))
    return dict(runs=out, curve=np.array(curve), eta_max=eta_max, limit=lo)


def run(ctx):
    p = ctx.params
    T = p["temperature"]
    land, runs = idealised(ctx, p)
    fig1 = ctx.figure(_figure_idealised(land, runs, T), "idealised")
    for r in runs:
        for k, name in ((0, "x0 (double well)"), (1, "x1 (harmonic)")):
            est = r["tconf"].isel(dim=k)
            ctx.record(f"configurational temperature of {name}, lr = {r['eta']:g}", float(est.value),
                       float(est.standard_error), r["exact"][k], figure=fig1)
    prob2, prob1 = least_squares(p, 2), least_squares(p, 1)
    noise = gradient_noise(ctx, p, prob2)
    modes = stationary_modes(ctx, p, prob2)
    kurt = excess_kurtosis(ctx, p, prob1)
    fig2 = ctx.figure(_figure_real(prob2, noise, modes, kurt), "real_sgd")
    for q in noise["records"]:
        ctx.record(*q, figure=fig2)
    for r in modes["runs"]:
        for k, name in ((1, "stiff"), (0, "soft")):
            ctx.record(f"temperature h_k C_kk of the {name} mode, lr = {r['f']:g} lr_max (B = {modes['B']})",
                       *r["sim"][k], r["exact"][k], figure=fig2)
    for r in kurt["runs"]:
        ctx.record(f"excess kurtosis of the stationary law (1 parameter, B = 1), lr = {r['f']:g} lr_max", *r["sim"],
                   r["exact"], figure=fig2)


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def _figure_idealised(land, runs, T):
    with sd.plot.style("paper", columns=2):
        fig, axes = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.4), layout="constrained")
        r0 = runs[0]
        ax = axes[0]
        s = r0["sgd"].sel(replica=0)
        keep = s.time.values * r0["eta"] <= 30.0
        ax.plot(s.time.values[keep] * r0["eta"], s.x.isel(dim=0).values[keep], color="C0", lw=0.8,
                label=f"SGD, lr = {r0['eta']:g}, noise 2T/lr")
        e = r0["em"].sel(replica=0)
        keep = e.time.values <= 30.0
        ax.plot(e.time.values[keep][::3], e.x.isel(dim=0).values[keep][::3], "o", ms=2.4, mfc="none", color="k",
                mew=0.5, label="Euler–Maruyama, same seed")
        ax.set(xlabel="time t = steps × η [a.u.]", ylabel="$x_0$ [a.u.]", ylim=(-2.1, 2.6))
        ax.legend(fontsize=6, loc="upper left", ncol=1)
        ax.set_title(f"(a) one chain: {sum(r['compared'] for r in runs)} values equal", fontsize=7.5)

        ax = axes[1]
        sd.plot.histogram_vs_gibbs({f"SGD, lr = {r0['eta']:g}": r0["sgd"]}, land, T, burn_in=r0["burn"], ax=ax,
                                   gibbs_label="Gibbs (lr → 0)")
        law = th.em_stationary_density_1d(sd.landscapes.DoubleWell(dim=1), r0["eta"], T)
        s = np.linspace(*ax.get_xlim(), 400)
        ax.plot(s, law(s), color="C3", lw=1.0, label="exact law at this lr")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=6, borderaxespad=0.1)
        ax.text(0.02, 0.96, "(b)", transform=ax.transAxes, fontsize=7.5, va="top")
        ax.set_xlabel("$x_0$ [a.u.]")

        ax = axes[2]
        etas = np.linspace(min(r["eta"] for r in runs) / 2, max(r["eta"] for r in runs) * 1.3, 14)
        ex = np.array([em_configurational_temperatures(e, T) for e in etas])
        for k, (name, col) in enumerate((("$x_0$ (double well)", "C0"), ("$x_1$ (harmonic)", "C2"))):
            ax.plot(etas, ex[:, k], color=col, lw=1.1, label=f"{name}: exact at this lr")
            ax.errorbar([r["eta"] for r in runs], [float(r["tconf"].value[k]) for r in runs],
                        yerr=[2 * float(r["tconf"].standard_error[k]) for r in runs], fmt="o", ms=3.5, color=col,
                        mec="k", mew=0.4, label=f"{name}: SGD (±2 SE)")
        ax.axhline(T, color="0.3", ls="--", lw=0.9, label=f"Gibbs: T = {T:g}")
        ax.set(xlabel="learning rate η [a.u.]", ylabel="⟨U'²⟩/⟨U''⟩ [a.u.]", xlim=(0, None))
        ax.legend(fontsize=6, loc="upper left")
        ax.set_title("(c) configurational temperature", fontsize=7.5)
    return fig


def _figure_real(prob, noise, modes, kurt):
    with sd.plot.style("paper", columns=2):
        fig, axes = plt.subplots(1, 3, figsize=sd.plot.figsize(2, 0.4), layout="constrained")
        ax = axes[0]
        xi, S = noise["xi"], noise["S"]
        ax.plot(xi[:3000, 0], xi[:3000, 1], ".", ms=1.5, color="0.55", alpha=0.6, label="mini-batch noise ξ (SGD steps)")
        t = np.linspace(0, 2 * np.pi, 200)
        circle = np.vstack([np.cos(t), np.sin(t)])
        w, U = np.linalg.eigh(S)
        ell = U @ (2.0 * np.sqrt(w)[:, None] * circle)
        ax.plot(ell[0], ell[1], color="C3", lw=1.2, label="exact covariance (2 sd)")
        r = 2.0 * math.sqrt(np.trace(S) / 2)
        ax.plot(r * circle[0], r * circle[1], color="C0", lw=1.0, ls="--", label="isotropic, same trace (2T/η·I)")
        L = 1.7 * r
        ax.set(xlabel="ξ₁ [a.u.]", ylabel="ξ₂ [a.u.]", aspect="equal", xlim=(-L, L), ylim=(-L, L))
        ax.legend(fontsize=5.5, loc="upper left")
        ax.set_title(f"(a) gradient noise at θ*, B = {noise['B']}", fontsize=7.5)

        ax = axes[1]
        fr = np.linspace(0.02, 0.95, 40)
        h, V = modes["h"], modes["V"]
        ex = []
        for f in fr:
            C = th.sgd_stationary_covariance(prob, f * modes["eta_max"], modes["B"])
            ex.append([h[k] * V[:, k] @ C @ V[:, k] for k in range(2)])
        ex = np.array(ex)
        for k, (name, col) in enumerate((("soft mode", "C0"), ("stiff mode", "C3"))):
            ax.plot(fr, ex[:, k], color=col, lw=1.1, label=f"{name}: exact")
            ax.errorbar([r["f"] for r in modes["runs"]], [r["sim"][k][0] for r in modes["runs"]],
                        yerr=[2 * r["sim"][k][1] for r in modes["runs"]], fmt="o", ms=3.5, color=col, mec="k", mew=0.4,
                        label=f"{name}: SGD (±2 SE)")
        S1 = th.gradient_noise_covariance(prob, prob.minimizer(), 1)
        ax.plot(fr, th.effective_temperature(fr * modes["eta_max"], S1 / modes["B"]), color="0.3", ls="--", lw=0.9,
                label="ηtrΣ/(2dB): one T for all (Gibbs)")
        ax.set(yscale="log", xlabel=f"lr / lr_max(B = {modes['B']}) [dimensionless]", ylabel="mode temperature h_k C_kk [a.u.]")
        ax.legend(fontsize=5.5, loc="lower right")
        ax.set_title("(b) stationary law: modes at different T", fontsize=7.5)

        ax = axes[2]
        c = kurt["curve"]
        ax.plot(c[:, 0], c[:, 1], color="C3", lw=1.1, label="exact (moment recursion)")
        ax.axvline(kurt["limit"], color="0.5", lw=0.7, ls="-.")
        ax.text(kurt["limit"], 3.0, "4th moment\ninfinite → ", fontsize=6, ha="right")
        ax.set_ylim(-0.5, 4.0)
        ax.axhline(0.0, color="0.3", ls="--", lw=0.9, label="Gaussian")
        ax.errorbar([r["f"] for r in kurt["runs"]], [r["sim"][0] for r in kurt["runs"]],
                    yerr=[2 * r["sim"][1] for r in kurt["runs"]], fmt="o", ms=3.5, color="C3", mec="k", mew=0.4,
                    label="SGD (±2 SE)")
        ax.set(xlabel="lr / lr_max(B = 1) [dimensionless]", ylabel="excess kurtosis [dimensionless]")
        ax.legend(fontsize=6, loc="upper left")
        ax.set_title("(c) one parameter: not Gaussian", fontsize=7.5)
    return fig
