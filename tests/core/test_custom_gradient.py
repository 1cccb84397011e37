"""Tests of ``fxgx.custom_gradient`` on TensorFlow and JAX.

The first group reconstructs the five tests of TF 1.6's ``tf.contrib.bayesflow.custom_grad``;
the rest pins the behaviour promised in docs/custom_gradient.md and in the module docstring.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fxgx
from fxgx import custom_gradient
from fxgx.core.arrays import dtype_name

RNG = np.random.default_rng(20180306)


def numpy_dtype(dtype):
    return np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)


def _random(shape, dtype="float32", low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape).astype(numpy_dtype(dtype))


# ------------------------------------------------ the five TF 1.6 contrib.bayesflow tests


def _grid():
    # The original grid was np.linspace(-100, 100, 1e4); 0 is appended so that (b) hits it.
    return np.concatenate([np.linspace(-100.0, 100.0, 10_000), [0.0]])


@pytest.mark.parametrize(
    "g",
    [
        pytest.param(lambda x: (x - 1.0) ** 3 / 3.0, id="g=(x-1)^3/3"),
        pytest.param(lambda x: x**3 / 3.0, id="g=x^3/3,f=g=0_at_0"),
    ],
)
def test_value_is_f_and_gradient_is_g_over_a_grid(framework, g):
    def f(x):
        return x**2 / 2.0

    x_ = _grid()
    with framework.x64():
        value, (gradient,) = framework.value_and_vjp(
            lambda x: custom_gradient(f(x), g(x), x), framework.constant(x_, "float64")
        )
    assert value.dtype == np.float64
    np.testing.assert_allclose(value, f(x_), rtol=1e-14, atol=0)
    np.testing.assert_allclose(gradient, g(x_), rtol=1e-14, atol=0)
    # Not f' = x: the primitive really replaces the gradient.
    assert not np.allclose(gradient, x_)
    at_zero = x_ == 0.0
    assert value[at_zero] == 0.0 and gradient[at_zero] == g(0.0)


def test_vector_of_two_variables_stacked_with_axis_0(framework):
    backend = framework.backend

    def function(x, y):
        z = backend.xp.stack([x, y])
        fz = z[0] * z[1]
        gz = z[0] ** 2 * z[1] ** 2 / 2.0  # fx's shape (a scalar): d/d(x + y)
        return custom_gradient(fz, gz, z, axis=0)

    value, (gradient_x, gradient_y) = framework.value_and_vjp(
        function, framework.variable(2.0), framework.variable(3.0)
    )
    assert value == 6.0
    assert gradient_x == 18.0
    assert gradient_y == 18.0


def test_side_variable_used_only_in_f_and_g_gets_no_gradient(framework):
    x_, y_ = np.float32(2.1), np.float32(3.1)  # an extra tenth forces rounding

    def function(x, y):
        return custom_gradient(x * y, x**2 * y, x)

    value, (gradient_x, gradient_y) = framework.value_and_vjp(
        function, framework.variable(x_), framework.variable(y_)
    )
    assert value == x_ * y_
    assert gradient_x == np.square(x_) * y_
    # fx and gx are stopped by default, so y only reaches h through them: no gradient.
    assert framework.zero_if_none(gradient_y, y_) == 0.0


def test_fx_gx_manually_stopped_keeps_gradients_that_flow_through_fx(framework):
    stop = framework.backend.stop_gradient
    x_, y_ = np.float32(2.1), np.float32(3.1)

    def function(x, y):
        # Stop the x part of f (its gradient comes from g) and the y part of the argument.
        fx = stop(x) * y
        gx = stop(x**2) * y
        return custom_gradient(fx, gx, x + stop(y), fx_gx_manually_stopped=True)

    value, (gradient_x, gradient_y) = framework.value_and_vjp(
        function, framework.variable(x_), framework.variable(y_)
    )
    assert value == x_ * y_
    assert gradient_x == np.square(x_) * y_
    assert gradient_y == x_


# --------------------------------------------------------- upstream cotangents, vs TFP


def test_non_uniform_cotangent_gives_w_times_gx(framework):
    x_ = np.linspace(-2.0, 3.0, 7).astype(np.float32)
    w_ = np.array([1.0, 0.0, 5.0, -2.0, 0.5, 3.0, 0.0], np.float32)
    w = framework.constant(w_)

    def loss(x):
        h = custom_gradient(x**2 / 2.0, (x - 1.0) ** 3 / 3.0, x)
        return framework.backend.xp.sum(w * h)

    _, (gradient,) = framework.value_and_vjp(loss, framework.constant(x_))
    gx = (x_ - 1.0) ** 3 / 3.0
    np.testing.assert_allclose(gradient, w_ * gx, rtol=1e-6)


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_tfp_custom_gradient_returns_mean_cotangent_times_gx(framework):
    """Pins TFP's actual behaviour, which fxgx deliberately does not copy (see
    docs/custom_gradient.md)."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    x_ = np.linspace(-2.0, 3.0, 7).astype(np.float32)
    w_ = np.array([1.0, 0.0, 5.0, -2.0, 0.5, 3.0, 0.0], np.float32)
    gx_ = (x_ - 1.0) ** 3 / 3.0

    def gradient_of(primitive):
        x = tf.constant(x_)
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = primitive(x**2 / 2.0, (x - 1.0) ** 3 / 3.0, x)
            loss = tf.reduce_sum(w_ * h)
        return h.numpy(), tape.gradient(loss, x).numpy()

    tfp_value, tfp_gradient = gradient_of(tfp.math.custom_gradient)
    fxgx_value, fxgx_gradient = gradient_of(custom_gradient)
    np.testing.assert_array_equal(tfp_value, fxgx_value)
    np.testing.assert_allclose(tfp_gradient, w_.mean() * gx_, rtol=1e-5)
    np.testing.assert_allclose(fxgx_gradient, w_ * gx_, rtol=1e-6)
    assert not np.allclose(tfp_gradient, fxgx_gradient)


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_tfp_flips_negative_zero_and_spreads_inf_x_where_fxgx_does_not(framework):
    """The two other differences from TFP stated in docs/custom_gradient.md."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    fx = tf.constant([-0.0, 1.0])
    ones = tf.ones([2])
    flipped = tfp.math.custom_gradient(fx, ones, tf.constant([1.0, 2.0])).numpy()
    kept = custom_gradient(fx, ones, tf.constant([1.0, 2.0])).numpy()
    assert not np.signbit(flipped[0])
    framework.assert_bitwise_equal(kept, [-0.0, 1.0], "float32")

    x_with_inf = tf.constant([1.0, np.inf])
    assert np.isnan(tfp.math.custom_gradient(ones, ones, x_with_inf).numpy()).all()
    np.testing.assert_array_equal(custom_gradient(ones, ones, x_with_inf).numpy(), [1.0, 1.0])


# ------------------------------------------------------------------- axis conventions


def _expected_vjp(x_shape, fx_shape, gx, u, axis):
    """u[b] * gx[b, e] broadcast to x's shape (float64 NumPy reference)."""
    rank = len(x_shape)
    if axis is None or (axis == () and fx_shape == () and rank > 0):
        axes = tuple(range(rank))
    else:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(sorted(a % rank for a in axes))
    u_full = np.expand_dims(np.asarray(u, np.float64), axes) if axes else np.float64(u)
    gx = np.asarray(gx, np.float64)
    gx_full = gx if gx.shape == tuple(x_shape) else np.expand_dims(gx, axes)
    return np.broadcast_to(u_full * gx_full, x_shape)


AXIS_CASES = [
    # x shape, fx shape, gx shape, axis
    pytest.param((3,), (3,), (3,), (), id="elementwise"),
    pytest.param((), (), (), (), id="scalar"),
    pytest.param((), (), (), None, id="scalar-axis-None"),
    pytest.param((2, 3), (), (2, 3), None, id="None-gx-like-x"),
    pytest.param((2, 3), (), (), None, id="None-gx-like-fx"),
    pytest.param((4, 3), (4,), (4, 3), -1, id="batch-axis-1-gx-like-x"),
    pytest.param((4, 3), (4,), (4,), -1, id="batch-axis-1-gx-like-fx"),
    pytest.param((4, 3), (3,), (4, 3), 0, id="axis0"),
    pytest.param((2, 3, 4), (3,), (2, 3, 4), (0, 2), id="tuple-axis-gx-like-x"),
    pytest.param((2, 3, 4), (3,), (3,), (0, -1), id="tuple-axis-gx-like-fx"),
    pytest.param((2, 3, 4), (2,), (2, 3, 4), (-1, 1), id="unsorted-tuple-axis"),
    pytest.param((2, 3), (), (2, 3), (), id="scalar-fx-TFP-style"),
    pytest.param((2, 3), (), (), (), id="scalar-fx-TFP-style-scalar-gx"),
]


@pytest.mark.parametrize("x_shape, fx_shape, gx_shape, axis", AXIS_CASES)
def test_axis_convention(framework, x_shape, fx_shape, gx_shape, axis):
    x_, fx_, gx_ = _random(x_shape), _random(fx_shape), _random(gx_shape)
    u_ = _random(fx_shape, low=-3.0, high=3.0)
    fx, gx = framework.constant(fx_), framework.constant(gx_)

    value, (gradient,) = framework.value_and_vjp(
        lambda x: custom_gradient(fx, gx, x, axis=axis),
        framework.constant(x_),
        cotangent=framework.constant(u_),
    )
    framework.assert_bitwise_equal(value, fx_, "float32")
    np.testing.assert_allclose(
        gradient, _expected_vjp(x_shape, fx_shape, gx_, u_, axis), rtol=1e-6, atol=0
    )


def test_list_of_x_elementwise(framework):
    a_, b_ = _random(3), _random(3)
    ga_, gb_, fx_, u_ = _random(3), _random(3), _random(3), _random(3)
    fx, ga, gb = framework.constant(fx_), framework.constant(ga_), framework.constant(gb_)

    value, (gradient_a, gradient_b) = framework.value_and_vjp(
        lambda a, b: custom_gradient(fx, [ga, gb], [a, b]),
        framework.constant(a_),
        framework.constant(b_),
        cotangent=framework.constant(u_),
    )
    framework.assert_bitwise_equal(value, fx_, "float32")
    np.testing.assert_allclose(gradient_a, u_ * ga_, rtol=1e-6)
    np.testing.assert_allclose(gradient_b, u_ * gb_, rtol=1e-6)


def test_nested_x_with_axis_none_and_mixed_gx_forms(framework):
    a_, b_ = _random((4, 2)), _random((4, 3))
    ga_, gb_, fx_, u_ = _random((4, 2)), _random((4,)), _random((4,)), _random((4,))
    fx, ga, gb = framework.constant(fx_), framework.constant(ga_), framework.constant(gb_)

    value, (gradient_a, gradient_b) = framework.value_and_vjp(
        lambda a, b: custom_gradient(fx, (ga, [gb]), (a, [b]), axis=-1),
        framework.constant(a_),
        framework.constant(b_),
        cotangent=framework.constant(u_),
    )
    framework.assert_bitwise_equal(value, fx_, "float32")
    np.testing.assert_allclose(gradient_a, u_[:, None] * ga_, rtol=1e-6)
    np.testing.assert_allclose(gradient_b, np.broadcast_to((u_ * gb_)[:, None], (4, 3)), rtol=1e-6)


def test_scalar_fx_with_vector_x_is_read_as_axis_none(framework):
    x_ = _random(5)
    gx_ = _random(5)

    def h(x):
        fx = framework.backend.xp.sum(x**2) / 2.0
        return custom_gradient(fx, framework.constant(gx_), x)

    value, (gradient,) = framework.value_and_vjp(
        h, framework.constant(x_), cotangent=framework.constant(np.float32(-2.0))
    )
    assert value.shape == ()
    np.testing.assert_allclose(value, np.sum(x_**2) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(gradient, -2.0 * gx_, rtol=1e-6)


# ------------------------------------------------------------ exact values and dtypes


def _special_values(dtype):
    with np.errstate(over="ignore"):  # 1e30 is inf in float16: still a value to keep
        values = np.array(
            [-0.0, 0.0, 1.0, -2.5, 1e30, -1e30, 65504.0, 6.2e-5, 1.2e-38, 3.14159, np.inf, -np.inf],
            np.float64,
        ).astype(numpy_dtype(dtype))
    # Subnormals are excluded: TF and XLA on CPU flush them to zero in any arithmetic
    # (see docs/custom_gradient.md), so no surrogate can return them bitwise.
    tiny = ml_dtypes.finfo(numpy_dtype(dtype)).tiny
    magnitude = np.abs(values.astype(np.float64))
    values[(magnitude > 0) & (magnitude < float(tiny))] = 1.0
    return values


@pytest.mark.parametrize("layout", ["elementwise", "reduced"])
def test_value_is_bitwise_fx_and_dtype_is_kept(framework, float_dtype, layout):
    fx_ = _special_values(float_dtype)
    n = fx_.size
    x_shape = (n,) if layout == "elementwise" else (n, 2)
    axis = () if layout == "elementwise" else -1
    x_ = _random(x_shape, float_dtype)
    x_.flat[0] = -0.0
    gx_ = _random(x_shape, float_dtype)  # both signs, so c is +0 or -0
    for mode in framework.modes:
        with framework.x64(float_dtype):
            fx = framework.constant(fx_, float_dtype)
            gx = framework.constant(gx_, float_dtype)
            value, (gradient,) = framework.value_and_vjp(
                lambda x, fx=fx, gx=gx: custom_gradient(fx, gx, x, axis=axis),
                framework.constant(x_, float_dtype),
                mode=mode,
            )
        framework.assert_bitwise_equal(value, fx_, float_dtype)
        assert gradient.dtype == numpy_dtype(float_dtype), mode
        np.testing.assert_array_equal(gradient, gx_)


def test_negative_zero_survives_with_either_sign_of_gx(framework):
    fx_ = np.full(4, -0.0, np.float32)
    x_ = np.array([1.0, -1.0, 0.0, -0.0], np.float32)
    for gx_ in (np.ones(4, np.float32), -np.ones(4, np.float32), np.zeros(4, np.float32)):
        h = custom_gradient(
            framework.constant(fx_), framework.constant(gx_), framework.constant(x_)
        )
        framework.assert_bitwise_equal(framework.numpy(h), fx_, "float32")


# ------------------------------------------------------------------------- non-finite x


def test_non_finite_x_keeps_value_finite_and_gets_zero_gradient(framework):
    x_ = np.array([1.0, np.inf, -np.inf, np.nan, -2.0], np.float32)
    fx_ = np.array([0.5, 2.0, -3.0, 4.0, 1.0], np.float32)
    gx_ = np.array([1.5, np.inf, 3.0, -4.0, 5.0], np.float32)  # inf gx on inf x is masked too
    u_ = np.array([2.0, 1.0, 1.0, 1.0, -1.0], np.float32)
    for mode in framework.modes:
        value, (gradient,) = framework.value_and_vjp(
            lambda x: custom_gradient(framework.constant(fx_), framework.constant(gx_), x),
            framework.constant(x_),
            cotangent=framework.constant(u_),
            mode=mode,
        )
        framework.assert_bitwise_equal(value, fx_, "float32")
        np.testing.assert_array_equal(gradient, [3.0, 0.0, 0.0, 0.0, -5.0])


def test_non_finite_x_inside_a_reduced_axis(framework):
    x_ = np.array([[1.0, np.nan, 2.0], [np.inf, 0.5, -1.0]], np.float32)
    fx_ = np.array([3.0, -1.0], np.float32)
    gx_ = np.full((2, 3), 2.0, np.float32)
    value, (gradient,) = framework.value_and_vjp(
        lambda x: custom_gradient(framework.constant(fx_), framework.constant(gx_), x, axis=1),
        framework.constant(x_),
    )
    framework.assert_bitwise_equal(value, fx_, "float32")
    np.testing.assert_array_equal(gradient, [[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]])


# ------------------------------------------------------------------ transformations


def _f(x):
    return x**2 / 2.0


def _g(x):
    return (x - 1.0) ** 3 / 3.0


def test_every_execution_mode_gives_the_same_value_and_gradient(framework):
    x_ = np.linspace(-3.0, 3.0, 13).astype(np.float32)
    u_ = np.linspace(2.0, -1.0, 13).astype(np.float32)
    results = {}
    for mode in framework.modes:
        results[mode] = framework.value_and_vjp(
            lambda x: custom_gradient(_f(x), _g(x), x, name="surrogate"),
            framework.constant(x_),
            cotangent=framework.constant(u_),
            mode=mode,
        )
    for mode, (value, (gradient,)) in results.items():
        np.testing.assert_allclose(value, _f(x_), rtol=1e-6, err_msg=mode)
        np.testing.assert_allclose(gradient, u_ * _g(x_), rtol=1e-5, atol=1e-6, err_msg=mode)


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_tensorflow_variable_as_x(framework):
    import tensorflow as tf

    x = tf.Variable([0.5, 2.0])
    with tf.GradientTape() as tape:
        h = custom_gradient(_f(x), _g(x), x)
    np.testing.assert_allclose(tape.gradient(h, x).numpy(), _g(np.array([0.5, 2.0])), rtol=1e-6)


@pytest.mark.parametrize("backend", ["jax"], indirect=True)
def test_jax_grad_jit_vmap_jvp(framework):
    import jax
    import jax.numpy as jnp

    def h(row):  # a scalar f of a vector: sum(x^2)/2 with gradient (x-1)^3/3
        return custom_gradient(jnp.sum(_f(row)), _g(row), row, axis=None)

    x_ = np.linspace(-2.0, 2.0, 12).astype(np.float32).reshape(4, 3)
    x = jnp.asarray(x_)
    for transform in (lambda fn: fn, jax.jit):
        np.testing.assert_allclose(transform(jax.vmap(h))(x), _f(x_).sum(axis=1), rtol=1e-6)
        gradients = transform(jax.vmap(jax.grad(h)))(x)
        np.testing.assert_allclose(gradients, _g(x_), rtol=1e-6)
    # jvp: the tangent is sum_e gx[e] * t[e], the forward-mode face of the same gradient.
    t_ = np.linspace(1.0, -1.0, 3).astype(np.float32)
    primal, tangent = jax.jvp(h, (x[1],), (jnp.asarray(t_),))
    np.testing.assert_allclose(primal, _f(x_[1]).sum(), rtol=1e-6)
    np.testing.assert_allclose(tangent, np.sum(_g(x_[1]) * t_), rtol=1e-6)
    # Forward and reverse mode agree on the full Jacobian.
    np.testing.assert_allclose(jax.jacfwd(h)(x[2]), jax.jacrev(h)(x[2]), rtol=1e-6)


def test_second_derivative_is_zero_by_default(framework):
    """gx is a constant to autodiff, so d/dx of the gradient is 0, not g'(x)."""
    x_ = np.array([-1.0, 0.5, 2.0], np.float32)
    first, second = _first_and_second_derivatives(
        framework, lambda x: custom_gradient(_f(x), _g(x), x), x_
    )
    np.testing.assert_allclose(first, _g(x_), rtol=1e-6)
    np.testing.assert_array_equal(second, np.zeros(3))


def test_second_derivative_with_differentiable_gx_counts_g_prime_twice(framework):
    """With fx stopped but gx left differentiable, d2h/dx2 is 2 g'(x), not g'(x).

    This is why higher-order derivatives are not part of the contract (see the docs).
    """
    stop = framework.backend.stop_gradient
    x_ = np.array([-1.0, 0.5, 2.0], np.float32)
    first, second = _first_and_second_derivatives(
        framework,
        lambda x: custom_gradient(stop(_f(x)), _g(x), x, fx_gx_manually_stopped=True),
        x_,
    )
    np.testing.assert_allclose(first, _g(x_), rtol=1e-6)
    np.testing.assert_allclose(second, 2.0 * (x_ - 1.0) ** 2, rtol=1e-6)


def _first_and_second_derivatives(framework, elementwise_h, x_):
    """d h/dx and d2 h/dx2 of an elementwise h, on either framework (reverse over reverse)."""
    if framework.name == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x_)
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                h = elementwise_h(x)
            first = inner.gradient(h, x)
        second = outer.gradient(first, x)
        return first.numpy(), framework.zero_if_none(None if second is None else second.numpy(), x_)
    import jax
    import jax.numpy as jnp

    def scalar(x):
        return jnp.sum(elementwise_h(x))

    first = jax.grad(scalar)
    # h is elementwise, so the gradient of sum(first) is the diagonal of the Hessian.
    second = jax.grad(lambda x: jnp.sum(first(x)))
    x = jnp.asarray(x_)
    return np.asarray(first(x)), np.asarray(second(x))


# ------------------------------------------------------------------------- bad input


def test_integer_x_is_a_type_error_naming_x(framework):
    with pytest.raises(TypeError, match=r"^x has dtype int\d+"):
        custom_gradient(
            framework.constant([1.0, 2.0]),
            framework.constant([1.0, 1.0]),
            framework.backend.xp.asarray(np.array([1, 2], np.int32)),
        )


def test_bool_fx_is_a_type_error_naming_fx(framework):
    with pytest.raises(TypeError, match=r"^fx has dtype bool"):
        custom_gradient(
            framework.backend.xp.asarray(np.array([True, False])),
            framework.constant([1.0, 1.0]),
            framework.constant([1.0, 2.0]),
        )


def test_integer_gx_is_a_type_error_naming_gx(framework):
    with pytest.raises(TypeError, match=r"^gx has dtype int\d+"):
        custom_gradient(
            framework.constant([1.0, 2.0]),
            framework.backend.xp.asarray(np.array([1, 1], np.int32)),
            framework.constant([1.0, 2.0]),
        )


def test_integer_leaf_of_a_list_is_named_by_index(framework):
    a = framework.constant([1.0, 2.0])
    b = framework.backend.xp.asarray(np.array([1, 2], np.int32))
    with pytest.raises(TypeError, match=r"^x\[1\] has dtype int"):
        custom_gradient(framework.constant([0.0, 0.0]), [a, a], [a, b])


def test_gx_dtype_different_from_x_is_a_type_error(framework):
    x = framework.constant([1.0, 2.0])
    with pytest.raises(TypeError, match=r"gx has dtype float16 but x has dtype float32"):
        custom_gradient(x, framework.constant([1.0, 1.0], "float16"), x)


def test_incompatible_fx_shape_names_shapes_and_axis(framework):
    with pytest.raises(ValueError) as info:
        custom_gradient(
            framework.constant(_random(2)),
            framework.constant(_random(3)),
            framework.constant(_random(3)),
        )
    message = str(info.value)
    assert "fx has shape (2,)" in message
    assert "(3,)" in message and "axis=()" in message


def test_batch_fx_with_wrong_axis_names_expected_shape(framework):
    with pytest.raises(ValueError, match=r"axis=0 needs fx of shape \(3,\)"):
        custom_gradient(
            framework.constant(_random(4)),
            framework.constant(_random((4, 3))),
            framework.constant(_random((4, 3))),
            axis=0,
        )


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_scalar_gx_broadcasts_over_x(framework, mode):
    """The one-liner of docs/custom_gradient.md: ``custom_gradient(fx=hard, gx=1, x=probs)``
    (straight-through). A Python number or a 0-d tensor reaches every element of ``x``, for
    any upstream cotangent."""
    probabilities = framework.constant([0.2, 0.7, 0.5])
    hard = framework.constant([0.0, 1.0, 1.0])
    weights = framework.constant([1.0, -2.0, 3.0])
    for gx in (1, 2.5, framework.constant(2.5)):
        scale = float(framework.numpy(gx)) if not isinstance(gx, (int, float)) else gx
        value, (gradient,) = framework.value_and_vjp(
            lambda x, gx=gx: custom_gradient(fx=hard, gx=gx, x=x), probabilities,
            cotangent=weights, mode="eager" if mode == "eager" else framework.modes[-1])
        np.testing.assert_array_equal(value, [0.0, 1.0, 1.0])
        np.testing.assert_allclose(gradient, scale * np.array([1.0, -2.0, 3.0]), rtol=1e-6)


def test_gx_of_neither_allowed_shape_is_a_value_error(framework):
    with pytest.raises(
        ValueError,
        match=r"gx has shape \(5,\); it must have x's shape \(4, 3\), "
        r"fx's shape \(4,\) \(axis=1\), or be a scalar",
    ):
        custom_gradient(
            framework.constant(_random(4)),
            framework.constant(_random(5)),
            framework.constant(_random((4, 3))),
            axis=1,
        )


@pytest.mark.parametrize("gx_structure", ["leaf", "short-list", "nested"])
def test_gx_structure_different_from_x_is_a_type_error(framework, gx_structure):
    a = framework.constant(_random(3))
    gx = {"leaf": a, "short-list": [a], "nested": [a, [a]]}[gx_structure]
    with pytest.raises(TypeError, match="gx must have the same structure as x"):
        custom_gradient(a, gx, [a, a])


@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_axis_out_of_range_is_a_value_error(framework, axis):
    x = framework.constant(_random((2, 3)))
    with pytest.raises(ValueError, match=r"out of range for x of shape \(2, 3\) \(rank 2\)"):
        custom_gradient(framework.constant(0.0), x, x, axis=axis)


def test_repeated_axis_is_a_value_error(framework):
    x = framework.constant(_random((2, 3)))
    with pytest.raises(ValueError, match="repeats a dimension"):
        custom_gradient(framework.constant(0.0), x, x, axis=(0, -2))


@pytest.mark.parametrize("axis", [True, 1.0, "0", (0, 1.0)])
def test_axis_of_wrong_type_is_a_type_error(framework, axis):
    x = framework.constant(_random((2, 3)))
    with pytest.raises(TypeError, match="must be None, an int or a tuple of ints"):
        custom_gradient(framework.constant(_random(2)), x, x, axis=axis)


def test_empty_x_is_a_value_error():
    with pytest.raises(ValueError, match="x is empty"):
        custom_gradient(1.0, [], [])


def test_mixing_tensorflow_and_jax_is_a_type_error():
    tf = pytest.importorskip("tensorflow")
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match=r"two frameworks were mixed"):
        custom_gradient(tf.constant([1.0]), tf.constant([1.0]), jnp.ones(1))


def test_numpy_and_python_inputs_are_converted_to_the_framework_of_x(framework):
    x = framework.constant([1.0, 2.0])
    h = custom_gradient(np.array([3.0, 4.0], np.float32), np.array([0.5, 0.25], np.float32), x)
    assert framework.backend.is_array(h)
    np.testing.assert_array_equal(framework.numpy(h), [3.0, 4.0])


def test_python_scalars_are_converted_to_the_dtype_of_x(framework):
    x = framework.constant(2.0, "float16")
    h = custom_gradient(3.0, 0.5, x)
    assert dtype_name(h.dtype) == "float16"
    np.testing.assert_array_equal(framework.numpy(h), np.float16(3.0))


def test_public_name_is_exported():
    assert fxgx.custom_gradient is custom_gradient
