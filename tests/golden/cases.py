"""A fixed catalogue of small runs of every family, whose records were saved before the kernels were
reworked for compile time and throughput (issues 10 and 11). ``test_golden.py`` reruns them and
requires bit-identical records, so a faster kernel can never be a different kernel.

Regenerate ``records.npz`` only when a change of results is intended and documented (e.g. a new
random-stream version), never to make the test pass, and only for the cases it affects:
``python tests/golden/cases.py NAME [NAME ...]`` rewrites those cases and copies every other one
unchanged (no names: all cases, e.g. for a new file).

Changes so far: ``wf_continuous`` and ``wf_genotypes`` (issue 11, evofast): Wright–Fisher draws each
parent from one 64-bit number per trial, by rejection against the largest fitness or by the alias
method (see ``stochdyn/random/_discrete.py``), instead of two numbers per parent from the alias
method; the same law, other numbers. ``sgld_mlp`` (issue 11, sgdfast): the one-hidden-layer loss
evaluates ``tanh`` with stochdyn's branch-free IEEE version (``stochdyn/problems/_mathfn.py``) instead
of libm's, which differs in the last bit for some arguments; the same function, other roundings.
``sgd_plain_ls``, ``sgd_practices`` and ``sgld_quantize_noise`` (session 21): the full-batch U of a
quadratic problem (``energy``) is summed in index order one point at a time
(``stochdyn.problems.base.quadratic_values``) instead of by a BLAS product of all the points, whose
order of additions depended on how many points were evaluated together and on the CPU; only
``energy`` changed, by at most 4.4e-16 (2.3e-14 relative).
"""

from __future__ import annotations

import numpy as np

import stochdyn as sd

L = sd.landscapes
P = sd.problems


@sd.landscapes.landscape(dim=2)
def _tilted_bowl(x, grad, a=1.5):
    grad[0] = a * x[0] + 0.2
    grad[1] = x[1] ** 3
    return 0.5 * a * x[0] ** 2 + 0.2 * x[0] + 0.25 * x[1] ** 4


def cases() -> dict:
    """name -> (integrator factory, target factory, x0, run keywords)."""
    data = P.imbalanced_classes(90, 2, fractions=(0.6, 0.3, 0.1), seed=1)
    ls = P.LeastSquares(data.X, data.X @ [1.0, -1.0] + 0.3 * data.labels, labels=data.labels)
    lg = P.LogisticRegression.from_data(data, l2=0.01)
    rng = np.random.default_rng(5)
    Xr = rng.standard_normal((60, 3))
    yr = np.tanh(Xr @ [1.0, -0.5, 0.25])
    mlp = P.OneHiddenLayer(Xr, yr, hidden=4)
    geno = sd.fitness.NKFitness(n_sites=6, k_epistasis=2, n_alleles=3, seed=1)
    dw = L.DoubleWell(dim=2, tilt=0.1)
    lang = dict(n_replicas=40, n_steps=60, record_every=20, rng=2026)
    sgd = dict(n_replicas=24, n_steps=48, record_every=12, rng=2027)
    evo = dict(n_replicas=6, n_steps=12, record_every=3, rng=42)
    return {
        # Langevin
        "em_doublewell": (lambda: sd.EulerMaruyama(dt=0.01, temperature=0.5), lambda: dw, [-1.0, 0.0], lang),
        "em_full_noise": (lambda: sd.EulerMaruyama(dt=0.01, diffusion=[[0.5, 0.1], [0.1, 0.2]]), lambda: dw,
                          [-1.0, 0.0], lang),
        "lm_harmonic5": (lambda: sd.LeimkuhlerMatthews(dt=0.02, temperature=[0.5, 0.2, 0.3, 0.4, 0.1]),
                         lambda: L.Harmonic(stiffness=[0.5, 1.0, 2.0, 3.0, 4.0]), None, lang),
        "baoab_mueller": (lambda: sd.BAOAB(dt=1e-3, temperature=5.0, friction=2.0), lambda: L.MuellerBrown(),
                          [-0.5, 1.4], lang),
        "em_rastrigin3": (lambda: sd.EulerMaruyama(dt=1e-3, temperature=1.0), lambda: L.Rastrigin(dim=3),
                          [0.5, -0.5, 1.0], lang),
        "em_user": (lambda: sd.EulerMaruyama(dt=0.01, temperature=0.3), lambda: _tilted_bowl(), [0.3, 0.3], lang),
        # SGD family
        "sgd_plain_ls": (lambda: sd.SGD(lr=0.05, batch_size=4), lambda: ls, [0.5, 0.5], sgd),
        "adam_plain_logistic": (lambda: sd.Adam(lr=0.05, batch_size=5), lambda: lg, None, sgd),
        "sgld_mlp": (lambda: sd.SGLD(lr=0.01, temperature=0.01, batch_size=6), lambda: mlp, None, sgd),
        "sgd_practices": (lambda: sd.SGD(
            lr=0.05, batch_size=6, momentum=0.5, sampling=sd.Sampling("stratified"),
            workers=sd.Workers(3, "topk", k=1), augmentation=sd.Augmentation(copies=2, noise=0.2),
            batch_schedule=sd.BatchSchedule.norm_test(0.8, 40)), lambda: ls, [0.5, 0.5], sgd),
        "adam_epoch_clip_cosine": (lambda: sd.Adam(
            lr=0.05, batch_size=7, sampling=sd.Sampling("epoch"), clip_norm=1.0,
            lr_schedule=sd.LRSchedule.cosine(120, warmup_steps=10)), lambda: lg, None, sgd),
        "sgld_quantize_noise": (lambda: sd.SGLD(
            lr=0.02, temperature=0.05, batch_size=8, sampling=sd.Sampling("without_replacement"),
            workers=sd.Workers(2, "quantize", levels=3), gradient_noise=[0.1, 0.2]), lambda: ls, [0.0, 1.0], sgd),
        "sgd_landscape_nesterov": (lambda: sd.SGD(
            lr=0.02, momentum=0.8, nesterov=True, gradient_noise=[[1.0, 0.3], [0.3, 0.5]], clip_norm=3.0),
            lambda: dw, [-1.0, 0.0], sgd),
        # evolution
        "wf_continuous": (lambda: sd.WrightFisher(population_size=30, mutation_scale=0.1, selection=2.0,
                                                  recombination="free", recombination_rate=0.5,
                                                  record_population=True), lambda: dw, [-1.0, 0.0], evo),
        "wf_genotypes": (lambda: sd.WrightFisher(population_size=20, mutation_rate=0.05, recombination="free"),
                         lambda: geno, None, evo),
        "moran_continuous": (lambda: sd.Moran(population_size=16, mutation_scale=0.2, recombination="blend",
                                              recombination_rate=0.3), lambda: dw, [1.0, 0.5], evo),
        "moran_genotypes": (lambda: sd.Moran(population_size=12, mutation_rate=0.05), lambda: geno, None, evo),
        "one_plus_one": (lambda: sd.OnePlusOneES(sigma0=0.5), lambda: L.Rastrigin(dim=3), [2.0, 1.0, -1.0], evo),
        "csaes": (lambda: sd.CSAES(sigma0=0.5), lambda: L.Rastrigin(dim=3), [2.0, 1.0, -1.0], evo),
        "cmaes": (lambda: sd.CMAES(sigma0=0.5, active=False, record_population=True), lambda: L.Rosenbrock(dim=4),
                  [0.0, 0.0, 0.0, 0.0], evo),
        "openes": (lambda: sd.OpenES(sigma=0.2, learning_rate=0.01, n_pairs=5, momentum=0.5,
                                     fitness_shaping="centered_ranks"), lambda: dw, [0.2, 1.0], evo),
        "ga": (lambda: sd.GeneticAlgorithm(population_size=10, record_population=True), lambda: dw, [0.5, 0.5], evo),
    }


def run(name: str):
    integ, target, x0, kw = cases()[name]
    return sd.simulate(integ(), target(), x0, **kw)


def records(name: str) -> dict[str, np.ndarray]:
    ds = run(name)
    return {v: ds[v].values for v in ds.data_vars}


if __name__ == "__main__":
    import pathlib
    import sys

    path = pathlib.Path(__file__).with_name("records.npz")
    names = sys.argv[1:] or list(cases())
    unknown = sorted(set(names) - set(cases()))
    if unknown:
        sys.exit(f"no case named {unknown}; cases: {', '.join(cases())}")
    out = {}
    if sys.argv[1:]:  # keep every other case as saved
        with np.load(path) as saved:
            out = {k: saved[k] for k in saved.files if k.split("/", 1)[0] not in names}
    for name in names:
        for v, a in records(name).items():
            out[f"{name}/{v}"] = a
    order = {name: i for i, name in enumerate(cases())}
    out = dict(sorted(out.items(), key=lambda kv: order[kv[0].split("/", 1)[0]]))
    np.savez_compressed(path, **out)
    print(f"wrote {len(out)} arrays ({', '.join(names)} new) to {path} ({path.stat().st_size / 1024:.0f} KiB)")
