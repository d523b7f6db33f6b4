"""Langevin integrators against exact results at finite step.

Every check compares a Monte Carlo estimate with an exact value and allows 4 standard errors (SE):
with fixed seeds the tests are deterministic, and under a new seed a correct implementation would
fail one such check with probability 6e-5. Each test is set up so that the *wrong* answer it
guards against (the continuous-time value, another scheme's bias, a wrong order) is many SE away.
SEs come from independent replicas (the final state of each, or each replica's time average).
"""

import math
import warnings

import numpy as np
import pytest

import stochdyn as sd
from stochdyn import theory

L = sd.landscapes
N_SE = 4


def final(ds, var="x"):
    return ds[var].isel(time=-1).values


def var_and_se(v):
    """Sample variance of independent draws and its SE, sqrt((m4 - m2^2)/n)."""
    c = v - v.mean()
    m2, m4 = np.mean(c**2), np.mean(c**4)
    return v.var(ddof=1), math.sqrt((m4 - m2 * m2) / v.size)


def assert_close(estimate, se, exact, what):
    assert abs(estimate - exact) < N_SE * se, f"{what}: {estimate:.6g} ± {se:.2g} vs exact {exact:.6g}"


# ------------------------------------------------------------------------------------------------
# harmonic wells: exact discrete stationary laws
# ------------------------------------------------------------------------------------------------
def test_euler_maruyama_harmonic_exact_finite_step_variance():
    k, T, dt, R = np.array([0.5, 4.0]), 1.0, 0.1, 50_000
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), L.Harmonic(stiffness=k), x0=[0.0, 0.0],
                     n_replicas=R, n_steps=400, record_every=400, rng=11)
    x = final(ds)
    for i in range(2):
        v, se = var_and_se(x[:, i])
        exact = theory.em_harmonic_variance(k[i], dt, T)
        assert_close(v, se, exact, f"EM variance, k={k[i]}")
    # the stiff coordinate (k dt = 0.4) is 25% above T/k: far outside the error bar
    v1, se1 = var_and_se(x[:, 1])
    assert abs(v1 - T / k[1]) > 10 * se1


def test_euler_maruyama_transient_moments_are_exact():
    # E[x_n] = a^n x0 and E[x_n^2] from the exact AR(1) recursion, a = 1 - k dt
    k, T, dt, x0, R = 2.0, 0.5, 0.05, 1.5, 40_000
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, temperature=T), L.Harmonic(stiffness=k, dim=1), x0=[x0],
                     n_replicas=R, n_steps=60, record_every=10, rng=12)
    for j, n in enumerate(ds["step"].values[1:], start=1):
        x = ds.x.isel(time=j, dim=0).values
        mean_exact = (1 - k * dt) ** n * x0
        m2_exact = theory.em_harmonic_second_moment(k, dt, T, x0, int(n))
        assert_close(x.mean(), x.std() / math.sqrt(R), mean_exact, f"E[x_{n}]")
        assert_close(np.mean(x**2), np.std(x**2) / math.sqrt(R), m2_exact, f"E[x_{n}^2]")


def test_euler_maruyama_with_diffusion_matrix_matches_discrete_lyapunov():
    H = np.array([[2.0, 0.6], [0.6, 1.0]])
    D = np.array([[0.5, -0.2], [-0.2, 0.3]])
    dt, R = 0.2, 50_000
    ds = sd.simulate(sd.EulerMaruyama(dt=dt, diffusion=D), L.Harmonic(hessian=H), n_replicas=R,
                     n_steps=200, record_every=200, rng=13)
    x = final(ds)
    C = theory.em_stationary_covariance(H, dt, D)
    for i, j in [(0, 0), (1, 1), (0, 1)]:
        prod = x[:, i] * x[:, j]
        assert_close(prod.mean(), prod.std() / math.sqrt(R), C[i, j], f"C[{i},{j}]")
    # and not the Gibbs-like continuous value solving H C + C H = 2 D (Lyapunov): >10 SE apart here
    from scipy.linalg import solve_continuous_lyapunov
    C_cont = solve_continuous_lyapunov(H, 2 * D)
    assert abs(np.mean(x[:, 0] ** 2) - C_cont[0, 0]) > 10 * np.std(x[:, 0] ** 2) / math.sqrt(R)


def test_leimkuhler_matthews_harmonic_variance_is_exact():
    k, dt, R = np.array([0.5, 4.0]), 0.4, 50_000
    T = np.array([1.0, 0.3])  # per-coordinate temperatures
    ds = sd.simulate(sd.LeimkuhlerMatthews(dt=dt, temperature=T), L.Harmonic(stiffness=k), n_replicas=R,
                     n_steps=300, record_every=300, rng=14)
    x = final(ds)
    for i in range(2):
        v, se = var_and_se(x[:, i])
        assert_close(v, se, theory.lm_harmonic_variance(k[i], dt, T[i]), f"LM variance, k={k[i]}")
    # at k dt = 1.6 Euler-Maruyama would give T/(k(1 - 0.8)) = 5 T/k
    H = np.array([[1.0, 0.4], [0.4, 2.0]])
    C = theory.lm_stationary_covariance(H, 0.5, 0.7)
    np.testing.assert_allclose(C, 0.7 * np.linalg.inv(H), rtol=1e-10)


def test_leimkuhler_matthews_out_of_equilibrium_matches_exact_covariance():
    # coupled coordinates at different temperatures: the stationary law is not Gibbs and LM is
    # not exact; the augmented-state Lyapunov equation gives its exact finite-step covariance.
    H = np.array([[1.0, 0.8], [0.8, 2.0]])
    T = np.array([1.0, 0.1])
    dt, R = 0.4, 50_000
    ds = sd.simulate(sd.LeimkuhlerMatthews(dt=dt, temperature=T), L.Harmonic(hessian=H), n_replicas=R,
                     n_steps=200, record_every=200, rng=19)
    x = final(ds)
    C = theory.lm_stationary_covariance(H, dt, T)
    from scipy.linalg import solve_continuous_lyapunov
    C_cont = solve_continuous_lyapunov(H, 2 * np.diag(T))
    for i, j in [(0, 0), (1, 1), (0, 1)]:
        prod = x[:, i] * x[:, j]
        se = prod.std() / math.sqrt(R)
        assert_close(prod.mean(), se, C[i, j], f"LM C[{i},{j}]")
    se00 = np.std(x[:, 0] ** 2) / math.sqrt(R)
    assert abs(np.mean(x[:, 0] ** 2) - C_cont[0, 0]) > 4 * se00  # the finite-step shift is resolved


@pytest.mark.parametrize("mass", [1.0, 2.5])
def test_baoab_harmonic_position_and_velocity_variances_are_exact(mass):
    k, T, dt, gamma, R = 4.0, 0.8, 0.5, 1.0, 50_000
    ds = sd.simulate(sd.BAOAB(dt=dt, temperature=T, friction=gamma, mass=mass), L.Harmonic(stiffness=k, dim=1),
                     n_replicas=R, n_steps=400, record_every=400, rng=15)
    x, v = final(ds)[:, 0], final(ds, "v")[:, 0]
    vx, sex = var_and_se(x)
    vv, sev = var_and_se(v)
    ex_x, ex_v = theory.baoab_harmonic_variances(k, dt, T, mass)
    assert_close(vx, sex, ex_x, "BAOAB <x^2>")
    assert_close(vv, sev, ex_v, "BAOAB <v^2>")
    assert abs(vv - T / mass) > 10 * sev  # the finite-step velocity deficit dt^2 k/(4m) is resolved
    Cxx, Cvv, Cxv = theory.baoab_harmonic_covariance([[k]], dt, T, gamma, mass)
    np.testing.assert_allclose([Cxx[0, 0], Cvv[0, 0]], [ex_x, ex_v], rtol=1e-12)
    xv = x * v
    assert_close(xv.mean(), xv.std() / math.sqrt(R), Cxv[0, 0], "BAOAB <xv>")


# ------------------------------------------------------------------------------------------------
# double well: Gibbs averages by quadrature
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: sd.LeimkuhlerMatthews(dt=0.01, temperature=0.5),
    lambda: sd.BAOAB(dt=0.02, temperature=0.5, friction=2.0),
], ids=["LeimkuhlerMatthews", "BAOAB"])
def test_double_well_reaches_gibbs(make):
    # tilt 0.2: the left well is deeper (P(x0 > 0) = 0.333); all replicas start on the right.
    # Kramers relaxation time ~ 4 at T = 0.5; t = 100 is 25 of them. Second-order schemes at this
    # step have a bias far below the SE (~3e-3 here).
    integ = make()
    land = L.DoubleWell(dim=2, tilt=0.2)
    R = 20_000
    n = int(round(100 / integ.dt))
    ds = sd.simulate(integ, land, x0=[1.0, 0.0], n_replicas=R, n_steps=n, record_every=n, rng=16)
    g = theory.double_well_gibbs(0.5, tilt=0.2)
    x = final(ds)
    p = np.mean(x[:, 0] > 0)
    assert_close(p, math.sqrt(p * (1 - p) / R), g["p_right"], "P(x0 > 0)")
    m2 = x[:, 0] ** 2
    assert_close(m2.mean(), m2.std() / math.sqrt(R), g["mean_x0_sq"], "<x0^2>")
    assert_close(x[:, 0].mean(), x[:, 0].std() / math.sqrt(R), g["mean_x0"], "<x0>")
    v, se = var_and_se(x[:, 1])
    assert_close(v, se, g["var_transverse"], "Var x1")
    u = ds.energy.isel(time=-1).values - 0.5 * x[:, 1] ** 2
    assert_close(u.mean(), u.std() / math.sqrt(R), g["mean_U0"], "<U0>")


# ------------------------------------------------------------------------------------------------
# weak order of stationary averages by step halving
# ------------------------------------------------------------------------------------------------
# The order p is measured as log2(b(h)/b(h/2)), b the bias of a stationary average against an
# exact value; its SE comes from the delta method. Steps are chosen where b(h/2) is resolved
# (> 4 SE). Pre-asymptotic terms (h^{p+1}) shift the measured p at finite h; the checks below
# are the ones that stay valid there: Euler-Maruyama at small h is first order and not second;
# Leimkuhler-Matthews on a non-quadratic well is better than first order (its measured p is
# 2.3-2.5 at these steps: the h^3 term still matters); BAOAB's velocity variance on a harmonic
# well has bias exactly -T dt^2 k / (4 m), so its measured order must be 2.
@L.landscape(dim=1)
def quartic_bowl(x, grad, lam=1.0):
    grad[0] = x[0] + lam * x[0] ** 3
    return 0.5 * x[0] ** 2 + 0.25 * lam * x[0] ** 4


def _stationary_average(integ, f, lam, n_blocks, block=20_000, t_burn=10.0, t_avg=200.0, seed=17):
    """Mean over replicas of each replica's time average of f(x) after burn-in, and its SE.

    Runs n_blocks disjoint replica blocks (``replicas=`` subsets) to keep the records small.
    """
    h = integ.dt
    rec = max(1, int(round(0.5 / h)))
    nb = int(round(t_burn / h / rec))
    n = int(round((t_burn + t_avg) / h / rec)) * rec
    per = []
    for b in range(n_blocks):
        ds = sd.simulate(integ, quartic_bowl(lam=lam), x0=[0.0], replicas=np.arange(b * block, (b + 1) * block),
                         n_steps=n, record_every=rec, rng=seed)
        assert not ds.diverged.any()
        per.append(np.mean(f(ds.x.isel(dim=0).values[:, nb + 1:]), axis=1))
    per = np.concatenate(per)
    return per.mean(), per.std(ddof=1) / math.sqrt(per.size)


def _order(b1, s1, b2, s2):
    assert abs(b2) > N_SE * s2, f"bias at h/2 ({b2:.3g}) not resolved (SE {s2:.2g})"
    p = math.log2(b1 / b2)
    return p, math.sqrt((s1 / b1) ** 2 + (s2 / b2) ** 2) / math.log(2)


def _quartic_exact(f, lam):
    return theory.gibbs_expectation_1d(lambda x: 0.5 * x**2 + 0.25 * lam * x**4, f, 1.0, (-10.0, 10.0))


def test_euler_maruyama_is_first_order():
    f = np.square
    exact = _quartic_exact(f, 1.0)
    m1, s1 = _stationary_average(sd.EulerMaruyama(dt=0.05), f, 1.0, 2)
    m2, s2 = _stationary_average(sd.EulerMaruyama(dt=0.025), f, 1.0, 2)
    p, se = _order(m1 - exact, s1, m2 - exact, s2)
    assert abs(p - 1) < N_SE * se and abs(p - 2) > N_SE * se, f"EM order {p:.2f} ± {se:.2f}"


def test_leimkuhler_matthews_is_better_than_first_order():
    f = lambda x: np.cos(2 * x)  # noqa: E731
    exact = _quartic_exact(f, 0.2)
    m1, s1 = _stationary_average(sd.LeimkuhlerMatthews(dt=0.4), f, 0.2, 1)
    m2, s2 = _stationary_average(sd.LeimkuhlerMatthews(dt=0.2), f, 0.2, 1)
    p, se = _order(m1 - exact, s1, m2 - exact, s2)
    assert p - 1 > N_SE * se, f"LM order {p:.2f} ± {se:.2f} is not above first order"
    # and at the same step its bias is far below Euler-Maruyama's
    m_em, s_em = _stationary_average(sd.EulerMaruyama(dt=0.2), f, 0.2, 1)
    assert abs(m_em - exact) - abs(m2 - exact) > N_SE * math.hypot(s_em, s2)


def test_baoab_velocity_variance_is_second_order():
    k, T, R = 4.0, 1.0, 50_000
    est = []
    for dt in (0.5, 0.25):
        ds = sd.simulate(sd.BAOAB(dt=dt, temperature=T), L.Harmonic(stiffness=k, dim=1), n_replicas=R,
                         n_steps=int(40 / dt), record_every=int(40 / dt), rng=18)
        v, se = var_and_se(final(ds, "v")[:, 0])
        est.append((v - T, se))
    p, se = _order(est[0][0], est[0][1], est[1][0], est[1][1])
    assert abs(p - 2) < N_SE * se and p - 1 > N_SE * se, f"BAOAB velocity order {p:.2f} ± {se:.2f}"
