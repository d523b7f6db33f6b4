"""Adam: bias correction, and the expected step against batch size (square-root rule) with real mini-batches."""

import numpy as np
from sgd_helpers import Z, assert_within, mean_se

import stochdyn as sd
from stochdyn import theory as th

P = sd.problems


@P.per_sample_loss(dim=2)
def linear(theta, row, grad):
    """l_i = g_i . theta: per-sample gradients g_i that do not depend on theta."""
    grad[0] = row[0]
    grad[1] = row[1]
    return row[0] * theta[0] + row[1] * theta[1]


def test_first_adam_step_is_lr_times_the_sign():
    # bias correction: m_1/(1-b1) = g, v_1/(1-b2) = g^2, so the first step is -lr * g / (|g| + eps)
    prob = linear(np.array([[3.0, -0.5]]))
    ds = sd.simulate(sd.Adam(lr=0.01, batch_size=1, eps=1e-8), prob, x0=[1.0, 1.0], n_replicas=1, n_steps=1, rng=0)
    np.testing.assert_allclose(ds.x.isel(time=1, replica=0).values, [1.0 - 0.01 * 3 / (3 + 1e-8), 1.0 + 0.01 * 0.5 / (0.5 + 1e-8)],
                               rtol=1e-15)


def test_expected_adam_step_grows_like_sqrt_batch_in_the_noise_dominated_regime():
    rng = np.random.default_rng(3)
    G = np.array([0.05, -0.03])
    rows = G + rng.normal(size=(500, 2))
    rows -= rows.mean(axis=0) - G  # the exact population mean G
    prob = linear(rows)
    var = rows.var(axis=0)  # per-example variance (population, the with-replacement draw law)
    n0, n1, lr = 2000, 4000, 1e-3
    steps = {}
    for B in (1, 16):
        # beta2 = 0.99999: after n0 steps v-hat averages ~n0 squared gradients (relative spread ~3%, bias of
        # 1/sqrt(v) ~ 4e-4), so E[m/sqrt v] = G/sqrt(G^2 + sigma^2/B) up to far less than the 4-SE tolerance (~4%)
        ds = sd.simulate(sd.Adam(lr=lr, beta2=0.99999, batch_size=B), prob, n_replicas=1000, n_steps=n1,
                         record_every=n0, rng=B)
        per_step = (ds.x.isel(time=2).values - ds.x.isel(time=1).values) / (n1 - n0)
        mu, se = mean_se(per_step)
        pred = th.adam_expected_step(G, var, B, lr=lr)
        assert_within(mu, se, pred, f"Adam step per iteration, B={B}")
        steps[B] = (mu, se)
    ratio = steps[16][0] / steps[1][0]
    assert np.all(np.abs(ratio - 4.0) < 0.5)  # ~sqrt(16): the square-root scaling rule
    assert np.all(np.abs(steps[16][0] - 16 * steps[1][0]) > Z * steps[16][1])  # and not the linear rule
