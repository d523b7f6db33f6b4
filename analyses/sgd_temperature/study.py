"""Temperature of mini-batch SGD on least squares against the learning rate and the batch size.

Ensembles of real SGD (sampling with replacement) start at the minimiser; after ``burn_relaxations``
relaxation times of the slowest mode, two temperatures are read off the stationary ensemble with
``sd.analysis``: the variance (equipartition) temperature tr(HC)/d (``variance_temperature``) and the
configurational temperature <|grad U|^2>/<laplacian U> = tr(H^2 C)/tr H (``configurational_temperature``).
Both equal T for a Gibbs law C = T H^-1; for SGD they differ, because the stationary law is not Gibbs.
Theory: the exact stationary covariance C of the second-moment recursion (``sgd_stationary_covariance``,
any step, batch size) gives both exactly; the small-step law eta tr(Sigma_1)/(2 d B)
(``effective_temperature``) is the chapter's matching condition, drawn beside.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

import stochdyn as sd
from stochdyn import theory as th


def run(ctx):
    p = ctx.params
    data = sd.problems.gaussian_regression(p["n_examples"], p["dim"], noise=p["label_noise"], seed=p["data_seed"],
                                           scales=p["feature_scales"])
    prob = sd.problems.LeastSquares.from_data(data)
    ts, H = prob.minimizer(), prob.hessian
    h_min = float(np.linalg.eigvalsh(H)[0])
    lrs, batches = p["lrs"], p["batch_sizes"]
    shape = (len(lrs), len(batches))
    est = {k: (np.zeros(shape), np.zeros(shape)) for k in ("variance", "configurational")}
    exact = {k: np.zeros(shape) for k in est}
    for i, eta in enumerate(lrs):
        m = math.ceil(1.0 / (eta * h_min))  # one relaxation time of the slowest mode, in steps
        n = m * (p["burn_relaxations"] + p["records"])
        for j, B in enumerate(batches):
            ds = sd.simulate(sd.SGD(lr=eta, batch_size=B, record_extra=()), prob, x0=ts, n_replicas=p["replicas"],
                             n_steps=n, record_every=m, rng=ctx.rng(i, j))
            burn = p["burn_relaxations"] + 1  # records (the first is the start)
            C = th.sgd_stationary_covariance(prob, eta, B)
            for key, fn, theory in (("variance", sd.analysis.variance_temperature, th.equipartition_temperature),
                                    ("configurational", sd.analysis.configurational_temperature,
                                     th.configurational_temperature_quadratic)):
                e = fn(ds, prob, burn_in=burn)
                est[key][0][i, j], est[key][1][i, j] = float(e.value), float(e.standard_error)
                exact[key][i, j] = theory(H, C)
    S1 = th.gradient_noise_covariance(prob, ts, 1)
    name = ctx.figure(_figure(prob, lrs, batches, est, S1), "temperature")
    labels = {"variance": "variance temperature tr(HC)/d", "configurational": "configurational temperature tr(H²C)/tr H"}
    for key in ("variance", "configurational"):
        for i, eta in enumerate(lrs):
            for j, B in enumerate(batches):
                ctx.record(f"{labels[key]}, lr = {eta:g}, B = {B}", est[key][0][i, j], est[key][1][i, j],
                           exact[key][i, j], figure=name)


def _as_estimate(lrs, batches, value, se):
    coords = {"lr": ("lr", np.asarray(lrs, dtype=float), {"long_name": "learning rate η", "units": "time"}),
              "batch_size": ("batch_size", np.asarray(batches), {"long_name": "batch size B", "units": "count"})}
    return xr.Dataset({"value": (("lr", "batch_size"), value, {"units": "a.u."}),
                       "standard_error": (("lr", "batch_size"), se)}, coords=coords)


def _figure(prob, lrs, batches, est, S1):
    d, H = prob.dim, prob.hessian
    with sd.plot.style("paper", columns=2):
        fig, axes = plt.subplots(1, 2, figsize=sd.plot.figsize(2, 0.5), layout="constrained")
        for ax, key, theory, title in (
                (axes[0], "variance", th.equipartition_temperature, "(a) variance temperature tr(HC)/d"),
                (axes[1], "configurational", th.configurational_temperature_quadratic,
                 "(b) configurational temperature ⟨|∇U|²⟩/⟨ΔU⟩")):

            def exact(eta, B, theory=theory):
                return np.array([theory(H, th.sgd_stationary_covariance(prob, e, int(B))) for e in eta])

            e = _as_estimate(lrs, batches, *est[key])
            sd.plot.temperature_scan(e, "lr", hue="batch_size", theory=exact, ax=ax,
                                     theory_label="exact, finite lr (sgd_stationary_covariance)",
                                     ylabel="temperature", units="a.u.")
            fine = np.geomspace(min(lrs), max(lrs), 60)
            for j, B in enumerate(batches):
                ax.plot(fine, th.effective_temperature(fine, S1 / B), color=f"C{j}", lw=0.8, ls=":")
            handles, labels = ax.get_legend_handles_labels()
            handles += [Line2D([], [], color="0.3", lw=1.0, ls="--"), Line2D([], [], color="0.3", lw=0.8, ls=":")]
            labels += ["exact at this lr and B (sgd_stationary_covariance)",
                       "small-step law η trΣ₁/(2dB) = T of the matched Gibbs law"]
            ax.get_legend().remove()
            ax.set_title(title, fontsize=7.5)
        fig.legend(handles, labels, loc="outside upper center", ncol=3, fontsize=6.5)
    return fig
