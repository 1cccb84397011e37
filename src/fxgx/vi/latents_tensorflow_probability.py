"""TensorFlow Probability surrogates for ``fxgx.vi``: reparameterisation checks and joint
distributions split into parts.

``fxgx.vi`` never imports TensorFlow Probability itself; it asks this module about any
distribution whose class comes from ``tensorflow_probability``.

Joint distributions: ``JointDistributionSequential``, ``JointDistributionNamed`` and
``JointDistributionCoroutine`` (not the auto-batched variants). In the first two a part given
as a distribution instance is a *root* and a part given as a callable depends on earlier
parts; in a coroutine the roots are the parts it yields wrapped in
``JointDistributionCoroutine.Root``. Discrete (not reparameterised) parts
must be roots: they are drawn by the gradient estimator, and the remaining parts are drawn
by the joint distribution itself, given those values (``sample_distributions(value=...)``),
with TFP's reparameterised samplers.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

SUPPORTED_JOINTS = (
    tfd.JointDistributionSequential,
    tfd.JointDistributionNamed,
    tfd.JointDistributionCoroutine,
)


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


def coroutine_roots(joint) -> tuple[dict, int]:
    """``({index: distribution}, number of parts)`` of a ``JointDistributionCoroutine``: the
    parts its model yields wrapped in ``Root``. The model is run once through TFP's own
    coroutine protocol, each part drawn with a fixed stateless seed only to move on (inside
    ``tf.function`` these draws are unused and pruned)."""
    roots = {}
    generator = joint._model_coroutine()  # the protocol TFP's joint distributions run on
    index = 0
    try:
        yielded = next(generator)
        while True:
            is_root = isinstance(yielded, tfd.JointDistributionCoroutine.Root)
            distribution = yielded.distribution if is_root else yielded
            if is_root:
                roots[index] = distribution
            value = distribution.sample(seed=tf.constant([0, index], tf.int32))
            index += 1
            yielded = generator.send(value)
    except StopIteration:
        pass
    return roots, index


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
                "tfd.JointDistributionSequential, tfd.JointDistributionNamed and "
                "tfd.JointDistributionCoroutine (not the auto-batched variants)."
            )
        self.joint = joint
        if isinstance(joint, tfd.JointDistributionCoroutine):
            self.roots, count = coroutine_roots(joint)
            if not self.roots:
                raise TypeError(
                    "The JointDistributionCoroutine surrogate marks no part as a root: wrap "
                    "the parts that depend on no other part (every discrete part among them) "
                    "in tfd.JointDistributionCoroutine.Root(...), as TFP needs for drawing "
                    "several samples at once."
                )
            self.keys = list(range(count))
            self.container = list
            return
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
