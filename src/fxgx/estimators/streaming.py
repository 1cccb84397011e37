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

What a chunk contributes is the estimator's *streaming rule* (``Estimator.streaming``), an
object of this module's ``StreamingRule`` type:

- ``MEAN``: the estimate is the mean of the chunks' estimates, ``sum_c C_c s_c / N``. For
  estimators whose estimate is a mean over independent samples (REINFORCE, straight-through,
  Gumbel, ARM/DisARM, REBAR/RELAX, ...) that is the ``N``-sample estimate itself; for those
  whose baseline comes from the other samples (RODEO, double control variates) each chunk's
  baseline uses that chunk's samples: still unbiased.
- an exact rule: running sums that reproduce the one-shot formula over all ``N`` samples
  (the leave-one-out REINFORCE, ``fxgx.estimators.reinforce_leave_one_out``).
- a two-pass rule: a first loop adds up the sums over all ``N`` samples that the formula
  needs, a second one redraws each chunk from its seed and applies the one-shot formula
  with those totals (the optimal baseline, ``fxgx.estimators.optimal_baseline``). It costs
  one more evaluation of ``f`` per sample.
- ``cannot_stream(reason)``: the estimator cannot stream (samples without replacement, the
  multi-sample bound ``log mean exp f``, estimators with state); a call with ``chunk_size``
  raises with the reason.

Devices: ``devices=`` (a count, a one-axis ``jax.sharding.Mesh`` or a
``tf.distribute.Strategy``) gives each device a contiguous block of the chunks. Chunk ``c``
keeps its seed whichever device runs it, so a sharded estimate equals the single-device one
for the same ``seed`` and ``chunk_size`` (up to the order of the final additions).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from fxgx.distributions import Distribution


@dataclasses.dataclass(frozen=True)
class StreamingRule:
    """How one estimator's chunks combine into the ``N``-sample estimate.

    The default is the mean rule: each chunk contributes its surrogate times its sample
    count, and the total is divided by ``N``. Subclasses override ``statistics`` (a first
    pass over every chunk, for a two-pass rule), ``terms`` and ``combine``.

    Attributes:
        kind: "mean", "exact", "two_pass" or "none" (for tables and messages).
        reason: why the estimator cannot stream ("none" only).
    """

    kind: str = "mean"
    reason: str = ""

    @property
    def streams(self) -> bool:
        """Whether a call with ``chunk_size`` may stream."""
        return self.kind != "none"

    @property
    def passes(self) -> int:
        """How many loops over the chunks a streamed call makes."""
        return 2 if self.kind == "two_pass" else 1

    def statistics(self, estimator, framework, function, distribution, seed,
                   num_samples) -> tuple:
        """The first pass of a two-pass rule: a tuple of stopped sums over one chunk, added
        over all chunks and handed to every chunk's ``terms`` as ``statistics``."""
        del estimator, framework, function, distribution, seed, num_samples
        return ()

    def terms(self, estimator, framework, function, distribution, seed, num_samples,
              statistics) -> tuple:
        """What one chunk of ``num_samples`` adds: a tuple of arrays summed over the chunks
        and passed to ``combine``. Mean rule: the chunk's surrogate times its count."""
        del statistics
        surrogate = estimator._estimate(framework, function, distribution, seed, num_samples)
        return (surrogate * float(num_samples),)

    def combine(self, framework, totals, num_samples: int):
        """The streamed surrogate from the chunks' summed terms. Mean rule: their mean."""
        del framework
        return totals[0] / float(num_samples)  # an int above 2^31 would overflow JAX's int32


#: The mean rule (see the module docstring).
MEAN = StreamingRule()


def cannot_stream(reason: str) -> StreamingRule:
    """The rule of an estimator that cannot stream.

    Args:
        reason: why, in words (the error of a call with ``chunk_size`` quotes it).

    Returns:
        The rule.
    """
    return StreamingRule(kind="none", reason=reason)


def chunk_seeds(seed, num_samples: int, chunk_size: int, framework):
    """The seed of each chunk of a streamed call: ``split_seed(seed, num_chunks)``.

    Args:
        seed: the call's seed, in the framework's native form.
        num_samples: ``N``.
        chunk_size: ``C``.
        framework: the framework.

    Returns:
        ``ceil(N / C)`` seeds stacked on axis 0; chunk ``c`` holds samples ``c C`` to
        ``min((c + 1) C, N) - 1``.
    """
    return framework.split_seed(seed, -(-num_samples // chunk_size))


def with_parameters(distribution, arrays):
    """A copy of an fxgx ``distribution`` whose parameters are ``arrays`` (in the order of
    ``parameter_arrays()``)."""
    replaced = copy.copy(distribution)
    for (name, _, _), array in zip(distribution.parameter_arrays(), arrays, strict=True):
        setattr(replaced, name, array)
    return replaced


def streamed_surrogate(estimator, call: Any, chunk_size: int, devices):
    """The surrogate of a streamed call (see the module docstring).

    Args:
        estimator: the estimator (its rule streams).
        call: the checked ``fxgx.estimators.base.Call``.
        chunk_size: ``C < N``.
        devices: what ``framework.resolve_devices`` returned (None: one device).

    Returns:
        A surrogate of shape ``batch_shape``, as a one-shot call returns.

    Raises:
        TypeError: on a framework whose compiled loops see only variables (TensorFlow), a
            distribution fxgx does not convert (its parameters would get no gradient).
    """
    framework, function, distribution, seed, num_samples = call
    rule = estimator.streaming
    num_full, remainder = divmod(num_samples, chunk_size)
    seeds = chunk_seeds(seed, num_samples, chunk_size, framework)
    if isinstance(distribution, Distribution):
        parameters = [array for _, array, _ in distribution.parameter_arrays()]
        closed_over = None
    elif framework.differentiates_closed_over_arrays:
        parameters, closed_over = [], distribution
    else:
        raise TypeError(
            f"chunk_size on {framework.name} needs a Bernoulli, categorical or normal "
            f"distribution (fxgx's or TensorFlow Probability's); got "
            f"{type(distribution).__name__}."
        )

    def rebuild(arrays):
        return closed_over if closed_over is not None else with_parameters(distribution, arrays)

    def summed(terms):
        def body_of(size):
            def body(arrays, chunk_seed):
                return tuple(terms(rebuild(arrays), chunk_seed, size))
            return body

        totals = framework.sum_over_chunks(body_of(chunk_size), parameters, seeds, num_full,
                                           devices)
        if remainder:
            last = body_of(remainder)(parameters, seeds[num_full])
            totals = tuple(total + value for total, value in zip(totals, last, strict=True))
        return tuple(totals)

    statistics = ()
    if rule.passes == 2:
        statistics = tuple(framework.stop_gradient(total) for total in summed(
            lambda chunk_distribution, chunk_seed, size: rule.statistics(
                estimator, framework, function, chunk_distribution, chunk_seed, size)))

    totals = summed(lambda chunk_distribution, chunk_seed, size: rule.terms(
        estimator, framework, function, chunk_distribution, chunk_seed, size, statistics))
    return rule.combine(framework, totals, num_samples)
