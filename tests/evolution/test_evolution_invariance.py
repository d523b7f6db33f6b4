"""Invariance (threads, chunking, replica subsets) and bad inputs for the population and ES integrators."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stochdyn as sd

@sd.landscapes.landscape(check=False)
def plateau(x, grad):
    # flat steps: offspring tie, so pycma's tolflatfitness ends a run within a few generations
    for i in range(x.shape[0]):
        grad[i] = 0.0
    return math.floor(x[0])


GENO = sd.fitness.NKFitness(n_sites=6, k_epistasis=2, n_alleles=3, seed=1)
LAND = sd.landscapes.DoubleWell(dim=2)

CASES = {
    "wf_continuous": (lambda: sd.WrightFisher(population_size=30, mutation_scale=0.1, selection=2.0,
                                              recombination="free", recombination_rate=0.5, record_population=True),
                      lambda: LAND, [-1.0, 0.0]),
    "wf_genotypes": (lambda: sd.WrightFisher(population_size=20, mutation_rate=0.05, recombination="free"),
                     lambda: GENO, None),
    "moran_continuous": (lambda: sd.Moran(population_size=16, mutation_scale=0.2, recombination="blend",
                                          recombination_rate=0.3), lambda: LAND, [1.0, 0.5]),
    "moran_genotypes": (lambda: sd.Moran(population_size=12, mutation_rate=0.05), lambda: GENO, None),
    "one_plus_one": (lambda: sd.OnePlusOneES(sigma0=0.5), lambda: sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0]),
    "csaes": (lambda: sd.CSAES(sigma0=0.5), lambda: sd.landscapes.Rastrigin(dim=3), [2.0, 1.0, -1.0]),
    "cmaes": (lambda: sd.CMAES(sigma0=0.5, record_population=True), lambda: sd.landscapes.Rosenbrock(dim=4),
              [0.0, 0.0, 0.0, 0.0]),
    "cmaes_plain": (lambda: sd.CMAES(sigma0=0.5, active=False), lambda: sd.landscapes.Rosenbrock(dim=4),
                    [0.0, 0.0, 0.0, 0.0]),
    "cmaes_bipop": (lambda: sd.CMAES(sigma0=0.1, restarts="bipop", max_evaluations=60),
                    lambda: plateau(dim=2), [0.5, 1.0]),
    "sepcmaes_ipop": (lambda: sd.SepCMAES(sigma0=0.1, active=True, restarts="ipop"),
                      lambda: plateau(dim=3), [0.5, 1.0, -1.0]),
    "xnes": (lambda: sd.XNES(sigma0=0.5), lambda: sd.landscapes.Rosenbrock(dim=3), [0.0, 0.0, 0.0]),
    "snes": (lambda: sd.SNES(sigma0=0.5, fitness_shaping="none"), lambda: LAND, [0.2, 1.0]),
    "openes": (lambda: sd.OpenES(sigma=0.2, learning_rate=0.01, n_pairs=5, momentum=0.5,
                                 fitness_shaping="centered_ranks"), lambda: LAND, [0.2, 1.0]),
    "ga": (lambda: sd.GeneticAlgorithm(population_size=10, record_population=True), lambda: LAND, [0.5, 0.5]),
}


def _run(name, **kw):
    integ, target, x0 = CASES[name]
    args = dict(n_replicas=6, n_steps=12, record_every=3, rng=42)
    args.update(kw)
    return sd.simulate(integ(), target(), x0, **args)


def _same(a, b):
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


@pytest.mark.parametrize("name", sorted(CASES))
def test_chunking_and_subsets_do_not_change_results(name):
    full = _run(name)
    _same(full, _run(name, chunk_steps=3))
    _same(full, _run(name, chunk_steps=6))
    sub = _run(name, n_replicas=None, replicas=[4, 1])
    _same(full.sel(replica=[4, 1]), sub)


def test_thread_count_does_not_change_results(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        from test_evolution_invariance import CASES, _run
        np.savez(sys.argv[1], **{{n + "__" + v: _run(n, n_replicas=9)[v].values
                                 for n in sorted(CASES) for v in _run(n, n_replicas=9).data_vars}})
        """
    )
    outs = []
    for threads in (1, 2):
        f = tmp_path / f"t{threads}.npz"
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, "-c", script, str(f)], check=True, env=env, cwd=os.getcwd())
        outs.append(np.load(f))
    assert outs[0].files == outs[1].files
    for k in outs[0].files:
        np.testing.assert_array_equal(outs[0][k], outs[1][k], err_msg=k)


def test_restarting_cases_do_restart_within_the_invariance_runs():
    # the restart and budget paths are exercised by the invariance tests above, not only the first run
    for name in ("cmaes_bipop", "sepcmaes_ipop"):
        ds = _run(name)
        assert ds["restarts"].values.max() >= 1, name
    assert _run("cmaes_bipop")["evaluations"].values.max() <= 60


def test_population_layout_and_cost():
    ds = _run("wf_continuous")
    assert ds["x"].dims == ("replica", "time", "individual", "dim")
    assert ds["population_mean"].dims == ("replica", "time", "dim")
    assert list(ds["evaluations"].values[0]) == [30 * (s + 1) for s in range(0, 13, 3)]
    assert ds.attrs["family"] == "popgen" and ds["time"].attrs["units"] == "1"  # CF: a count
    assert ds["time"].attrs["long_name"] == "generation"
    np.testing.assert_allclose(ds["population_mean"].values, ds["x"].values.mean(2))
    g = _run("wf_genotypes")
    np.testing.assert_allclose(g["allele_frequency"].sum("allele").values, 1.0)
    x0 = np.zeros((6, 20, 6))
    x0[:, :, 0] = 2
    g2 = sd.simulate(CASES["wf_genotypes"][0](), GENO, x0, n_replicas=6, n_steps=3, rng=0)
    assert np.all(g2["allele_frequency"].isel(time=0, dim=0, allele=2).values == 1)


@pytest.mark.parametrize("make,msg", [
    (lambda: sd.WrightFisher(population_size=1), "population_size"),
    (lambda: sd.Moran(population_size=0), "population_size"),
    (lambda: sd.WrightFisher(mutation_rate=-0.1), "mutation_rate"),
    (lambda: sd.Moran(mutation_scale=-1.0), "mutation_scale"),
    (lambda: sd.WrightFisher(mutation_rate=1.5), "mutation_rate"),
    (lambda: sd.WrightFisher(selection=-1.0), "selection"),
    (lambda: sd.WrightFisher(fitness="cubic"), "fitness"),
    (lambda: sd.WrightFisher(recombination="sometimes"), "recombination"),
    (lambda: sd.CMAES(population_size=4, parents=6), "parents"),
    (lambda: sd.CSAES(population_size=1), "population_size"),
    (lambda: sd.OnePlusOneES(sigma0=0.0), "sigma0"),
    (lambda: sd.OpenES(sigma=-1.0), "sigma"),
    (lambda: sd.OpenES(momentum=1.0), "momentum"),
    (lambda: sd.GeneticAlgorithm(population_size=4, n_elite=4), "n_elite"),
    (lambda: sd.GeneticAlgorithm(crossover_rate=2.0), "crossover_rate"),
    (lambda: sd.fitness.AdditiveFitness([[0.0, -0.6], [0.0, -0.6]]), "negative"),
    (lambda: sd.fitness.MultiplicativeFitness([[0.0, -1.0]]), "negative"),
    (lambda: sd.fitness.NKFitness(n_sites=3, k_epistasis=3), "k_epistasis"),
])
def test_bad_parameters_are_rejected_with_clear_messages(make, msg):
    with pytest.raises(sd.ValidationError, match=msg):
        make()


def test_bad_runs_are_rejected_before_any_kernel():
    with pytest.raises(sd.ValidationError, match="negative, non-finite or zero"):
        # linear fitness 1 - s U is negative at the top of the barrier for s = 2
        sd.simulate(sd.WrightFisher(fitness="linear", selection=2.0), LAND, x0=[0.0, 0.0], n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="finite"):
        sd.simulate(sd.Moran(selection=1.0), LAND, x0=[np.inf, 0.0], n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="negative, non-finite or zero"):
        sd.simulate(sd.Moran(fitness="linear", selection=0.5), LAND, x0=[3.0, 0.0], n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="allele indices"):
        sd.simulate(sd.WrightFisher(population_size=5), GENO, x0=np.full(6, 3.0), n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="shape"):
        sd.simulate(sd.WrightFisher(population_size=5), LAND, x0=np.zeros((2, 4, 2)), n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="blend"):
        sd.simulate(sd.Moran(recombination="blend"), GENO, n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="landscape"):
        sd.simulate(sd.CMAES(), GENO, n_replicas=2, n_steps=1)
    with pytest.raises(sd.ValidationError, match="Langevin|landscape"):
        sd.simulate(sd.EulerMaruyama(dt=0.1), GENO, n_replicas=2, n_steps=1)


def test_fitness_going_negative_during_the_run_freezes_that_replica():
    # linear fitness W = 1 - 0.5 U on a harmonic well: fine near the centre, negative beyond |x| = 2
    land = sd.landscapes.Harmonic(stiffness=[1.0])
    integ = sd.WrightFisher(population_size=10, fitness="linear", selection=0.5, mutation_scale=0.6)
    x0 = np.array([[0.0], [1.99]])
    with pytest.warns(sd.DivergenceWarning, match="fitness"):
        ds = sd.simulate(integ, land, x0, n_replicas=2, n_steps=50, rng=1)
    assert ds["diverged"].values[1]
    assert np.all(np.isnan(ds["population_mean"].isel(replica=1, time=-1).values))


def test_user_fitness_map():
    @sd.fitness.fitness_map
    def truncation(u, s):
        return 1.0 if u < s else 0.0

    ds = sd.simulate(sd.WrightFisher(population_size=50, fitness="truncation", selection=0.5, mutation_scale=0.3),
                     sd.landscapes.Harmonic(stiffness=[1.0]), x0=[0.0], n_replicas=4, n_steps=20, rng=3)
    assert ds.attrs["integrator_fitness"] == "truncation"
    assert np.all(ds["best_fitness"].values == 1.0)
    # every survivor of selection had U < 0.5, i.e. |x| < 1; one mutation step of 0.3 sd from there
    assert np.all(np.abs(ds["population_mean"].values) < 1.0 + 0.3)


@pytest.mark.parametrize("name", ["wf_continuous", "moran_genotypes", "cmaes", "cmaes_bipop", "xnes", "snes", "openes",
                                  "one_plus_one", "ga"])
def test_interrupted_store_resumes_bit_identically(name, tmp_path, monkeypatch):
    integ, target, x0 = CASES[name]
    kw = dict(n_replicas=5, n_steps=12, record_every=2, rng=9, chunk_steps=4)
    reference = sd.simulate(integ(), target(), x0, **kw)
    cls = type(integ())
    original = cls.advance
    calls = []

    def failing(self, *args, **kwargs):  # the third chunk dies, as if the process were killed
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "advance", failing)
    store = tmp_path / "run.zarr"
    with pytest.raises(KeyboardInterrupt):
        sd.simulate(integ(), target(), x0, store=store, **kw)
    monkeypatch.setattr(cls, "advance", original)
    resumed = sd.simulate(integ(), target(), x0, store=store, resume=True, **kw)
    _same(reference, resumed.load())
