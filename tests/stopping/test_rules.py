"""sd.stopping rules: validation, descriptions, applicability, and compiled == NumPy reference."""

import json
import pickle

import cloudpickle
import numpy as np
import pytest

import stochdyn as sd
from stochdyn import stopping as st
from stochdyn.stopping import _compiled

V = sd.ValidationError
RNG = np.random.default_rng(7)


def _same(rule, x, energy=None, target=None):
    got = rule.compile(target, dim=np.shape(x)[-1]).evaluate(x, energy)
    np.testing.assert_array_equal(got, rule.reference(x, energy, target))
    return got


def test_compiled_rules_equal_the_numpy_reference():
    x = RNG.normal(size=(500, 3))
    e = RNG.normal(size=500)
    for rule in (st.Region(1, above=0.3), st.Region(2, below=-0.2), st.Ball([0.5, 0, 0], 0.9), st.EnergyBelow(-0.4)):
        got = _same(rule, x, e)
        assert 0 < got.sum() < 500  # holds for some, not all
    # a combination reports the first part that holds, in order
    combo = st.Region(0, above=1.0) | st.Ball([0, 0, 0], 0.5) | st.EnergyBelow(-1.0)
    got = _same(combo, x, e)
    assert set(np.unique(got)) == {0, 1, 2, 3}
    assert np.all(got[x[:, 0] >= 1.0] == 1)
    # populations: geometric rules read the population mean; NaN is in no region
    pop = RNG.normal(size=(200, 5, 2))
    got = _same(st.Region(0, above=0.2) | st.Ball([0, 0], 0.3), pop)
    m = pop.mean(1)
    clear = (np.abs(m[:, 0] - 0.2) > 1e-12) & (np.abs(np.sum(m**2, -1) - 0.09) > 1e-12)
    np.testing.assert_array_equal((got > 0)[clear], ((m[:, 0] >= 0.2) | (np.sum(m**2, -1) <= 0.09))[clear])
    assert _same(st.Region(0, below=1.0), np.full((2, 2), np.nan)).sum() == 0


def test_fixation_on_genotypes():
    g = RNG.integers(0, 2, size=(300, 6, 2)).astype(float)
    g[:40] = 1.0
    g[40:80] = 0.0
    g[80:90, :, 0] = 1.0  # site 0 fixed only
    got = _same(st.Fixation(), g)
    np.testing.assert_array_equal(got > 0, np.all(g == g[:, :1], axis=(1, 2)))
    assert np.all(got[:80] > 0) and not np.any(got[80:90])
    got = _same(st.Fixation(allele=1) | st.Fixation(allele=0), g)
    np.testing.assert_array_equal(got[:80], [1] * 40 + [2] * 40)


def test_constructors_validate_their_arguments():
    with pytest.raises(V, match="exactly one of 'above' or 'below'"):
        st.Region(0)
    with pytest.raises(V, match="exactly one"):
        st.Region(0, above=1.0, below=0.0)
    with pytest.raises(V, match="'coordinate' parameter of Region must be >= 0"):
        st.Region(-1, above=0.0)
    with pytest.raises(V, match="'radius' parameter of Ball must be > 0"):
        st.Ball([0, 0], 0.0)
    with pytest.raises(V, match="'u' parameter of EnergyBelow must be finite"):
        st.EnergyBelow(float("nan"))
    with pytest.raises(V, match="'allele' parameter of Fixation"):
        st.Fixation(allele=-1)
    with pytest.raises(V, match="not a strict minimum"):
        st.Basin([0.0, 0.0], sd.landscapes.DoubleWell(dim=2))  # the saddle
    with pytest.raises(V, match="'radius' parameter of Basin .* too large"):
        st.Basin([1.0, 0.0], sd.landscapes.DoubleWell(dim=2), radius=1.5)
    with pytest.raises(V, match="combines stopping rules"):
        st.AnyOf(st.EnergyBelow(0.0), "x > 1")


def test_check_target_says_when_a_rule_cannot_apply():
    dw = sd.landscapes.DoubleWell(dim=2)
    geno = sd.fitness.MultiplicativeFitness([[0.0, 0.05]])
    wf = sd.WrightFisher(population_size=10, mutation_rate=0.0)
    with pytest.raises(V, match="continuous-trait landscape DoubleWell .* never fixes"):
        st.Fixation().check_target(wf, dw)
    with pytest.raises(V, match="WrightFisher and Moran on genotypes; EulerMaruyama has no population"):
        st.Fixation().check_target(sd.EulerMaruyama(dt=0.01), dw)
    with pytest.raises(V, match="must be < n_alleles = 2"):
        st.Fixation(allele=2).check_target(wf, geno)
    st.Fixation(allele=1).check_target(wf, geno)
    with pytest.raises(V, match="'coordinate' parameter of Region must be < the state dimension 2"):
        st.Region(2, above=0.0).check_target(sd.EulerMaruyama(dt=0.01), dw)
    with pytest.raises(V, match="'center' parameter of Ball must have the state dimension 2"):
        st.Ball([0.0], 1.0).check_target(sd.CMAES(), dw)
    with pytest.raises(V, match="genotypes have none"):
        st.Basin([0.0]).check_target(wf, geno)
    # simulate checks until= before anything runs, naming the argument
    with pytest.raises(V, match="'until' parameter of simulate must be a stopping rule"):
        sd.simulate(sd.EulerMaruyama(dt=0.01), dw, n_replicas=2, n_steps=1, until="x > 1")
    with pytest.raises(V, match="never fixes"):
        sd.simulate(wf, dw, n_replicas=2, n_steps=1, until=st.Fixation() | st.EnergyBelow(0.0))


def test_descriptions_are_json_and_rebuild_the_rule():
    dw = sd.landscapes.DoubleWell(dim=2)
    rules = [st.Fixation(), st.Fixation(allele=1), st.Region(0, above=1.5), st.Region(1, below=-2.0),
             st.Ball([1.0, 2.0], 0.5), st.EnergyBelow(-3.0), st.Basin([1.0, 0.0], dw, others=[[-1.0, 0.0]]),
             st.Region(0, above=1.0) | st.EnergyBelow(0.0) | st.Ball([0.0, 0.0], 1.0)]
    for r in rules:
        d = json.loads(json.dumps(r.to_dict()))
        assert st.rule_from_dict(d) == r
        assert pickle.loads(pickle.dumps(r)) == r
        assert " " not in r.label
    assert len((rules[-1] | rules[0]).rules) == 4  # combinations flatten
    # a list (TOML array of tables) is a combination
    assert st.rule_from_dict([{"type": "Fixation", "allele": 1}, {"type": "Fixation", "allele": 0}]).rules[1].allele == 0
    with pytest.raises(V, match="Unknown stopping rule type 'Nope'"):
        st.rule_from_dict({"type": "Nope"})


def test_a_rule_is_its_own_function_and_every_combination_uses_the_one_cached_interpreter():
    dw = sd.landscapes.DoubleWell(dim=2)
    combos = [st.EnergyBelow(0.0) | st.Ball([0, 0], 1.0),
              st.Basin([1.0, 0.0]) | st.Region(1, below=0.0) | st.EnergyBelow(2.0)]
    x = RNG.normal(size=(50, 2))
    for c in combos:
        comp = c.compile(dw)
        assert comp.fn is _compiled.interpreter.get()
        comp.evaluate(x, dw.value(x))
    single = st.Region(0, above=1.0).compile(dw)
    assert single.fn is _compiled.RULE_FUNCS[_compiled.OP_REGION].get()
    np.testing.assert_array_equal(single.evaluate(x), x[:, 0] >= 1.0)
    assert len(_compiled.evaluate_rows.signatures) == 1  # one type for every rule and combination


def test_basin_of_a_double_well_minimum():
    # DoubleWell: the gradient flow keeps the sign of x0, and x0 = 0 flows to the saddle
    dw = sd.landscapes.DoubleWell(dim=2)
    x = RNG.uniform(-2.5, 2.5, size=(400, 2))
    x = x[np.abs(x[:, 0]) > 1e-3]
    for rule in (st.Basin([1.0, 0.0], dw), st.Basin([1.0, 0.0], dw, others=[[-1.0, 0.0]]), st.Basin([1.0, 0.0])):
        got = _same(rule, x, None, dw)
        np.testing.assert_array_equal(got > 0, x[:, 0] > 0)
    assert _same(st.Basin([1.0, 0.0], dw), np.array([[0.0, 0.7]]), None, dw)[0] == 0
    # the pre-check ball lies inside the basin and is found automatically (radius 1/sqrt(8) * 2^1 / 2 here)
    r2, balls, h = st.Basin([1.0, 0.0], dw, others=[[-1.0, 0.0]]).geometry(dw)
    assert 0.05 < np.sqrt(r2) < 1.0 and balls.shape == (1, 3) and h == pytest.approx(1 / 16, rel=1e-4)
    # on Mueller-Brown (not separable) the compiled flow decides like its NumPy reference
    mb = sd.landscapes.MuellerBrown()
    m = [np.array(v) for v in mb.minima]
    from scipy import optimize

    m = [optimize.minimize(lambda p: float(mb.value(p)), v, jac=lambda p: mb.grad(p), tol=1e-12).x for v in m]
    rule = st.Basin(m[1], mb, others=[m[0], m[2]])
    pts = np.column_stack([RNG.uniform(-1.5, 1.2, 300), RNG.uniform(-0.5, 2.0, 300)])
    got = _same(rule, pts, None, mb)
    assert 0 < got.sum() < 300


def test_user_rules():
    @st.rule
    def far_out(x, energy, level=1.0):
        return abs(x[:, 0].mean()) > level

    x = RNG.normal(size=(300, 2))
    r = far_out(level=1.2)
    got = _same(r, x)
    np.testing.assert_array_equal(got > 0, np.abs(x[:, 0]) > 1.2)
    combo = r | st.EnergyBelow(-1.0) | far_out(level=0.5)  # user rules combine like built-ins
    e = RNG.normal(size=300)
    np.testing.assert_array_equal(_same(combo, x, e) > 0, (np.abs(x[:, 0]) > 0.5) | (e < -1.0))
    assert combo.compile(dim=2).fn is _compiled.interpreter.get()
    back = cloudpickle.loads(cloudpickle.dumps(combo))  # Dask ships rules with cloudpickle
    assert back.to_dict() == combo.to_dict()
    with pytest.raises(V, match="Unknown parameter"):
        far_out(lvl=1.0)
    with pytest.raises(V, match="form f\\(x, energy, p1=default"):
        st.rule(lambda x: True)
    with pytest.raises(V, match="needs a numeric default"):
        @st.rule
        def no_default(x, energy, level):
            return True
    with pytest.raises(V, match="could not be compiled by Numba"):
        @st.rule
        def not_numba(x, energy):
            return object() is x
    with pytest.raises(V, match="written for dimension 3"):
        @st.rule(dim=3)
        def three(x, energy):
            return x[0, 2] > 0.0

        sd.simulate(sd.EulerMaruyama(dt=0.01), sd.landscapes.DoubleWell(dim=2), n_replicas=2, n_steps=1,
                    until=three())
