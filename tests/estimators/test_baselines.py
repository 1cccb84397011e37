"""The score-function estimators with baselines side by side: REINFORCE-LOO, the
moving-average baseline (explicit state), the learned (NVIL) baseline and the leave-one-out
optimal baseline give the same numbers in every execution mode and under ``jax.vmap``, never
differentiate ``f``, and reject bad input alike (deterministic; each test is parametrised
over the cards).

Each card's own tests, with the exact variances by enumeration on the Bernoulli toy, are in
``test_reinforce_leave_one_out.py``, ``test_moving_average_baseline.py``,
``test_learned_baseline.py`` and ``test_optimal_baseline.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import BERNOULLI_LOGITS as LOGITS
from support import bernoulli_function as _function
from support import guard_against_differentiation
from support import modes_for as _modes

from fxgx.distributions import Bernoulli
from fxgx.estimators import (
    learned_baseline,
    moving_average_baseline,
    optimal_baseline,
    reinforce,
    reinforce_leave_one_out,
)

FACTORIES = {
    "reinforce_leave_one_out": reinforce_leave_one_out,
    "moving_average_baseline": moving_average_baseline,
    "learned_baseline": learned_baseline,
    "optimal_baseline": optimal_baseline,
}


# The moving-average and learned baselines share REINFORCE's code path, and the optimal
# baseline covers REINFORCE-LOO's sample-axis code in float64: those twins' mode checks (both
# dtypes), the float64 run of REINFORCE-LOO and the vmap runs are in the slow set.
SLOW_TWINS = ("learned_baseline", "moving_average_baseline")
SLOW_FLOAT64 = SLOW_TWINS + ("reinforce_leave_one_out", "optimal_baseline")


def _names(slow_when):
    return [pytest.param(name, marks=pytest.mark.slow) if slow_when(name) else name
            for name in sorted(FACTORIES)]


@pytest.mark.parametrize("dtype, name", [
    pytest.param(dtype, name, marks=[pytest.mark.slow] * (
        name in SLOW_TWINS or (dtype == "float64" and name in SLOW_FLOAT64)))
    for dtype in ("float32", "float64") for name in sorted(FACTORIES)
])
def test_same_numbers_in_every_mode(framework, name, dtype):
    estimator = FACTORIES[name]()

    def surrogate(logits):
        return estimator(_function, Bernoulli(logits, event_ndims=1), seed=5, num_samples=3)

    with framework.x64(dtype):
        results = {
            mode: framework.value_and_vjp(surrogate, framework.constant(LOGITS, dtype),
                                          mode=mode)
            for mode in _modes(framework, dtype)
        }
    value, (gradient,) = results["eager"]
    assert value.shape == (2,) and value.dtype == np.dtype(dtype)
    assert gradient.shape == (2, 3) and gradient.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    for mode, (other_value, (other_gradient,)) in results.items():
        np.testing.assert_allclose(other_value, value, rtol=1e-6, err_msg=mode)
        np.testing.assert_allclose(other_gradient, gradient, rtol=1e-5, atol=1e-7, err_msg=mode)


@pytest.mark.parametrize("name", _names(lambda name: name in SLOW_TWINS))
def test_jax_vmap_matches_a_loop(name):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    estimator = FACTORIES[name]()

    def gradient(logits):
        return jax.grad(lambda value: estimator(
            _function, Bernoulli(value, event_ndims=1), seed=9, num_samples=2))(logits)

    logits = jnp.asarray(LOGITS, jnp.float32)
    batched = jax.jit(jax.vmap(gradient))(logits)
    looped = jnp.stack([gradient(row) for row in logits])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6)


def test_the_guard_raises_when_f_is_differentiated(framework):
    guarded = guard_against_differentiation(framework.name, _function)
    with pytest.raises(AssertionError, match="differentiated f"):
        framework.value_and_vjp(guarded, framework.constant(LOGITS))


@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("name", sorted(FACTORIES) + ["reinforce"])
def test_f_is_never_differentiated(framework, name):
    guarded = guard_against_differentiation(framework.name, _function)
    estimator = FACTORIES.get(name, reinforce)()

    def surrogate(logits):
        return estimator(guarded, Bernoulli(logits, event_ndims=1), seed=1, num_samples=2)

    for mode in _modes(framework, "float64"):
        _, (gradient,) = framework.value_and_vjp(surrogate, framework.constant(LOGITS),
                                                 mode=mode)
        assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


@pytest.mark.parametrize("name", ["reinforce_leave_one_out", "optimal_baseline"])
def test_one_sample_is_rejected_where_two_are_needed(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    with pytest.raises(ValueError, match="num_samples"):
        FACTORIES[name]()(_function, distribution, seed=0, num_samples=1)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_seed_is_required(framework, name):
    distribution = Bernoulli(framework.constant(LOGITS), event_ndims=1)
    estimator = FACTORIES[name]()
    with pytest.raises(TypeError, match="seed"):
        estimator(_function, distribution, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        estimator(_function, distribution, seed=None, num_samples=2)
    state = estimator.init(distribution)
    with pytest.raises(TypeError, match="seed"):
        estimator.apply(state, _function, distribution, num_samples=2)
    with pytest.raises(ValueError, match="seed"):
        estimator.apply(state, _function, distribution, seed=None)
    if name == "learned_baseline":
        with pytest.raises(ValueError, match="seed"):
            estimator.regression_loss(_function, distribution, seed=None)


