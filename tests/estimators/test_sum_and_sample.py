"""Sum-and-sample (``fxgx.estimators.sum_and_sample``): with one sample it is REINFORCE on a
Gumbel-max draw, value and gradient equal to the formula on the drawn state (float64,
deterministic).

The tests it shares with the unordered set estimator (the sampler without replacement, the
whole space giving the exact value and gradient, unbiasedness at larger sets, modes,
errors) are in ``test_unordered_set.py``; ``test_catalogue.py`` tests it against the exact
gradient of every problem its card names.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.estimators import sum_and_sample
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set


def test_sum_and_sample_with_one_sample_is_reinforce():
    """k = 1: no summed states; the estimate is REINFORCE's on a Gumbel-max draw."""
    tf = pytest.importorskip("tensorflow")
    problem = get_problem("small_categorical")
    logits = tf.Variable(problem.parameter_values()[0])
    seen = []

    def recorded(samples):
        seen.append(samples.numpy())
        return problem.function(samples)

    with tf.GradientTape() as tape:
        distribution, _ = problem.bind(logits)
        value = sum_and_sample()(recorded, distribution, seed=4, num_samples=1)
    gradient = tape.gradient(value, logits).numpy()
    sample = seen[0][0]
    per_variable = tf.nn.softmax(problem.parameter_values()[0]).numpy()
    f_value = problem.function(tf.constant(sample[None])).numpy()[0]
    np.testing.assert_allclose(value.numpy(), f_value, rtol=1e-12)
    np.testing.assert_allclose(gradient, f_value * (sample - per_variable), rtol=1e-10)
