"""An int seed inside ``tf.function`` (with and without XLA) logs nothing from TensorFlow.

TF's plain CPU kernel of ``stateless_uniform`` has no threefry (tensorflow/tensorflow#100252):
when a seed is a graph constant, TF tries to constant-fold the draws with it and logs
``OP_REQUIRES failed ... counter must be a vector with length at least 2``. fxgx keeps its
seeds out of reach of constant folding (``backends/tensorflow_backend.py``). A subprocess
runs estimators with int seeds in every regime at full logging and the test reads its stderr.
Deterministic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorflow")

SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf
    from fxgx import estimators
    from fxgx.distributions import Bernoulli, OneHotCategorical

    bernoulli = tf.constant([[0.1, -0.4, 0.3]])
    categorical = tf.constant([[[0.1, -0.4, 0.3], [1.0, 0.0, 0.2]]])

    def run():
        first = estimators.disarm()(lambda z: tf.reduce_sum(z, -1),
                                    Bernoulli(bernoulli, event_ndims=1), seed=3, num_samples=2)
        second = estimators.reinforce_leave_one_out()(
            lambda z: tf.reduce_sum(z * categorical, [-2, -1]),
            OneHotCategorical(categorical, event_ndims=1), seed=4, num_samples=2)
        third = estimators.reinforce()(lambda z: tf.reduce_sum(z, -1),
                                       Bernoulli(bernoulli, event_ndims=1),
                                       seed=tf.constant(5), num_samples=2)
        return first + second + third

    eager = run()
    graph = tf.function(run)()
    compiled = tf.function(run, jit_compile=True)()
    tf.debugging.assert_equal(eager, graph)
    tf.debugging.assert_near(eager, compiled)
    print("done")
    """
)


@pytest.mark.slow  # 7 s; the default set keeps the other logging checks
def test_int_seeds_in_every_regime_log_no_kernel_failures():
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                               timeout=300, env=environment, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "done" in completed.stdout
    assert "OP_REQUIRES failed" not in completed.stderr, completed.stderr[-3000:]
