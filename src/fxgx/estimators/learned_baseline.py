"""REINFORCE with a learned, input-dependent baseline (NVIL-style).

The user supplies ``baseline(distribution)``: any function of the model's input (a small
network that reads the observation ``x``, say) that returns one value per batch member. It
must not look at the latent samples, and it cannot: it never receives them.

    g = 1/S sum_s (f(z_s) - b(x)) grad log q(z_s)

is unbiased for any ``b`` that does not depend on ``z``, because ``E[grad log q(z)] = 0``.
The variance is smallest when ``b(x)`` is close to ``E[f(z) | x]``, so ``b`` is trained by
regression on the same samples:

    loss(b) = 1/S sum_s (f(z_s) - b(x))^2         (``f`` is constant here)

``apply`` returns it as ``info["baseline_loss"]``; the baseline's parameters are closed over
by ``b`` and trained by the user's optimizer, so the estimator's state is ``()``.

Reference: Mnih & Gregor (2014), "Neural variational inference and learning in belief
networks" (NVIL), section 3.3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fxgx.core.arrays import shape_of
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import draw_and_evaluate, sub_seeds
from fxgx.estimators.score_function import score_function_surrogate
from fxgx.estimators.streaming import cannot_stream


def _zero_baseline(distribution):
    """The default baseline: zero for every batch member (plain REINFORCE).

    Args:
        distribution: ``q``; not read.

    Returns:
        ``0.0``, which broadcasts to the batch shape.
    """
    return 0.0


@dataclasses.dataclass(frozen=True)
class LearnedBaseline(Estimator, card="learned_baseline"):
    """REINFORCE with the baseline ``baseline(distribution)`` (independent of the samples).

    The baseline's parameters are closed over by ``baseline`` (a network's weights, a
    ``tf.Variable``), not held in the estimator's state: they are trained by the user's
    optimizer like any other parameter, so the state is ``()``. ``apply`` returns the
    regression loss that trains them as ``info["baseline_loss"]``.

    Attributes:
        baseline: maps the distribution to one value per batch member (shape
            ``batch_shape`` or broadcastable to it) without seeing the samples; the default
            is the zero baseline.
    """

    baseline: Callable = _zero_baseline
    streaming = cannot_stream("it has state; call apply() on batches of samples instead")

    def regression_loss(self, function, distribution, *, seed, num_samples: int | None = None):
        """The baseline's regression loss ``mean_s (f(z_s) - b)^2`` alone: what ``apply``
        returns as ``info["baseline_loss"]``.

        With the seed of the estimator's call it uses the same samples. Its gradient reaches
        only what ``b`` computes from: ``f`` and the samples are constants.

        Args:
            function: ``f``.
            distribution: ``q``.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S`` (default 1).

        Returns:
            The loss, of the distribution's batch shape.

        Raises:
            TypeError, ValueError: as for a plain call, or when ``baseline`` returns values
                that do not broadcast to the batch shape.
        """
        _, _, info = self.apply((), function, distribution, seed=seed, num_samples=num_samples)
        return info["baseline_loss"]

    def _apply(self, state, call, with_info):
        """The surrogate with the stopped baseline ``b``; ``info["baseline_loss"]`` is the
        regression loss ``mean_s (f(z_s) - b)^2`` on the same samples (cheap: always made)."""
        del with_info
        framework, function, distribution, seed, num_samples = call
        xp = framework.xp
        seeds = sub_seeds(framework, seed, "samples")
        samples, values = draw_and_evaluate(framework, function, distribution,
                                            seeds["samples"], num_samples)
        baseline = self._baseline_values(framework, distribution, values)
        log_prob = distribution.log_prob(samples)
        surrogate = score_function_surrogate(
            framework, values, log_prob, framework.stop_gradient(baseline), num_samples
        )
        loss = xp.mean(xp.square(framework.stop_gradient(values) - baseline), axis=0)
        return surrogate, () if state is None else state, {"baseline_loss": loss}

    def _baseline_values(self, framework, distribution, values):
        xp = framework.xp
        baseline = self.baseline(distribution)
        if not framework.is_array(baseline):
            baseline = xp.asarray(baseline, dtype=values.dtype)
        elif baseline.dtype != values.dtype:
            baseline = xp.astype(baseline, values.dtype)
        batch_shape = shape_of(values)[1:]
        shape = shape_of(baseline)
        trailing = batch_shape[len(batch_shape) - len(shape):]
        if len(shape) > len(batch_shape) or any(
            size not in (1, batch_size) for size, batch_size in zip(shape, trailing, strict=True)
        ):
            raise ValueError(
                f"baseline returned shape {shape}; it must return one value per batch member "
                f"(shape {batch_shape}, or a shape that broadcasts to it) and must not depend "
                "on the samples."
            )
        return baseline


def learned_baseline(baseline: Callable | None = None) -> LearnedBaseline:
    """REINFORCE with an input-dependent baseline ``b = baseline(distribution)`` (NVIL).

    Train the baseline on ``info["baseline_loss"]`` from ``est.apply((), f, q, seed=,
    num_samples=)`` (or ``regression_loss``). If ``baseline`` reads the
    distribution's parameters, stop their gradient inside it, or the loss will also train
    the model that produced them. Reference: Mnih & Gregor (2014).

    Args:
        baseline: maps the distribution to one value per batch member (shape
            ``batch_shape`` or broadcastable to it); usually a closure over the observation
            and the baseline network's parameters, and free to ignore its argument. ``None``
            (default) is the zero baseline.

    Returns:
        A :class:`LearnedBaseline`.

    Raises:
        TypeError: ``baseline`` is not callable.
    """
    if baseline is None:
        return LearnedBaseline()
    if not callable(baseline):
        raise TypeError(
            f"baseline must be a callable baseline(distribution) -> values, got {baseline!r}."
        )
    return LearnedBaseline(baseline=baseline)
