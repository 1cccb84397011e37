"""The multi-sample objective ``L^ = log (1/K sum_k exp f(z_k))`` and its leave-one-out forms,
shared by VIMCO, DisARM-VIMCO and the importance-weighted bound.
"""

from __future__ import annotations

import math

from fxgx.core.arrays import shape_of


def log_mean_exp(framework, values, axis=0):
    """``log (1/K sum_k exp values_k)`` along ``axis``, computed stably.

    Args:
        framework: the framework.
        values: the values; ``K`` is the size of ``axis``.
        axis: the axis averaged over.

    Returns:
        ``values`` without ``axis``.
    """
    count = shape_of(values)[axis]
    return framework.logsumexp(values, axis=axis) - math.log(count)


def replaced_log_mean_exp(framework, values, replacements):
    """``log mean exp`` of ``values`` (axis 0) with entry ``k`` replaced by ``replacements_k``,
    for every ``k``.

    Args:
        framework: the framework.
        values: ``[K] + batch_shape`` values ``f(z_k)``.
        replacements: ``[K] + batch_shape`` values, or ``[1] + batch_shape`` shared ones.

    Returns:
        ``[K] + batch_shape``: row ``k`` is ``log (1/K [sum_{j != k} exp values_j +
        exp replacements_k])`` (``O(K^2)`` memory).
    """
    xp = framework.xp
    count = shape_of(values)[0]
    rank = len(shape_of(values))
    index = xp.arange(count, dtype=xp.int32)
    diagonal = xp.equal(xp.expand_dims(index, axis=1), xp.expand_dims(index, axis=0))
    diagonal = xp.reshape(diagonal, (count, count) + (1,) * (rank - 1))
    # Row k: the K values with entry k replaced.
    replaced = xp.where(diagonal, xp.expand_dims(replacements, axis=1),
                        xp.expand_dims(values, axis=0))
    return log_mean_exp(framework, replaced, axis=1)
