"""The latent variables of a surrogate posterior, split by how their gradient is estimated.

A surrogate posterior ``q(z)`` is one of

- one distribution: an fxgx ``Bernoulli``, ``OneHotCategorical`` or ``Normal``, or a
  TensorFlow Probability distribution (``Bernoulli``, ``OneHotCategorical``, ``Normal`` and
  ``Independent`` of them are converted to fxgx's; any other is used through its own
  ``sample``/``log_prob``);
- a list, tuple or dict of such distributions: independent parts;
- on TensorFlow, a ``tfd.JointDistributionSequential`` or ``tfd.JointDistributionNamed``.

Each part is either *estimated* (Bernoulli, one-hot categorical, or any distribution whose
samples are not reparameterised, e.g. ``tfd.Poisson``): its samples come from the gradient
estimator; or *reparameterised* (``Normal``, or a TFP distribution with
``FULLY_REPARAMETERIZED`` samples): its samples are differentiable functions of its
parameters. Estimated parts must not depend on other parts. Several estimated parts are
merged into one distribution for the estimator: all Bernoulli (flattened and concatenated,
``event_ndims=1``), or all one-hot categorical with the same number of classes.

The target log-density is called the way ``tfp.vi`` calls it: ``target(z)`` for one
distribution, ``target(*parts)`` for a list/tuple (and ``JointDistributionSequential``),
``target(**parts)`` for a dict (and ``JointDistributionNamed``). Every part carries a leading
sample axis; the target returns ``[num_samples] + batch_shape``. Discrete samples are
floating point (0/1, or one-hot).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fxgx.core.arrays import shape_of
from fxgx.core.seeds import split_seed
from fxgx.distributions import (
    Bernoulli,
    Distribution,
    Normal,
    OneHotCategorical,
    distribution_batch_shape,
    framework_of_distribution,
)

ESTIMATED_KINDS = ("bernoulli", "categorical")


def _tensorflow_probability():
    from fxgx.vi import latents_tensorflow_probability  # noqa: PLC0415 - lazy TFP

    return latents_tensorflow_probability


def _is_tensorflow_probability(value) -> bool:
    """A TensorFlow Probability object on TensorFlow (its JAX substrate is a generic one)."""
    module = type(value).__module__ or ""
    return module.startswith("tensorflow_probability") and not module.startswith(
        "tensorflow_probability.substrates")


def _declares_reparameterized(distribution) -> bool:
    """Whether a generic distribution object says its samples are reparameterised (TFP's
    JAX substrate: ``reparameterization_type`` named ``FULLY_REPARAMETERIZED``)."""
    kind = getattr(distribution, "reparameterization_type", None)
    return kind is not None and "FULLY_REPARAMETERIZED" in str(kind)


@dataclasses.dataclass
class Part:
    """One independent part of the surrogate."""

    key: Any  # the dict key or list index of the part; None for a single distribution
    distribution: Any  # fxgx Distribution, or a TFP distribution used as is
    reparameterized: bool

    @property
    def kind(self) -> str:
        return getattr(self.distribution, "kind", "generic")

    @property
    def batch_shape(self) -> tuple:
        shape = distribution_batch_shape(self.distribution)
        if shape is None:
            raise TypeError(
                f"{self.describe()} has no batch_shape; fxgx.vi needs it to check the target's "
                "output shape: give the distribution a batch_shape attribute (a tuple)."
            )
        return shape

    def describe(self) -> str:
        where = "" if self.key is None else f"part {self.key!r} ("
        name = type(self.distribution).__name__
        return f"{where}{name})" if where else name


def _make_part(key, distribution, argument):
    if isinstance(distribution, Distribution):
        return Part(key, distribution, distribution.kind == "normal")
    if _is_tensorflow_probability(distribution):
        adapter = _tensorflow_probability()
        if not adapter.is_distribution(distribution):
            raise TypeError(f"{argument} is a {type(distribution).__name__}, not a distribution.")
        from fxgx.distributions import as_fxgx_distribution  # noqa: PLC0415

        converted = as_fxgx_distribution(distribution, argument=argument)
        if isinstance(converted, Distribution):
            return Part(key, converted, converted.kind == "normal")
        return Part(key, distribution, adapter.is_reparameterized(distribution))
    if callable(getattr(distribution, "sample", None)) and callable(
            getattr(distribution, "log_prob", None)):
        # Any other distribution object (distrax, TFP's JAX substrate, a user's class):
        # drawn by a score-function estimator unless it declares reparameterised samples.
        return Part(key, distribution, _declares_reparameterized(distribution))
    raise TypeError(
        f"{argument} is a {type(distribution).__name__}; the surrogate posterior must be an "
        "fxgx distribution (fxgx.distributions.Bernoulli, OneHotCategorical, Normal), a "
        "TensorFlow Probability distribution, any object with sample(sample_shape=, seed=) "
        "and log_prob, a list/tuple/dict of them, or a tfd.JointDistributionSequential/"
        "Named/Coroutine."
    )


class Latents:
    """A surrogate posterior split into estimated and reparameterised parts.

    Attributes:
      framework: the framework of the surrogate's parameters.
      estimated: the distribution handed to the gradient estimator (estimated parts merged),
        or ``None`` when every part is reparameterised.
      batch_shape: the surrogate's batch shape (that of every value it returns).
    """

    def __init__(self, surrogate_posterior, argument: str = "surrogate_posterior", *,
                 seed=None):
        self.joint = None
        if _is_tensorflow_probability(surrogate_posterior) and (
            _tensorflow_probability().is_joint_distribution(surrogate_posterior)
        ):
            self.joint = _tensorflow_probability().JointLatents(surrogate_posterior)
            self.container = self.joint.container
            self.keys = list(self.joint.keys)
            roots = self.joint.roots
            parts = [_make_part(key, roots[key], f"{argument}[{key!r}]") for key in roots]
            # Reparameterised roots are drawn by the joint distribution with the rest.
            self.estimated_parts = [part for part in parts if not part.reparameterized]
            self.reparameterized_parts = []
            shape_source = parts
        else:
            if isinstance(surrogate_posterior, dict):
                self.container = dict
                items = list(surrogate_posterior.items())
            elif isinstance(surrogate_posterior, (list, tuple)):
                self.container = type(surrogate_posterior)
                items = list(enumerate(surrogate_posterior))
            else:
                self.container = None
                items = [(None, surrogate_posterior)]
            if not items:
                raise ValueError(f"{argument} is empty; give at least one distribution.")
            parts = [
                _make_part(key, value, argument if key is None else f"{argument}[{key!r}]")
                for key, value in items
            ]
            self.keys = [part.key for part in parts]
            self.estimated_parts = [part for part in parts if not part.reparameterized]
            self.reparameterized_parts = [part for part in parts if part.reparameterized]
            shape_source = parts
        self.framework = self._find_framework(shape_source, seed)
        self.estimated: Any = self._merge(self.estimated_parts)
        self.batch_shape = self._batch_shape(shape_source)

    # ----------------------------------------------------------------- construction

    @staticmethod
    def _find_framework(parts, seed):
        """One framework for every part, told from each part's arrays (``seed`` decides for
        parts that hold none); ``TypeError`` when parts of two frameworks are mixed."""
        frameworks = {}
        for part in parts:
            framework = framework_of_distribution(part.distribution, seed=seed,
                                                  argument=part.describe())
            frameworks.setdefault(framework.name, (framework, part))
        if len(frameworks) > 1:
            listing = ", ".join(f"{part.describe()}: {name}"
                                for name, (_, part) in frameworks.items())
            raise TypeError(f"The surrogate mixes frameworks ({listing}); use one framework.")
        return next(iter(frameworks.values()))[0]
    def _batch_shape(self, parts):
        shapes = {part.batch_shape for part in parts}
        if len(shapes) > 1:
            listing = ", ".join(f"{part.describe()}: {part.batch_shape}" for part in parts)
            raise ValueError(
                f"The surrogate's parts have different batch shapes ({listing}); give every "
                "part the same batch shape (put per-part dimensions in the event with "
                "event_ndims / tfd.Independent)."
            )
        return next(iter(shapes))

    def _merge(self, parts):
        framework = self.framework
        xp = framework.xp
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0].distribution
        kinds = {part.kind for part in parts}
        if len(kinds) != 1 or next(iter(kinds)) not in ESTIMATED_KINDS:
            listing = ", ".join(part.describe() for part in parts)
            raise TypeError(
                f"The surrogate has several discrete parts ({listing}); fxgx.vi merges them "
                "for the estimator only when all are Bernoulli, or all one-hot categorical "
                "with the same number of classes. Use one part, or a single estimated part."
            )
        batch = parts[0].batch_shape
        for part in parts:
            if part.batch_shape != batch:
                raise ValueError(
                    f"Discrete parts must share a batch shape: {part.describe()} has "
                    f"{part.batch_shape}, {parts[0].describe()} has {batch}."
                )
        kind = parts[0].kind
        flat, self._sizes = [], []
        for part in parts:
            distribution = part.distribution
            event = tuple(distribution.event_shape)
            if kind == "categorical":
                event = event[:-1]
                classes = distribution.num_classes
                if classes != parts[0].distribution.num_classes:
                    raise TypeError(
                        "Categorical parts of the surrogate have different numbers of classes "
                        f"({classes} and {parts[0].distribution.num_classes}); fxgx.vi merges "
                        "categorical parts only when they agree."
                    )
                shape = batch + (math.prod(event), classes)
            else:
                shape = batch + (math.prod(event),)
            flat.append(xp.reshape(distribution.logits, shape))
            self._sizes.append((part.key, event, math.prod(event)))
        if kind == "categorical":
            return OneHotCategorical(xp.concat(flat, axis=-2), event_ndims=1)
        return Bernoulli(xp.concat(flat, axis=-1), event_ndims=1)

    # ---------------------------------------------------------------------- queries

    @property
    def has_estimated(self) -> bool:
        return self.estimated is not None

    @property
    def estimated_kind(self) -> str:
        return getattr(self.estimated, "kind", "generic")

    def describe_estimated(self) -> str:
        return ", ".join(part.describe() for part in self.estimated_parts)

    @property
    def dtype(self):
        if isinstance(self.estimated, Distribution):
            return self.estimated.dtype
        for part in self.reparameterized_parts:
            if isinstance(part.distribution, Distribution):
                return part.distribution.dtype
        return None

    # ------------------------------------------------------------- estimated parts

    def split(self, samples) -> dict:
        """Samples of the merged estimated distribution -> ``{key: samples of that part}``."""
        framework = self.framework
        xp = framework.xp
        if len(self.estimated_parts) == 1:
            return {self.estimated_parts[0].key: samples}
        leading = tuple(shape_of(samples)[: 1 + len(self.batch_shape)])
        categorical = self.estimated_kind == "categorical"
        values, start = {}, 0
        for key, event, size in self._sizes:
            if categorical:
                piece = samples[..., start:start + size, :]
                shape = leading + event + (shape_of(samples)[-1],)
            else:
                piece = samples[..., start:start + size]
                shape = leading + event
            values[key] = xp.reshape(piece, shape)
            start += size
        return values

    def estimated_log_prob(self, samples, *, stop_parameters: bool):
        """``log q(z_estimated)``, shape ``[n] + batch_shape``; with ``stop_parameters`` its
        gradient w.r.t. the surrogate's parameters is cut (its gradient w.r.t. ``samples``,
        which pathwise estimators use, is kept)."""
        distribution = self.estimated
        if not stop_parameters:
            return distribution.log_prob(samples)
        if isinstance(distribution, (Bernoulli, OneHotCategorical)):
            stopped = type(distribution)(
                self.framework.stop_gradient(distribution.logits),
                event_ndims=distribution.event_ndims,
            )
            return stopped.log_prob(samples)
        # Other distributions are drawn by score-function estimators, whose samples are
        # stopped: log q with no gradient at all has the stopped-parameter gradient there.
        return self.framework.stop_gradient(distribution.log_prob(samples))

    @property
    def has_closed_form_entropy(self) -> bool:
        return isinstance(self.estimated, (Bernoulli, OneHotCategorical))

    def estimated_entropy(self):
        """The exact entropy of the estimated parts, shape ``batch_shape`` (differentiable):

        Bernoulli: ``sum_d p_d softplus(-l_d) + (1 - p_d) softplus(l_d)``;
        categorical: ``-sum_k softmax(l)_k log_softmax(l)_k`` summed over variables.
        """
        framework = self.framework
        xp = framework.xp
        distribution = self.estimated
        logits = distribution.logits
        if isinstance(distribution, Bernoulli):
            probabilities = framework.sigmoid(logits)
            per_element = (probabilities * framework.softplus(-logits)
                           + (1 - probabilities) * framework.softplus(logits))
        else:
            per_element = -xp.sum(framework.softmax(logits) * framework.log_softmax(logits),
                                  axis=-1)
        return distribution._sum_event(per_element)

    # ------------------------------------------------------- reparameterised parts

    def sample_reparameterized(self, estimated_values: dict, count: int, seed):
        """Draw the reparameterised parts (``count`` samples each) given the estimated parts'
        values. Returns ``(values, log_prob)``: ``{key: samples}`` and the sum of their log
        densities (``[count] + batch_shape``, or ``None`` when there are none), both
        differentiable w.r.t. the surrogate's parameters."""
        if self.joint is not None:
            return self.joint.sample_given(estimated_values, count, seed)
        if not self.reparameterized_parts:
            return {}, None
        names = tuple(f"part_{index}" for index in range(len(self.reparameterized_parts)))
        seeds = split_seed(seed, names, self.framework)
        values, log_prob = {}, None
        for name, part in zip(names, self.reparameterized_parts, strict=True):
            distribution = part.distribution
            if isinstance(distribution, Normal):
                draw = distribution.sample((count,), seeds[name])
            elif _is_tensorflow_probability(distribution):
                draw = _tensorflow_probability().sample(distribution, count, seeds[name])
            else:
                draw = distribution.sample(sample_shape=(count,), seed=seeds[name])
            values[part.key] = draw
            term = distribution.log_prob(draw)
            log_prob = term if log_prob is None else log_prob + term
        return values, log_prob

    # --------------------------------------------------------------------- target

    def call_target(self, target_log_prob_fn, values: dict, count: int):
        """``target(values)`` in the surrogate's layout, checked to be ``[count] + batch``."""
        framework = self.framework
        xp = framework.xp
        keywords: dict[Any, Any]
        if self.container is None:
            arguments, keywords = (values[None],), {}
        elif self.container is dict:
            arguments, keywords = (), {key: values[key] for key in self.keys}
        else:
            arguments, keywords = tuple(values[key] for key in self.keys), {}
        shapes = {key: tuple(shape_of(value)) for key, value in values.items()}
        described = shapes[None] if self.container is None else shapes
        try:
            result = target_log_prob_fn(*arguments, **keywords)
        except Exception as error:
            if not _is_shape_error(error):
                raise
            raise ValueError(
                f"target_log_prob_fn failed on latent samples of shape {described} "
                f"([num_samples] + the surrogate's batch shape {self.batch_shape} + its event "
                f"shape): the model and the surrogate posterior disagree on the latent "
                f"shapes. The model's error: {error}"
            ) from error
        if not framework.is_array(result):
            result = xp.asarray(result)
        expected = (count,) + tuple(self.batch_shape)
        actual = tuple(shape_of(result))
        if actual != expected:
            raise ValueError(
                f"target_log_prob_fn returned shape {actual} for latent samples of shape "
                f"{described}, but the surrogate posterior (batch shape {self.batch_shape}) "
                f"needs one log-density per sample and batch member, shape {expected}: sum "
                "over the latent (event) dimensions, and give the model and the surrogate the "
                "same batch shape."
            )
        dtype = self.dtype
        if dtype is not None and result.dtype != dtype:
            result = xp.astype(result, dtype)
        return result


def _is_shape_error(error) -> bool:
    """Errors a framework raises for incompatible shapes (broadcasting, matmul)."""
    if type(error).__name__ == "InvalidArgumentError":
        return True
    return isinstance(error, (ValueError, TypeError)) and any(
        word in str(error).lower() for word in ("shape", "broadcast", "dimension")
    )
