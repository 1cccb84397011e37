"""The Bernoulli toy's closed form against exact enumeration and finite differences.
Deterministic: float tolerances only."""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.problems import BernoulliToy, enumerate_bernoulli

LOGITS = np.array([-2.0, -0.5, 0.0, 1.5, 3.0])


def enumeration_tolerance(backend):
    # f is evaluated in the backend's widest float: float64 on TF, float32 on JAX without x64.
    return 1e-12 if backend.widest_float() == "float64" else 1e-6


@pytest.mark.parametrize("target", [0.0, 0.3, 0.45, 0.499, 1.0])
def test_closed_form_equals_enumeration_with_vector_logits(backend, target):
    """``BernoulliToy`` (closed form) and ``enumerate_bernoulli`` of the same f (2^5 states)."""
    problem = BernoulliToy(target, LOGITS)
    value, gradient = enumerate_bernoulli(problem.function, LOGITS, backend=backend.name)
    tolerance = enumeration_tolerance(backend)
    np.testing.assert_allclose(value, problem.exact_value(), rtol=tolerance)
    np.testing.assert_allclose(gradient, problem.exact_gradient(), rtol=tolerance,
                               atol=tolerance * 0.25)
    assert problem.exact_gradient().shape == (5,) and problem.num_coordinates == 5


@pytest.mark.parametrize("target", [0.1, 0.45, 0.9])
@pytest.mark.parametrize("logit", [-3.0, 0.0, 0.7])
def test_closed_form_gradient_equals_finite_differences(target, logit):
    """Central differences of the closed-form value, step 1e-5: error O(h^2) ~ 1e-10."""
    step = 1e-5
    gradient = BernoulliToy(target, logit).exact_gradient()
    difference = (BernoulliToy(target, logit + step).exact_value()
                  - BernoulliToy(target, logit - step).exact_value()) / (2 * step)
    assert gradient.shape == (1,)
    np.testing.assert_allclose(gradient[0], difference, rtol=1e-8, atol=1e-12)


def test_known_values():
    """theta = 0: value (0.55^2 + 0.45^2) / 2 and gradient (1 - 2t) / 4; t = 0.499 tiny."""
    problem = BernoulliToy(0.45, 0.0)
    assert problem.exact_value() == pytest.approx((0.55**2 + 0.45**2) / 2, rel=1e-15)
    assert problem.exact_gradient()[0] == pytest.approx(0.025, rel=1e-14)
    assert BernoulliToy(0.499, 0.0).exact_gradient()[0] == pytest.approx(5e-4, rel=1e-12)
    assert problem.detectable_bias == pytest.approx(0.25 * 0.025, rel=1e-14)
    assert BernoulliToy(0.499, 0.0, detectable_fraction=0.5).detectable_bias == pytest.approx(
        2.5e-4, rel=1e-12)


def test_extreme_logits_stay_finite():
    """p(1 - p) must not round to 0 (or NaN) when sigmoid(theta) rounds to 1."""
    problem = BernoulliToy(0.3, [40.0, -40.0, 800.0, -800.0])
    gradient = problem.exact_gradient()
    assert np.all(np.isfinite(gradient)) and np.isfinite(problem.exact_value())
    np.testing.assert_allclose(gradient[:2], 0.4 * np.exp(-40.0), rtol=1e-12)
    value, enumerated = enumerate_bernoulli(problem.function, problem.logits,
                                            backend="tensorflow")
    assert value == pytest.approx(problem.exact_value(), rel=1e-14)
    np.testing.assert_allclose(enumerated, gradient, atol=1e-15)


def test_function_sums_over_the_event(backend):
    problem = BernoulliToy(0.25, [0.0, 1.0])
    samples = backend.xp.asarray(np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
                                 dtype=backend.xp.float32)
    values = np.asarray(problem.function(samples))
    np.testing.assert_allclose(values, [0.0625 + 0.5625, 2 * 0.5625, 2 * 0.0625], rtol=1e-6)
    scalar = BernoulliToy(0.25, 0.0)
    np.testing.assert_allclose(
        np.asarray(scalar.function(backend.xp.asarray(np.array([0.0, 1.0]),
                                                      dtype=backend.xp.float32))),
        [0.0625, 0.5625], rtol=1e-6,
    )


@pytest.mark.parametrize("target", [-0.1, 1.5])
def test_target_outside_the_unit_interval_is_an_error(target):
    with pytest.raises(ValueError, match="target"):
        BernoulliToy(target, 0.0)
