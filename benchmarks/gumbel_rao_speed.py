"""Cost of Gumbel-Rao against straight-through Gumbel at the same number of noise draws.

Gumbel-Rao with ``M`` conditional draws per hard sample (``num_samples=1``) draws ``M``
logistic / Gumbel noise values per latent: the perturbation that picks the hard sample,
which is itself a draw given that sample, and ``M - 1`` conditional draws. The comparison is
``gumbel_softmax_hard`` with ``num_samples=M``: the same ``M`` noise draws per latent (and
``M`` evaluations of ``f``, where Gumbel-Rao makes one), so

    ratio = time(gumbel_rao, S = 1, M) / time(gumbel_softmax_hard, S = M).

``gumbel_softmax_hard`` with ``S = 1`` is timed too (the cost of one hard sample). Each case
is one compiled gradient of ``sum_b surrogate_b`` w.r.t. the logits, f(b) = sum (b - 0.45)^2:
Bernoulli logits ``[batch, D]`` and one-hot categorical logits ``[batch, D, K]``, on
TensorFlow under XLA and on JAX under ``jit``. The three are timed in turn within each repeat
(so that a load change on a shared machine hits all three) and the medians are reported, with
the median of the per-repeat ratios.

    python benchmarks/gumbel_rao_speed.py [--batch 1024] [--dimension 256] [--classes 10]
        [--conditional-samples 10] [--repeats 15] [--json benchmarks/results/gumbel_rao_speed.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from datetime import UTC, datetime

import benchmark_environment  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.45


def _cases(arguments):
    """(kind, logits shape) pairs: Bernoulli [batch, D], categorical [batch, D / K, K]."""
    categorical_dimension = max(1, arguments.dimension // arguments.classes)
    return [("bernoulli", (arguments.batch, arguments.dimension)),
            ("categorical", (arguments.batch, categorical_dimension, arguments.classes))]


def _estimators(conditional_samples):
    from fxgx.estimators import gumbel_rao, gumbel_softmax_hard

    return [("gumbel_rao", gumbel_rao(num_conditional_samples=conditional_samples), 1),
            ("gumbel_softmax_hard", gumbel_softmax_hard(), conditional_samples),
            ("gumbel_softmax_hard", gumbel_softmax_hard(), 1)]


def _tensorflow_gradients(kind, shape, conditional_samples):
    import tensorflow as tf

    from fxgx.distributions import Bernoulli, OneHotCategorical

    logits = tf.random.stateless_normal(shape, [1, 2])
    seed = tf.constant([3, 4], tf.int64)
    axes = -1 if kind == "bernoulli" else (-2, -1)

    def objective(samples):
        return tf.reduce_sum(tf.square(samples - TARGET), axis=axes)

    calls = []
    for name, estimator, num_samples in _estimators(conditional_samples):

        @tf.function(jit_compile=True)
        def gradient(logits, seed, estimator=estimator, num_samples=num_samples):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                distribution = (Bernoulli(logits, event_ndims=1) if kind == "bernoulli"
                                else OneHotCategorical(logits, event_ndims=1))
                total = tf.reduce_sum(estimator(objective, distribution, seed=seed,
                                                num_samples=num_samples))
            return tape.gradient(total, logits)

        calls.append((name, num_samples,
                      lambda gradient=gradient: gradient(logits, seed).numpy()))
    return calls


def _jax_gradients(kind, shape, conditional_samples):
    import jax
    import jax.numpy as jnp

    from fxgx.distributions import Bernoulli, OneHotCategorical

    logits = jax.random.normal(jax.random.key(1), shape)
    key = jax.random.key(3)
    axes = -1 if kind == "bernoulli" else (-2, -1)

    def objective(samples):
        return jnp.sum(jnp.square(samples - TARGET), axis=axes)

    calls = []
    for name, estimator, num_samples in _estimators(conditional_samples):

        def total(logits, key, estimator=estimator, num_samples=num_samples):
            distribution = (Bernoulli(logits, event_ndims=1) if kind == "bernoulli"
                            else OneHotCategorical(logits, event_ndims=1))
            return jnp.sum(estimator(objective, distribution, seed=key,
                                     num_samples=num_samples))

        gradient = jax.jit(jax.grad(total))
        calls.append((name, num_samples,
                      lambda gradient=gradient: gradient(logits, key).block_until_ready()))
    return calls


def measure(backend, kind, shape, conditional_samples, repeats):
    """Rows for one backend and latent kind: the three timings and their ratios."""
    make = _tensorflow_gradients if backend == "tensorflow-xla" else _jax_gradients
    calls = make(kind, shape, conditional_samples)
    for _, _, call in calls:
        call()  # compile and warm up
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for index, (_, _, call) in enumerate(calls):
            times[index].append(benchmark_environment.timed(call))
    latents = 1
    for size in shape:
        latents *= size
    rows = []
    for (name, num_samples, _), seconds in zip(calls, times, strict=True):
        milliseconds = 1e3 * statistics.median(seconds)
        rows.append({
            "backend": backend, "kind": kind, "logits_shape": list(shape),
            "estimator": name, "num_samples": num_samples,
            "num_conditional_samples": conditional_samples if name == "gumbel_rao" else None,
            "noise_draws_per_latent": conditional_samples if name == "gumbel_rao" else num_samples,
            "milliseconds": milliseconds,
            "milliseconds_per_million_latents": 1e6 * milliseconds / latents,
        })
    same_draws = statistics.median(a / b for a, b in zip(times[0], times[1], strict=True))
    one_sample = statistics.median(a / b for a, b in zip(times[0], times[2], strict=True))
    return rows, {"backend": backend, "kind": kind, "num_conditional_samples": conditional_samples,
                  "ratio_to_hard_same_draws": same_draws, "ratio_to_hard_one_sample": one_sample}


def versions() -> dict:
    """The versions of Python and of the packages the benchmark runs."""
    return benchmark_environment.versions(('fxgx', 'jax', 'jaxlib', 'tensorflow'))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dimension", type=int, default=256,
                        help="Bernoulli latents per batch member (categorical: D / K variables)")
    parser.add_argument("--classes", type=int, default=10, help="K of the categorical case")
    parser.add_argument("--conditional-samples", type=int, default=10, help="M")
    parser.add_argument("--repeats", type=int, default=15, help="timings per case (median)")
    parser.add_argument("--backends", default="tensorflow-xla,jax-jit", help="comma-separated")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    arguments = parser.parse_args(argv)
    rows, ratios = [], []
    for backend in arguments.backends.split(","):
        for kind, shape in _cases(arguments):
            case_rows, case_ratio = measure(backend, kind, shape, arguments.conditional_samples,
                                            arguments.repeats)
            rows += case_rows
            ratios.append(case_ratio)
            for row in case_rows:
                print(f"{backend:15s} {kind:12s} {row['estimator']:20s} S={row['num_samples']:<3d}"
                      f" draws/latent={row['noise_draws_per_latent']:<3d} "
                      f"{row['milliseconds']:9.2f} ms  "
                      f"{row['milliseconds_per_million_latents']:9.2f} ms per 10^6 latents",
                      flush=True)
            print(f"{backend:15s} {kind:12s} ratio gumbel_rao(M={arguments.conditional_samples}) /"
                  f" gumbel_softmax_hard(S={arguments.conditional_samples}) = "
                  f"{case_ratio['ratio_to_hard_same_draws']:.2f}; / gumbel_softmax_hard(S=1) = "
                  f"{case_ratio['ratio_to_hard_one_sample']:.2f}", flush=True)
    print("Same noise draws per latent; medians over repeats on a possibly shared machine.")
    if arguments.json:
        document = {
            "benchmark": "gumbel_rao_speed",
            "comparison": "gumbel_rao (num_samples=1, M conditional draws) against "
                          "gumbel_softmax_hard (num_samples=M): M noise draws per latent each",
            "command": "python benchmarks/gumbel_rao_speed.py " + " ".join(
                f"--{name.replace('_', '-')} {getattr(arguments, name)}"
                for name in ("batch", "dimension", "classes", "conditional_samples",
                             "repeats")),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(),
                        "load_average": list(os.getloadavg())},
            "versions": versions(),
            "rows": rows,
            "ratios": ratios,
        }
        benchmark_environment.write_json(document, arguments.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
