"""The REINFORCE (score-function) surrogate, with an optional constant baseline.

    grad E[f(z)] = E[(f(z) - b) grad log q(z)] + E[grad f(z)]      (Williams, 1992)

The first term is the score-function estimate for the parameters of ``q``; the second is
the gradient w.r.t. what ``f`` itself depends on (a decoder's weights), which the surrogate
passes through unchanged: its value is ``mean_s f(z_s)`` with the samples stopped and ``f``
not, as in ``tfp.monte_carlo.expectation``. Two forms, chosen by ``higher_order``:

- ``higher_order=True`` (default): the primitive gets ``x = magic(log q(z)) = exp(log q -
  stop(log q))``, whose value is 1 and whose derivatives are those of DiCE (Foerster et al.,
  2018), and ``gx = (f(z) - b) / S`` left differentiable w.r.t. ``f``'s own parameters.
  Every order of derivative, mixed ones included (``d^2 / d theta d phi`` for a decoder
  ``phi``), is then an unbiased estimate of the matching derivative of ``E[f]`` (for a
  stopped baseline). For fxgx's Bernoulli and one-hot categorical latents ``log q`` is
  written ``z . theta - sum softplus(theta)`` (``- logsumexp`` for a categorical), linear in
  the stopped ``z``, and the magic box is ``backend.magic_box``, whose value (1) does not
  read ``log q``: a first-order gradient then costs what the hand-written closed form
  costs, ``sum_s w_s z_s - (sum_s w_s) sigmoid(theta)``, while the higher orders are
  unchanged.
- ``higher_order=False``: for Bernoulli and one-hot categorical latents the primitive gets
  ``x = logits`` and the closed-form score, ``gx = sum_s (f(z_s) - b)/S (z_s - p)``, the
  hand-fused gradient with no ``log_prob`` pass (about twice as fast on CPU; the second
  derivative is then 0). Other distributions use ``x = log q(z)``.

``f`` is differentiated only w.r.t. what it closes over, never w.r.t. the samples, so an
``f`` that is not differentiable in ``z`` is fine.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import custom_gradient
from fxgx.distributions import Distribution
from fxgx.estimators.base import Estimator, evaluate


def score_function_surrogate(backend, values, log_prob, baseline, num_samples,
                             log_prob_is_finite=False):
    """``mean(values)`` with gradient ``sum_s (values_s - baseline_s)/S * grad log q_s`` for
    the parameters of ``q`` and ``mean_s grad values_s`` for what ``values`` depend on.

    ``values`` (``f`` at stopped samples) are left differentiable; ``baseline`` is stopped
    here, so that it adds no bias whatever it was computed from. DiCE's magic box
    ``exp(log q - stop(log q))`` carries the derivatives of every order; with
    ``log_prob_is_finite`` (the caller knows ``log q`` is finite, as for the closed forms of
    ``linear_log_prob``) it is ``backend.magic_box``, whose value does not read ``log q``, so
    a first-order gradient pass never computes ``log q`` itself, only its derivative."""
    difference = log_prob - backend.stop_gradient(log_prob)
    magic = backend.magic_box(difference) if log_prob_is_finite else backend.exp(difference)
    weights = (values - backend.stop_gradient(baseline)) / num_samples
    return custom_gradient(backend.reduce_mean(values, axis=0), weights, magic, axis=0,
                           fx_gx_manually_stopped=True)


def dice_surrogate(backend, values, samples, distribution, baseline, num_samples):
    """``score_function_surrogate`` with ``log q`` from ``linear_log_prob`` for fxgx's
    Bernoulli and one-hot categorical distributions (no ``log_sigmoid`` pass, and no
    ``log q`` at all in a first-order gradient) and from ``distribution.log_prob``
    otherwise. Every derivative order is DiCE's."""
    if getattr(distribution, "kind", "") in CLOSED_FORM_KINDS:
        log_prob = linear_log_prob(backend, distribution, samples)
        return score_function_surrogate(backend, values, log_prob, baseline, num_samples,
                                        log_prob_is_finite=True)
    log_prob = distribution.log_prob(samples)
    return score_function_surrogate(backend, values, log_prob, baseline, num_samples)


def closed_form_score_surrogate(backend, values, samples, distribution, baseline, num_samples):
    """``mean(values)`` with gradient ``sum_s (values_s - baseline_s)/S * (z_s - p)`` w.r.t.
    the logits of a Bernoulli or one-hot categorical ``distribution`` (the exact score), and
    ``mean_s grad values_s`` for what ``values`` depend on."""
    logits = distribution.logits
    if distribution.kind == "bernoulli":
        score = samples - backend.sigmoid(logits)
        event_rank = distribution.event_ndims
    else:
        score = samples - backend.softmax(logits)
        event_rank = distribution.event_ndims + 1
    weights = backend.stop_gradient((values - baseline) / num_samples)
    for _ in range(event_rank):
        weights = backend.expand_dims(weights, -1)
    gradient = backend.stop_gradient(backend.reduce_sum(weights * score, axis=0))
    rank = len(backend.shape_of(logits))
    axis = tuple(range(rank - event_rank, rank))
    return custom_gradient(backend.reduce_mean(values, axis=0), gradient, logits, axis=axis,
                           fx_gx_manually_stopped=True)


def linear_log_prob(backend, distribution, samples):
    """``log q(z)`` of a Bernoulli or one-hot categorical ``distribution`` at stopped
    ``samples``, written as a linear function of ``z`` plus a term without a sample axis:

        Bernoulli:    log q(z) = sum_event z * theta - sum_event softplus(theta)
        categorical:  log q(z) = sum_event z . theta - sum_event logsumexp_k(theta)

    Its derivatives w.r.t. the logits ``theta`` are those of ``log q`` at every order (``z``
    is a constant), and it costs one contraction over ``[S] + logits.shape`` where
    ``distribution.log_prob`` costs a ``log_sigmoid`` per element and a pass of its own; the
    normalizer is computed once per batch member, not once per sample."""
    logits = distribution.logits
    if distribution.kind == "bernoulli":
        event_rank = distribution.event_ndims
        normalizer = backend.softplus(logits)
    else:
        event_rank = distribution.event_ndims + 1
        normalizer = backend.logsumexp(logits, axis=-1, keepdims=True)
    rank = len(backend.shape_of(logits))
    axes = tuple(range(rank - event_rank, rank))
    linear = samples * logits
    if axes:
        linear = backend.reduce_sum(linear, axis=tuple(axis + 1 for axis in axes))
        normalizer = backend.reduce_sum(normalizer, axis=axes)
    return linear - normalizer


def draw(distribution, backend, seed, num_samples):
    """Samples ``[S] + shape`` (stopped) from an fxgx distribution, a TFP one, or any object
    with ``sample(sample_shape=, seed=)`` (distrax, TFP's JAX substrate)."""
    if isinstance(distribution, Distribution):
        return backend.stop_gradient(distribution.sample((num_samples,), seed))
    if backend.name == "tensorflow":
        # TensorFlow Probability's samplers take int32 seed pairs.
        seed = backend.cast(seed, "int32")
    return backend.stop_gradient(distribution.sample(sample_shape=(num_samples,), seed=seed))


def draw_and_evaluate(function, distribution, backend, seed, num_samples):
    """Stopped samples ``[S] + shape`` and the values of ``f`` on them, checked to have shape
    ``[S] + batch_shape``: the start of every score-function estimator. The values are left
    differentiable w.r.t. what ``f`` closes over (stop them before using them as weights)."""
    samples = draw(distribution, backend, seed, num_samples)
    values = evaluate(function, samples, distribution, backend, num_samples)
    return samples, values


@dataclasses.dataclass(frozen=True)
class Reinforce(Estimator):
    """REINFORCE with a constant baseline (0 by default). See ``reinforce``.

    Attributes:
        baseline: the constant subtracted from ``f``.
        higher_order: use DiCE's magic box (every derivative order unbiased).
    """

    baseline: float = 0.0
    higher_order: bool = True
    name = "reinforce"

    def _estimate(self, function, distribution, backend, seed, num_samples):
        samples, values = draw_and_evaluate(function, distribution, backend, seed, num_samples)
        baseline = backend.convert(self.baseline, backend.dtype_of(values))
        if not self.higher_order and getattr(distribution, "kind", "") in CLOSED_FORM_KINDS:
            return closed_form_score_surrogate(
                backend, values, samples, distribution, baseline, num_samples
            )
        if self.higher_order:
            return dice_surrogate(backend, values, samples, distribution, baseline, num_samples)
        log_prob = distribution.log_prob(samples)
        weights = backend.stop_gradient((values - baseline) / num_samples)
        return custom_gradient(backend.reduce_mean(values, axis=0), weights, log_prob,
                               axis=0, fx_gx_manually_stopped=True)


CLOSED_FORM_KINDS = ("bernoulli", "categorical")


def reinforce(baseline: float = 0.0, higher_order: bool = True) -> Reinforce:
    """The score-function estimator ``(f(z) - baseline) grad log q(z)``, averaged over samples.

    Works for any distribution with ``sample`` and ``log_prob``; unbiased for a constant
    ``baseline``. ``higher_order=True`` makes every derivative order unbiased (DiCE);
    ``False`` uses the closed-form score of Bernoulli/categorical logits, first order only.
    References: Williams (1992), "Simple statistical gradient-following algorithms for
    connectionist reinforcement learning"; Foerster et al. (2018), "DiCE".

    Args:
        baseline: a constant subtracted from ``f``.
        higher_order: DiCE's form (``True``) or the hand-fused first-order form
            (``False``).

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]``.

    Raises:
        TypeError: ``baseline`` is not a number or ``higher_order`` not a bool.
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a number, got {baseline!r}.")
    if not isinstance(higher_order, bool):
        raise TypeError(f"higher_order must be True or False, got {higher_order!r}.")
    return Reinforce(baseline=float(baseline), higher_order=higher_order)
