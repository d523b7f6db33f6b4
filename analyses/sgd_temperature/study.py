"""Temperature of mini-batch SGD on least squares against the learning rate and the batch size.

Ensembles of real SGD (sampling with replacement) start at the minimiser; after ``burn_relaxations``
relaxation times of the slowest mode, two temperatures are read off the stationary ensemble with
``sd.analysis``: the variance (equipartition) temperature tr(HC)/d (``variance_temperature``) and the
configurational temperature <|grad U|^2>/<laplacian U> = tr(H^2 C)/tr H (``configurational_temperature``).
Both equal T for a Gibbs law C = T H^-1; for SGD they differ, because the stationary law is not Gibbs.
Theory: the exact stationary covariance C of the second-moment recursion (``sgd_stationary_covariance``,
any step, batch size) gives both exactly; the small-step law eta tr(Sigma_1)/(2 d B)
(``effective_temperature``) is the chapter's matching condition. Where it holds: the measured relative error
T/T_law - 1 against eta, fitted by a + b eta + c eta^2 over eta <= ``fit_max_lr``: the intercept a must vanish
(the law is the eta -> 0 limit) and the slope b is the exact first-order coefficient
(``sgd_temperature_expansion``: finite step + multiplicative noise). Standard errors from batches of replicas.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.studies import batch_standard_error, chi_square_quantile


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
                est[key][0][i, j] = float(e.value)
                exact[key][i, j] = theory(H, C)
            # SE from batches of replicas (not the per-replica plug-in): the same estimators on groups of replicas
            x = ds.x.values[:, burn:, :]  # (replica, record, dim)
            for key, stat in (("variance", _variance_temperature), ("configurational", _configurational_temperature)):
                v, se = batch_standard_error(x, lambda a, stat=stat: stat(a, H, ts))
                if not math.isclose(v, est[key][0][i, j], rel_tol=1e-9):
                    raise AssertionError(f"{key} temperature: {v} here, {est[key][0][i, j]} from sd.analysis")
                est[key][1][i, j] = se
    S1 = th.gradient_noise_covariance(prob, ts, 1)
    fits = _small_step_fits(prob, lrs, batches, est, p["fit_max_lr"])
    name = ctx.figure(_figure(prob, lrs, batches, est, S1, fits), "temperature")
    labels = {"variance": "variance temperature tr(HC)/d", "configurational": "configurational temperature tr(H²C)/tr H"}
    for key in ("variance", "configurational"):
        for i, eta in enumerate(lrs):
            for j, B in enumerate(batches):
                ctx.record(f"{labels[key]}, lr = {eta:g}, B = {B}", est[key][0][i, j], est[key][1][i, j],
                           exact[key][i, j], figure=name)
    for j, B in enumerate(batches):
        f = fits[B]
        pts = f"lr ≤ {p['fit_max_lr']:g}, {f['n']} points"
        ctx.record(f"small-step law η trΣ₁/(2dB), B = {B}: relative error of the variance temperature as η → 0 "
                   f"(intercept of a quadratic fit in η, {pts})", f["a"], f["se_a"], 0.0, figure=name)
        ctx.record(f"small-step law, B = {B}: first-order coefficient of its relative error (slope at η = 0 of "
                   f"b η + c η², through 0) vs exact "
                   f"c_step + c_mult = {f['c_step']:.3f} + {f['c_mult']:.3f}", f["b"], f["se_b"],
                   f["c_step"] + f["c_mult"], figure=name)
        ctx.record(f"small-step law, B = {B}: goodness of the quadratic fit of the relative error ({pts}; chi-square "
                   f"{f['chi2']:.2f} on {f['dof']} dof, as a normal quantile)", chi_square_quantile(f["chi2"], f["dof"]),
                   1.0, 0.0, figure=name)
        # where the law breaks: at the largest lr its error is resolved by the run (exact vs law, in SE)
        i = len(lrs) - 1
        law = f["T1"] * lrs[i]
        ctx.bound(f"small-step law, B = {B}, lr = {lrs[i]:g}: |exact − law| = {abs(exact['variance'][i, j] / law - 1):.1%} "
                  "of the law, in standard errors of the check (the breakdown is resolved)",
                  abs(exact["variance"][i, j] - law) / est["variance"][1][i, j], 5.0, ">=", units="SE", figure=name)


def _variance_temperature(x, H, ts):
    """tr(H C)/d with C the covariance over replicas and records (ensemble mean subtracted), x: (R, n, d)."""
    e = x - x.mean(axis=(0, 1))
    return float(np.einsum("rti,ij,rtj->", e, H, e) / (e.shape[0] * e.shape[1]) / H.shape[0])


def _configurational_temperature(x, H, ts):
    """<|grad U|^2>/<laplacian U> = <|H (x - theta*)|^2>/tr H on a quadratic."""
    g = (x - ts) @ H
    return float(np.mean(np.sum(g * g, axis=-1)) / np.trace(H))


def _small_step_fits(prob, lrs, batches, est, max_lr):
    """Weighted fits of the measured relative error r = T / (T1 eta) - 1 over eta <= max_lr: r = a + b eta + c eta^2
    (a: does the law hold as eta -> 0? chi-square: is the quadratic adequate?) and, given a = 0, r = b eta + c eta^2
    (b: the first-order coefficient)."""
    eta = np.asarray(lrs, dtype=float)
    sel = eta <= max_lr
    out = {}
    for j, B in enumerate(batches):
        T1, c_step, c_mult = th.sgd_temperature_expansion(prob, B)
        r = est["variance"][0][:, j] / (T1 * eta) - 1.0
        se = est["variance"][1][:, j] / (T1 * eta)
        A = np.column_stack([np.ones(sel.sum()), eta[sel], eta[sel] ** 2])
        w = 1.0 / se[sel] ** 2
        cov = np.linalg.inv(A.T @ (w[:, None] * A))
        coef = cov @ A.T @ (w * r[sel])
        chi2 = float(np.sum(w * (r[sel] - A @ coef) ** 2))
        # the slope at eta = 0 given the limit (intercept 0, checked above): r = b eta + c eta^2
        cov0 = np.linalg.inv(A[:, 1:].T @ (w[:, None] * A[:, 1:]))
        b0 = cov0 @ A[:, 1:].T @ (w * r[sel])
        out[B] = dict(T1=T1, c_step=c_step, c_mult=c_mult, r=r, se=se, a=float(coef[0]), b=float(b0[0]),
                      c=float(b0[1]), se_a=float(math.sqrt(cov[0, 0])), se_b=float(math.sqrt(cov0[0, 0])), chi2=chi2,
                      dof=int(sel.sum() - 3), n=int(sel.sum()))
    return out


def _as_estimate(lrs, batches, value, se):
    coords = {"lr": ("lr", np.asarray(lrs, dtype=float), {"long_name": "learning rate η", "units": "a.u."}),
              "batch_size": ("batch_size", np.asarray(batches), {"long_name": "batch size B", "units": "count"})}
    return xr.Dataset({"value": (("lr", "batch_size"), value, {"units": "a.u."}),
                       "standard_error": (("lr", "batch_size"), se)}, coords=coords)


def _figure(prob, lrs, batches, est, S1, fits):
    d, H = prob.dim, prob.hessian
    with sd.plot.style("paper", columns=2):
        fig, axes = plt.subplots(1, 3, figsize=(7.0, 3.0), layout="constrained")
        for ax, key, theory, title in (
                (axes[0], "variance", th.equipartition_temperature, "(a) variance temperature tr(HC)/d"),
                (axes[1], "configurational", th.configurational_temperature_quadratic,
                 "(b) configurational ⟨|∇U|²⟩/⟨ΔU⟩")):

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
            labels += ["exact at this lr and B", "small-step law η trΣ₁/(2dB)"]
            ax.get_legend().remove()
            ax.set_xlabel("learning rate η [a.u.]")
            ax.set_title(title, fontsize=8)
        # (c) where the small-step law holds: its relative error against eta
        ax = axes[2]
        fine = np.linspace(0.0, max(lrs), 80)[1:]
        for j, B in enumerate(batches):
            f = fits[B]
            T1 = f["T1"]
            ex = [th.equipartition_temperature(H, th.sgd_stationary_covariance(prob, e, B)) / (T1 * e) - 1 for e in fine]
            ax.plot(fine, 100 * np.array(ex), color=f"C{j}", lw=1.0, ls="--")
            ax.plot(fine, 100 * (f["c_step"] + f["c_mult"]) * fine, color=f"C{j}", lw=0.8, ls=":")
            ax.errorbar(lrs, 100 * f["r"], yerr=200 * f["se"], fmt="o", ms=3, color=f"C{j}", mec="k", mew=0.4)
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.set(xlabel="learning rate η [a.u.]", ylabel="T / (η trΣ₁/(2dB)) − 1 [%] (±2 SE)", xlim=(0, 1.05 * max(lrs)))
        ax.set_title("(c) error of the small-step law", fontsize=8)
        handles += [Line2D([], [], color="0.3", lw=0.8, ls=":")]
        labels += ["first order (c_step + c_mult) η"]
        fig.legend(handles, labels, loc="outside upper center", ncol=3, fontsize=6.5)
    return fig
