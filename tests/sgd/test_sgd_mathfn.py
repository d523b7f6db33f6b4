"""The problems' own elementary functions (stochdyn/problems/_mathfn.py) against NumPy's: within a
few units in the last place on their ranges, exact special values."""

import numpy as np
import pytest
from numba import njit

from stochdyn.problems._mathfn import exp_, expm1_, log1p_, tanh_


def _vectorised(f):
    @njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    def call(x):
        out = np.empty_like(x)
        apply(x, out)
        return out

    return call


CASES = {  # function, NumPy's, ranges (log1p: on y >= 0, the losses' use), ulp bound
    "exp": (exp_, np.exp, [(-745.0, 709.7), (-1.0, 1.0), (-1e-8, 1e-8)], 1),
    "expm1": (expm1_, np.expm1, [(-40.0, 40.0), (-1e-3, 1e-3), (-1e-12, 1e-12)], 4),
    "log1p": (log1p_, np.log1p, [(0.0, 1.0), (0.0, 1e-10), (1.0, 1e6)], 2),
    "tanh": (tanh_, np.tanh, [(-25.0, 25.0), (-1e-9, 1e-9), (-1.0, 1.0)], 4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_elementary_functions_agree_with_numpy_to_a_few_ulp(name):
    f, ref, ranges, bound = CASES[name]
    f = _vectorised(f)
    rng = np.random.default_rng(3)
    for lo, hi in ranges:
        x = rng.uniform(lo, hi, 20000)
        y, r = f(x), ref(x)
        ulp = np.abs(y - r) / np.spacing(np.abs(r))
        assert ulp.max() <= bound, f"{name} on [{lo}, {hi}]: {ulp.max()} ulp at x = {x[np.argmax(ulp)]!r}"
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-320, 710.0, -746.0, 1e308, 30.0, -30.0])
    if name == "log1p":
        special = np.abs(special)
    with np.errstate(all="ignore"):
        r = ref(special)
    y = f(special)
    same = (y == r) | (np.isnan(y) & np.isnan(r)) | (np.abs(y - r) <= bound * np.spacing(np.abs(r)))
    assert same.all(), list(zip(special[~same], y[~same], r[~same]))
    assert np.array_equal(np.signbit(y[:2]), np.signbit(r[:2]))  # the sign of zero
