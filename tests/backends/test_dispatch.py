"""Tests of backend selection (``fxgx.backends``) and of the lazy-import promise."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from fxgx import backends
from fxgx.backends import find_framework, framework_by_name, get_framework

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
    assert get_framework(make()).name == "tensorflow"


def test_tensorflow_tensor_inside_tf_function_picks_tensorflow():
    names = []

    @tf.function
    def traced(x):
        names.append(get_framework(x).name)
        return x

    traced(tf.constant(1.0))
    assert names == ["tensorflow"]


def test_jax_arrays_and_tracers_pick_jax():
    import jax

    assert get_framework(jnp.ones(2)).name == "jax"
    names = []

    def traced(x):
        names.append(get_framework(x).name)
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
def test_plain_values_name_no_framework_and_take_the_default(value):
    assert find_framework(value) is None
    assert get_framework(value, default="jax").name == "jax"
    assert get_framework(value, default="tensorflow").name == "tensorflow"
    assert get_framework(value).name == backends.DEFAULT_FRAMEWORK


def test_results_are_arrays_of_the_framework_passed_in():
    """End to end: the primitive and an estimator hand back the caller's array type;
    NumPy inputs get the default framework's."""
    import jax

    from fxgx import custom_gradient
    from fxgx.distributions import Bernoulli
    from fxgx.estimators import reinforce

    array_types = {"tensorflow": tf.Tensor, "jax": jax.Array}
    inputs = [("tensorflow", tf.constant([0.5, 1.5])), ("jax", jnp.asarray([0.5, 1.5])),
              (backends.DEFAULT_FRAMEWORK, np.asarray([0.5, 1.5], np.float32))]
    for name, x in inputs:
        assert isinstance(custom_gradient(x, x, x), array_types[name]), (name, type(x))
        if not isinstance(x, np.ndarray):
            surrogate = reinforce()(lambda samples: samples * 2.0, Bernoulli(x), seed=0,
                                    num_samples=2)
            assert isinstance(surrogate, array_types[name]), name


class ForeignArray:
    """An array of a framework fxgx has no backend for."""

    shape = (2,)
    dtype = "float32"


ForeignArray.__module__ = "torch"


def test_arrays_of_an_unknown_framework_are_a_clear_error():
    assert find_framework(ForeignArray()) is None
    with pytest.raises(TypeError, match="Could not tell the framework"):
        get_framework(ForeignArray(), default=None)

    class ForeignDistribution:
        def __init__(self):
            self.logits = ForeignArray()

        def sample(self, sample_shape=(), seed=None):
            raise AssertionError("never reached: the framework is unknown")

        def log_prob(self, value):
            raise AssertionError("never reached: the framework is unknown")

    from fxgx.estimators import reinforce

    with pytest.raises(TypeError, match=r"Could not tell the framework of distribution "
                                        r"\(ForeignDistribution\)"):
        reinforce()(lambda samples: samples, ForeignDistribution(), seed=0)


@pytest.mark.parametrize("name", ["tensorflow", "jax"])
def test_an_object_may_name_its_backend(name):
    class Tagged:
        fxgx_framework_name = name

    assert find_framework([np.ones(1), Tagged()]).name == name
    other = tf.ones(1) if name == "jax" else jnp.ones(1)
    with pytest.raises(TypeError, match="two frameworks were mixed"):
        get_framework(Tagged(), other)


def test_the_first_framework_array_decides_among_plain_values():
    assert get_framework(np.ones(2), [1.0, (jnp.ones(1),)]).name == "jax"
    assert get_framework({"a": np.ones(2), "b": tf.ones(1)}).name == "tensorflow"


def test_no_default_is_a_type_error():
    with pytest.raises(TypeError, match="Could not tell the framework"):
        get_framework(np.ones(2), default=None)


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
        get_framework(*values())


@pytest.mark.parametrize(
    "name, expected", [("tf", "tensorflow"), ("TensorFlow", "tensorflow"), ("jax", "jax")]
)
def test_framework_by_name(name, expected):
    module = framework_by_name(name)
    assert module.name == expected
    assert module is framework_by_name(expected)


def test_unknown_backend_name_lists_the_choices():
    with pytest.raises(
        ValueError,
        match=r"backend='torch' is not known; choose one of "
        r"\['jax', 'tensorflow'\]",
    ):
        framework_by_name("torch")


@pytest.fixture
def without(monkeypatch):
    """``without(name)``: make the backend ``name`` unimportable in this process (as on a
    machine without its framework), restored after the test."""

    def block(name):
        module = {"tensorflow": "tensorflow_backend", "jax": "jax_backend"}[name]
        monkeypatch.setattr(backends, "_LOADED", {})
        monkeypatch.delattr(backends, module, raising=False)
        monkeypatch.setitem(sys.modules, f"fxgx.backends.{module}", None)

    return block


def test_both_backends_are_available_when_both_import():
    assert backends.available_frameworks() == ["tensorflow", "jax"]
    assert backends.default_framework_name() == backends.DEFAULT_FRAMEWORK


@pytest.mark.parametrize("missing, present, extra",
                         [("tensorflow", "jax", "tf"), ("jax", "tensorflow", "jax")])
def test_a_missing_framework_is_left_out_and_named_with_its_install_command(
        without, missing, present, extra):
    without(missing)
    assert backends.available_frameworks() == [present]
    assert backends.default_framework_name() == present
    with pytest.raises(ImportError, match=rf"pip install 'fxgx\[{extra}\]'"):
        framework_by_name(missing)
    array = jnp.ones(2) if present == "jax" else tf.ones(2)
    assert get_framework(array).name == present


def test_frameworks_expose_the_same_members():
    def public(module):
        return {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and name != "annotations"
        }

    tf_names, jax_names = public(framework_by_name("tensorflow")), public(framework_by_name("jax"))
    assert tf_names == jax_names, (
        f"only TF: {sorted(tf_names - jax_names)}; only JAX: {sorted(jax_names - tf_names)}"
    )
    assert {"stop_gradient", "magic_box", "uniform", "normal", "split_seed"} <= tf_names


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


@pytest.mark.slow  # a fresh TensorFlow import: 10-25 s
def test_tensorflow_work_loads_no_jax_backend():
    """The mirror of tests/backends/test_jax_without_tensorflow.py: an estimator, the
    primitive and a gradient on TensorFlow arrays never load fxgx's JAX backend, nor any
    JAX module beyond those ``import tensorflow`` loads by itself (TF 2.21 imports jax when
    it is installed)."""
    code = textwrap.dedent(
        """
        import sys
        import tensorflow as tf

        def jax_modules():
            return {name for name in sys.modules if name.split(".")[0] in ("jax", "jaxlib")}

        before = jax_modules()
        from fxgx import custom_gradient
        from fxgx.distributions import Bernoulli
        from fxgx.estimators import disarm, reinforce
        logits = tf.Variable([0.3, -0.4])
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(reinforce()(lambda b: b, Bernoulli(logits), seed=0))
            total += tf.reduce_sum(disarm()(lambda b: b, Bernoulli(logits), seed=1))
            total += tf.reduce_sum(custom_gradient(logits, logits, logits))
        assert tape.gradient(total, logits) is not None
        loaded = sorted(jax_modules() - before)
        if "fxgx.backends.jax_backend" in sys.modules:
            loaded.append("fxgx.backends.jax_backend")
        print("loaded:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "loaded: []" in result.stdout, result.stdout


# ------------------------------------------------------------------ register_framework


@pytest.fixture
def registry(monkeypatch):
    """The registry's tables, restored after the test (a registration lasts for the process)."""
    for table in ("_ARRAY_MODULES", "_ALIASES", "_LOADED"):
        monkeypatch.setattr(backends, table, dict(getattr(backends, table)))
    # The toy arrays' library, imported (as a real array's library is).
    monkeypatch.setitem(sys.modules, "toy_arrays", types.ModuleType("toy_arrays"))


def _stand_in(name="toy", **removed):
    """A framework module: a copy of the JAX framework's protocol members under ``name``."""
    jax_framework = framework_by_name("jax")
    module = types.ModuleType(f"toy_framework_{name}")
    for member in backends._protocol_members():
        setattr(module, member, getattr(jax_framework, member))
    module.name = name
    for member in removed:
        delattr(module, member)
    return module


class ToyArray:
    shape = (2,)
    dtype = "float32"


ToyArray.__module__ = "toy_arrays.core"


def test_a_registered_framework_is_found_from_its_arrays(registry):
    module = _stand_in()
    assert find_framework(ToyArray()) is None
    backends.register_framework("toy", module, "toy_arrays")
    assert framework_by_name("toy") is module
    assert find_framework([1.0, {"x": ToyArray()}]) is module
    assert backends.array_namespace(ToyArray()) is module.xp
    assert "toy" in backends.available_frameworks()
    with pytest.raises(TypeError, match="two frameworks were mixed"):
        find_framework(ToyArray(), jnp.ones(2))


def test_the_protocol_members_are_the_frameworks():
    members = backends._protocol_members()
    assert len(members) == 33 and {"xp", "name", "uniform", "top_k"} <= set(members)


def test_register_framework_errors(registry):
    with pytest.raises(ValueError, match="'jax' is already registered"):
        backends.register_framework("jax", _stand_in("jax"), "toy_arrays")
    with pytest.raises(ValueError, match="'tf' is already registered"):
        backends.register_framework("tf", _stand_in("tf"), "toy_arrays")
    with pytest.raises(TypeError, match=r"it lacks fold_in, top_k \(see fxgx.backends.framework"):
        backends.register_framework("toy", _stand_in(fold_in=1, top_k=1), "toy_arrays")
    with pytest.raises(ValueError, match="a module named 'other'; they must match"):
        backends.register_framework("toy", _stand_in("other"), "toy_arrays")
    with pytest.raises(ValueError, match=r"The arrays of \['jaxlib'\] already belong to the "
                                         "framework 'jax'"):
        backends.register_framework("toy", _stand_in(), ("toy_arrays", "jaxlib"))
    for bad in ((), ("toy_arrays", 3), ["toy_arrays"], ""):
        with pytest.raises(TypeError, match="must be a module name or a tuple of them"):
            backends.register_framework("toy", _stand_in(), bad)
    assert find_framework(ToyArray()) is None  # nothing was registered
    backends.register_framework("toy", _stand_in(), "toy_arrays")
    with pytest.raises(ValueError, match="'toy' is already registered"):
        backends.register_framework("toy", _stand_in(), "more_toy_arrays")
