"""``E_q[f]`` with an estimator, with gradients for *everything* ``f`` depends on.

An fxgx estimator returns a surrogate whose gradient w.r.t. the parameters of ``q`` is the
estimate of ``grad E_q[f]``. What the surrogate does with gradients that flow through the
*values* of ``f`` (a decoder's weights, the parameters of a reparameterised part of the
surrogate, an explicit ``log q_theta(z)`` term) depends on the estimator:

- pathwise estimators (straight-through, Gumbel-softmax, REBAR/RELAX, VIMCO) return
  ``mean_s f(z_s)`` differentiably, so those gradients arrive as ``mean_s grad f(z_s)``;
- score-function and antithetic estimators (REINFORCE and its baselines, ARM, DisARM) stop
  ``f``: those gradients are lost.

``expectation`` makes both kinds give ``mean_s grad f(z_s)`` for what ``f`` depends on.
Each estimator declares which kind it is (``Estimator.passes_function_gradients``;
``tests/estimators/test_function_gradients.py`` checks every declaration against the
estimator's behaviour). For the second kind it records the values of ``f`` on the first
batch of samples the estimator evaluates and adds

    mean_s f(z_s) - stop(mean_s f(z_s))

(value exactly 0, built with ``custom_gradient``). Because ``E[mean_s grad f(z_s)] =
E_q[grad f]`` when the ``z_s`` are draws from ``q``, this is unbiased for the gradient of
``E_q[f]`` w.r.t. the parameters ``f`` closes over. It assumes, as every fxgx estimator
does, that an estimator which stops ``f`` evaluates it first on samples from ``q`` (ARM and
DisARM: both members of each antithetic pair, each distributed as ``q``).
"""

from __future__ import annotations

from fxgx.core.custom_gradient import custom_gradient
from fxgx.distributions import Distribution


def expectation(estimator, function, distribution, *, seed, num_samples: int):
    """The estimator's surrogate of ``E_q[f]``, completed so that its gradient w.r.t. what
    ``f`` closes over is ``mean_s grad f(z_s)`` for every estimator (see the module notes)."""
    recorded = []

    def recording(samples):
        values = function(samples)
        if not recorded:
            recorded.append(values)
        return values

    surrogate = estimator(recording, distribution, seed=seed, num_samples=num_samples)
    backend = distribution.backend if isinstance(distribution, Distribution) else None
    if backend is None:
        from fxgx.backends import backend_by_name  # noqa: PLC0415

        backend = backend_by_name("tensorflow")
    if estimator.passes_function_gradients or not recorded:
        return surrogate
    mean = backend.reduce_mean(recorded[0], axis=0)
    completion = custom_gradient(backend.zeros_like(mean), backend.ones_like(mean), mean)
    return surrogate + backend.cast(completion, backend.dtype_of(surrogate))
