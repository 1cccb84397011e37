"""Tests of ``fxgx.problems.multi_sample.MultiSampleObjective`` (exact by enumeration).

All checks are deterministic and exact (float64): against closed forms, a brute-force sum
written independently here, the single-sample enumeration of ``fxgx.problems``, and
central differences of the exact value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fxgx.problems import enumerate_bernoulli
from fxgx.problems.multi_sample import (
    DEFAULT_LOGITS,
    MultiSampleObjective,
    log_weight_function,
    multi_sample_bernoulli,
)


def _weights_table(samples):
    """``f`` for D = 2 from a lookup table (works on NumPy and framework arrays)."""
    return 0.7 * samples[..., 0] - 1.9 * samples[..., 1] + 2.2 * samples[..., 0] * samples[..., 1]


def _brute_force(logits, num_samples, function_of_state):
    """``L`` by an explicit loop over every K-tuple (independent of the vectorised code)."""
    dimension = len(logits)
    probabilities = 1 / (1 + np.exp(-np.asarray(logits)))
    total = 0.0
    states = list(itertools.product((0, 1), repeat=dimension))
    for choice in itertools.product(states, repeat=num_samples):
        probability = 1.0
        for state in choice:
            for bit, p in zip(state, probabilities, strict=True):
                probability *= p if bit else 1 - p
        values = [function_of_state(np.array(state, float)) for state in choice]
        total += probability * math.log(sum(math.exp(v) for v in values) / num_samples)
    return total


def test_value_matches_a_brute_force_sum():
    logits = [0.4, -1.1]
    problem = MultiSampleObjective(_weights_table, logits, 3)
    assert problem.exact_value() == pytest.approx(
        _brute_force(logits, 3, _weights_table), rel=1e-12)


def test_gradient_matches_central_differences_of_the_exact_value():
    problem = multi_sample_bernoulli()
    step = 1e-5
    differences = []
    for index in range(3):
        shift = np.zeros(3)
        shift[index] = step
        upper = MultiSampleObjective(log_weight_function, DEFAULT_LOGITS + shift, 3)
        lower = MultiSampleObjective(log_weight_function, DEFAULT_LOGITS - shift, 3)
        differences.append((upper.exact_value() - lower.exact_value()) / (2 * step))
    np.testing.assert_allclose(problem.exact_gradient(), differences, rtol=1e-7, atol=1e-10)


def test_one_sample_is_the_plain_expectation():
    value, gradient = enumerate_bernoulli(log_weight_function, DEFAULT_LOGITS)
    problem = MultiSampleObjective(log_weight_function, DEFAULT_LOGITS, 1)
    assert problem.exact_value() == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(problem.exact_gradient(), gradient, rtol=1e-12, atol=1e-15)


def test_constant_log_weight_gives_a_constant_objective():
    problem = MultiSampleObjective(lambda samples: 0.0 * samples[..., 0] + 1.25, [0.3, 2.0], 3)
    assert problem.exact_value() == pytest.approx(1.25, rel=1e-12)
    np.testing.assert_allclose(problem.exact_gradient(), 0.0, atol=1e-14)


def test_objective_grows_with_the_number_of_samples():
    """Jensen: ``L_K`` is non-decreasing in K and bounded by ``log E[exp f]``."""
    values = [MultiSampleObjective(log_weight_function, DEFAULT_LOGITS, k).exact_value()
              for k in (1, 2, 3, 4)]
    assert all(later > earlier for earlier, later in itertools.pairwise(values))
    probabilities = 1 / (1 + np.exp(-DEFAULT_LOGITS))
    states = np.array(list(itertools.product((0.0, 1.0), repeat=3)))
    weights = np.prod(np.where(states > 0.5, probabilities, 1 - probabilities), axis=1)
    upper = math.log(np.sum(weights * np.exp(log_weight_function(states))))
    assert values[-1] < upper


def test_problem_interface():
    problem = multi_sample_bernoulli()
    assert problem.num_samples == 3 and problem.kind == "bernoulli"
    assert problem.objective == "log_mean_exp"
    assert problem.num_coordinates == 3
    assert "K=3" in problem.name
    assert problem.detectable_bias > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="logits"):
        MultiSampleObjective(log_weight_function, [[0.1, 0.2]], 2)
    with pytest.raises(ValueError, match="num_samples"):
        MultiSampleObjective(log_weight_function, [0.1], 0)
    with pytest.raises(TypeError, match="num_samples"):
        MultiSampleObjective(log_weight_function, [0.1], 2.0)
    with pytest.raises(ValueError, match="joint states"):
        MultiSampleObjective(log_weight_function, np.zeros(8), 3)
    with pytest.raises(TypeError, match="function"):
        MultiSampleObjective("f", [0.1], 2)
    problem = MultiSampleObjective(lambda samples: samples, [0.1, 0.2], 2)
    with pytest.raises(ValueError, match="one value per state"):
        problem.exact_gradient()
