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

from fxgx.core.arrays import as_dtype, shape_of
from fxgx.distributions import Distribution, framework_of_distribution
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import draw_and_evaluate, sub_seeds
from fxgx.estimators.score_function import score_function_surrogate
from fxgx.estimators.streaming import cannot_stream


class MovingAverageState(NamedTuple):
    """State of a moving-average baseline: the weighted sum ``average`` and its ``weight``.

    Both have the state's shape: ``()`` for one baseline shared by the whole batch, or the
    distribution's ``batch_shape`` (or any shape that broadcasts to it) for one per member.

    Attributes:
        average: ``a``, the decayed sum of past batch means of ``f``.
        weight: ``w``, the decayed total weight, so that ``a / w`` is the baseline.
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
        f"batch shape {batch_shape}; use init(q, shape=()) or the batch shape."
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
class MovingAverageBaseline(Estimator, card="moving_average_baseline"):
    """REINFORCE with a bias-corrected exponential moving average of ``f`` as baseline.

    Explicit state: ``state = est.init(q)``, then ``surrogate, state, info = est.apply(state,
    f, q, seed=, num_samples=)`` per step; ``info["baseline"]`` is the baseline ``a / w``
    that step used. A plain call uses the initial state (baseline 0).

    Attributes:
        decay: the weight of the old average at each update, in ``[0, 1)``:
            ``a <- decay a + (1 - decay) mean_s f(z_s)``.
    """

    decay: float = 0.9
    streaming = cannot_stream("it has state; call apply() on batches of samples instead")

    def init(self, distribution, *, shape=(), dtype=None) -> MovingAverageState:
        """A fresh state (no batches seen, so the baseline is 0).

        Args:
            distribution: the distribution the estimator will be applied to; it gives the
                framework, and the dtype unless ``dtype`` is given.
            shape: the state's shape: ``()`` (default) for one baseline shared by the batch,
                or the batch shape (or one that broadcasts to it) for one per member.
            dtype: the state's dtype; by default the distribution's (required for a
                distribution that does not state one).

        Returns:
            A :class:`MovingAverageState` of zeros.

        Raises:
            TypeError: the dtype cannot be told from the distribution and was not given.
        """
        converted = self._check_distribution(distribution)
        framework = framework_of_distribution(converted)
        if dtype is None:
            if not isinstance(converted, Distribution):
                raise TypeError(
                    f"Cannot tell the state's dtype from {type(distribution).__name__}; pass "
                    "init(distribution, dtype='float32') (or the dtype f returns)."
                )
            dtype = converted.dtype
        return _zero_state(framework, dtype, shape)

    def _check_state(self, state):
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(
                f"state must be a MovingAverageState (from init()), got {state!r}."
            )
        return MovingAverageState(*state)

    def _apply(self, state, call, with_info):
        """One step: the surrogate with baseline ``b = a / w`` from ``state`` (0 while
        ``w = 0``), and the state updated with this batch's mean of ``f``."""
        del with_info  # the information is the baseline, computed anyway
        framework, function, distribution, seed, num_samples = call
        xp = framework.xp
        seeds = sub_seeds(framework, seed, "samples")
        samples, values = draw_and_evaluate(framework, function, distribution,
                                            seeds["samples"], num_samples)
        dtype = values.dtype
        if state is None:
            state = _zero_state(framework, dtype, ())
        average = framework.stop_gradient(xp.astype(xp.asarray(state.average), dtype))
        weight = framework.stop_gradient(xp.astype(xp.asarray(state.weight), dtype))
        state_shape = shape_of(average)
        axes = _reduced_axes(state_shape, shape_of(values)[1:])
        seen = xp.greater(weight, xp.zeros_like(weight))
        safe_weight = xp.where(seen, weight, xp.ones_like(weight))
        baseline = xp.where(seen, average / safe_weight, xp.zeros_like(average))
        log_prob = distribution.log_prob(samples)
        surrogate = score_function_surrogate(framework, values, log_prob, baseline, num_samples)
        batch_mean = xp.mean(framework.stop_gradient(values), axis=0)
        if axes:
            batch_mean = xp.mean(batch_mean, axis=axes)
        batch_mean = xp.reshape(batch_mean, state_shape)
        new_state = MovingAverageState(
            average=self.decay * average + (1.0 - self.decay) * batch_mean,
            weight=self.decay * weight + (1.0 - self.decay),
        )
        return surrogate, new_state, {"baseline": baseline}


def _zero_state(framework, dtype, shape) -> MovingAverageState:
    """A fresh state of zeros (no batches seen: the baseline is 0)."""
    xp = framework.xp
    dtype = as_dtype(xp, dtype)
    return MovingAverageState(average=xp.zeros(tuple(shape), dtype=dtype),
                              weight=xp.zeros(tuple(shape), dtype=dtype))


def moving_average_baseline(decay: float = 0.9) -> MovingAverageBaseline:
    """REINFORCE with baseline ``a / w``, an exponential moving average of past ``mean f``.

    Carry the average between steps with the explicit-state form, ``state = est.init(q)``
    and ``surrogate, state, info = est.apply(state, f, q, seed=, num_samples=)``; a plain
    call ``est(f, q, seed=, num_samples=)`` uses the initial state (baseline 0).
    Reference: Mnih & Gregor (2014), NVIL.

    Args:
        decay: the weight of the old average at each update, in ``[0, 1)``.

    Returns:
        A :class:`MovingAverageBaseline`.

    Raises:
        TypeError: ``decay`` is not a number.
        ValueError: ``decay`` is outside ``[0, 1)``.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)):
        raise TypeError(f"decay must be a number in [0, 1), got {decay!r}.")
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(
            f"decay={decay} must lie in [0, 1): 0 uses the previous batch's mean, values near "
            "1 average over many batches (1 would never update)."
        )
    return MovingAverageBaseline(decay=float(decay))
