"""The score-function surrogates that REINFORCE and its baselines hand to the primitive.

    grad E[f(z)] = E[(f(z) - b) grad log q(z)] + E[grad f(z)]      (Williams, 1992)

Each function here returns ``mean_s f(z_s)`` (the samples stopped, ``f`` not, as in
``tfp.monte_carlo.expectation``) whose gradient is ``sum_s (f_s - b_s)/S grad log q_s`` for
the parameters of ``q`` and ``mean_s grad f_s`` for what ``f`` closes over; they differ in
how ``log q`` reaches the primitive:

- ``score_function_surrogate``: DiCE's magic box ``exp(log q - stop(log q))`` (Foerster et
  al., 2018), so every derivative order is unbiased;
- ``dice_surrogate``: the same, with ``log q`` of fxgx's Bernoulli and one-hot categorical
  latents written linearly in the stopped sample (``linear_log_prob``) and the framework's
  ``magic_box``, whose value does not read ``log q``: a first-order gradient then costs what
  the hand-written closed form costs;
- ``closed_form_score_surrogate``: the hand-fused first-order form, ``x = logits`` and
  ``gx = sum_s (f_s - b)/S (z_s - p)`` (its second derivative is 0).
"""

from __future__ import annotations

from fxgx.core.arrays import expand_trailing, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.sampling import event_rank

#: Distribution kinds whose score fxgx writes in closed form.
CLOSED_FORM_KINDS = ("bernoulli", "categorical")


def score_function_surrogate(framework, values, log_prob, baseline, num_samples,
                             log_prob_is_finite=False):
    """``mean(values)`` with gradient ``sum_s (values_s - baseline_s)/S * grad log q_s`` for
    the parameters of ``q`` and ``mean_s grad values_s`` for what ``values`` depend on.

    ``values`` (``f`` at stopped samples) are left differentiable; ``baseline`` is stopped
    here, so that it adds no bias whatever it was computed from. DiCE's magic box
    ``exp(log q - stop(log q))`` carries the derivatives of every order; with
    ``log_prob_is_finite`` (the caller knows ``log q`` is finite, as for the closed forms of
    ``linear_log_prob``) it is ``framework.magic_box``, whose value does not read ``log q``,
    so a first-order gradient pass never computes ``log q`` itself, only its derivative."""
    xp = framework.xp
    difference = log_prob - framework.stop_gradient(log_prob)
    magic = framework.magic_box(difference) if log_prob_is_finite else xp.exp(difference)
    weights = (values - framework.stop_gradient(baseline)) / num_samples
    return with_gradient(framework, xp.mean(values, axis=0), weights, magic, axis=0,
                         fx_gx_manually_stopped=True)


def dice_surrogate(framework, values, samples, distribution, baseline, num_samples):
    """``score_function_surrogate`` with ``log q`` from ``linear_log_prob`` for fxgx's
    Bernoulli and one-hot categorical distributions (no ``log_sigmoid`` pass, and no
    ``log q`` at all in a first-order gradient) and from ``distribution.log_prob``
    otherwise. Every derivative order is DiCE's."""
    if getattr(distribution, "kind", "") in CLOSED_FORM_KINDS:
        log_prob = linear_log_prob(framework, distribution, samples)
        return score_function_surrogate(framework, values, log_prob, baseline, num_samples,
                                        log_prob_is_finite=True)
    log_prob = distribution.log_prob(samples)
    return score_function_surrogate(framework, values, log_prob, baseline, num_samples)


def closed_form_score_surrogate(framework, values, samples, distribution, baseline,
                                num_samples):
    """``mean(values)`` with gradient ``sum_s (values_s - baseline_s)/S * (z_s - p)`` w.r.t.
    the logits of a Bernoulli or one-hot categorical ``distribution`` (the exact score), and
    ``mean_s grad values_s`` for what ``values`` depend on."""
    xp = framework.xp
    logits = distribution.logits
    if distribution.kind == "bernoulli":
        score = samples - framework.sigmoid(logits)
    else:
        score = samples - framework.softmax(logits)
    rank_of_event = event_rank(distribution)
    weights = framework.stop_gradient((values - baseline) / num_samples)
    weights = expand_trailing(xp, weights, rank_of_event)
    gradient = framework.stop_gradient(xp.sum(weights * score, axis=0))
    rank = len(shape_of(logits))
    axis = tuple(range(rank - rank_of_event, rank))
    return with_gradient(framework, xp.mean(values, axis=0), gradient, logits, axis=axis,
                         fx_gx_manually_stopped=True)


def linear_log_prob(framework, distribution, samples):
    """``log q(z)`` of a Bernoulli or one-hot categorical ``distribution`` at stopped
    ``samples``, written as a linear function of ``z`` plus a term without a sample axis:

        Bernoulli:    log q(z) = sum_event z * theta - sum_event softplus(theta)
        categorical:  log q(z) = sum_event z . theta - sum_event logsumexp_k(theta)

    Its derivatives w.r.t. the logits ``theta`` are those of ``log q`` at every order (``z``
    is a constant), and it costs one contraction over ``[S] + logits.shape`` where
    ``distribution.log_prob`` costs a ``log_sigmoid`` per element and a pass of its own; the
    normalizer is computed once per batch member, not once per sample."""
    xp = framework.xp
    logits = distribution.logits
    if distribution.kind == "bernoulli":
        normalizer = framework.softplus(logits)
    else:
        normalizer = framework.logsumexp(logits, axis=-1, keepdims=True)
    rank = len(shape_of(logits))
    axes = tuple(range(rank - event_rank(distribution), rank))
    linear = samples * logits
    if axes:
        linear = xp.sum(linear, axis=tuple(axis + 1 for axis in axes))
        normalizer = xp.sum(normalizer, axis=axes)
    return linear - normalizer
