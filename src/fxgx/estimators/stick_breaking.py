"""The stick-breaking coupling of two categorical draws (Dong, Mnih & Tucker, 2021).

A ``K``-class variable ``z ~ Categorical(p)``, ``p = softmax(theta)``, is the first ``k``
of a sequence of ``K - 1`` binary decisions with ``b_k = 1`` (``z = K - 1`` when all are 0),

    b_k ~ Bernoulli(sigmoid(eta_k)),   sigmoid(eta_k) = p_k / sum_{j >= k} p_j,
    eta_k = theta_k - logsumexp(theta_{k+1}, ..., theta_{K-1}),

(``b_k`` is the decision "stop at class ``k``" given that the sequence got to ``k``). The
coupling draws one ``u_k ~ Uniform(0, 1)`` per decision and runs two sequences on it, with
DisARM's antithetic pair at every decision:

    b_k = 1[u_k < sigmoid(eta_k)],    b~_k = 1[u_k > sigmoid(-eta_k)] = 1[1 - u_k < sigmoid(eta_k)].

Each sequence alone is a draw from ``q``; together they tend to stop at different classes.
A sequence is *alive* at decision ``k`` when all its earlier decisions are 0 (``k <= z``);
its decisions after ``z`` do not change ``z``. The joint probability of the pair is, for
``n < m`` (with ``pi_k = sigmoid(eta_k)``, ``pi_{K-1} = 1``),

    P(z = n, z~ = m) = prod_{i<n} max(0, 1 - 2 pi_i) * min(pi_n, 1 - pi_n)
                       * prod_{n<i<m} (1 - pi_i) * pi_m,

symmetric in ``(n, m)``, and ``P(z = z~ = n) = prod_{i<n} max(0, 1 - 2 pi_i) max(0, 2 pi_n - 1)``
(``K - 1``: the product alone). ``fxgx.estimators.categorical_disarm`` and
``fxgx.estimators.stick_breaking_disarm`` build on this pair.

The order of the classes is a free choice. In the given order two sequences can part at
every class only if ``pi_i < 1/2`` for every ``i < K - 2``; ``coupled_pairs(...,
ascending=True)`` runs the decisions over the classes sorted by ascending logit, which
guarantees it (then ``pi_i <= p_i / (p_i + p_{i+1} + p_{i+2}) <= 1/3`` for ``i <= K - 3``).
Reference: Dong, Mnih & Tucker (2021), "Coupled gradient estimators for discrete latent
variables", NeurIPS.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fxgx.core.arrays import exclusive_cumulative_sum, expand_trailing, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.core.random import open_uniform
from fxgx.distributions.sampling import bits_above, bits_below
from fxgx.estimators.sampling import evaluate, sub_seeds


def stick_breaking_logits(framework, logits):
    """The logits of the ``K - 1`` stick-breaking decisions of a categorical.

    ``eta_k = theta_k - logsumexp(theta_{k+1:})``, so ``sigmoid(eta_k) = p_k / sum_{j>=k} p_j``
    with ``p = softmax(theta)``; differentiable w.r.t. ``theta``.

    Args:
        framework: the framework.
        logits: ``theta``, shape ``[..., K]`` with ``K >= 2``.

    Returns:
        ``eta``, shape ``[..., K - 1]``, of the logits' dtype.
    """
    num_classes = shape_of(logits)[-1]
    columns = [
        logits[..., k] - framework.logsumexp(logits[..., k + 1:], axis=-1)
        for k in range(num_classes - 1)
    ]
    return framework.xp.stack(columns, axis=-1)


def categorical_from_decisions(xp, decisions):
    """The class a sequence of stick-breaking decisions stops at, and where it is alive.

    Args:
        xp: the namespace of ``decisions``.
        decisions: ``b``, 0/1 floats of shape ``[..., K - 1]``.

    Returns:
        ``(one_hot, alive)``: ``one_hot`` of shape ``[..., K]`` marks the first ``k`` with
        ``b_k = 1`` (class ``K - 1`` when there is none); ``alive`` (``[..., K - 1]``) is 1
        where every earlier decision is 0, i.e. for ``k <= z``.
    """
    rank = len(shape_of(decisions))
    earlier = exclusive_cumulative_sum(xp, decisions, axis=rank - 1)
    alive = xp.astype(xp.equal(earlier, 0.0), decisions.dtype)
    stops = alive * decisions
    last = 1.0 - xp.sum(stops, axis=-1, keepdims=True)
    return xp.concat([stops, last], axis=-1), alive


def ascending_permutation(xp, logits):
    """The permutation that sorts each variable's classes by ascending logit (ties in the
    given order), as a 0/1 matrix.

    Args:
        xp: the namespace of ``logits``.
        logits: shape ``[..., K]``.

    Returns:
        ``P``, shape ``[..., K, K]``, with ``P[..., k, r] = 1`` when class ``k`` is the
        ``r``-th smallest: sorted logits are ``sum_k logits_k P[k, r]`` and a one-hot ``s`` in
        sorted order is ``sum_r P[k, r] s_r`` in the given order.
    """
    dtype = logits.dtype
    num_classes = shape_of(logits)[-1]
    row = xp.expand_dims(logits, axis=-1)  # theta_k along axis -2
    column = xp.expand_dims(logits, axis=-2)  # theta_j along axis -1
    index = xp.arange(num_classes, dtype=dtype)
    earlier = xp.less(xp.expand_dims(index, axis=0), xp.expand_dims(index, axis=1))
    below = xp.astype(xp.less(column, row), dtype)
    tied_earlier = xp.astype(xp.equal(column, row), dtype) * xp.astype(earlier, dtype)
    rank = xp.sum(below + tied_earlier, axis=-1)  # [..., K]
    return xp.astype(xp.equal(xp.expand_dims(rank, axis=-1), index), dtype)


class CoupledCategoricalPairs(NamedTuple):
    """``S`` coupled categorical pairs (gradient-stopped) and ``f`` at both members (left
    differentiable w.r.t. what ``f`` closes over; stop them before using them as weights).
    The decisions are in the coupling's class order; the one-hot samples in the given one."""

    decision_logits: Any  # eta, stopped, shape batch_shape + event + [K - 1]
    first_decisions: Any  # b, shape [S] + batch_shape + event + [K - 1]
    second_decisions: Any  # b~
    first: Any  # one-hot z (given class order), shape [S] + batch_shape + event + [K]
    second: Any  # one-hot z~
    first_alive: Any  # 1[k <= z], shape of the decisions
    second_alive: Any  # 1[k <= z~]
    first_values: Any  # f(z), shape [S] + batch_shape
    second_values: Any  # f(z~)


def coupled_pairs(framework, function, distribution, seed, num_samples, *,
                  ascending=False) -> CoupledCategoricalPairs:
    """Draw ``num_samples`` stick-breaking coupled pairs from a one-hot categorical and
    evaluate ``f`` once on all ``2 S`` samples.

    Args:
        framework: the framework.
        function: ``f``.
        distribution: fxgx's ``OneHotCategorical`` (``K >= 2`` classes).
        seed: a native seed of ``framework``.
        num_samples: ``S``, the number of pairs.
        ascending: run the decisions over the classes sorted by ascending logit (else in
            the given order).

    Returns:
        The pairs (see ``CoupledCategoricalPairs``).

    Raises:
        ValueError: the categorical has fewer than two classes.
    """
    xp = framework.xp
    logits = framework.stop_gradient(distribution.logits)
    if distribution.num_classes < 2:
        raise ValueError(
            f"the coupled categorical estimators need at least 2 classes; the distribution's "
            f"logits have shape {shape_of(logits)}."
        )
    dtype = logits.dtype
    permutation = ascending_permutation(xp, logits) if ascending else None
    if permutation is not None:
        logits = xp.sum(xp.expand_dims(logits, axis=-1) * permutation, axis=-2)
    decision_logits = framework.stop_gradient(stick_breaking_logits(framework, logits))
    seeds = sub_seeds(framework, seed, "uniform")
    shape = (num_samples,) + shape_of(decision_logits)
    uniform = framework.stop_gradient(open_uniform(framework, shape, seeds["uniform"], dtype))
    # 1[u > sigmoid(-eta)] rather than 1[1 - u < sigmoid(eta)]: no rounding of 1 - u.
    first_decisions = bits_below(xp, uniform, framework.sigmoid(decision_logits))
    second_decisions = bits_above(xp, uniform, framework.sigmoid(-decision_logits))
    first, first_alive = categorical_from_decisions(xp, first_decisions)
    second, second_alive = categorical_from_decisions(xp, second_decisions)
    if permutation is not None:
        first = xp.sum(permutation * xp.expand_dims(first, axis=-2), axis=-1)
        second = xp.sum(permutation * xp.expand_dims(second, axis=-2), axis=-1)
    both = framework.stop_gradient(xp.concat([first, second], axis=0))
    values = evaluate(framework, function, both, distribution, 2 * num_samples)
    return CoupledCategoricalPairs(
        decision_logits, first_decisions, second_decisions, first, second, first_alive,
        second_alive, values[:num_samples, ...], values[num_samples:, ...])


def half_difference(framework, pairs: CoupledCategoricalPairs, event_rank):
    """``(f(z) - f(z~)) / 2``, stopped, with ``event_rank`` trailing unit axes appended.

    Args:
        framework: the framework.
        pairs: the coupled pairs.
        event_rank: the number of axes to append (event axes and the class axis).

    Returns:
        The half difference, broadcastable against ``[S] + batch_shape + event + [K]``.
    """
    difference = 0.5 * framework.stop_gradient(pairs.first_values - pairs.second_values)
    return expand_trailing(framework.xp, difference, event_rank)


def coupled_surrogate(framework, pairs: CoupledCategoricalPairs, per_pair_gradient, argument,
                      event_rank):
    """``custom_gradient`` with ``fx`` = mean of ``f`` over both members of every pair
    (differentiable w.r.t. what ``f`` closes over) and ``gx`` = the mean over pairs of
    ``per_pair_gradient``, the gradient w.r.t. ``argument``.

    Args:
        framework: the framework.
        pairs: the coupled pairs.
        per_pair_gradient: shape ``[S] + argument.shape``; stopped here.
        argument: the differentiable tensor the gradient is w.r.t. (the logits, or the
            decision logits computed from them).
        event_rank: how many trailing axes of ``argument`` form one latent configuration.

    Returns:
        The surrogate, shape ``batch_shape``.
    """
    xp = framework.xp
    value = xp.mean(0.5 * (pairs.first_values + pairs.second_values), axis=0)
    gradient = framework.stop_gradient(xp.mean(per_pair_gradient, axis=0))
    rank = len(shape_of(argument))
    axes = tuple(range(rank - event_rank, rank))
    return with_gradient(framework, value, gradient, argument, axis=axes,
                         fx_gx_manually_stopped=True)
