"""The importance-weighted (multi-sample) bound with any gradient estimator.

    L_K(theta) = E_{z_1..z_K ~ q_theta}[log (1/K) sum_k w_k],
    log w_k = log p(x, z_k) - log q_theta(z_k),

``L_1`` is the ELBO and ``L_K`` increases to ``log p(x)`` as ``K`` grows (Burda, Grosse &
Salakhutdinov, 2016, "Importance weighted autoencoders"). The log-weights depend on
``theta`` through ``log q_theta(z_k)`` as well as through the samples, so ``log q`` is kept
differentiable here (unlike in ``elbo``): the exact gradient is

    grad L_K = E[sum_k L^ grad log q(z_k)] - E[sum_k w~_k grad log q_theta(z_k)],
    L^ = log mean_k w_k,  w~_k = w_k / sum_j w_j,

and the second term is not zero. How the first is estimated depends on ``estimator``:

- a multi-sample estimator (VIMCO, the default: Mnih & Rezende, 2016) receives the
  ``K`` log-weights directly (``num_samples = K``) and gives both terms;
- any other estimator of ``grad E[f]`` (REINFORCE, DisARM, ...) is applied to the ``K``-fold
  product: the discrete latents get a new event axis of size ``K`` and
  ``f(z_1..z_K) = log mean_k w_k``; the estimator draws its own number of ``K``-tuples
  (``max(1, estimator.minimum_samples)``), and ``fxgx.vi.expectation`` supplies the second
  term for estimators that stop ``f``. Bernoulli and one-hot categorical latents only.

Continuous reparameterised latents are drawn given each discrete sample, as in ``elbo``.
"""

from __future__ import annotations

from fxgx.core.arrays import shape_of
from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.estimators.multi_sample import log_mean_exp
from fxgx.vi.bounds import check_estimator, estimator_target, log_weights_function, prepare_bound
from fxgx.vi.expectation import expectation


def _repeated(distribution, batch_rank: int, count: int):
    """The ``count``-fold product of a Bernoulli/categorical: a new event axis of size
    ``count`` right after the batch axes."""
    xp = distribution.framework.xp
    logits = xp.expand_dims(distribution.logits, axis=batch_rank)
    shape = list(shape_of(logits))
    shape[batch_rank] = count
    logits = xp.broadcast_to(logits, tuple(shape))
    return type(distribution)(logits, event_ndims=distribution.event_ndims + 1)


def importance_weighted_bound(target_log_prob_fn, surrogate_posterior, *, seed,
                              num_samples: int, estimator=None):
    """Surrogate of ``L_K = E[log (1/K) sum_k p(x, z_k) / q(z_k)]`` with ``K = num_samples``.

    The value estimates ``L_K`` and the gradient estimates its gradient; minimise
    ``-importance_weighted_bound(...)``. Reference: Burda, Grosse & Salakhutdinov (2016).

    Args:
        target_log_prob_fn: ``log p(x, z)``, called as in ``fxgx.vi.elbo``.
        surrogate_posterior: ``q``, any surrogate ``fxgx.vi.elbo`` accepts.
        seed: an int, a TF seed pair or a JAX key (required).
        num_samples: ``K``, the importance samples per bound.
        estimator: the gradient estimator for the discrete latents; default
            ``fxgx.estimators.vimco()`` (needs ``K >= 2``). Any estimator of ``grad E[f]``
            works too for Bernoulli/categorical latents, applied to the ``K``-fold product
            (see the module notes).

    Returns:
        A tensor of the surrogate's batch shape.

    Raises:
        TypeError: a surrogate or estimator the bound cannot handle, or a non-int
            ``num_samples``.
        ValueError: ``num_samples`` is too small, or the target and the surrogate disagree
            on shapes.
    """
    num_samples, latents, framework, seeds = prepare_bound(
        target_log_prob_fn, surrogate_posterior, seed, num_samples
    )
    xp = framework.xp
    log_weights = log_weights_function(latents, target_log_prob_fn, seeds["reparameterized"],
                                       stop_parameters=False)

    if not latents.has_estimated:
        values, log_q = latents.sample_reparameterized({}, num_samples, seeds["reparameterized"])
        log_p = latents.call_target(target_log_prob_fn, values, num_samples)
        return log_mean_exp(framework, log_p - log_q)

    if estimator is None:
        from fxgx.estimators.vimco import vimco  # noqa: PLC0415

        estimator = vimco()
    check_estimator(estimator, latents, "the importance-weighted bound")
    if estimator_target(estimator) == "log_mean_exp":
        return expectation(estimator, log_weights, latents.estimated, seed=seeds["estimator"],
                           num_samples=num_samples)

    distribution = latents.estimated
    if not isinstance(distribution, (Bernoulli, OneHotCategorical)):
        raise TypeError(
            f"importance_weighted_bound with {estimator.name} needs Bernoulli or one-hot "
            f"categorical discrete latents, got {latents.describe_estimated()}; use "
            "fxgx.estimators.vimco() for other distributions."
        )
    batch_rank = len(latents.batch_shape)
    product = _repeated(distribution, batch_rank, num_samples)

    def bound(samples):
        # samples: [n] + batch + [K] + event -> [K * n] + batch + event, K outermost.
        shape = shape_of(samples)
        rank = len(shape)
        order = [1 + batch_rank, *range(1 + batch_rank), *range(2 + batch_rank, rank)]
        moved = xp.permute_dims(samples, tuple(order))
        count = shape[0]
        flat = xp.reshape(moved, (num_samples * count,) + tuple(shape[1:1 + batch_rank])
                          + tuple(shape[2 + batch_rank:]))
        weights = xp.reshape(log_weights(flat), (num_samples, count) + latents.batch_shape)
        return log_mean_exp(framework, weights, axis=0)

    return expectation(estimator, bound, product, seed=seeds["estimator"],
                       num_samples=max(1, int(estimator.minimum_samples)))
