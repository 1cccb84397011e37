"""Estimates over more samples than fit in memory: chunks accumulated in a compiled loop.

    surrogate = estimator(f, q, seed=seed, num_samples=10**8, chunk_size=2**16)

splits the ``N = num_samples`` samples into ``ceil(N / C)`` chunks of ``C = chunk_size``
(the last one holds the rest). Chunk ``c`` is an ordinary call with ``C`` samples and the seed
``split_seed(seed, num_chunks)[c]`` (``chunk_seeds``); a compiled loop (``lax.scan``,
``tf.while_loop``) adds up what each chunk contributes, and memory holds one chunk at a time,
whatever ``N`` is. Gradients stream too: the loop is differentiated by recomputing each chunk
(JAX: ``jax.checkpoint`` in the scan; TensorFlow: a ``tf.custom_gradient`` whose gradient
function runs the loop again), so the parameters of ``q`` and what ``f`` reads (a decoder's
weights) get their gradients, for any upstream cotangent. First derivatives are exact
sums of the chunks'; a streamed surrogate is not meant for second derivatives.

What a chunk contributes depends on the estimator (``Estimator.streaming``):

- ``"mean"``: the estimate is the mean of the chunks' estimates, ``sum_c C_c s_c / N``. For
  estimators whose estimate is a mean over independent samples (REINFORCE, straight-through,
  Gumbel, ARM/DisARM, REBAR/RELAX, ...) that is the ``N``-sample estimate itself; for those
  whose baseline comes from the other samples (RODEO, double control variates) each chunk's
  baseline uses that chunk's samples: still unbiased.
- ``"exact"``: running sums that reproduce the one-shot formula over all ``N`` samples. The
  leave-one-out REINFORCE streams ``sum_s f_s``, ``sum_s f_s grad log q_s`` and
  ``sum_s grad log q_s`` and combines them as ``(A - mean(f) B) / (N - 1)`` (see
  ``fxgx.estimators.leave_one_out``).
- ``"two_pass"``: a first loop adds up the sums over all ``N`` samples that the formula needs
  (the optimal baseline: ``sum f_j ||s_j||^2`` and ``sum ||s_j||^2``), a second one redraws
  each chunk from its seed and applies the one-shot formula with those totals. It costs one
  more evaluation of ``f`` per sample.
- ``"none"``: the estimator cannot stream (samples without replacement, the multi-sample
  bound ``log mean exp f``, estimators with state); a call with ``chunk_size`` raises.

Devices: ``devices=`` (a count, a one-axis ``jax.sharding.Mesh`` or a
``tf.distribute.Strategy``) gives each device a contiguous block of the chunks. Chunk ``c``
keeps its seed whichever device runs it, so a sharded estimate equals the single-device one
for the same ``seed`` and ``chunk_size`` (up to the order of the final additions).
"""

from __future__ import annotations

import copy

from fxgx.distributions import Distribution


def chunk_seeds(seed, num_samples: int, chunk_size: int, backend):
    """The seed of each chunk of a streamed call: ``split_seed(seed, num_chunks)``.

    Args:
        seed: the call's seed, in the backend's native form.
        num_samples: ``N``.
        chunk_size: ``C``.
        backend: the backend module.

    Returns:
        ``ceil(N / C)`` seeds stacked on axis 0; chunk ``c`` holds samples ``c C`` to
        ``min((c + 1) C, N) - 1``.
    """
    return backend.split_seed(seed, -(-num_samples // chunk_size))


def with_parameters(distribution, arrays):
    """A copy of an fxgx ``distribution`` whose parameters are ``arrays`` (in the order of
    ``parameter_arrays()``)."""
    replaced = copy.copy(distribution)
    for (name, _, _), array in zip(distribution.parameter_arrays(), arrays, strict=True):
        setattr(replaced, name, array)
    return replaced


def streamed_surrogate(estimator, function, distribution, backend, seed, num_samples: int,
                       chunk_size: int, devices):
    """The surrogate of a streamed call (see the module docstring).

    Args:
        estimator: the estimator (its ``streaming`` is not "none").
        function: ``f``.
        distribution: the converted distribution ``q``.
        backend: the backend module.
        seed: the native seed.
        num_samples: ``N``.
        chunk_size: ``C < N``.
        devices: what ``backend.resolve_devices`` returned (None: one device).

    Returns:
        A surrogate of shape ``batch_shape``, as a one-shot call returns.

    Raises:
        TypeError: on TensorFlow, a distribution fxgx does not convert (its parameters would
            get no gradient through the loop).
    """
    num_full, remainder = divmod(num_samples, chunk_size)
    seeds = chunk_seeds(seed, num_samples, chunk_size, backend)
    if isinstance(distribution, Distribution):
        parameters = [array for _, array, _ in distribution.parameter_arrays()]
        closed_over = None
    elif backend.name == "jax":
        parameters, closed_over = [], distribution  # JAX differentiates through closures
    else:
        raise TypeError(
            f"chunk_size on TensorFlow needs a Bernoulli, categorical or normal distribution "
            f"(fxgx's or TensorFlow Probability's); got {type(distribution).__name__}."
        )

    def rebuild(arrays):
        return closed_over if closed_over is not None else with_parameters(distribution, arrays)

    def summed(terms):
        def body_of(size):
            def body(arrays, chunk_seed):
                return tuple(terms(function, rebuild(arrays), backend, chunk_seed, size))
            return body

        totals = backend.sum_over_chunks(body_of(chunk_size), parameters, seeds, num_full,
                                         devices)
        if remainder:
            last = body_of(remainder)(parameters, seeds[num_full])
            totals = tuple(total + value for total, value in zip(totals, last, strict=True))
        return tuple(totals)

    statistics = ()
    if estimator.streaming == "two_pass":
        statistics = tuple(backend.stop_gradient(total)
                           for total in summed(estimator._stream_statistics))

    def terms(function, distribution, backend, chunk_seed, size):
        return estimator._stream_terms(function, distribution, backend, chunk_seed, size,
                                       statistics=statistics)

    return estimator._combine_streams(backend, summed(terms), num_samples)
