"""``E_q[f]`` with an estimator, with gradients for *everything* ``f`` depends on.

Every fxgx estimator returns a surrogate whose gradient w.r.t. the parameters of ``q`` is
the estimate of ``grad E_q[f]`` and whose gradient w.r.t. what ``f`` closes over (a
decoder's weights, the parameters of a reparameterised part of the surrogate, an explicit
``log q_theta(z)`` term) is an unbiased estimate of ``E_q[grad f]``: each declares so with
``Estimator.passes_function_gradients = True``, and
``tests/estimators/test_function_gradients.py`` checks the declaration against the
behaviour.

An estimator written outside fxgx that evaluates ``f`` under ``stop_gradient`` declares
``passes_function_gradients = False``; ``expectation`` then records the values of ``f`` on
the first batch of samples the estimator evaluates and adds

    mean_s f(z_s) - stop(mean_s f(z_s))

(value exactly 0, built with ``custom_gradient``), which is unbiased for the missing term
when those samples are draws from ``q``.
"""

from __future__ import annotations

from fxgx.core.custom_gradient import with_gradient
from fxgx.distributions import framework_of_distribution


def expectation(estimator, function, distribution, *, seed, num_samples: int):
    """The estimator's surrogate of ``E_q[f]``, completed where the estimator declares that
    it stops ``f`` (see the module notes).

    Args:
        estimator: any gradient estimator, called as ``estimator(f, q, seed=,
            num_samples=)``. When its ``passes_function_gradients`` is False, the
            gradient ``mean_s grad f(z_s)`` of what ``f`` closes over is added (with value
            exactly 0).
        function: ``f``, mapping samples ``[S] + shape`` to ``[S] + batch_shape``.
        distribution: ``q``.
        seed: an int, a TF seed pair or a JAX key.
        num_samples: ``S``.

    Returns:
        The surrogate: value ``~ E_q[f]``, gradient ``~ grad E_q[f]`` for the parameters of
        ``q`` and for what ``f`` closes over.
    """
    if estimator.passes_function_gradients:
        return estimator(function, distribution, seed=seed, num_samples=num_samples)
    recorded = []

    def recording(samples):
        values = function(samples)
        if not recorded:
            recorded.append(values)
        return values

    surrogate = estimator(recording, distribution, seed=seed, num_samples=num_samples)
    if not recorded:
        return surrogate
    framework = framework_of_distribution(distribution, seed=seed)
    xp = framework.xp
    mean = xp.mean(recorded[0], axis=0)
    completion = with_gradient(framework, xp.zeros_like(mean), xp.ones_like(mean), mean)
    return surrogate + xp.astype(completion, surrogate.dtype)
