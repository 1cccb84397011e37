"""Convert TensorFlow Probability distributions into fxgx's minimal ones.

Recognised: ``Bernoulli``, ``OneHotCategorical``, ``Normal`` and ``Independent`` wrappers of
them (``reinterpreted_batch_ndims`` becomes ``event_ndims``). Anything else is returned as
``None`` and used through its own ``sample``/``log_prob`` by score-function estimators.

``reinterpreted_batch_ndims`` is a tensor inside ``tf.function``, so the number of event
dimensions is read from the static event ranks instead (``Independent`` adds exactly the
dimensions it reinterprets), which are known in every mode.
"""

from __future__ import annotations

import tensorflow_probability as tfp

from fxgx import distributions

tfd = tfp.distributions


def convert(distribution):
    inner = distribution
    while isinstance(inner, tfd.Independent):
        inner = inner.distribution
    event_ndims = _static_rank(distribution.event_shape) - _static_rank(inner.event_shape)
    # TFP's own validate_args, on the wrapper or the wrapped distribution, carries over.
    validate_args = bool(distribution.validate_args or inner.validate_args)
    if isinstance(inner, tfd.Bernoulli):
        return distributions.Bernoulli(inner.logits_parameter(), event_ndims=event_ndims,
                                       validate_args=validate_args)
    if isinstance(inner, tfd.OneHotCategorical):
        return distributions.OneHotCategorical(inner.logits_parameter(), event_ndims=event_ndims,
                                               validate_args=validate_args)
    if isinstance(inner, tfd.Normal):
        return distributions.Normal(inner.loc, inner.scale, event_ndims=event_ndims,
                                    validate_args=validate_args)
    return None


def _static_rank(shape) -> int:
    if shape.rank is None:
        raise ValueError(
            f"The event shape {shape} has an unknown rank; fxgx needs static event shapes "
            "(give the distribution's parameters static shapes)."
        )
    return shape.rank
