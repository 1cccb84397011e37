"""The evidence lower bound with any gradient estimator for its discrete latents.

    ELBO(theta) = E_{z ~ q_theta}[log p(x, z) - log q_theta(z)]

Discrete latents (Bernoulli, one-hot categorical, any non-reparameterised distribution) are
handled by an fxgx estimator; continuous latents with reparameterised samples (``Normal``,
TFP's ``FULLY_REPARAMETERIZED`` distributions) by the reparameterisation gradient. The
result is a surrogate: its value is a Monte Carlo estimate of the ELBO and its gradient an
estimate of the ELBO's gradient w.r.t. the surrogate's parameters *and* whatever
``target_log_prob_fn`` closes over (a decoder). Minimise ``-elbo(...)``.

How the discrete part's gradient is formed. Write ``z = (d, c)`` (discrete, continuous) and
``q(z) = q_a(d) q_b(c | d)`` with parameters ``theta = (a, b)``. Two unbiased forms:

- ``analytic_entropy=True`` (default, when the discrete parts are Bernoulli or one-hot
  categorical): ``ELBO = E_{q_a}[f(d)] + H(q_a)`` with
  ``f(d) = E_{q_b}[log p(x, d, c) - log q_b(c | d)]``. The estimator is applied to ``f``
  and the entropy ``H(q_a)`` is exact (its gradient too). This removes the noise the
  ``-log q_a`` term would add and is what fxgx uses by default.
- ``analytic_entropy=False`` (and any discrete part without a closed-form entropy):
  ``f(d) = E_{q_b}[...] - log q_{stop(a)}(d)``, the log-density with its parameters
  gradient-stopped. Then ``grad_a ELBO = grad_a E_{q_a}[f] - E_{q_a}[grad_a log q_a(d)]``
  and the last term is 0 (the score has mean zero), so the estimator's gradient of
  ``E[f]`` is exactly ``grad_a ELBO``. Pathwise estimators still see ``d``'s derivative of
  ``-log q(d)``.

Either way an unbiased estimator gives an unbiased ELBO gradient; the tests in
``tests/vi/test_elbo.py`` check both forms against the ELBO gradient computed exactly by
enumeration. Reference: Ranganath, Gerrish & Blei (2014), "Black box variational
inference"; for the stopped ``log q`` see Roeder, Wu & Duvenaud (2017), "Sticking the
landing".
"""

from __future__ import annotations

import warnings

from fxgx.vi.bounds import check_estimator, estimator_target, log_weights_function, prepare_bound
from fxgx.vi.expectation import expectation


def default_estimator(num_samples: int):
    from fxgx import estimators  # noqa: PLC0415

    if num_samples >= 2:
        return estimators.reinforce_leave_one_out()
    return estimators.reinforce()


def elbo(target_log_prob_fn, surrogate_posterior, *, seed, num_samples: int = 1,
         estimator=None, require_unbiased: bool = False, analytic_entropy: bool = True):
    """Monte Carlo ELBO surrogate: value ``~ E_q[log p(x, z) - log q(z)]``, gradient ``~``
    its gradient. Minimise ``-elbo(...)``.

    Args:
      target_log_prob_fn: ``log p(x, z)`` up to a constant. Called like ``tfp.vi`` does:
        ``target(z)`` for one distribution, ``target(*parts)`` for a list/tuple or a
        ``JointDistributionSequential``, ``target(**parts)`` for a dict or a
        ``JointDistributionNamed``. Each part has a leading sample axis; it must return
        ``[num_samples] + batch_shape`` (summed over the latent dimensions).
      surrogate_posterior: ``q``: an fxgx or TFP distribution, a list/tuple/dict of them,
        or (TensorFlow) a ``tfd.JointDistributionSequential``/``Named`` whose discrete parts
        are roots. See ``fxgx.vi.latents``.
      seed: int, TF seed pair or JAX key (required).
      num_samples: Monte Carlo samples (passed to the estimator for the discrete part).
      estimator: the gradient estimator for the discrete latents; default
        ``reinforce_leave_one_out()`` when ``num_samples >= 2``, else ``reinforce()``.
        Ignored when every latent is reparameterised.
      require_unbiased: warn (``UserWarning``) when ``estimator`` is biased.
      analytic_entropy: use the exact entropy of Bernoulli/categorical discrete parts (see
        the module notes); ``False`` uses the stopped ``-log q`` inside ``f``.

    Returns:
      A tensor of the surrogate's batch shape.

    Raises:
      TypeError: a surrogate fxgx.vi cannot handle, an estimator that does not support its
        discrete latents, or a multi-sample estimator (VIMCO: use
        ``importance_weighted_bound``).
      ValueError: ``target_log_prob_fn`` and the surrogate disagree on shapes.
    """
    num_samples, latents, framework, seeds = prepare_bound(
        target_log_prob_fn, surrogate_posterior, seed, num_samples
    )

    if not latents.has_estimated:
        values, log_q = latents.sample_reparameterized({}, num_samples, seeds["reparameterized"])
        log_p = latents.call_target(target_log_prob_fn, values, num_samples)
        return framework.xp.mean(log_p - log_q, axis=0)

    if estimator is None:
        estimator = default_estimator(num_samples)
    check_estimator(estimator, latents, "the ELBO")
    if estimator_target(estimator) != "expectation":
        raise TypeError(
            f"{estimator.name} estimates the importance-weighted (multi-sample) bound, not "
            "the ELBO; use fxgx.vi.importance_weighted_bound(..., estimator=...) with it."
        )
    if require_unbiased and not estimator.unbiased:
        warnings.warn(
            f"{estimator.name} is a biased gradient estimator, but require_unbiased=True: "
            "the ELBO gradient will be biased. Use an unbiased estimator (reinforce, "
            "reinforce_leave_one_out, disarm, ...) or set require_unbiased=False.",
            UserWarning,
            stacklevel=2,
        )
    use_entropy = analytic_entropy and latents.has_closed_form_entropy
    integrand = log_weights_function(latents, target_log_prob_fn, seeds["reparameterized"],
                                     stop_parameters=True, subtract_log_q=not use_entropy)
    surrogate = expectation(estimator, integrand, latents.estimated, seed=seeds["estimator"],
                            num_samples=num_samples)
    if use_entropy:
        surrogate = surrogate + latents.estimated_entropy()
    return surrogate
