"""TensorFlow Probability surrogates for ``fxgx.vi``: reparameterisation checks, copies
with stopped parameters, and joint distributions split into parts.

``fxgx.vi`` never imports TensorFlow Probability itself; it asks this module about any
distribution whose class comes from ``tensorflow_probability``.

Joint distributions: ``JointDistributionSequential`` and ``JointDistributionNamed`` (not the
auto-batched or coroutine variants). A part given as a distribution instance is a *root*;
a part given as a callable depends on earlier parts. Discrete (not reparameterised) parts
must be roots: they are drawn by the gradient estimator, and the remaining parts are drawn
by the joint distribution itself, given those values (``sample_distributions(value=...)``),
with TFP's reparameterised samplers.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

SUPPORTED_JOINTS = (tfd.JointDistributionSequential, tfd.JointDistributionNamed)


def is_joint_distribution(value) -> bool:
    return isinstance(value, tfd.JointDistribution)


def is_reparameterized(distribution) -> bool:
    """Whether ``distribution``'s samples are differentiable w.r.t. its parameters."""
    return distribution.reparameterization_type == tfd.FULLY_REPARAMETERIZED


def is_distribution(value) -> bool:
    return isinstance(value, tfd.Distribution)


def batch_shape(distribution) -> tuple:
    return tuple(distribution.batch_shape.as_list())


def sample(distribution, count: int, seed):
    """``count`` samples (a leading axis), reparameterised where TFP can, from an int64 seed."""
    return distribution.sample(count, seed=tf.cast(seed, tf.int32))


def stopped_copy(distribution):
    """A copy of ``distribution`` whose tensor parameters are gradient-stopped."""
    parameters = {}
    for key, value in distribution.parameters.items():
        if isinstance(value, tfd.Distribution):
            parameters[key] = stopped_copy(value)
        elif isinstance(value, (tf.Tensor, tf.Variable)):
            parameters[key] = tf.stop_gradient(value)
        else:
            parameters[key] = value
    return distribution.copy(**parameters)


class JointLatents:
    """A TFP joint distribution viewed as root parts plus a conditional sampler.

    ``keys``: part names (JointDistributionNamed) or indices (Sequential), in model order.
    ``roots``: key -> distribution instance for the parts that depend on nothing.
    ``container``: ``list`` or ``dict``, how the target log-density takes the parts.
    """

    def __init__(self, joint):
        if not isinstance(joint, SUPPORTED_JOINTS) or "AutoBatched" in type(joint).__name__:
            raise TypeError(
                f"surrogate_posterior is a {type(joint).__name__}; fxgx.vi supports "
                "tfd.JointDistributionSequential and tfd.JointDistributionNamed."
            )
        self.joint = joint
        model = joint.model
        if isinstance(joint, tfd.JointDistributionNamed):
            self.keys = list(model.keys())
            self.container = dict
            entries = dict(model)
        else:
            self.keys = list(range(len(model)))
            self.container = list
            entries = dict(enumerate(model))
        self.roots = {key: entry for key, entry in entries.items() if is_distribution(entry)}

    def sample_given(self, pinned: dict, count: int, seed):
        """Draw the parts not in ``pinned`` given the pinned ones (each with a leading axis
        of size ``count``). Returns ``(values, log_prob)``: the new parts' values and the sum
        of their log densities, shape ``[count] + batch_shape``; both differentiable (the
        draws are reparameterised)."""
        if self.container is dict:
            value = {key: pinned.get(key) for key in self.keys}
        else:
            value = [pinned.get(key) for key in self.keys]
        distributions, samples = self.joint.sample_distributions(
            sample_shape=(count,), seed=tf.cast(seed, tf.int32), value=value
        )
        values, log_prob = {}, None
        for key in self.keys:
            if key in pinned:
                continue
            distribution = distributions[key]
            if not is_reparameterized(distribution):
                raise TypeError(
                    f"Part {key!r} of the joint surrogate is a {type(distribution).__name__} "
                    "that is not reparameterised and depends on other parts; fxgx.vi needs "
                    "every discrete part to be a root (a distribution, not a callable) of "
                    "the joint distribution."
                )
            values[key] = samples[key]
            term = distribution.log_prob(samples[key])
            log_prob = term if log_prob is None else log_prob + term
        return values, log_prob
