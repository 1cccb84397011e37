"""Exact expectations and gradients by enumerating a small discrete space.

For independent Bernoulli variables with logits ``theta`` (``D`` of them, ``2^D`` states)

    E[f] = sum_s q(s) f(s),   dE/dtheta_d = sum_s q(s) f(s) (s_d - sigmoid(theta_d)),

and for ``D`` categorical variables with ``K`` classes (``K^D`` states)

    dE/dtheta_{d,k} = sum_s q(s) f(s) (1[s_d = k] - softmax(theta_d)_k).

Both are the score identity summed over every state: exact up to rounding, with no
sampling. ``f`` is evaluated once, on a batch of all the states, on the chosen framework in its
widest float (float64 on TensorFlow; on JAX float32 unless ``jax_enable_x64`` is on), so any
user ``f`` written for an estimator gets an exact gradient for free; the sums are float64.
"""

from __future__ import annotations

import itertools

import numpy as np

from fxgx.backends import default_framework_name, framework_by_name
from fxgx.core.arrays import as_dtype
from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.problems.base import FunctionParameters, Problem

MAXIMUM_STATES = 2**20


def bernoulli_states(dimension: int) -> np.ndarray:
    """All ``2^D`` binary vectors, shape ``[2^D, D]``, float64."""
    if 2**dimension > MAXIMUM_STATES:
        raise ValueError(f"2^{dimension} states exceed the enumeration limit {MAXIMUM_STATES}.")
    return np.array(list(itertools.product((0.0, 1.0), repeat=dimension)), dtype=np.float64)


def categorical_states(dimension: int, num_classes: int) -> np.ndarray:
    """All ``K^D`` one-hot configurations, shape ``[K^D, D, K]``, float64."""
    if num_classes**dimension > MAXIMUM_STATES:
        raise ValueError(
            f"{num_classes}^{dimension} states exceed the enumeration limit {MAXIMUM_STATES}."
        )
    indices = np.array(list(itertools.product(range(num_classes), repeat=dimension)))
    return np.eye(num_classes)[indices].reshape(len(indices), dimension, num_classes)


def _evaluate(function, states: np.ndarray, backend_name: str | None) -> np.ndarray:
    framework = framework_by_name(backend_name or default_framework_name())
    xp = framework.xp
    states_array = xp.asarray(states, dtype=as_dtype(xp, framework.widest_float()))
    values = np.asarray(function(states_array)).astype(np.float64)
    if values.shape != (len(states),):
        raise ValueError(
            f"function returned shape {values.shape} on {len(states)} enumerated states; it "
            f"must return one value per state, shape ({len(states)},)."
        )
    return values


def enumerate_bernoulli(function, logits, *, backend: str | None = None):
    """Exact ``(E[f], dE/dlogits)`` for independent Bernoulli variables, by enumeration.

    ``dE/dlogits = sum_b q(b) f(b) (b - p)``, summed over the ``2^D`` states in float64.

    Args:
        function: ``f``, mapping states ``[N, D]`` to values ``[N]``.
        logits: shape ``[D]``.
        backend: the framework that evaluates ``f`` (default: TensorFlow if installed).

    Returns:
        ``(value, gradient)``: a float and a float64 array of shape ``[D]``.

    Raises:
        ValueError: ``logits`` is not of shape ``[D]``, or ``f`` does not return one value
            per state.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must have shape [D], got {logits.shape}.")
    states = bernoulli_states(logits.shape[0])
    # log sigmoid(l) = -log(1 + e^-l) by logaddexp: finite for every finite logit (log(p)
    # and log1p(-p) would give 0 * -inf = NaN once p rounds to 0 or 1, |l| > ~37).
    probabilities = np.exp(-np.logaddexp(0.0, -logits))
    log_q = bernoulli_log_probabilities(states, logits)
    weights = np.exp(log_q) * _evaluate(function, states, backend)
    value = float(np.sum(weights))
    gradient = weights @ (states - probabilities)
    return value, gradient


def enumerate_categorical(function, logits, *, backend: str | None = None):
    """Exact ``(E[f], dE/dlogits)`` for independent categoricals, by enumeration.

    ``dE/dlogits = sum_z q(z) f(z) (z - p)``, summed over the ``K^D`` states in float64.

    Args:
        function: ``f``, mapping one-hot states ``[N, D, K]`` to values ``[N]``.
        logits: shape ``[D, K]``.
        backend: the framework that evaluates ``f`` (default: TensorFlow if installed).

    Returns:
        ``(value, gradient)``: a float and a float64 array of shape ``[D, K]``.

    Raises:
        ValueError: ``logits`` is not of shape ``[D, K]``, or ``f`` does not return one
            value per state.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [D, K], got {logits.shape}.")
    dimension, num_classes = logits.shape
    states = categorical_states(dimension, num_classes)
    log_q = categorical_log_probabilities(states, logits)
    weights = np.exp(log_q) * _evaluate(function, states, backend)
    value = float(np.sum(weights))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(shifted) / np.sum(np.exp(shifted), axis=-1, keepdims=True)
    gradient = np.einsum("s,sdk->dk", weights, states - probabilities)
    return value, gradient


def expected_function_gradients(function, states, log_probabilities, parameter_values,
                                backend_name: str | None):
    """``[sum_s q(s) df(s; phi)/dphi for each phi]``: the enumerated expectation of ``f``
    differentiated w.r.t. ``f``'s own parameters, in the backend's widest float."""
    framework = framework_by_name(backend_name or default_framework_name())
    xp = framework.xp
    dtype = as_dtype(xp, framework.widest_float())
    states_array = xp.asarray(states, dtype=dtype)
    probabilities = xp.asarray(np.exp(log_probabilities), dtype=dtype)

    def expected(*parameters):
        return xp.sum(probabilities * function(states_array, *parameters))

    _, gradients = framework.value_and_gradient(
        expected, [xp.asarray(np.asarray(value, np.float64), dtype=dtype)
                   for value in parameter_values])
    return [np.asarray(np.asarray(gradient), np.float64) for gradient in gradients]


def bernoulli_log_probabilities(states: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``log q(s)`` of every Bernoulli state, float64 (finite for every finite logit)."""
    return states @ -np.logaddexp(0.0, -logits) + (1 - states) @ -np.logaddexp(0.0, logits)


def categorical_log_probabilities(states: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``log q(s)`` of every one-hot categorical state, float64."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return np.einsum("sdk,dk->s", states, log_softmax)


class _Enumerated(FunctionParameters, Problem):
    """Shared body: ``f``, the logits, ``f``'s own parameters, and the exact solution
    computed once on demand."""

    def __init__(self, function, logits, *, name: str, backend: str | None = None,
                 function_parameters=()):
        self._function = function
        self.logits = np.asarray(logits, dtype=np.float64)
        self.function_parameters = [np.asarray(value, np.float64)
                                    for value in function_parameters]
        self.name = name
        self._backend = backend
        self._exact = None

    def _states(self):
        raise NotImplementedError

    def _log_probabilities(self, states):
        raise NotImplementedError

    def _enumerate(self):
        raise NotImplementedError

    def _solve(self):
        if self._exact is None:
            value, logits_gradient = self._enumerate()
            gradients = [logits_gradient]
            if self.function_parameters:
                states = self._states()
                gradients += expected_function_gradients(
                    self._function, states, self._log_probabilities(states),
                    self.function_parameters, self._backend)
            self._exact = (value, np.concatenate([np.ravel(g) for g in gradients]))
        return self._exact

    def exact_value(self):
        return self._solve()[0]

    def exact_gradient(self):
        return self._solve()[1]


class EnumeratedBernoulli(_Enumerated):
    """``E[f(b)]`` (or ``E[f(b; phi)]``) for ``D`` independent Bernoulli variables, exact by
    enumeration. With ``function_parameters``, ``f`` is called as ``f(b, *phi)`` and the
    parameters are ``[logits, *phi]``.

    Args:
        function: ``f(b)`` or ``f(b, *phi)``, mapping states ``[N, D]`` to values ``[N]``.
        logits: shape ``[D]``.
        name: the problem's name in reports.
        backend: the framework that evaluates ``f`` (default: TensorFlow if installed).
        function_parameters: the values of ``phi``, if any.
    """

    kind = "bernoulli"

    def __init__(self, function, logits, *, name: str = "enumerated_bernoulli",
                 backend: str | None = None, function_parameters=()):
        super().__init__(function, logits, name=name, backend=backend,
                         function_parameters=function_parameters)

    def distribution(self, logits):
        """``Bernoulli(logits, event_ndims=1)``.

        Args:
            logits: shape ``[..., D]``.

        Returns:
            A ``Bernoulli``.
        """
        return Bernoulli(logits, event_ndims=1)

    def _states(self):
        return bernoulli_states(self.logits.shape[0])

    def _log_probabilities(self, states):
        return bernoulli_log_probabilities(states, self.logits)

    def _enumerate(self):
        return enumerate_bernoulli(self.function, self.logits, backend=self._backend)


class EnumeratedCategorical(_Enumerated):
    """``E[f(z)]`` (or ``E[f(z; phi)]``) for ``D`` independent ``K``-class one-hot variables,
    exact by enumeration. ``function_parameters`` as for ``EnumeratedBernoulli``.

    Args:
        function: ``f(z)`` or ``f(z, *phi)``, mapping states ``[N, D, K]`` to values ``[N]``.
        logits: shape ``[D, K]``.
        name: the problem's name in reports.
        backend: the framework that evaluates ``f`` (default: TensorFlow if installed).
        function_parameters: the values of ``phi``, if any.
    """

    kind = "categorical"

    def __init__(self, function, logits, *, name: str = "enumerated_categorical",
                 backend: str | None = None, function_parameters=()):
        super().__init__(function, logits, name=name, backend=backend,
                         function_parameters=function_parameters)

    def distribution(self, logits):
        """``OneHotCategorical(logits, event_ndims=1)``.

        Args:
            logits: shape ``[..., D, K]``.

        Returns:
            A ``OneHotCategorical``.
        """
        return OneHotCategorical(logits, event_ndims=1)

    def _states(self):
        return categorical_states(*self.logits.shape)

    def _log_probabilities(self, states):
        return categorical_log_probabilities(states, self.logits)

    def _enumerate(self):
        return enumerate_categorical(self.function, self.logits, backend=self._backend)
