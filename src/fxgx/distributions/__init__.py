"""Minimal distributions that fxgx's estimators understand, on every framework.

The logit-based estimators (straight-through, Gumbel, ARM/DisARM, REBAR/RELAX) need the
logits and the event layout of a Bernoulli or one-hot categorical latent. These classes
carry exactly that, sample with the framework's stateless threefry draws, and score with
``log_prob``; they are written once in the array API standard, on ``framework.xp``.
TensorFlow Probability distributions (``Bernoulli``, ``OneHotCategorical``, ``Normal`` and
``Independent`` of them) are converted by ``as_fxgx_distribution``.

Shapes: parameters have shape ``batch_shape + event_shape`` (plus ``[K]`` classes for the
categorical). ``event_ndims`` rightmost dimensions form one latent configuration, so
``log_prob(z)`` and an estimator's ``f(z)`` return ``sample_shape + batch_shape``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from fxgx.backends import find_framework, framework_by_name, get_framework
from fxgx.core.arrays import dtype_name, shape_of, sum_trailing
from fxgx.core.random import gumbel_noise, open_uniform
from fxgx.core.seeds import canonical_seed
from fxgx.distributions.sampling import bits_below, gumbel_max

if TYPE_CHECKING:
    from fxgx.backends.framework import Framework


def _check_flag(value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"validate_args must be True or False, got {value!r}.")
    return value


def _check_event_ndims(event_ndims, rank, argument_shape, name):
    if not isinstance(event_ndims, int) or isinstance(event_ndims, bool) or event_ndims < 0:
        raise ValueError(f"event_ndims={event_ndims!r} must be a non-negative int.")
    if event_ndims > rank:
        raise ValueError(
            f"event_ndims={event_ndims} exceeds the rank of {name} of shape {argument_shape}."
        )


class Distribution:
    """Base: a framework, a batch shape, an event shape; subclasses sample and score.

    ``validate_args=True`` (TensorFlow Probability's name) checks that every parameter is
    finite: at once when its values are known (eagerly), else when the computation runs
    (inside ``tf.function`` or ``jax.jit``), raising an error that names the parameter.
    Under ``tf.function(jit_compile=True)`` TensorFlow cannot raise from compiled code and
    the check is skipped; non-finite parameters still give NaN results there (see
    ``fxgx.estimators.base.propagate_non_finite``).
    """

    kind = "generic"
    validate_args = False
    #: The framework of the distribution's arrays (set by each subclass's constructor).
    framework: Framework
    #: How many trailing dimensions of a sample form one event.
    event_ndims: int

    def sample(self, sample_shape, seed):
        """``sample_shape + batch_shape + event_shape`` draws from a stateless ``seed``.

        Args:
            sample_shape: the leading shape of the draws, e.g. ``(num_samples,)``.
            seed: an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key; the same seed
                gives the same draws.

        Returns:
            The draws, shape ``sample_shape + batch_shape + event_shape``, in the
                parameters' dtype.

        Raises:
            NotImplementedError: always here; each subclass samples.
        """
        raise NotImplementedError

    def log_prob(self, value):
        """``log q(value)`` summed over the event dimensions (shape ``[...] + batch_shape``).

        Args:
            value: samples of this distribution, shape ``[...] + batch_shape +
                event_shape``.

        Returns:
            ``log q(value)``, shape ``[...] + batch_shape``.

        Raises:
            NotImplementedError: always here; each subclass scores.
        """
        raise NotImplementedError

    @property
    def batch_shape(self) -> tuple:
        """The shape of independent batch members, a tuple."""
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple:
        """The shape of one latent configuration, a tuple."""
        raise NotImplementedError

    @property
    def dtype(self):
        """The floating dtype of the parameters and the samples."""
        raise NotImplementedError

    def _sum_event(self, values):
        return sum_trailing(self.framework.xp, values, self.event_ndims)

    def parameter_arrays(self) -> list:
        """Each parameter and how many of its trailing axes belong to one latent configuration.

        Returns:
            A list of ``(name, array, event_rank)``: the event axes, plus the class
                axis of a categorical.
        """
        raise NotImplementedError

    def _validated(self, value, name: str):
        if not self.validate_args:
            return value
        return check_finite(self.framework, value, f"{type(self).__name__} {name}")


def check_finite(framework, value, argument: str):
    """Check that ``value`` is finite: at once when its values are known, else when the
    computation runs (``framework.assert_finite``).

    Args:
        framework: the framework of ``value``.
        value: a tensor or array.
        argument: the name the error message gives ``value``.

    Returns:
        ``value`` (on TensorFlow graphs and under ``jax.jit``, with the check attached).

    Raises:
        ValueError: ``value`` is known now and has a NaN or an infinity.
    """
    message = (f"{argument} has non-finite values (NaN or infinity); a distribution with "
               "non-finite parameters has no samples and no gradient. Check what produced "
               "them (a learning rate that is too high, log(0), a division by 0).")
    known = framework.concrete_value(value)
    if known is None:
        return framework.assert_finite(value, message)
    if not np.all(np.isfinite(known)):
        where = np.argwhere(~np.isfinite(known))[:3].tolist()
        raise ValueError(f"{message} First non-finite entries at {where}.")
    return value


class _LogitDistribution(Distribution):
    """A distribution parameterised by floating ``logits`` on one framework."""

    def _set_logits(self, logits, validate_args) -> tuple:
        self.framework = get_framework(logits)
        self.validate_args = _check_flag(validate_args)
        xp = self.framework.xp
        logits = logits if self.framework.is_array(logits) else xp.asarray(logits)
        if not xp.isdtype(logits.dtype, "real floating"):
            raise TypeError("logits must be a floating tensor.")
        self.logits = self._validated(logits, "logits")
        self.fxgx_framework_name = self.framework.name
        return shape_of(self.logits)

    @property
    def dtype(self):
        """The logits' floating dtype."""
        return self.logits.dtype


class Bernoulli(_LogitDistribution):
    """Independent Bernoulli variables ``b = 1[u < sigmoid(logits)]``; float samples.

    Args:
        logits: a floating ``tf.Tensor``/``tf.Variable`` or ``jax.Array`` of shape
            ``batch_shape + event_shape``; ``sigmoid(logits)`` is the probability of 1.
        event_ndims: how many rightmost axes form one latent configuration (summed over by
            ``log_prob``).
        validate_args: check that the logits are finite (see ``Distribution``).

    Raises:
        TypeError: the logits are not floating point.
        ValueError: ``event_ndims`` is negative or exceeds the logits' rank.
    """

    kind = "bernoulli"

    def __init__(self, logits, event_ndims: int = 0, *, validate_args: bool = False):
        shape = self._set_logits(logits, validate_args)
        _check_event_ndims(event_ndims, len(shape), shape, "logits")
        self.event_ndims = event_ndims

    def parameter_arrays(self) -> list:
        """Each parameter and how many of its trailing axes belong to one latent configuration.

        Returns:
            A list of ``(name, array, event_rank)``: the event axes.
        """
        return [("logits", self.logits, self.event_ndims)]

    @property
    def batch_shape(self) -> tuple:
        """The logits' shape without the ``event_ndims`` rightmost axes."""
        shape = shape_of(self.logits)
        return shape[: len(shape) - self.event_ndims]

    @property
    def event_shape(self) -> tuple:
        """The ``event_ndims`` rightmost axes of the logits' shape."""
        shape = shape_of(self.logits)
        return shape[len(shape) - self.event_ndims :]

    @property
    def probs(self):
        """``sigmoid(logits)``, the probability of 1."""
        return self.framework.sigmoid(self.logits)

    def sample(self, sample_shape, seed):
        """Draw samples with the framework's stateless threefry draws.

        Args:
            sample_shape: the leading shape of the draws, e.g. ``(num_samples,)``.
            seed: an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key.

        Returns:
            0/1 floats, shape ``sample_shape + logits.shape``, in the parameters' dtype.
        """
        shape = tuple(sample_shape) + shape_of(self.logits)
        seed = canonical_seed(seed, self.framework)
        uniform = open_uniform(self.framework, shape, seed, self.dtype)
        return bits_below(self.framework.xp, uniform, self.framework.sigmoid(self.logits))

    def log_prob(self, value):
        """The log-density of ``value``, summed over the event.

        Args:
            value: 0/1 values, shape ``... + batch_shape + event_shape``.

        Returns:
            ``log q(value)``, shape ``... + batch_shape``.
        """
        framework = self.framework
        # log p(b) = b * log sigmoid(l) + (1 - b) * log sigmoid(-l), stable for large |l|.
        per_element = (value * framework.log_sigmoid(self.logits)
                       + (1 - value) * framework.log_sigmoid(-self.logits))
        return self._sum_event(per_element)


class OneHotCategorical(_LogitDistribution):
    """Independent categorical variables over the last axis (``K`` classes), one-hot samples.

    Args:
        logits: a floating tensor of shape ``batch_shape + event_shape + [K]``; the
            probabilities are ``softmax(logits)`` over the last axis.
        event_ndims: how many axes before the class axis form one latent configuration.
        validate_args: check that the logits are finite (see ``Distribution``).

    Raises:
        TypeError: the logits are not floating point.
        ValueError: the logits have no class axis, or ``event_ndims`` is out of range.
    """

    kind = "categorical"

    def __init__(self, logits, event_ndims: int = 0, *, validate_args: bool = False):
        shape = self._set_logits(logits, validate_args)
        if len(shape) == 0:
            raise ValueError("OneHotCategorical logits need a class axis (shape [..., K]).")
        _check_event_ndims(event_ndims, len(shape) - 1, shape, "logits without the class axis")
        self.event_ndims = event_ndims

    def parameter_arrays(self) -> list:
        """Each parameter and how many of its trailing axes belong to one latent configuration.

        Returns:
            A list of ``(name, array, event_rank)``: the event axes plus the class axis.
        """
        return [("logits", self.logits, self.event_ndims + 1)]

    @property
    def num_classes(self) -> int:
        """``K``, the size of the logits' last axis."""
        return shape_of(self.logits)[-1]

    @property
    def batch_shape(self) -> tuple:
        """The logits' shape without the class axis and the ``event_ndims`` axes before it."""
        shape = shape_of(self.logits)[:-1]
        return shape[: len(shape) - self.event_ndims]

    @property
    def event_shape(self) -> tuple:
        """The ``event_ndims`` axes before the class axis, and the class axis."""
        shape = shape_of(self.logits)
        return shape[len(shape) - 1 - self.event_ndims :]

    @property
    def probs(self):
        """``softmax(logits)`` over the last axis."""
        return self.framework.softmax(self.logits)

    def sample(self, sample_shape, seed):
        """Draw samples with the framework's stateless threefry draws.

        Args:
            sample_shape: the leading shape of the draws, e.g. ``(num_samples,)``.
            seed: an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key.

        Returns:
            One-hot floats (argmax of Gumbel-perturbed logits), shape ``sample_shape
                + logits.shape``, in the parameters' dtype.
        """
        shape = tuple(sample_shape) + shape_of(self.logits)
        seed = canonical_seed(seed, self.framework)
        gumbel = gumbel_noise(self.framework, shape, seed, self.dtype)
        return gumbel_max(self.framework.xp, self.logits + gumbel)

    def log_prob(self, value):
        """The log-density of ``value``, summed over the event.

        Args:
            value: one-hot values, shape ``... + batch_shape + event_shape + [K]``.

        Returns:
            ``log q(value)``, shape ``... + batch_shape``.
        """
        xp = self.framework.xp
        per_variable = xp.sum(value * self.framework.log_softmax(self.logits), axis=-1)
        return self._sum_event(per_variable)


class Normal(Distribution):
    """Independent normals ``loc + scale * eps`` (for score-function estimators and problems).

    Args:
        loc: the mean; a tensor, or a number when ``scale`` is a tensor.
        scale: the standard deviation; a tensor, or a number when ``loc`` is a tensor.
        event_ndims: how many rightmost axes form one latent configuration.
        validate_args: check that ``loc`` and ``scale`` are finite (see ``Distribution``).

    Raises:
        TypeError: neither ``loc`` nor ``scale`` is a tensor, or their dtypes differ.
        ValueError: ``event_ndims`` is negative or exceeds the parameters' rank.
    """

    kind = "normal"

    def __init__(self, loc, scale, event_ndims: int = 0, *, validate_args: bool = False):
        self.framework = framework = get_framework(loc, scale)
        self.validate_args = _check_flag(validate_args)
        xp = framework.xp
        if framework.is_array(loc):
            self.loc = loc
            self.scale = scale if framework.is_array(scale) else xp.asarray(scale, dtype=loc.dtype)
        elif framework.is_array(scale):
            self.scale = scale
            self.loc = xp.asarray(loc, dtype=scale.dtype)
        else:
            raise TypeError(
                "Normal needs loc or scale as a tensor (tf.Tensor or jax.Array) to fix the "
                "dtype; got two Python/NumPy values."
            )
        if self.loc.dtype != self.scale.dtype:
            raise TypeError(
                f"loc has dtype {dtype_name(self.loc.dtype)} but scale has "
                f"{dtype_name(self.scale.dtype)}; they must match."
            )
        self.loc = self._validated(self.loc, "loc")
        self.scale = self._validated(self.scale, "scale")
        shape = shape_of(self.loc + self.scale)
        _check_event_ndims(event_ndims, len(shape), shape, "loc")
        self.event_ndims = event_ndims
        self.fxgx_framework_name = framework.name

    def parameter_arrays(self) -> list:
        """Each parameter and how many of its trailing axes belong to one latent configuration.

        Returns:
            A list of ``(name, array, event_rank)``: the event axes.
        """
        return [("loc", self.loc, self.event_ndims), ("scale", self.scale, self.event_ndims)]

    @property
    def dtype(self):
        """The floating dtype of ``loc`` and ``scale``."""
        return self.loc.dtype

    @property
    def _shape(self):
        return shape_of(self.loc + self.scale)

    @property
    def batch_shape(self) -> tuple:
        """The broadcast shape of ``loc`` and ``scale`` without the event axes."""
        return self._shape[: len(self._shape) - self.event_ndims]

    @property
    def event_shape(self) -> tuple:
        """The ``event_ndims`` rightmost axes of the broadcast parameter shape."""
        return self._shape[len(self._shape) - self.event_ndims :]

    def sample(self, sample_shape, seed):
        """Draw samples with the framework's stateless threefry draws.

        Args:
            sample_shape: the leading shape of the draws, e.g. ``(num_samples,)``.
            seed: an int, a pair of ints, a ``tf.Tensor`` pair or a JAX key.

        Returns:
            ``loc + scale * eps``, shape ``sample_shape + batch_shape +
                event_shape``, in the parameters' dtype.
        """
        seed = canonical_seed(seed, self.framework)
        noise = self.framework.normal(tuple(sample_shape) + self._shape, seed, self.dtype)
        return self.loc + self.scale * noise

    def log_prob(self, value):
        """The log-density of ``value``, summed over the event.

        Args:
            value: real values, shape ``... + batch_shape + event_shape``.

        Returns:
            ``log q(value)``, shape ``... + batch_shape``.
        """
        xp = self.framework.xp
        standardized = (value - self.loc) / self.scale
        log_normalizer = 0.5 * xp.log(2 * xp.asarray(3.141592653589793, dtype=self.dtype))
        return self._sum_event(-0.5 * standardized**2 - xp.log(self.scale) - log_normalizer)


def as_fxgx_distribution(distribution, *, argument: str = "distribution"):
    """An fxgx distribution for ``distribution`` (fxgx's own, or a converted TFP one).

    TFP ``Bernoulli``, ``OneHotCategorical``, ``Normal`` and ``Independent`` of them are
    converted; the caller decides whether any other object is acceptable.

    Args:
        distribution: an fxgx distribution, a TFP distribution, or any object with
            ``sample`` and ``log_prob``.
        argument: the name the error message gives ``distribution``.

    Returns:
        The fxgx distribution; the input unchanged when it is a TFP distribution that fxgx
        does not convert or another object with ``sample``/``log_prob``.

    Raises:
        TypeError: ``distribution`` has no ``sample``/``log_prob``.
    """
    if isinstance(distribution, Distribution):
        return distribution
    module = type(distribution).__module__ or ""
    if module.startswith("tensorflow_probability"):
        from fxgx.distributions import tensorflow_probability  # noqa: PLC0415 - lazy TFP

        converted = tensorflow_probability.convert(distribution)
        return distribution if converted is None else converted
    if hasattr(distribution, "sample") and hasattr(distribution, "log_prob"):
        return distribution
    raise TypeError(
        f"{argument} must be an fxgx distribution (fxgx.distributions.Bernoulli, "
        "OneHotCategorical, Normal) or a TensorFlow Probability distribution; got "
        f"{type(distribution).__name__}."
    )


def framework_of_distribution(distribution, *, seed=None, argument: str = "distribution"):
    """The framework of ``distribution``, told from its arrays, never assumed.

    fxgx distributions carry their framework. TensorFlow Probability's distributions belong
    to TensorFlow (its JAX substrate, ``tensorflow_probability.substrates.jax``, to JAX). Any
    other object with ``sample``/``log_prob`` is looked into: the arrays among its
    ``parameters`` (TFP, distrax) and its attributes name the framework. Failing that, a
    framework seed (a JAX key, a ``tf.Tensor``) decides.

    Args:
        distribution: an fxgx or TFP distribution, or any object with ``sample``/``log_prob``.
        seed: a framework seed that decides when the distribution's arrays do not.
        argument: the name the error message gives ``distribution``.

    Returns:
        The framework module (``fxgx.backends.tensorflow_backend`` or ``jax_backend``).

    Raises:
        TypeError: neither the distribution nor the seed tells the framework (fxgx does not
            guess).
    """
    if isinstance(distribution, Distribution):
        return distribution.framework
    module = type(distribution).__module__ or ""
    if module.startswith("tensorflow_probability.substrates.jax"):
        return framework_by_name("jax")
    if module.startswith("tensorflow_probability"):
        return framework_by_name("tensorflow")
    framework = find_framework(*_array_attributes(distribution))
    if framework is None and seed is not None:
        framework = find_framework(seed)
    if framework is None:
        raise TypeError(
            f"Could not tell the framework of {argument} ({type(distribution).__name__}): none "
            "of its parameters or attributes is a tf.Tensor, tf.Variable or jax.Array. Give it "
            "array parameters, or pass seed= as a framework seed (jax.random.key(0) or a "
            "tf.constant([0, 0]))."
        )
    return framework


def _array_attributes(distribution) -> list:
    """Where the arrays of a generic distribution object may live: a ``parameters`` dict
    (TFP, distrax), dataclass fields (equinox, flax), and plain attributes."""
    places = []
    parameters = getattr(distribution, "parameters", None)
    if isinstance(parameters, dict):
        places.append(parameters)
    if dataclasses.is_dataclass(distribution):
        places.append([getattr(distribution, field.name, None)
                       for field in dataclasses.fields(distribution)])
    attributes = getattr(distribution, "__dict__", None)
    if isinstance(attributes, dict):
        places.append(attributes)
    return places


def distribution_batch_shape(distribution):
    """The batch shape of any distribution, as a tuple.

    Args:
        distribution: fxgx's (a tuple), TFP's (a ``TensorShape``) or another library's (a
            tuple or a list) distribution.

    Returns:
        The batch shape as a tuple; None when the distribution does not have one.
    """
    shape = getattr(distribution, "batch_shape", None)
    if shape is None:
        return None
    if hasattr(shape, "as_list"):
        return tuple(shape.as_list())
    return tuple(shape)
