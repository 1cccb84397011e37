"""Straight-through with a slope (``straight_through_slope(slope=a)``): bad slopes are errors
that name it, and the default slope gives plain straight-through's numbers bit for bit.

The tests it shares with plain straight-through (the exact mean by enumeration, with ``a = 3``
and ``a = 2`` among the cases; the sample blocks with a slope; the interface) are in
``test_straight_through.py``; a traced slope under ``jax.jit`` or ``tf.function`` is in
``test_gumbel_softmax.py``. All deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fxgx.estimators import straight_through, straight_through_bernoulli, straight_through_slope
from fxgx.problems import BernoulliToy


@pytest.mark.parametrize("slope", [0, -1.0, math.inf, math.nan])
def test_bad_slope_is_a_value_error_naming_slope(slope):
    with pytest.raises(ValueError, match="slope"):
        straight_through_slope(slope)
    with pytest.raises(ValueError, match="slope"):
        straight_through_bernoulli(np.zeros(3, np.float32), seed=0, slope=slope)


@pytest.mark.parametrize("slope", [True, "2", None])
def test_slope_of_the_wrong_type_is_a_type_error(slope):
    with pytest.raises(TypeError, match="slope"):
        straight_through_slope(slope)


# Compares straight_through_slope() with straight_through().
def test_default_slope_matches_plain_straight_through(backend):
    problem = BernoulliToy(0.3, [-1.0, 0.0, 1.5])
    logits = backend.xp.asarray(problem.logits, dtype=backend.xp.float32)

    def run(estimator):
        total = lambda theta: estimator(problem.function, problem.distribution(theta),  # noqa: E731
                                        seed=6, num_samples=5)
        value, (gradient,) = backend.compile(
            lambda theta: backend.value_and_gradient(total, [theta]))(logits)
        return np.asarray(value), np.asarray(gradient)

    for plain, sloped in zip(run(straight_through()), run(straight_through_slope()), strict=True):
        np.testing.assert_array_equal(plain, sloped)
