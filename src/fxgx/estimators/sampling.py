"""Sampling and evaluating ``f``: the first steps every estimator shares.

``draw`` takes stopped samples from an fxgx distribution or any object with a sampler;
``evaluate`` calls ``f`` on them and checks its shape; ``sub_seeds`` splits a call's seed
into named streams; ``event_axes`` and ``mean_of`` describe a Bernoulli or one-hot
categorical's layout and mean.
"""

from __future__ import annotations

from fxgx.core.arrays import dtype_name, shape_of
from fxgx.core.seeds import split_seed
from fxgx.distributions import Distribution, distribution_batch_shape


def sub_seeds(framework, seed, *names):
    """Named independent sub-seeds of a canonical seed.

    Args:
        framework: the framework.
        seed: a native seed of ``framework``.
        *names: one name per sub-seed.

    Returns:
        ``{name: seed}``, independent of one another and of ``seed``'s other uses.
    """
    return split_seed(seed, names, framework)


def draw(framework, distribution, seed, num_samples):
    """Samples ``[S] + shape`` (stopped) from an fxgx distribution, a TFP one, or any object
    with ``sample(sample_shape=, seed=)`` (distrax, TFP's JAX substrate).

    Args:
        framework: the framework.
        distribution: ``q``.
        seed: a native seed.
        num_samples: ``S``.

    Returns:
        The samples, gradient-stopped.
    """
    if isinstance(distribution, Distribution):
        return framework.stop_gradient(distribution.sample((num_samples,), seed))
    return framework.stop_gradient(distribution.sample(
        sample_shape=(num_samples,), seed=framework.sampler_seed(seed)))


def evaluate(framework, function, samples, distribution, num_samples):
    """``function(samples)``, checked and cast to the samples' floating dtype.

    Args:
        framework: the framework.
        function: ``f``.
        samples: ``[num_samples] + batch_shape + event_shape`` samples.
        distribution: the distribution they came from (for its batch shape).
        num_samples: ``S``.

    Returns:
        ``f(samples)``, shape ``[num_samples] + batch_shape``.

    Raises:
        ValueError: ``f`` returned another shape (only the leading ``num_samples`` is
            checked when the distribution does not say its batch shape).
    """
    xp = framework.xp
    values = function(samples)
    if not framework.is_array(values):
        values = xp.asarray(values)
    actual = shape_of(values)
    batch_shape = distribution_batch_shape(distribution)
    if batch_shape is None:
        expected, matches = f"[{num_samples}] + batch_shape", actual[:1] == (num_samples,)
    else:
        expected = (num_samples,) + batch_shape
        matches = actual == expected
    if not matches:
        raise ValueError(
            f"function returned shape {actual} for samples of shape "
            f"{shape_of(samples)}; it must return one value per sample and batch "
            f"member, shape {expected} (sum over the event dimensions)."
        )
    if values.dtype != samples.dtype and xp.isdtype(samples.dtype, "real floating"):
        values = xp.astype(values, samples.dtype)
    return values


def draw_and_evaluate(framework, function, distribution, seed, num_samples):
    """Stopped samples ``[S] + shape`` and the values of ``f`` on them, checked to have shape
    ``[S] + batch_shape``: the start of every score-function estimator. The values are left
    differentiable w.r.t. what ``f`` closes over (stop them before using them as weights)."""
    samples = draw(framework, distribution, seed, num_samples)
    values = evaluate(framework, function, samples, distribution, num_samples)
    return samples, values


def event_axes(distribution):
    """The axes of a sample (``[S] + logits.shape``) that belong to one event.

    Args:
        distribution: a Bernoulli or one-hot categorical distribution.

    Returns:
        The ``event_ndims`` rightmost axes, plus the class axis for a categorical one.
    """
    rank = 1 + len(shape_of(distribution.logits))
    return tuple(range(rank - event_rank(distribution), rank))


def event_rank(distribution) -> int:
    """How many trailing axes of the logits form one event: ``event_ndims``, plus the class
    axis of a categorical.

    Args:
        distribution: a Bernoulli or one-hot categorical distribution.

    Returns:
        The rank.
    """
    return distribution.event_ndims + (1 if distribution.kind == "categorical" else 0)


def mean_of(framework, distribution):
    """``E_q[z]`` with the logits stopped.

    Args:
        framework: the framework.
        distribution: a Bernoulli or one-hot categorical distribution.

    Returns:
        ``sigmoid(logits)`` or ``softmax(logits)``, of the logits' shape.
    """
    logits = framework.stop_gradient(distribution.logits)
    if distribution.kind == "bernoulli":
        return framework.sigmoid(logits)
    return framework.softmax(logits, axis=-1)


def floating_logits(framework, logits, argument: str = "logits"):
    """``logits`` as an array of ``framework``, checked to be floating point (the public
    sample-level functions' boundary check).

    Args:
        framework: the framework.
        logits: an array or anything ``xp.asarray`` takes.
        argument: the name the error gives ``logits``.

    Returns:
        The array.

    Raises:
        TypeError: an integer or bool dtype.
    """
    xp = framework.xp
    logits = logits if framework.is_array(logits) else xp.asarray(logits)
    if not xp.isdtype(logits.dtype, "real floating"):
        raise TypeError(
            f"{argument} has dtype {dtype_name(logits.dtype)}; it must be "
            "a floating tensor (float32 or float64)."
        )
    return logits
