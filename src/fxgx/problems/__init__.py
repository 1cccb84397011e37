"""Problems that know the exact value and gradient of ``E_q[f]``."""

from fxgx.problems.base import Problem
from fxgx.problems.bernoulli_toy import BernoulliToy
from fxgx.problems.enumeration import (
    EnumeratedBernoulli,
    EnumeratedCategorical,
    enumerate_bernoulli,
    enumerate_categorical,
)

__all__ = [
    "BernoulliToy",
    "EnumeratedBernoulli",
    "EnumeratedCategorical",
    "Problem",
    "enumerate_bernoulli",
    "enumerate_categorical",
]
