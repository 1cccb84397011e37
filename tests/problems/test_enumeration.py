"""Exact enumeration against brute-force numpy and finite differences; size limits.
Deterministic: float tolerances only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fxgx.backends import get_framework
from fxgx.problems import (
    EnumeratedBernoulli,
    EnumeratedCategorical,
    enumerate_bernoulli,
    enumerate_categorical,
    enumeration,
)
from fxgx.problems.enumeration import MAXIMUM_STATES, bernoulli_states, categorical_states

CATEGORICAL_LOGITS = np.array([[0.3, -1.2, 0.8], [1.5, 0.0, -0.4]])  # D = 2, K = 3
WEIGHTS = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.75]])


def categorical_function(samples):
    """A non-additive f of one-hot samples ``[..., 2, 3]``: (w . z)^2 + 1.5 z_{0,2} z_{1,0}."""
    backend = get_framework(samples)
    weights = backend.xp.asarray(WEIGHTS, dtype=samples.dtype)
    linear = backend.xp.sum(samples * weights, axis=(-2, -1))
    return backend.xp.square(linear) + 1.5 * samples[..., 0, 2] * samples[..., 1, 0]


def categorical_brute_force(logits):
    """E[f] by looping over the K^D class assignments in plain numpy."""
    num_variables, num_classes = logits.shape
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    total = 0.0
    for classes in itertools.product(range(num_classes), repeat=num_variables):
        weight = np.prod([probabilities[d, k] for d, k in enumerate(classes)])
        linear = sum(WEIGHTS[d, k] for d, k in enumerate(classes))
        value = linear**2 + 1.5 * (classes[0] == 2) * (classes[1] == 0)
        total += weight * value
    return total


def central_differences(value_function, logits, step=1e-5):
    gradient = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[index] += step
        minus[index] -= step
        gradient[index] = (value_function(plus) - value_function(minus)) / (2 * step)
    return gradient


def tolerance(backend):
    return 1e-12 if backend.widest_float() == "float64" else 1e-6


def test_categorical_enumeration_equals_brute_force_and_finite_differences(backend):
    value, gradient = enumerate_categorical(categorical_function, CATEGORICAL_LOGITS,
                                            backend=backend.name)
    assert gradient.shape == CATEGORICAL_LOGITS.shape
    np.testing.assert_allclose(value, categorical_brute_force(CATEGORICAL_LOGITS),
                               rtol=tolerance(backend))
    # Gradient: finite differences of the brute-force value (independent of the score formula).
    brute = central_differences(categorical_brute_force, CATEGORICAL_LOGITS)
    np.testing.assert_allclose(gradient, brute, rtol=1e-7, atol=1e-8)
    # Softmax invariance: adding a constant to a variable's logits changes nothing.
    np.testing.assert_allclose(gradient.sum(axis=-1), 0.0, atol=1e-6)


def test_categorical_enumeration_equals_finite_differences_of_itself():
    def value(logits):
        return enumerate_categorical(categorical_function, logits, backend="tensorflow")[0]

    _, gradient = enumerate_categorical(categorical_function, CATEGORICAL_LOGITS,
                                        backend="tensorflow")
    np.testing.assert_allclose(gradient, central_differences(value, CATEGORICAL_LOGITS),
                               rtol=1e-7, atol=1e-9)


def bernoulli_function(samples):
    """Non-additive: (b_0 + 2 b_1 - b_2 - 0.5)^2 + 3 b_0 b_2."""
    backend = get_framework(samples)
    linear = samples[..., 0] + 2 * samples[..., 1] - samples[..., 2] - 0.5
    return backend.xp.square(linear) + 3 * samples[..., 0] * samples[..., 2]


def bernoulli_brute_force(logits):
    probabilities = 1 / (1 + np.exp(-logits))
    total = 0.0
    for bits in itertools.product((0, 1), repeat=len(logits)):
        weight = np.prod([p if b else 1 - p for p, b in zip(probabilities, bits, strict=True)])
        total += weight * ((bits[0] + 2 * bits[1] - bits[2] - 0.5) ** 2 + 3 * bits[0] * bits[2])
    return total


def test_bernoulli_enumeration_equals_brute_force_and_finite_differences(backend):
    logits = np.array([-0.7, 0.4, 1.9])
    value, gradient = enumerate_bernoulli(bernoulli_function, logits, backend=backend.name)
    np.testing.assert_allclose(value, bernoulli_brute_force(logits), rtol=tolerance(backend))
    np.testing.assert_allclose(gradient, central_differences(bernoulli_brute_force, logits),
                               rtol=1e-7, atol=1e-9)


def test_enumerated_problems_expose_the_enumeration():
    bernoulli = EnumeratedBernoulli(bernoulli_function, [-0.7, 0.4, 1.9], backend="tensorflow")
    value, gradient = enumerate_bernoulli(bernoulli_function, [-0.7, 0.4, 1.9],
                                          backend="tensorflow")
    assert bernoulli.exact_value() == value and bernoulli.num_coordinates == 3
    np.testing.assert_array_equal(bernoulli.exact_gradient(), gradient)
    categorical = EnumeratedCategorical(categorical_function, CATEGORICAL_LOGITS,
                                        backend="tensorflow")
    assert categorical.num_coordinates == 6 and categorical.kind == "categorical"
    np.testing.assert_array_equal(
        categorical.exact_gradient(),
        enumerate_categorical(categorical_function, CATEGORICAL_LOGITS, backend="tensorflow")[1]
        .ravel(),
    )


def test_state_tables():
    states = bernoulli_states(3)
    assert states.shape == (8, 3) and len({tuple(s) for s in states}) == 8
    one_hot = categorical_states(2, 3)
    assert one_hot.shape == (9, 2, 3)
    np.testing.assert_array_equal(one_hot.sum(axis=-1), 1.0)
    assert len({tuple(s.ravel()) for s in one_hot}) == 9


def never_called(samples):
    raise AssertionError("the size check must come before evaluating f")


def test_size_limits_raise_clear_errors():
    assert MAXIMUM_STATES == 2**20
    with pytest.raises(ValueError, match=r"2\^21 states exceed the enumeration limit 1048576"):
        bernoulli_states(21)
    with pytest.raises(ValueError, match=r"8\^7 states exceed the enumeration limit"):
        categorical_states(7, 8)
    with pytest.raises(ValueError, match="enumeration limit"):
        enumerate_bernoulli(never_called, np.zeros(21))
    with pytest.raises(ValueError, match="enumeration limit"):
        enumerate_categorical(never_called, np.zeros((11, 4)))


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"logits must have shape \[D\]"):
        enumerate_bernoulli(bernoulli_function, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"logits must have shape \[D, K\]"):
        enumerate_categorical(categorical_function, np.zeros(3))

    def per_element(samples):  # forgot to sum over the event
        return samples

    with pytest.raises(ValueError, match=r"one value per state, shape \(8,\)"):
        enumerate_bernoulli(per_element, np.zeros(3), backend="tensorflow")


def test_the_limit_is_inclusive(monkeypatch):
    monkeypatch.setattr(enumeration, "MAXIMUM_STATES", 64)
    assert bernoulli_states(6).shape == (64, 6)
    assert categorical_states(3, 4).shape == (64, 3, 4)
    with pytest.raises(ValueError, match=r"2\^7 states exceed the enumeration limit 64"):
        bernoulli_states(7)
    with pytest.raises(ValueError, match=r"5\^3 states exceed the enumeration limit 64"):
        categorical_states(3, 5)
