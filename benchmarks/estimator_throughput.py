"""Throughput of each estimator's gradient against a hand-written reference, in one run.

For every catalogued estimator that takes Bernoulli latents this times one compiled
gradient of ``sum_b surrogate_b`` w.r.t. logits of shape ``[batch, D]`` (``S * batch * D``
Bernoulli draws per call, ``S`` the card's own ``num_samples``; f(b) = sum_d (b_d - 0.45)^2),
on TensorFlow under XLA and on JAX under ``jit``. Where a hand-written, fused implementation
of the same formula exists (the gradient written out directly, no surrogate, no autodiff:
REINFORCE, REINFORCE-LOO, ARM, DisARM, straight-through), it is timed in the same process,
interleaved with fxgx's call (A/B, B/A, ... so that a change of load hits both), and the
table reports ``ratio = median reference time / median fxgx time`` (1.0: the abstraction is
free). REINFORCE is also compared with ``tfp.monte_carlo.expectation(...,
use_reparameterization=False)`` (graph mode and XLA).

The results go to ``benchmarks/results/estimator_throughput.json`` (the machine, the
versions, the date, the arguments, the load average and the rows), from which
``scripts/render_tables.py`` renders the tables of README.md and
docs/estimators/variance.md.

    python benchmarks/estimator_throughput.py [--batch 4096] [--dimension 256]
        [--repeats 15] [--backends tensorflow,jax] [--estimators reinforce,arm]
        [--json FILE | --no-json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

import benchmark_environment  # benchmarks/ is on sys.path when a script runs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.45
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "estimator_throughput.json"


def paired_median_seconds(first, second, repeats: int) -> tuple[float, float, float, float]:
    """Median wall times of two calls, measured alternately (A B, B A, A B, ...) after two
    warm-up calls each (compilation), so that load changes during the run hit both; and the
    median process CPU times of the same calls (all threads of this process: less sensitive
    to other processes on a shared machine). Returns ``(wall_first, wall_second, cpu_first,
    cpu_second)``."""
    for function in (first, second, first, second):
        function()
    walls = ([], [])
    cpus = ([], [])
    for repeat in range(repeats):
        for index in ((0, 1) if repeat % 2 == 0 else (1, 0)):
            wall, cpu = benchmark_environment.timed_with_cpu((first, second)[index])
            walls[index].append(wall)
            cpus[index].append(cpu)
    median = statistics.median
    return median(walls[0]), median(walls[1]), median(cpus[0]), median(cpus[1])


# ------------------------------------------- the workload and fxgx's compiled gradient


def tensorflow_objective(tf):
    """f(b) = sum_d (b_d - TARGET)^2, on TensorFlow."""

    def objective(b):
        return tf.reduce_sum(tf.square(b - TARGET), axis=-1)

    return objective


def jax_objective(jnp):
    """f(b) = sum_d (b_d - TARGET)^2, on JAX."""

    def objective(b):
        return jnp.sum(jnp.square(b - TARGET), axis=-1)

    return objective


def tensorflow_inputs(tf, batch: int, dimension: int):
    """``(logits [batch, dimension], seed)``, fixed."""
    return tf.random.stateless_normal([batch, dimension], [1, 2]), tf.constant([3, 4], tf.int64)


def jax_inputs(jax, batch: int, dimension: int):
    """``(logits [batch, dimension], key)``, fixed."""
    return jax.random.normal(jax.random.key(1), (batch, dimension)), jax.random.key(3)


def tensorflow_fxgx_call(tf, objective, estimator, num_samples, logits, seed):
    """A call with no arguments of fxgx's gradient of ``sum_b surrogate_b`` w.r.t. ``logits``,
    compiled by XLA (``tf.function(jit_compile=True)``; the first call compiles), the result
    fetched to NumPy; ``call.program()`` is XLA's optimized HLO of it."""
    from fxgx.distributions import Bernoulli

    def fxgx_gradient(logits, seed):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            surrogate = estimator(
                objective, Bernoulli(logits, event_ndims=1), seed=seed, num_samples=num_samples
            )
            total = tf.reduce_sum(surrogate)
        return tape.gradient(total, logits)

    compiled = tf.function(fxgx_gradient, jit_compile=True)

    def call():
        return compiled(logits, seed).numpy()

    call.program = lambda: compiled.experimental_get_compiler_ir(logits, seed)(
        stage="optimized_hlo")
    return call


def jax_fxgx_call(jax, jnp, objective, estimator, num_samples, logits, key):
    """A call with no arguments of fxgx's gradient of ``sum_b surrogate_b`` w.r.t. ``logits``
    under ``jax.jit(jax.grad(...))`` (the first call compiles), waited for;
    ``call.program()`` is XLA's optimized HLO of it."""
    from fxgx.distributions import Bernoulli

    def total(logits, key):
        return jnp.sum(
            estimator(objective, Bernoulli(logits, event_ndims=1), seed=key,
                      num_samples=num_samples)
        )

    compiled = jax.jit(jax.grad(total))

    def call():
        return compiled(logits, key).block_until_ready()

    call.program = lambda: compiled.lower(logits, key).compile().as_text()
    return call


def fxgx_gradient_call(backend: str, label: str, batch: int, dimension: int):
    """One row's timed call, on its own: ``(call, num_samples)`` for the estimator labelled
    ``label`` (see ``estimator_entries``) on ``backend`` (``"tensorflow"``: XLA, ``"jax"``:
    ``jit``), with logits of shape ``[batch, dimension]``. ``benchmarks/ab_throughput.py``
    builds its rows with it, in each source tree's process."""
    ((_, estimator, num_samples, _),) = estimator_entries([label])
    if backend == "tensorflow":
        import tensorflow as tf

        logits, seed = tensorflow_inputs(tf, batch, dimension)
        call = tensorflow_fxgx_call(tf, tensorflow_objective(tf), estimator, num_samples,
                                    logits, seed)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        logits, key = jax_inputs(jax, batch, dimension)
        call = jax_fxgx_call(jax, jnp, jax_objective(jnp), estimator, num_samples, logits, key)
    else:
        raise ValueError(f"backend must be 'tensorflow' or 'jax', got {backend!r}")
    return call, num_samples


# ---------------------------------------------------------- hand-written references


def tensorflow_references(tf, tfp, num_samples_of):
    """``{name: reference(logits, seed)}``: each gradient written out directly."""

    def uniform(shape, seed):
        return tf.random.stateless_uniform(shape, seed, alg="threefry")

    objective = tensorflow_objective(tf)

    def reinforce(logits, seed):
        p = tf.sigmoid(logits)
        b = tf.cast(uniform(tf.shape(logits), seed) < p, logits.dtype)
        return objective(b)[:, None] * (b - p)

    def reinforce_leave_one_out(logits, seed):
        # 1/S sum_s (f(z_s) - 1/(S-1) sum_{j != s} f(z_j)) (z_s - p)
        count = num_samples_of("reinforce_leave_one_out")
        p = tf.sigmoid(logits)
        b = tf.cast(uniform(tf.concat([[count], tf.shape(logits)], 0), seed) < p, logits.dtype)
        values = objective(b)
        baseline = (tf.reduce_sum(values, 0, keepdims=True) - values) / (count - 1)
        return tf.reduce_sum(((values - baseline) / count)[..., None] * (b - p), 0)

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

    def straight_through(logits, seed):
        # f'(b) * dsigmoid/dlogits at a hard sample b ~ Bernoulli(sigmoid(logits))
        p = tf.sigmoid(logits)
        b = tf.cast(uniform(tf.shape(logits), seed) < p, logits.dtype)
        return 2.0 * (b - TARGET) * p * (1.0 - p)

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

    references = {
        "reinforce": reinforce,
        "reinforce_leave_one_out": reinforce_leave_one_out,
        "disarm": disarm,
        "arm": arm,
        "straight_through": straight_through,
    }
    return references, tfp_expectation, objective


def jax_references(jax, jnp, num_samples_of):
    """``{name: reference(logits, key)}``: each gradient written out directly."""
    objective = jax_objective(jnp)

    def reinforce(logits, key):
        p = jax.nn.sigmoid(logits)
        b = (jax.random.uniform(key, logits.shape, logits.dtype) < p).astype(logits.dtype)
        return objective(b)[:, None] * (b - p)

    def reinforce_leave_one_out(logits, key):
        count = num_samples_of("reinforce_leave_one_out")
        p = jax.nn.sigmoid(logits)
        shape = (count, *logits.shape)
        b = (jax.random.uniform(key, shape, logits.dtype) < p).astype(logits.dtype)
        values = objective(b)
        baseline = (jnp.sum(values, 0, keepdims=True) - values) / (count - 1)
        return jnp.sum(((values - baseline) / count)[..., None] * (b - p), 0)

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

    def straight_through(logits, key):
        p = jax.nn.sigmoid(logits)
        b = (jax.random.uniform(key, logits.shape, logits.dtype) < p).astype(logits.dtype)
        return 2.0 * (b - TARGET) * p * (1.0 - p)

    references = {
        "reinforce": reinforce,
        "reinforce_leave_one_out": reinforce_leave_one_out,
        "disarm": disarm,
        "arm": arm,
        "straight_through": straight_through,
    }
    return references, objective


# ------------------------------------------------------------------------- the run


def versions() -> dict:
    """The versions of Python and of the packages the benchmark runs."""
    return benchmark_environment.versions(
        ('fxgx', 'tensorflow', 'tensorflow-probability', 'jax', 'jaxlib'))


def estimator_entries(selected):
    """``[(label, estimator, num_samples, reference name or None)]`` for the Bernoulli cards
    (and ``reinforce(higher_order=False)``), restricted to the ``selected`` labels."""
    from fxgx import catalogue
    from fxgx.estimators import reinforce

    entries = [
        (card.name, card.make(), card.num_samples, card.name)
        for card in catalogue.load_cards()
        if card.supports("bernoulli")
        # The [test] table, not Card.target: ab_throughput.py runs this code on older trees too.
        and card.test.get("target", "expectation") == "expectation"
    ]
    entries.insert(
        1 + [entry[0] for entry in entries].index("reinforce"),
        ("reinforce(higher_order=False)", reinforce(higher_order=False), 1, "reinforce"),
    )
    if selected is None:
        return entries
    known = {entry[0] for entry in entries}
    unknown = sorted(set(selected) - known)
    if unknown:
        raise SystemExit(
            f"--estimators: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [entry for entry in entries if entry[0] in selected]


def unpaired_median_seconds(function, repeats: int) -> tuple[float, None, float, None]:
    """Median wall and CPU times of one call with no reference (two warm-up calls first),
    in the shape of ``paired_median_seconds``'s answer."""
    function()
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = benchmark_environment.timed_with_cpu(function)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), None, statistics.median(cpus), None


def make_row(backend, label, num_samples, draws, timings, with_reference=True):
    """One row of the table from ``paired_median_seconds``'s ``(fxgx wall, reference wall,
    fxgx CPU, reference CPU)``."""
    fxgx_seconds, reference_seconds, fxgx_cpu, reference_cpu = timings
    row = {
        "backend": backend,
        "estimator": label,
        "num_samples": num_samples,
        "fxgx_ms_per_million": 1e9 * fxgx_seconds / (draws * num_samples),
    }
    if with_reference:
        row["reference_ms_per_million"] = 1e9 * reference_seconds / (draws * num_samples)
        row["ratio"] = reference_seconds / fxgx_seconds
        row["cpu_ratio"] = reference_cpu / fxgx_cpu
    return row


def run_tensorflow(entries, arguments, draws, with_tfp):
    import tensorflow as tf
    import tensorflow_probability as tfp

    samples_of = {label: samples for label, _, samples, _ in entries}
    references, tfp_expectation, objective = tensorflow_references(
        tf, tfp, lambda name: samples_of.get(name, 2)
    )
    logits, seed = tensorflow_inputs(tf, arguments.batch, arguments.dimension)
    rows, reinforce_call = [], None
    for label, estimator, num_samples, reference_name in entries:
        fxgx_call = tensorflow_fxgx_call(tf, objective, estimator, num_samples, logits, seed)
        if label == "reinforce":
            reinforce_call = fxgx_call
        if reference_name in references:
            reference = tf.function(references[reference_name], jit_compile=True)
            timings = paired_median_seconds(
                fxgx_call, lambda reference=reference: reference(logits, seed).numpy(),
                arguments.repeats,
            )
        else:
            timings = unpaired_median_seconds(fxgx_call, max(3, arguments.repeats // 5))
        rows.append(make_row("tensorflow-xla", label, num_samples, draws, timings,
                             with_reference=reference_name in references))
        print_row(rows[-1])
    if with_tfp and reinforce_call is not None:
        for label, jit in (("tfp-graph", False), ("tfp-xla", True)):
            compiled = tf.function(tfp_expectation, jit_compile=jit)
            timings = paired_median_seconds(
                reinforce_call,
                lambda compiled=compiled: compiled(logits, tf.constant([3, 4], tf.int32)).numpy(),
                max(3, arguments.repeats // 3),
            )
            rows.append(make_row(label, "tfp.monte_carlo.expectation (REINFORCE)", 1, draws,
                                 timings))
            print_row(rows[-1])
    return rows


def run_jax(entries, arguments, draws):
    import jax
    import jax.numpy as jnp

    samples_of = {label: samples for label, _, samples, _ in entries}
    references, objective = jax_references(jax, jnp, lambda name: samples_of.get(name, 2))
    logits, key = jax_inputs(jax, arguments.batch, arguments.dimension)
    rows = []
    for label, estimator, num_samples, reference_name in entries:
        fxgx_call = jax_fxgx_call(jax, jnp, objective, estimator, num_samples, logits, key)
        if reference_name in references:
            reference = jax.jit(references[reference_name])
            timings = paired_median_seconds(
                fxgx_call, lambda reference=reference: reference(logits, key).block_until_ready(),
                arguments.repeats,
            )
        else:
            timings = unpaired_median_seconds(fxgx_call, max(3, arguments.repeats // 5))
        rows.append(make_row("jax-jit", label, num_samples, draws, timings,
                             with_reference=reference_name in references))
        print_row(rows[-1])
    return rows


def print_row(row) -> None:
    reference = row.get("reference_ms_per_million")
    ratio = row.get("ratio")
    cpu_ratio = row.get("cpu_ratio")
    print(
        f"{row['backend']:<15} {row['estimator']:<42} {row['num_samples']:>2} "
        f"{row['fxgx_ms_per_million']:>9.3f} "
        f"{'' if reference is None else f'{reference:.3f}':>9} "
        f"{'' if ratio is None else f'{ratio:.2f}':>6} "
        f"{'' if cpu_ratio is None else f'{cpu_ratio:.2f}':>6}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed calls of each side (interleaved); the median is kept")
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--estimators", default=None,
                        help="comma-separated labels (default: every Bernoulli card)")
    parser.add_argument("--json", default=str(DEFAULT_JSON),
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--no-json", action="store_true", help="write no JSON")
    arguments = parser.parse_args(argv)
    selected = None if arguments.estimators is None else [
        name.strip() for name in arguments.estimators.split(",") if name.strip()
    ]
    entries = estimator_entries(selected)
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    draws = arguments.batch * arguments.dimension
    load_before = os.getloadavg()
    started = datetime.now(UTC)

    print(
        f"{draws} Bernoulli draws per sample and call (batch {arguments.batch} x D "
        f"{arguments.dimension}); ms per 10^6 draws, median of {arguments.repeats} interleaved "
        f"calls; load average {', '.join(f'{value:.2f}' for value in load_before)}"
    )
    print(f"{'backend':<15} {'estimator':<42} {'S':>2} {'fxgx ms':>9} {'ref ms':>9} "
          f"{'ratio':>6} {'cpu':>6}")
    rows = []
    if "tensorflow" in backends:
        rows += run_tensorflow(entries, arguments, draws,
                               with_tfp=selected is None or "reinforce" in selected)
    if "jax" in backends:
        rows += run_jax(entries, arguments, draws)
    load_after = os.getloadavg()
    print(
        "ratio = reference time / fxgx time (>= 0.9 is the target; for the TFP rows, "
        "TFP time / fxgx time); cpu: the same with process CPU times; load average at the end "
        f"{', '.join(f'{value:.2f}' for value in load_after)}"
    )
    if not arguments.no_json:
        document = {
            "benchmark": "estimator_throughput",
            "command": "python benchmarks/estimator_throughput.py " + " ".join(
                f"--{name} {getattr(arguments, name)}"
                for name in ("batch", "dimension", "repeats", "backends")
            ) + ("" if arguments.estimators is None else f" --estimators {arguments.estimators}"),
            "date": started.isoformat(timespec="seconds"),
            "arguments": {
                "batch": arguments.batch,
                "dimension": arguments.dimension,
                "repeats": arguments.repeats,
                "backends": backends,
                "estimators": selected,
            },
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpu_count": os.cpu_count(),
                "load_average_start": list(load_before),
                "load_average_end": list(load_after),
            },
            "versions": versions(),
            "draws_per_sample": draws,
            "rows": rows,
        }
        benchmark_environment.write_json(document, arguments.json)
        print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
