"""Fitness maps and genotype landscapes against their formulas, evaluated in plain NumPy."""

import numpy as np

import stochdyn as sd


def test_builtin_fitness_maps():
    u = np.array([-1.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(sd.fitness.FITNESS_MAPS["exponential"](u, 0.7), np.exp(-0.7 * u), rtol=1e-15)
    np.testing.assert_allclose(sd.fitness.FITNESS_MAPS["linear"](u, 0.2), 1 - 0.2 * u, rtol=1e-15)


def test_genotype_landscapes_match_their_formulas():
    rng = np.random.default_rng(0)
    e = rng.uniform(-0.1, 0.3, size=(4, 3))
    g = rng.integers(0, 3, size=(50, 4)).astype(float)
    gi = g.astype(int)
    add = sd.fitness.AdditiveFitness(e)
    np.testing.assert_allclose(add.fitness(g), 1 + e[np.arange(4), gi].sum(1), rtol=1e-14)
    mul = sd.fitness.MultiplicativeFitness(e)
    np.testing.assert_allclose(mul.fitness(g), np.prod(1 + e[np.arange(4), gi], axis=1), rtol=1e-14)
    nk = sd.fitness.NKFitness(n_sites=4, k_epistasis=2, n_alleles=3, seed=3)
    L, K, k = 4, 2, 3
    expected = np.zeros(len(g))
    for i in range(L):
        idx = sum(gi[:, (i + j) % L] * k ** (K - j) for j in range(K + 1))
        expected += nk.tables[i, idx]
    np.testing.assert_allclose(nk.fitness(g), expected / L, rtol=1e-14)
    assert nk.all_genotypes().shape == (3**4, 4)
    assert np.array_equal(nk.tables, sd.fitness.NKFitness(n_sites=4, k_epistasis=2, n_alleles=3, seed=3).tables)
    assert sd.fitness.genotype_landscape_from_dict(nk.to_dict()).to_dict() == nk.to_dict()


def test_genotype_spec_table(tmp_path):
    spec = tmp_path / "wf.toml"
    spec.write_text(
        '[genotypes]\ntype = "MultiplicativeFitness"\neffects = [[0.0, 0.1], [0.0, 0.2]]\n'
        '[integrator]\ntype = "Moran"\npopulation_size = 10\nmutation_rate = 0.01\n'
        '[run]\nn_replicas = 4\nn_steps = 10\nseed = 1\n'
    )
    from stochdyn.spec import load_spec, run_spec

    ds = run_spec(load_spec(spec), progress=False)
    assert ds["allele_frequency"].dims == ("replica", "time", "dim", "allele")
    assert ds.attrs["target"].startswith('{"type": "MultiplicativeFitness"')
