"""Convert TensorFlow Probability distributions into fxgx's minimal ones.

Recognised: ``Bernoulli``, ``OneHotCategorical``, ``Normal`` and ``Independent`` wrappers of
them (``reinterpreted_batch_ndims`` becomes ``event_ndims``). Anything else is returned as
``None`` and used through its own ``sample``/``log_prob`` by score-function estimators.
"""

from __future__ import annotations

import tensorflow_probability as tfp

tfd = tfp.distributions


def convert(distribution):
    from fxgx import distributions  # noqa: PLC0415 - avoid an import cycle

    event_ndims = 0
    inner = distribution
    while isinstance(inner, tfd.Independent):
        event_ndims += int(inner.reinterpreted_batch_ndims)
        inner = inner.distribution
    if isinstance(inner, tfd.Bernoulli):
        return distributions.Bernoulli(inner.logits_parameter(), event_ndims=event_ndims)
    if isinstance(inner, tfd.OneHotCategorical):
        return distributions.OneHotCategorical(inner.logits_parameter(), event_ndims=event_ndims)
    if isinstance(inner, tfd.Normal):
        loc, scale = inner.loc, inner.scale
        return distributions.Normal(loc, scale, event_ndims=event_ndims)
    return None
