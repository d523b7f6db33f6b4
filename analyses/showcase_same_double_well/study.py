"""Showcase: three dynamics on one tilted double well at one temperature, against one Gibbs density.

* Langevin: ``EulerMaruyama(dt, T)`` with a small step.
* SGD: ``SGD(lr, gradient_noise=2T/lr)`` — exact gradient plus Gaussian gradient noise, the idealised
  model of mini-batch noise; it is the Euler–Maruyama chain with dt = lr (docs/sgd-as-langevin.md).
* Evolution: a ``WrightFisher`` population of N haploid individuals with W = exp(-s U), rare mutations
  (N mu << 1) of scale comparable to the well separation; the walker is the population's type (its
  majority trait — the population mean whenever the population is monomorphic). In the weak-mutation
  limit its law is the origin–fixation law, Boltzmann at beta = 2(N-1)s up to nu(r) < 2(N-1) for large
  jumps (``sd.theory.origin_fixation_density``); N = 5, s = 0.25 gives beta = 2 = 1/T.

All runs start in the left well (x = -1) and are measured after a burn-in of many relaxation times.
Records per dynamics: P(x > 0), <x^2> and a chi-square of the binned law (Hotelling's T^2 over
replicas, Wilson–Hilferty cube root), against the exact stationary law of that dynamics: the exact
finite-step law (Nyström, ``sd.theory.em_stationary_density_1d``) for Langevin and SGD, the exact
weak-mutation law for the population. The figure draws the one Gibbs density they all approximate.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import chi_square_quantile

BOUNDS = (-2.0, 2.0)


def _resident(x):
    """The most common trait of each population (x: (..., N)); the population mean when monomorphic."""
    counts = (x[..., :, None] == x[..., None, :]).sum(-1)
    return np.take_along_axis(x, counts.argmax(-1)[..., None], -1)[..., 0]


def _edges(gibbs, bins):
    """Bin edges at equal Gibbs probability (the outer bins open), so every bin is well populated."""
    grid = np.linspace(*gibbs.bounds, 20001)
    e = np.interp(np.linspace(0.0, 1.0, bins + 1), gibbs.cdf(grid), grid)
    e[0], e[-1] = -np.inf, np.inf
    return e


class _Law:
    """A 1-D stationary law: pdf, bin probabilities, P(x > 0) and <x^2>."""

    def __init__(self, name, pdf, bin_probabilities, expectation, probability_right):
        self.name, self.pdf, self.bin_probabilities = name, pdf, bin_probabilities
        self.p_right = probability_right
        self.x2 = expectation(lambda v: v**2)


def _gibbs(land, T):
    g = sd.analysis.gibbs_marginal(land, T)
    lo, hi = g.bounds
    law = _Law("Gibbs", g.pdf, lambda e: g.bin_probabilities(np.clip(e, lo, hi)), g.expectation,
               float(g.bin_probabilities([0.0, hi])[0]))
    law.bounds, law.cdf = g.bounds, g.cdf
    return law


def _grid_law(name, g):
    return _Law(name, g, lambda e: np.array([g.probability(a, b) for a, b in zip(e[:-1], e[1:])]), g.expectation,
                g.probability(0.0))


def _measure(samples, law, edges, binned=True):
    """Per-replica time averages -> P(x > 0), <x^2> with SE over replicas; binned chi-square (Hotelling T^2)."""
    R = samples.shape[0]
    pr = (samples > 0).mean(1)
    x2 = (samples**2).mean(1)
    if not binned:
        return dict(P=(pr.mean(), pr.std(ddof=1) / math.sqrt(R)), X2=(x2.mean(), x2.std(ddof=1) / math.sqrt(R)))
    K = edges.size - 1
    f = np.stack([((samples >= a) & (samples < b)).mean(1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    d = f.mean(0) - law.bin_probabilities(edges)
    S = np.cov(f[:, :-1], rowvar=False) / R  # drop one bin: the fractions sum to 1
    t2 = float(d[:-1] @ np.linalg.solve(S, d[:-1]))
    k = K - 1
    x2stat = t2 * (R - k) / (R - 1)  # Hotelling's T^2 scaled to ~ chi^2_k (F(k, R-k) times k)
    return dict(P=(pr.mean(), pr.std(ddof=1) / math.sqrt(R)), X2=(x2.mean(), x2.std(ddof=1) / math.sqrt(R)),
                chi2=x2stat, k=k, wh=((x2stat / k) ** (1 / 3), math.sqrt(2 / (9 * k)), 1 - 2 / (9 * k)),
                hist=np.histogram(samples.ravel(), bins=np.linspace(*BOUNDS, 41), density=True),
                hist_se=_hist_se(samples))


def _hist_se(samples):
    """Density of 40 bins on BOUNDS with SE over replicas (each replica's own histogram)."""
    e = np.linspace(*BOUNDS, 41)
    w = e[1] - e[0]
    per = np.stack([np.histogram(s, bins=e)[0] / (s.size * w) for s in samples])
    return 0.5 * (e[1:] + e[:-1]), per.mean(0), per.std(0, ddof=1) / math.sqrt(per.shape[0])


def run(ctx):
    p = ctx.params
    T, R = p["temperature"], p["replicas"]
    land = sd.landscapes.DoubleWell(dim=1, tilt=p["tilt"])
    gibbs = _gibbs(land, T)
    edges = _edges(gibbs, p["bins"])
    R_wf = p["population_replicas"]
    burn, meas, every = p["burn_in_time"], p["measure_time"], p["record_time"]
    results = {}

    # Langevin (Euler-Maruyama, small step)
    dt = p["langevin_dt"]
    m = round(every / dt)
    n = m * math.ceil((burn + meas) / (m * dt))
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), land, x0=[-1.0], n_replicas=R, n_steps=n,
                     record_every=m, rng=ctx.rng(1))
    x = ds.x.isel(dim=0).values[:, ds.time.values > burn]
    em_law = _grid_law("Euler–Maruyama (exact, finite dt)", th.em_stationary_density_1d(land, dt, T))
    results["langevin"] = dict(law=em_law, **_measure(x, em_law, edges))

    # SGD with gradient noise 2T/lr
    lr = p["sgd_lr"]
    m = round(every / lr)
    n = m * math.ceil((burn + meas) / (m * lr))
    ds = sd.simulate(sd.SGD(lr=lr, gradient_noise=2.0 * T / lr, record_extra=()), land, x0=[-1.0], n_replicas=R,
                     n_steps=n, record_every=m, rng=ctx.rng(2))
    x = ds.x.isel(dim=0).values[:, ds.step.values * lr > burn]
    sgd_law = _grid_law("SGD (exact, finite lr)", th.em_stationary_density_1d(land, lr, T))
    results["sgd"] = dict(law=sgd_law, **_measure(x, sgd_law, edges))

    # Wright-Fisher population in the weak-mutation regime
    N = p["population_size"]
    s = 1.0 / (2.0 * (N - 1) * T)
    wf_law = _grid_law("Wright–Fisher (weak mutation, exact)",
                       th.origin_fixation_density(land, N, s, p["mutation_scale"], "wright-fisher"))
    pop, mono, mean_P = _population(ctx, p, land, s, p["n_mu"], 3)
    results["wf"] = dict(law=wf_law, s=s, N=N, mono=mono, mean_P=mean_P, **_measure(pop, wf_law, edges))
    # the O(N mu) shift, computed: independent runs at larger N mu, a line through the exact N mu -> 0 value
    shift = {q: [] for q in ("P", "X2")}
    for j, nmu in enumerate(p["shift_n_mu"]):
        pop_j, _, _ = _population(ctx, p, land, s, nmu, 4, j)
        m = _measure(pop_j, wf_law, edges, binned=False)
        for q in shift:
            shift[q].append((nmu, *m[q]))
    limit = {"P": wf_law.p_right, "X2": wf_law.x2}
    results["wf"]["shift"] = {q: _slope_through(np.array(shift[q]), limit[q]) for q in shift}

    fig = ctx.figure(_figure(p, land, gibbs, results), "three_dynamics")
    nmu0 = p["n_mu"]
    names = {"langevin": f"Langevin (EM, dt = {dt:g})", "sgd": f"SGD (lr = {lr:g}, noise 2T/lr)",
             "wf": f"Wright–Fisher (N = {N}, s = {s:g}, Nμ = {p['n_mu']:g})"}
    against = {"langevin": "exact finite-dt law", "sgd": "exact finite-lr law", "wf": "exact weak-mutation law"}
    for key, r in results.items():
        law = r["law"]
        ctx.record(f"{names[key]}: P(x > 0) vs {against[key]}", *r["P"], law.p_right, figure=fig)
        ctx.record(f"{names[key]}: <x^2> vs {against[key]}", *r["X2"], law.x2, figure=fig)
        ctx.record(f"{names[key]}: binned law vs {against[key]}, chi-square over {r['k'] + 1} bins "
                   "(Hotelling T², Wilson–Hilferty (X²/k)^(1/3))", *r["wh"], figure=fig)
    wf = results["wf"]
    runs = ", ".join(f"{v:g}" for v in p["shift_n_mu"])
    for q, what in (("P", "P(x > 0)"), ("X2", "<x^2>")):
        f = wf["shift"][q]
        v, se = wf[q]
        limit = wf["law"].p_right if q == "P" else wf["law"].x2
        ctx.record(f"{names['wf']}: {what} vs exact weak-mutation law + O(Nμ) shift {f['b'] * nmu0:+.2g} "
                   f"(slope from independent runs at Nμ = {runs})", v, math.hypot(se, nmu0 * f["se"]),
                   limit + f["b"] * nmu0, figure=fig)
        ctx.record(f"Wright–Fisher {what}: goodness of the line through the exact Nμ → 0 value over Nμ = {runs} "
                   f"(chi-square {f['chi2']:.2f} on {f['dof']} dof, as a normal quantile)",
                   chi_square_quantile(f["chi2"], f["dof"]), 1.0, 0.0, figure=fig)


def _population(ctx, p, land, s, nmu, *key):
    """Wright-Fisher populations from the left well: burn-in and measurement scaled by N mu (as for the main run),
    recorded every ``record_generations``. Returns the type (majority trait) after burn-in (replica, record), the
    fraction of monomorphic records and P(population mean > 0)."""
    N, every = p["population_size"], p["record_generations"]
    scale = p["n_mu"] / nmu
    burn = every * math.ceil(p["burn_in_generations"] * scale / every)
    n = burn + every * math.ceil(p["measure_generations"] * scale / every)
    integ = sd.WrightFisher(population_size=N, mutation_rate=nmu / N, mutation_scale=p["mutation_scale"],
                            selection=s, record_population=True)
    ds = sd.simulate(integ, land, x0=[-1.0], n_replicas=p["population_replicas"], n_steps=n, record_every=every,
                     rng=ctx.rng(*key))
    keep = ds.step.values > burn
    pop = ds["x"].isel(dim=0).values[:, keep]
    pm = ds["population_mean"]
    return (_resident(pop), float(np.mean(np.all(pop == pop[..., :1], axis=-1))),
            float(np.mean(pm.isel(dim=0).values[:, keep] > 0)))


def _slope_through(points, limit):
    """Weighted least-squares slope b of y - limit = b x through the origin (points: rows x, y, se): b, SE(b), chi2, dof."""
    x, y, se = points.T
    w = 1.0 / se**2
    b = float(np.sum(w * x * (y - limit)) / np.sum(w * x * x))
    return dict(b=b, se=float(1.0 / math.sqrt(np.sum(w * x * x))), chi2=float(np.sum(w * (y - limit - b * x) ** 2)),
                dof=int(x.size - 1))


# ----------------------------------------------------------------------------------------------------
def _figure(*args):
    with sd.plot.style("paper", columns=2):
        return _draw(*args)


def _draw(p, land, gibbs, results):
    C = sd.plot.PALETTE
    wf = results["wf"]
    style = {"langevin": (C[0], f"Langevin dynamics (Euler–Maruyama, dt = {p['langevin_dt']:g})", "o"),
             "sgd": (C[1], f"SGD (η = {p['sgd_lr']:g}, gradient noise 2T/η)", "s"),
             "wf": (C[2], f"Wright–Fisher population (N = {wf['N']}, s = {wf['s']:g})", "D")}
    fig = plt.figure(figsize=(7.0, 3.4))
    gs = fig.add_gridspec(2, 2, width_ratios=[2.4, 1.0])
    ax = fig.add_subplot(gs[:, 0])
    xs = np.linspace(*BOUNDS, 600)
    tw = ax.twinx()
    u = land.value(xs[:, None])
    tw.fill_between(xs, -0.5, u, color="0.94", zorder=0, lw=0)
    tw.plot(xs, u, color="0.7", lw=0.8, zorder=0)
    tw.set(ylim=(-0.5, 3.5), ylabel="landscape U(x) [a.u.] (grey)")
    tw.spines["right"].set_visible(True)
    tw.spines["right"].set_color("0.6")
    tw.tick_params(axis="y", colors="0.5")
    tw.yaxis.label.set_color("0.5")
    ax.set_zorder(tw.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(xs, gibbs.pdf(xs), color="k", lw=1.8, label=f"Gibbs density e^(−U/T)/Z", zorder=5)
    offsets = {"langevin": -0.02, "sgd": 0.0, "wf": 0.02}
    for key, (col, lab, mk) in style.items():
        c, h, se = results[key]["hist_se"]
        ax.errorbar(c + offsets[key], h, yerr=2 * se, fmt=mk, ms=3.0, color=col, mec="k", mew=0.3, elinewidth=0.7,
                    label=lab, zorder=6)
    ax.set(xlim=BOUNDS, ylim=(0, 1.45), xlabel="position x: state, parameter or trait [a.u.]",
           ylabel="stationary density [1/a.u.]")
    ax.legend(loc="upper right", fontsize=6.3, handletextpad=0.4, frameon=True, framealpha=0.9, edgecolor="none")
    fig.suptitle(f"One landscape U = (x² − 1)² + {p['tilt']:g}x, one temperature T = {p['temperature']:g} "
                 f"(population: T = 1/(2(N−1)s)), three dynamics", fontsize=8)

    # the two observables, each dynamics against its exact law and the Gibbs value
    for row, (q, label) in enumerate((("P", "P(x > 0): right well"), ("X2", "⟨x²⟩"))):
        a = fig.add_subplot(gs[row, 1])
        ref = gibbs.p_right if q == "P" else gibbs.x2
        for i, (key, (col, lab, mk)) in enumerate(style.items()):
            v, e = results[key][q]
            a.errorbar([v], [i], xerr=[2 * e], fmt=mk, ms=4, color=col, mec="k", mew=0.4, capsize=2)
            exact = results[key]["law"].p_right if q == "P" else results[key]["law"].x2
            a.plot([exact], [i], "|", ms=10, mew=1.5, color="k")
            if key == "wf":  # the O(N mu) shift computed from the independent runs at larger N mu
                a.plot([exact + results[key]["shift"][q]["b"] * p["n_mu"]], [i], "|", ms=10, mew=1.5, color="0.55")
        a.axvline(ref, color="k", lw=0.8, ls=":")
        a.set_yticks(range(3), ["Langevin", "SGD", "population"])
        a.set_ylim(-0.6, 2.6)
        a.invert_yaxis()
        a.set_xlabel(label)
        a.tick_params(axis="y", length=0)
        if row == 0:
            a.set_title("±2 SE;  | exact law (grey: + O(Nμ) shift);  ⋮ Gibbs", fontsize=6.5, loc="right")
    return fig
