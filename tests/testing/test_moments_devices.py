"""``gradient_moments(devices=)``: chunks of estimates run on many devices at once.

Each backend gets one child Python with 8 simulated CPU devices (JAX: ``XLA_FLAGS=
--xla_force_host_platform_device_count=8``; TensorFlow: 8 logical CPU devices from
``tf.config.set_logical_device_configuration``), set before the framework starts, which is
why these run in a subprocess. The child draws the moments of REINFORCE on the Bernoulli toy
once on one device and once on 8 for the same seed and chunk size, with a partial last round
(12 chunks on 8 devices) and a partial last chunk, and the test compares them: chunk ``i``
uses the ``i``-th split of the seed whichever device runs it, so they must agree to float64
merge rounding. These checks are deterministic (no false-failure rate): any change in which
seed a chunk gets, or a padding row that is merged, changes the moments far beyond the
tolerance. The error checks run in this process, whose frameworks see one CPU device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fxgx.estimators import reinforce
from fxgx.problems import get_problem
from fxgx.testing import gradient_moments

# One worker runs this module, so each backend's child process (a module fixture) starts once.
pytestmark = pytest.mark.xdist_group("moments_devices")

SOURCE = str(Path(__file__).resolve().parents[2] / "src")
NUM_ESTIMATES = 1130  # 12 chunks of 100: rounds of 8 and 4 chunks; the last chunk has 30 rows
CHUNK_SIZE = 100

CHILD = r"""
import json, sys
backend = sys.argv[1]
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 8)
from fxgx.estimators import reinforce
from fxgx.problems import get_problem
from fxgx.testing import gradient_moments

problem = get_problem("bernoulli_toy", backend=backend)
runs = {"one_device": None, "eight_devices": 8}
if backend == "jax":
    import jax
    runs["mesh_of_four"] = jax.make_mesh((4,), ("devices",))
result = {}
if backend == "tensorflow":
    # A strategy only names the devices (then the path of devices=N): check what it names.
    from fxgx.backends import framework_by_name
    names = [device.name for device in tf.config.list_logical_devices("CPU")][:4]
    selected = framework_by_name("tensorflow").resolve_devices(
        tf.distribute.MirroredStrategy(names))
    result["strategy_devices"] = [name.split("/")[-1] for name in selected]
for label, devices in runs.items():
    moments = gradient_moments(
        reinforce(), problem, num_estimates=NUM_ESTIMATES, seed=7, backend=backend,
        chunk_size=CHUNK_SIZE, devices=devices)
    result[label] = {"count": moments.count, "mean": moments.mean.tolist(),
                     "sum_squares": moments.sum_squares.tolist(),
                     "sum_fourth_powers": moments.sum_fourth_powers.tolist(),
                     "num_devices": moments.num_devices}
try:
    gradient_moments(reinforce(), problem, num_estimates=10, seed=0, backend=backend,
                     chunk_size=2, devices=9)
except ValueError as error:
    result["too_many"] = str(error)
print("RESULT " + json.dumps(result))
""".replace("NUM_ESTIMATES", str(NUM_ESTIMATES)).replace("CHUNK_SIZE", str(CHUNK_SIZE))


CHILD_RESULTS: dict = {}  # one child per backend and worker, whatever order pytest runs in


def run_child(backend: str, tmp_path_factory) -> dict:
    if backend not in CHILD_RESULTS:
        CHILD_RESULTS[backend] = _run_child(backend, tmp_path_factory)
    return CHILD_RESULTS[backend]


def _run_child(backend: str, tmp_path_factory) -> dict:
    environment = dict(os.environ)
    environment.update(
        PYTHONPATH=SOURCE + os.pathsep + environment.get("PYTHONPATH", ""),
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        TF_CPP_MIN_LOG_LEVEL="3",
        # TensorFlow compiles the chunk once per device; the persistent cache makes the
        # 7 later compiles loads of the first.
        TF_XLA_FLAGS="--tf_xla_persistent_cache_directory="
        + str(tmp_path_factory.mktemp("xla_cache")),
    )
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, backend], capture_output=True, text=True,
        env=environment, timeout=120, check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


# The TensorFlow child (8 s) is the twin of the JAX one: it runs in the slow set.
@pytest.fixture(scope="module", params=["jax", pytest.param("tensorflow", marks=pytest.mark.slow)])
def child(request, tmp_path_factory):
    """``(backend, result)`` of one child process per backend, shared by the tests."""
    return request.param, run_child(request.param, tmp_path_factory)


def assert_same_moments(first: dict, second: dict):
    assert first["count"] == second["count"] == NUM_ESTIMATES
    for key in ("mean", "sum_squares", "sum_fourth_powers"):
        np.testing.assert_allclose(second[key], first[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_eight_devices_give_the_one_device_moments(child):
    _, result = child
    assert result["eight_devices"]["num_devices"] == 8
    assert result["one_device"]["num_devices"] == 1
    assert_same_moments(result["one_device"], result["eight_devices"])


def test_a_mesh_gives_the_one_device_moments_and_a_strategy_its_devices(child):
    backend, result = child
    if backend == "jax":
        assert result["mesh_of_four"]["num_devices"] == 4
        assert_same_moments(result["one_device"], result["mesh_of_four"])
    else:
        assert result["strategy_devices"] == [f"device:CPU:{index}" for index in range(4)]


def test_too_many_devices_names_the_visible_count_and_how_to_simulate_more(child):
    backend, result = child
    message = result["too_many"]
    assert "devices=9" in message and "8" in message
    if backend == "jax":
        assert "XLA_FLAGS=--xla_force_host_platform_device_count=9" in message
    else:
        assert "set_logical_device_configuration" in message


# TensorFlow's instance builds strategies in this process (5 s); its child checks the message
# for too many devices in the default set.
@pytest.mark.parametrize("backend", ["jax", pytest.param("tensorflow", marks=pytest.mark.slow)])
def test_bad_devices_are_one_line_errors(backend):
    problem = get_problem("bernoulli_toy", backend=backend)

    def call(devices):
        gradient_moments(reinforce(), problem, num_estimates=4, seed=0, backend=backend,
                         chunk_size=2, devices=devices)

    with pytest.raises(ValueError, match=r"devices=1000000,? but .* sees \d+ "):
        call(10**6)
    with pytest.raises(ValueError, match="at least 1"):
        call(0)
    with pytest.raises(TypeError, match="not a device count"):
        call(True)
    if backend == "jax":
        import jax  # noqa: PLC0415

        mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
        with pytest.raises(ValueError, match=r"Mesh with axes \('a', 'b'\).*one-axis"):
            call(mesh)
        strategy_type = type("MirroredStrategy", (), {
            "__module__": "tensorflow.python.distribute.mirrored_strategy"})
        with pytest.raises(TypeError, match="TensorFlow object, but the backend is JAX"):
            call(strategy_type())
    else:
        import jax  # noqa: PLC0415

        mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("devices",))
        with pytest.raises(TypeError, match="JAX object, but the backend is TensorFlow"):
            call(mesh)


MULTI_PROCESS_CHILD = r"""
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from fxgx.estimators import reinforce
from fxgx.problems import get_problem
from fxgx.testing import gradient_moments
moments = gradient_moments(
    reinforce(), get_problem("bernoulli_toy", backend="jax"), num_estimates=NUM_ESTIMATES,
    seed=7, backend="jax", chunk_size=CHUNK_SIZE, devices=len(jax.devices()))
print("RESULT " + json.dumps({"count": moments.count, "mean": moments.mean.tolist(),
      "sum_squares": moments.sum_squares.tolist(),
      "sum_fourth_powers": moments.sum_fourth_powers.tolist(),
      "num_devices": moments.num_devices}))
""".replace("NUM_ESTIMATES", str(NUM_ESTIMATES)).replace("CHUNK_SIZE", str(CHUNK_SIZE))


@pytest.mark.slow
def test_two_processes_of_four_devices_give_the_one_device_moments(tmp_path_factory):
    # jax.distributed on one machine: 2 processes x 4 simulated CPU devices, gloo collectives.
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        address = f"localhost:{probe.getsockname()[1]}"
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                       PYTHONPATH=SOURCE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    processes = [
        subprocess.Popen([sys.executable, "-c", MULTI_PROCESS_CHILD, address, str(index)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=environment)
        for index in range(2)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert process.returncode == 0 and lines, stderr[-3000:]
        results.append(json.loads(lines[-1][len("RESULT "):]))
    one_device = gradient_moments(
        reinforce(), get_problem("bernoulli_toy", backend="jax"), num_estimates=NUM_ESTIMATES,
        seed=7, backend="jax", chunk_size=CHUNK_SIZE)
    expected = {"count": one_device.count, "mean": one_device.mean,
                "sum_squares": one_device.sum_squares,
                "sum_fourth_powers": one_device.sum_fourth_powers}
    for result in results:
        assert result["num_devices"] == 8
        assert_same_moments(expected, result)
