"""REINFORCE with an exponential-moving-average baseline whose state is explicit.

The baseline is a running average of ``f`` over past batches, kept in a
:class:`MovingAverageState` that the caller passes in and receives back:

    b_k = a_k / w_k                       (0 while w_k = 0)
    g_k = 1/S sum_s (f(z_s) - b_k) grad log q(z_s)
    a_{k+1} = decay a_k + (1 - decay) mean_s f(z_s),   w_{k+1} = decay w_k + (1 - decay)

``w`` is the total weight the average has received, so ``a / w`` is the bias-corrected
average (as in Adam): the first update already gives the first batch's mean, not
``(1 - decay)`` times it. Batch ``k`` uses the state from *before* batch ``k``, which does
not depend on this batch's samples, so the estimate is unbiased (Williams, 1992; the running
average baseline of NVIL: Mnih & Gregor, 2014, "Neural variational inference and learning in
belief networks").
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from fxgx.backends import backend_by_name
from fxgx.estimators.base import Estimator, propagate_non_finite, sub_seeds
from fxgx.estimators.reinforce import draw_and_evaluate, score_function_surrogate


class MovingAverageState(NamedTuple):
    """State of a moving-average baseline: the weighted sum ``average`` and its ``weight``.

    Both have the state's shape: ``()`` for one baseline shared by the whole batch, or the
    distribution's ``batch_shape`` (or any shape that broadcasts to it) for one per member.
    """

    average: object
    weight: object


def _reduced_axes(state_shape, batch_shape):
    """The batch axes a state of ``state_shape`` averages over; raises if it does not
    broadcast to ``batch_shape``."""
    state_shape, batch_shape = tuple(state_shape), tuple(batch_shape)
    offset = len(batch_shape) - len(state_shape)
    error = ValueError(
        f"The moving-average state has shape {state_shape}, which does not broadcast to the "
        f"batch shape {batch_shape}; use initial_state(shape=()) or the batch shape."
    )
    if offset < 0:
        raise error
    axes = list(range(offset))
    for index, size in enumerate(state_shape):
        batch_size = batch_shape[offset + index]
        if size == 1 and batch_size != 1:
            axes.append(offset + index)
        elif size != batch_size:
            raise error
    return tuple(axes)


@dataclasses.dataclass(frozen=True)
class MovingAverageBaseline(Estimator):
    """REINFORCE with a bias-corrected exponential moving average of ``f`` as baseline."""

    decay: float = 0.9
    name = "moving_average_baseline"

    def initial_state(self, backend="tensorflow", dtype="float32", shape=()):
        """A fresh state (no batches seen: the baseline is 0) on ``backend`` ("tensorflow",
        "jax" or a backend module), of ``dtype`` and ``shape`` (``()``: one shared baseline)."""
        if isinstance(backend, str):
            backend = backend_by_name(backend)
        zeros = backend.zeros(tuple(shape), dtype)
        return MovingAverageState(average=zeros, weight=backend.zeros(tuple(shape), dtype))

    def call_with_state(self, function, distribution, state, *, seed, num_samples: int = 1):
        """``(surrogate, new_state)``: the estimate with the baseline held in ``state``, and
        the state updated with this batch (for the next call)."""
        distribution, backend, seed, num_samples = self.prepare_call(
            function, distribution, seed, num_samples)
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(
                f"state must be a MovingAverageState (from initial_state()), got {state!r}."
            )
        surrogate, new_state = self._estimate_with_state(
            function, distribution, backend, seed, num_samples, MovingAverageState(*state))
        return propagate_non_finite(backend, surrogate, distribution), new_state

    def _estimate(self, function, distribution, backend, seed, num_samples):
        surrogate, _ = self._estimate_with_state(
            function, distribution, backend, seed, num_samples, None
        )
        return surrogate

    def _estimate_with_state(self, function, distribution, backend, seed, num_samples, state):
        seeds = sub_seeds(seed, backend, "samples")
        samples, values = draw_and_evaluate(
            function, distribution, backend, seeds["samples"], num_samples
        )
        dtype = backend.dtype_of(values)
        if state is None:
            state = self.initial_state(backend, dtype)
        average = backend.stop_gradient(backend.cast(backend.convert(state.average), dtype))
        weight = backend.stop_gradient(backend.cast(backend.convert(state.weight), dtype))
        state_shape = backend.shape_of(average)
        axes = _reduced_axes(state_shape, backend.shape_of(values)[1:])
        seen = backend.greater(weight, backend.zeros_like(weight))
        safe_weight = backend.where(seen, weight, backend.ones_like(weight))
        baseline = backend.where(seen, average / safe_weight, backend.zeros_like(average))
        log_prob = distribution.log_prob(samples)
        surrogate = score_function_surrogate(backend, values, log_prob, baseline, num_samples)
        batch_mean = backend.reduce_mean(backend.stop_gradient(values), axis=0)
        if axes:
            batch_mean = backend.reduce_mean(batch_mean, axis=axes)
        batch_mean = backend.reshape(batch_mean, state_shape)
        new_state = MovingAverageState(
            average=self.decay * average + (1.0 - self.decay) * batch_mean,
            weight=self.decay * weight + (1.0 - self.decay),
        )
        return surrogate, new_state


def moving_average_baseline(decay: float = 0.9) -> MovingAverageBaseline:
    """REINFORCE with baseline ``a / w``, an exponential moving average of past ``mean f``.

    ``decay`` in ``[0, 1)``: the weight of the old average at each update. Use
    ``est.initial_state(...)`` and ``est.call_with_state(f, q, state, seed=, num_samples=)``
    to carry the average between steps; a plain call ``est(f, q, seed=, num_samples=)``
    uses the initial state (baseline 0). Reference: Mnih & Gregor (2014), NVIL.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)):
        raise TypeError(f"decay must be a number in [0, 1), got {decay!r}.")
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(
            f"decay={decay} must lie in [0, 1): 0 uses the previous batch's mean, values near "
            "1 average over many batches (1 would never update)."
        )
    return MovingAverageBaseline(decay=float(decay))
