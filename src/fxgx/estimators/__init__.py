"""Gradient estimators: each an ``(fx, gx)`` pair handed to ``fxgx.custom_gradient``.

Every estimator is made by a lowercase factory and called the same way:
``estimator(f, distribution, *, seed, num_samples=1)``. The catalogue cards in the
top-level ``estimators/`` folder describe each one.
"""

from fxgx.estimators.arm import Arm, arm
from fxgx.estimators.base import Estimator
from fxgx.estimators.control_variate import OptimalBaseline, optimal_baseline
from fxgx.estimators.disarm import Disarm, disarm
from fxgx.estimators.gumbel import (
    GumbelSoftmax,
    GumbelSoftmaxHard,
    binary_concrete_sample,
    gumbel_softmax,
    gumbel_softmax_hard,
    gumbel_softmax_sample,
)
from fxgx.estimators.gumbel_rao import GumbelRao, gumbel_rao
from fxgx.estimators.learned_baseline import LearnedBaseline, learned_baseline
from fxgx.estimators.leave_one_out import ReinforceLeaveOneOut, reinforce_leave_one_out
from fxgx.estimators.moving_average import MovingAverageBaseline, moving_average_baseline
from fxgx.estimators.rebar import (
    Rebar,
    conditional_gumbel_sample,
    conditional_logistic_sample,
    rebar,
)
from fxgx.estimators.reinforce import Reinforce, reinforce
from fxgx.estimators.relax import Relax, relax
from fxgx.estimators.straight_through import (
    StraightThrough,
    StraightThroughSlope,
    straight_through,
    straight_through_bernoulli,
    straight_through_categorical,
    straight_through_slope,
)
from fxgx.estimators.vimco import Vimco, vimco
from fxgx.estimators.without_replacement import (
    SumAndSample,
    UnorderedSet,
    sample_without_replacement,
    sum_and_sample,
    unordered_set,
    unordered_set_terms,
)

__all__ = [
    "Estimator",
    "Reinforce",
    "reinforce",
    "Arm",
    "arm",
    "Disarm",
    "disarm",
    "LearnedBaseline",
    "learned_baseline",
    "MovingAverageBaseline",
    "moving_average_baseline",
    "OptimalBaseline",
    "optimal_baseline",
    "ReinforceLeaveOneOut",
    "reinforce_leave_one_out",
    "GumbelSoftmax",
    "GumbelSoftmaxHard",
    "binary_concrete_sample",
    "gumbel_softmax",
    "gumbel_softmax_hard",
    "gumbel_softmax_sample",
    "StraightThrough",
    "StraightThroughSlope",
    "straight_through",
    "straight_through_bernoulli",
    "straight_through_categorical",
    "straight_through_slope",
    "Vimco",
    "vimco",
    "Rebar",
    "rebar",
    "Relax",
    "relax",
    "GumbelRao",
    "gumbel_rao",
    "conditional_gumbel_sample",
    "conditional_logistic_sample",
    "UnorderedSet",
    "unordered_set",
    "SumAndSample",
    "sum_and_sample",
    "sample_without_replacement",
    "unordered_set_terms",
]
