"""Same rng => bit-identical SGD-family runs for 1 vs 2 threads, any chunking of steps, and replica subsets."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stochdyn as sd

CASES = textwrap.dedent('''
    import numpy as np
    import stochdyn as sd
    P = sd.problems
    data = P.imbalanced_classes(90, 2, fractions=(0.6, 0.3, 0.1), seed=1)
    LS = P.LeastSquares(data.X, data.X @ [1.0, -1.0] + 0.3 * data.labels, labels=data.labels)
    LG = P.LogisticRegression.from_data(data, l2=0.01)
    LSW = P.LeastSquares(data.X, data.X @ [1.0, -1.0], weights=np.linspace(0.5, 1.5, 90) / 90)
    CASES = {
        "stratified_topk_aug_norm_test": (lambda: sd.SGD(
            lr=0.05, batch_size=6, momentum=0.5, sampling=sd.Sampling("stratified"),
            workers=sd.Workers(3, "topk", k=1), augmentation=sd.Augmentation(copies=2, noise=0.2),
            batch_schedule=sd.BatchSchedule.norm_test(0.8, 40)), LS, [0.5, 0.5]),
        "epoch_adam_clip_cosine": (lambda: sd.Adam(
            lr=0.05, batch_size=7, sampling=sd.Sampling("epoch"), clip_norm=1.0,
            lr_schedule=sd.LRSchedule.cosine(120, warmup_steps=10)), LG, None),
        "sgld_quantize_noise": (lambda: sd.SGLD(
            lr=0.02, temperature=0.05, batch_size=8, sampling=sd.Sampling("without_replacement"),
            workers=sd.Workers(2, "quantize", levels=3), gradient_noise=[0.1, 0.2]), LS, [0.0, 1.0]),
        # with replacement: indices drawn in SIMD lanes for blocks of 64 replicas (70 = a full and a partial
        # block; thread ranges and subsets start blocks elsewhere); a batch plan, statistics at record steps
        "lanes_momentum_plan": (lambda: sd.SGD(
            lr=0.05, momentum=0.5, batch_size=5, batch_schedule=sd.BatchSchedule.plan([30], [9]),
            record_extra=()), LS, [0.5, 0.5]),
        "lanes_adam_statistics": (lambda: sd.Adam(lr=0.05, batch_size=6), LG, None),
        "lanes_sgld_weighted": (lambda: sd.SGLD(lr=0.02, temperature=0.05, batch_size=4), LSW, [0.0, 1.0]),
        "landscape_nesterov_full_noise": (lambda: sd.SGD(
            lr=0.02, momentum=0.8, nesterov=True, gradient_noise=[[1.0, 0.3], [0.3, 0.5]], clip_norm=3.0),
            sd.landscapes.DoubleWell(dim=2), [-1.0, 0.0]),
    }
    RUN = dict(n_replicas=70, n_steps=120, record_every=12, rng=2027)
''')
ns: dict = {}
exec(CASES, ns)


def _run(name, **kw):
    make, target, x0 = ns["CASES"][name]
    return sd.simulate(make(), target, x0=x0, **{**ns["RUN"], **kw})


def _same(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


@pytest.mark.parametrize("name", list(ns["CASES"]))
def test_chunking_does_not_change_results(name):
    a = _run(name)
    _same(a, _run(name, chunk_steps=12))
    _same(a, _run(name, chunk_steps=84))


@pytest.mark.parametrize("name", list(ns["CASES"]))
def test_replica_subset_reproduces_those_replicas(name):
    full = _run(name)
    ids = [0, 5, 33, 69]
    part = _run(name, replicas=ids, n_replicas=None)
    _same(full.sel(replica=ids), part)


def test_one_thread_and_two_threads_give_identical_results(tmp_path):
    script = CASES + textwrap.dedent(f'''
        out = {{}}
        for name, (make, target, x0) in CASES.items():
            ds = sd.simulate(make(), target, x0=x0, **RUN)
            for k in ds.data_vars:
                out[name + "/" + k] = ds[k].values
        np.savez({str(tmp_path / "one.npz")!r}, **out)
    ''')
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=600)
    one = np.load(tmp_path / "one.npz")
    import numba

    assert numba.get_num_threads() >= 2, "this test needs at least two threads in the parent process"
    for name in ns["CASES"]:
        ds = _run(name)
        for k in ds.data_vars:
            np.testing.assert_array_equal(one[name + "/" + k], ds[k].values, err_msg=f"{name}/{k}")
