"""Shared fixtures: a ``backend`` per framework, a float-dtype fixture, and helpers that take
values and vector-Jacobian products on either framework with one call.

Fixtures:
  backend: the framework module (``fxgx.backends.framework_by_name``: its ``xp`` is the array
    API namespace, the rest the ``fxgx.backends.framework.Framework`` protocol), once per
    framework; skipped when that framework is not installed. Parametrise it indirectly to
    pin one (``@pytest.mark.parametrize("backend", ["jax"], indirect=True)``).
  framework: a :class:`FrameworkHelper` around ``backend``.
  float_dtype: "float16", "bfloat16", "float32", "float64".
"""

from __future__ import annotations

import contextlib
import os

# Must be set before TensorFlow is imported anywhere in the test session.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _share_jax_compilations() -> None:
    """One JAX persistent compilation cache for the whole run: made by the first process that
    loads this file (pytest-xdist's controller), inherited by its workers and subprocesses
    through the environment. Tests compile the same small programs (and JAX's eager mode the
    same primitives) in many places; a hit skips XLA's compilation (about 12 % of the JAX
    tests' time, measured cold). The cache starts empty each run and its key includes the
    jax/jaxlib versions and the compiled program, so results are those of a fresh compile.
    JAX writes entries unlocked, so a process can read one half-written: JAX warns and
    compiles afresh (pyproject.toml's filterwarnings says why that warning is let through)."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import atexit  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    directory = tempfile.mkdtemp(prefix="fxgx-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


_share_jax_compilations()

import ml_dtypes  # noqa: E402 - after the TF logging switch above
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fxgx.backends import framework_by_name  # noqa: E402

BACKEND_NAMES = ("tensorflow", "jax")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Unsigned integer views used to compare bit patterns.
UINT_OF = {
    "float16": np.uint16,
    "bfloat16": np.uint16,
    "float32": np.uint32,
    "float64": np.uint64,
}


def numpy_dtype(dtype: str) -> np.dtype:
    """NumPy dtype for a dtype name (bfloat16 comes from ml_dtypes, as in TF and JAX)."""
    return np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)


def assert_bitwise_equal(actual, expected, dtype: str) -> None:
    """Assert that two arrays of ``dtype`` have identical bit patterns (so -0.0 != 0.0)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=numpy_dtype(dtype))
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    view = UINT_OF[dtype]
    mismatched = actual.view(view) != expected.view(view)
    assert not mismatched.any(), (
        f"bit patterns differ at {np.argwhere(mismatched).tolist()}: "
        f"got {actual[mismatched]}, expected {expected[mismatched]}"
    )


def zero_if_none(gradient, like):
    """TF returns None for an unconnected gradient, JAX returns zeros: make both zeros."""
    return np.zeros(np.shape(like)) if gradient is None else np.asarray(gradient)


class FrameworkHelper:
    """Thin helpers so one test body runs on TensorFlow and on JAX.

    ``mode`` names how the computation runs: "eager" on both; "function" and "xla"
    (``tf.function`` without/with ``jit_compile``) on TensorFlow; "jit" on JAX.
    """

    def __init__(self, backend):
        self.backend = backend
        self.xp = backend.xp
        self.name = backend.name

    numpy_dtype = staticmethod(numpy_dtype)
    assert_bitwise_equal = staticmethod(assert_bitwise_equal)
    zero_if_none = staticmethod(zero_if_none)

    @property
    def modes(self) -> tuple[str, ...]:
        return ("eager", "function", "xla") if self.name == "tensorflow" else ("eager", "jit")

    def x64(self, dtype: str = "float64"):
        """Context in which JAX keeps float64 (a no-op for TF or other dtypes)."""
        if self.name == "jax" and dtype == "float64":
            import jax

            return jax.enable_x64(True)
        return contextlib.nullcontext()

    def constant(self, value, dtype: str = "float32"):
        array = np.asarray(value, dtype=numpy_dtype(dtype))
        return self.backend.xp.asarray(array)

    def variable(self, value, dtype: str = "float32"):
        """A differentiable parameter: ``tf.Variable`` on TF, an array on JAX."""
        if self.name == "tensorflow":
            import tensorflow as tf

            return tf.Variable(np.asarray(value, dtype=numpy_dtype(dtype)))
        return self.constant(value, dtype)

    @staticmethod
    def numpy(value) -> np.ndarray:
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)

    def compile(self, function, mode: str):
        if mode == "eager":
            return function
        if self.name == "tensorflow" and mode in ("function", "xla"):
            import tensorflow as tf

            return tf.function(function, jit_compile=mode == "xla")
        if self.name == "jax" and mode == "jit":
            import jax

            return jax.jit(function)
        raise ValueError(f"mode {mode!r} is not a mode of {self.name}")

    def value_and_vjp(self, function, *arguments, cotangent=None, mode: str = "eager"):
        """``function(*arguments)`` and the gradients of ``sum(cotangent * value)``.

        ``cotangent`` defaults to ones. Returns NumPy arrays; an unconnected gradient is
        ``None`` on TF and zeros on JAX (use :func:`zero_if_none`).
        """
        if self.name == "tensorflow":
            import tensorflow as tf

            def run(*args):
                with tf.GradientTape() as tape:
                    for argument in args:
                        tape.watch(argument)
                    value = function(*args)
                upstream = tf.ones_like(value) if cotangent is None else cotangent
                return value, tape.gradient(value, list(args), output_gradients=upstream)

        else:
            import jax
            import jax.numpy as jnp

            def run(*args):
                value, pullback = jax.vjp(function, *args)
                upstream = jnp.ones_like(value) if cotangent is None else cotangent
                return value, list(pullback(upstream))

        value, gradients = self.compile(run, mode)(*arguments)
        return self.numpy(value), [None if g is None else self.numpy(g) for g in gradients]


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    try:
        return framework_by_name(request.param)
    except ImportError as error:
        pytest.skip(f"{request.param} is not installed: {error}")


@pytest.fixture
def framework(backend) -> FrameworkHelper:
    return FrameworkHelper(backend)


@pytest.fixture(params=FLOAT_DTYPES)
def float_dtype(request) -> str:
    return request.param


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.jax_in_slow_set``: the JAX instance of a backend-generic test (one whose
    code is the same on both frameworks and whose TensorFlow instance stays in the default set)
    is moved to the slow set, which CI runs too. Runs before ``-m`` deselects."""
    del config
    for item in items:
        if item.get_closest_marker("jax_in_slow_set") is None:
            continue
        parameters = getattr(getattr(item, "callspec", None), "params", {})
        if "jax" in (parameters.get("backend"), parameters.get("backend_name")):
            item.add_marker(pytest.mark.slow)
