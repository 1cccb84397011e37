"""What the ELBO and the importance-weighted bound share: the checks at their boundary and
the log-weight integrand ``log p(x, z) - log q(z)`` they hand to an estimator.
"""

from __future__ import annotations

from fxgx.core.arrays import shape_of
from fxgx.core.seeds import canonical_seed, split_seed
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
    """Boundary checks shared by the bounds.

    Args:
        target_log_prob_fn: ``log p(x, z)``.
        surrogate_posterior: ``q``.
        seed: the call's seed.
        num_samples: the call's sample count.

    Returns:
        ``(num_samples, latents, framework, seeds)`` with sub-seeds "estimator" and
        "reparameterized"; the framework is found once, from the surrogate.

    Raises:
        TypeError, ValueError: a target that is not callable, a bad sample count, or a
            surrogate fxgx.vi cannot handle.
    """
    if not callable(target_log_prob_fn):
        raise TypeError(
            f"target_log_prob_fn must be callable, got {type(target_log_prob_fn).__name__}."
        )
    num_samples = check_num_samples(num_samples)
    latents = Latents(surrogate_posterior, seed=seed)
    framework = latents.framework
    seeds = split_seed(canonical_seed(seed, framework), ("estimator", "reparameterized"),
                       framework)
    return num_samples, latents, framework, seeds


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


def log_weights_function(latents, target_log_prob_fn, seed, *, stop_parameters: bool,
                         subtract_log_q: bool = True):
    """``f(d) = log p(x, d, c) - log q(c | d) [- log q(d)]``: the integrand of both bounds
    for samples ``d`` of the estimated (discrete) parts, with the reparameterised parts ``c``
    drawn given each ``d``.

    Args:
        latents: the surrogate's ``Latents``.
        target_log_prob_fn: ``log p(x, z)``.
        seed: the "reparameterized" sub-seed.
        stop_parameters: stop the gradient of ``log q(d)`` w.r.t. the surrogate's
            parameters (the ELBO's score-function form) or keep it (the importance-weighted
            bound, whose log-weights depend on them).
        subtract_log_q: subtract ``log q(d)`` (False for the ELBO with the analytic entropy).

    Returns:
        ``f``, mapping ``[n] + batch + event`` samples to ``[n] + batch_shape``.
    """

    def log_weights(samples):
        count = shape_of(samples)[0]
        discrete = latents.split(samples)
        continuous, log_q_continuous = latents.sample_reparameterized(discrete, count, seed)
        values = latents.call_target(target_log_prob_fn, {**discrete, **continuous}, count)
        if log_q_continuous is not None:
            values = values - log_q_continuous
        if subtract_log_q:
            values = values - latents.estimated_log_prob(samples, stop_parameters=stop_parameters)
        return values

    return log_weights
