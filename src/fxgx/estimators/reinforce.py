"""The REINFORCE (score-function) surrogate, with an optional constant baseline.

    grad E[f(z)] = E[(f(z) - b) grad log q(z)]          (Williams, 1992)

The surrogate hands the primitive ``x = magic(log q(z)) = exp(log q - stop(log q))``, whose
value is 1 and whose derivatives are those of DiCE (Foerster et al., 2018): with ``gx =
(f(z) - b) / S`` every order of derivative is an unbiased estimate of the matching derivative
of ``E[f]`` (with a stopped baseline). ``f`` is evaluated under ``stop_gradient``: its
derivative is never requested, so ``f`` may be non-differentiable.
"""

from __future__ import annotations

import dataclasses

from fxgx.core.custom_gradient import custom_gradient
from fxgx.distributions import Distribution
from fxgx.estimators.base import Estimator, evaluate


def score_function_surrogate(backend, values, log_prob, baseline, num_samples):
    """``mean(values)`` with gradient ``sum_s (values_s - baseline_s)/S * grad log q_s``."""
    magic = backend.exp(log_prob - backend.stop_gradient(log_prob))
    weights = (values - baseline) / num_samples
    return custom_gradient(
        backend.reduce_mean(values, axis=0), backend.stop_gradient(weights), magic, axis=0
    )


def draw(distribution, backend, seed, num_samples):
    """Samples ``[S] + shape`` (stopped) from an fxgx or a TFP distribution."""
    if isinstance(distribution, Distribution):
        return backend.stop_gradient(distribution.sample((num_samples,), seed))
    return backend.stop_gradient(distribution.sample(num_samples, seed=seed))


@dataclasses.dataclass(frozen=True)
class Reinforce(Estimator):
    """REINFORCE with a constant baseline (0 by default). See ``reinforce``."""

    baseline: float = 0.0
    name = "reinforce"

    def _estimate(self, function, distribution, backend, seed, num_samples):
        samples = draw(distribution, backend, seed, num_samples)
        values = backend.stop_gradient(evaluate(function, samples, distribution, backend, num_samples))
        log_prob = distribution.log_prob(samples)
        baseline = backend.cast(backend.convert(self.baseline), backend.dtype_of(values))
        return score_function_surrogate(backend, values, log_prob, baseline, num_samples)


def reinforce(baseline: float = 0.0) -> Reinforce:
    """The score-function estimator ``(f(z) - baseline) grad log q(z)``, averaged over samples.

    Works for any distribution with ``sample`` and ``log_prob``; unbiased for a constant
    ``baseline``. Reference: Williams (1992), "Simple statistical gradient-following
    algorithms for connectionist reinforcement learning".
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be a number, got {baseline!r}.")
    return Reinforce(baseline=float(baseline))
