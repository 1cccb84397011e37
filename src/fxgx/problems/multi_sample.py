"""A multi-sample objective with an exact gradient, for VIMCO-style estimators.

For ``D`` independent Bernoulli variables with logits ``theta`` and ``K`` independent samples,

    L(theta) = E_{z_1..z_K ~ q_theta}[log (1/K sum_k exp f(z_k))]
             = sum_{s_1..s_K} prod_k q(s_k) log (1/K sum_k exp f(s_k)),
    dL/dtheta = sum_{s_1..s_K} prod_k q(s_k) log (1/K sum_k exp f(s_k))
                               * sum_k (s_k - sigmoid(theta)),

both exact by enumerating all ``(2^D)^K`` joint states (the score identity over the product
distribution). With ``function_parameters``, ``f(z; phi)`` has parameters of its own and the
exact gradient also holds ``dL/dphi``: the enumerated ``L`` differentiated by the framework's
autodiff (``E[sum_k w~_k df(z_k)/dphi]`` with ``w~`` the normalised weights). ``function``
and ``distribution`` are those of one sample, so ``fxgx.testing.gradient_moments(estimator,
problem, num_samples=K)`` draws one ``K``-sample estimate per replicate and its mean can be
tested against ``exact_gradient()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fxgx.backends import default_framework_name, framework_by_name
from fxgx.core.arrays import as_dtype
from fxgx.distributions import Bernoulli
from fxgx.problems.base import FunctionParameters, Problem
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


#: Coefficients ``c`` of ``log_weight_function`` as a function with parameters,
#: ``c_0 b_0 + c_1 b_1 + c_2 b_2 + c_3 b_0 b_1 + c_4 b_1 b_2 + c_5``.
LOG_WEIGHT_COEFFICIENTS = np.array([3.0, -1.6, 2.2, -2.4, 1.2, -0.5])


def parameterized_log_weight(samples, coefficients):
    """``log_weight_function`` with its coefficients as a parameter (shape ``[6]``, or
    ``batch_shape + [6]`` for samples ``[S] + batch_shape + [3]``)."""
    b0, b1, b2 = samples[..., 0], samples[..., 1], samples[..., 2]
    c = [coefficients[..., index] for index in range(6)]
    return c[0] * b0 + c[1] * b1 + c[2] * b2 + c[3] * b0 * b1 + c[4] * b1 * b2 + c[5]


def _log_mean_exp(values: np.ndarray) -> np.ndarray:
    """``log mean exp`` over the last axis, in float64."""
    largest = np.max(values, axis=-1, keepdims=True)
    return np.squeeze(largest, -1) + np.log(np.mean(np.exp(values - largest), axis=-1))


class MultiSampleObjective(FunctionParameters, Problem):
    """``E[log (1/K sum_k exp f(z_k))]`` over ``K`` Bernoulli samples, exact by enumeration."""

    kind = "bernoulli"
    #: What the problem's exact value is: not ``E[f]`` but the ``K``-sample objective.
    objective = "log_mean_exp"

    def __init__(self, function: Callable[..., Any], logits, num_samples: int, *,
                 name: str = "multi_sample_bernoulli", backend: str | None = None,
                 function_parameters=()):
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
        self.function_parameters = [np.asarray(value, np.float64)
                                    for value in function_parameters]
        self.num_samples = int(num_samples)
        self.name = f"{name}(D={self.logits.shape[0]}, K={self.num_samples})"
        self._backend = backend
        self._exact = None

    def distribution(self, logits):
        return Bernoulli(logits, event_ndims=1)

    def _framework(self):
        return framework_by_name(self._backend or default_framework_name())

    def _single_sample_values(self, states):
        framework = self._framework()
        xp = framework.xp
        dtype = as_dtype(xp, framework.widest_float())
        values = np.asarray(self.function(xp.asarray(states, dtype=dtype)))
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(states),):
            raise ValueError(
                f"function returned shape {values.shape} on {len(states)} enumerated states; "
                f"it must return one value per state, shape ({len(states)},)."
            )
        return values

    def _function_parameter_gradients(self, states, tuples, joint_probability):
        """``dL/dphi`` for each of ``f``'s parameters: ``L`` enumerated on the framework (its
        widest float) and differentiated by autodiff."""
        framework = self._framework()
        xp = framework.xp
        dtype = as_dtype(xp, framework.widest_float())
        states_array = xp.asarray(states, dtype=dtype)
        # Row (t, k) of `selection` picks state tuples[t, k]: values of every tuple by matmul.
        selection = xp.asarray(np.eye(len(states))[tuples.reshape(-1)], dtype=dtype)
        weights = xp.asarray(joint_probability, dtype=dtype)
        count = self.num_samples

        def objective(*parameters):
            values = self._function(states_array, *parameters)
            per_tuple = xp.reshape(xp.matmul(selection, values[:, None]), (-1, count))
            log_mean = framework.logsumexp(per_tuple, axis=1) - float(np.log(count))
            return xp.sum(weights * log_mean)

        _, gradients = framework.value_and_gradient(
            objective, [xp.asarray(value, dtype=dtype) for value in self.function_parameters])
        return [np.ravel(np.asarray(np.asarray(gradient), np.float64))
                for gradient in gradients]

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
            gradients = [weighted @ score]
            if self.function_parameters:
                gradients += self._function_parameter_gradients(states, tuples,
                                                                joint_probability)
            self._exact = (float(np.sum(weighted)), np.concatenate(gradients))
        return self._exact

    def exact_value(self) -> float:
        """``L = E[log mean_k exp f(z_k)]``."""
        return self._solve()[0]

    def exact_gradient(self) -> np.ndarray:
        """``dL/dtheta`` (shape ``[D]``), then ``dL/dphi`` for each of ``f``'s parameters."""
        return self._solve()[1]


def multi_sample_bernoulli(num_samples: int = DEFAULT_NUM_SAMPLES) -> MultiSampleObjective:
    """The default problem: ``log_weight_function`` over ``D = 3`` bits with ``K`` samples
    (``K = 3``: 512 joint states)."""
    return MultiSampleObjective(log_weight_function, DEFAULT_LOGITS, num_samples)


def multi_sample_decoder(num_samples: int = DEFAULT_NUM_SAMPLES) -> MultiSampleObjective:
    """The default problem with the log-weight's coefficients as a parameter of ``f`` (a
    stand-in for a decoder): parameters ``[logits, coefficients]``."""
    return MultiSampleObjective(parameterized_log_weight, DEFAULT_LOGITS, num_samples,
                                name="multi_sample_decoder",
                                function_parameters=[LOG_WEIGHT_COEFFICIENTS])
