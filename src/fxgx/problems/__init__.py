"""Problems that know the exact value and gradient of ``E_q[f]``."""

from fxgx.problems.base import Problem
from fxgx.problems.bernoulli_toy import BernoulliToy
from fxgx.problems.builtin import (
    DEFAULT_PROBLEM,
    PROBLEM_NAMES,
    GaussianPolynomial,
    GaussianQuadratic,
    get_problem,
)
from fxgx.problems.enumeration import (
    EnumeratedBernoulli,
    EnumeratedCategorical,
    enumerate_bernoulli,
    enumerate_categorical,
)

__all__ = [
    "DEFAULT_PROBLEM",
    "GaussianQuadratic",
    "GaussianPolynomial",
    "PROBLEM_NAMES",
    "get_problem",
    "BernoulliToy",
    "EnumeratedBernoulli",
    "EnumeratedCategorical",
    "Problem",
    "enumerate_bernoulli",
    "enumerate_categorical",
]
