"""Finite-sum problems U(theta) = sum_i w_i l_i(theta) for the SGD family (default w_i = 1/N: the mean loss).

Built-in: :class:`LeastSquares`, :class:`LogisticRegression` (binary and softmax),
:class:`OneHiddenLayer`, :class:`RitzEnergy1D` (quadrature points as data). Data:
:func:`gaussian_regression`, :func:`imbalanced_classes`, :func:`redundant`. Your own:
:func:`per_sample_loss` and :func:`augmentation`.
"""

from .base import PROBLEMS, Data, Problem, QuadraticForm, problem_from_dict
from .builtin import LeastSquares, LogisticRegression, OneHiddenLayer, RitzEnergy1D, gaussian_augment
from .data import GENERATORS, gaussian_regression, imbalanced_classes, make_data, redundant
from .user import AugmentFunction, augmentation, check_sample_gradient, per_sample_loss

__all__ = [
    "Problem",
    "QuadraticForm",
    "Data",
    "LeastSquares",
    "LogisticRegression",
    "OneHiddenLayer",
    "RitzEnergy1D",
    "gaussian_augment",
    "gaussian_regression",
    "imbalanced_classes",
    "redundant",
    "make_data",
    "per_sample_loss",
    "augmentation",
    "AugmentFunction",
    "check_sample_gradient",
    "problem_from_dict",
    "PROBLEMS",
    "GENERATORS",
]

# specs: a [problem] table names a finite-sum problem (see problem_from_dict)
from ..spec import TARGET_BUILDERS as _TARGET_BUILDERS  # noqa: E402

_TARGET_BUILDERS.setdefault("problem", problem_from_dict)
