"""Array helpers that the array API standard does not have, written in the standard.

Each takes the namespace ``xp`` (``framework.xp``) and arrays of it; none needs a framework.
"""

from __future__ import annotations

from typing import Any


def shape_of(value) -> tuple:
    """The static shape of ``value`` as a tuple (``None`` entries for unknown dimensions,
    which TensorFlow graphs may have).

    Args:
        value: an array.

    Returns:
        The shape.

    Raises:
        ValueError: the rank is unknown (a TensorFlow tensor in a graph traced without
            shapes): fxgx needs static shapes.
    """
    try:
        return tuple(value.shape)
    except (TypeError, ValueError) as error:  # a TensorShape of unknown rank
        raise ValueError(
            f"an array of unknown rank was given ({value!r}); fxgx needs static shapes: give "
            "tf.function an input_signature with known ranks, or call it on arrays."
        ) from error


def dtype_name(dtype) -> str:
    """The canonical name of a dtype ("float32"), for messages.

    Args:
        dtype: a dtype object of any framework, or a name.

    Returns:
        The name.
    """
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).rsplit(".", 1)[-1]


def as_dtype(xp, dtype) -> Any:
    """``dtype`` as a dtype of ``xp`` (names are looked up in the namespace).

    Args:
        xp: an array API namespace.
        dtype: a dtype of ``xp`` or its name ("float32").

    Returns:
        The dtype object.
    """
    return getattr(xp, dtype) if isinstance(dtype, str) else dtype


def one_hot(xp, indices, depth: int, dtype):
    """One-hot vectors of length ``depth`` along a new last axis.

    Args:
        xp: the namespace of ``indices``.
        indices: integer class indices.
        depth: the number of classes ``K``.
        dtype: the dtype of the result (a dtype of ``xp`` or its name).

    Returns:
        ``indices.shape + (K,)``: 1 at each index, 0 elsewhere.
    """
    classes = xp.arange(depth, dtype=indices.dtype)
    return xp.astype(xp.expand_dims(indices, axis=-1) == classes, as_dtype(xp, dtype))


def exclusive_cumulative_sum(xp, values, *, axis: int = 0, reverse: bool = False):
    """``sum_{j < i} values_j`` along ``axis`` (``j > i`` with ``reverse``); 0 at the start.

    Args:
        xp: the namespace of ``values``.
        values: an array.
        axis: the axis summed along.
        reverse: sum from the end instead.

    Returns:
        An array of ``values``' shape.
    """
    if reverse:
        flipped = xp.flip(values, axis=axis)
        return xp.flip(exclusive_cumulative_sum(xp, flipped, axis=axis), axis=axis)
    axis = axis % len(values.shape)
    inclusive = xp.cumulative_sum(values, axis=axis, include_initial=True)
    index = (slice(None),) * axis + (slice(0, values.shape[axis]), Ellipsis)
    return inclusive[index]


def expand_trailing(xp, values, count: int):
    """``values`` with ``count`` trailing axes of size 1 appended.

    Args:
        xp: the namespace of ``values``.
        values: an array.
        count: how many axes to append.

    Returns:
        The reshaped array.
    """
    for _ in range(count):
        values = xp.expand_dims(values, axis=-1)
    return values


def expand_to_rank(xp, values, rank: int):
    """``values`` with trailing axes of size 1 appended until it has ``rank`` axes.

    Args:
        xp: the namespace of ``values``.
        values: an array.
        rank: the rank wanted.

    Returns:
        The reshaped array (unchanged if its rank is already ``rank`` or more).
    """
    return expand_trailing(xp, values, max(0, rank - len(values.shape)))


def sum_trailing(xp, values, count: int):
    """``values`` summed over its ``count`` trailing axes (unchanged for ``count = 0``).

    Args:
        xp: the namespace of ``values``.
        values: an array.
        count: how many trailing axes to sum over.

    Returns:
        The sum.
    """
    if count == 0:
        return values
    rank = len(values.shape)
    return xp.sum(values, axis=tuple(range(rank - count, rank)))
