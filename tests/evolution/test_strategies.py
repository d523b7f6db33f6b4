"""Restarts, separable CMA-ES, xNES and SNES against their published behaviour and exact one-step
expectations; initial records, divergence flags and variable names of every evolution integrator.

Tolerances: 4 Monte Carlo standard errors (SE) from the sample itself, as in test_popgen_theory.py
(a correct implementation fails a check under a new seed with probability < 1e-4); each statistical
test also checks that the alternative it rules out lies many SE away. Evaluation counts against
pycma are compared in benchmarks/bench_cmaes_evals.py, not here.
"""

import math
import warnings

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory as th
from stochdyn.integrators.nes import nes_utilities
from test_es_theory import linear4  # U = x_0 in 4-D

Z = 4.0
L = sd.landscapes


def _success(ds, target=1e-8):
    return ds["best_energy"].isel(time=-1).values < target


def test_restarts_solve_rastrigin_where_one_run_does_not():
    # Auger & Hansen (2005), Hansen (2009): restarts with growing populations solve multimodal functions
    # on which a default run ends in a local minimum. 3-D Rastrigin from x0 = 3, budget 6000 evaluations:
    # one run succeeds ~5% of the time, IPOP and BIPOP ~50%; the difference is > 10 SE with 200 runs.
    land, R, budget = L.Rastrigin(dim=3), 200, 6000
    n = budget // 7
    single = _success(sd.simulate(sd.CMAES(sigma0=2.0), land, np.full(3, 3.0), n_replicas=R, n_steps=n,
                                  record_every=n, rng=3))
    for mode in ("ipop", "bipop"):
        ds = sd.simulate(sd.CMAES(sigma0=2.0, restarts=mode, max_evaluations=budget), land, np.full(3, 3.0),
                         n_replicas=R, n_steps=n, record_every=n, rng=3)
        ok = _success(ds)
        se = math.sqrt(ok.var() / R + single.var() / R)
        assert ok.mean() - single.mean() > Z * se, (mode, ok.mean(), single.mean(), se)
        assert np.all(ds["evaluations"].values <= budget)


def test_restart_bookkeeping_ipop_and_bipop():
    # every generation recorded: evaluations grow by the current population size until the budget would be
    # exceeded, then stay (the replica halts and its records repeat); IPOP sizes are lambda0 * 2^restarts;
    # BIPOP's large runs double and its small ones lie between lambda0 and the current large size
    land, budget, lam0 = L.Rastrigin(dim=3), 3000, 7
    for mode in ("ipop", "bipop"):
        ds = sd.simulate(sd.CMAES(sigma0=2.0, restarts=mode, max_evaluations=budget), land, np.full(3, 3.0),
                         n_replicas=12, n_steps=800, rng=7)
        ev, lam, rs = (ds[v].values for v in ("evaluations", "population_size", "restarts"))
        assert np.all(ev[:, -1] <= budget)
        dev = np.diff(ev, axis=1)
        assert np.all((dev == lam[:, :-1]) | (dev == 0))  # a generation uses the size recorded before it
        stopped = dev == 0
        assert np.all(np.diff(stopped.astype(int), axis=1) >= 0)  # once halted, halted for good
        halted_rows = stopped[:, -1]
        assert halted_rows.any() and np.all(ev[halted_rows, -1] + lam[halted_rows, -1] > budget)
        m = ds["population_mean"].values
        for r in np.flatnonzero(halted_rows):
            first = np.argmax(stopped[r]) + 1
            assert np.all(m[r, first:] == m[r, first]) and np.all(ds["best_energy"].values[r, first:]
                                                                 == ds["best_energy"].values[r, first])
        assert np.all(np.diff(rs, axis=1) >= 0) and rs.max() >= 2
        if mode == "ipop":
            assert np.all(lam == lam0 * 2**rs)
        else:
            large = np.isin(lam, lam0 * 2 ** np.arange(10))
            assert np.all(lam >= lam0) and np.all(large | (lam < lam0 * 2 ** np.maximum(rs, 1)))
            assert (~large).any()  # some small runs happened


def test_restarts_are_validated():
    with pytest.raises(sd.ValidationError, match="restarts"):
        sd.CMAES(restarts="sometimes")
    with pytest.raises(sd.ValidationError, match="parents"):
        sd.CMAES(restarts="ipop", parents=3)
    with pytest.raises(sd.ValidationError, match="record_population"):
        sd.SepCMAES(restarts="bipop", record_population=True)
    with pytest.raises(sd.ValidationError, match="max_evaluations"):
        sd.CMAES(restarts="ipop", max_evaluations=0)


def test_sep_cmaes_learns_a_separable_ellipsoid_faster_and_its_diagonal():
    # Ros & Hansen (2008): with learning rates (n + 2)/3 larger, sep-CMA-ES adapts to an axis-parallel
    # ellipsoid in fewer evaluations than CMA-ES (here 10-D, condition 1e6: ~2700 vs ~4300, median of 16),
    # and sigma^2 c_i is proportional to 1/k_i (an isotropic distribution would be off by 1e6).
    k = 10.0 ** (6 * np.arange(10) / 9)
    land = L.Harmonic(stiffness=k)
    med = {}
    for integ in (sd.CMAES, sd.SepCMAES):
        ds = sd.simulate(integ(sigma0=1.0), land, np.ones(10), n_replicas=16, n_steps=2500, record_every=10, rng=4)
        b = ds["best_energy"].values
        assert np.all(b[:, -1] < 1e-10)
        hit = np.argmax(b < 1e-10, axis=1)
        med[integ.__name__] = np.median(ds["evaluations"].values[np.arange(16), hit])
        v = ds["variance"].isel(time=-1).values * k
        assert np.all(v.max(1) / v.min(1) < 10.0)
    assert med["SepCMAES"] < 0.8 * med["CMAES"], med


@pytest.mark.parametrize("cls", [sd.XNES, sd.SNES])
def test_nes_one_step_on_a_linear_function_is_exact(cls):
    # from B = I on U = x0: E[dm] = -eta_mu sigma c_u e0 with c_u = sum u_k E[X_{lam-k+1:lam}], and
    # E[log sigma'/sigma] = eta_sigma/2 E[G_sigma] (xNES: E[G_sigma] = (1/n) sum_k u_k E[X^2]; SNES: the
    # ranked coordinate gets n times that, the others 0) -- theory.xnes_linear_expectations
    reps, sigma, n = 20_000, 0.5, 4
    integ = cls(sigma0=sigma)
    ds = sd.simulate(integ, linear4(), np.zeros(n), n_replicas=reps, n_steps=1, rng=21)
    lam = integ.lam(n)
    c_u, g_sigma = th.xnes_linear_expectations(lam, n, nes_utilities(lam))
    dm = ds["population_mean"].isel(time=-1).values
    se = dm.std(0, ddof=1) / math.sqrt(reps)
    assert abs(dm[:, 0].mean() + integ.learning_rate_mean * sigma * c_u) < Z * se[0], (dm[:, 0].mean(), c_u)
    assert np.all(np.abs(dm[:, 1:].mean(0)) < Z * se[1:])
    assert integ.learning_rate_mean * sigma * c_u > 20 * se[0]  # the progress itself is resolved
    if cls is sd.XNES:  # sigma' = sigma exp(eta_sigma/2 G_sigma)
        got = np.log(ds["sigma"].isel(time=-1).values / sigma)
        expect = 0.5 * integ.eta_sigma(n) * g_sigma
        se_s = got.std(ddof=1) / math.sqrt(reps)
        assert abs(got.mean() - expect) < Z * se_s, (got.mean(), expect, se_s)
        assert abs(expect) > 4 * se_s
    else:  # per coordinate; only the ranked one changes on average
        got = 0.5 * np.log(ds["variance"].isel(time=-1).values / sigma**2)
        expect = np.zeros(n)
        expect[0] = 0.5 * integ.eta_sigma(n) * g_sigma * n
        se_s = got.std(0, ddof=1) / math.sqrt(reps)
        assert np.all(np.abs(got.mean(0) - expect) < Z * se_s), (got.mean(0), expect, se_s)
        assert abs(expect[0]) > 10 * se_s[0]


def test_snes_with_raw_utilities_follows_the_smoothed_gradient_and_curvature():
    # fitness_shaping="none": f_k = -(U_k - mean U)/(lam - 1) makes sum f_k s_k unbiased for
    # -E[U(m + sigma s) s] = -sigma grad U_sigma(m) and sum f_k (s_k^2 - 1) for -sigma^2 E[d_ii U] (Stein), so
    # E[dm] = -eta_mu sigma^2 grad U_sigma and E[log sigma'/sigma] = -eta_sigma/2 sigma^2 E[d_ii U], exactly
    A, sigma, reps = 10.0, 0.3, 20_000
    land = L.Rastrigin(dim=2, amplitude=A)
    m0 = np.array([0.3, -0.15])
    integ = sd.SNES(sigma0=sigma, fitness_shaping="none", learning_rate_mean=0.01, learning_rate_sigma=0.01)
    ds = sd.simulate(integ, land, m0, n_replicas=reps, n_steps=1, rng=22)
    dm = ds["population_mean"].isel(time=-1).values - m0
    se = dm.std(0, ddof=1) / math.sqrt(reps)
    smooth = -0.01 * sigma**2 * th.smoothed_rastrigin_gradient(m0, sigma, A)
    assert np.all(np.abs(dm.mean(0) - smooth) < Z * se), (dm.mean(0), smooth, se)
    assert np.all(np.abs(smooth + 0.01 * sigma**2 * land.grad(m0)) > 10 * se)  # not the unsmoothed gradient
    logs = 0.5 * np.log(ds["variance"].isel(time=-1).values / sigma**2)
    se_s = logs.std(0, ddof=1) / math.sqrt(reps)
    curv = -0.5 * 0.01 * sigma**2 * th.smoothed_rastrigin_curvature(m0, sigma, A)
    assert np.all(np.abs(logs.mean(0) - curv) < Z * se_s), (logs.mean(0), curv, se_s)
    assert np.all(np.abs(curv) > 10 * se_s)


@pytest.mark.parametrize("cls", [sd.XNES, sd.SNES])
def test_nes_converge_and_adapt_to_an_ellipsoid(cls):
    # Wierstra et al. (2014): both converge log-linearly on ellipsoids and their variances become
    # proportional to 1/k_i (the isotropic start is off by a factor 1000)
    k = np.array([1.0, 10.0, 100.0, 1000.0])
    ds = sd.simulate(cls(sigma0=0.5), L.Harmonic(stiffness=k), np.ones(4), n_replicas=8, n_steps=1000,
                     record_every=100, rng=5)
    assert np.all(ds["best_energy"].isel(time=-1).values < 1e-20)
    v = ds["variance"].isel(time=-1).values * k
    assert np.all(v.max(1) / v.min(1) < 10.0)


ES = {
    "OnePlusOneES": lambda: sd.OnePlusOneES(sigma0=0.5),
    "CSAES": lambda: sd.CSAES(sigma0=0.5),
    "CMAES": lambda: sd.CMAES(sigma0=0.5),
    "CMAES-ipop": lambda: sd.CMAES(sigma0=0.5, restarts="ipop", max_evaluations=500),
    "SepCMAES": lambda: sd.SepCMAES(sigma0=0.5),
    "XNES": lambda: sd.XNES(sigma0=0.5),
    "SNES": lambda: sd.SNES(sigma0=0.5),
    "OpenES": lambda: sd.OpenES(sigma=0.2, n_pairs=4),
}


@pytest.mark.parametrize("name", sorted(ES))
def test_initial_records_are_finite(name):
    # time 0 holds U at the initial mean in energy, best_energy and population_energy (no inf, no NaN),
    # so analysis and plots of a fresh Dataset print no NumPy warnings
    land = L.Rastrigin(dim=3)
    x0 = np.array([[0.5, 1.0, -1.0], [2.0, 0.1, 0.0]])
    ds = sd.simulate(ES[name](), land, x0, n_replicas=2, n_steps=4, rng=1)
    u0 = land.value(x0)
    for v in ("energy", "best_energy") + (("population_energy",) if "population_energy" in ds else ()):
        np.testing.assert_array_equal(ds[v].isel(time=0).values, u0, err_msg=v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in ds.data_vars:
            if ds[v].dtype.kind == "f" and v != "gradient":
                np.log1p(np.abs(ds[v])).mean("replica").max()
                assert np.all(np.isfinite(ds[v].values)), v
    assert np.all(np.diff(ds["best_energy"].values, axis=1) <= 0)  # the best never gets worse


def test_a_non_finite_initial_energy_is_rejected():
    @sd.landscapes.landscape(dim=1, check=False)
    def log_well(x, grad):
        grad[0] = -1.0 / x[0]
        return -math.log(x[0])

    for integ in (sd.CMAES(), sd.OpenES(), sd.OnePlusOneES(), sd.GeneticAlgorithm(init_scale=0.0)):
        with pytest.raises(sd.ValidationError, match="not finite at the initial point"):
            sd.simulate(integ, log_well(), x0=[-1.0], n_replicas=2, n_steps=1)


def test_genetic_algorithm_flags_replicas_whose_energies_become_non_finite():
    # U = -exp(40 x) is unbounded below: a population that wanders to x > 17.7 evaluates U = -inf there
    @sd.landscapes.landscape(dim=1, check=False)
    def cliff(x, grad):
        grad[0] = -40.0 * math.exp(40.0 * x[0])
        return -math.exp(40.0 * x[0])

    x0 = np.array([[15.0], [-30.0]])  # replica 0 falls off the cliff; replica 1 is 47 units away
    integ = sd.GeneticAlgorithm(population_size=10, mutation_rate=1.0, mutation_scale=1.0, init_scale=0.0)
    with pytest.warns(sd.DivergenceWarning):
        ds = sd.simulate(integ, cliff(), x0, n_replicas=2, n_steps=40, rng=2)
    assert ds["diverged"].values.tolist() == [True, False]
    assert np.all(np.isfinite(ds["energy"].isel(replica=1).values))
    step = int(ds["diverged_step"].values[0])
    assert np.all(np.isfinite(ds["energy"].isel(replica=0).values[:step]))


@pytest.mark.parametrize("cls", [sd.WrightFisher, sd.Moran])
def test_a_fitness_map_returning_non_finite_values_flags_the_replica(cls):
    @sd.fitness.fitness_map
    def blows_up(u, s):
        return math.inf if u > s else 1.0

    land = L.Harmonic(stiffness=[1.0])
    x0 = np.array([[0.0], [0.99]])  # replica 1 starts next to U = 0.5 and mutations of 0.3 cross it
    integ = cls(population_size=10, fitness="blows_up", selection=0.5, mutation_scale=0.3)
    with pytest.warns(sd.DivergenceWarning, match="fitness"):
        ds = sd.simulate(integ, land, x0, n_replicas=2, n_steps=30, rng=4)
    assert ds["diverged"].values[1]
    assert np.all(np.isnan(ds["population_mean"].isel(replica=1, time=-1).values))


def test_a_collapsed_cma_run_halts_instead_of_diverging():
    # on Rastrigin a run ends in a local minimum, then its covariance shrinks until it is no longer
    # numerically positive definite (generation ~1500 here): that is the end of the run, not divergence
    land = L.Rastrigin(dim=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.DivergenceWarning)
        ds = sd.simulate(sd.CMAES(sigma0=2.0), land, np.full(5, 3.0), n_replicas=4, n_steps=3000, record_every=100,
                         rng=3)
    ev = ds["evaluations"].values
    assert np.all(ev[:, -1] < 8 * 3000) and np.all(ev[:, -1] == ev[:, -2])  # halted, records repeated
