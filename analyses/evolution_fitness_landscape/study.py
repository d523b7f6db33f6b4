"""Evolution on a fitness landscape: the four claims of the chapter's evolutionary-biology paragraph.

All runs use haploid populations with fitness W = exp(-s U) on the landscape objects of the Langevin
studies (a tilted DoubleWell; a flat plateau for the neutral case), and compare with exact
finite-population theory from ``stochdyn.theory.popgen``:

(a) the mean follows the fitness gradient — one Wright–Fisher generation from Gaussian populations
    along the double well: the exact Price covariance given the parents, Lande's G grad log W-bar for
    the infinite Gaussian population, and the naive "G times the gradient at the mean"; two types in
    the two wells: Wright's exact response (Wright–Fisher) and the exact birth–death chain (Moran);
(b) population vs single trajectory — neutral exploration at matched cost (fitness/gradient
    evaluations): the population's instantaneous spread and the diffusion of its mean (exact) against
    one SGD trajectory with the same step variance per evaluation;
(c) drift is not an unbiased estimate of the gradient — its conditional mean is zero and its variance
    (V_w + m)/N is set by N and the population's variance, not by the gradient; the neutral mean does
    not move on average; and over several generations drift makes the expected response lag the
    deterministic gradient path (exact two-type chains);
(d) weak mutation: the population's type is Boltzmann-distributed with beta = (N-1)s (Moran, exact) or
    the exact Wright–Fisher origin-fixation law (beta ~ 2(N-1)s), checked as the N mu -> 0 intercept
    of a scan in N mu (started away from equilibrium), with the fit's chi-square checked;
(e) the limits of the analogy: recombination (two loci, free vs none, exact two-locus chain), a moving
    optimum (the lag of a population tracking it vs the exact lag of a Gaussian trait), and the
    finite-population bias of the selection response (exact finite-M value vs Lande's N -> infinity).
"""

import math

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error, chi_square_quantile

MODELS = {"moran": sd.Moran, "wright-fisher": sd.WrightFisher}
NAMES = {"moran": "Moran", "wright-fisher": "Wright–Fisher"}


@sd.landscapes.landscape(dim=1, plot_bounds=[(-3.0, 3.0)])
def plateau(x, grad):
    """U = 0: a neutral (flat) region of a landscape."""
    grad[0] = 0.0
    return 0.0


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _mean_se(v):
    v = np.asarray(v, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def _variance_se(v):
    """Sample variance over replicas, SE from batches of replicas (not from the sample's fourth moment)."""
    s2, se = batch_standard_error(np.asarray(v, dtype=float), lambda a: a.var(ddof=1))
    return float(s2), float(se)


def _gaussian_variance_se(v, exact):
    """Sample variance of an exactly Gaussian quantity: SE = exact * sqrt(2/(R - 1)), from the theory value."""
    v = np.asarray(v, dtype=float)
    return float(v.var(ddof=1)), float(exact * math.sqrt(2.0 / (v.size - 1)))


def _wilson_hilferty(z):
    """Pooled check of independent z-scores: X^2 = sum z^2 ~ chi^2_k, as (X^2/k)^(1/3) ~ N(1 - 2/(9k), 2/(9k))."""
    k = z.size
    return float((np.sum(z**2) / k) ** (1.0 / 3.0)), math.sqrt(2.0 / (9.0 * k)), 1.0 - 2.0 / (9.0 * k)


def _two_type_populations(R, N, i0):
    """(R, N, 1): i0 individuals in the left well (x = -1), the others in the right well (x = +1)."""
    x0 = np.ones((R, N, 1))
    x0[:, :i0, 0] = -1.0
    return x0


# ----------------------------------------------------------------------------------------------------
# (a) + (c): one Wright–Fisher generation from Gaussian populations along the double well
# ----------------------------------------------------------------------------------------------------
def _response(ctx, p, land):
    N, s, m = p["a_population"], p["selection"], p["a_mutation_scale"] ** 2
    G = np.diag(p["a_variance"])
    z0 = np.linspace(*p["a_sweep"], p["a_points"])
    means = np.column_stack([z0, np.full(z0.size, p["a_transverse"])])
    R = p["a_replicas"]
    rng = np.random.default_rng(ctx.rng(1, 0))
    L = np.linalg.cholesky(G)
    x0 = (means[:, None, None, :] + rng.standard_normal((means.shape[0], R, N, 2)) @ L.T).reshape(-1, N, 2)
    integ = sd.WrightFisher(population_size=N, mutation_scale=p["a_mutation_scale"], selection=s)
    ds = sd.simulate(integ, land, x0, n_replicas=x0.shape[0], n_steps=1, rng=ctx.rng(1, 1))
    u = land.value(x0)
    w = np.exp(-s * (u - u.min(axis=1, keepdims=True)))  # Price and the drift variance are invariant to scaling w
    dz = ds["population_mean"].isel(time=-1).values - x0.mean(axis=1)
    price = th.price_response(w, x0)
    drift_var = th.wf_drift_variance(w, x0, m)
    K = means.shape[0]
    dz, price, drift_var = (a.reshape(K, R, 2) for a in (dz, price, drift_var))
    resid = dz - price
    out = dict(z0=z0, means=means, G=G, dz=dz.mean(1), dz_se=dz.std(1, ddof=1) / math.sqrt(R), price=price.mean(1),
               resid=resid.mean(1), resid_se=resid.std(1, ddof=1) / math.sqrt(R),
               lande=np.array([th.gaussian_selection_response(land, mu, G, s) for mu in means]),
               naive=-s * (G @ land.grad(means).T).T, drift_sim=(resid**2).mean(1), drift_theory=drift_var.mean(1),
               drift_se=(resid**2 - drift_var).std(1, ddof=1) / math.sqrt(R), grad=land.grad(means))
    # pooled drift-variance check on coordinate 0 over all means: per replica (independent), the mean over the
    # K means of the squared residual minus its exact conditional value; SE from batches of replicas
    excess = (resid[..., 0] ** 2 - drift_var[..., 0]).mean(axis=0)  # (R,)
    v = float(drift_var[..., 0].mean())
    m, se = batch_standard_error(excess)
    out["drift_pooled"] = (float(m) + v, float(se), v)
    return out


def _two_types(ctx, p, land, key, selection, generations):
    """Wright–Fisher and Moran with i0 individuals in the fitter left well and N - i0 in the right one."""
    N, i0, R = p["two_population"], p["two_left"], p["two_replicas"]
    r = math.exp(-selection * float(land.value(np.array([-1.0])) - land.value(np.array([1.0]))))  # W(-1)/W(+1)
    out = {"r": r, "t": np.arange(generations + 1)}
    for j, model in enumerate(MODELS):
        integ = MODELS[model](population_size=N, mutation_rate=0.0, selection=selection)
        ds = sd.simulate(integ, land, _two_type_populations(R, N, i0), n_replicas=R, n_steps=generations,
                         rng=ctx.rng(key, j))
        freq = (1.0 - ds["population_mean"].isel(dim=0).values) / 2.0  # fraction in the left well
        out[model] = dict(sim=freq.mean(0), se=freq.std(0, ddof=1) / math.sqrt(R),
                          exact=th.two_type_expected_frequency(N, r, i0, out["t"], model))
    q = i0 / N
    det = [q]
    for _ in range(generations):
        det.append(det[-1] * r / (det[-1] * r + 1.0 - det[-1]))  # infinite N: Wright's map iterated on p itself
    out["deterministic"] = np.array(det)
    return out


# ----------------------------------------------------------------------------------------------------
# (b): neutral exploration, population vs one SGD trajectory at matched cost
# ----------------------------------------------------------------------------------------------------
def _exploration(ctx, p):
    N, sm, T, every, R = p["b_population"], p["b_mutation_scale"], p["b_generations"], p["b_every"], p["b_replicas"]
    m = sm**2
    land = plateau()
    pop = sd.simulate(sd.WrightFisher(population_size=N, mutation_scale=sm, selection=0.0), land, x0=[0.0],
                      n_replicas=R, n_steps=T, record_every=every, rng=ctx.rng(2, 0))
    lr = p["b_lr"]
    walk = sd.simulate(sd.SGD(lr=lr, gradient_noise=m / lr**2, record_extra=()), land, x0=[0.0], n_replicas=R,
                       n_steps=N * T, record_every=N * every, rng=ctx.rng(2, 1))  # lr^2 * Sigma = m per step
    t = pop.step.values
    EV, VM = th.wf_neutral_trait_variance(t, N, m)
    V = pop["variance"].isel(dim=0).values
    M = pop["population_mean"].isel(dim=0).values
    X = walk.x.isel(dim=0).values
    var_walk = walk.step.values * m
    sim = dict(V=[batch_standard_error(V[:, k]) for k in range(t.size)], VM=[_variance_se(M[:, k]) for k in range(t.size)],
               X=[_gaussian_variance_se(X[:, k], var_walk[k]) if k else (0.0, 0.0) for k in range(t.size)])
    return dict(t=t, N=N, m=m, EV=EV, VM=VM, walk=var_walk, sim=sim, drift_mean=_mean_se(M[:, -1]))


# ----------------------------------------------------------------------------------------------------
# (d): weak-mutation stationary law, scanned in N mu
# ----------------------------------------------------------------------------------------------------
def _resident(x):
    """The most common trait in each population (the population's type; the mean when monomorphic). x: (..., N)."""
    counts = (x[..., :, None] == x[..., None, :]).sum(-1)
    return np.take_along_axis(x, counts.argmax(-1)[..., None], -1)[..., 0]


def _sella_hirsh(ctx, p, land):
    s, sm, every = p["selection"], p["d_mutation_scale"], p["d_every"]
    out = []
    for i, (model, N) in enumerate(p["d_models"]):
        exact = th.origin_fixation_density(land, N, s, sm, model)
        runs = []
        for j, nmu in enumerate(p["d_nmu"]):
            burn = every * math.ceil(p["d_burn"] / nmu / every)
            n = burn + every * math.ceil(p["d_measure"] / nmu / every)
            integ = MODELS[model](population_size=N, mutation_rate=nmu / N, mutation_scale=sm, selection=s,
                                  record_population=True)
            ds = sd.simulate(integ, land, x0=[-1.0], n_replicas=p["d_replicas"], n_steps=n, record_every=every,
                             rng=ctx.rng(4, i, j))
            keep = ds.step.values > burn
            x = ds["x"].isel(dim=0).values[:, keep]
            res = _resident(x)
            mono = float(np.mean(np.all(x == x[..., :1], axis=-1)))
            pm = ds["population_mean"].isel(dim=0).values[:, keep]
            runs.append(dict(nmu=nmu, P=_mean_se((res > 0).mean(1)), X2=_mean_se((res**2).mean(1)),
                             Pmean=_mean_se((pm > 0).mean(1)), X2mean=_mean_se((pm**2).mean(1)),
                             mono=mono, sample=res[:, ::4].ravel()))
        fits = {}
        for q in ("P", "X2"):
            fits[q] = _intercept([r["nmu"] for r in runs], [r[q] for r in runs])
        out.append(dict(model=model, N=N, beta=th.sella_hirsh_beta(N, s, model), exact=exact, runs=runs, fits=fits,
                        P=exact.probability(0.0), X2=exact.expectation(lambda v: v**2)))
    return out


def _intercept(x, est):
    """Weighted least-squares line y = a + b x through (x, value +- se); returns a, SE(a), b, chi2, dof."""
    x = np.asarray(x, dtype=float)
    y = np.array([e[0] for e in est])
    w = 1.0 / np.array([e[1] for e in est]) ** 2
    A = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(A.T @ (w[:, None] * A))
    a, b = cov @ A.T @ (w * y)
    chi2 = float(np.sum(w * (y - a - b * x) ** 2))
    return dict(a=float(a), se=float(math.sqrt(cov[0, 0])), b=float(b), chi2=chi2, dof=x.size - 2)


# ----------------------------------------------------------------------------------------------------
# (e): the limits of the analogy
# ----------------------------------------------------------------------------------------------------
HAPLOTYPES = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])  # ab, aB, Ab, AB (index 2 g0 + g1)


def _recombination(ctx, p):
    """Two loci, each with a beneficial allele (fitness x (1 + effect)); half the population carries Ab, half aB.

    Without recombination AB cannot arise (no mutation): the population fixes Ab or aB at random (neutral, equal
    fitness) and its fitness stays (1 + effect). Free recombination builds AB from the two. Exact: the two-locus
    Wright-Fisher chain on haplotype counts."""
    N, T, R, e = p["e_loci_population"], p["e_loci_generations"], p["e_loci_replicas"], p["e_loci_effect"]
    land = sd.fitness.MultiplicativeFitness([[0.0, e], [0.0, e]])
    w = land.fitness(HAPLOTYPES.astype(float))
    x0 = np.zeros((R, N, 2))
    x0[:, : N // 2] = [1, 0]
    x0[:, N // 2:] = [0, 1]
    n0 = [0, N - N // 2, N // 2, 0]
    out = {"w": w, "N": N}
    for j, rec in enumerate(("none", "free")):
        integ = sd.WrightFisher(population_size=N, mutation_rate=0.0, selection=1.0, recombination=rec,
                                record_population=True)
        ds = sd.simulate(integ, land, x0, n_replicas=R, n_steps=T, rng=ctx.rng(6, j))
        h = (2 * ds.x.isel(dim=0) + ds.x.isel(dim=1)).values  # (replica, time, individual)
        freq = np.stack([(h == k).mean(-1) for k in range(4)], axis=-1)  # (replica, time, 4)
        rho = 1.0 if rec == "free" else 0.0
        out[rec] = dict(t=ds.step.values, freq=freq, A=freq[..., 2] + freq[..., 3],
                        exact=th.two_locus_expected_haplotypes(N, w, n0, ds.step.values, rho))
    return out


def _moving_optimum(ctx, p, speed, key):
    """A Wright-Fisher population on U = (x - theta_t)^2 / 2, theta_{t+1} = theta_t + speed (one simulate call per
    generation, the landscape's centre moved in between). Per replica: the time-averaged lag theta_t - mean_t and
    population variance V_t (before selection) after the burn-in."""
    N, R, T, burn = p["e_mo_population"], p["e_mo_replicas"], p["e_mo_generations"], p["e_mo_burn"]
    s = p["e_selection"]
    integ = sd.WrightFisher(population_size=N, mutation_scale=p["e_mo_mutation_scale"], selection=s,
                            record_population=True)
    x = np.zeros((R, N, 1))
    lag, var = np.empty((T, R)), np.empty((T, R))
    for t in range(T):
        theta = speed * t
        lag[t], var[t] = theta - x[..., 0].mean(axis=1), x[..., 0].var(axis=1)
        ds = sd.simulate(integ, sd.landscapes.Harmonic(stiffness=1.0, center=[theta]), x, n_replicas=R, n_steps=1,
                         rng=ctx.rng(7, key, t))
        x = np.ascontiguousarray(ds.x.isel(time=-1).values)
    L, V = lag[burn:].mean(axis=0), var[burn:].mean(axis=0)  # per replica (independent)
    Vb = V.mean()
    gauss = th.moving_optimum_lag(speed, s, Vb)
    slope = -speed / (s * Vb * Vb)  # d lag*/dV at the mean variance: delta method for lag - lag*(V)
    dev = L - slope * (V - Vb)
    return dict(speed=speed, lag=float(L.mean()), se=float(dev.std(ddof=1) / math.sqrt(R)), V=float(Vb), gauss=gauss,
                path=lag.mean(axis=1), t=np.arange(T), burn=burn)


def _finite_population(ctx, p):
    """One Wright-Fisher generation (no mutation) from M parents drawn from N(mu, V) on U = x^2/2: the expected
    response is exactly the finite-M value, not Lande's."""
    s, mu, V, R = p["e_selection"], p["e_bias_mean"], p["e_bias_variance"], p["e_bias_replicas"]
    land = sd.landscapes.Harmonic(stiffness=1.0)
    lande = float(th.gaussian_selection_response(land, [mu], [[V]], s)[0])
    out = []
    for j, M in enumerate(p["e_bias_population"]):
        x0 = mu + math.sqrt(V) * np.random.default_rng(ctx.rng(8, j, 0)).standard_normal((R, M, 1))
        integ = sd.WrightFisher(population_size=M, mutation_rate=0.0, selection=s)
        ds = sd.simulate(integ, land, x0, n_replicas=R, n_steps=1, rng=ctx.rng(8, j, 1))
        dz = ds["population_mean"].isel(time=-1, dim=0).values - x0[..., 0].mean(axis=1)
        exact = th.finite_population_selection_response(lambda z: np.exp(-0.5 * s * z * z), mu, V, M)
        out.append(dict(M=M, sim=_mean_se(dz), exact=exact, lande=lande))
    return out


# ----------------------------------------------------------------------------------------------------
def run(ctx):
    p = ctx.params
    land2 = sd.landscapes.DoubleWell(dim=2, tilt=p["tilt"])
    land1 = sd.landscapes.DoubleWell(dim=1, tilt=p["tilt"])
    a = _response(ctx, p, land2)
    two_a = _two_types(ctx, p, land1, 3, p["two_selection_a"], 1)
    two_c = _two_types(ctx, p, land1, 5, p["two_selection_c"], p["two_generations"])
    b = _exploration(ctx, p)
    d = _sella_hirsh(ctx, p, land1)
    e = dict(rec=_recombination(ctx, p), bias=_finite_population(ctx, p),
             mo=[_moving_optimum(ctx, p, v, j) for j, v in enumerate(p["e_mo_speed"])])
    fig = ctx.figure(_figure(p, a, two_a, two_c, b, d), "evolution")
    fig_e = ctx.figure(_figure_limits(p, e), "limits")

    # (a) the mean follows the fitness gradient: exactly Price, Lande for the infinite Gaussian population
    k = int(np.argmin(np.abs(a["z0"] - p["a_record_at"])))
    at = f"mean ({a['z0'][k]:g}, {p['a_transverse']:g})"
    z = (a["resid"] / a["resid_se"]).ravel()
    ctx.record(f"(a) WF one generation: Δmean − Price covariance over {z.size} checks "
               f"({a['z0'].size} means × 2 coordinates), Wilson–Hilferty (X²/k)^(1/3)",
               *_wilson_hilferty(z), figure=fig)
    for c in (0, 1):
        ctx.record(f"(a) WF Δmean x{c} at {at} vs exact Price covariance given the parents",
                   a["dz"][k, c], a["resid_se"][k, c], a["price"][k, c], figure=fig)
        ctx.record(f"(a) WF Δmean x{c} at {at} vs Lande G∇log W̄ (Gaussian population, N → ∞)",
                   a["dz"][k, c], a["dz_se"][k, c], a["lande"][k, c], figure=fig)
    zl = ((a["dz"] - a["lande"]) / a["dz_se"]).ravel()
    ctx.record(f"(a) WF Δmean vs Lande over {zl.size} checks, Wilson–Hilferty (X²/k)^(1/3)", *_wilson_hilferty(zl),
               figure=fig)
    for model in MODELS:
        r = two_a[model]
        ctx.record(f"(a) {NAMES[model]}, two types (wells), E[p] after 1 generation vs exact "
                   + ("Wright Δp = p(1−p)∂log w̄/∂p" if model == "wright-fisher" else "birth–death chain (N events)"),
                   r["sim"][1], r["se"][1], r["exact"][1], figure=fig)

    # (b) population vs single trajectory at matched cost
    T = b["t"][-1]
    ctx.record(f"(b) WF neutral, population spread E[V] at generation {T} (N = {b['N']})", *b["sim"]["V"][-1],
               b["EV"][-1], figure=fig)
    ctx.record(f"(b) WF neutral, variance of the population mean at generation {T}", *b["sim"]["VM"][-1],
               b["VM"][-1], figure=fig)
    ctx.record(f"(b) one SGD trajectory, Var(x) after {b['N'] * T} steps (same evaluations)", *b["sim"]["X"][-1],
               b["walk"][-1], figure=fig)

    # (c) drift
    ctx.record(f"(c) WF neutral, E[mean_t − mean_0] at generation {T}: drift alone does not move the mean",
               *b["drift_mean"], 0.0, figure=fig)
    ctx.record("(c) WF drift variance of the mean given the parents, x0, pooled over the sweep: (V_w + m)/N",
               *a["drift_pooled"], figure=fig)
    tc = p["two_generations"]
    for model in MODELS:
        r = two_c[model]
        ctx.record(f"(c) {NAMES[model]}, two types, E[p] after {tc} generations vs exact chain (drift lags the "
                   f"deterministic {two_c['deterministic'][-1]:.3f})", r["sim"][-1], r["se"][-1], r["exact"][-1],
                   figure=fig)

    # (d) Boltzmann with population size as inverse temperature
    for case in d:
        tag = f"{NAMES[case['model']]} N = {case['N']}"
        ctx.record(f"(d) {tag}: P(x > 0) of the type, N mu -> 0 intercept, vs exact weak-mutation law",
                   case["fits"]["P"]["a"], case["fits"]["P"]["se"], case["P"], figure=fig)
        ctx.record(f"(d) {tag}: <x^2> of the type, N mu -> 0 intercept, vs exact weak-mutation law",
                   case["fits"]["X2"]["a"], case["fits"]["X2"]["se"], case["X2"], figure=fig)
        for q, what in (("P", "P(x > 0)"), ("X2", "<x^2>")):
            f = case["fits"][q]
            ctx.record(f"(d) {tag}: goodness of the linear fit of {what} in N mu over {f['dof'] + 2} points "
                       f"(chi-square {f['chi2']:.2f} on {f['dof']} dof, as a normal quantile)",
                       chi_square_quantile(f["chi2"], f["dof"]), 1.0, 0.0, figure=fig)

    # (e) the limits of the analogy
    rec, T = e["rec"], e["rec"]["free"]["t"][-1]
    r = rec["free"]
    ctx.record(f"(e) free recombination: E[frequency of AB] after {T} generations (N = {rec['N']}) vs exact "
               "two-locus chain", *_mean_se(r["freq"][:, -1, 3]), r["exact"][-1, 3], figure=fig_e)
    for what in ("free", "none"):
        r = rec[what]
        ctx.record(f"(e) {'free' if what == 'free' else 'no'} recombination: E[frequency of allele A] after {T} "
                   "generations vs exact two-locus chain", *_mean_se(r["A"][:, -1]), r["exact"][-1, 2] + r["exact"][-1, 3],
                   figure=fig_e)
    for m in e["mo"]:
        ctx.record(f"(e) moving optimum (speed {m['speed']:g}/generation, N = {p['e_mo_population']}): mean lag vs "
                   f"Gaussian-trait lag v(1 + sV)/(sV) at the population's mean variance V = {m['V']:.4f}",
                   m["lag"], m["se"], m["gauss"], figure=fig_e)
    for c in e["bias"]:
        ctx.record(f"(e) finite population M = {c['M']}: E[Δmean] in one generation vs the exact finite-M response",
                   *c["sim"], c["exact"], figure=fig_e)
        ctx.bound(f"(e) finite population M = {c['M']}: |exact finite-M − Lande| in standard errors of the check "
                  "(the bias is resolved)", abs(c["exact"] - c["lande"]) / c["sim"][1], 5.0, ">=", units="SE",
                  figure=fig_e)


# ----------------------------------------------------------------------------------------------------
# figure
# ----------------------------------------------------------------------------------------------------
def _figure(*args):
    with sd.plot.style("paper", columns=2):
        return _draw(*args)


def _draw(p, a, two_a, two_c, b, d):
    C = sd.plot.PALETTE
    fs, ts = 7.0, 8.5  # legend and title font sizes
    fig = plt.figure(figsize=(7.0, 8.6), layout="constrained")
    outer = fig.add_gridspec(3, 2)
    top = outer[0, 0].subgridspec(2, 1, height_ratios=[2.2, 1.0], hspace=0.05)
    ax, axr = fig.add_subplot(top[0]), fig.add_subplot(top[1])
    axes = {k: fig.add_subplot(outer[i, j]) for k, (i, j) in
            dict(b=(0, 1), c1=(1, 0), c2=(1, 1), d1=(2, 0), d2=(2, 1)).items()}

    # (a) response along the double well, and its departure from the naive gradient
    zz = np.linspace(*p["a_sweep"], 121)
    mm = np.column_stack([zz, np.full(zz.size, p["a_transverse"])])
    land2 = sd.landscapes.DoubleWell(dim=2, tilt=p["tilt"])
    G, s = a["G"], p["selection"]
    lande = np.array([th.gaussian_selection_response(land2, mu, G, s) for mu in mm])
    naive = -s * (G @ land2.grad(mm).T).T
    for c, col, lab in ((0, C[0], "x₀ (along)"), (1, C[1], "x₁ (across)")):
        ax.plot(zz, lande[:, c], color=col, lw=1.2)
        ax.plot(zz, naive[:, c], color=col, lw=0.8, ls="--")
        ax.errorbar(a["z0"], a["dz"][:, c], yerr=2 * a["dz_se"][:, c], fmt="o", ms=3, color=col, mec="k",
                    mew=0.4, label=f"WF Δmean {lab}, ±2 SE")
        ax.plot(a["z0"], a["price"][:, c], "_", color="k", ms=7, mew=1.0)
        axr.plot(zz, (lande[:, c] - naive[:, c]) * 1e3, color=col, lw=1.2)
        axr.errorbar(a["z0"], (a["dz"][:, c] - a["naive"][:, c]) * 1e3, yerr=2e3 * a["dz_se"][:, c], fmt="o",
                     ms=3, color=col, mec="k", mew=0.4)
    ax.plot([], [], color="0.3", lw=1.2, label="Lande G∇log W̄ (N → ∞)")
    ax.plot([], [], color="0.3", lw=0.8, ls="--", label="naive −sG∇U(mean)")
    ax.plot([], [], "_", color="k", ms=7, mew=1.0, label="Price, given the parents")
    ax.axhline(0, color="0.8", lw=0.5, zorder=0)
    axr.axhline(0, color="0.3", lw=0.8, ls="--", zorder=0)
    ax.set(ylabel="Δmean per generation [a.u.]", xticklabels=[], ylim=(-0.2, 0.08))
    axr.set(xlabel="population mean x₀ [a.u.]", ylabel="minus naive\n[10⁻³ a.u.]")
    ax.legend(fontsize=fs, loc="lower left", handlelength=1.4)
    ax.set_title(f"(a) Δmean follows G∇log W̄ (N = {p['a_population']})", fontsize=ts)

    # (b) exploration at matched cost
    ax = axes["b"]
    cost = b["N"] * b["t"][1:]
    for key, col, lab in (("X", C[1], "one SGD trajectory: n·m"), ("V", C[0], "population spread E[V] → (N−1)m"),
                          ("VM", C[2], "population mean Var(x̄)")):
        exact = {"X": b["walk"], "V": b["EV"], "VM": b["VM"]}[key][1:]
        ax.plot(cost, exact, color=col, lw=1.2, label=lab)
        v = np.array(b["sim"][key][1:])
        ax.errorbar(cost, v[:, 0], yerr=2 * v[:, 1], fmt="o", ms=2.8, color=col, mec="k", mew=0.3)
    ax.plot([], [], "o", ms=2.8, color="0.5", mec="k", mew=0.3, label="simulated, ±2 SE (lines: exact)")
    ax.set(xscale="log", yscale="log", xlabel="evaluations (N × generations; SGD steps)",
           ylabel="variance of position [a.u.²]", ylim=(1e-3, 4e3))
    ax.legend(fontsize=fs, loc="upper left")
    ax.set_title(f"(b) exploration at equal cost (N = {b['N']})", fontsize=ts)

    # (c1) drift: size set by N and V, not by the gradient
    ax = axes["c1"]
    ax.plot(zz, np.abs(lande[:, 0]), color=C[1], lw=1.1, label="|selection response| x₀ (Lande, exact)")
    ax.plot(a["z0"], np.abs(a["price"][:, 0]), "s", ms=3, color=C[1], mec="k", mew=0.4,
            label="|Price response| of the runs")
    ax.errorbar(a["z0"], np.sqrt(a["drift_sim"][:, 0]), yerr=a["drift_se"][:, 0] / np.sqrt(a["drift_sim"][:, 0]),
                fmt="o", ms=3, color=C[0], mec="k", mew=0.4, label="drift: SD of Δmean − Price (x₀), ±2 SE")
    ax.plot(a["z0"], np.sqrt(a["drift_theory"][:, 0]), "_", color="k", ms=8, mew=1.0, label="exact √((V_w + m)/N)")
    ax.set(xlabel="population mean x₀ [a.u.]", ylabel="size per generation [a.u.]", yscale="log", ylim=(3e-4, 3.0))
    ax.legend(fontsize=fs, loc="upper center")
    ax.set_title("(c1) drift SD = √((V_w + m)/N)", fontsize=ts)

    # (c2) two types: expected frequency of the fitter type over generations
    ax = axes["c2"]
    t = two_c["t"]
    ax.plot(t, two_c["deterministic"], color="0.3", ls="--", lw=1.0,
            label=f"deterministic path (N → ∞), σ = {math.log(two_c['r']):.2f}")
    for model, col, mk in (("wright-fisher", C[2], "o"), ("moran", C[3], "s")):
        r = two_c[model]
        ax.plot(t, r["exact"], color=col, lw=1.2, label=f"{NAMES[model]}: exact E[p_t]")
        sel = t % max(1, t.size // 10) == 0
        ax.errorbar(t[sel], r["sim"][sel], yerr=2 * r["se"][sel], fmt=mk, ms=3, color=col, mec="k", mew=0.4,
                    label=f"{NAMES[model]}: simulated, ±2 SE")
    ax.set(xlabel="generation t", ylabel="frequency of the fitter type", ylim=(0.45, 1.02))
    ax.legend(fontsize=fs, loc="lower right")
    ax.set_title(f"(c2) drift lags the gradient path (N = {p['two_population']})", fontsize=ts)

    # (d1) histograms at the smallest N mu against the exact weak-mutation densities
    ax = axes["d1"]
    xs = np.linspace(-2.0, 2.0, 400)
    bins = np.linspace(-2.0, 2.0, 41)
    cols = (C[0], C[1], C[2])
    for case, col in zip(d, cols):
        run = min(case["runs"], key=lambda r: r["nmu"])
        h, e = np.histogram(run["sample"], bins=bins, density=True)
        ax.stairs(h, e, color=col, lw=0.8, alpha=0.85)
        ax.plot(xs, case["exact"](xs), color=col, lw=1.4,
                label=f"{NAMES[case['model']]} N = {case['N']}: β {_beta_label(case)}")
    ax.plot([], [], color="0.4", lw=0.8, drawstyle="steps-mid", label=f"histograms of the type, Nμ = {min(p['d_nmu']):g}")
    ax.set(xlabel="trait x [a.u.]", ylabel="density [1/a.u.]", ylim=(0, 1.7))
    ax.legend(fontsize=fs, loc="upper right")
    ax.set_title("(d1) weak mutation: Boltzmann, β ∝ N", fontsize=ts)

    # (d2) P(right well) against N mu, extrapolated
    ax = axes["d2"]
    xx = np.linspace(0, max(p["d_nmu"]) * 1.05, 10)
    markers = ("o", "s", "^")
    for case, col, mk in zip(d, cols, markers):
        f = case["fits"]["P"]
        nm = np.array([r["nmu"] for r in case["runs"]])
        off = (markers.index(mk) - 1) * 0.0015  # side by side
        ax.errorbar(nm + off, [r["P"][0] for r in case["runs"]], yerr=[2 * r["P"][1] for r in case["runs"]], fmt=mk,
                    ms=3.5, color=col, mec="k", mew=0.4,
                    label=f"{NAMES[case['model']]} N = {case['N']} (fit χ² = {f['chi2']:.1f}, {f['dof']} dof)")
        ax.plot(nm + off, [r["Pmean"][0] for r in case["runs"]], mk, ms=4.5, mfc="none", color=col, mew=0.7)
        ax.plot(xx, f["a"] + f["b"] * xx, color=col, lw=0.8, ls="--")
        ax.errorbar([-0.004 + off], [f["a"]], yerr=[2 * f["se"]], fmt="none", ecolor=col, elinewidth=2.0, alpha=0.6)
        ax.plot([0], [case["P"]], "*", ms=8, color=col, mec="k", mew=0.4)
    ax.plot([], [], "*", ms=8, color="w", mec="k", mew=0.6, label="exact weak-mutation law (Nμ → 0)")
    ax.plot([], [], "o", ms=4.5, mfc="none", color="k", mew=0.7, label="population mean instead of the type")
    ax.plot([], [], color="k", lw=0.8, ls="--", label="weighted linear fit; bar: intercept ±2 SE")
    ax.set(xlabel="Nμ: mutations per generation", ylabel="P(x > 0) of the type (filled, ±2 SE)", ylim=(0.15, 0.8))
    ax.legend(fontsize=fs, loc="upper left", handlelength=1.4)
    ax.set_title("(d2) the limit Nμ → 0", fontsize=ts)
    return fig


def _figure_limits(p, e):
    with sd.plot.style("paper", columns=2):
        return _draw_limits(p, e)


def _draw_limits(p, e):
    C = sd.plot.PALETTE
    fs, ts = 7.0, 8.5
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.9), layout="constrained")

    # (e1) recombination
    ax, rec = axes[0], e["rec"]
    for what, col, mk in (("free", C[0], "o"), ("none", C[1], "s")):
        r = rec[what]
        t = r["t"]
        A = r["A"]
        ax.plot(t, r["exact"][:, 2] + r["exact"][:, 3], color=col, lw=1.2,
                label=f"allele A, {'free' if what == 'free' else 'no'} recombination: exact")
        sel = t % 4 == 0
        ax.errorbar(t[sel], A.mean(0)[sel], yerr=2 * A.std(0, ddof=1)[sel] / math.sqrt(A.shape[0]), fmt=mk, ms=3,
                    color=col, mec="k", mew=0.4)
        if what == "free":
            ab = r["freq"][..., 3]
            ax.plot(t, r["exact"][:, 3], color=col, lw=1.0, ls="--", label="haplotype AB, free: exact")
            ax.errorbar(t[sel], ab.mean(0)[sel], yerr=2 * ab.std(0, ddof=1)[sel] / math.sqrt(ab.shape[0]), fmt="D",
                        ms=3, mfc="w", color=col, mec=col, mew=0.8)
    ax.plot([], [], "o", ms=3, color="0.6", mec="k", mew=0.4, label="simulated, ±2 SE")
    ax.set(xlabel="generation t", ylabel="expected frequency", ylim=(-0.02, 1.4), yticks=np.linspace(0, 1, 6))
    ax.legend(fontsize=fs, loc="upper left")
    ax.set_title(f"(e1) recombination (N = {rec['N']})", fontsize=ts)

    # (e2) moving optimum
    ax = axes[1]
    for m, col in zip(e["mo"], (C[2], C[3])):
        ax.plot(m["t"], m["path"], color=col, lw=1.0, label=f"mean lag, speed v = {m['speed']:g}")
        ax.axhline(m["gauss"], color=col, lw=1.0, ls="--")
        ax.errorbar([m["t"][-1] + 12], [m["lag"]], yerr=[2 * m["se"]], fmt="o", ms=3.5, color=col, mec="k", mew=0.4)
        ax.axvspan(0, m["burn"], color="0.93", lw=0, zorder=0)
    ax.plot([], [], "k--", lw=1.0, label="Gaussian trait: v(1 + sV)/(sV)")
    ax.plot([], [], "o", ms=3.5, color="0.6", mec="k", mew=0.4, label="time average after burn-in, ±2 SE")
    top = max(m["gauss"] for m in e["mo"])
    ax.set(xlabel="generation t (grey: burn-in)", ylabel="lag θ_t − mean_t [a.u.]", ylim=(0, 1.6 * top))
    ax.legend(fontsize=fs, loc="upper left")
    ax.set_title(f"(e2) moving optimum (N = {p['e_mo_population']})", fontsize=ts)

    # (e3) finite-population bias of the response
    ax = axes[2]
    Ms = np.unique(np.round(np.geomspace(1, 64, 25)).astype(int))
    f = lambda z: np.exp(-0.5 * p["e_selection"] * z * z)  # noqa: E731
    exact = [th.finite_population_selection_response(f, p["e_bias_mean"], p["e_bias_variance"], int(M)) for M in Ms]
    lande = e["bias"][0]["lande"]
    ax.plot(Ms, -np.array(exact), color=C[0], lw=1.0, marker=".", ms=3, label="exact for M parents")
    ax.axhline(-lande, color="0.3", ls="--", lw=1.0, label="Lande (M → ∞)")
    for c in e["bias"]:
        ax.errorbar([c["M"]], [-c["sim"][0]], yerr=[2 * c["sim"][1]], fmt="o", ms=3.5, color=C[0], mec="k", mew=0.4)
    ax.plot([], [], "o", ms=3.5, color=C[0], mec="k", mew=0.4, label="simulated, ±2 SE")
    ax.set(xscale="log", xlabel=f"parents M ~ N({p['e_bias_mean']:g}, {p['e_bias_variance']:g})",
           ylabel="response towards the optimum [a.u.]", ylim=(0, -1.3 * lande))
    ax.legend(fontsize=fs, loc="lower right")
    ax.set_title("(e3) response at finite M", fontsize=ts)
    return fig


def _beta_label(case):
    if case["model"] == "moran":
        return f"= (N−1)s = {case['beta']:g}"
    return f"≈ 2(N−1)s = {case['beta']:g}"
