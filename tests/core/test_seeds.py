"""Tests of ``fxgx.core.seeds`` and of the backends' stateless draws."""

from __future__ import annotations

import numpy as np
import pytest

from fxgx.core.seeds import canonical_seed, split_seed


def _seed_words(framework, seed) -> np.ndarray:
    """The integers inside a canonical seed (TF int64[2]; JAX key data), as int64 NumPy."""
    if framework.name == "jax":
        import jax

        seed = jax.random.key_data(seed)
    return framework.numpy(seed).astype(np.int64)


def _draws(framework, seed, shape=(5,), dtype="float32"):
    return framework.numpy(framework.backend.uniform(shape, seed, dtype))


def _threefry_uniform(shape, seed):
    """TF's own threefry draws (its CPU kernel has no threefry outside XLA)."""
    import tensorflow as tf

    kernel = tf.function(
        lambda: tf.random.stateless_uniform(shape, seed, alg="threefry"), jit_compile=True
    )
    return kernel().numpy()


# ----------------------------------------------------------------- accepted seed forms


def test_int_seed_becomes_the_native_seed(framework):
    seed = canonical_seed(7, framework.backend)
    if framework.name == "tensorflow":
        assert seed.dtype.name == "int64" and seed.shape.as_list() == [2]
    else:
        import jax

        assert jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(_seed_words(framework, seed), [0, 7])


@pytest.mark.parametrize("value", [0, 1, 12345, 2**31 - 1, 2**32 - 1])
def test_int_seed_equals_the_pair_zero_int(framework, value):
    """seed=s and seed=[0, s] are the same stream on both backends (TF's int convention)."""
    from_int = canonical_seed(value, framework.backend)
    from_pair = canonical_seed(np.array([0, value], np.int64), framework.backend)
    np.testing.assert_array_equal(
        _seed_words(framework, from_int), _seed_words(framework, from_pair)
    )
    np.testing.assert_array_equal(_draws(framework, from_int), _draws(framework, from_pair))


def test_large_and_negative_int_seeds_do_not_collide(framework):
    values = [0, 1, 2**32, 2**32 + 1, 2**40, 2**63 - 1, -1, -(2**63)]
    words = {tuple(_seed_words(framework, canonical_seed(v, framework.backend))) for v in values}
    assert len(words) == len(values)
    draws = {_draws(framework, canonical_seed(v, framework.backend)).tobytes() for v in values}
    assert len(draws) == len(values)


def test_int_seed_has_the_same_words_on_both_backends():
    tf_backend = pytest.importorskip("fxgx.backends.tensorflow_backend")
    jax_backend = pytest.importorskip("fxgx.backends.jax_backend")
    import jax

    for value in (0, 9, 2**32 - 1, 2**32, 2**40 + 3, 2**63 - 1, -1, -(2**63)):
        tf_words = canonical_seed(value, tf_backend).numpy()
        jax_words = np.asarray(jax.random.key_data(canonical_seed(value, jax_backend)))
        np.testing.assert_array_equal(tf_words, jax_words.astype(np.int64), err_msg=str(value))
        assert ((tf_words >= 0) & (tf_words < 2**32)).all()


@pytest.mark.parametrize("backend", ["jax"], indirect=True)
def test_jax_int_seed_does_not_depend_on_x64(framework):
    import jax

    for value in (3, 2**40, -5):
        plain = _seed_words(framework, canonical_seed(value, framework.backend))
        with jax.enable_x64(True):
            wide = _seed_words(framework, canonical_seed(value, framework.backend))
            reference = np.asarray(jax.random.key_data(jax.random.key(value))).astype(np.int64)
        np.testing.assert_array_equal(plain, wide)
        np.testing.assert_array_equal(plain, reference)


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_tensorflow_stateless_seed_of_shape_2(framework, dtype):
    import tensorflow as tf

    seed = canonical_seed(tf.constant([3, 4], dtype=dtype), framework.backend)
    assert seed.dtype == tf.int64
    np.testing.assert_array_equal(seed.numpy(), [3, 4])
    np.testing.assert_array_equal(_draws(framework, seed), _threefry_uniform([5], [3, 4]))


@pytest.mark.parametrize("backend", ["jax"], indirect=True)
def test_jax_new_and_old_style_keys(framework):
    import jax

    new_style = canonical_seed(jax.random.key(11), framework.backend)
    old_style = canonical_seed(jax.random.PRNGKey(11), framework.backend)
    for seed in (new_style, old_style):
        assert jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(_seed_words(framework, new_style), [0, 11])
    np.testing.assert_array_equal(_seed_words(framework, old_style), [0, 11])
    expected = np.asarray(jax.random.uniform(jax.random.key(11), (5,)))
    np.testing.assert_array_equal(_draws(framework, new_style), expected)
    np.testing.assert_array_equal(_draws(framework, old_style), expected)


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_jax_key_given_to_tensorflow_is_a_type_error(framework):
    jax = pytest.importorskip("jax")
    with pytest.raises(TypeError, match="seed is a JAX key but the arrays are tensorflow arrays"):
        canonical_seed(jax.random.key(0), framework.backend)


# ---------------------------------------------------------------------- bad seeds


def test_missing_seed_says_what_to_pass(framework):
    with pytest.raises(ValueError) as info:
        canonical_seed(None, framework.backend)
    message = str(info.value)
    assert message.startswith("seed is required")
    assert "seed=0" in message and "shape [2]" in message and "jax.random.key(0)" in message


def test_error_names_the_argument(framework):
    with pytest.raises(ValueError, match=r"^sample_seed is required"):
        canonical_seed(None, framework.backend, argument="sample_seed")


@pytest.mark.parametrize(
    "seed, error, pattern",
    [
        pytest.param([1, 2, 3], ValueError, r"seed has shape \(3,\)", id="shape-3"),
        pytest.param(
            np.zeros((2, 2), np.int32), ValueError, r"seed has shape \(2, 2\)", id="shape-2x2"
        ),
        pytest.param(1.5, TypeError, r"seed=1.5 is a float; seeds are integers", id="float"),
        pytest.param(2.0, TypeError, r"is a float; seeds are integers: pass seed=2 ",
                     id="integral-float"),
        pytest.param(
            [1.0, 2.0], ValueError, r"dtype float64; a seed must be an integer, or a pair",
            id="float-pair",
        ),
        pytest.param(True, TypeError, r"seed=True is a bool, not a seed", id="bool"),
        pytest.param(np.bool_(False), TypeError, r"is a bool, not a seed", id="numpy-bool"),
        pytest.param("0", ValueError, r"a seed must be an integer, or a pair", id="string"),
        pytest.param(2**64, ValueError, r"does not fit in int64", id="too-large"),
    ],
)
def test_malformed_seed_is_a_clear_error(framework, seed, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        canonical_seed(seed, framework.backend)
    assert "pass seed= as an int" in str(info.value)


def test_float_tensor_seed_is_rejected(framework):
    with pytest.raises(TypeError, match="float32 tensor of shape \\(2,\\); seeds are integers"):
        canonical_seed(framework.constant([1.0, 2.0]), framework.backend)
    with pytest.raises(TypeError, match="float32 tensor of shape \\(\\); seeds are integers"):
        canonical_seed(framework.constant(3.0), framework.backend)


@pytest.mark.parametrize("value", [0, 7, -1, -5, 2**31 - 1, -(2**31)])
def test_integer_tensor_seed_inside_compilation_equals_the_int(framework, value):
    """A traced int under ``jax.jit`` (int32, and int64 with x64) or a symbolic int inside
    ``tf.function`` is the seed that int is: the same words, so the same numbers."""
    backend = framework.backend
    expected = _seed_words(framework, canonical_seed(value, backend)) % 2**32
    if framework.name == "jax":
        import jax
        import jax.numpy as jnp

        traced = jax.jit(lambda seed: canonical_seed(seed, backend))
        seeds = [traced(jnp.int32(value))]
        with jax.enable_x64(True):
            seeds.append(traced(jnp.int64(value)))
    else:
        import tensorflow as tf

        symbolic = tf.function(lambda seed: canonical_seed(seed, backend))
        seeds = [symbolic(tf.constant(value, dtype)) for dtype in (tf.int32, tf.int64)]
    for seed in seeds:
        np.testing.assert_array_equal(_seed_words(framework, seed) % 2**32, expected)
        np.testing.assert_array_equal(_draws(framework, seed), _draws(framework, canonical_seed(
            value, backend)))


# ------------------------------------------------------------------------- splitting


def test_split_seed_gives_distinct_named_sub_seeds(framework):
    backend = framework.backend
    children = split_seed(canonical_seed(0, backend), ["noise", "mask", "baseline"], backend)
    assert list(children) == ["noise", "mask", "baseline"]
    words = {tuple(_seed_words(framework, child)) for child in children.values()}
    assert len(words) == 3
    draws = {_draws(framework, child).tobytes() for child in children.values()}
    assert len(draws) == 3
    parent = _draws(framework, canonical_seed(0, backend))
    assert all(parent.tobytes() != d for d in draws)


def test_split_seed_is_deterministic_and_depends_on_the_parent(framework):
    backend = framework.backend

    def words(seed_value):
        children = split_seed(canonical_seed(seed_value, backend), ["a", "b"], backend)
        return {name: tuple(_seed_words(framework, child)) for name, child in children.items()}

    assert words(5) == words(5)
    assert words(5)["a"] != words(6)["a"]


def test_split_seed_rejects_repeated_names(framework):
    with pytest.raises(ValueError, match="names must be unique"):
        split_seed(canonical_seed(0, framework.backend), ["a", "a"], framework.backend)


# ------------------------------------------------- same numbers in every execution mode


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_uniform_draws_are_identical_in_every_mode(framework, dtype):
    backend = framework.backend
    with framework.x64(dtype):
        seed = canonical_seed(1234, backend)

        def draw(seed):
            children = split_seed(seed, ["u", "n"], backend)
            return (
                backend.uniform((3, 4), children["u"], dtype, low=-1.0, high=2.0),
                backend.normal((6,), children["n"], dtype),
            )

        results = {mode: framework.compile(draw, mode)(seed) for mode in framework.modes}
        uniform, normal = (framework.numpy(v) for v in results["eager"])
    assert uniform.dtype == np.dtype(dtype) and uniform.shape == (3, 4)
    assert ((uniform >= -1.0) & (uniform < 2.0)).all()
    assert len(np.unique(uniform)) > 6
    assert normal.shape == (6,) and np.isfinite(normal).all()
    for mode, (u, n) in results.items():
        np.testing.assert_array_equal(
            framework.numpy(u).view(np.uint8), uniform.view(np.uint8), err_msg=mode
        )
        np.testing.assert_array_equal(
            framework.numpy(n).view(np.uint8), normal.view(np.uint8), err_msg=mode
        )


@pytest.mark.parametrize("backend", ["tensorflow"], indirect=True)
def test_tensorflow_uses_threefry_in_every_mode(framework):
    """The design decision in the TF backend's docstring: one algorithm, threefry."""
    import tensorflow as tf

    expected = _threefry_uniform([8], [0, 42])
    philox = tf.random.stateless_uniform([8], [0, 42], alg="philox").numpy()
    assert not np.array_equal(expected, philox)
    for mode in framework.modes:
        draw = framework.compile(lambda seed: framework.backend.uniform([8], seed, "float32"), mode)
        np.testing.assert_array_equal(
            draw(canonical_seed(42, framework.backend)).numpy(), expected, err_msg=mode
        )
