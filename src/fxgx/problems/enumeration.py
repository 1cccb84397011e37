"""Exact expectations and gradients by enumerating a small discrete space.

For independent Bernoulli variables with logits ``theta`` (``D`` of them, ``2^D`` states)

    E[f] = sum_s q(s) f(s),   dE/dtheta_d = sum_s q(s) f(s) (s_d - sigmoid(theta_d)),

and for ``D`` categorical variables with ``K`` classes (``K^D`` states)

    dE/dtheta_{d,k} = sum_s q(s) f(s) (1[s_d = k] - softmax(theta_d)_k).

Both are the score identity summed over every state: exact up to rounding, with no
sampling. ``f`` is evaluated once, on a batch of all the states, on the chosen backend in its
widest float (float64 on TensorFlow; on JAX float32 unless ``jax_enable_x64`` is on), so any
user ``f`` written for an estimator gets an exact gradient for free; the sums are float64.
"""

from __future__ import annotations

import itertools

import numpy as np

from fxgx.backends import backend_by_name, default_backend_name
from fxgx.distributions import Bernoulli, OneHotCategorical
from fxgx.problems.base import Problem

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
    backend = backend_by_name(backend_name or default_backend_name())
    states_array = backend.convert(states, backend.widest_float())
    values = backend.to_numpy(function(states_array)).astype(np.float64)
    if values.shape != (len(states),):
        raise ValueError(
            f"function returned shape {values.shape} on {len(states)} enumerated states; it "
            f"must return one value per state, shape ({len(states)},)."
        )
    return values


def enumerate_bernoulli(function, logits, *, backend: str | None = None):
    """Exact ``(E[f], dE/dlogits)`` for independent Bernoulli variables (``logits`` shape [D])."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must have shape [D], got {logits.shape}.")
    states = bernoulli_states(logits.shape[0])
    # log sigmoid(l) = -log(1 + e^-l) by logaddexp: finite for every finite logit (log(p)
    # and log1p(-p) would give 0 * -inf = NaN once p rounds to 0 or 1, |l| > ~37).
    log_probabilities = -np.logaddexp(0.0, -logits)
    probabilities = np.exp(log_probabilities)
    log_q = states @ log_probabilities + (1 - states) @ -np.logaddexp(0.0, logits)
    weights = np.exp(log_q) * _evaluate(function, states, backend)
    value = float(np.sum(weights))
    gradient = weights @ (states - probabilities)
    return value, gradient


def enumerate_categorical(function, logits, *, backend: str | None = None):
    """Exact ``(E[f], dE/dlogits)`` for independent categoricals (``logits`` shape [D, K])."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [D, K], got {logits.shape}.")
    dimension, num_classes = logits.shape
    states = categorical_states(dimension, num_classes)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    log_q = np.einsum("sdk,dk->s", states, log_softmax)
    weights = np.exp(log_q) * _evaluate(function, states, backend)
    value = float(np.sum(weights))
    gradient = np.einsum("s,sdk->dk", weights, states - np.exp(log_softmax))
    return value, gradient


class _Enumerated(Problem):
    """Shared body: ``f``, the logits, and the exact solution computed once on demand."""

    def __init__(self, function, logits, *, name: str, backend: str | None = None):
        self._function = function
        self.logits = np.asarray(logits, dtype=np.float64)
        self.name = name
        self._backend = backend
        self._exact = None

    def parameter_values(self):
        return [self.logits]

    def function(self, samples):
        return self._function(samples)

    def _enumerate(self):
        raise NotImplementedError

    def _solve(self):
        if self._exact is None:
            self._exact = self._enumerate()
        return self._exact

    def exact_value(self):
        return self._solve()[0]

    def exact_gradient(self):
        return np.ravel(self._solve()[1])


class EnumeratedBernoulli(_Enumerated):
    """``E[f(b)]`` for ``D`` independent Bernoulli variables, exact by enumeration."""

    kind = "bernoulli"

    def __init__(self, function, logits, *, name: str = "enumerated_bernoulli",
                 backend: str | None = None):
        super().__init__(function, logits, name=name, backend=backend)

    def distribution(self, logits):
        return Bernoulli(logits, event_ndims=1)

    def _enumerate(self):
        return enumerate_bernoulli(self._function, self.logits, backend=self._backend)


class EnumeratedCategorical(_Enumerated):
    """``E[f(z)]`` for ``D`` independent ``K``-class one-hot variables, exact by enumeration."""

    kind = "categorical"

    def __init__(self, function, logits, *, name: str = "enumerated_categorical",
                 backend: str | None = None):
        super().__init__(function, logits, name=name, backend=backend)

    def distribution(self, logits):
        return OneHotCategorical(logits, event_ndims=1)

    def _enumerate(self):
        return enumerate_categorical(self._function, self.logits, backend=self._backend)
