"""Canary for the installed JAX: ``jax.jit`` must agree with eager execution on the reduction
patterns fxgx's estimators and harness compile, at sizes above 2^15 elements.

jax/jaxlib 0.10.2 miscompiled such reductions on CPU (jax-ml/jax#39103: a vmapped
matrix-vector product followed by a sum went wrong from 2^15 + 1 rows on), which gave fxgx
users silently wrong gradients; pyproject.toml excludes that release. This test makes the next
release that does the same fail CI instead. Each pattern runs eagerly and under ``jax.jit``
on the same inputs and the results are compared with a float32 tolerance far below what the
miscompilation produced (relative errors of 1e-3 and more). Deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

ROWS = 2**15 + 1  # the first size 0.10.2 got wrong in float32


def _upstream_reproducer(x):
    """jax-ml/jax#39103: ``sum((M @ row)^2)`` for every row, vmapped."""
    matrix = jnp.eye(3, dtype=x.dtype)
    return jax.vmap(lambda row: jnp.sum((matrix @ row) ** 2))(x)


def _categorical_lookup(samples, values):
    """A categorical ``f``: ``sum_d v_d . z_d`` over one-hot samples ``[S, B, D, K]``."""
    return jnp.sum(samples * values, axis=(-2, -1))


def _leading_axis_mean(estimates):
    """The harness's per-chunk mean and second moment over the leading (estimate) axis."""
    mean = jnp.sum(estimates, axis=0) / estimates.shape[0]
    return mean, jnp.sum(jnp.square(estimates - mean), axis=0)


def _score_weighted_sum(values, samples, probabilities):
    """REINFORCE's closed-form gradient: ``sum_s f_s (z_s - p)`` over the sample axis."""
    return jnp.sum(values[..., None] * (samples - probabilities), axis=0)


def _patterns():
    generator = np.random.default_rng(39103)
    index = np.arange(ROWS, dtype=np.float32)
    rows = np.stack([index, np.zeros_like(index), np.zeros_like(index)], axis=1)
    one_hot = np.eye(5, dtype=np.float32)[generator.integers(0, 5, (2, 4096, 2))]
    samples = (generator.random((2, 4096, 256)) < 0.3).astype(np.float32)
    return {
        "upstream #39103": (_upstream_reproducer, (rows,)),
        "categorical lookup 2x4096x2x5": (
            _categorical_lookup,
            (one_hot, generator.normal(size=(4096, 2, 5)).astype(np.float32))),
        "leading-axis moments 65536x8": (
            _leading_axis_mean, (generator.normal(size=(65536, 8)).astype(np.float32),)),
        "score-weighted sum 2x4096x256": (
            _score_weighted_sum,
            (generator.normal(size=(2, 4096)).astype(np.float32), samples,
             np.full((4096, 256), 0.3, np.float32))),
    }


@pytest.mark.parametrize("name", list(_patterns()))
def test_jit_agrees_with_eager_on_large_reductions(name):
    function, arguments = _patterns()[name]
    arguments = [jnp.asarray(argument) for argument in arguments]
    eager = jax.tree_util.tree_leaves(function(*arguments))
    compiled = jax.tree_util.tree_leaves(jax.jit(function)(*arguments))
    for expected, actual in zip(eager, compiled, strict=True):
        expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
        scale = np.max(np.abs(expected)) + 1.0
        np.testing.assert_allclose(
            actual, expected, rtol=1e-5, atol=1e-5 * scale,
            err_msg=f"jax {jax.__version__}: jit and eager disagree on {name}; this JAX "
                    "release miscompiles a reduction (see jax-ml/jax#39103); pin another.")
