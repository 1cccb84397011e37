"""Throughput of each estimator's gradient against a hand-written reference, in one run.

For every catalogued estimator that takes Bernoulli latents this times one compiled
gradient of ``sum_b surrogate_b`` w.r.t. logits of shape ``[batch, D]`` (``batch * D``
Bernoulli draws per call, f(b) = sum_d (b_d - 0.45)^2), on TensorFlow under XLA and on JAX
under ``jit``. Where a hand-written, fused implementation of the same formula exists (the
gradient written out directly, no surrogate, no autodiff), it is timed in the same process
and the table reports ``ratio = reference time / fxgx time`` (1.0: the abstraction is free).
REINFORCE is also compared with ``tfp.monte_carlo.expectation(...,
use_reparameterization=False)`` (graph mode and XLA).

    python benchmarks/estimator_throughput.py [--batch 4096] [--dimension 256] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.45


def best_time(function, repeats: int) -> float:
    function()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


# ------------------------------------------------------------------ TensorFlow references


def tensorflow_references(tf, tfp):
    def uniform(shape, seed):
        return tf.random.stateless_uniform(shape, seed, alg="threefry")

    def objective(b):
        return tf.reduce_sum(tf.square(b - TARGET), axis=-1)

    def reinforce(logits, seed):
        p = tf.sigmoid(logits)
        b = tf.cast(uniform(tf.shape(logits), seed) < p, logits.dtype)
        return objective(b)[:, None] * (b - p)

    def disarm(logits, seed):
        u = uniform(tf.shape(logits), seed)
        p = tf.sigmoid(logits)
        b = tf.cast(u < p, logits.dtype)
        antithetic = tf.cast(1.0 - u < p, logits.dtype)
        difference = 0.5 * (objective(b) - objective(antithetic))[:, None]
        sign = 1.0 - 2.0 * antithetic
        return (
            difference
            * sign
            * tf.cast(tf.not_equal(b, antithetic), logits.dtype)
            * tf.sigmoid(tf.abs(logits))
        )

    def arm(logits, seed):
        u = uniform(tf.shape(logits), seed)
        high = tf.cast(u > tf.sigmoid(-logits), logits.dtype)
        low = tf.cast(u < tf.sigmoid(logits), logits.dtype)
        return (objective(high) - objective(low))[:, None] * (u - 0.5)

    def tfp_expectation(logits, seed):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            distribution = tfp.distributions.Bernoulli(logits=logits, dtype=logits.dtype)
            samples = distribution.sample(seed=seed)
            value = tfp.monte_carlo.expectation(
                f=objective,
                samples=samples[None],
                log_prob=lambda z: tf.reduce_sum(distribution.log_prob(z), -1),
                use_reparameterization=False,
            )
            total = tf.reduce_sum(value)
        return tape.gradient(total, logits)

    return {"reinforce": reinforce, "disarm": disarm, "arm": arm}, tfp_expectation, objective


def jax_references(jax, jnp):
    def objective(b):
        return jnp.sum(jnp.square(b - TARGET), axis=-1)

    def reinforce(logits, key):
        p = jax.nn.sigmoid(logits)
        b = (jax.random.uniform(key, logits.shape, logits.dtype) < p).astype(logits.dtype)
        return objective(b)[:, None] * (b - p)

    def disarm(logits, key):
        u = jax.random.uniform(key, logits.shape, logits.dtype)
        p = jax.nn.sigmoid(logits)
        b = (u < p).astype(logits.dtype)
        antithetic = (1.0 - u < p).astype(logits.dtype)
        difference = 0.5 * (objective(b) - objective(antithetic))[:, None]
        return (
            difference
            * (1.0 - 2.0 * antithetic)
            * (b != antithetic)
            * jax.nn.sigmoid(jnp.abs(logits))
        )

    def arm(logits, key):
        u = jax.random.uniform(key, logits.shape, logits.dtype)
        high = (u > jax.nn.sigmoid(-logits)).astype(logits.dtype)
        low = (u < jax.nn.sigmoid(logits)).astype(logits.dtype)
        return (objective(high) - objective(low))[:, None] * (u - 0.5)

    return {"reinforce": reinforce, "disarm": disarm, "arm": arm}, objective


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args(argv)

    from fxgx import catalogue
    from fxgx.distributions import Bernoulli
    from fxgx.estimators import reinforce

    # (label, estimator, num_samples, name of the hand-written reference or None)
    entries = [
        (card.name, card.make(), card.num_samples, card.name if card.num_samples == 1 else None)
        for card in catalogue.load_cards()
        if card.supports("bernoulli") and card.test.get("target", "expectation") == "expectation"
    ]
    entries.insert(
        1 + [entry[0] for entry in entries].index("reinforce"),
        ("reinforce(higher_order=False)", reinforce(higher_order=False), 1, "reinforce"),
    )
    draws = arguments.batch * arguments.dimension
    rows = []

    if "tensorflow" in arguments.backends:
        import tensorflow as tf
        import tensorflow_probability as tfp

        references, tfp_expectation, objective = tensorflow_references(tf, tfp)
        logits = tf.random.stateless_normal([arguments.batch, arguments.dimension], [1, 2])
        seed = tf.constant([3, 4], tf.int64)
        for label, estimator, num_samples, reference_name in entries:

            def fxgx_gradient(logits, seed, estimator=estimator, samples=num_samples):
                with tf.GradientTape() as tape:
                    tape.watch(logits)
                    surrogate = estimator(
                        objective, Bernoulli(logits, event_ndims=1), seed=seed, num_samples=samples
                    )
                    total = tf.reduce_sum(surrogate)
                return tape.gradient(total, logits)

            compiled = tf.function(fxgx_gradient, jit_compile=True)
            fxgx_seconds = best_time(
                lambda compiled=compiled: compiled(logits, seed).numpy(), arguments.repeats
            )
            row = {
                "backend": "tensorflow-xla",
                "estimator": label,
                "num_samples": num_samples,
                "fxgx_ms_per_million": 1e9 * fxgx_seconds / draws,
            }
            if reference_name in references:
                reference = tf.function(references[reference_name], jit_compile=True)
                reference_seconds = best_time(
                    lambda reference=reference: reference(logits, seed).numpy(), arguments.repeats
                )
                row["reference_ms_per_million"] = 1e9 * reference_seconds / draws
                row["ratio"] = reference_seconds / fxgx_seconds
            rows.append(row)
        for label, jit in (("tfp-graph", False), ("tfp-xla", True)):
            compiled = tf.function(tfp_expectation, jit_compile=jit)
            seconds = best_time(
                lambda compiled=compiled: compiled(logits, tf.constant([3, 4], tf.int32)).numpy(),
                max(2, arguments.repeats // 3),
            )
            fxgx_row = next(
                r
                for r in rows
                if r["estimator"] == "reinforce" and r["backend"] == "tensorflow-xla"
            )
            rows.append(
                {
                    "backend": label,
                    "estimator": "tfp.monte_carlo.expectation (REINFORCE)",
                    "num_samples": 1,
                    "fxgx_ms_per_million": fxgx_row["fxgx_ms_per_million"],
                    "reference_ms_per_million": 1e9 * seconds / draws,
                    "ratio": (1e9 * seconds / draws) / fxgx_row["fxgx_ms_per_million"],
                }
            )

    if "jax" in arguments.backends:
        import jax
        import jax.numpy as jnp

        references, objective = jax_references(jax, jnp)
        logits = jax.random.normal(jax.random.key(1), (arguments.batch, arguments.dimension))
        key = jax.random.key(3)
        for label, estimator, num_samples, reference_name in entries:

            def total(logits, key, estimator=estimator, samples=num_samples):
                return jnp.sum(
                    estimator(
                        objective, Bernoulli(logits, event_ndims=1), seed=key, num_samples=samples
                    )
                )

            compiled = jax.jit(jax.grad(total))
            fxgx_seconds = best_time(
                lambda compiled=compiled: compiled(logits, key).block_until_ready(),
                arguments.repeats,
            )
            row = {
                "backend": "jax-jit",
                "estimator": label,
                "num_samples": num_samples,
                "fxgx_ms_per_million": 1e9 * fxgx_seconds / draws,
            }
            if reference_name in references:
                reference = jax.jit(references[reference_name])
                reference_seconds = best_time(
                    lambda reference=reference: reference(logits, key).block_until_ready(),
                    arguments.repeats,
                )
                row["reference_ms_per_million"] = 1e9 * reference_seconds / draws
                row["ratio"] = reference_seconds / fxgx_seconds
            rows.append(row)

    print(
        f"{draws} Bernoulli draws per call (batch {arguments.batch} x D {arguments.dimension}); "
        "ms per 10^6 draws, best of repeats"
    )
    print(f"{'backend':<15} {'estimator':<42} {'S':>2} {'fxgx ms':>9} {'ref ms':>9} {'ratio':>6}")
    for row in rows:
        reference = row.get("reference_ms_per_million")
        ratio = row.get("ratio")
        print(
            f"{row['backend']:<15} {row['estimator']:<42} {row['num_samples']:>2} "
            f"{row['fxgx_ms_per_million']:>9.3f} "
            f"{'' if reference is None else f'{reference:.3f}':>9} "
            f"{'' if ratio is None else f'{ratio:.2f}':>6}"
        )
    print(
        "ratio = reference time / fxgx time (>= 0.9 is the target; for the TFP rows, "
        "TFP time / fxgx time)"
    )
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump({"draws_per_call": draws, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
