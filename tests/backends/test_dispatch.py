"""Tests of backend selection (``fxgx.backends``) and of the lazy-import promise."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from fxgx import backends
from fxgx.backends import backend_by_name, find_backend, get_backend

tf = pytest.importorskip("tensorflow")
jnp = pytest.importorskip("jax.numpy")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: tf.constant([1.0]), id="tf.Tensor"),
        pytest.param(lambda: tf.Variable([1.0]), id="tf.Variable"),
        pytest.param(lambda: tf.constant([1, 2]), id="tf.Tensor-int"),
    ],
)
def test_tensorflow_arrays_pick_tensorflow(make):
    assert get_backend(make()).name == "tensorflow"


def test_tensorflow_tensor_inside_tf_function_picks_tensorflow():
    names = []

    @tf.function
    def traced(x):
        names.append(get_backend(x).name)
        return x

    traced(tf.constant(1.0))
    assert names == ["tensorflow"]


def test_jax_arrays_and_tracers_pick_jax():
    import jax

    assert get_backend(jnp.ones(2)).name == "jax"
    names = []

    def traced(x):
        names.append(get_backend(x).name)
        return x

    jax.jit(traced)(jnp.ones(2))
    jax.grad(lambda x: traced(x) * 2.0)(1.0)
    jax.vmap(traced)(jnp.ones(2))
    assert names == ["jax", "jax", "jax"]


@pytest.mark.parametrize(
    "value",
    [np.ones(3), 1.0, 3, [1.0, 2.0], np.float32(1.0)],
    ids=["ndarray", "float", "int", "list", "numpy-scalar"],
)
def test_numpy_and_python_values_default_to_tensorflow(value):
    assert backends.DEFAULT_BACKEND == "tensorflow"
    assert find_backend(value) is None
    assert get_backend(value).name == "tensorflow"


def test_the_first_framework_array_decides_among_plain_values():
    assert get_backend(np.ones(2), [1.0, (jnp.ones(1),)]).name == "jax"
    assert get_backend({"a": np.ones(2), "b": tf.ones(1)}).name == "tensorflow"


def test_no_default_is_a_type_error():
    with pytest.raises(TypeError, match="Could not tell the framework"):
        get_backend(np.ones(2), default=None)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(lambda: (tf.ones(1), jnp.ones(1)), id="positional"),
        pytest.param(lambda: ([tf.ones(1), [jnp.ones(1)]],), id="nested"),
        pytest.param(lambda: (jnp.ones(1), np.ones(1), tf.Variable(1.0)), id="variable"),
    ],
)
def test_mixed_frameworks_are_a_type_error(values):
    with pytest.raises(TypeError, match="two frameworks were mixed"):
        get_backend(*values())


@pytest.mark.parametrize(
    "name, expected", [("tf", "tensorflow"), ("TensorFlow", "tensorflow"), ("jax", "jax")]
)
def test_backend_by_name(name, expected):
    module = backend_by_name(name)
    assert module.name == expected
    assert module is backend_by_name(expected)


def test_unknown_backend_name_lists_the_choices():
    with pytest.raises(
        ValueError,
        match=r"backend='torch' is not known; choose one of "
        r"\['jax', 'tensorflow'\]",
    ):
        backend_by_name("torch")


def test_both_backends_are_available_here():
    assert backends.available_backends() == ["tensorflow", "jax"]


def test_backends_expose_the_same_function_set():
    def public(module):
        return {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and name != "annotations"
        }

    tf_names, jax_names = public(backend_by_name("tensorflow")), public(backend_by_name("jax"))
    assert tf_names == jax_names, (
        f"only TF: {sorted(tf_names - jax_names)}; only JAX: {sorted(jax_names - tf_names)}"
    )
    assert {"stop_gradient", "reduce_sum", "uniform", "normal", "split_seed"} <= tf_names


def test_import_fxgx_imports_no_framework():
    code = textwrap.dedent(
        """
        import sys
        import fxgx
        import fxgx.backends
        import fxgx.core
        from fxgx import custom_gradient
        loaded = sorted(
            name for name in ("tensorflow", "jax", "jaxlib", "tensorflow_probability")
            if name in sys.modules
        )
        print("loaded:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout
