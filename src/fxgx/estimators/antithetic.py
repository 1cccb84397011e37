"""Antithetic Bernoulli pairs: the draws ARM, DisARM and DisARM-VIMCO share.

With ``u ~ Uniform(0, 1)`` per coordinate, the pair

    b = 1[u < sigmoid(theta)],     b~ = 1[u > sigmoid(-theta)] = 1[1 - u < sigmoid(theta)]

has each member distributed as ``Bernoulli(sigmoid(theta))`` (Yin & Zhou, 2019). ``f`` is
evaluated once on all ``2 S`` members, and ``pair_surrogate`` hands a per-pair gradient to the
primitive with the mean of ``f`` over both members as the value (left differentiable w.r.t.
what ``f`` closes over: each member is a draw from ``q``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fxgx.core.arrays import shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import open_uniform
from fxgx.distributions.sampling import bits_above, bits_below
from fxgx.estimators.sampling import evaluate, sub_seeds


class AntitheticPairs(NamedTuple):
    """``S`` antithetic Bernoulli pairs (gradient-stopped) and ``f`` at both members (left
    differentiable w.r.t. what ``f`` closes over; stop them before using them as weights)."""

    uniform: Any  # u, shape [S] + logits.shape
    first: Any  # b = 1[u < sigmoid(theta)]
    second: Any  # b~ = 1[u > sigmoid(-theta)]
    first_values: Any  # f(b), shape [S] + batch_shape
    second_values: Any  # f(b~)


def complement_is_exact(xp, dtype) -> bool:
    """Whether ``1 - u`` is exact for every ``u`` of ``open_uniform`` in ``dtype``: its grid
    ``(k + 1/2) eps`` is symmetric about 1/2 and representable in float32 and float64
    (``eps <= 2^-23``); half-precision draws are rounded from float32 and are not."""
    return xp.finfo(dtype).eps <= 2.0**-23


def antithetic_pairs(framework, function, distribution, seed, num_samples) -> AntitheticPairs:
    """Draw ``num_samples`` antithetic pairs from a Bernoulli and evaluate ``f`` once on all
    ``2 S`` samples."""
    xp = framework.xp
    logits = framework.stop_gradient(distribution.logits)
    dtype = logits.dtype
    seeds = sub_seeds(framework, seed, "uniform")
    shape = (num_samples,) + shape_of(logits)
    uniform = framework.stop_gradient(open_uniform(framework, shape, seeds["uniform"], dtype))
    probability = framework.sigmoid(logits)
    first = bits_below(xp, uniform, probability)
    if complement_is_exact(xp, dtype):
        # 1 - u is exact on open_uniform's grid, so b~ = 1[1 - u < sigmoid(theta)] needs no
        # second sigmoid (one array fewer to make and read).
        second = bits_below(xp, 1.0 - uniform, probability)
    else:
        # Half precision: 1 - u would round, so 1[u > sigmoid(-theta)].
        second = bits_above(xp, uniform, framework.sigmoid(-logits))
    both = framework.stop_gradient(xp.concat([first, second], axis=0))
    values = evaluate(framework, function, both, distribution, 2 * num_samples)
    return AntitheticPairs(uniform, first, second, values[:num_samples, ...],
                          values[num_samples:, ...])


def pair_surrogate(framework, distribution, pairs: AntitheticPairs, per_pair_gradient):
    """``custom_gradient`` with ``fx`` = mean of ``f`` over all pairs (differentiable w.r.t.
    what ``f`` closes over), ``x`` = logits and ``gx`` = the mean over pairs of
    ``per_pair_gradient`` (shape ``[S] + logits.shape``, stopped here)."""
    xp = framework.xp
    value = xp.mean(0.5 * (pairs.first_values + pairs.second_values), axis=0)
    gradient = framework.stop_gradient(xp.mean(per_pair_gradient, axis=0))
    logits = distribution.logits
    rank = len(shape_of(logits))
    event_axes = tuple(range(rank - distribution.event_ndims, rank))
    return with_gradient(framework, value, gradient, logits, axis=event_axes,
                         fx_gx_manually_stopped=True)
