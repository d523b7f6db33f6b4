"""Landscapes: values against independent NumPy formulas, gradients against finite differences,
vectorisation, parameters without recompilation, the user decorator, validation and pickling."""

import pickle

import numpy as np
import pytest
from numba import njit

import stochdyn as sd
from stochdyn._numba_utils import row_ptr
from stochdyn.integrators._kernels import langevin as lk
from stochdyn.landscapes import check_gradient

import reference as ref

L = sd.landscapes
MEANS = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.0]])
COVS = np.array([[[0.5, 0.1], [0.1, 0.3]], [[1.0, 0.0], [0.0, 2.0]], [[0.4, -0.2], [-0.2, 0.6]]])
W = np.array([0.2, 0.5, 0.3])

CASES = [
    (L.Harmonic(stiffness=[0.5, 4.0], center=[1.0, -1.0]), lambda x: ref.harmonic(x, np.diag([0.5, 4.0]), [1.0, -1.0])),
    (L.Harmonic(hessian=[[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]]),
     lambda x: ref.harmonic(x, np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]]), 0.0)),
    (L.Harmonic(stiffness=2.0, dim=3), lambda x: ref.harmonic(x, 2.0 * np.eye(3), 0.0)),
    (L.DoubleWell(dim=2), lambda x: ref.double_well(x)),
    (L.DoubleWell(dim=4, barrier=2.0, separation=3.0, tilt=0.3, stiffness=5.0),
     lambda x: ref.double_well(x, 2.0, 3.0, 0.3, 5.0)),
    (L.DoubleWell(dim=1, tilt=-0.5), lambda x: ref.double_well(x, tilt=-0.5)),
    (L.MuellerBrown(scale=0.1), lambda x: ref.mueller_brown(x, 0.1)),
    (L.Rosenbrock(dim=4, a=1.5, b=50.0), lambda x: ref.rosenbrock(x, 1.5, 50.0)),
    (L.Rastrigin(dim=3, amplitude=7.0), lambda x: ref.rastrigin(x, 7.0)),
    (L.GaussianMixture(MEANS, COVS, W), lambda x: ref.gaussian_mixture(x, MEANS, COVS, W)),
    (L.GaussianMixture(MEANS, COVS, W, form="wells", confinement=0.2),
     lambda x: ref.gaussian_mixture(x, MEANS, COVS, W, "wells", 0.2)),
]
IDS = [repr(c[0])[:40] for c in CASES]


def _points(land, n=64, seed=0):
    lo, hi = np.array([b[0] for b in land.plot_bounds]), np.array([b[1] for b in land.plot_bounds])
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, land.dim))
    pts[:, : lo.size] = rng.uniform(lo, hi, size=(n, lo.size))
    return pts


@pytest.mark.parametrize("land, reference", CASES, ids=IDS)
def test_value_matches_independent_formula(land, reference):
    x = _points(land)
    np.testing.assert_allclose(land.value(x), reference(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("land, reference", CASES, ids=IDS)
def test_gradient_matches_finite_differences(land, reference):
    check_gradient(land, _points(land, seed=1), rtol=1e-6)


@njit
def _columns(fn, theta, X, G, V, n):
    fn(row_ptr(X, 0), row_ptr(G, 0), row_ptr(V, 0), n, X.shape[0], X.shape[1], row_ptr(theta, 0), theta.shape[0])


@L.landscape(dim=2)
def tilted_quartic_cols(x, grad, a=1.5):
    grad[0] = a * x[0] + 0.2
    grad[1] = x[1] ** 3
    return 0.5 * a * x[0] ** 2 + 0.2 * x[0] + 0.25 * x[1] ** 4


class RowsOnlyDoubleWell(L.DoubleWell):
    """A subclass that brings its own block function only: it gets a generated columns function."""

    _block = L.DoubleWell._block


def test_columns_entry_point_gives_the_same_numbers_as_the_rows_one():
    # the Langevin kernels evaluate landscapes by coordinate (compiled_columns); every landscape must
    # give there exactly (bit for bit) what its row-major block function gives
    lands = [c[0] for c in CASES] + [tilted_quartic_cols(a=0.7), RowsOnlyDoubleWell(dim=3, tilt=0.2)]
    for land in lands:
        x = _points(land, n=13, seed=2)
        value, grad = land.value_and_grad(x)
        X = np.zeros((land.dim, 16))  # leading dimension 16 > n: only the first 13 columns are points
        X[:, :13] = x.T
        G = np.zeros_like(X)
        V = np.zeros(13)
        _columns(land.compiled_columns, land.theta, X, G, V, 13)
        np.testing.assert_array_equal(V, value, err_msg=land.name)
        np.testing.assert_array_equal(G[:, :13], grad.T, err_msg=land.name)
    assert RowsOnlyDoubleWell.__dict__.get("_columns_generated") is not None  # the fallback was used


@pytest.mark.parametrize("land, reference", CASES[:4], ids=IDS[:4])
def test_vectorised_over_leading_axes(land, reference):
    x = _points(land, n=24).reshape(2, 3, 4, land.dim)
    v, g = land.value_and_grad(x)
    assert v.shape == (2, 3, 4) and g.shape == (2, 3, 4, land.dim)
    np.testing.assert_array_equal(v[1, 2], land.value(x[1, 2]))
    assert np.shape(land.value(x[0, 0, 0])) == ()


def test_harmonic_hessian_and_gibbs_scale():
    land = L.Harmonic(hessian=[[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(land.hessian([0.3, -0.2]), [[2.0, 0.5], [0.5, 1.0]], atol=1e-8)


def test_changing_parameters_or_landscape_never_recompiles():
    ens = dict(n_replicas=8, n_steps=10, rng=0)
    integ = sd.EulerMaruyama(dt=1e-3)
    sd.simulate(integ, L.DoubleWell(dim=2), **ens)
    n_sig = len(lk.euler_maruyama.signatures)
    for land in (L.DoubleWell(dim=2, barrier=3.0), L.DoubleWell(dim=5, tilt=1.0), L.Harmonic(stiffness=[1.0, 2.0]),
                 L.MuellerBrown(scale=0.1), L.Rastrigin(dim=3)):
        sd.simulate(integ, land, **ens)
    assert len(lk.euler_maruyama.signatures) == n_sig


def test_user_landscape_decorator_runs_and_takes_parameters():
    @L.landscape(dim=1)
    def quartic_test(x, grad, a=1.0, b=0.0):
        grad[0] = 4.0 * a * x[0] ** 3 + b
        return a * x[0] ** 4 + b * x[0]

    land = quartic_test(a=2.0)
    assert land.dim == 1 and land.params == {"a": 2.0, "b": 0.0}
    np.testing.assert_allclose(land.value([[1.0], [2.0]]), [2.0, 32.0])
    ds = sd.simulate(sd.EulerMaruyama(dt=1e-3, temperature=0.1), quartic_test(b=0.5), x0=[0.5],
                     n_replicas=16, n_steps=100, rng=1)
    assert np.isfinite(ds.x).all()

    @L.landscape
    def any_dim_bowl(x, grad, k=1.0):
        u = 0.0
        for i in range(x.shape[0]):
            grad[i] = k * x[i]
            u += 0.5 * k * x[i] * x[i]
        return u

    assert any_dim_bowl(dim=4).dim == 4
    with pytest.raises(sd.ValidationError, match="pass dim="):
        any_dim_bowl()
    with pytest.raises(sd.ValidationError, match="Unknown parameter"):
        any_dim_bowl(dim=2, kk=1.0)


def test_user_landscape_with_wrong_gradient_is_rejected_at_definition():
    with pytest.raises(sd.ValidationError, match="disagrees with finite differences.*component 0"):
        @L.landscape(dim=2)
        def wrong_gradient(x, grad):
            grad[0] = x[0]  # should be 2 x0
            grad[1] = 2.0 * x[1]
            return x[0] ** 2 + x[1] ** 2


def test_user_landscape_errors_are_clear():
    with pytest.raises(sd.ValidationError, match="numeric default"):
        @L.landscape(dim=1)
        def no_default(x, grad, a):
            return 0.0
    with pytest.raises(sd.ValidationError, match="form f\\(x, grad"):
        @L.landscape(dim=1)
        def one_arg(x):
            return 0.0
    with pytest.raises(sd.ValidationError, match="undefined_helper"):
        @L.landscape(dim=1)
        def not_numba(x, grad):
            grad[0] = undefined_helper(x)  # noqa: F821
            return 0.0
    with pytest.raises(sd.ValidationError, match="not finite at the check point"):
        @L.landscape(dim=1)
        def log_barrier(x, grad):
            grad[0] = -1.0 / x[0]
            return -np.log(x[0])

    @L.landscape(dim=1, check_points=[[0.5], [2.0]])
    def log_barrier_ok(x, grad):
        grad[0] = -1.0 / x[0]
        return -np.log(x[0])

    assert log_barrier_ok().value([[1.0]])[0] == 0.0


@pytest.mark.parametrize("make, match", [
    (lambda: L.Harmonic(stiffness=[1.0, -2.0]), "'stiffness' parameter of Harmonic must have every entry > 0"),
    (lambda: L.Harmonic(hessian=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (lambda: L.Harmonic(hessian=[[1.0, 0.1], [0.0, 1.0]]), "symmetric"),
    (lambda: L.Harmonic(), "exactly one of"),
    (lambda: L.DoubleWell(dim=0), "'dim' parameter of DoubleWell must be >= 1. Got 0"),
    (lambda: L.DoubleWell(barrier=-1.0), "'barrier' parameter of DoubleWell must be > 0"),
    (lambda: L.DoubleWell(tilt=float("nan")), "'tilt' parameter of DoubleWell must be finite"),
    (lambda: L.MuellerBrown(dim=3), "must be 2"),
    (lambda: L.Rosenbrock(dim=1), ">= 2"),
    (lambda: L.GaussianMixture(MEANS, covariances=np.ones((3, 3))), "covariances"),
    (lambda: L.GaussianMixture(MEANS, weights=[1.0, -1.0, 1.0]), "weights"),
    (lambda: L.GaussianMixture(MEANS, confinement=1.0), "only to form='wells'"),
])
def test_bad_parameters_are_rejected(make, match):
    with pytest.raises(sd.ValidationError, match=match):
        make()


def test_points_of_the_wrong_dimension_are_rejected():
    with pytest.raises(sd.ValidationError, match=r"shape \(\.\.\., 2\)"):
        L.DoubleWell(dim=2).value([1.0, 2.0, 3.0])


def test_landscapes_pickle_and_rebuild_from_their_description():
    for land, _ in CASES:
        again = pickle.loads(pickle.dumps(land))
        assert again == land and again is not land
        assert L.landscape_from_dict(land.to_dict()) == land


def test_user_landscape_travels_to_another_process_by_value(tmp_path):
    # what Dask does with a landscape defined in a user's script: cloudpickle it by value
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("cloudpickle")
    make = textwrap.dedent(
        """
        import sys, cloudpickle, stochdyn as sd
        @sd.landscapes.landscape(dim=1)
        def script_well(x, grad, k=1.0):
            grad[0] = k * x[0]
            return 0.5 * k * x[0] ** 2
        open(sys.argv[1], "wb").write(cloudpickle.dumps(script_well(k=3.0)))
        """
    )
    use = "import pickle, sys; land = pickle.load(open(sys.argv[1], 'rb')); print(land, land.value([[2.0]])[0])"
    blob = tmp_path / "land.pkl"
    subprocess.run([sys.executable, "-c", make, str(blob)], check=True)
    out = subprocess.run([sys.executable, "-c", use, str(blob)], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["script_well(dim=1,", "k=3.0)", "6.0"]
