"""Streamed estimates on many (simulated) devices, and their memory.

Each backend runs in a child process that sees 8 devices: JAX through
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, TensorFlow through 8 logical CPU
devices (``tf.config.set_logical_device_configuration``). The child computes the value and
the gradients (w.r.t. the logits and a parameter ``f`` reads, for a non-uniform cotangent) of
streamed REINFORCE and leave-one-out REINFORCE on one device and on 8, for the same seed and
chunk size: chunk ``c`` uses seed ``c`` wherever it runs, so the results agree up to the
order of the additions (float32: 1e-5 relative). JAX: two sample counts, one whose chunks
divide evenly over the devices (given as a count), and one that leaves chunks (and a partial
chunk) for the default device (given as a ``Mesh``). TensorFlow: the second, with a
``MirroredStrategy`` (its blocks of 1 or 2 chunks per device, and the partial chunk).

Memory: a third child streams 10^6 and then 10^8 samples through REINFORCE (JAX, chunks of
2^16, gradient included) and reads the peak resident set size (``VmHWM``, reset with
``/proc/self/clear_refs`` before each run, as ``tests/testing/test_memory.py`` does). The two
peaks must be within 64 MiB, while 10^8 samples held at once would take 800 MB for the
uniform draws alone; a one-shot control run of 10^7 samples shows that the measurement sees
such an allocation. Deterministic up to allocator noise; no statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MEBIBYTE = 2**20

JAX_SCRIPT = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
from fxgx.distributions import Bernoulli
from fxgx.estimators import reinforce, reinforce_leave_one_out

logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float32)
weight = jnp.asarray([0.2, 0.5, 0.7], jnp.float32)
cotangent = jnp.asarray([1.0, 3.0])

def gradients(estimator, num_samples, devices):
    def total(logits, weight):
        f = lambda b: jnp.sum((b - weight) ** 2, axis=-1)
        surrogate = estimator(f, Bernoulli(logits, event_ndims=1), seed=jax.random.key(4),
                              num_samples=num_samples, chunk_size=64, devices=devices)
        return jnp.sum(surrogate * cotangent)
    value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(logits, weight)
    return [np.asarray(value).tolist()] + [np.asarray(g).ravel().tolist() for g in grads]

results = {"devices": len(jax.devices())}
# REINFORCE: 16 chunks, two per device; leave-one-out: 13 full chunks (8 sharded, 5 on the
# default device) and a partial one, devices given as the framework's own object.
mesh = Mesh(np.array(jax.devices()), ("samples",))
for estimator, num_samples, devices in ((reinforce(), 64 * 16, 8),
                                        (reinforce_leave_one_out(), 64 * 13 + 30, mesh)):
    results[estimator.name] = [gradients(estimator, num_samples, None),
                               gradients(estimator, num_samples, devices)]
print("RESULT" + json.dumps(results))
"""

TENSORFLOW_SCRIPT = r"""
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 8)
from fxgx.distributions import Bernoulli
from fxgx.estimators import reinforce_leave_one_out

logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3)), tf.float32)
weight = tf.Variable([0.2, 0.5, 0.7])
cotangent = tf.constant([1.0, 3.0])
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])

def gradients(estimator, num_samples, devices):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            f = lambda b: tf.reduce_sum((b - weight) ** 2, axis=-1)
            surrogate = estimator(f, Bernoulli(logits, event_ndims=1), seed=4,
                                  num_samples=num_samples, chunk_size=64, devices=devices)
            total = tf.reduce_sum(surrogate * cotangent)
        return total, tape.gradient(total, [logits, weight])
    value, grads = run()
    return [float(value)] + [g.numpy().ravel().tolist() for g in grads]

results = {"devices": len(tf.config.list_logical_devices("CPU"))}
# Leave-one-out: 13 full chunks (blocks of 1 or 2 per device) and a partial one, devices
# given as a MirroredStrategy (a count resolves to the same device list; the JAX child and
# tests/testing/test_moments_devices.py use counts).
for estimator, num_samples, devices in ((reinforce_leave_one_out(), 64 * 13 + 30, strategy),):
    results[estimator.name] = [gradients(estimator, num_samples, None),
                               gradients(estimator, num_samples, devices)]
print("RESULT" + json.dumps(results))
"""

MEMORY_SCRIPT = r"""
import json, jax, jax.numpy as jnp
from fxgx.distributions import Bernoulli
from fxgx.estimators import reinforce

def peak():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

def reset():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")

logits = jnp.asarray([0.3, -0.4])
def gradient(num_samples, chunk_size):
    def total(logits):
        f = lambda b: jnp.sum((b - 0.45) ** 2, axis=-1)
        return reinforce()(f, Bernoulli(logits, event_ndims=1), seed=jax.random.key(0),
                           num_samples=num_samples, chunk_size=chunk_size)
    return jax.jit(jax.grad(total))

results = {}
for label, num_samples, chunk_size in (("streamed_1e6", 10**6, 2**16),
                                       ("streamed_1e8", 10**8, 2**16),
                                       ("one_shot_1e7", 10**7, None)):
    compiled = gradient(num_samples, chunk_size)
    compiled.lower(logits).compile()  # compile outside the measured window
    reset()
    start = peak()
    compiled(logits).block_until_ready()
    results[label] = peak() - start
print("RESULT" + json.dumps(results))
"""


def run_child(script: str, environment: dict) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **environment)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env=env, timeout=600, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT"):])


def assert_same_on_every_device_count(results, count=2):
    assert results.pop("devices") == 8
    assert len(results) == count
    for key, (one, many) in results.items():
        for single, sharded in zip(one, many, strict=True):
            single, sharded = pytest.approx(single, rel=1e-5, abs=1e-5), sharded
            assert sharded == single, key


def test_jax_streams_the_same_estimate_on_eight_devices():
    pytest.importorskip("jax")
    results = run_child(JAX_SCRIPT, {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"})
    assert_same_on_every_device_count(results)


@pytest.mark.slow  # the TensorFlow twin of the JAX run above (11 s)
def test_tensorflow_streams_the_same_estimate_on_eight_logical_devices():
    pytest.importorskip("tensorflow")
    assert_same_on_every_device_count(run_child(TENSORFLOW_SCRIPT, {}), count=1)


def test_peak_memory_is_flat_from_a_million_to_a_hundred_million_samples():
    pytest.importorskip("jax")
    peaks = run_child(MEMORY_SCRIPT, {"JAX_PLATFORMS": "cpu"})
    assert abs(peaks["streamed_1e8"] - peaks["streamed_1e6"]) < 64 * MEBIBYTE, peaks
    assert peaks["one_shot_1e7"] > peaks["streamed_1e8"] + 64 * MEBIBYTE, peaks


MULTI_PROCESS_CHILD = r"""
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
import jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
from fxgx.distributions import Bernoulli
from fxgx.estimators import reinforce_leave_one_out

logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float32)
weight = jnp.asarray([0.2, 0.5, 0.7], jnp.float32)

def total(logits, weight, devices):
    f = lambda b: jnp.sum((b - weight) ** 2, axis=-1)
    surrogate = reinforce_leave_one_out()(f, Bernoulli(logits, event_ndims=1),
                                          seed=jax.random.key(4), num_samples=64 * 13 + 30,
                                          chunk_size=64, devices=devices)
    return jnp.sum(surrogate * jnp.asarray([1.0, 3.0]))

mesh = Mesh(np.array(jax.devices()), ("samples",))
value, grads = jax.jit(jax.value_and_grad(lambda l, w: total(l, w, mesh), argnums=(0, 1)))(
    logits, weight)
print("RESULT" + json.dumps({"devices": len(jax.devices()),
      "result": [float(value)] + [np.asarray(g).ravel().tolist() for g in grads]}))
"""


@pytest.mark.slow
def test_jax_streams_the_same_estimate_on_two_processes_of_four_devices():
    """``jax.distributed`` on one machine (2 processes x 4 simulated CPU devices, gloo
    collectives) against one device in this process."""
    import socket  # noqa: PLC0415

    jax = pytest.importorskip("jax")
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from fxgx.distributions import Bernoulli  # noqa: PLC0415
    from fxgx.estimators import reinforce_leave_one_out  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        address = f"localhost:{probe.getsockname()[1]}"
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                       JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    processes = [subprocess.Popen([sys.executable, "-c", MULTI_PROCESS_CHILD, address, str(rank)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=environment) for rank in range(2)]
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float32)
    weight = jnp.asarray([0.2, 0.5, 0.7], jnp.float32)

    def total(logits, weight):
        surrogate = reinforce_leave_one_out()(
            lambda b: jnp.sum((b - weight) ** 2, axis=-1), Bernoulli(logits, event_ndims=1),
            seed=jax.random.key(4), num_samples=64 * 13 + 30, chunk_size=64)
        return jnp.sum(surrogate * jnp.asarray([1.0, 3.0]))

    value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(logits, weight)
    expected = [float(value)] + [np.asarray(g).ravel().tolist() for g in grads]
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT")]
        assert process.returncode == 0 and lines, stderr[-3000:]
        result = json.loads(lines[-1][len("RESULT"):])
        assert result["devices"] == 8
        assert_same_on_every_device_count({"devices": 8, "estimate": [expected, result["result"]]},
                                          count=1)
