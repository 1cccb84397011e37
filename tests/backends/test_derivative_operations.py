"""The backend operations defined by their derivatives: ``magic_box`` (DiCE's magic box) and
JAX's ``softplus``/``log_sigmoid`` with a ``sigmoid`` derivative. Exact values: closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.backends import framework_by_name


def _derivatives(backend_name, function, point, order):
    """``[f(x), f'(x), ..., f^(order)(x)]`` at each element of ``point`` (float64)."""
    if backend_name == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        try:
            results, current = [], function
            for _ in range(order + 1):
                results.append(np.asarray(jax.vmap(current)(jnp.asarray(point, jnp.float64))))
                current = jax.grad(current)
        finally:
            jax.config.update("jax_enable_x64", False)
        return results
    import tensorflow as tf

    value = tf.constant(point, tf.float64)
    tapes = [tf.GradientTape(persistent=True) for _ in range(order)]
    for tape in tapes:
        tape.__enter__()
        tape.watch(value)
    results = [function(value)]
    for index in range(order):
        tape = tapes[order - 1 - index]
        results.append(tape.gradient(results[-1], value))
    for tape in reversed(tapes):
        tape.__exit__(None, None, None)
    return [np.asarray(result) for result in results]


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_magic_box_is_one_with_the_derivatives_of_exp_at_zero(backend_name):
    """``magic_box(g(x) - stop(g(x)))`` has value 1 and the derivatives of
    ``exp(g(x) - g(x0))`` at ``x0``: for ``g = x^2``, ``2x``, ``2 + 4x^2``, ``12x + 8x^3``."""
    backend = framework_by_name(backend_name)
    point = np.array([-1.5, 0.0, 0.7])

    def function(x):
        square = x * x
        return backend.magic_box(square - backend.stop_gradient(square))

    values = _derivatives(backend_name, function, point, 3)
    np.testing.assert_array_equal(values[0], np.ones(3))
    np.testing.assert_allclose(values[1], 2 * point, rtol=1e-12)
    np.testing.assert_allclose(values[2], 2 + 4 * point**2, rtol=1e-12)
    np.testing.assert_allclose(values[3], 12 * point + 8 * point**3, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_softplus_and_log_sigmoid_have_the_sigmoid_derivatives(backend_name):
    backend = framework_by_name(backend_name)
    point = np.array([-40.0, -2.0, 0.0, 0.5, 30.0])
    sigmoid = 1 / (1 + np.exp(-point))
    complement = 1 / (1 + np.exp(point))  # sigmoid(-x), accurate where 1 - sigmoid is not
    softplus = _derivatives(backend_name, backend.softplus, point, 3)
    np.testing.assert_allclose(softplus[0], np.logaddexp(point, 0), rtol=1e-12)
    np.testing.assert_allclose(softplus[1], sigmoid, rtol=1e-12)
    first = sigmoid * complement
    # Orders 2 and 3 go through the frameworks' own sigmoid derivative, y (1 - y).
    np.testing.assert_allclose(softplus[2], first, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(softplus[3], first * (1 - 2 * sigmoid), rtol=1e-9, atol=1e-15)
    log_sigmoid = _derivatives(backend_name, backend.log_sigmoid, point, 1)
    np.testing.assert_allclose(log_sigmoid[0], -np.logaddexp(-point, 0), rtol=1e-12)
    np.testing.assert_allclose(log_sigmoid[1], complement, rtol=1e-9, atol=1e-300)
