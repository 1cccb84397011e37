"""What streaming and sharding cost: streamed against one-shot estimates, 1 against 8 devices.

Three measurements of the gradient of REINFORCE's surrogate w.r.t. logits of shape
``[batch, D]`` (``f(b) = sum_d (b_d - 0.45)^2``), compiled, medians of interleaved repeats
(so that a load change on a shared machine hits both sides of a ratio):

1. ``chunk_size`` against a one-shot call with the same ``num_samples`` (both fit): the price
   of the loop and of recomputing each chunk in the backward pass (ratio = one-shot time /
   streamed time; 1.0 would be free). JAX ``jit``, TensorFlow ``tf.function`` and XLA.
2. A call that does not fit at once: ``num_samples = 10^7`` with ``D = 100`` (10^9 draws;
   one-shot it needs tens of GB), streamed in chunks of 2^16: draws per second.
3. The same streamed estimate on 1 and on 8 devices, in a child process that simulates 8 CPU
   devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``; the machine's cores are
   shared by all of them), for two chunk sizes: draws per second per device and the ratio of
   throughputs. Eight devices run eight chunks at once, so their working sets share the
   CPU's caches: the chunk size decides whether 8 devices beat one.

    python benchmarks/streaming_throughput.py [--json benchmarks/results/streaming_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import benchmark_environment  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET = 0.45


timed = benchmark_environment.timed
interleaved_medians = benchmark_environment.interleaved_medians


def jax_gradient(num_samples, chunk_size, dimension, devices=None):
    import jax
    import jax.numpy as jnp

    from fxgx.distributions import Bernoulli
    from fxgx.estimators import reinforce

    logits = jax.random.normal(jax.random.key(1), (1, dimension))

    def total(logits, key):
        def f(b):
            return jnp.sum(jnp.square(b - TARGET), axis=-1)
        return jnp.sum(reinforce()(f, Bernoulli(logits, event_ndims=1), seed=key,
                                   num_samples=num_samples, chunk_size=chunk_size,
                                   devices=devices))

    compiled = jax.jit(jax.grad(total))
    key = jax.random.key(3)
    return lambda: compiled(logits, key).block_until_ready()


def tensorflow_gradient(num_samples, chunk_size, dimension, jit_compile):
    import tensorflow as tf

    from fxgx.distributions import Bernoulli
    from fxgx.estimators import reinforce

    logits = tf.random.stateless_normal([1, dimension], [1, 2])
    seed = tf.constant([3, 4], tf.int64)

    @tf.function(jit_compile=jit_compile)
    def gradient(logits, seed):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            surrogate = reinforce()(
                lambda b: tf.reduce_sum(tf.square(b - TARGET), axis=-1),
                Bernoulli(logits, event_ndims=1), seed=seed, num_samples=num_samples,
                chunk_size=chunk_size)
            total = tf.reduce_sum(surrogate)
        return tape.gradient(total, logits)

    return lambda: gradient(logits, seed).numpy()


def make(regime, num_samples, chunk_size, dimension):
    if regime == "jax-jit":
        return jax_gradient(num_samples, chunk_size, dimension)
    return tensorflow_gradient(num_samples, chunk_size, dimension, regime == "tensorflow-xla")


DEVICES_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from streaming_throughput import jax_gradient, interleaved_medians
chunks, dimension, repeats = (int(value) for value in sys.argv[2:5])
results = []
for chunk_size in (int(value) for value in sys.argv[5].split(",")):
    num_samples = chunk_size * chunks
    one, eight = interleaved_medians([jax_gradient(num_samples, chunk_size, dimension, None),
                                      jax_gradient(num_samples, chunk_size, dimension, 8)],
                                     repeats)
    results.append({"chunk_size": chunk_size, "num_samples": num_samples,
                    "one_device_seconds": one, "eight_devices_seconds": eight})
print("RESULT" + json.dumps(results))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=2**18)
    parser.add_argument("--chunk-size", type=int, default=2**14)
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--large-samples", type=int, default=10**7)
    parser.add_argument("--large-dimension", type=int, default=100)
    parser.add_argument("--large-chunk-size", type=int, default=2**16)
    parser.add_argument("--device-chunks", type=int, default=64,
                        help="chunks of the 1-against-8-devices measurement (8 per device)")
    parser.add_argument("--device-chunk-sizes", default="4096,16384",
                        help="comma-separated chunk sizes of that measurement")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--regimes", default="jax-jit,tensorflow-graph,tensorflow-xla")
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args(argv)
    draws = arguments.num_samples * arguments.dimension
    document = {"benchmark": "streaming_throughput", "streamed_against_one_shot": [],
                "large": [], "devices": None}

    for regime in arguments.regimes.split(","):
        one_shot, streamed = interleaved_medians(
            [make(regime, arguments.num_samples, None, arguments.dimension),
             make(regime, arguments.num_samples, arguments.chunk_size, arguments.dimension)],
            arguments.repeats)
        row = {"regime": regime, "num_samples": arguments.num_samples,
               "chunk_size": arguments.chunk_size, "dimension": arguments.dimension,
               "one_shot_seconds": one_shot, "streamed_seconds": streamed,
               "ratio": one_shot / streamed}
        document["streamed_against_one_shot"].append(row)
        print(f"{regime:17s} {draws:.2e} draws: one-shot {one_shot * 1e3:8.1f} ms, streamed "
              f"{streamed * 1e3:8.1f} ms, ratio {row['ratio']:.2f}", flush=True)

    large_draws = arguments.large_samples * arguments.large_dimension
    for regime in ("jax-jit", "tensorflow-graph"):
        if regime not in arguments.regimes:
            continue
        run = make(regime, arguments.large_samples, arguments.large_chunk_size,
                   arguments.large_dimension)
        run()
        seconds = timed(run)
        document["large"].append({
            "regime": regime, "num_samples": arguments.large_samples,
            "dimension": arguments.large_dimension, "chunk_size": arguments.large_chunk_size,
            "seconds": seconds, "draws_per_second": large_draws / seconds})
        print(f"{regime:17s} {large_draws:.1e} draws streamed in {seconds:.1f} s: "
              f"{large_draws / seconds:.3g} draws/s", flush=True)

    if "jax-jit" in arguments.regimes:
        environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
                           JAX_PLATFORMS="cpu")
        child = subprocess.run(
            [sys.executable, "-c", DEVICES_CHILD, os.path.dirname(os.path.abspath(__file__)),
             str(arguments.device_chunks), str(arguments.dimension), str(arguments.repeats),
             arguments.device_chunk_sizes],
            capture_output=True, text=True, env=environment, check=True)
        results = json.loads(next(line for line in child.stdout.splitlines()
                                  if line.startswith("RESULT"))[len("RESULT"):])
        for result in results:
            device_draws = result["num_samples"] * arguments.dimension
            result.update({
                "dimension": arguments.dimension,
                "one_device_draws_per_second": device_draws / result["one_device_seconds"],
                "eight_devices_draws_per_second": device_draws / result["eight_devices_seconds"],
                "eight_devices_draws_per_second_per_device":
                    device_draws / result["eight_devices_seconds"] / 8,
                "ratio": result["one_device_seconds"] / result["eight_devices_seconds"]})
            print(f"jax-jit 8 simulated devices, chunks of {result['chunk_size']}: "
                  f"{result['eight_devices_draws_per_second']:.3g} draws/s "
                  f"({result['eight_devices_draws_per_second_per_device']:.3g} per device) "
                  f"against {result['one_device_draws_per_second']:.3g} on one: ratio "
                  f"{result['ratio']:.2f}", flush=True)
        document["devices"] = results

    if arguments.json:
        document.update({
            "command": "python benchmarks/streaming_throughput.py",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": benchmark_environment.machine(),
            "versions": benchmark_environment.versions()})
        benchmark_environment.write_json(document, arguments.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
