"""Seeded synthetic data for finite-sum problems: Gaussian design, imbalanced classes, redundancy.

Every generator returns a :class:`~stochdyn.problems.base.Data` whose ``source`` records the
generator's name and arguments, so a problem built from it (``LeastSquares.from_data(data)``)
describes its data exactly in Dataset attributes and specs (``data = {generator = ..., ...}``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from .._validation import ValidationError, check_array, check_int, check_real
from .base import Data

__all__ = ["gaussian_regression", "imbalanced_classes", "redundant", "make_data", "GENERATORS", "provenance"]

#: content hash of (X, y) -> generator description, for the data sets generated in this session (most recent last)
_GENERATED: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
_GENERATED_MAX = 64


def _xy_hash(X: Any, y: Any) -> str:
    h = hashlib.sha256()
    for a in (X, y):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _generated(X: np.ndarray, y: np.ndarray, labels: np.ndarray | None, source: dict[str, Any]) -> Data:
    """The Data, remembered so that a problem built from its arrays (``LeastSquares(data.X, data.y)``)
    knows where they came from, exactly as ``LeastSquares.from_data(data)`` does."""
    key = _xy_hash(X, y)
    _GENERATED[key] = source
    _GENERATED.move_to_end(key)
    while len(_GENERATED) > _GENERATED_MAX:
        _GENERATED.popitem(last=False)
    return Data(X, y, labels, source)


def provenance(X: Any, y: Any) -> dict[str, Any] | None:
    """The generator description of features ``X`` and targets ``y`` if they are, value for value, a
    data set generated in this session (:func:`gaussian_regression`, ...), else None."""
    if not _GENERATED:
        return None
    return _GENERATED.get(_xy_hash(X, y))


def _seed(seed: Any, owner: str) -> int:
    return check_int("seed", seed, owner, ge=0)


def gaussian_regression(n: int, d: int, noise: float = 1.0, seed: int = 0, scales: Any = None,
                        theta: Any = None) -> Data:
    r"""Linear-regression data with a Gaussian design and Gaussian label noise.

    :math:`x_i \sim \mathcal N(0, \mathrm{diag}(s^2))`, :math:`y_i = x_i^\top\theta_\star + \sigma\varepsilon_i`,
    :math:`\varepsilon_i\sim\mathcal N(0,1)`, all from ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    n, d : int
        Number of examples and of features.
    noise : float
        Label-noise standard deviation :math:`\sigma \ge 0`.
    seed : int
        Seed of the generator.
    scales : float or array (d,), optional
        Feature standard deviations :math:`s_j > 0` (default 1).
    theta : array (d,), optional
        True parameters :math:`\theta_\star` (default: drawn :math:`\mathcal N(0, I)` from the same generator).
    """
    owner = "gaussian_regression"
    n = check_int("n", n, owner, ge=1)
    d = check_int("d", d, owner, ge=1)
    noise = check_real("noise", noise, owner, ge=0.0)
    seed = _seed(seed, owner)
    s = np.ones(d) if scales is None else np.broadcast_to(check_array("scales", scales, owner, ndim=(0, 1), gt=0.0), (d,))
    rng = np.random.default_rng(seed)
    th = rng.normal(size=d) if theta is None else check_array("theta", theta, owner, shape=(d,))
    X = rng.normal(size=(n, d)) * s
    y = X @ th + noise * rng.normal(size=n)
    source = {"generator": owner, "n": n, "d": d, "noise": noise, "seed": seed}
    if scales is not None:
        source["scales"] = np.asarray(s).tolist()
    if theta is not None:
        source["theta"] = th.tolist()
    return _generated(X, y, None, source)


def imbalanced_classes(n: int, d: int, fractions: Any = (0.9, 0.1), separation: float = 2.0, seed: int = 0) -> Data:
    r"""Classification data with imbalanced classes: Gaussian clouds around separated means.

    Class k has exactly :math:`n_k` examples (``n * fractions`` rounded by largest remainder), with
    :math:`x_i \sim \mathcal N(\mu_k, I)`, :math:`\mu_k = \text{separation}\cdot e_{k \bmod d}` for
    k >= 1 and :math:`\mu_0 = 0`. Examples are shuffled; ``y`` and ``labels`` hold the class.
    """
    owner = "imbalanced_classes"
    n = check_int("n", n, owner, ge=1)
    d = check_int("d", d, owner, ge=1)
    f = check_array("fractions", fractions, owner, ndim=1, gt=0.0, min_size=2)
    sep = check_real("separation", separation, owner)
    seed = _seed(seed, owner)
    f = f / f.sum()
    counts = np.floor(n * f).astype(np.int64)
    rem = n * f - counts
    for k in np.argsort(-rem, kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    if np.any(counts < 1):
        raise ValidationError(f"The 'fractions' of {owner} leave a class with no example for n={n}: counts {counts.tolist()}.")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(f.size), counts))
    means = np.zeros((f.size, d))
    for k in range(1, f.size):
        means[k, (k - 1) % d] = sep
    X = means[labels] + rng.normal(size=(n, d))
    source = {"generator": owner, "n": n, "d": d, "fractions": f.tolist(), "separation": sep, "seed": seed}
    return _generated(X, labels.astype(np.float64), labels.astype(np.int64), source)


def redundant(data: Data, k: int) -> Data:
    """The data set with each example repeated ``k`` times (example ``i`` fills rows ``i*k`` to ``i*k+k-1``).

    Redundant data leave the full-batch objective unchanged (with mean weights) while N grows:
    the textbook case where mini-batches are nearly as informative as the full batch.
    """
    k = check_int("k", k, "redundant", ge=1)
    labels = None if data.labels is None else np.repeat(data.labels, k)
    X, y = np.repeat(data.X, k, axis=0), np.repeat(data.y, k)
    if data.source is None:
        return Data(X, y, labels, None)
    return _generated(X, y, labels, {"generator": "redundant", "k": k, "base": data.source})


#: name -> data generator, for problems described by generator and seed in specs and Dataset attributes
GENERATORS: dict[str, Callable[..., Data]] = {
    "gaussian_regression": gaussian_regression,
    "imbalanced_classes": imbalanced_classes,
}


def make_data(spec: dict[str, Any]) -> Data:
    """Rebuild data from a ``source`` description: ``{"generator": name, **arguments}``."""
    spec = dict(spec)
    name = spec.pop("generator", None)
    if name == "redundant":
        base = spec.pop("base", None)
        if not isinstance(base, dict):
            raise ValidationError("The 'redundant' data generator needs a 'base' table describing the data to repeat.")
        return redundant(make_data(base), **spec)
    if name not in GENERATORS:
        raise ValidationError(f"Unknown data generator {name!r}; known: {', '.join(sorted(GENERATORS) + ['redundant'])}.")
    try:
        return GENERATORS[name](**spec)
    except TypeError as exc:
        raise ValidationError(f"Bad arguments for data generator {name}: {exc}") from None
