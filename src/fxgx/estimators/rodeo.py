"""RODEO: REINFORCE-LOO with control variates from a discrete Stein operator.

For independent Bernoulli or categorical variables ``z = (z_1..z_D)`` (one event) the Gibbs
Stein operator of ``q`` acts on any function ``u`` as

    (A u)(z) = 1/D sum_i sum_y q_i(y) [u(z with z_i := y) - u(z)],

the expected change of ``u`` under one Gibbs step that redraws a uniformly chosen variable
from ``q``. A Gibbs step leaves ``q`` invariant, so ``E_q[(A u)(z)] = 0`` for EVERY ``u``:
each ``A u`` is a control variate, and it only evaluates ``u`` at the ``D`` (Bernoulli: the
one flip of each bit) or ``D K`` (categorical) neighbours of a sample, never ``f``.

Given a surrogate ``h(z, parameters)`` (the user's ``control_variate``, cheap, ideally close
to ``f``) and ``S >= 2`` samples, fxgx's RODEO estimate is

    B_s = 1/(S-1) sum_{j!=s} [f(z_j) + alpha (A h)(z_j)]
    g   = 1/S sum_s [(f(z_s) - B_s) s(z_s) + beta (A [(h - B_s) s])(z_s)],

with ``s(z) = grad_logits log q(z)`` (``z - sigmoid(logits)`` or ``z - softmax(logits)``).
The first control variate improves the leave-one-out baseline (``f + A h`` has the mean of
``f``, and for ``h = f`` it is ``f`` averaged over one Gibbs step); the second acts on the
score-function term itself (for ``h = f`` and ``beta = 1`` it replaces ``(f - B_s) s`` by its
average over one Gibbs step). ``B_s`` does not depend on ``z_s``, so both terms have mean
zero and the estimate is unbiased for every ``h``, ``alpha`` and ``beta``. ``h`` and the
scales are learned by minimising ``E|g|^2`` (``info["variance_loss"]`` of ``apply``, or
``variance_loss``), whose gradient w.r.t. them equals that of the variance. Without a
``control_variate`` the estimate is REINFORCE-LOO.

Bernoulli, closed form: with ``w_i = q_i(1 - z_i)`` and ``h_i = h(z`` with bit ``i`` flipped),
``(A h)(z) = 1/D sum_i w_i (h_i - h(z))`` and the ``i``-th logit's component of
``A[(h - B) s]`` is ``(A h)(z) s_i(z) + w_i (h_i - B)(1 - 2 z_i) / D``; categorical
similarly, per class (see ``stein_terms``).

This follows Shi, Zhou, Hwang, Titsias & Mackey (2022), "Gradient estimation with discrete
Stein operators", NeurIPS, with one surrogate ``h`` in both places (the paper gives the two
control variates separate learned functions) and the Gibbs operator.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from fxgx.core.arrays import expand_to_rank, one_hot, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator, call_option
from fxgx.estimators.control_variates import (
    check_control_variate_parameters,
    control_values,
    leave_one_out_mean,
)
from fxgx.estimators.hyperparameters import as_hyperparameter, finite, unchecked
from fxgx.estimators.sampling import draw, evaluate, event_axes, mean_of, sub_seeds
from fxgx.estimators.variance_objective import VarianceObjective


def neighbours(framework, distribution, samples):
    """Every Gibbs neighbour of every sample, and its move probability.

    Args:
        framework: the framework.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``(points, moves, count)``: ``points`` of shape ``[N, S] + logits.shape``, the
        ``N`` neighbours of each sample (Bernoulli: ``N = D``, bit ``i`` flipped;
        categorical: ``N = D K``, variable ``i`` set to class ``c``), in the order of the
        event's elements; ``moves`` (``[S] + logits.shape``) the probability ``q_i(y)`` of
        each move; ``count`` = ``N``.
    """
    xp = framework.xp
    axes = event_axes(distribution)
    shape = shape_of(samples)
    event_shape = tuple(shape[axis] for axis in axes)
    count = math.prod(event_shape)
    dtype = samples.dtype
    identity = one_hot(xp, xp.arange(count, dtype=xp.int32), count, dtype)
    batch_rank = len(shape) - 1 - len(event_shape)
    masks = xp.reshape(identity, (count,) + (1,) * (1 + batch_rank) + event_shape)
    points = xp.expand_dims(samples, axis=0)
    if distribution.kind == "bernoulli":
        points = points + masks * (1.0 - 2.0 * points)
    else:
        variable = xp.sum(masks, axis=-1, keepdims=True)
        points = points * (1.0 - variable) + masks
    return points, move_probabilities(framework, distribution, samples), count


def move_probabilities(framework, distribution, samples):
    """``q_i(y)`` for each Gibbs move.

    Args:
        framework: the framework.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``[S] + logits.shape``: Bernoulli ``q_i(1 - z_i)`` (the flip of bit ``i``),
        categorical ``q_i(c)`` (variable ``i`` set to class ``c``).
    """
    mean = mean_of(framework, distribution)
    if distribution.kind == "bernoulli":
        return samples * (1.0 - mean) + (1.0 - samples) * mean
    return samples * 0.0 + mean


def variable_count(distribution, samples):
    """``D``, the number of variables in one event (the class axis not counted).

    Args:
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``D`` as a Python int.
    """
    axes = event_axes(distribution)
    if distribution.kind == "categorical":
        axes = axes[:-1]
    shape = shape_of(samples)
    return math.prod(shape[axis] for axis in axes)


def in_event_layout(xp, values, samples, count):
    """Values at the neighbours moved into the event's layout.

    Args:
        xp: the namespace of the arrays.
        values: ``[N, S] + batch_shape``, the values at the ``N`` neighbours of each sample.
        samples: ``[S] + logits.shape`` samples.
        count: ``N``, the number of elements of one event.

    Returns:
        ``[S] + logits.shape``: the value at neighbour ``n`` at the ``n``-th element of the
        event.
    """
    shape = shape_of(samples)
    rank = len(shape_of(values))
    moved = xp.permute_dims(values, tuple(range(1, rank)) + (0,))
    event_shape = shape[rank - 1:]
    if math.prod(event_shape) != count:
        raise ValueError(f"expected {count} neighbours per sample, got shape {shape}.")
    return xp.reshape(moved, shape[:rank - 1] + event_shape)


def stein_terms(framework, distribution, samples, at_samples, at_neighbours, baseline):
    """``((A h)(z_s), (A [(h - B_s) s])(z_s))`` for the Gibbs Stein operator ``A``.

    Args:
        framework: the framework.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples ``z_s``.
        at_samples: ``h(z_s)``, ``[S] + batch_shape``.
        at_neighbours: ``h`` at each neighbour in event layout (``[S] + logits.shape``).
        baseline: ``B_s``, ``[S] + batch_shape``, independent of ``z_s``.

    Returns:
        ``(A h)(z_s)`` of shape ``[S] + batch_shape`` and the score term of shape
        ``[S] + logits.shape``.
    """
    xp = framework.xp
    axes = event_axes(distribution)
    rank = len(shape_of(samples))
    moves = move_probabilities(framework, distribution, samples)
    mean = mean_of(framework, distribution)
    variables = variable_count(distribution, samples)
    own = expand_to_rank(xp, at_samples, rank)
    stein_h = xp.sum(moves * (at_neighbours - own), axis=axes) / variables
    score = samples - mean
    shifted = moves * (at_neighbours - expand_to_rank(xp, baseline, rank)) / variables
    if distribution.kind == "bernoulli":
        direct = shifted * (1.0 - 2.0 * samples)
    else:
        direct = shifted - xp.sum(shifted, axis=-1, keepdims=True) * samples
    return stein_h, expand_to_rank(xp, stein_h, rank) * score + direct



@dataclasses.dataclass(frozen=True)
class Rodeo(VarianceObjective, Estimator, card="rodeo"):
    """REINFORCE-LOO with discrete-Stein control variates built from ``h``. See ``rodeo``.

    Per-call options: ``baseline_scale``, ``score_scale`` (trainable tensors) and
    ``control_variate_parameters`` (handed to ``h``; traced and differentiated under JAX).

    Attributes:
        control_variate: the surrogate ``h(z, parameters)``, or ``None`` (REINFORCE-LOO).
        baseline_scale: ``alpha``, the weight of ``A h`` in the leave-one-out baseline.
        score_scale: ``beta``, the weight of ``A[(h - B) s]`` added to the estimate.
        control_variate_parameters: the ``parameters`` handed to ``h``; set per call.
    """

    control_variate: Callable | None = None
    baseline_scale: object = call_option(1.0, finite)
    score_scale: object = call_option(1.0, finite)
    control_variate_parameters: object = call_option(None, unchecked)
    minimum_samples = 2

    def __post_init__(self):
        check_control_variate_parameters(self, "rodeo")

    def _surrogate_values(self, framework, points, count, dtype, batch_shape):
        surrogate = self.control_variate
        assert surrogate is not None  # only called with a control variate
        return control_values(framework, surrogate(points, self.control_variate_parameters),
                              count, batch_shape, dtype, "control_variate")

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        seeds = sub_seeds(framework, seed, "samples")
        samples = draw(framework, distribution, seeds["samples"], num_samples)
        values = evaluate(framework, function, samples, distribution, num_samples)
        logits = distribution.logits
        dtype = logits.dtype
        rank = len(shape_of(logits))
        axes = event_axes(distribution)
        batch_shape = tuple(distribution.batch_shape)
        mean = mean_of(framework, distribution)
        stopped = framework.stop_gradient(values)
        if self.control_variate is None:
            baseline = leave_one_out_mean(xp, stopped, num_samples)
            extra = None
        else:
            alpha = as_hyperparameter(framework, self.baseline_scale, dtype, batch_shape,
                                      "baseline_scale", target="the batch")
            beta = as_hyperparameter(framework, self.score_scale, dtype, batch_shape,
                                     "score_scale", target="the batch")
            points, _, count = neighbours(framework, distribution, samples)
            at_samples = self._surrogate_values(framework, samples, num_samples, dtype,
                                                batch_shape)
            flat = xp.reshape(points, (count * num_samples,) + shape_of(samples)[1:])
            at_flat = self._surrogate_values(framework, flat, count * num_samples, dtype,
                                             batch_shape)
            at_points = xp.reshape(at_flat, (count, num_samples) + batch_shape)
            at_neighbours = in_event_layout(xp, at_points, samples, count)
            stein_h, _ = stein_terms(framework, distribution, samples, at_samples,
                                     at_neighbours, at_samples * 0.0)
            baseline = leave_one_out_mean(xp, stopped + alpha * stein_h, num_samples)
            _, score_term = stein_terms(framework, distribution, samples, at_samples,
                                        at_neighbours, baseline)
            extra = expand_to_rank(xp, beta, rank + 1) * score_term
        weights = expand_to_rank(xp, (stopped - baseline) / num_samples, rank + 1)
        per_sample = weights * (samples - mean)
        if extra is not None:
            per_sample = per_sample + extra / num_samples
        gradient = xp.sum(per_sample, axis=0)
        return with_gradient(framework, xp.mean(values, axis=0), gradient, logits,
                             axis=tuple(axis - 1 for axis in axes),
                             fx_gx_manually_stopped=True)


def rodeo(control_variate: Callable | None = None, *, baseline_scale=1.0,
          score_scale=1.0) -> Rodeo:
    """RODEO: REINFORCE-LOO plus discrete-Stein control variates from a surrogate ``h``.

    ``g = 1/S sum_s [(f(z_s) - B_s) s(z_s) + beta A[(h - B_s) s](z_s)]`` with ``B_s`` the
    leave-one-out mean of ``f + alpha A h`` and ``A`` the Gibbs Stein operator of ``q``;
    unbiased for every ``h``. One evaluation of ``f`` per sample; ``h`` is evaluated at the
    sample and its ``D`` (Bernoulli) or ``D K`` (categorical) Gibbs neighbours. Train ``h``'s
    parameters (and the scales) on ``info["variance_loss"]`` of ``est.apply``. Reference: Shi,
    Zhou, Hwang, Titsias & Mackey (2022), "Gradient estimation with discrete Stein
    operators", NeurIPS.

    Args:
        control_variate: the surrogate ``h(z, parameters)``: maps samples of shape
            ``[N] + logits.shape`` (binary or one-hot, any ``N``) to ``[N] + batch_shape``;
            ``parameters`` are those passed at call time (``control_variate_parameters=``).
            ``None``: no control variate (REINFORCE-LOO).
        baseline_scale: ``alpha``, a finite number or floating array (batch shape).
        score_scale: ``beta``, a finite number or floating array (batch shape).

    Returns:
        A :class:`Rodeo`, called as ``est(f, q, *, seed, num_samples=2)``.

    Raises:
        TypeError: ``control_variate`` is not callable.
        ValueError: a scale is not finite.
    """
    if control_variate is not None and not callable(control_variate):
        raise TypeError(
            "control_variate must be a callable h(z, parameters) -> values, got "
            f"{control_variate!r}."
        )
    return Rodeo(control_variate=control_variate,
                 baseline_scale=finite(baseline_scale, "baseline_scale"),
                 score_scale=finite(score_scale, "score_scale"))
