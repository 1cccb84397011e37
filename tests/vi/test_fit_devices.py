"""``fxgx.vi.fit(..., data=, devices=)``: data-parallel fitting over simulated devices.

Each test runs a child process with 8 simulated devices (JAX:
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before jax is imported; TF: 8
logical CPU devices made with ``tf.config.set_logical_device_configuration``) that fits a
small Bernoulli-latent ELBO for a few steps on one device and on many, with the same seed,
and checks the boundary errors. The runs must agree to float tolerance: only the order of
the sums over the batch differs. No statistics, so no false-failure rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

JAX_CHILD = r"""
import json
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from fxgx import estimators, vi
from fxgx.distributions import Bernoulli

assert len(jax.devices()) == 8
rng = np.random.default_rng(0)
observations = rng.normal(size=(16, 1)).astype(np.float32)


def loss(parameters, seed, data):
    # Local latents: one Bernoulli vector per observation, from an amortised encoder, so the
    # draws have shape [samples, batch, 5] and are sharded over the batch.
    q = Bernoulli(data * parameters["scale"] + parameters["shift"], event_ndims=2)

    def log_joint(z):
        mean = jnp.sum(z * parameters["weights"], -1, keepdims=True)
        return jnp.sum(-0.5 * (data - mean) ** 2, (-2, -1)) - 0.7 * jnp.sum(z, (-2, -1))

    return -vi.elbo(log_joint, q, seed=seed, num_samples=4,
                    estimator=estimators.reinforce_leave_one_out())


initial = {"scale": jnp.zeros(5), "shift": jnp.zeros(5), "weights": jnp.full(5, 0.1)}


def run(devices, data=observations):
    return vi.fit(loss, initial, num_steps=5, seed=4, data=data, devices=devices,
                  progress=False)


one, eight = run(None), run(8)

# The draw itself: [samples, batch, 5] sharded over batch equals the unsharded draw.
key = jax.random.key(11)
draw = jax.jit(lambda: jax.random.uniform(key, (4, 16, 5)))()
sharding = NamedSharding(Mesh(np.array(jax.devices()), ("batch",)), PartitionSpec(None, "batch"))
sharded = jax.jit(lambda: jax.lax.with_sharding_constraint(
    jax.random.uniform(key, (4, 16, 5)), sharding))()

errors = {}
for name, devices, data in [
        ("too_many", 9, observations),
        ("two_axes", Mesh(np.array(jax.devices()).reshape(2, 4), ("a", "b")), observations),
        ("indivisible", 8, observations[:12])]:
    try:
        run(devices, data)
        errors[name] = None
    except ValueError as error:
        errors[name] = str(error)


def numbers(result):
    return {"losses": result.losses.tolist(),
            "parameters": {k: np.asarray(v).tolist() for k, v in result.parameters.items()}}


print(json.dumps({
    "one": numbers(one), "eight": numbers(eight),
    "parameter_devices": len(eight.parameters["scale"].sharding.device_set),
    "replicated": eight.parameters["scale"].sharding.is_fully_replicated,
    "shard_shape": list(sharded.addressable_shards[0].data.shape),
    "draws_equal": bool(np.array_equal(draw, sharded)),
    "partitionable": bool(jax.config.jax_threefry_partitionable),
    "errors": errors}))
"""

TENSORFLOW_CHILD = r"""
import contextlib
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 8)
import tf_keras  # noqa: E402

from fxgx import estimators, vi  # noqa: E402
from fxgx.distributions import Bernoulli  # noqa: E402

TOTAL = 16
observations = np.linspace(-1.0, 2.0, TOTAL).astype(np.float32)
weights = np.array([1.0, -0.8, 0.6, 0.9, -0.5], np.float32)


def loss(parameters, seed, data):
    # Global latents (draws of shape [samples, 5]: the same on every replica). The loss is
    # additive over the batch: this shard's share of the minibatch ELBO.
    share = tf.cast(tf.shape(data)[0], tf.float32) / TOTAL
    q = Bernoulli(parameters[0], event_ndims=1)

    def log_joint(z):
        mean = tf.reduce_sum(z * weights, -1, keepdims=True)
        likelihood = tf.reduce_sum(-0.5 * tf.square(data - mean), -1)
        return -0.5 * tf.reduce_sum(z, -1) + likelihood / share

    return -share * vi.elbo(log_joint, q, seed=seed, num_samples=4,
                            estimator=estimators.reinforce_leave_one_out())


def run(devices, data=observations, scope=None):
    with scope.scope() if scope is not None else contextlib.nullcontext():
        variables = [tf.Variable(np.zeros(5, np.float32))]
        optimizer = tf_keras.optimizers.Adam(0.01)
    result = vi.fit(loss, variables, num_steps=5, seed=3, data=data, devices=devices,
                    optimizer=optimizer, progress=False)
    return {"losses": result.losses.tolist(), "parameters": variables[0].numpy().tolist()}


one, eight = run(None), run(8)
strategy = tf.distribute.MirroredStrategy(
    [device.name for device in tf.config.list_logical_devices("CPU")[:2]])
mirrored = run(strategy, scope=strategy)

errors = {}
for name, devices, data in [("too_many", 9, observations), ("indivisible", 8, observations[:12]),
                            ("no_data", 8, None)]:
    try:
        if data is None:
            vi.fit(lambda p, s: tf.reduce_sum(p[0]), [tf.Variable(np.zeros(5, np.float32))],
                   num_steps=1, seed=0, devices=devices, progress=False)
        else:
            run(devices, data)
        errors[name] = None
    except ValueError as error:
        errors[name] = str(error)
with strategy.scope():
    variables = [tf.Variable(np.zeros(5, np.float32))]
try:
    vi.fit(loss, variables, num_steps=1, seed=0, data=observations, devices=strategy,
           optimizer=tf_keras.optimizers.Adam(0.01), progress=False)
    errors["optimizer_outside"] = None
except ValueError as error:
    errors["optimizer_outside"] = str(error)
print(json.dumps({"one": one, "eight": eight, "mirrored": mirrored, "errors": errors}))
"""


def _run_child(source, environment):
    completed = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                               timeout=300, check=False, env={**os.environ, **environment})
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _assert_same_run(first, second):
    np.testing.assert_allclose(second["losses"], first["losses"], rtol=1e-5, atol=1e-5)
    first_parameters, second_parameters = first["parameters"], second["parameters"]
    if isinstance(first_parameters, dict):
        first_parameters = [first_parameters[key] for key in sorted(first_parameters)]
        second_parameters = [second_parameters[key] for key in sorted(second_parameters)]
    np.testing.assert_allclose(np.concatenate([np.ravel(p) for p in second_parameters]),
                               np.concatenate([np.ravel(p) for p in first_parameters]),
                               rtol=1e-5, atol=1e-6)


def test_jax_fit_on_eight_devices_equals_one_device():
    """devices=8 gives the one-device losses and parameters for the same seed, and the
    parameters come back replicated; a [samples, batch, 5] draw sharded over batch equals
    the unsharded draw bit for bit; too many devices, a two-axis mesh and a batch of 12 on
    8 devices are one-line ValueErrors."""
    pytest.importorskip("jax")
    result = _run_child(JAX_CHILD, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8",
                                    "JAX_PLATFORMS": "cpu"})
    _assert_same_run(result["one"], result["eight"])
    assert result["one"]["losses"] != result["one"]["losses"][:1] * 5  # the fit moved
    assert result["parameter_devices"] == 8 and result["replicated"]
    assert result["partitionable"] and result["draws_equal"]
    assert result["shard_shape"] == [4, 2, 5]
    errors = result["errors"]
    assert "devices=9" in errors["too_many"]
    assert "xla_force_host_platform_device_count=9" in errors["too_many"]
    assert "one-axis Mesh" in errors["two_axes"] and "('a', 'b')" in errors["two_axes"]
    assert "batch size 12" in errors["indivisible"] and "multiple of 8" in errors["indivisible"]


#: The first part of the TensorFlow child: one device against devices=8.
TENSORFLOW_CHILD_EIGHT = (TENSORFLOW_CHILD.split("strategy = tf.distribute.MirroredStrategy(")[0]
                          + 'print(json.dumps({"one": one, "eight": eight}))\n')


@pytest.mark.slow  # the TensorFlow twin of the JAX run above (10 s)
def test_tensorflow_fit_on_eight_replicas_equals_one_device():
    """devices=8 (plain variables) gives the one-device losses and parameters for the same
    seed."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    result = _run_child(TENSORFLOW_CHILD_EIGHT, {"TF_CPP_MIN_LOG_LEVEL": "3"})
    _assert_same_run(result["one"], result["eight"])
    assert result["one"]["losses"] != result["one"]["losses"][:1] * 5


@pytest.mark.slow  # the same child again, with the scoped-strategy run and the errors (5 s)
def test_tensorflow_fit_with_a_scoped_strategy_and_its_errors():
    """A 2-replica MirroredStrategy (variables made under its scope) gives the one-device
    losses and parameters for the same seed; too many devices, a batch of 12 on 8 replicas,
    devices= without data= and an optimizer made outside the scope of mirrored variables are
    one-line ValueErrors."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    result = _run_child(TENSORFLOW_CHILD, {"TF_CPP_MIN_LOG_LEVEL": "3"})
    _assert_same_run(result["one"], result["eight"])
    _assert_same_run(result["one"], result["mirrored"])
    assert result["one"]["losses"] != result["one"]["losses"][:1] * 5
    errors = result["errors"]
    assert "devices=9" in errors["too_many"] and "set_logical_device_configuration" in errors[
        "too_many"]
    assert "batch size 12" in errors["indivisible"] and "multiple of 8" in errors["indivisible"]
    assert "needs data=" in errors["no_data"]
    assert "strategy.scope()" in errors["optimizer_outside"]
