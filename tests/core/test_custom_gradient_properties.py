"""Property-based tests of ``fxgx.custom_gradient``: random shapes, axes, dtypes and gx forms.

For every draw: the value is ``fx`` bit for bit, and the vector-Jacobian product with a
random cotangent ``u`` is ``u[b] * gx[b, e]`` (``gx`` broadcast over ``axis`` when it has
``fx``'s shape). On JAX the Jacobian-vector product is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fxgx import custom_gradient

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # The same examples on every run: a property test in CI must not fail at random.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

UINT_OF = {"float32": np.uint32, "float64": np.uint64}


@st.composite
def problems(draw):
    """x, fx, gx, u (NumPy) and the axis argument, for one random case."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    x_shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    rank = len(x_shape)
    kind = draw(st.sampled_from(["elementwise", "none", "int", "tuple"] if rank else ["none"]))
    if kind == "elementwise":
        axis, axes = (), ()
    elif kind == "none":
        axis, axes = None, tuple(range(rank))
    else:
        chosen = draw(
            st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True)
            if kind == "tuple"
            else st.integers(0, rank - 1).map(lambda a: [a])
        )
        # Each dimension may be written as a positive or a negative index.
        signed = [a - rank if draw(st.booleans()) else a for a in chosen]
        axis = signed[0] if kind == "int" else tuple(signed)
        axes = tuple(sorted(chosen))
    fx_shape = tuple(size for dim, size in enumerate(x_shape) if dim not in axes)
    gx_shape = draw(st.sampled_from([x_shape, fx_shape]))

    width = 32 if dtype == "float32" else 64
    # fx: any finite value or +-inf, zeros of both signs, but no subnormals (flushed to
    # zero by TF/XLA on CPU) and no NaN (its payload is not part of the contract).
    fx_values = st.floats(allow_nan=False, allow_subnormal=False, width=width)
    # x, gx, u: zero or magnitudes in [2^-10, 2^10], so that products never underflow into
    # the subnormal range (which CPUs running with flush-to-zero would round to 0).
    magnitude = st.floats(2.0**-10, 1024.0, width=width)
    moderate = st.one_of(st.just(0.0), magnitude, magnitude.map(lambda v: -v))
    fx = draw(hnp.arrays(dtype, fx_shape, elements=fx_values))
    x = draw(hnp.arrays(dtype, x_shape, elements=moderate))
    gx = draw(hnp.arrays(dtype, gx_shape, elements=moderate))
    u = draw(hnp.arrays(dtype, fx_shape, elements=moderate))
    return dict(dtype=dtype, axis=axis, axes=axes, x=x, fx=fx, gx=gx, u=u)


def _expected_vjp(case):
    axes, x, gx, u = case["axes"], case["x"], case["gx"], case["u"]
    u_full = np.expand_dims(u, axes) if axes else u
    gx_full = gx if gx.shape == x.shape else np.expand_dims(gx, axes)
    return np.broadcast_to(u_full * gx_full, x.shape)


def _expected_jvp(case, tangent):
    axes, x, gx = case["axes"], case["x"], case["gx"]
    gx_full = gx if gx.shape == x.shape else np.expand_dims(gx, axes)
    product = np.broadcast_to(gx_full, x.shape).astype(np.float64) * tangent
    return np.sum(product, axis=axes) if axes else product


def _tolerance(dtype):
    return {"rtol": 4 * np.finfo(dtype).eps, "atol": 0}


@SETTINGS
@given(case=problems())
def test_value_is_fx_bitwise_and_vjp_is_u_times_gx(framework, case):
    dtype = case["dtype"]
    with framework.x64(dtype):
        fx = framework.constant(case["fx"], dtype)
        gx = framework.constant(case["gx"], dtype)
        value, (gradient,) = framework.value_and_vjp(
            lambda x: custom_gradient(fx, gx, x, axis=case["axis"]),
            framework.constant(case["x"], dtype),
            cotangent=framework.constant(case["u"], dtype),
            # One compiled program per case is cheaper on JAX than eager op-by-op dispatch.
            mode="jit" if framework.name == "jax" else "eager",
        )
    assert value.dtype == np.dtype(dtype)
    assert value.shape == case["fx"].shape
    view = UINT_OF[dtype]
    np.testing.assert_array_equal(value.view(view), case["fx"].view(view))
    assert gradient.dtype == np.dtype(dtype)
    np.testing.assert_allclose(gradient, _expected_vjp(case), **_tolerance(dtype))


@pytest.mark.parametrize("backend", ["jax"], indirect=True)
@SETTINGS
@given(case=problems(), data=st.data())
def test_jvp_is_sum_of_gx_times_tangent(framework, case, data):
    import jax
    import jax.numpy as jnp

    dtype = case["dtype"]
    tangent = data.draw(
        hnp.arrays(dtype, case["x"].shape, elements=st.floats(-10, 10, width=32)), label="t"
    )
    with framework.x64(dtype):
        fx = jnp.asarray(case["fx"])
        gx = jnp.asarray(case["gx"])
        primal, tangent_out = jax.jit(
            lambda x, t: jax.jvp(
                lambda x: custom_gradient(fx, gx, x, axis=case["axis"]), (x,), (t,)
            )
        )(jnp.asarray(case["x"]), jnp.asarray(tangent))
        primal, tangent_out = np.asarray(primal), np.asarray(tangent_out)
    view = UINT_OF[dtype]
    np.testing.assert_array_equal(primal.view(view), case["fx"].view(view))
    expected = _expected_jvp(case, tangent)
    # A sum of up to 64 products: the rounding error scales with the products' magnitudes,
    # not with their (possibly cancelling) sum.
    magnitudes = _expected_jvp({**case, "gx": np.abs(case["gx"])}, np.abs(tangent))
    scale = float(np.max(magnitudes, initial=0.0)) + 1.0
    np.testing.assert_allclose(tangent_out, expected, rtol=0, atol=64 * np.finfo(dtype).eps * scale)
