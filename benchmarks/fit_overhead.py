"""Per-step cost of ``fxgx.vi.fit`` against a hand-written compiled loop, in one run.

The workload is the negative ELBO of a mean-field Bernoulli surrogate (``dimension`` latents,
``num_samples`` samples, REINFORCE-LOO through ``fxgx.vi.elbo``) with Adam. The reference is
what a user writes by hand with the same loss and the same optimizer:

- JAX: ``jax.jit`` of a ``lax.scan`` over the steps (``value_and_grad`` + ``optax.adam``);
- TensorFlow: one ``tf.function`` with a ``tf.while_loop`` over the steps
  (``GradientTape`` + ``tf_keras`` Adam).

Each is run cold (a fresh function, compilation included) at ``short`` and ``long`` step
counts; the marginal per-step time ``(T(long) - T(short)) / (long - short)`` cancels the
one-time costs (tracing, compilation), and ``ratio = fit / hand-written`` is reported per
backend with the one-time cost of each. Best of ``--repeats`` runs.

    python benchmarks/fit_overhead.py [--short 5000] [--long 50000] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

import benchmark_environment  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEARNING_RATE = 0.01


def _jax_case(dimension: int, num_samples: int):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import fxgx.vi as vi
    from fxgx.distributions import Bernoulli

    target = jnp.asarray(np.linspace(-1.0, 1.0, dimension), jnp.float32)

    def loss(parameters, seed):
        surrogate = Bernoulli(parameters["logits"], event_ndims=1)
        return -vi.elbo(lambda z: -jnp.sum((z - target) ** 2, -1), surrogate, seed=seed,
                        num_samples=num_samples)

    def initial():
        return {"logits": jnp.zeros(dimension, jnp.float32)}

    def run_fit(steps):
        result = vi.fit(loss, initial(), num_steps=steps, seed=0, progress=False,
                        learning_rate=LEARNING_RATE)
        jax.block_until_ready(result.parameters)

    def run_hand_written(steps):
        optimizer = optax.adam(LEARNING_RATE)
        key = jax.random.key(0)

        def step(carry, index):
            parameters, state = carry
            value, gradients = jax.value_and_grad(loss)(parameters,
                                                        jax.random.fold_in(key, index))
            updates, state = optimizer.update(gradients, state, parameters)
            return (optax.apply_updates(parameters, updates), state), value

        @jax.jit
        def loop(parameters):
            (parameters, _), losses = jax.lax.scan(
                step, (parameters, optimizer.init(parameters)), jnp.arange(steps))
            return parameters, losses

        jax.block_until_ready(loop(initial()))

    return run_fit, run_hand_written


def _tensorflow_case(dimension: int, num_samples: int):
    import numpy as np
    import tensorflow as tf
    import tf_keras

    import fxgx.vi as vi
    from fxgx.distributions import Bernoulli

    target = tf.constant(np.linspace(-1.0, 1.0, dimension), tf.float32)

    def loss(parameters, seed):
        surrogate = Bernoulli(parameters[0], event_ndims=1)
        return -vi.elbo(lambda z: -tf.reduce_sum((z - target) ** 2, -1), surrogate,
                        seed=seed, num_samples=num_samples)

    def run_fit(steps):
        vi.fit(loss, [tf.Variable(tf.zeros(dimension))], num_steps=steps, seed=0,
               progress=False, learning_rate=LEARNING_RATE)

    def run_hand_written(steps):
        variables = [tf.Variable(tf.zeros(dimension))]
        optimizer = tf_keras.optimizers.Adam(LEARNING_RATE)
        optimizer.build(variables)
        seed = tf.constant([0, 0], tf.int64)

        @tf.function
        def loop():
            def body(index, losses):
                with tf.GradientTape() as tape:
                    value = loss(variables, tf.random.experimental.stateless_fold_in(
                        seed, tf.cast(index, tf.int64)))
                gradients = tape.gradient(value, variables)
                optimizer.apply_gradients(zip(gradients, variables, strict=True))
                return index + 1, losses.write(index, value)

            _, losses = tf.while_loop(lambda index, _: index < steps, body,
                                      (tf.constant(0), tf.TensorArray(tf.float32, steps)))
            return losses.stack()

        loop().numpy()

    return run_fit, run_hand_written


def _best(function, steps: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(steps)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(backend: str, dimension: int, num_samples: int, short: int, long: int,
            repeats: int) -> dict:
    case = _jax_case if backend == "jax" else _tensorflow_case
    run_fit, run_hand_written = case(dimension, num_samples)
    run_fit(8), run_hand_written(8)  # imports and first traces out of the way
    row = {"backend": backend, "dimension": dimension, "num_samples": num_samples}
    for name, function in (("fit", run_fit), ("hand_written", run_hand_written)):
        short_time = _best(function, short, repeats)
        long_time = _best(function, long, repeats)
        per_step = (long_time - short_time) / (long - short)
        row[f"{name}_microseconds_per_step"] = 1e6 * per_step
        row[f"{name}_one_time_seconds"] = short_time - short * per_step
    row["ratio_fit_to_hand_written"] = (row["fit_microseconds_per_step"]
                                        / row["hand_written_microseconds_per_step"])
    return row


def versions() -> dict:
    """The versions of Python and of the packages the benchmark runs."""
    return benchmark_environment.versions(
        ('fxgx', 'jax', 'jaxlib', 'tensorflow', 'optax', 'tf-keras'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--short", type=int, default=5000, help="steps of the short run")
    parser.add_argument("--long", type=int, default=50000, help="steps of the long run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (best kept)")
    parser.add_argument("--backends", default="jax,tensorflow", help="comma-separated")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    arguments = parser.parse_args()
    rows = []
    for backend in arguments.backends.split(","):
        for dimension, num_samples in ((5, 4), (200, 32)):
            row = measure(backend, dimension, num_samples, arguments.short, arguments.long,
                          arguments.repeats)
            rows.append(row)
            print(f"{backend:10s} D={dimension:<4d} S={num_samples:<3d} "
                  f"fit {row['fit_microseconds_per_step']:8.1f} us/step  "
                  f"hand-written {row['hand_written_microseconds_per_step']:8.1f} us/step  "
                  f"ratio {row['ratio_fit_to_hand_written']:.3f}  one-time fit "
                  f"{row['fit_one_time_seconds']:.2f} s / hand-written "
                  f"{row['hand_written_one_time_seconds']:.2f} s", flush=True)
    if arguments.json:
        document = {
            "benchmark": "fit_overhead",
            "command": "python benchmarks/fit_overhead.py " + " ".join(
                f"--{name} {getattr(arguments, name)}" for name in ("short", "long", "repeats")),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count()},
            "versions": versions(),
            "rows": rows,
        }
        benchmark_environment.write_json(document, arguments.json)


if __name__ == "__main__":
    main()
