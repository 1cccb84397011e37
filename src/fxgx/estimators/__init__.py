"""Gradient estimators: each an ``(fx, gx)`` pair handed to ``fxgx.custom_gradient``.

Every estimator is made by a lowercase factory and called the same way:
``estimator(f, distribution, *, seed, num_samples=S)``, or in the explicit-state form
``estimator.apply(state, f, distribution, *, seed, num_samples=S)``. The catalogue cards in
the top-level ``estimators/`` folder describe each one; each card's estimator lives in the
module of its name (``fxgx.estimators.disarm``), and the pieces several share in modules of
their own (``sampling``, ``score_function``, ``control_variates``, ``antithetic``,
``stick_breaking``, ``relaxations``, ``multi_sample``, ``without_replacement``,
``gaussian``, ``variance_objective``, ``streaming``).
"""

from fxgx.estimators.arm import Arm, arm
from fxgx.estimators.base import Estimator
from fxgx.estimators.categorical_disarm import CategoricalDisarm, categorical_disarm
from fxgx.estimators.delta_method_control_variate import (
    DeltaMethodControlVariate,
    delta_method_control_variate,
)
from fxgx.estimators.disarm import Disarm, disarm
from fxgx.estimators.disarm_vimco import DisarmVimco, disarm_vimco
from fxgx.estimators.double_control_variate import DoubleControlVariate, double_control_variate
from fxgx.estimators.gumbel_rao import GumbelRao, gumbel_rao
from fxgx.estimators.gumbel_softmax import (
    GumbelSoftmax,
    GumbelSoftmaxHard,
    binary_concrete_sample,
    gumbel_softmax,
    gumbel_softmax_hard,
    gumbel_softmax_sample,
)
from fxgx.estimators.indecater import IndeCateR, indecater
from fxgx.estimators.learned_baseline import LearnedBaseline, learned_baseline
from fxgx.estimators.measure_valued import (
    MeasureValued,
    double_sided_maxwell_sample,
    measure_valued,
    rayleigh_sample,
)
from fxgx.estimators.moving_average_baseline import (
    MovingAverageBaseline,
    MovingAverageState,
    moving_average_baseline,
)
from fxgx.estimators.optimal_baseline import OptimalBaseline, optimal_baseline
from fxgx.estimators.pathwise import Pathwise, pathwise
from fxgx.estimators.rebar import Rebar, rebar
from fxgx.estimators.reinforce import Reinforce, reinforce
from fxgx.estimators.reinforce_leave_one_out import ReinforceLeaveOneOut, reinforce_leave_one_out
from fxgx.estimators.reinmax import ReinMax, reinmax
from fxgx.estimators.relax import Relax, relax
from fxgx.estimators.relaxations import conditional_gumbel_sample, conditional_logistic_sample
from fxgx.estimators.rodeo import Rodeo, rodeo
from fxgx.estimators.stick_breaking_disarm import StickBreakingDisarm, stick_breaking_disarm
from fxgx.estimators.straight_through import (
    StraightThrough,
    StraightThroughSlope,
    straight_through,
    straight_through_bernoulli,
    straight_through_categorical,
    straight_through_slope,
)
from fxgx.estimators.sum_and_sample import SumAndSample, sum_and_sample
from fxgx.estimators.unordered_set import UnorderedSet, unordered_set
from fxgx.estimators.vimco import Vimco, vimco
from fxgx.estimators.without_replacement import sample_without_replacement, unordered_set_terms

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
    "MovingAverageState",
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
    "IndeCateR",
    "indecater",
    "ReinMax",
    "reinmax",
    "DoubleControlVariate",
    "double_control_variate",
    "Rodeo",
    "rodeo",
    "Pathwise",
    "pathwise",
    "MeasureValued",
    "measure_valued",
    "DeltaMethodControlVariate",
    "delta_method_control_variate",
    "rayleigh_sample",
    "double_sided_maxwell_sample",
    "CategoricalDisarm",
    "categorical_disarm",
    "StickBreakingDisarm",
    "stick_breaking_disarm",
    "UnorderedSet",
    "unordered_set",
    "SumAndSample",
    "sum_and_sample",
    "sample_without_replacement",
    "unordered_set_terms",
    "DisarmVimco",
    "disarm_vimco",
]
