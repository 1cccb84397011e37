"""ARM: the augment-REINFORCE-merge estimator for Bernoulli latents.

With ``u ~ Uniform(0, 1)`` per coordinate, the antithetic pair

    b = 1[u < sigmoid(theta)],     b~ = 1[u > sigmoid(-theta)] = 1[1 - u < sigmoid(theta)]

has each member distributed as ``Bernoulli(sigmoid(theta))``, and the gradient with respect
to the logits ``theta`` is

    g_d = (f(b~) - f(b)) (u_d - 1/2)                          (Yin & Zhou, 2019)

(averaged over ``S = num_samples`` independent pairs). The surrogate's value is the mean of
``f`` over both members of every pair, left differentiable w.r.t. what ``f`` closes over:
each member is a draw from ``q``, so its gradient there, ``1/(2S) sum_s (grad f(b_s) + grad
f(b~_s))``, is unbiased for ``E[grad f]``. ``f`` is never differentiated w.r.t. the samples:
two evaluations per pair. Reference: Yin & Zhou (2019), "ARM: Augment-REINFORCE-merge
gradient for stochastic binary networks", ICLR.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from fxgx.core.custom_gradient import custom_gradient
from fxgx.core.random import open_uniform
from fxgx.estimators.base import Estimator, evaluate, sub_seeds


class AntitheticPairs(NamedTuple):
    """``S`` antithetic Bernoulli pairs (gradient-stopped) and ``f`` at both members (left
    differentiable w.r.t. what ``f`` closes over; stop them before using them as weights)."""

    uniform: Any  # u, shape [S] + logits.shape
    first: Any  # b = 1[u < sigmoid(theta)]
    second: Any  # b~ = 1[u > sigmoid(-theta)]
    first_values: Any  # f(b), shape [S] + batch_shape
    second_values: Any  # f(b~)


def complement_is_exact(backend, dtype) -> bool:
    """Whether ``1 - u`` is exact for every ``u`` of ``open_uniform`` in ``dtype``: its grid
    ``(k + 1/2) eps`` is symmetric about 1/2 and representable in float32 and float64
    (``eps <= 2^-23``); half-precision draws are rounded from float32 and are not."""
    return backend.finfo_eps(dtype) <= 2.0**-23


def antithetic_pairs(function, distribution, backend, seed, num_samples) -> AntitheticPairs:
    """Draw ``num_samples`` antithetic pairs from a Bernoulli and evaluate ``f`` once on all
    ``2 S`` samples."""
    logits = backend.stop_gradient(distribution.logits)
    dtype = backend.dtype_of(logits)
    seeds = sub_seeds(seed, backend, "uniform")
    shape = (num_samples,) + tuple(backend.shape_of(logits))
    uniform = backend.stop_gradient(open_uniform(backend, shape, seeds["uniform"], dtype))
    probability = backend.sigmoid(logits)
    first = backend.cast(backend.less(uniform, probability), dtype)
    if complement_is_exact(backend, dtype):
        # 1 - u is exact on open_uniform's grid, so b~ = 1[1 - u < sigmoid(theta)] needs no
        # second sigmoid (one array fewer to make and read).
        second = backend.cast(backend.less(1.0 - uniform, probability), dtype)
    else:
        # Half precision: 1 - u would round, so 1[u > sigmoid(-theta)].
        second = backend.cast(backend.greater(uniform, backend.sigmoid(-logits)), dtype)
    both = backend.concat([first, second], axis=0)
    both = backend.stop_gradient(both)
    values = evaluate(function, both, distribution, backend, 2 * num_samples)
    return AntitheticPairs(uniform, first, second, values[:num_samples], values[num_samples:])


def pair_surrogate(backend, distribution, pairs: AntitheticPairs, per_pair_gradient):
    """``custom_gradient`` with ``fx`` = mean of ``f`` over all pairs (differentiable w.r.t.
    what ``f`` closes over), ``x`` = logits and ``gx`` = the mean over pairs of
    ``per_pair_gradient`` (shape ``[S] + logits.shape``, stopped here)."""
    value = backend.reduce_mean(0.5 * (pairs.first_values + pairs.second_values), axis=0)
    gradient = backend.stop_gradient(backend.reduce_mean(per_pair_gradient, axis=0))
    logits = distribution.logits
    rank = len(backend.shape_of(logits))
    event_axes = tuple(range(rank - distribution.event_ndims, rank))
    return custom_gradient(value, gradient, logits, axis=event_axes,
                           fx_gx_manually_stopped=True)


def expand_over_event(backend, values, event_ndims):
    """``[S] + batch_shape`` values with ``event_ndims`` trailing unit axes appended."""
    for _ in range(event_ndims):
        values = backend.expand_dims(values, -1)
    return values


@dataclasses.dataclass(frozen=True)
class Arm(Estimator):
    """ARM for Bernoulli latents (gradient w.r.t. the logits). See ``arm``."""

    name = "arm"
    supports = ("bernoulli",)

    def _estimate(self, function, distribution, backend, seed, num_samples):
        pairs = antithetic_pairs(function, distribution, backend, seed, num_samples)
        difference = expand_over_event(
            backend, pairs.second_values - pairs.first_values, distribution.event_ndims
        )
        per_pair = difference * (pairs.uniform - 0.5)
        return pair_surrogate(backend, distribution, pairs, per_pair)


def arm() -> Arm:
    """ARM: ``g_d = (f(1[u > sigmoid(-theta)]) - f(1[u < sigmoid(theta)])) (u_d - 1/2)``.

    Unbiased, for Bernoulli latents of any event shape; ``num_samples`` antithetic pairs
    (two evaluations of ``f`` each). Reference: Yin & Zhou (2019), ICLR.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]`` w.r.t. the logits, and ``E_q[grad f]`` w.r.t. what
        ``f`` closes over.
    """
    return Arm()
