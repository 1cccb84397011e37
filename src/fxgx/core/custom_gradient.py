"""The primitive: a tensor whose value is ``fx`` and whose gradient w.r.t. ``x`` is ``gx``.

    h = fx + sum_{e in axis} gx[b, e] * (x[b, e] - stop_gradient(x[b, e]))

built from ``stop_gradient`` alone, so it works with every transformation of both
frameworks (``tf.function``, XLA, ``jax.jit``/``vmap``/``grad``/``jvp``). For an upstream
cotangent ``u`` the gradient w.r.t. ``x[b, e]`` is ``u[b] * gx[b, e]`` (TFP's
``tfp.math.custom_gradient`` returns ``mean(u) * gx`` instead).

Two details keep the value *bitwise* equal to ``fx``:

- the correction ``c = sum(gx * (x - stop(x)))`` is ``+0`` or ``-0`` depending on the sign
  of ``gx``, and ``-0.0 + (+0.0) == +0.0`` would flip the sign of a ``-0.0`` value, so the
  result is ``fx - (stop(c) - c)``: ``stop(c) - c`` is always ``+0`` and ``a - (+0) == a``
  for every float ``a``; its gradient is still ``+gx``;
- elements of ``x`` that are not finite contribute a zero correction (``inf - inf`` and
  ``gx * 0`` with an infinite ``gx`` would be NaN); their gradient is 0. A non-finite ``gx``
  on a finite ``x`` still poisons the value, as ``inf * 0`` is NaN: pass finite ``gx`` there.

(Subnormal ``fx`` values are the exception: TF and XLA on CPU flush them to zero in any
arithmetic, ``fx - 0`` included.)

Reference: the ``custom_gradient`` of TF 1.6's ``tf.contrib.bayesflow.custom_grad``.
"""

from __future__ import annotations

from fxgx.backends import get_framework
from fxgx.core.arrays import dtype_name, shape_of
from fxgx.core.structure import describe, flatten, structure_of


def _normalize_axis(axis, rank: int, argument_shape):
    """Axis as a sorted tuple of non-negative ints (None means every dimension)."""
    if axis is None:
        return tuple(range(rank))
    if isinstance(axis, bool):
        raise TypeError(f"axis={axis!r} must be None, an int or a tuple of ints.")
    if not isinstance(axis, (int, tuple, list)):
        raise TypeError(f"axis={axis!r} must be None, an int or a tuple of ints.")
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for item in axes:
        if not isinstance(item, int) or isinstance(item, bool):
            raise TypeError(f"axis={axis!r} must be None, an int or a tuple of ints.")
        if not -rank <= item < rank:
            raise ValueError(
                f"axis={axis!r} is out of range for x of shape {argument_shape} (rank {rank})."
            )
        normalized.append(item % rank)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis={axis!r} repeats a dimension.")
    return tuple(sorted(normalized))


def _check_floating(xp, value, argument: str):
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"{argument} has dtype {dtype_name(value.dtype)}; custom_gradient needs floating "
            "tensors (float16, bfloat16, float32 or float64). Cast it first."
        )


def _as_tensor(framework, value, dtype, argument: str):
    if framework.is_array(value):
        return value
    xp = framework.xp
    if hasattr(value, "dtype") and not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"{argument} has dtype {value.dtype}; custom_gradient needs floating tensors."
        )
    return xp.asarray(value, dtype=dtype if not hasattr(value, "dtype") else None)


def custom_gradient(fx, gx, x, axis=(), fx_gx_manually_stopped: bool = False, name=None):
    """Return ``h`` with ``h == fx`` (bitwise) and ``dh/dx == gx``.

    Args:
      fx: value of the function, a floating tensor.
      gx: its gradient w.r.t. ``x``; the same (nested list/tuple) structure as ``x``. Each
        leaf has the shape of its ``x`` leaf (the gradient of each ``f`` value w.r.t. each
        element of its domain), of ``fx`` (the derivative w.r.t. ``reduce_sum(x, axis)``,
        broadcast back over ``axis``), or is a scalar (a number or a 0-d tensor) that every
        element of ``x`` receives (``gx=1`` for straight-through).
      x: a floating tensor or a nested list/tuple of them: the argument of ``f``.
      axis: the dimensions of each ``x`` leaf that form the domain of ``f``. ``()``: the
        function is elementwise (``fx.shape == x.shape``); ``None``: all of ``x``, ``fx`` is a
        scalar; ints: ``fx.shape`` is ``x.shape`` without those dimensions. A scalar ``fx``
        with a non-scalar ``x`` and ``axis=()`` is read as ``axis=None`` (TFP-style calls).
      fx_gx_manually_stopped: if True, ``fx`` and ``gx`` are used as given, so gradients
        that flow through them (e.g. to other variables) are kept; otherwise both are
        wrapped in ``stop_gradient``.
      name: optional name for the TensorFlow name scope (ignored by JAX).

    Returns:
      A tensor of ``fx``'s shape and dtype whose value is exactly ``fx``.

    Raises:
      TypeError: integer/bool inputs, or ``gx`` whose structure differs from ``x``'s.
      ValueError: shapes of ``fx``, ``gx`` and ``x`` that do not agree with ``axis``.
    """
    x_leaves = flatten(x)
    if not x_leaves:
        raise ValueError("x is empty; pass at least one tensor.")
    framework = get_framework(x_leaves, fx, gx)
    with framework.name_scope(name or "custom_gradient"):
        return with_gradient(framework, fx, gx, x, axis=axis,
                             fx_gx_manually_stopped=fx_gx_manually_stopped)


def with_gradient(framework, fx, gx, x, *, axis=(), fx_gx_manually_stopped: bool = False):
    """``custom_gradient(fx, gx, x, axis, fx_gx_manually_stopped)`` on a known framework:
    the form fxgx's own code calls, having found the framework once at its public boundary.

    Args:
        framework: the framework of the arrays (``fxgx.backends.framework.Framework``).
        fx: as for ``custom_gradient``.
        gx: as for ``custom_gradient``.
        x: as for ``custom_gradient``.
        axis: as for ``custom_gradient``.
        fx_gx_manually_stopped: as for ``custom_gradient``.

    Returns:
        A tensor of ``fx``'s shape and dtype whose value is exactly ``fx``.

    Raises:
        TypeError, ValueError: as for ``custom_gradient``.
    """
    xp = framework.xp
    x_leaves = flatten(x)
    if not x_leaves:
        raise ValueError("x is empty; pass at least one tensor.")
    for index, leaf in enumerate(x_leaves):
        if not framework.is_array(leaf):
            x_leaves[index] = leaf = _as_tensor(framework, leaf, None, "x")
        _check_floating(xp, leaf, "x" if len(x_leaves) == 1 else f"x[{index}]")

    fx = _as_tensor(framework, fx, x_leaves[0].dtype, "fx")
    _check_floating(xp, fx, "fx")

    if structure_of(gx) != structure_of(x):
        raise TypeError(
            f"gx must have the same structure as x: x is {describe(x)}, gx is {describe(gx)}."
        )
    gx_leaves = flatten(gx)

    fx_shape = shape_of(fx)
    if not fx_gx_manually_stopped:
        fx = framework.stop_gradient(fx)

    correction = None
    for index, (x_leaf, gx_leaf) in enumerate(zip(x_leaves, gx_leaves, strict=True)):
        suffix = "" if len(x_leaves) == 1 else f"[{index}]"
        gx_leaf = _as_tensor(framework, gx_leaf, x_leaf.dtype, "gx" + suffix)
        _check_floating(xp, gx_leaf, "gx" + suffix)
        if gx_leaf.dtype != x_leaf.dtype:
            raise TypeError(
                f"gx{suffix} has dtype {dtype_name(gx_leaf.dtype)} but "
                f"x{suffix} has dtype {dtype_name(x_leaf.dtype)}; they must match."
            )
        if not fx_gx_manually_stopped:
            gx_leaf = framework.stop_gradient(gx_leaf)
        term = _leaf_correction(framework, fx_shape, gx_leaf, x_leaf, axis, suffix)
        if term.dtype != fx.dtype:
            term = xp.astype(term, fx.dtype)
        correction = term if correction is None else correction + term
    # `stop(c) - c` is +0 in value whatever the sign of c's zero; fx - (+0) == fx bitwise.
    return fx - (framework.stop_gradient(correction) - correction)


def _leaf_correction(framework, fx_shape, gx, x, axis, suffix):
    """``sum(gx * (x - stop(x)), axis)`` with gx broadcast and non-finite x masked."""
    xp = framework.xp
    x_shape = shape_of(x)
    gx_shape = shape_of(gx)
    if None in fx_shape or None in x_shape:
        raise ValueError(
            f"custom_gradient needs static shapes; got fx {fx_shape}, x{suffix} {x_shape}."
        )
    rank = len(x_shape)
    if axis == () and fx_shape == () and rank > 0:
        axis = None  # TFP-style call: a scalar f of a whole tensor.
    axes = _normalize_axis(axis, rank, x_shape)
    expected_fx_shape = tuple(size for dim, size in enumerate(x_shape) if dim not in axes)
    if tuple(fx_shape) != expected_fx_shape:
        raise ValueError(
            f"fx has shape {tuple(fx_shape)}, but x{suffix} of shape {tuple(x_shape)} with "
            f"axis={axis!r} needs fx of shape {expected_fx_shape}."
        )
    if gx_shape == x_shape or gx_shape == ():
        full_gx = gx  # a scalar gx (gx=1 for straight-through) broadcasts over all of x
    elif gx_shape == expected_fx_shape:
        full_gx = gx
        for dim in axes:
            full_gx = xp.expand_dims(full_gx, axis=dim)
    else:
        raise ValueError(
            f"gx{suffix} has shape {gx_shape}; it must have x{suffix}'s shape "
            f"{tuple(x_shape)}, fx's shape {expected_fx_shape} (axis={axis!r}), or be a scalar."
        )
    finite = xp.isfinite(x)
    zeros = xp.zeros_like(x)
    difference = xp.where(finite, x - framework.stop_gradient(x), zeros)
    product = xp.where(finite, full_gx, zeros) * difference
    return xp.sum(product, axis=axes) if axes else product
