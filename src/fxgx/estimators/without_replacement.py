"""Samples drawn without replacement over the joint categorical space, and the probabilities
of an unordered set of them: what ``unordered_set`` and ``sum_and_sample`` share.

A one-hot categorical distribution with event shape ``E + [K]`` is a distribution over the
``K^D`` joint states of its ``D = prod(E)`` variables (one per batch member). Both
estimators (``fxgx.estimators.unordered_set``, ``fxgx.estimators.sum_and_sample``) draw ``k``
*distinct* joint states and evaluate ``f`` once on each.

Sampling. Perturbing every joint state's log-probability with independent Gumbel noise and
keeping the ``k`` largest gives an ordered sample without replacement (Gumbel-top-k). For a
factorised distribution the ``K^D`` perturbed values need not be formed: stochastic beam
search (Kool, van Hoof & Welling 2019) extends ``k`` partial states one variable at a time,
giving each extension a Gumbel conditioned so that the largest among the extensions of a
partial state equals that partial state's own perturbed value, and keeps the ``k`` largest.
Its output has exactly the Gumbel-top-k distribution over the joint space. Without the
noise the same search is exact beam search, which for independent variables returns the
``k`` most probable joint states (a state whose prefix misses the top ``k`` prefixes has
``k`` better states that share its suffix). Cost: ``D`` steps over ``k K`` candidates.

Unordered set estimator (Kool, van Hoof & Welling 2020). For the unordered sample ``S`` of
size ``k`` drawn without replacement from ``p``, let ``p(S)`` be its probability (the sum,
over the ``k!`` orders, of the probability of drawing it in that order), ``p^{D\\A}`` the
distribution ``p`` restricted to the domain without the states ``A`` (and renormalised), and

    R(S, s) = p^{D\\{s}}(S \\ {s}) / p(S)                            (leave-one-out ratio),
    R^{D\\{s}}(S, s') = p^{D\\{s,s'}}(S \\ {s,s'}) / p^{D\\{s}}(S \\ {s})  (s' != s;  1 if s' = s).

Then ``sum_{s in S} p(s) R(S, s) f(s)`` estimates ``E[f]`` without bias, and

    g = sum_{s in S} p(s) R(S, s) grad log p(s) (f(s) - B(S, s)),
    B(S, s) = sum_{s' in S} p(s') R^{D\\{s}}(S, s') f(s')

estimates ``grad E[f]`` without bias for ``k >= 2``: ``B(S, s)`` is itself an unbiased
estimate of ``E[f]`` given that ``s`` was drawn first (``p(s) f(s)`` plus the unordered set
estimate over the other ``k - 1`` states under ``p^{D\\{s}}``), so its term has expectation
``sum_s grad p(s) E[f] = 0``. Both weight vectors sum to one.

``p(S)`` and the ratios are computed exactly by enumerating the ``k!`` orders of ``S`` (in
log space): an order ``pi`` contributes ``prod_i p(pi_i) / (r + sum_{j >= i} p(pi_j))``,
where ``r = 1 - sum_{s in S} p(s)`` is the mass outside ``S``. Summing only the factors
``i >= 2`` over the orders that start with ``s`` gives ``p^{D\\{s}}(S \\ {s})``, and the
factors ``i >= 3`` over the orders that start with ``s, s'`` give ``p^{D\\{s,s'}}(S \\ {s,
s'})``, so one pass over the orders yields all three. The cost grows as ``k! k^2`` per batch
member, so ``k`` is limited to ``MAXIMUM_SET_SIZE``; the paper's alternative, a numerical
integral over the Gumbel threshold, scales to larger ``k`` at the price of quadrature error.
Writing the denominators as ``r`` plus the suffix sums (not ``1`` minus the prefix sums) makes
the computation exact when ``S`` is the whole space (``r = 0``).

Sum-and-sample (Liu, Regier, Tripuraneni, Jordan & McAuliffe 2019). Sum ``f`` exactly over
the set ``C`` of the ``k - 1`` most probable joint states and sample one state ``z`` from
``p`` restricted to the rest:

    E[f] ~= sum_{c in C} p(c) f(c) + (1 - p(C)) f(z),
    g = sum_{c in C} p(c) f(c) grad log p(c) + (1 - p(C)) f(z) grad log p(z).

``z`` is the first state of a Gumbel-top-k sample that is not in ``C`` (the largest
perturbed value outside ``C``: a state outside ``C`` with a larger one would have ranked
before it), so one stochastic beam search of width ``k`` draws it.

References: Kool, van Hoof & Welling (2020), "Estimating gradients for discrete random
variables by sampling without replacement", ICLR; Kool, van Hoof & Welling (2019),
"Stochastic beams and where to find them: the Gumbel-top-k trick for sampling sequences
without replacement", ICML; Liu et al. (2019), "Rao-Blackwellized stochastic gradients for
discrete distributions", ICML.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from fxgx.backends import get_framework
from fxgx.core.arrays import exclusive_cumulative_sum, one_hot, shape_of
from fxgx.core.random import gumbel_noise
from fxgx.core.seeds import canonical_seed
from fxgx.distributions import (
    Bernoulli,
    OneHotCategorical,
    as_fxgx_distribution,
    framework_of_distribution,
)

#: The largest set size of the unordered set estimator: its probabilities enumerate the
#: ``k!`` orders of the set (720 at ``k = 6``).
MAXIMUM_SET_SIZE = 6


class UnorderedSetTerms(NamedTuple):
    """The probabilities of an unordered sample without replacement that the estimator uses.

    Attributes:
        log_set_probability: ``log p(S)``, shape ``[...]``.
        weights: ``p(s) R(S, s)`` for each ``s`` in ``S``, shape ``[..., k]`` (sums to 1).
        baseline_weights: ``p(s') R^{D\\{s}}(S, s')`` at ``[..., s, s']``, shape
            ``[..., k, k]`` (each row sums to 1; the diagonal is ``p(s)``).
    """

    log_set_probability: Any
    weights: Any
    baseline_weights: Any


# ------------------------------------------------------------------------ joint states


def flat_log_probabilities(framework, distribution):
    """Stopped per-variable log-probabilities ``[B, D, K]``, with the batch shape and the
    event shape of a one-hot categorical (``E + [K]``) or Bernoulli (``E``, two classes:
    0 and 1) distribution."""
    xp = framework.xp
    logits = framework.stop_gradient(distribution.logits)
    batch_shape = tuple(distribution.batch_shape)
    event_shape = tuple(distribution.event_shape)
    if any(size is None for size in batch_shape + event_shape):
        raise ValueError(
            f"sampling without replacement needs static shapes; the logits have shape "
            f"{tuple(shape_of(logits))}."
        )
    batch_size = math.prod(batch_shape)
    if distribution.kind == "bernoulli":
        flat = xp.reshape(logits, (batch_size, math.prod(event_shape)))
        log_probabilities = xp.stack(
            [framework.log_sigmoid(-flat), framework.log_sigmoid(flat)], axis=-1)
        return log_probabilities, batch_shape, event_shape
    flat = xp.reshape(logits, (batch_size, math.prod(event_shape[:-1]), event_shape[-1]))
    return framework.log_softmax(flat), batch_shape, event_shape


def joint_space(distribution_kind, event_shape):
    """``(K, D)``: classes per variable and variables of one joint state."""
    if distribution_kind == "bernoulli":
        return 2, math.prod(event_shape)
    return event_shape[-1], math.prod(event_shape[:-1])


def check_set_size(num_samples, distribution_kind, event_shape, argument="num_samples"):
    num_classes, num_variables = joint_space(distribution_kind, event_shape)
    num_states = num_classes**num_variables
    if num_samples > num_states:
        raise ValueError(
            f"{argument}={num_samples} distinct states were asked for, but the distribution has "
            f"only {num_classes}^{num_variables} = {num_states} joint states."
        )


def beam_search(framework, log_probabilities, beam_size, seed):
    """The ``beam_size`` largest joint states of ``[B, D, K]`` per-variable log-probabilities,
    by (perturbed, when ``seed`` is given) log-probability, in decreasing order.

    Returns one-hot states ``[B, k, D, K]`` and their perturbed (or plain) log-probabilities
    ``[B, k]``. With a seed this is stochastic beam search: each extension of a partial state
    gets a Gumbel with location its log-probability, shifted so that the largest over the
    ``K`` extensions equals the partial state's own perturbed value."""
    xp = framework.xp
    dtype = log_probabilities.dtype
    batch_size, num_variables, num_classes = shape_of(log_probabilities)
    noise = None
    if seed is not None:
        noise = gumbel_noise(framework, (num_variables, batch_size, beam_size, num_classes), seed,
                             dtype)
    # Only the first beam entry is a real (empty) partial state at the start.
    start = np.full((1, beam_size), -np.inf)
    start[0, 0] = 0.0
    scores = xp.broadcast_to(xp.asarray(start, dtype=dtype), (batch_size, beam_size))
    log_prob = xp.zeros((batch_size, beam_size), dtype=dtype)
    states = xp.zeros((batch_size, beam_size, num_variables, num_classes), dtype=dtype)
    minus_infinity = xp.asarray(-np.inf, dtype=dtype)
    for variable in range(num_variables):
        valid = xp.expand_dims(xp.isfinite(scores), axis=-1)
        candidates = (xp.expand_dims(log_prob, axis=-1)
                      + xp.expand_dims(log_probabilities[:, variable, :], axis=1))
        if noise is None:
            candidate_scores = candidates
        else:
            target = xp.expand_dims(xp.where(valid[..., 0], scores, 0.0), axis=-1)
            unconditioned = candidates + noise[variable, ...]
            largest, _ = framework.top_k(unconditioned, 1)
            # -log(exp(-T) - exp(-Z) + exp(-G)) = T - softplus(v), stably.
            gap = xp.minimum(unconditioned - largest, 0.0)
            shift = target - unconditioned + xp.log1p(-xp.exp(gap))
            candidate_scores = target - framework.softplus(shift)
        candidate_scores = xp.where(valid, candidate_scores, minus_infinity)
        flat = xp.reshape(candidate_scores, (batch_size, beam_size * num_classes))
        scores, index = framework.top_k(flat, beam_size)
        parent = one_hot(xp, index // num_classes, beam_size, dtype)  # [B, k, k]
        chosen = one_hot(xp, index % num_classes, num_classes, dtype)  # [B, k, K]
        log_prob = (xp.sum(parent * xp.expand_dims(log_prob, axis=1), axis=-1)
                    + xp.sum(chosen * xp.expand_dims(log_probabilities[:, variable, :], axis=1),
                             axis=-1))
        position = np.zeros((num_variables, 1), np.float64)
        position[variable] = 1.0
        states = (xp.sum(parent[:, :, :, None, None] * xp.expand_dims(states, axis=1), axis=2)
                  + xp.expand_dims(chosen, axis=2) * xp.asarray(position, dtype=dtype))
    return states, scores


def to_sample_layout(xp, states, distribution_kind, batch_shape, event_shape):
    """``[B, k, D, K]`` states as ``[k] + batch_shape + event_shape`` samples (Bernoulli:
    the indicator of class 1)."""
    beam_size = shape_of(states)[1]
    leading_first = xp.permute_dims(states, (1, 0, 2, 3))
    if distribution_kind == "bernoulli":
        leading_first = leading_first[..., 1]
    return xp.reshape(leading_first, (beam_size,) + batch_shape + event_shape)


def to_batch_first(xp, values):
    """``[k] + batch_shape`` values as ``[B, k]``."""
    beam_size = shape_of(values)[0]
    return xp.permute_dims(xp.reshape(values, (beam_size, -1)), (1, 0))


def to_sample_first(xp, values, batch_shape):
    """``[B, k]`` values as ``[k] + batch_shape``."""
    beam_size = shape_of(values)[1]
    return xp.reshape(xp.permute_dims(values, (1, 0)), (beam_size,) + batch_shape)


def as_discrete(distribution, argument="distribution"):
    converted = as_fxgx_distribution(distribution)
    if not isinstance(converted, (OneHotCategorical, Bernoulli)):
        raise TypeError(
            f"{argument} must be a one-hot categorical or Bernoulli distribution, got "
            f"{type(distribution).__name__}."
        )
    return converted


def sample_without_replacement(distribution, num_samples: int, *, seed):
    """``num_samples`` distinct joint states, by stochastic beam search (Gumbel-top-k).

    Each batch member's states are the ``k`` joint states with the largest Gumbel-perturbed
    log-probabilities, in decreasing order of that value: an ordered sample without
    replacement from the distribution over the ``K^D`` joint states. The perturbed values of
    the ``K^D`` states are never formed; the search costs ``D`` steps over ``k K``
    candidates. Reference: Kool, van Hoof & Welling (2019), "Stochastic beams and where to
    find them", ICML.

    Args:
        distribution: a one-hot categorical distribution (fxgx's or TensorFlow
            Probability's) with static shapes.
        num_samples: ``k``, at most the number of joint states ``K^D``.
        seed: an int, a TensorFlow stateless seed or a JAX key.

    Returns:
        One-hot samples of shape ``[k] + batch_shape + event_shape`` (stopped), in the
        logits' dtype.

    Raises:
        TypeError: ``distribution`` is not one-hot categorical or ``num_samples`` not an int.
        ValueError: ``num_samples`` is below 1 or above ``K^D``.
    """
    distribution = as_discrete(distribution)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be an int, got {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
    framework = framework_of_distribution(distribution, seed=seed)
    seed = canonical_seed(seed, framework)
    log_probabilities, batch_shape, event_shape = flat_log_probabilities(framework,
                                                                         distribution)
    check_set_size(num_samples, distribution.kind, event_shape)
    states, _ = beam_search(framework, log_probabilities, num_samples, seed)
    samples = to_sample_layout(framework.xp, states, distribution.kind, batch_shape, event_shape)
    return framework.stop_gradient(samples)


# ------------------------------------------------------------- unordered set probabilities


def _orders(set_size):
    """The ``k!`` orders of ``range(k)`` in lexicographic order, as one-hot ``[k!, k, k]``
    (``[order, position, element]``), and, for each ``s``, the other elements as one-hot
    ``[k, k - 1, k]``."""
    orders = np.array(list(itertools.permutations(range(set_size))), np.int64)
    one_hot = np.eye(set_size)[orders]
    others = np.array([[t for t in range(set_size) if t != s] for s in range(set_size)],
                      np.int64).reshape(set_size, set_size - 1)
    return one_hot, np.eye(set_size)[others]


def unordered_set_terms(log_probabilities, *, framework=None) -> UnorderedSetTerms:
    """``log p(S)`` and the unordered set estimator's weights for sets of distinct states.

    For the set ``S`` of ``k`` distinct states with log-probabilities ``log p(s)`` (a sample
    without replacement from ``p``), enumerating the ``k!`` orders ``pi`` of ``S``:

        p(S) = sum_pi prod_i p(pi_i) / (r + sum_{j >= i} p(pi_j)),   r = 1 - sum_{s in S} p(s),

    the orders that start with ``s`` give ``p^{D\\{s}}(S \\ {s})`` (factors ``i >= 2``) and
    those that start with ``s, s'`` give ``p^{D\\{s,s'}}(S \\ {s, s'})`` (factors ``i >= 3``).
    Then ``weights[s] = p(s) R(S, s)`` with ``R(S, s) = p^{D\\{s}}(S \\ {s}) / p(S)``, and
    ``baseline_weights[s, s'] = p(s') R^{D\\{s}}(S, s')``: ``p(s') p^{D\\{s,s'}}(S \\ {s,
    s'}) / p^{D\\{s}}(S \\ {s})`` off the diagonal and ``p(s)`` on it. Reference: Kool, van
    Hoof & Welling (2020), "Estimating gradients for discrete random variables by sampling
    without replacement", ICLR.

    Args:
        log_probabilities: ``[..., k]`` log-probabilities of ``k`` distinct states of one
            distribution (``2 <= k <= MAXIMUM_SET_SIZE``; ``k = 1`` gives ``weights = 1`` and
            ``baseline_weights = p``), finite, with a static shape.
        framework: the framework of the array (default: told from it).

    Returns:
        An ``UnorderedSetTerms``, in the dtype of ``log_probabilities``.

    Raises:
        ValueError: ``k`` is above ``MAXIMUM_SET_SIZE`` or the shape is not static.
    """
    if framework is None:
        framework = get_framework(log_probabilities)
    xp = framework.xp
    shape = tuple(shape_of(log_probabilities))
    if not shape or any(size is None for size in shape):
        raise ValueError(f"log_probabilities needs a static shape [..., k], got {shape}.")
    set_size = shape[-1]
    if set_size > MAXIMUM_SET_SIZE:
        raise ValueError(
            f"the unordered set estimator enumerates the k! orders of its set; k = {set_size} "
            f"is above the maximum of {MAXIMUM_SET_SIZE}: use fewer samples."
        )
    dtype = log_probabilities.dtype
    lead = shape[:-1]
    flat = xp.reshape(log_probabilities, (-1, set_size))
    batch_size = math.prod(lead)
    probabilities = xp.exp(flat)
    outside = xp.maximum(1.0 - xp.sum(probabilities, axis=-1, keepdims=True),
                              0.0)
    if set_size == 1:
        weights = xp.ones_like(flat)
        baseline = xp.expand_dims(probabilities, axis=-1)
        log_set = flat[:, 0] - xp.log(outside[:, 0] + probabilities[:, 0])
        return UnorderedSetTerms(xp.reshape(log_set, lead),
                                 xp.reshape(weights, shape),
                                 xp.reshape(baseline, shape + (1,)))
    orders, others = _orders(set_size)
    num_orders = orders.shape[0]
    ordered = xp.sum(xp.asarray(orders, dtype=dtype) * flat[:, None, None, :],
                     axis=-1)  # [B, k!, k]
    ordered_probabilities = xp.exp(ordered)
    remaining = (exclusive_cumulative_sum(xp, ordered_probabilities, axis=-1, reverse=True)
                 + ordered_probabilities + xp.expand_dims(outside, axis=-1))
    factors = ordered - xp.log(remaining)
    from_first = xp.sum(factors, axis=-1)
    from_second = xp.sum(factors[:, :, 1:], axis=-1)
    from_third = xp.sum(factors[:, :, 2:], axis=-1)
    log_set = framework.logsumexp(from_first, axis=-1)  # [B]
    leave_one_out = framework.logsumexp(
        xp.reshape(from_second, (batch_size, set_size, num_orders // set_size)),
        axis=-1)  # [B, k]: log p^{D\s}(S \ s)
    leave_two_out = framework.logsumexp(
        xp.reshape(from_third, (batch_size, set_size, set_size - 1,
                                     num_orders // (set_size * (set_size - 1)))),
        axis=-1)  # [B, k, k - 1]: log p^{D\{s, s'}}(S \ {s, s'}), s' the others of s
    weights = xp.exp(flat + leave_one_out - xp.expand_dims(log_set, axis=-1))
    others_array = xp.asarray(others, dtype=dtype)  # [k, k - 1, k]
    log_others = xp.sum(others_array * flat[:, None, None, :], axis=-1)
    other_weights = xp.exp(log_others + leave_two_out
                                - xp.expand_dims(leave_one_out, axis=-1))  # [B, k, k - 1]
    baseline = (xp.sum(xp.expand_dims(other_weights, axis=-1) * others_array, axis=2)
                + xp.asarray(np.eye(set_size), dtype=dtype) * probabilities[:, :, None])
    return UnorderedSetTerms(xp.reshape(log_set, lead), xp.reshape(weights, shape),
                             xp.reshape(baseline, shape + (set_size,)))
