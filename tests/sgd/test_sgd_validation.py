"""Bad inputs are rejected up front with messages naming the parameter, the value and what is allowed."""

import numpy as np
import pytest

import stochdyn as sd

P = sd.problems
LS = P.LeastSquares.from_data(P.gaussian_regression(20, 2, seed=0))
RUN = dict(n_replicas=2, n_steps=10, rng=0)


@pytest.mark.parametrize("make, match", [
    (lambda: sd.SGD(lr=-1), r"The 'lr' parameter of SGD must be > 0.0. Got -1"),
    (lambda: sd.Adam(lr=0.1, beta2=1.0), r"'beta2' parameter of Adam must be >= 0.0 and < 1.0"),
    (lambda: sd.Adam(lr=0.1, eps=0.0), r"'eps' parameter of Adam must be > 0.0"),
    (lambda: sd.SGLD(lr=0.1, temperature=-0.1), r"'temperature' parameter of SGLD must be >= 0.0"),
    (lambda: sd.SGD(lr=0.1, momentum=1.0), r"'momentum' parameter of SGD must be >= 0.0 and < 1.0"),
    (lambda: sd.SGD(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: sd.SGD(lr=0.1, batch_size=0), r"'batch_size' parameter of SGD must be >= 1. Got 0"),
    (lambda: sd.SGD(lr=0.1, sampling=sd.Sampling("stratified")), "needs a mini-batch"),
    (lambda: sd.Sampling("random"), r"'mode' parameter of Sampling must be one of"),
    (lambda: sd.Sampling("stratified", "neyman"), "Neyman allocation needs 'stratum_std'"),
    (lambda: sd.LRSchedule.cosine(total_steps=10, warmup_steps=10), r"'total_steps' parameter of LRSchedule must be"),
    (lambda: sd.LRSchedule.array([1.0, -0.5]), r"'values' parameter of LRSchedule must have every entry >= 0.0"),
    (lambda: sd.BatchSchedule.plan(steps=[10, 20], sizes=[8]), r"'sizes' parameter of BatchSchedule must have one entry"),
    (lambda: sd.BatchSchedule.plan(steps=[20, 10], sizes=[8, 16]), "strictly increasing"),
    (lambda: sd.Workers(0), r"'n_workers' parameter of Workers must be >= 1. Got 0"),
    (lambda: sd.Workers(2, "zip"), r"'compression' parameter of Workers must be one of"),
    (lambda: sd.Augmentation(copies=2, noise=-1.0), r"'noise' parameter of Augmentation must be >= 0.0"),
    (lambda: sd.SGD(lr=0.1, gradient_noise=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (lambda: sd.SGD(lr=0.1, record_extra=["temperature"]), r"'record_extra' parameter of SGD must be one of"),
    (lambda: sd.SGD(lr=0.1, sampling={"mode": "epoch", "shuffle": True}, batch_size=4), "unexpected keyword"),
])
def test_bad_hyper_parameters(make, match):
    with pytest.raises(sd.ValidationError, match=match):
        make()


@pytest.mark.parametrize("integ, target, match", [
    (sd.SGD(lr=0.1, batch_size=21), LS, r"'batch_size' parameter of SGD must be <= the number of examples N=20. Got 21"),
    (sd.SGD(lr=0.1, batch_size=4, batch_schedule=sd.BatchSchedule.plan([5], [64])), LS, "N=20. Got 64"),
    (sd.SGD(lr=0.1, batch_size=4, sampling=sd.Sampling("stratified")), LS, "no labels: stratified sampling needs labels"),
    (sd.SGD(lr=0.1, batch_size=4, workers=sd.Workers(8)), LS, "at least one example per worker"),
    (sd.SGD(lr=0.1, batch_size=4, workers=sd.Workers(2, "topk", k=3)), LS, r"'k' parameter of Workers must be <= dim=2"),
    (sd.SGD(lr=0.1, gradient_noise=[1.0, 2.0, 3.0]), LS, r"'gradient_noise' parameter of SGD must be a scalar, \(2,\)"),
    (sd.SGD(lr=0.1, batch_size=4), sd.landscapes.Harmonic(stiffness=[1.0, 2.0]), "'batch_size' needs a finite-sum problem"),
    (sd.SGD(lr=0.1), object(), "runs on a finite-sum problem"),
])
def test_bad_targets(integ, target, match):
    with pytest.raises(sd.ValidationError, match=match):
        sd.simulate(integ, target, **RUN)


def test_stratified_needs_one_draw_per_stratum_and_neyman_one_std_per_stratum():
    data = P.imbalanced_classes(30, 2, fractions=(0.5, 0.3, 0.2), seed=1)
    prob = P.LogisticRegression.from_data(data)
    with pytest.raises(sd.ValidationError, match="batch_size >= 3. Got 2"):
        sd.simulate(sd.SGD(lr=0.1, batch_size=2, sampling=sd.Sampling("stratified")), prob, **RUN)
    with pytest.raises(sd.ValidationError, match="one entry per stratum \\(3\\). Got 2"):
        sd.simulate(sd.SGD(lr=0.1, batch_size=6, sampling=sd.Sampling("stratified", "neyman", stratum_std=[1, 2])), prob,
                    **RUN)


def test_a_learning_rate_array_shorter_than_the_run_is_rejected_before_running():
    integ = sd.SGD(lr=0.1, batch_size=4, lr_schedule=sd.LRSchedule.array(np.ones(5)))
    with pytest.raises(sd.ValidationError, match="has 5 values; the run has 10 steps"):
        sd.simulate(integ, LS, **RUN)
    sd.simulate(integ, LS, n_replicas=2, n_steps=5, rng=0)  # long enough: fine


def test_divergence_is_frozen_and_reported():
    with pytest.warns(sd.DivergenceWarning, match="lr=50"):
        ds = sd.simulate(sd.SGD(lr=50.0, batch_size=4), LS, n_replicas=4, n_steps=200, rng=0)
    assert ds.diverged.all() and np.isnan(ds.x.isel(time=-1)).all() and np.isnan(ds.energy.isel(time=-1)).all()


def test_problem_inputs():
    with pytest.raises(sd.ValidationError, match=r"'y' parameter of LeastSquares must have one entry per row of X \(3\)"):
        P.LeastSquares(np.ones((3, 2)), np.ones(4))
    with pytest.raises(sd.ValidationError, match="'labels' parameter of LeastSquares must be 3 integers"):
        P.LeastSquares(np.ones((3, 2)), np.ones(3), labels=[0.5, 1, 2])
    with pytest.raises(sd.ValidationError, match="'weights' parameter of LeastSquares must have every entry >= 0.0"):
        P.LeastSquares(np.ones((3, 2)), np.ones(3), weights=[1, -1, 1])
    with pytest.raises(sd.ValidationError, match="class labels 0, 1, ..., K-1"):
        P.LogisticRegression(np.ones((3, 2)), [0, 1, -1])
    with pytest.raises(sd.ValidationError, match="Unknown data generator"):
        P.problem_from_dict({"type": "LeastSquares", "data": {"generator": "mnist"}})
