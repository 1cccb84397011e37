"""A multi-sample objective with an exact gradient, for VIMCO-style estimators.

For ``D`` independent Bernoulli variables with logits ``theta`` and ``K`` independent samples,

    L(theta) = E_{z_1..z_K ~ q_theta}[log (1/K sum_k exp f(z_k))]
             = sum_{s_1..s_K} prod_k q(s_k) log (1/K sum_k exp f(s_k)),
    dL/dtheta = sum_{s_1..s_K} prod_k q(s_k) log (1/K sum_k exp f(s_k))
                               * sum_k (s_k - sigmoid(theta)),

both exact by enumerating all ``(2^D)^K`` joint states (the score identity over the product
distribution). ``function`` and ``distribution`` are those of one sample, so
``fxgx.testing.gradient_moments(estimator, problem, num_samples=K)`` draws one ``K``-sample
estimate per replicate and its mean can be tested against ``exact_gradient()``.
"""

from __future__ import annotations

import numpy as np

from fxgx.backends import backend_by_name, default_backend_name
from fxgx.distributions import Bernoulli
from fxgx.problems.base import Problem
from fxgx.problems.enumeration import MAXIMUM_STATES, bernoulli_states

#: Logits and log-weight coefficients of the default problem (``multi_sample_bernoulli``).
DEFAULT_LOGITS = np.array([-0.7, 0.4, 1.2])
DEFAULT_NUM_SAMPLES = 3


def log_weight_function(samples):
    """A non-additive log-weight over ``D = 3`` bits, spread over about 8 nats (so that
    ``grad L`` is far from ``grad E[f]``)."""
    linear = 3.0 * samples[..., 0] - 1.6 * samples[..., 1] + 2.2 * samples[..., 2]
    interaction = -2.4 * samples[..., 0] * samples[..., 1] + 1.2 * samples[..., 1] * samples[..., 2]
    return linear + interaction - 0.5


def _log_mean_exp(values: np.ndarray) -> np.ndarray:
    """``log mean exp`` over the last axis, in float64."""
    largest = np.max(values, axis=-1, keepdims=True)
    return np.squeeze(largest, -1) + np.log(np.mean(np.exp(values - largest), axis=-1))


class MultiSampleObjective(Problem):
    """``E[log (1/K sum_k exp f(z_k))]`` over ``K`` Bernoulli samples, exact by enumeration."""

    kind = "bernoulli"
    #: What the problem's exact value is: not ``E[f]`` but the ``K``-sample objective.
    objective = "log_mean_exp"

    def __init__(self, function, logits, num_samples: int, *,
                 name: str = "multi_sample_bernoulli", backend: str | None = None):
        if not callable(function):
            raise TypeError(f"function must be callable, got {function!r}.")
        self.logits = np.asarray(logits, dtype=np.float64)
        if self.logits.ndim != 1:
            raise ValueError(f"logits must have shape [D], got {self.logits.shape}.")
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
            raise TypeError(f"num_samples must be an int, got {num_samples!r}.")
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be at least 1.")
        joint_states = (2 ** self.logits.shape[0]) ** int(num_samples)
        if joint_states > MAXIMUM_STATES:
            raise ValueError(
                f"(2^{self.logits.shape[0]})^{num_samples} = {joint_states} joint states exceed "
                f"the enumeration limit {MAXIMUM_STATES}; use fewer variables or samples."
            )
        self._function = function
        self.num_samples = int(num_samples)
        self.name = f"{name}(D={self.logits.shape[0]}, K={self.num_samples})"
        self._backend = backend
        self._exact = None

    def parameter_values(self):
        return [self.logits]

    def distribution(self, logits):
        return Bernoulli(logits, event_ndims=1)

    def function(self, samples):
        return self._function(samples)

    def _single_sample_values(self, states):
        backend = backend_by_name(self._backend or default_backend_name())
        values = backend.to_numpy(self._function(backend.convert(states, backend.widest_float())))
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(states),):
            raise ValueError(
                f"function returned shape {values.shape} on {len(states)} enumerated states; "
                f"it must return one value per state, shape ({len(states)},)."
            )
        return values

    def _solve(self):
        if self._exact is None:
            states = bernoulli_states(self.logits.shape[0])
            values = self._single_sample_values(states)
            probabilities = 1.0 / (1.0 + np.exp(-self.logits))
            log_q = states @ np.log(probabilities) + (1 - states) @ np.log1p(-probabilities)
            count = len(states)
            # Every K-tuple of state indices, shape [count^K, K].
            tuples = np.indices((count,) * self.num_samples).reshape(self.num_samples, -1).T
            joint_probability = np.exp(np.sum(log_q[tuples], axis=1))
            objective = _log_mean_exp(values[tuples])
            weighted = joint_probability * objective
            score = np.sum(states[tuples] - probabilities, axis=1)  # [count^K, D]
            self._exact = (float(np.sum(weighted)), weighted @ score)
        return self._exact

    def exact_value(self) -> float:
        """``L = E[log mean_k exp f(z_k)]``."""
        return self._solve()[0]

    def exact_gradient(self) -> np.ndarray:
        """``dL/dtheta``, shape ``[D]``."""
        return np.ravel(self._solve()[1])


def multi_sample_bernoulli(num_samples: int = DEFAULT_NUM_SAMPLES) -> MultiSampleObjective:
    """The default problem: ``log_weight_function`` over ``D = 3`` bits with ``K`` samples
    (``K = 3``: 512 joint states)."""
    return MultiSampleObjective(log_weight_function, DEFAULT_LOGITS, num_samples)
