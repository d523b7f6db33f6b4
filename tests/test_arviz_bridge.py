"""sd.analysis.to_inference_data: a run as ArviZ data (replica -> chain, time -> draw), and ArviZ's
diagnostics on it against exact results for stationary Euler–Maruyama Ornstein–Uhlenbeck chains.

Recorded every m steps, Euler–Maruyama on U = k x^2 / 2 is an AR(1) chain with coefficient
a = (1 - k dt)^m and stationary variance s2 = T / (k (1 - k dt / 2)); started from N(0, s2) it is
stationary from the first draw, so every diagnostic has a closed form:

* integrated autocorrelation time tau = (1 + a) / (1 - a), hence ESS = M N / tau for M chains of N draws;
* for n draws per chain, E[variance of chain means] = s2 tau_n / n and E[within-chain variance] =
  s2 (n - tau_n) / (n - 1), with tau_n = 1 + 2 sum_{k<n} (1 - k/n) a^k; so split R-hat (halves of n
  draws) is sqrt((n - 1) / (n - tau_n)) > 1 for chains that are stationary but short.
"""

import sys

import numpy as np
import pytest

import stochdyn as sd

az = pytest.importorskip("arviz", reason="the 'test' extra installs arviz")

K, T, DT = 1.0, 1.0, 0.01


def _stationary_chains(n_chains, n_draws, every, seed):
    s2 = T / (K * (1 - K * DT / 2))
    x0 = np.random.default_rng(seed).normal(0.0, np.sqrt(s2), size=(n_chains, 1))
    ds = sd.simulate(sd.EulerMaruyama(dt=DT, temperature=T), sd.landscapes.Harmonic(stiffness=K, dim=1), x0=x0,
                     n_replicas=n_chains, n_steps=(n_draws - 1) * every, record_every=every, rng=seed)
    return ds, (1 - K * DT) ** every


def _tau_n(a, n):
    k = np.arange(1, n)
    return 1 + 2 * np.sum((1 - k / n) * a ** k)


def test_layout_values_and_arguments():
    ds, _ = _stationary_chains(6, 21, 10, seed=1)
    idata = sd.analysis.to_inference_data(ds)
    post = idata.posterior
    assert post.x.dims == ("chain", "draw", "dim") and post.energy.dims == ("chain", "draw")
    np.testing.assert_array_equal(post.x.values, ds.x.values)  # same numbers, same order
    np.testing.assert_array_equal(post.chain.values, ds.replica.values)
    np.testing.assert_array_equal(post.draw.values, ds.time.values)
    np.testing.assert_array_equal(post.step.values, ds.step.values)
    assert "diverged" not in post and post.attrs["integrator"] == ds.attrs["integrator"]

    cut = sd.analysis.to_inference_data(ds, "x", burn_in=5).posterior
    assert list(cut.data_vars) == ["x"] and cut.sizes["draw"] == 16
    np.testing.assert_array_equal(cut.x.values, ds.x.values[:, 5:])

    with pytest.raises(sd.ValidationError, match="'var_names'.*x, energy.*Got 'diverged'"):
        sd.analysis.to_inference_data(ds, "diverged")
    with pytest.raises(sd.ValidationError, match="'burn_in'.*Got 20"):
        sd.analysis.to_inference_data(ds, burn_in=20)
    with pytest.raises(sd.ValidationError, match="xarray.Dataset"):
        sd.analysis.to_inference_data(ds.x)


def test_missing_arviz_is_a_clear_error(monkeypatch):
    ds, _ = _stationary_chains(2, 3, 1, seed=2)
    monkeypatch.setitem(sys.modules, "arviz", None)  # import arviz now raises ImportError
    with pytest.raises(ImportError, match=r"pip install arviz \(or 'stochdyn\[arviz\]'\)"):
        sd.analysis.to_inference_data(ds)


def test_bulk_ess_of_stationary_chains_matches_theory():
    # 40 chains x 5000 draws, a = 0.99^69 = 0.4998: tau = 2.999, ESS = 200000 / tau = 66690.
    # The relative standard error of an integrated-time estimate over a window W is
    # sqrt(2 (2W + 1) / (M N)) (Madras & Sokal 1988); Geyer's window here is W <= 10 lags, so
    # SE <= 1.45%; we allow 4 SE. ArviZ's estimator has a finite-chain bias of about +15/N relative
    # for this chain (measured on pure AR(1) draws: +3% at N = 500, +0.5% at N = 5000), hence long chains.
    ds, a = _stationary_chains(40, 5000, 69, seed=3)
    tau = (1 + a) / (1 - a)
    theory = 40 * 5000 / tau
    ess = az.ess(sd.analysis.to_inference_data(ds, "x"), method="bulk").x.item()
    rel_se = np.sqrt(2 * (2 * 10 + 1) / (40 * 5000))
    assert abs(ess / theory - 1) < 4 * rel_se, (ess, theory)


def test_split_rhat_of_short_stationary_chains_matches_theory():
    # The double-well model card's transverse coordinate in miniature: 2000 chains of 101 draws,
    # a = 0.99^10 = 0.904 (tau = 20), so each split half of n = 50 draws has tau_n = 16.0 and
    # R-hat = sqrt(49 / (50 - 16.0)) = 1.200 although every chain is exactly stationary.
    ds, a = _stationary_chains(2000, 101, 10, seed=4)
    n = 50
    theory = np.sqrt((n - 1) / (n - _tau_n(a, n)))
    rhat = az.rhat(sd.analysis.to_inference_data(ds, "x"), method="split").x.item()
    # the same statistic from the replicas directly: halves are draws [0, 50) and [51, 101)
    x = ds.x.values[..., 0]
    halves = np.concatenate([x[:, :n], x[:, -n:]])
    V, w = halves.mean(axis=1).var(ddof=1), halves.var(axis=1, ddof=1)
    W = w.mean()
    assert rhat == pytest.approx(np.sqrt((n - 1) / n + V / W), rel=1e-12)  # ArviZ saw replicas as chains
    # SE by the delta method: relative SE of V sqrt(2/(J-1)) for J = 4000 Gaussian half-chain means
    # (the two halves of a chain correlate by ~0.1: < 1% on it), of W its sample SE; we allow 4 SE
    J = halves.shape[0]
    rel = np.hypot(np.sqrt(2 / (J - 1)), w.std(ddof=1) / np.sqrt(J) / W)
    se = (V / W) * rel / (2 * rhat)
    assert abs(rhat - theory) < 4 * se, (rhat, theory, se)
    assert rhat > 1.1  # far above the usual 1.01 threshold: R-hat asks whether each chain is long
