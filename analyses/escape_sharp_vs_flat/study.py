"""Escape from a sharp and a flat minimum of the same depth, by SGD with gradient noise 2T/eta (= Euler–Maruyama).

The landscape is a user landscape, U(x) = h (x^2 - 1)^2 exp(kappa tanh x): both minima (x = -1 flat, x = +1
sharp) have U = 0 exactly, so they are equally deep and share one barrier; kappa sets the curvature ratio
exp(2 kappa tanh 1) and h the barrier height. Every run starts from the Gibbs law and runs long enough for
many transitions each way; escape rates are counted between the two minima (passage_times between the cores
x <= -1 and x >= +1) and the residence probability is the fraction of time beyond the saddle. Theory: the
exact mean first-passage time of the Euler–Maruyama chain at its recorded steps and its exact stationary
density (Nyström, ``sd.theory.em_mfpt_1d`` / ``em_stationary_density_1d``); the continuous-time limit
(``mfpt_1d``, Gibbs) and Kramers' formula are drawn beside.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from scipy import optimize

import stochdyn as sd
from stochdyn import theory as th

FLAT, SHARP = -1.0, 1.0
NYSTROM = dict(cells_per_sigma=0.5)  # converged to ~3e-7 relative here (checked against 1, 2 and 4)


@sd.landscapes.landscape(dim=1, plot_bounds=[(-2.0, 2.0)])
def sharp_flat(x, grad, height=1.0, kappa=1.0):
    """U = height (x^2 - 1)^2 exp(kappa tanh x): minima at -1 (flat) and +1 (sharp), both at U = 0."""
    s = x[0]
    t = np.tanh(s)
    p = s * s - 1.0
    g = np.exp(kappa * t)
    grad[0] = height * g * (4.0 * s * p + kappa * p * p * (1.0 - t * t))
    return height * p * p * g


def _landscape(ratio, barrier):
    """The landscape with U''(+1)/U''(-1) = ratio and barrier height ``barrier``; its saddle and curvatures."""
    kappa = math.log(ratio) / (2.0 * math.tanh(1.0))
    unit = sharp_flat(height=1.0, kappa=kappa)
    top = optimize.minimize_scalar(lambda s: -float(unit.value(np.array([s]))), bounds=(-1.0, 1.0), method="bounded",
                                   options={"xatol": 1e-12})
    land = sharp_flat(height=barrier / -top.fun, kappa=kappa)
    curv = {k: float(land.hessian(np.array([x]))[0, 0]) for k, x in (("flat", FLAT), ("sharp", SHARP), ("saddle", top.x))}
    return land, float(top.x), curv


def _exact(land, saddle, T, eta, m):
    """Exact escape rates (flat -> sharp, sharp -> flat) counted at the records, and P(sharp basin), of the chain."""
    k_fs, k_sf = th.em_transition_rates_1d(land, FLAT, SHARP, T, eta, record_every=m, **NYSTROM)
    law = th.em_stationary_density_1d(land, eta, T, **NYSTROM)
    return k_fs, k_sf, law.probability(saddle), law


def _simulate(ctx, key, land, T, eta, m, replicas, cycles, k_fs, k_sf):
    """SGD with gradient noise 2T/eta from the Gibbs law: ``cycles`` expected transitions each way in the
    counting window, then a tail of 8 mean escape times in which every stay begun in the window ends
    (all but e^-8 of them). Returns the run, the burn-in (2 relaxation times of the occupation) and the
    end of the counting window, in time units."""
    t_rel = 1.0 / (k_fs + k_sf)
    window = cycles * (1.0 / k_fs + 1.0 / k_sf) / replicas
    n = m * math.ceil((window + 8.0 / min(k_fs, k_sf)) / (eta * m))
    gibbs = sd.analysis.gibbs_marginal(land, T)
    grid = np.linspace(*gibbs.bounds, 20001)
    u = np.random.default_rng(ctx.rng(*key, 0)).random(replicas)
    x0 = np.interp(u, gibbs.cdf(grid), grid)[:, None]
    ds = sd.simulate(sd.SGD(lr=eta, gradient_noise=2.0 * T / eta, record_extra=()), land, x0=x0,
                     n_replicas=replicas, n_steps=n, record_every=m, rng=ctx.rng(*key, 1))
    return ds, 2.0 * t_rel, window


def _counts(ds, source, target, eta, window):
    """Per replica: the stays committed to ``source`` that begin inside the counting window, and their total
    duration until ``target`` (time units; SGD's time coordinate is the step).

    Each replica's first stay is left out (it may begin without a transition, e.g. at the first record);
    every other stay begins with a transition from ``target``, at its entrance record. Which stays are
    counted is decided by the past only (a stopping time), so by Wald's identity E[total duration] =
    (mean stay) x E[number of stays]: the ratio of the two sums over replicas estimates the mean stay,
    1/k, without the censoring bias of a fixed window."""
    ev = sd.analysis.passage_times(ds, source, target)
    R = ds.sizes["replica"]
    rep = np.asarray(ev.replica.values, dtype=np.int64)
    t0 = ev.start_time.values * eta
    first = np.zeros(rep.size, dtype=bool)
    first[np.unique(rep, return_index=True)[1]] = True  # events are listed replica by replica, in time order
    use = ~first & (t0 < window)
    count = np.bincount(rep[use], minlength=R).astype(float)
    total = np.bincount(rep[use], weights=ev.duration.values[use] * eta, minlength=R)
    return count, total, int((~ev.reached.values[use]).sum()), ev


def _measure(ds, burn, window, eta, saddle):
    """Escape rates out of each minimum, their ratio and P(sharp basin), each with its SE over replicas."""
    c_s, t_s, cens_s, ev_s = _counts(ds, sd.analysis.interval(0, low=SHARP), sd.analysis.interval(0, high=FLAT),
                                     eta, window)
    c_f, t_f, cens_f, ev_f = _counts(ds, sd.analysis.interval(0, high=FLAT), sd.analysis.interval(0, low=SHARP),
                                     eta, window)
    out = {"censored": cens_s + cens_f, "events": (ev_s, ev_f), "stays": (int(c_s.sum()), int(c_f.sum()))}
    for name, c, t in (("sharp", c_s, t_s), ("flat", c_f, t_f)):
        est = sd.analysis.ratio(xr.DataArray(c, dims="replica"), xr.DataArray(t, dims="replica"), dims="replica")
        out[name] = (float(est.value), float(est.standard_error))
    # ratio of the two rates, (sum c_s / sum t_s) / (sum c_f / sum t_f): delta method over independent replicas
    a, b, c, f = c_s.mean(), t_s.mean(), c_f.mean(), t_f.mean()
    r = (a / b) / (c / f)
    z = r * (c_s / a - t_s / b - c_f / c + t_f / f)
    out["ratio"] = (r, z.std(ddof=1) / math.sqrt(z.size))
    x = ds.x.isel(dim=0)
    inside = (x > saddle).astype(float).where(ds.step * eta >= burn, drop=True)
    est = sd.analysis.average(inside, dims=("replica", "time"))
    out["p_sharp"] = (float(est.value), float(est.standard_error))
    return out


def _records(tag, res, k_fs, k_sf, ps):
    return [(f"escape rate from the sharp minimum, {tag}", *res["sharp"], k_sf),
            (f"escape rate from the flat minimum, {tag}", *res["flat"], k_fs),
            (f"rate ratio sharp/flat, {tag}", *res["ratio"], k_sf / k_fs),
            (f"probability of the sharp basin, {tag}", *res["p_sharp"], ps)]


def run(ctx):
    p = ctx.params
    land, saddle, curv = _landscape(p["curvature_ratio"], p["barrier"])
    dU, eta0, m0 = p["barrier"], p["lr"], p["record_every"]
    pending, temps = [], []
    for i, x in enumerate(p["barrier_over_T"]):
        T = dU / x
        k_fs, k_sf, ps, _ = _exact(land, saddle, T, eta0, m0)
        ds, burn, window = _simulate(ctx, (1, i), land, T, eta0, m0, p["replicas"], p["cycles"], k_fs, k_sf)
        res = _measure(ds, burn, window, eta0, saddle)
        temps.append(dict(T=T, x=x, k_fs=k_fs, k_sf=k_sf, ps=ps, res=res))
        tag = f"ΔU/T = {x:g}, lr = {eta0:g}"
        pending += _records(tag, res, k_fs, k_sf, ps)
    T0 = dU / p["barrier_over_T"][0]
    scan = []
    for j, eta in enumerate(p["lr_scan"]):
        m = max(1, round(m0 * eta0 / eta))  # about the same record spacing in time
        k_fs, k_sf, ps, law = _exact(land, saddle, T0, eta, m)
        ds, burn, window = _simulate(ctx, (2, j), land, T0, eta, m, p["replicas"], p["scan_cycles"], k_fs, k_sf)
        res = _measure(ds, burn, window, eta, saddle)
        scan.append(dict(eta=eta, m=m, k_fs=k_fs, k_sf=k_sf, ps=ps, res=res, law=law))
        tag = f"ΔU/T = {p['barrier_over_T'][0]:g}, lr = {eta:g}"
        pending += _records(tag, res, k_fs, k_sf, ps)
    name = ctx.figure(_figure(land, saddle, curv, dU, p, temps, scan), "escape")
    for q in pending:
        ctx.record(*q, figure=name)


def _figure(*args):
    with sd.plot.style("paper", columns=2):
        return _draw(*args)


def _draw(land, saddle, curv, dU, p, temps, scan):
    from matplotlib.lines import Line2D

    T0 = dU / p["barrier_over_T"][0]
    fig, axes = plt.subplots(2, 2, figsize=sd.plot.figsize(2, 0.86), layout="constrained")
    dot = dict(fmt="o", ms=3.5, mec="k", mew=0.4, capsize=0)
    colors = {"sharp": "C3", "flat": "C0"}

    # (a) the landscape and two stationary laws
    ax = axes[0, 0]
    s = np.linspace(-1.9, 1.75, 600)
    ax.plot(s, land.value(s[:, None]), color="0.2", lw=1.2, label="U(x)")
    lo, hi = -0.55 * dU, 2.3 * dU
    ax.set(xlabel="x [a.u.]", ylabel="U(x) [a.u.]", ylim=(lo, hi), xlim=(s[0], s[-1]))
    ax.set_yticks(np.arange(0.0, hi, 0.5 * dU))
    for x, what in ((FLAT, "flat"), (SHARP, "sharp")):  # labels under each minimum: nothing is drawn there
        ax.plot([x], [0.0], "v", ms=4, color="0.2")
        ax.text(x, -0.08 * dU, f"{what} minimum\nU'' = {curv[what]:.2g}", fontsize=6.5, ha="center", va="top")
    tw = ax.twinx()
    gibbs = sd.analysis.gibbs_marginal(land, T0)
    last = scan[-1]
    tw.plot(s, gibbs.pdf(s), color="C0", lw=1.0, ls="--", label=f"Gibbs density, T = {T0:.3g} (lr → 0)")
    tw.plot(s, last["law"](s), color="C1", lw=1.0, label=f"SGD, lr = {last['eta']:g}: exact stationary density")
    tw.set_ylabel("density [1/a.u.]")
    top = 2.1 * max(gibbs.pdf(s).max(), last["law"](s).max())
    tw.set_ylim(top * lo / hi, top)  # density 0 level with U = 0
    tw.set_yticks(np.arange(0.0, top, 0.5))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = tw.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", fontsize=6)
    ax.set_title(f"(a) equally deep minima (ΔU = {dU:g})", fontsize=8)

    # (b) Arrhenius: rates against Delta U / T
    ax = axes[0, 1]
    xs = np.linspace(min(t["x"] for t in temps) - 0.3, max(t["x"] for t in temps) + 0.3, 30)
    for which, start, end in (("sharp", SHARP, FLAT), ("flat", FLAT, SHARP)):
        col = colors[which]
        ax.plot(xs, [1.0 / th.mfpt_1d(land, start, end, dU / x) for x in xs], color=col, lw=1.2)
        ax.plot(xs, [th.kramers_rate(dU / x, dU, curv[which], curv["saddle"]) for x in xs], color=col, lw=0.9, ls=":")
        key = "k_sf" if which == "sharp" else "k_fs"
        ax.plot([t["x"] for t in temps], [t[key] for t in temps], "_", color="k", ms=10, mew=1.0)
        ax.errorbar([t["x"] for t in temps], [t["res"][which][0] for t in temps],
                    yerr=[2 * t["res"][which][1] for t in temps], color=col, **dot)
    handles = [Line2D([], [], color=colors["sharp"], marker="o", ms=3.5, mec="k", mew=0.4, lw=0,
                      label=f"from the sharp minimum: SGD, lr = {p['lr']:g} (±2 SE)"),
               Line2D([], [], color=colors["flat"], marker="o", ms=3.5, mec="k", mew=0.4, lw=0,
                      label="from the flat minimum: SGD (±2 SE)"),
               Line2D([], [], color="k", marker="_", ms=10, mew=1.0, lw=0, label="exact at this lr, on the records"),
               Line2D([], [], color="0.3", lw=1.2, label="exact, continuous time (lr → 0)"),
               Line2D([], [], color="0.3", lw=0.9, ls=":", label="Kramers (high barrier)")]
    ax.legend(handles=handles, fontsize=6, loc="lower left")
    ax.set(yscale="log", xlabel="barrier / temperature ΔU/T [dimensionless]", ylabel="escape rate [1/t], t = η × steps")
    ax.set_ylim(bottom=0.12 * min(min(t["k_fs"], t["k_sf"]) for t in temps))
    ax.set_title("(b) the sharp minimum is left faster, at every T", fontsize=8)

    # (c), (d): learning-rate scan at T0 (exact curves: every step seen)
    from scipy.interpolate import PchipInterpolator

    nodes = np.linspace(p["lr"], 0.075, p["curve_points"])
    exact_nodes = np.array([_exact(land, saddle, T0, e, 1)[:3] for e in nodes])
    etas = np.linspace(nodes[0], nodes[-1], 200)  # monotone cubic through the exact values (log for the rates)
    smooth = [np.exp(PchipInterpolator(nodes, np.log(exact_nodes[:, 0]))(etas)),
              np.exp(PchipInterpolator(nodes, np.log(exact_nodes[:, 1]))(etas)),
              PchipInterpolator(nodes, exact_nodes[:, 2])(etas)]
    exact = list(zip(*smooth))
    pts = [dict(eta=p["lr"], res=temps[0]["res"], k_fs=temps[0]["k_fs"], k_sf=temps[0]["k_sf"])] + scan
    edge = 2.0 / curv["sharp"]
    ax = axes[1, 0]
    ax.plot(etas, [e[2] for e in exact], color="C3", lw=1.2, label="exact stationary law of SGD")
    ax.axhline(gibbs.expectation(lambda x: (x > saddle).astype(float)), color="0.3", ls="--", lw=0.9,
               label="Gibbs (lr → 0)")
    ax.axhline(0.5, color="0.6", ls=":", lw=0.9, label="1/2: equal depth without entropy")
    ax.errorbar([q["eta"] for q in pts], [q["res"]["p_sharp"][0] for q in pts],
                yerr=[2 * q["res"]["p_sharp"][1] for q in pts], color="C3", label="SGD (±2 SE)", **dot)
    ax.axvline(edge, color="0.5", lw=0.7, ls="-.")
    ax.text(edge, 0.4, "lr = 2/U''(sharp) ", fontsize=6.5, ha="right", rotation=90, va="center")
    ax.set(xlabel="learning rate η (the time step) [a.u.]", ylabel="P(sharp basin) [dimensionless]", ylim=(0, 0.56),
           xlim=(0, 0.11))
    ax.legend(fontsize=6, loc="lower left")
    ax.set_title(f"(c) time in the sharp basin, ΔU/T = {p['barrier_over_T'][0]:g}", fontsize=8)

    ax = axes[1, 1]
    for which, idx, key in (("sharp", 1, "k_sf"), ("flat", 0, "k_fs")):
        ax.plot(etas, [e[idx] for e in exact], color=colors[which], lw=1.2)
        ax.plot([q["eta"] for q in pts], [q[key] for q in pts], "_", color="k", ms=10, mew=1.0)
        ax.errorbar([q["eta"] for q in pts], [q["res"][which][0] for q in pts],
                    yerr=[2 * q["res"][which][1] for q in pts], color=colors[which], **dot)
    handles = [Line2D([], [], color=colors["sharp"], marker="o", ms=3.5, mec="k", mew=0.4, lw=0,
                      label="from the sharp minimum: SGD (±2 SE)"),
               Line2D([], [], color=colors["flat"], marker="o", ms=3.5, mec="k", mew=0.4, lw=0,
                      label="from the flat minimum: SGD (±2 SE)"),
               Line2D([], [], color="k", marker="_", ms=10, mew=1.0, lw=0, label="exact, on the records"),
               Line2D([], [], color="0.3", lw=1.2, label="exact, every step seen")]
    ax.axvline(edge, color="0.5", lw=0.7, ls="-.")
    from matplotlib import ticker

    ax.set(yscale="log", xlabel="learning rate η (the time step) [a.u.]", ylabel="escape rate [1/t], t = η × steps", xlim=(0, 0.11),
           ylim=(0.01, 0.6))
    ax.yaxis.set_major_locator(ticker.FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5]))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.legend(handles=handles, fontsize=6, loc="upper left")
    ax.set_title(f"(d) escape rates against lr, ΔU/T = {p['barrier_over_T'][0]:g}", fontsize=8)
    return fig
