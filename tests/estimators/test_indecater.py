"""IndeCateR: deterministic checks that can fail (the catalogue tests its unbiasedness).

For one variable per event (``D = 1``) IndeCateR sums the variable's classes out exactly,
so its estimate is the exact gradient for every seed; for an additive ``f = sum_d h_d(z_d)``
each term ``f(z_{-d}, k) - sum_j p_d(j) f(z_{-d}, j) = h_d(k) - E[h_d]`` does not depend on
the sampled other variables, so the estimate is exact for every seed too, whatever the
batch and event shapes. Both hold to rounding only if the classes are substituted at the
right positions and the values are put back in the logits' layout.
"""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import IndeCateR, indecater
from fxgx.problems import get_problem

#: The JAX instances run the same backend-generic code as the TensorFlow ones: in the slow
#: set (CI runs it), to keep the default suite within its time budget.
pytestmark = pytest.mark.jax_in_slow_set


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


SEEDS = (0, 1, 7, 123)


def _gradient(framework, estimator_call, logits_, mode="eager"):
    with framework.x64("float64"):
        value, (gradient,) = framework.value_and_vjp(
            estimator_call, framework.constant(logits_, "float64"), mode=mode)
    return value, gradient


@pytest.mark.parametrize("seed", SEEDS)
def test_one_bernoulli_variable_gives_the_exact_gradient_for_every_seed(framework, seed):
    """A batch of three one-bit events, ``f(b) = (b - 0.45)^2`` per member (``D = 1``): the
    gradient and the value are exact."""
    logits_ = np.array([-2.0, 0.0, 2.0])

    def call(logits):
        return framework.backend.xp.sum(indecater()(
            lambda b: (b - 0.45) ** 2, Bernoulli(logits), seed=seed, num_samples=2))

    value, gradient = _gradient(framework, call, logits_)
    p = sigmoid(logits_)
    np.testing.assert_allclose(gradient, p * (1 - p) * (0.55**2 - 0.45**2), rtol=1e-13)
    np.testing.assert_allclose(value, np.sum(p * 0.55**2 + (1 - p) * 0.45**2), rtol=1e-13)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_additive_bernoulli_toy_gives_the_exact_gradient_for_every_seed(framework, seed):
    """The ``bernoulli_toy`` problem: one event of three bits, f a sum over the bits."""
    problem = get_problem("bernoulli_toy")

    def call(logits):
        return framework.backend.xp.sum(indecater()(
            problem.function, problem.distribution(logits), seed=seed, num_samples=2))

    _, gradient = _gradient(framework, call, problem.logits)
    np.testing.assert_allclose(gradient, problem.exact_gradient(), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_categorical_variable_gives_the_exact_gradient_for_every_seed(framework, seed):
    """``f(z) = c . z`` for one five-class variable: ``grad = p * (c - p . c)``."""
    logits_ = np.array([0.3, -1.2, 0.8, 0.0, 2.1])
    scores_ = np.array([1.5, -0.7, 0.2, 3.0, -2.2])

    def call(logits):
        scores = framework.constant(scores_, "float64")
        return indecater()(
            lambda z: framework.backend.xp.sum(z * scores, axis=-1) ** 2,
            OneHotCategorical(logits), seed=seed, num_samples=3)

    value, gradient = _gradient(framework, call, logits_)
    p = softmax(logits_)
    squared = scores_**2
    np.testing.assert_allclose(gradient, p * (squared - p @ squared), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(value, p @ squared, rtol=1e-13)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("seed", SEEDS[:1])
def test_additive_bernoulli_function_with_batch_and_event_axes_is_exact(framework, seed):
    """``f(b) = sum_event h(b)`` with ``h`` a per-position table, logits ``[2, 3, 2]`` with
    ``event_ndims = 2`` (a batch of two events of six bits): exact for every seed."""
    rng = np.random.default_rng(4)
    logits_ = rng.normal(size=(2, 3, 2))
    one_, zero_ = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    backend = framework.backend

    def call(logits):
        one, zero = framework.constant(one_, "float64"), framework.constant(zero_, "float64")

        def function(samples):
            table = samples * one + (1.0 - samples) * zero
            return backend.xp.sum(backend.xp.square(table), axis=(-2, -1))

        return backend.xp.sum(indecater()(function, Bernoulli(logits, event_ndims=2),
                                              seed=seed, num_samples=3))

    _, gradient = _gradient(framework, call, logits_)
    p = sigmoid(logits_)
    np.testing.assert_allclose(gradient, p * (1 - p) * (one_**2 - zero_**2), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("seed", SEEDS[:1])
def test_additive_categorical_function_with_batch_and_event_axes_is_exact(framework, seed):
    """Logits ``[2, 3, 4]`` with ``event_ndims = 1`` (a batch of two events of three
    four-class variables), ``f(z) = sum_d (u_d . z_d)^2``: exact for every seed."""
    rng = np.random.default_rng(5)
    logits_ = rng.normal(size=(2, 3, 4))
    scores_ = rng.normal(size=(3, 4))
    backend = framework.backend

    def call(logits):
        scores = framework.constant(scores_, "float64")

        def function(samples):
            per_variable = backend.xp.sum(samples * scores, axis=-1)
            return backend.xp.sum(backend.xp.square(per_variable), axis=-1)

        return backend.xp.sum(indecater()(function, OneHotCategorical(logits, 1),
                                              seed=seed, num_samples=2))

    p = softmax(logits_)
    squared = scores_**2
    expected = p * (squared - np.sum(p * squared, axis=-1, keepdims=True))
    _, gradient = _gradient(framework, call, logits_)
    np.testing.assert_allclose(gradient, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_same_gradient_in_every_mode_for_one_seed(framework):
    """On the non-additive ``categorical`` problem (not exact for one sample): the same
    estimate eagerly, in graph mode and compiled (XLA / jit). In the slow set: the catalogue
    runs TF graph mode, XLA and JAX jit against the exact gradient in any case."""
    problem = get_problem("categorical")

    def call(logits):
        return indecater()(problem.function, OneHotCategorical(logits, 1), seed=11,
                           num_samples=2)

    results = [_gradient(framework, call, problem.logits, mode)[1] for mode in framework.modes]
    for gradient in results[1:]:
        np.testing.assert_allclose(gradient, results[0], rtol=1e-12, atol=1e-15)
    assert np.abs(np.ravel(results[0]) - problem.exact_gradient()).max() > 1e-4


@pytest.mark.jax_in_slow_set
def test_f_is_called_once_on_every_variable_and_class(backend):
    """``D K S`` substituted samples in one call: each differs from a draw in one variable."""
    problem = get_problem("categorical")
    seen = []

    def function(samples):
        seen.append(np.asarray(samples))
        return problem.function(samples)

    logits = backend.xp.asarray(problem.logits, dtype=backend.xp.float32)
    indecater()(function, OneHotCategorical(logits, 1), seed=3, num_samples=2)
    assert len(seen) == 1 and seen[0].shape == (4 * 10 * 2, 4, 10)
    variants = seen[0].reshape(4, 10, 2, 4, 10)
    for variable in range(4):
        for category in range(10):
            np.testing.assert_array_equal(variants[variable, category, :, variable, category],
                                          np.ones(2))
            others = np.delete(variants[variable, category], variable, axis=1)
            np.testing.assert_array_equal(others, np.delete(variants[variable, 0], variable,
                                                            axis=1))


def test_factory_and_errors(backend):
    assert isinstance(indecater(), IndeCateR) and indecater().name == "indecater"
    logits = backend.xp.asarray(np.zeros(3), dtype=backend.xp.float32)
    with pytest.raises(TypeError, match="Normal"):
        indecater()(lambda z: z, Normal(logits, logits + 1.0), seed=0)
    with pytest.raises(ValueError, match="shape"):
        indecater()(lambda z: z, Bernoulli(logits, event_ndims=1), seed=0, num_samples=2)
