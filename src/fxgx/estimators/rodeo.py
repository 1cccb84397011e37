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

from fxgx.core.custom_gradient import custom_gradient
from fxgx.estimators.base import Estimator, evaluate, leave_one_out_mean, sub_seeds
from fxgx.estimators.double_control_variate import event_axes, expand_to, mean_of
from fxgx.estimators.hyperparameters import as_hyperparameter, finite
from fxgx.estimators.rebar import VarianceObjectiveMixin, check_control_values
from fxgx.estimators.reinforce import draw


def neighbours(backend, distribution, samples):
    """Every Gibbs neighbour of every sample, and its move probability.

    Args:
        backend: the backend module.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``(points, moves, count)``: ``points`` of shape ``[N, S] + logits.shape``, the
        ``N`` neighbours of each sample (Bernoulli: ``N = D``, bit ``i`` flipped;
        categorical: ``N = D K``, variable ``i`` set to class ``c``), in the order of the
        event's elements; ``moves`` (``[S] + logits.shape``) the probability ``q_i(y)`` of
        each move; ``count`` = ``N``.
    """
    axes = event_axes(backend, distribution)
    shape = tuple(backend.shape_of(samples))
    event_shape = tuple(shape[axis] for axis in axes)
    count = math.prod(event_shape)
    dtype = backend.dtype_of(samples)
    identity = backend.one_hot(backend.arange(count, "int32"), count, dtype)
    batch_rank = len(shape) - 1 - len(event_shape)
    masks = backend.reshape(identity, (count,) + (1,) * (1 + batch_rank) + event_shape)
    points = backend.expand_dims(samples, 0)
    if distribution.kind == "bernoulli":
        points = points + masks * (1.0 - 2.0 * points)
    else:
        variable = backend.reduce_sum(masks, axis=-1, keepdims=True)
        points = points * (1.0 - variable) + masks
    return points, move_probabilities(backend, distribution, samples), count


def move_probabilities(backend, distribution, samples):
    """``q_i(y)`` for each Gibbs move.

    Args:
        backend: the backend module.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``[S] + logits.shape``: Bernoulli ``q_i(1 - z_i)`` (the flip of bit ``i``),
        categorical ``q_i(c)`` (variable ``i`` set to class ``c``).
    """
    mean = mean_of(backend, distribution)
    if distribution.kind == "bernoulli":
        return samples * (1.0 - mean) + (1.0 - samples) * mean
    return samples * 0.0 + mean


def variable_count(backend, distribution, samples):
    """``D``, the number of variables in one event (the class axis not counted).

    Args:
        backend: the backend module.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples.

    Returns:
        ``D`` as a Python int.
    """
    axes = event_axes(backend, distribution)
    if distribution.kind == "categorical":
        axes = axes[:-1]
    shape = backend.shape_of(samples)
    return math.prod(shape[axis] for axis in axes)


def in_event_layout(backend, values, samples, count):
    """Values at the neighbours moved into the event's layout.

    Args:
        backend: the backend module.
        values: ``[N, S] + batch_shape``, the values at the ``N`` neighbours of each sample.
        samples: ``[S] + logits.shape`` samples.
        count: ``N``, the number of elements of one event.

    Returns:
        ``[S] + logits.shape``: the value at neighbour ``n`` at the ``n``-th element of the
        event.
    """
    shape = tuple(backend.shape_of(samples))
    rank = len(backend.shape_of(values))
    moved = backend.transpose(values, tuple(range(1, rank)) + (0,))
    event_shape = shape[rank - 1:]
    if math.prod(event_shape) != count:
        raise ValueError(f"expected {count} neighbours per sample, got shape {shape}.")
    return backend.reshape(moved, shape[:rank - 1] + event_shape)


def stein_terms(backend, distribution, samples, at_samples, at_neighbours, baseline):
    """``((A h)(z_s), (A [(h - B_s) s])(z_s))`` for the Gibbs Stein operator ``A``.

    Args:
        backend: the backend module.
        distribution: the Bernoulli or one-hot categorical ``q``.
        samples: ``[S] + logits.shape`` samples ``z_s``.
        at_samples: ``h(z_s)``, ``[S] + batch_shape``.
        at_neighbours: ``h`` at each neighbour in event layout (``[S] + logits.shape``).
        baseline: ``B_s``, ``[S] + batch_shape``, independent of ``z_s``.

    Returns:
        ``(A h)(z_s)`` of shape ``[S] + batch_shape`` and the score term of shape
        ``[S] + logits.shape``.
    """
    axes = event_axes(backend, distribution)
    rank = len(backend.shape_of(samples))
    moves = move_probabilities(backend, distribution, samples)
    mean = mean_of(backend, distribution)
    variables = variable_count(backend, distribution, samples)
    own = expand_to(backend, at_samples, rank)
    stein_h = backend.reduce_sum(moves * (at_neighbours - own), axis=axes) / variables
    score = samples - mean
    shifted = moves * (at_neighbours - expand_to(backend, baseline, rank)) / variables
    if distribution.kind == "bernoulli":
        direct = shifted * (1.0 - 2.0 * samples)
    else:
        direct = shifted - backend.reduce_sum(shifted, axis=-1, keepdims=True) * samples
    return stein_h, expand_to(backend, stein_h, rank) * score + direct


@dataclasses.dataclass(frozen=True)
class Rodeo(VarianceObjectiveMixin, Estimator):
    """REINFORCE-LOO with discrete-Stein control variates built from ``h``. See ``rodeo``.

    Attributes:
        control_variate: the surrogate ``h(z, parameters)``, or ``None`` (REINFORCE-LOO).
        baseline_scale: ``alpha``, the weight of ``A h`` in the leave-one-out baseline.
        score_scale: ``beta``, the weight of ``A[(h - B) s]`` added to the estimate.
        control_variate_parameters: the ``parameters`` handed to ``h``; set per call.
    """

    control_variate: Callable | None = None
    baseline_scale: object = 1.0
    score_scale: object = 1.0
    control_variate_parameters: object = None
    name = "rodeo"
    supports = ("bernoulli", "categorical")
    minimum_samples = 2

    def __call__(self, function, distribution, *, seed, num_samples: int = 2,
                 chunk_size=None, devices=None,
                 baseline_scale=None, score_scale=None, control_variate_parameters=None):
        """The surrogate of ``E[f]`` (see ``Estimator.__call__``).

        Args:
            function: ``f`` (need not be differentiable in ``z``).
            distribution: a Bernoulli or one-hot categorical ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S >= 2``.
            chunk_size: stream the estimate in chunks (see ``Estimator.__call__``).
            devices: spread the chunks over devices (see ``Estimator.__call__``).
            baseline_scale: overrides ``alpha`` for this call (a trainable tensor).
            score_scale: overrides ``beta`` for this call (a trainable tensor).
            control_variate_parameters: handed to ``h(z, parameters)`` (traced and
                differentiated under JAX).

        Returns:
            The surrogate, of the distribution's batch shape.

        Raises:
            ValueError: ``control_variate_parameters`` without a control variate, or a
                scale that is not finite.
        """
        estimator = self.with_call_options(
            baseline_scale=baseline_scale, score_scale=score_scale,
            control_variate_parameters=control_variate_parameters)
        return Estimator.__call__(estimator, function, distribution, seed=seed,
                                  num_samples=num_samples, chunk_size=chunk_size,
                                  devices=devices)

    def with_call_options(self, baseline_scale=None, score_scale=None,
                          control_variate_parameters=None):
        """A copy with the per-call options applied.

        Args:
            baseline_scale: a new ``alpha``, or ``None`` to keep this one.
            score_scale: a new ``beta``, or ``None`` to keep this one.
            control_variate_parameters: ``h``'s parameters, or ``None``.

        Returns:
            A :class:`Rodeo`.

        Raises:
            ValueError: ``control_variate_parameters`` without a ``control_variate``.
        """
        estimator = self
        if baseline_scale is not None:
            estimator = dataclasses.replace(
                estimator, baseline_scale=finite(baseline_scale, "baseline_scale"))
        if score_scale is not None:
            estimator = dataclasses.replace(
                estimator, score_scale=finite(score_scale, "score_scale"))
        if control_variate_parameters is not None:
            if self.control_variate is None:
                raise ValueError(
                    "control_variate_parameters were given but this RODEO estimator has no "
                    "control_variate; make it with rodeo(control_variate=...)."
                )
            estimator = dataclasses.replace(
                estimator, control_variate_parameters=control_variate_parameters)
        return estimator

    def _surrogate_values(self, backend, points, count, dtype, batch_shape):
        surrogate = self.control_variate
        assert surrogate is not None  # only called with a control variate
        values = surrogate(points, self.control_variate_parameters)
        if not backend.is_array(values):
            values = backend.convert(values, dtype)
        values = check_control_values(backend, values, count, batch_shape, "control_variate")
        if backend.dtype_of(values) != dtype:
            values = backend.cast(values, dtype)
        return values

    def _estimate(self, function, distribution, backend, seed, num_samples):
        seeds = sub_seeds(seed, backend, "samples")
        samples = draw(distribution, backend, seeds["samples"], num_samples)
        values = evaluate(function, samples, distribution, backend, num_samples)
        logits = distribution.logits
        dtype = backend.dtype_of(logits)
        rank = len(backend.shape_of(logits))
        axes = event_axes(backend, distribution)
        batch_shape = tuple(distribution.batch_shape)
        mean = mean_of(backend, distribution)
        stopped = backend.stop_gradient(values)
        if self.control_variate is None:
            baseline = leave_one_out_mean(backend, stopped, num_samples)
            extra = None
        else:
            alpha = as_hyperparameter(backend, self.baseline_scale, dtype, batch_shape,
                                      "baseline_scale", target="the batch")
            beta = as_hyperparameter(backend, self.score_scale, dtype, batch_shape,
                                     "score_scale", target="the batch")
            points, _, count = neighbours(backend, distribution, samples)
            at_samples = self._surrogate_values(backend, samples, num_samples, dtype,
                                                batch_shape)
            flat = backend.reshape(points, (count * num_samples,) + tuple(
                backend.shape_of(samples))[1:])
            at_flat = self._surrogate_values(backend, flat, count * num_samples, dtype,
                                             batch_shape)
            at_points = backend.reshape(at_flat, (count, num_samples) + batch_shape)
            at_neighbours = in_event_layout(backend, at_points, samples, count)
            stein_h, _ = stein_terms(backend, distribution, samples, at_samples,
                                     at_neighbours, at_samples * 0.0)
            baseline = leave_one_out_mean(backend, stopped + alpha * stein_h, num_samples)
            _, score_term = stein_terms(backend, distribution, samples, at_samples,
                                        at_neighbours, baseline)
            extra = expand_to(backend, beta, rank + 1) * score_term
        weights = expand_to(backend, (stopped - baseline) / num_samples, rank + 1)
        per_sample = weights * (samples - mean)
        if extra is not None:
            per_sample = per_sample + extra / num_samples
        gradient = backend.reduce_sum(per_sample, axis=0)
        return custom_gradient(backend.reduce_mean(values, axis=0), gradient, logits,
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
