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

from fxgx.core.seeds import canonical_seed, split_seed
from fxgx.vi.expectation import expectation
from fxgx.vi.latents import Latents


def estimator_target(estimator) -> str:
    """What an estimator's gradient estimates, as it declares in ``Estimator.target``.

    Args:
        estimator: an fxgx estimator, or any estimator object.

    Returns:
        ``"expectation"`` (it estimates ``grad E[f]``; the default for objects that declare
        nothing) or ``"log_mean_exp"`` (``grad E[log mean_k exp f(z_k)]``, VIMCO-like).
    """
    return getattr(estimator, "target", "expectation")


def prepare_bound(target_log_prob_fn, surrogate_posterior, seed, num_samples):
    """Boundary checks shared by the bounds: ``(num_samples, latents, backend, seeds)`` with
    sub-seeds "estimator" and "reparameterized"."""
    if not callable(target_log_prob_fn):
        raise TypeError(
            f"target_log_prob_fn must be callable, got {type(target_log_prob_fn).__name__}."
        )
    num_samples = check_num_samples(num_samples)
    latents = Latents(surrogate_posterior, seed=seed)
    backend = latents.backend
    seeds = split_seed(canonical_seed(seed, backend), ("estimator", "reparameterized"), backend)
    return num_samples, latents, backend, seeds


def check_num_samples(num_samples, minimum: int = 1) -> int:
    """``num_samples`` as an int >= ``minimum``, or a TypeError/ValueError naming it."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be an int, got {num_samples!r}.")
    if num_samples < minimum:
        raise ValueError(f"num_samples={num_samples} must be at least {minimum}.")
    return num_samples


def check_estimator(estimator, latents, purpose: str):
    """Raise ``TypeError`` unless ``estimator`` is an fxgx estimator that supports the
    surrogate's discrete latents."""
    from fxgx.estimators.base import Estimator  # noqa: PLC0415

    if not isinstance(estimator, Estimator):
        raise TypeError(
            f"estimator must be an fxgx estimator (e.g. fxgx.estimators.disarm()), got "
            f"{type(estimator).__name__}."
        )
    kind = latents.estimated_kind
    if "any" not in estimator.supports and kind not in estimator.supports:
        raise TypeError(
            f"{estimator.name} supports {' and '.join(estimator.supports)} latents, but the "
            f"surrogate's discrete latents are {latents.describe_estimated()} (kind "
            f"{kind!r}). Use a score-function estimator such as fxgx.estimators.reinforce() "
            f"or reinforce_leave_one_out(), which accept any distribution, for {purpose}."
        )


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
    num_samples, latents, backend, seeds = prepare_bound(
        target_log_prob_fn, surrogate_posterior, seed, num_samples
    )

    if not latents.has_estimated:
        values, log_q = latents.sample_reparameterized({}, num_samples, seeds["reparameterized"])
        log_p = latents.call_target(target_log_prob_fn, values, num_samples)
        return backend.reduce_mean(log_p - log_q, axis=0)

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

    def integrand(samples):
        count = backend.shape_of(samples)[0]
        discrete = latents.split(samples)
        continuous, log_q_continuous = latents.sample_reparameterized(
            discrete, count, seeds["reparameterized"])
        values = latents.call_target(target_log_prob_fn, {**discrete, **continuous}, count)
        if log_q_continuous is not None:
            values = values - log_q_continuous
        if not use_entropy:
            values = values - latents.estimated_log_prob(samples, stop_parameters=True)
        return values

    surrogate = expectation(estimator, integrand, latents.estimated, seed=seeds["estimator"],
                            num_samples=num_samples)
    if use_entropy:
        surrogate = surrogate + latents.estimated_entropy()
    return surrogate
