"""The JAX path must work on a machine where TensorFlow cannot be imported (docs/design.md).

A subprocess installs an import hook that makes ``tensorflow`` (and TFP, tf_keras) fail to
import, as on a machine without them, then uses ``fxgx`` with JAX arrays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    BLOCKED = {"tensorflow", "tensorflow_probability", "tf_keras"}


    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, NoTensorFlow())
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import hook did not block tensorflow")

    import jax
    import jax.numpy as jnp
    import numpy as np

    import fxgx
    from fxgx.backends import available_frameworks, framework_by_name
    from fxgx.core.seeds import canonical_seed, split_seed

    result = {"available": available_frameworks()}

    x = jnp.linspace(-2.0, 3.0, 6)
    w = jnp.array([1.0, 0.0, 5.0, -2.0, 0.5, 3.0])


    def h(x):
        return fxgx.custom_gradient(x**2 / 2.0, (x - 1.0) ** 3 / 3.0, x, name="surrogate")


    result["value"] = np.asarray(h(x)).tolist()
    result["gradient"] = np.asarray(jax.grad(lambda x: jnp.sum(w * h(x)))(x)).tolist()
    result["jit_gradient"] = np.asarray(
        jax.jit(jax.grad(lambda x: jnp.sum(w * h(x))))(x)
    ).tolist()

    backend = framework_by_name("jax")
    seeds = split_seed(canonical_seed(3, backend), ["a", "b"], backend)
    result["draws"] = np.asarray(backend.uniform((4,), seeds["a"], "float32")).tolist()

    try:
        framework_by_name("tensorflow")
    except ImportError as error:
        result["tensorflow_error"] = str(error)
    try:
        fxgx.custom_gradient(np.ones(2), np.ones(2), np.ones(2))  # plain NumPy -> default TF
    except ImportError as error:
        result["numpy_error"] = str(error)

    # A distribution that is not fxgx's own: any object with sample(seed=)/log_prob on JAX
    # arrays. The estimators and fxgx.vi must tell JAX from its arrays (they once defaulted
    # to TensorFlow and failed).
    from fxgx import estimators, vi


    class PlainNormal:
        def __init__(self, loc, scale):
            self.loc, self.scale = loc, scale

        batch_shape = ()

        def sample(self, sample_shape=(), seed=None):
            noise = jax.random.normal(seed, tuple(sample_shape) + jnp.shape(self.loc))
            return self.loc + self.scale * noise

        def log_prob(self, value):
            return -0.5 * ((value - self.loc) / self.scale) ** 2 - jnp.log(self.scale)


    def expectation(loc, name):
        estimator = getattr(estimators, name)()
        return estimator(lambda z: (z - 1.0) ** 2, PlainNormal(loc, 1.0), seed=0, num_samples=4)


    result["generic"] = {
        name: float(jax.jit(jax.grad(lambda loc, name=name: expectation(loc, name)))(0.5))
        for name in ("reinforce", "reinforce_leave_one_out", "moving_average_baseline")
    }
    result["generic_elbo"] = float(jax.jit(jax.grad(lambda loc: vi.elbo(
        lambda z: -(z - 1.0) ** 2, PlainNormal(loc, 1.0), seed=0, num_samples=4)))(0.5))

    result["tensorflow_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps(result))
    """
)


# One worker runs this module, so its interpreter without TensorFlow starts once.
pytestmark = pytest.mark.xdist_group("jax_without_tensorflow")


@pytest.fixture(scope="module")
def result():
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_no_tensorflow_module_was_loaded(result):
    assert result["tensorflow_loaded"] == []
    assert result["available"] == ["jax"]


def test_custom_gradient_with_jax_grad_gives_w_times_g(result):
    x = np.linspace(-2.0, 3.0, 6).astype(np.float32)
    w = np.array([1.0, 0.0, 5.0, -2.0, 0.5, 3.0], np.float32)
    np.testing.assert_allclose(result["value"], x**2 / 2.0, rtol=1e-6)
    expected = w * (x - 1.0) ** 3 / 3.0
    np.testing.assert_allclose(result["gradient"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["jit_gradient"], expected, rtol=1e-5, atol=1e-6)


def test_jax_seeds_and_draws_work(result):
    draws = np.asarray(result["draws"])
    assert draws.shape == (4,) and ((draws >= 0) & (draws < 1)).all()
    assert len(set(draws.tolist())) == 4


def test_missing_tensorflow_says_how_to_install_it(result):
    assert "pip install 'fxgx[tf]'" in result["tensorflow_error"]
    assert "pip install 'fxgx[tf]'" in result["numpy_error"]


def test_a_distribution_of_another_library_stays_on_jax(result):
    """Any JAX object with sample/log_prob works with the score-function estimators and
    fxgx.vi under jax.jit, with TensorFlow unimportable: finite gradients (the exact value,
    2 (0.5 - 1) = -1, is checked statistically in tests/estimators for fxgx's own Normal)."""
    assert set(result["generic"]) == {"reinforce", "reinforce_leave_one_out",
                                      "moving_average_baseline"}
    assert all(np.isfinite(value) for value in result["generic"].values())
    assert np.isfinite(result["generic_elbo"])
