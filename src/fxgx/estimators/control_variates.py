"""Control-variate algebra that several estimators share: leave-one-out sums and means,
the covariance of a discrete sample, and the shape check of a user's control variate.

A baseline built from the *other* samples is independent of sample ``s``, so it adds no
bias to ``(f(z_s) - b_s) grad log q(z_s)``; these functions compute such baselines.
"""

from __future__ import annotations

from fxgx.core.arrays import exclusive_cumulative_sum, shape_of


def leave_one_out_mean(xp, values, num_samples):
    """The leave-one-out mean ``b_s = (sum_j values_j - values_s) / (S - 1)`` along axis 0.

    Args:
        xp: the namespace of ``values``.
        values: ``[S] + batch_shape`` values.
        num_samples: ``S`` (at least 2).

    Returns:
        ``b``, of the shape of ``values``.
    """
    total = xp.sum(values, axis=0, keepdims=True)
    return (total - values) / (num_samples - 1)


def leave_one_out_sum(xp, values):
    """``sum_{j != s} values_j`` along axis 0 as ``sum_{j < s} + sum_{j > s}``: computed from
    the other samples only (exactly independent of sample ``s``), in O(S) memory.

    Args:
        xp: the namespace of ``values``.
        values: ``[S] + batch_shape`` values.

    Returns:
        The sums, of the shape of ``values``.
    """
    before = exclusive_cumulative_sum(xp, values, axis=0)
    after = exclusive_cumulative_sum(xp, values, axis=0, reverse=True)
    return before + after


def covariance_times(xp, distribution, mean, vector):
    """``Cov_q(z) v`` for one sample ``z``, equal to ``grad_logits (v . mu)``.

    Args:
        xp: the namespace of the arrays.
        distribution: a Bernoulli or one-hot categorical distribution.
        mean: ``mu``, of the logits' shape.
        vector: ``v``, of the logits' shape.

    Returns:
        ``mu (1 - mu) v`` per Bernoulli logit, ``mu (v - sum_c mu_c v_c)`` per categorical
        variable.
    """
    if distribution.kind == "bernoulli":
        return mean * (1.0 - mean) * vector
    return mean * (vector - xp.sum(mean * vector, axis=-1, keepdims=True))


def check_control_values(values, num_samples, batch_shape, argument):
    """A control variate's values, checked to have shape ``[S] + batch_shape``.

    Args:
        values: what the control variate returned.
        num_samples: ``S``.
        batch_shape: the distribution's batch shape.
        argument: the name the error gives the control variate.

    Returns:
        ``values``.

    Raises:
        ValueError: another shape.
    """
    expected = (num_samples,) + tuple(batch_shape)
    if shape_of(values) != expected:
        raise ValueError(
            f"{argument} returned shape {shape_of(values)}; it must return one "
            f"value per sample and batch member, shape {expected}."
        )
    return values


def control_values(framework, values, num_samples, batch_shape, dtype, argument):
    """What a user's control variate returned, as an array of ``dtype`` of shape
    ``[S] + batch_shape``.

    Args:
        framework: the framework.
        values: the returned values (an array or anything ``xp.asarray`` takes).
        num_samples: ``S``.
        batch_shape: the distribution's batch shape.
        dtype: the logits' dtype.
        argument: the name the error gives the control variate.

    Returns:
        The checked array.

    Raises:
        ValueError: another shape.
    """
    xp = framework.xp
    if not framework.is_array(values):
        values = xp.asarray(values, dtype=dtype)
    values = check_control_values(values, num_samples, batch_shape, argument)
    return values if values.dtype == dtype else xp.astype(values, dtype)


def check_control_variate_parameters(estimator, factory: str):
    """Raise unless ``control_variate_parameters`` come with a ``control_variate``.

    Args:
        estimator: a RELAX or RODEO estimator.
        factory: its factory's name, for the message.

    Raises:
        ValueError: parameters without a control variate to hand them to.
    """
    if estimator.control_variate is None and estimator.control_variate_parameters is not None:
        raise ValueError(
            f"control_variate_parameters were given but this {estimator.name.upper()} "
            f"estimator has no control_variate; make it with {factory}(control_variate=...)."
        )
