"""What every estimator shares: the calling convention, the explicit state, boundary checks.

An estimator estimates ``grad_theta E_{z ~ q_theta}[f(z)]``. Calling it,

    surrogate = estimator(f, distribution, seed=seed, num_samples=S)

returns a tensor of the distribution's ``batch_shape`` whose value is a Monte Carlo
estimate of ``E[f]`` and whose gradient (by the framework's autodiff) is the gradient
estimate. ``f`` maps samples of shape ``[S] + batch_shape + event_shape`` to values of
shape ``[S] + batch_shape``. Hyper-parameters are fixed when the estimator is made by its
lowercase factory (``fxgx.estimators.disarm()``); data and randomness come at call time.

Every estimator also has one explicit-state form, in the manner of optax and blackjax:

    state = estimator.init(distribution)
    surrogate, state, info = estimator.apply(state, f, distribution, seed=seed,
                                             num_samples=S)

``state`` is ``()`` for estimators without state and a NamedTuple of arrays for those with
one (the moving-average baseline); ``info`` is a dict of what the call measured (the
learned baseline's regression loss, REBAR/RELAX's variance loss). State is a value passed in
and returned, never a Python attribute, so ``apply`` composes with ``jax.jit``,
``jax.lax.scan`` and ``tf.function`` and the state can be checkpointed with the model. The
plain call runs the same computation from the initial state and returns the surrogate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from fxgx.core.seeds import canonical_seed, split_seed
from fxgx.distributions import (
    Distribution,
    as_fxgx_distribution,
    backend_of_distribution,
    distribution_batch_shape,
)
from fxgx.estimators.streaming import streamed_surrogate

#: The state of an estimator without state.
EMPTY_STATE: tuple = ()


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Base class: immutable hyper-parameters; subclasses implement ``_estimate`` (or, with
    state or extra information, ``init`` and ``_apply``)."""

    #: Catalogue name (matches the card in the top-level ``estimators/`` folder).
    name: ClassVar[str] = "estimator"
    #: Distribution kinds accepted: "bernoulli", "categorical", "normal", "any".
    supports: ClassVar[tuple[str, ...]] = ("any",)
    #: Smallest ``num_samples`` the estimator works with.
    minimum_samples: ClassVar[int] = 1
    #: Whether the gradient estimate is unbiased for ``grad E[f]``.
    unbiased: ClassVar[bool] = True
    #: Whether the surrogate's gradient w.r.t. what ``f`` closes over (a decoder's
    #: weights) is an unbiased estimate of ``E[grad f]``. True for every fxgx estimator: the
    #: score-function and antithetic ones return ``mean_s f(z_s)`` unstopped (samples
    #: stopped), DiCE-style; pathwise ones differentiate ``f`` anyway. An estimator written
    #: outside fxgx that evaluates ``f`` under ``stop_gradient`` must declare False, and
    #: ``fxgx.vi`` then adds the missing term.
    passes_function_gradients: ClassVar[bool] = True
    #: What the gradient estimates: "expectation" (``grad E[f]``) or "log_mean_exp"
    #: (``grad E[log mean_k exp f(z_k)]``, the multi-sample bound of VIMCO).
    target: ClassVar[str] = "expectation"
    #: How a call with ``chunk_size`` streams (``fxgx.estimators.streaming``): "mean" (the
    #: mean of the chunks' estimates), "exact" (running sums that give the one-shot estimate
    #: over all samples), "two_pass" (a first pass of sums over all samples, then the
    #: one-shot estimate) or "none" (it cannot stream; ``not_streaming_because`` says why).
    streaming: ClassVar[str] = "mean"
    not_streaming_because: ClassVar[str] = ""

    def __call__(self, function, distribution, *, seed, num_samples: int = 1,
                 chunk_size: int | None = None, devices=None):
        """The surrogate of ``E[f]`` from the estimator's initial state.

        Args:
            function: ``f``, mapping samples ``[S] + batch_shape + event_shape`` to values
                ``[S] + batch_shape``.
            distribution: ``q``: an fxgx or TensorFlow Probability distribution (or, for
                score-function estimators, any object with ``sample`` and ``log_prob``).
            seed: an int, a TensorFlow stateless seed (shape ``[2]``) or a JAX key.
            num_samples: ``S``, the number of samples (at least ``minimum_samples``).
            chunk_size: ``None`` (all samples at once) or the number of samples per chunk of
                a streamed estimate: memory then holds one chunk, whatever ``num_samples``
                is (see ``fxgx.estimators.streaming`` for the seeds and what streams how).
                At least ``num_samples`` means one chunk: the plain call.
            devices: with ``chunk_size``, spread the chunks over devices: a count, a one-axis
                ``jax.sharding.Mesh`` or a ``tf.distribute.Strategy``. Same seed and chunk
                size, same estimate, on any number of devices.

        Returns:
            A tensor of shape ``batch_shape``: its value estimates ``E[f]`` and its gradient
            estimates ``grad E[f]``.

        Raises:
            TypeError: ``q`` is not a supported distribution, ``f`` is not callable, or
                ``seed``/``num_samples``/``chunk_size``/``devices`` has the wrong type.
            ValueError: ``num_samples`` is too small, ``f`` returns the wrong shape, the
                estimator cannot stream, a chunk would be too small, or more devices are
                asked for than the framework sees.
        """
        distribution, backend, seed, num_samples = self.prepare_call(
            function, distribution, seed, num_samples)
        chunk_size = self._check_chunk_size(chunk_size, num_samples, devices)
        if chunk_size is not None:
            surrogate = streamed_surrogate(self, function, distribution, backend, seed,
                                           num_samples, chunk_size,
                                           backend.resolve_devices(devices))
            return propagate_non_finite(backend, surrogate, distribution)
        surrogate, _, _ = self._apply(None, function, distribution, backend, seed,
                                      num_samples, with_info=False)
        return propagate_non_finite(backend, surrogate, distribution)

    def _check_chunk_size(self, chunk_size, num_samples, devices):
        """``chunk_size`` checked; None when the call does not stream (no chunk size, or one
        chunk holds every sample)."""
        if chunk_size is None:
            if devices is not None:
                raise ValueError(
                    "devices= spreads the chunks of a streamed estimate over devices: pass "
                    "chunk_size too (for example num_samples // number_of_devices)."
                )
            return None
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be an int or None, got {chunk_size!r}.")
        if chunk_size >= num_samples:
            return None
        if self.streaming == "none":
            raise ValueError(
                f"{self.name} cannot stream (chunk_size={chunk_size}): "
                f"{self.not_streaming_because or 'its samples are not independent'}."
            )
        remainder = num_samples % chunk_size
        smallest = min(chunk_size, remainder) if remainder else chunk_size
        if smallest < self.minimum_samples:
            raise ValueError(
                f"{self.name} needs at least {self.minimum_samples} samples per chunk; "
                f"num_samples={num_samples} in chunks of chunk_size={chunk_size} leaves "
                f"{smallest}. Choose a chunk_size that divides num_samples."
            )
        return chunk_size

    def _stream_statistics(self, function, distribution, backend, seed, num_samples):
        """The first pass of a "two_pass" stream: a tuple of stopped sums over a chunk, added
        over all chunks and handed to every chunk's ``_stream_terms`` as ``statistics``."""
        del function, distribution, backend, seed, num_samples
        return ()

    def _stream_terms(self, function, distribution, backend, seed, num_samples,
                      statistics=()):
        """What one chunk of ``num_samples`` adds to a streamed estimate: a tuple of arrays
        summed over the chunks and passed to ``_combine_streams``. Default ("mean"): the
        chunk's surrogate times its sample count."""
        del statistics
        surrogate, _, _ = self._apply(None, function, distribution, backend, seed, num_samples,
                                      with_info=False)
        return (surrogate * float(num_samples),)

    def _combine_streams(self, backend, totals, num_samples):
        """The streamed surrogate from the chunks' summed terms. Default: their mean."""
        del backend
        return totals[0] / float(num_samples)  # an int above 2^31 would overflow JAX's int32

    def init(self, distribution) -> Any:
        """The initial state for estimates of ``E_q[f]``.

        Args:
            distribution: the distribution ``q`` the estimator will be applied to (it gives
                the state's framework and dtype; estimators without state ignore it).

        Returns:
            ``()`` for an estimator without state; otherwise a NamedTuple of arrays.
        """
        del distribution
        return EMPTY_STATE

    def apply(self, state, function, distribution, *, seed, num_samples: int = 1):
        """The explicit-state form: ``(surrogate, new_state, info)``.

        Args:
            state: the state from ``init`` or from the previous ``apply``.
            function: ``f`` (as in a plain call).
            distribution: ``q`` (as in a plain call).
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S``, the number of samples.

        Returns:
            ``(surrogate, new_state, info)``: the surrogate of a plain call made from
            ``state``; the state for the next call (``()`` without state); a dict of
            diagnostics and auxiliary losses (empty when there are none).

        Raises:
            TypeError: ``state`` is not a state of this estimator, or any error of a plain
                call.
            ValueError: as for a plain call.
        """
        distribution, backend, seed, num_samples = self.prepare_call(
            function, distribution, seed, num_samples)
        state = self._check_state(state)
        surrogate, new_state, info = self._apply(state, function, distribution, backend, seed,
                                                 num_samples, with_info=True)
        return propagate_non_finite(backend, surrogate, distribution), new_state, info

    def prepare_call(self, function, distribution, seed, num_samples):
        """The boundary checks shared by the plain call, ``apply`` and the side methods.

        Args:
            function: ``f``; must be callable.
            distribution: ``q``; converted to fxgx's distribution where fxgx has one.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S``.

        Returns:
            ``(distribution, backend, seed, num_samples)``: the converted distribution, the
            backend told from its arrays (``fxgx.distributions.backend_of_distribution``),
            the seed in the backend's native form and the checked sample count.

        Raises:
            TypeError: an unsupported distribution, a non-callable ``f``, a non-int
                ``num_samples`` or a seed of the wrong type.
            ValueError: ``num_samples`` below ``minimum_samples``.
        """
        converted = self._check_distribution(distribution)
        num_samples = self._check_num_samples(num_samples)
        backend = backend_of_distribution(converted, seed=seed)
        seed = canonical_seed(seed, backend)
        if not callable(function):
            raise TypeError(f"function must be callable, got {type(function).__name__}.")
        return converted, backend, seed, num_samples

    def _check_state(self, state):
        """``state`` checked to be a state of this estimator (here: the empty state)."""
        if not (isinstance(state, tuple) and len(state) == 0):
            raise TypeError(
                f"{self.name} has no state: pass state=() (what init() returns), got "
                f"{type(state).__name__}."
            )
        return state

    def _apply(self, state, function, distribution, backend, seed, num_samples, with_info):
        """``(surrogate, new_state, info)`` from checked arguments; ``state=None`` means the
        initial state and ``with_info=False`` lets an estimator skip work that only ``info``
        needs. The default wraps ``_estimate`` (no state, no information)."""
        del with_info
        surrogate = self._estimate(function, distribution, backend, seed, num_samples)
        return surrogate, EMPTY_STATE if state is None else state, {}

    def _estimate(self, function, distribution, backend, seed, num_samples):
        raise NotImplementedError(f"{type(self).__name__} must implement _estimate.")

    # ---------------------------------------------------------------- boundary checks

    def _check_distribution(self, distribution):
        converted = as_fxgx_distribution(distribution)
        kind = getattr(converted, "kind", "generic")
        if "any" in self.supports:
            return converted
        if kind not in self.supports:
            raise TypeError(
                f"{self.name} supports {' and '.join(self.supports)} distributions; got "
                f"{type(distribution).__name__}. Use fxgx.estimators.reinforce() for other "
                "distributions."
            )
        return converted

    def _check_num_samples(self, num_samples):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int):
            raise TypeError(f"num_samples must be an int, got {num_samples!r}.")
        if num_samples < self.minimum_samples:
            raise ValueError(
                f"{self.name} needs num_samples >= {self.minimum_samples}, got {num_samples}."
            )
        return num_samples


def propagate_non_finite(backend, surrogate, distribution):
    """``surrogate`` with NaN value and NaN gradient wherever a parameter is not finite.

    fxgx's rule: a non-finite parameter (NaN or infinite logits, loc or scale) never becomes a
    finite answer. Left alone, some estimators would hide it: ``custom_gradient`` gives
    non-finite ``x`` a zero gradient, so DisARM with a NaN logit returned 0 there while
    REINFORCE returned NaN. Every estimator's surrogate goes through here:

        g = sum_event (p - stop(p)) * stop(0 if p is finite else NaN),
        result = surrogate - (stop(g) - g)

    has the value of ``surrogate`` (bitwise) when every ``p`` is finite, NaN for the batch
    members where one is not, and adds the gradient 0 where ``p`` is finite and NaN where it
    is not. Distributions fxgx does not convert are left alone: their ``log_prob`` carries
    NaN on its own. To raise an error instead, make the distribution with
    ``validate_args=True``.

    Args:
        backend: the backend module.
        surrogate: an estimator's surrogate, shape ``batch_shape``.
        distribution: the (converted) distribution whose parameters are checked.

    Returns:
        The guarded surrogate.
    """
    if not isinstance(distribution, Distribution):
        return surrogate
    guard = None
    for _, parameter, event_rank in distribution.parameter_arrays():
        rank = len(backend.shape_of(parameter))
        finite = backend.isfinite(parameter)
        poison = backend.where(finite, backend.zeros_like(parameter),
                               backend.zeros_like(parameter) + float("nan"))
        term = (parameter - backend.stop_gradient(parameter)) * backend.stop_gradient(poison)
        axes = tuple(range(max(0, rank - event_rank), rank))
        term = backend.reduce_sum(term, axis=axes) if axes else term
        term = backend.cast(term, backend.dtype_of(surrogate))
        guard = term if guard is None else guard + term
    if guard is None:
        return surrogate
    return surrogate - (backend.stop_gradient(guard) - guard)


def sub_seeds(seed, backend, *names):
    """Named independent sub-seeds of a canonical seed.

    Args:
        seed: a native seed of ``backend``.
        backend: the backend module.
        *names: one name per sub-seed.

    Returns:
        ``{name: seed}``, independent of one another and of ``seed``'s other uses.
    """
    return split_seed(seed, names, backend)


def evaluate(function, samples, distribution, backend, num_samples):
    """``function(samples)``, checked and cast to the samples' floating dtype.

    Args:
        function: ``f``.
        samples: ``[num_samples] + batch_shape + event_shape`` samples.
        distribution: the distribution they came from (for its batch shape).
        backend: the backend module.
        num_samples: ``S``.

    Returns:
        ``f(samples)``, shape ``[num_samples] + batch_shape``.

    Raises:
        ValueError: ``f`` returned another shape (only the leading ``num_samples`` is
            checked when the distribution does not say its batch shape).
    """
    values = function(samples)
    if not backend.is_array(values):
        values = backend.convert(values)
    actual = tuple(backend.shape_of(values))
    batch_shape = distribution_batch_shape(distribution)
    if batch_shape is None:
        expected, matches = f"[{num_samples}] + batch_shape", actual[:1] == (num_samples,)
    else:
        expected = (num_samples,) + batch_shape
        matches = actual == expected
    if not matches:
        raise ValueError(
            f"function returned shape {actual} for samples of shape "
            f"{tuple(backend.shape_of(samples))}; it must return one value per sample and batch "
            f"member, shape {expected} (sum over the event dimensions)."
        )
    if backend.dtype_of(values) != backend.dtype_of(samples) and backend.is_floating(
        backend.dtype_of(samples)
    ):
        values = backend.cast(values, backend.dtype_of(samples))
    return values


def leave_one_out_mean(backend, values, num_samples):
    """The leave-one-out mean ``b_s = (sum_j values_j - values_s) / (S - 1)`` along axis 0.

    Args:
        backend: the backend module.
        values: ``[S] + batch_shape`` values.
        num_samples: ``S`` (at least 2).

    Returns:
        ``b``, of the shape of ``values``.
    """
    total = backend.reduce_sum(values, axis=0, keepdims=True)
    return (total - values) / (num_samples - 1)
