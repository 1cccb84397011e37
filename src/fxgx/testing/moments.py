"""Streaming moments of gradient estimates, drawn in compiled, vectorised chunks.

Each chunk computes ``chunk_size`` independent gradient estimates at once: the problem's
parameters are broadcast to ``[chunk_size] + shape``, the estimator's surrogates (one per
replicate) are summed, and one backward pass gives every replicate's gradient (the
replicates share no randomness, so the gradient w.r.t. replicate ``b``'s copy of the
parameters is replicate ``b``'s estimate). The chunk is compiled (TF:
``tf.function(jit_compile=True)``; JAX: ``jax.jit``) and runs on whatever device the
framework picks, a GPU when there is one.

Inside a chunk the mean is computed twice (the second pass corrects the first, a
compensated mean) and the central sums ``M2, M3, M4`` are taken about it. Chunks are then
merged on the host in float64 with the pairwise update of Chan et al. (1979), extended to
third and fourth moments by Pebay (2008). Peak memory depends on ``chunk_size`` only.

Exactly ``num_estimates`` estimates are counted: the last chunk is computed at full size
(one compiled shape) and only its first ``num_estimates mod chunk_size`` rows are kept.
The random numbers of chunk ``i`` come from the ``i``-th split of the seed drawn for a
batch of ``chunk_size``: the same ``(seed, chunk_size)`` gives the same moments, a different
``chunk_size`` gives different (equally valid) draws.

Many devices (``devices=``): the chunks are what is sharded. With ``N`` devices the chunks
run in rounds of ``N``, chunk ``r N + d`` on device ``d`` in round ``r``, all ``N`` at once
(JAX: ``jax.shard_map`` over a one-axis mesh; TensorFlow: one graph placing a compiled chunk
on each device with ``tf.device``). The problem's parameters are replicated: each device
gets a copy and broadcasts it to its own ``[chunk_size] + shape`` batch. The seed rule does
not change: chunk ``i`` uses the ``i``-th split of the seed whichever device runs it, so the
moments equal the one-device moments for the same ``(seed, chunk_size)``, up to the rounding
of float64 merges. A last round with fewer chunks left than devices fills the idle devices
with a copy of chunk 0, whose rows are dropped on the host (as the rows past
``num_estimates`` of a partial chunk are). The per-chunk statistics are merged on the host
in chunk order, as on one device.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from fxgx.backends import framework_by_name
from fxgx.core.arrays import as_dtype, shape_of
from fxgx.core.seeds import canonical_seed


@dataclasses.dataclass
class Moments:
    """Mean, variance and higher central moments of a stream of gradient estimates.

    Attributes:
        count: the number of estimates ``n``.
        mean: the mean estimate per coordinate.
        sum_squares: ``M2 = sum (g - mean)^2`` per coordinate.
        sum_cubes: ``M3 = sum (g - mean)^3``.
        sum_fourth_powers: ``M4 = sum (g - mean)^4``.
        seed: the seed the estimates were drawn with.
        dtype: the float dtype of the estimator's arithmetic.
        backend: ``"tensorflow"`` or ``"jax"``.
        num_samples: the estimator's ``num_samples`` per estimate.
        seconds: the time spent drawing the estimates, compilation excluded.
        compile_seconds: the time spent compiling.
        num_devices: the number of devices the chunks ran on at once.
    """

    count: int
    mean: np.ndarray
    sum_squares: np.ndarray  # M2 = sum (g - mean)^2
    sum_cubes: np.ndarray  # M3
    sum_fourth_powers: np.ndarray  # M4
    seed: object = None
    dtype: str = "float32"
    backend: str = "tensorflow"
    num_samples: int = 1
    seconds: float = 0.0
    compile_seconds: float = 0.0
    num_devices: int = 1

    @property
    def variance(self) -> np.ndarray:
        """Unbiased per-coordinate variance of one estimate."""
        return self.sum_squares / max(self.count - 1, 1)

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of the mean."""
        return np.sqrt(self.variance / self.count)

    @property
    def fourth_central_moment(self) -> np.ndarray:
        """``M4 / n``, the fourth central moment of one estimate."""
        return self.sum_fourth_powers / self.count

    @property
    def variance_standard_error(self) -> np.ndarray:
        """Standard error of ``variance``: ``sqrt((mu4 - sigma^4 (n-3)/(n-1)) / n)``."""
        n = self.count
        sigma2 = self.variance
        spread = self.fourth_central_moment - sigma2**2 * (n - 3) / max(n - 1, 1)
        return np.sqrt(np.maximum(spread, 0.0) / n)

    @property
    def seconds_per_estimate(self) -> float:
        """``seconds / count``."""
        return self.seconds / max(self.count, 1)

    @property
    def estimates_per_second_per_device(self) -> float:
        """``count / (seconds * num_devices)``: the throughput of one device."""
        return self.count / max(self.seconds * self.num_devices, 1e-300)


def merge(first: Moments, second: Moments) -> Moments:
    """Pairwise merge of two moment summaries (Chan et al. 1979; Pebay 2008).

    Args:
        first: the moments of one set of estimates.
        second: the moments of another, independent set.

    Returns:
        The moments of both sets together.
    """
    if first.count == 0:
        return second
    if second.count == 0:
        return first
    n_a, n_b = float(first.count), float(second.count)
    n = n_a + n_b
    delta = second.mean - first.mean
    mean = first.mean + delta * n_b / n
    m2 = first.sum_squares + second.sum_squares + delta**2 * n_a * n_b / n
    m3 = (
        first.sum_cubes
        + second.sum_cubes
        + delta**3 * n_a * n_b * (n_a - n_b) / n**2
        + 3.0 * delta * (n_a * second.sum_squares - n_b * first.sum_squares) / n
    )
    m4 = (
        first.sum_fourth_powers
        + second.sum_fourth_powers
        + delta**4 * n_a * n_b * (n_a**2 - n_a * n_b + n_b**2) / n**3
        + 6.0 * delta**2 * (n_a**2 * second.sum_squares + n_b**2 * first.sum_squares) / n**2
        + 4.0 * delta * (n_a * second.sum_cubes - n_b * first.sum_cubes) / n
    )
    return dataclasses.replace(
        first, count=int(n), mean=mean, sum_squares=m2, sum_cubes=m3, sum_fourth_powers=m4
    )


def moments_of(samples: np.ndarray) -> Moments:
    """Moments of an in-memory ``[n, P]`` array (float64), for tests and small data.

    Args:
        samples: ``n`` estimates of ``P`` coordinates.

    Returns:
        Their ``Moments``.
    """
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    centred = samples - mean
    return Moments(
        count=samples.shape[0], mean=mean, sum_squares=np.sum(centred**2, 0),
        sum_cubes=np.sum(centred**3, 0), sum_fourth_powers=np.sum(centred**4, 0),
    )


def gradient_estimates_function(estimator, problem, framework, num_samples: int):
    """``(tiled_parameters, seed) -> [B, P]`` gradient estimates, uncompiled."""
    xp = framework.xp

    def estimates(tiled_parameters, seed):
        batch = shape_of(tiled_parameters[0])[0]

        def total(*parameters):
            distribution, function = problem.bind(*parameters)
            return estimator(function, distribution, seed=seed, num_samples=num_samples)

        _, gradients = framework.value_and_gradient(total, list(tiled_parameters))
        flat = [xp.reshape(gradient, (batch, -1)) for gradient in gradients]
        return flat[0] if len(flat) == 1 else xp.concat(flat, axis=1)

    return estimates


def _chunk_statistics_function(estimator, problem, framework, num_samples, accumulate_dtype):
    xp = framework.xp
    estimates = gradient_estimates_function(estimator, problem, framework, num_samples)

    def chunk_statistics(tiled_parameters, seed, count):
        # Rows at index >= count are dropped (the partial last chunk); count is a tensor,
        # so a partial chunk reuses the compiled full-size computation.
        values = xp.astype(estimates(tiled_parameters, seed), accumulate_dtype)
        batch = shape_of(values)[0]
        kept = xp.expand_dims(xp.less(xp.arange(batch, dtype=accumulate_dtype), count), axis=1)
        zeros = xp.zeros_like(values)
        first_mean = xp.sum(xp.where(kept, values, zeros), axis=0) / count
        correction = xp.where(kept, values - first_mean, zeros)
        mean = first_mean + xp.sum(correction, axis=0) / count
        centred = xp.where(kept, values - mean, zeros)
        squares = centred * centred
        return (
            mean,
            xp.sum(squares, axis=0),
            xp.sum(squares * centred, axis=0),
            xp.sum(squares * squares, axis=0),
        )

    return chunk_statistics


def _tiled_statistics_function(chunk_statistics, framework, chunk_size):
    """``(shared parameters, seed, count) -> statistics``: each device broadcasts its own
    copy of the parameters to ``[chunk_size] + shape`` (the batch is built on the device)."""
    xp = framework.xp

    def statistics(parameters, seed, count):
        tiled = [
            xp.broadcast_to(parameter, (chunk_size,) + shape_of(parameter))
            for parameter in parameters
        ]
        return chunk_statistics(tiled, seed, count)

    return statistics


def gradient_moments(
    estimator,
    problem,
    *,
    num_estimates: int,
    seed,
    backend: str = "tensorflow",
    dtype: str = "float32",
    num_samples: int = 1,
    chunk_size: int = 65536,
    jit_compile: bool = True,
    progress=None,
    devices=None,
) -> Moments:
    """Draw ``num_estimates`` independent gradient estimates and return their moments.

    Args:
      estimator: an fxgx estimator (``est(f, distribution, seed=, num_samples=)``).
      problem: an ``fxgx.problems.Problem``.
      num_estimates: how many independent estimates (exactly; the last chunk may be partial).
      seed: int, TF seed pair or JAX key; chunk ``i`` uses the ``i``-th split of it.
      backend: "tensorflow" or "jax".
      dtype: float dtype of the parameters and the estimator's arithmetic.
      num_samples: the estimator's own ``num_samples`` (samples per estimate).
      chunk_size: estimates per compiled call; bounds peak memory (per device).
      jit_compile: compile with XLA (TF) / ``jax.jit``.
      progress: optional ``callback(done, total)`` called after each chunk (after each
        round of chunks with ``devices``).
      devices: None for one device (the framework's default); an int ``N`` for the first
        ``N`` devices the framework sees (``jax.devices()``; TF's logical GPUs, else CPUs);
        a one-axis ``jax.sharding.Mesh`` (JAX) or a ``tf.distribute.MirroredStrategy``
        (TensorFlow). ``N`` chunks then run at once, one per device; chunk ``i`` still
        uses the ``i``-th split of the seed, so the moments equal the one-device moments.

    Returns:
      The ``Moments`` of the estimates, in the framework's widest float.

    Raises:
      ValueError: ``num_estimates`` or ``chunk_size`` is below 2, or ``devices`` asks for
        more devices than are visible (or is a Mesh with more than one axis).
      TypeError: ``devices`` is not an int, a Mesh (JAX) or a Strategy (TensorFlow).
    """
    if num_estimates < 2:
        raise ValueError(f"num_estimates={num_estimates} must be at least 2.")
    if chunk_size < 2:
        raise ValueError(f"chunk_size={chunk_size} must be at least 2.")
    framework = framework_by_name(backend)
    xp = framework.xp
    selected_devices = framework.resolve_devices(devices)
    num_devices = framework.device_count(selected_devices)
    chunk_size = min(chunk_size, num_estimates)
    num_chunks = -(-num_estimates // chunk_size)
    accumulate_dtype = as_dtype(xp, framework.widest_float())
    root_seed = canonical_seed(seed, framework)
    chunk_seeds = framework.split_seed(root_seed, num_chunks)
    parameters = problem.parameters(framework, dtype)
    chunk_statistics = _chunk_statistics_function(
        estimator, problem, framework, num_samples, accumulate_dtype
    )
    zeros = np.zeros(problem.num_coordinates)
    total = Moments(
        count=0, mean=zeros, sum_squares=zeros, sum_cubes=zeros, sum_fourth_powers=zeros,
        seed=seed, dtype=dtype, backend=framework.name, num_samples=num_samples,
        num_devices=num_devices,
    )

    def chunk_count(index):
        return min(chunk_size, num_estimates - index * chunk_size)

    def as_float64(values):
        return [np.asarray(value, np.float64) for value in values]

    def merged(summary, index, mean, m2, m3, m4):
        chunk = dataclasses.replace(
            summary, count=chunk_count(index), mean=mean, sum_squares=m2, sum_cubes=m3,
            sum_fourth_powers=m4,
        )
        return merge(summary, chunk)

    if selected_devices is None:
        tiled = [
            xp.broadcast_to(parameter, (chunk_size,) + shape_of(parameter))
            for parameter in parameters
        ]
        statistics = framework.compile(chunk_statistics, jit_compile=jit_compile)
        num_rounds = num_chunks

        def run_chunk(summary, round_index):
            count = xp.asarray(chunk_count(round_index), dtype=accumulate_dtype)
            values = statistics(tiled, chunk_seeds[round_index], count)
            return merged(summary, round_index, *as_float64(values))

        run_round = run_chunk
    else:
        statistics = framework.map_over_devices(
            _tiled_statistics_function(chunk_statistics, framework, chunk_size),
            selected_devices, jit_compile=jit_compile,
        )
        num_rounds = -(-num_chunks // num_devices)
        # Idle devices of the last round recompute chunk 0; their rows are not merged.
        padding = num_rounds * num_devices - num_chunks
        padded_seeds = (
            xp.concat([chunk_seeds] + [chunk_seeds[:1]] * padding, axis=0)
            if padding else chunk_seeds
        )
        counts = [chunk_count(index) for index in range(num_chunks)] + [chunk_size] * padding
        all_counts = np.asarray(counts, dtype=np.float64)

        def run_round(summary, round_index):
            first = round_index * num_devices
            values = statistics(
                parameters,
                [
                    padded_seeds[first:first + num_devices],
                    xp.asarray(all_counts[first:first + num_devices], dtype=accumulate_dtype),
                ],
            )
            values = as_float64(values)
            for row in range(min(num_devices, num_chunks - first)):
                summary = merged(summary, first + row, *(value[row] for value in values))
            return summary

    compile_start = time.perf_counter()
    total = run_round(total, 0)
    compile_seconds = time.perf_counter() - compile_start
    if progress is not None:
        progress(1, num_rounds)
    start = time.perf_counter()
    for index in range(1, num_rounds):
        total = run_round(total, index)
        if progress is not None:
            progress(index + 1, num_rounds)
    seconds = time.perf_counter() - start
    # The first round paid for compilation: time the others and scale to all rounds.
    if num_rounds == 1:
        total.seconds = compile_seconds
    else:
        total.seconds = seconds * num_rounds / (num_rounds - 1)
    total.compile_seconds = compile_seconds
    return total
