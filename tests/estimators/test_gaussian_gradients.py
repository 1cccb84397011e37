"""The three Gaussian estimators side by side: pathwise, measure-valued and the
delta-method control variate (``fxgx.estimators.gaussian``) reject non-normal latents and
give the same numbers in every execution mode (deterministic; each test is parametrised over
the three cards).

Each card's own tests are in ``test_pathwise.py``, ``test_measure_valued.py`` and
``test_delta_method_control_variate.py``; unbiasedness against the exact gradients of
``gaussian``, ``gaussian_linear``, ``gaussian_quadratic`` and ``gaussian_cubic`` is the
catalogue's (``test_catalogue.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import batched_gradients as _batched_gradients

from fxgx.distributions import Bernoulli
from fxgx.estimators import delta_method_control_variate, measure_valued, pathwise
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set

ESTIMATORS = {"pathwise": pathwise, "measure_valued": measure_valued,
              "delta_method_control_variate": delta_method_control_variate}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_non_normal_latents_are_a_type_error(name):
    import tensorflow as tf

    with pytest.raises(TypeError, match=f"{name} supports normal distributions"):
        ESTIMATORS[name]()(lambda z: z, Bernoulli(tf.constant([0.1])), seed=0, num_samples=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_same_numbers_in_every_mode(framework, name):
    """Eager, ``tf.function`` and XLA on TensorFlow, eager and ``jax.jit`` on JAX: the same
    value and gradients for one seed (float32 rounding only)."""
    problem = get_problem("gaussian_cubic")
    results = [_batched_gradients(framework, ESTIMATORS[name](), problem, seed=4, num_samples=2,
                                  mode=mode) for mode in framework.modes]
    for result in results[1:]:
        for got, expected in zip(result, results[0], strict=True):
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
