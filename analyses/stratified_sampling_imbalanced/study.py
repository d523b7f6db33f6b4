"""Stratified sampling of imbalanced data: unbiasedness and exact variance of the uniform, proportional,
Neyman and 'equal per-class variance' mini-batch gradient estimators.

Model: a linear least-squares detector of the rare classes (three classes, 90 / 8 / 2 % of the data; target 1 for
the two rare classes, 0 for the common one; features plus an intercept), at its optimum; the classes are the
strata. Least squares keeps the full-batch loss, which the driver evaluates for every replica at every record,
in closed form: a softmax model would spend >90 % of the run on that bookkeeping.

Each estimator is sampled with the SGD integrator: one step with lr = 1 from theta gives theta - g_hat.
Theory: ``sd.theory.gradient_noise_covariance`` (uniform), ``stratified_variance`` and
``stratum_variance_terms`` (stratified, Cochran 1977 eq. 5.3), ``stratum_gradient_std`` (S_h).
Any allocation n_h ~ a_h is run as Neyman's with ``stratum_std = a_h / N_h`` (the kernels allocate
n_h ~ N_h * stratum_std), so the 'equal per-class variance' rule n_h ~ S_h^2 uses stratum_std = S_h^2 / N_h.
"""

import matplotlib.pyplot as plt
import numpy as np

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error

NAMES = {"with": "uniform, with replacement", "without": "uniform, without replacement",
         "proportional": "stratified, proportional n_h ~ N_h", "neyman": "stratified, Neyman n_h ~ N_h S_h",
         "equal": "stratified, equal class variances n_h ~ S_h^2"}
LABELS = {"with": NAMES["with"], "without": NAMES["without"],
          "proportional": r"stratified, proportional $n_h\propto N_h$", "neyman": r"stratified, Neyman $n_h\propto N_hS_h$",
          "equal": r"stratified, equal class variances $n_h\propto S_h^2$"}


def _problem(p):
    data = sd.problems.imbalanced_classes(p["n_examples"], 2, fractions=p["class_fractions"],
                                          separation=p["separation"], seed=p["data_seed"])
    X = np.column_stack([data.X, np.ones(data.X.shape[0])])  # intercept column
    return sd.problems.LeastSquares(X, (data.labels > 0).astype(float), labels=data.labels)


def _designs(S, sizes):
    """name -> (Sampling, allocation, stratum_std) for the theory (None: uniform)."""
    return {"with": (sd.Sampling(), None), "without": (sd.Sampling("without_replacement"), None),
            "proportional": (sd.Sampling("stratified"), ("proportional", None)),
            "neyman": (sd.Sampling("stratified", "neyman", stratum_std=S), ("neyman", S)),
            "equal": (sd.Sampling("stratified", "neyman", stratum_std=S**2 / sizes), ("neyman", S**2 / sizes))}


def _theory_var(prob, theta, B, samp, alloc):
    if alloc is None:
        return float(np.trace(th.gradient_noise_covariance(prob, theta, B, samp)))
    return th.stratified_variance(prob, theta, B, *alloc)


def _one_step(prob, theta, samp, B, R, chunk, seeds):
    out = []
    for c, start in enumerate(range(0, R, chunk)):
        n = min(chunk, R - start)
        ds = sd.simulate(sd.SGD(lr=1.0, batch_size=B, sampling=samp, record_extra=()), prob, x0=theta, n_replicas=n,
                         n_steps=1, rng=seeds(c))
        out.append(theta - ds.x.isel(time=1).values)
    return np.concatenate(out)


def run(ctx):
    p = ctx.params
    prob = _problem(p)
    theta = prob.minimizer()  # where training ends: the estimators' noise, not the gradient, is what matters
    S = th.stratum_gradient_std(prob, theta)
    _, starts, _ = prob.strata()
    sizes = np.diff(starts).astype(float)
    designs = _designs(S, sizes)
    grad = prob.grad(theta)
    # the direction in which forgetting to reweight would show: unweighted Neyman batch mean minus grad U
    _, g = prob.per_sample(theta)
    order, _, _ = prob.strata()
    class_means = np.array([g[order[starts[h]:starts[h + 1]]].mean(axis=0) for h in range(sizes.size)])
    Bu = p["unbiased_batch"]
    n_ney = th.stratified_allocation(prob, Bu, "neyman", S)
    unweighted = (n_ney / Bu) @ class_means
    v = (unweighted - grad) / np.linalg.norm(unweighted - grad)
    sims, recs = {}, []
    for k, (name, (samp, alloc)) in enumerate(designs.items()):
        for j, B in enumerate(p["batch_sizes"]):
            gs = _one_step(prob, theta, samp, B, p["replicas"], p["chunk"], lambda c: ctx.rng(k, j, c))
            # tr Cov of the R estimates, SE from batches of replicas (not the plug-in fourth moment)
            sims[name, B] = tuple(float(v) for v in batch_standard_error(gs, lambda a: a.var(axis=0, ddof=1).sum()))
            recs.append((f"tr Cov, {NAMES[name]}, B = {B}", *sims[name, B], _theory_var(prob, theta, B, samp, alloc)))
            if B == Bu:
                proj = gs @ v
                recs.append((f"mean along the un-reweighted bias direction, {NAMES[name]}, B = {B}", proj.mean(),
                             proj.std(ddof=1) / np.sqrt(len(proj)), grad @ v))
    fig = _figure(prob, theta, designs, sims, S, sizes, p)
    name = ctx.figure(fig, "variance")
    for r in recs:
        ctx.record(*r, figure=name)


def _figure(prob, theta, designs, sims, S, sizes, p):
    sd.plot.use_style("paper")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=sd.plot.figsize(2, 0.45), width_ratios=(1.25, 1))
    Bs = np.unique(np.geomspace(3, 256, 40).astype(int))
    for n, (name, (samp, alloc)) in enumerate(designs.items()):
        c = sd.plot.PALETTE[n]
        ax1.plot(Bs, [_theory_var(prob, theta, B, samp, alloc) for B in Bs], "-", color=c, lw=1.1, label=LABELS[name])
        pts = [(B, *sims[name, B]) for B in p["batch_sizes"]]
        b_, m_, e_ = np.array(pts).T
        ax1.errorbar(b_ * (1 + 0.04 * (n - 2)), m_, yerr=2 * e_, fmt="o", ms=3.2, color=c, mec="k", mew=0.4)
    ax1.plot([], [], "ko", ms=3.2, label="simulation (± 2 SE)")
    ax1.set(xscale="log", yscale="log", xlabel="batch size B [count]",
            ylabel=r"$\mathrm{tr}\,\mathrm{Cov}(\hat g)$ [a.u.]", title="gradient-estimator variance (lines: exact)")
    ax1.legend(fontsize=6, loc="lower left")
    B = max(p["batch_sizes"])
    names = ["proportional", "neyman", "equal"]
    bottom = np.zeros(len(names))
    for h in range(sizes.size):
        vals = [th.stratum_variance_terms(prob, theta, B, *designs[nm][1])[h] for nm in names]
        ax2.bar(range(len(names)), vals, bottom=bottom, color=("#56B4E9", "#F0E442", "#CC79A7")[h % 3], edgecolor="k",
                lw=0.4, label=f"class {h}: N = {int(sizes[h])}, S = {S[h]:.2f}")
        bottom += vals
    ticks = []
    for nm, short in zip(names, ("proportional", "Neyman", r"$n_h\propto S_h^2$")):
        n_h = th.stratified_allocation(prob, B, *designs[nm][1])
        ticks.append(f"{short}\nn = ({', '.join(str(v) for v in n_h)})")
    ax2.set_xticks(range(len(names)), ticks)
    ax2.set(ylabel=r"class terms $W_h^2S_h^2(1-n_h/N_h)/n_h$ [a.u.]",
            title=f"the classes' shares of tr Cov at B = {B}", ylim=(0, 1.15 * bottom.max()))
    ax2.legend(fontsize=6, loc="upper left")
    return fig
