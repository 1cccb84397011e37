"""What every estimator shares: one calling form, explicit state, per-call options, checks.

An estimator estimates ``grad_theta E_{z ~ q_theta}[f(z)]``. Calling it,

    surrogate = estimator(f, distribution, seed=seed, num_samples=S)

returns a tensor of the distribution's ``batch_shape`` whose value is a Monte Carlo
estimate of ``E[f]`` and whose gradient (by the framework's autodiff) is the gradient
estimate. ``f`` maps samples of shape ``[S] + batch_shape + event_shape`` to values of
shape ``[S] + batch_shape``. Hyper-parameters are fixed when the estimator is made by its
lowercase factory (``fxgx.estimators.disarm()``); data and randomness come at call time.

Every estimator has the same explicit-state form, in the manner of optax and blackjax:

    state = estimator.init(distribution)
    surrogate, state, info = estimator.apply(state, f, distribution, seed=seed,
                                             num_samples=S, **options)

``state`` is ``()`` for estimators without state and a NamedTuple of arrays for those with
one (the moving-average baseline); ``info`` is a dict of what the call measured (the
learned baseline's regression loss, REBAR/RELAX's variance loss). State is a value passed in
and returned, never a Python attribute, so ``apply`` composes with ``jax.jit``,
``jax.lax.scan`` and ``tf.function`` and the state can be checkpointed with the model. The
plain call runs the same computation from the initial state and returns the surrogate.

Per-call options: a hyper-parameter that is trained or annealed (a temperature, a control
variate's scale, its parameters) is declared with ``call_option`` and may be passed at call
time to both forms (``estimator(f, q, seed=0, temperature=t)``); it replaces the one given at
construction for that call, checked the same way.

The card is the single source of truth: a class names its card (``class Disarm(Estimator,
card="disarm")``) and reads its ``name``, ``unbiased``, ``supports`` and ``target`` from the
top-level ``estimators/<name>.toml``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from fxgx.core.seeds import canonical_seed
from fxgx.distributions import (
    Distribution,
    as_fxgx_distribution,
    framework_of_distribution,
)
from fxgx.estimators.streaming import MEAN, StreamingRule, streamed_surrogate

#: The state of an estimator without state.
EMPTY_STATE: tuple = ()

_CALL_OPTION = "fxgx_call_option"


def call_option(default, check: Callable[[Any, str], Any]):
    """A dataclass field that may also be passed per call (see the module docstring).

    Args:
        default: the value when the factory is not given one.
        check: ``check(value, argument) -> value``, run on the factory's value and on each
            per-call value (``fxgx.estimators.hyperparameters.positive``, ``finite``...).

    Returns:
        The field.
    """
    return dataclasses.field(default=default, metadata={_CALL_OPTION: check})


class Call(NamedTuple):
    """A call's checked arguments, as every estimator's internals receive them."""

    framework: Any  #: the framework, found once from the distribution (or the seed)
    function: Callable  #: f
    distribution: Any  #: q, converted to fxgx's distribution where fxgx has one
    seed: Any  #: the seed in the framework's native form
    num_samples: int  #: S


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Base class: immutable hyper-parameters; subclasses implement ``_estimate`` (or, with
    state or extra information, ``init`` and ``_apply``), and name their card."""

    #: The card's name; the name ``fxgx list`` and ``--estimators`` use (read from the card).
    name: ClassVar[str] = "estimator"
    #: Distribution kinds accepted: "bernoulli", "categorical", "normal", "any" (the card's
    #: ``distributions``).
    supports: ClassVar[tuple[str, ...]] = ("any",)
    #: Whether the gradient estimate is unbiased for ``grad E[f]`` (the card's ``unbiased``).
    unbiased: ClassVar[bool] = True
    #: Smallest ``num_samples`` the estimator works with (also the default).
    minimum_samples: ClassVar[int] = 1
    #: Whether the surrogate's gradient w.r.t. what ``f`` closes over (a decoder's
    #: weights) is an unbiased estimate of ``E[grad f]``. True for every fxgx estimator: the
    #: score-function and antithetic ones return ``mean_s f(z_s)`` unstopped (samples
    #: stopped), DiCE-style; pathwise ones differentiate ``f`` anyway. An estimator written
    #: outside fxgx that evaluates ``f`` under ``stop_gradient`` must declare False, and
    #: ``fxgx.vi`` then adds the missing term.
    passes_function_gradients: ClassVar[bool] = True
    #: What the gradient estimates: "expectation" (``grad E[f]``) or "log_mean_exp"
    #: (``grad E[log mean_k exp f(z_k)]``, the multi-sample bound of VIMCO); the card's.
    target: ClassVar[str] = "expectation"
    #: How a call with ``chunk_size`` streams (``fxgx.estimators.streaming``).
    streaming: ClassVar[StreamingRule] = MEAN

    def __init_subclass__(cls, card: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if card is None:
            return
        from fxgx.catalogue import get_card  # noqa: PLC0415 - the cards, read once

        entry = get_card(card)
        cls.name = entry.name
        cls.unbiased = entry.unbiased
        cls.supports = tuple(entry.distributions)
        cls.target = entry.target

    # ------------------------------------------------------------------ the two forms

    def __call__(self, function, distribution, *, seed, num_samples: int | None = None,
                 chunk_size: int | None = None, devices=None, **options):
        """The surrogate of ``E[f]`` from the estimator's initial state.

        Args:
            function: ``f``, mapping samples ``[S] + batch_shape + event_shape`` to values
                ``[S] + batch_shape``.
            distribution: ``q``: an fxgx or TensorFlow Probability distribution (or, for
                score-function estimators, any object with ``sample`` and ``log_prob``).
            seed: an int, a TensorFlow stateless seed (shape ``[2]``) or a JAX key.
            num_samples: ``S``, the number of samples (at least ``minimum_samples``, the
                default).
            chunk_size: ``None`` (all samples at once) or the number of samples per chunk of
                a streamed estimate: memory then holds one chunk, whatever ``num_samples``
                is (see ``fxgx.estimators.streaming`` for the seeds and what streams how).
                At least ``num_samples`` means one chunk: the plain call.
            devices: with ``chunk_size``, spread the chunks over devices: a count, a one-axis
                ``jax.sharding.Mesh`` or a ``tf.distribute.Strategy``. Same seed and chunk
                size, same estimate, on any number of devices.
            **options: the estimator's per-call options (``call_options()``), replacing the
                values given at construction for this call.

        Returns:
            A tensor of shape ``batch_shape``: its value estimates ``E[f]`` and its gradient
            estimates ``grad E[f]``.

        Raises:
            TypeError: ``q`` is not a supported distribution, ``f`` is not callable,
                ``seed``/``num_samples``/``chunk_size``/``devices`` has the wrong type, or an
                option is not one of the estimator's.
            ValueError: ``num_samples`` is too small, ``f`` returns the wrong shape, the
                estimator cannot stream, a chunk would be too small, an option is invalid,
                or more devices are asked for than the framework sees.
        """
        estimator = self.with_options(**options)
        call = estimator.prepare_call(function, distribution, seed, num_samples)
        chunk_size = estimator._check_chunk_size(chunk_size, call.num_samples, devices)
        if chunk_size is not None:
            surrogate = streamed_surrogate(estimator, call, chunk_size,
                                           call.framework.resolve_devices(devices))
        else:
            surrogate, _, _ = estimator._apply(None, call, with_info=False)
        return propagate_non_finite(call.framework, surrogate, call.distribution)

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

    def apply(self, state, function, distribution, *, seed, num_samples: int | None = None,
              **options):
        """The explicit-state form: ``(surrogate, new_state, info)``.

        Args:
            state: the state from ``init`` or from the previous ``apply``.
            function: ``f`` (as in a plain call).
            distribution: ``q`` (as in a plain call).
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S``, the number of samples (default ``minimum_samples``).
            **options: the estimator's per-call options, as in a plain call.

        Returns:
            ``(surrogate, new_state, info)``: the surrogate of a plain call made from
            ``state``; the state for the next call (``()`` without state); a dict of
            diagnostics and auxiliary losses (empty when there are none).

        Raises:
            TypeError: ``state`` is not a state of this estimator, or any error of a plain
                call.
            ValueError: as for a plain call.
        """
        estimator = self.with_options(**options)
        call = estimator.prepare_call(function, distribution, seed, num_samples)
        state = estimator._check_state(state)
        surrogate, new_state, info = estimator._apply(state, call, with_info=True)
        return propagate_non_finite(call.framework, surrogate, call.distribution), new_state, info

    # --------------------------------------------------------------- per-call options

    @classmethod
    def call_options(cls) -> tuple[str, ...]:
        """The names of the options a call may pass (``temperature``, ``scale``, ...).

        Returns:
            The names, in declaration order.
        """
        return tuple(field.name for field in dataclasses.fields(cls)
                     if _CALL_OPTION in field.metadata)

    def with_options(self, **options) -> Estimator:
        """A copy with per-call options applied (``None`` keeps the estimator's value).

        Args:
            **options: option names and values (see ``call_options``).

        Returns:
            The estimator itself when nothing changes, else a checked copy.

        Raises:
            TypeError: a name that is not one of the estimator's options.
            ValueError: a value its check rejects.
        """
        if not options:
            return self
        fields = {field.name: field for field in dataclasses.fields(self)}
        allowed = self.call_options()
        changes = {}
        for key, value in options.items():
            if key not in allowed:
                known = ", ".join(allowed) if allowed else "none"
                raise TypeError(
                    f"{self.name} got the unknown option {key}=; its per-call options are: "
                    f"{known}.")
            if value is not None:
                changes[key] = fields[key].metadata[_CALL_OPTION](value, key)
        return dataclasses.replace(self, **changes) if changes else self

    # ---------------------------------------------------------------- the internals

    def _apply(self, state, call: Call, with_info: bool):
        """``(surrogate, new_state, info)`` from checked arguments; ``state=None`` means the
        initial state and ``with_info=False`` lets an estimator skip work that only ``info``
        needs. The default wraps ``_estimate`` (no state, no information)."""
        del with_info
        surrogate = self._estimate(call.framework, call.function, call.distribution,
                                   call.seed, call.num_samples)
        return surrogate, EMPTY_STATE if state is None else state, {}

    def _estimate(self, framework, function, distribution, seed, num_samples):
        raise NotImplementedError(f"{type(self).__name__} must implement _estimate.")

    def prepare_call(self, function, distribution, seed, num_samples) -> Call:
        """The boundary checks shared by both forms and the side methods.

        Args:
            function: ``f``; must be callable.
            distribution: ``q``; converted to fxgx's distribution where fxgx has one.
            seed: an int, a TensorFlow stateless seed or a JAX key.
            num_samples: ``S``, or None for ``minimum_samples``.

        Returns:
            The ``Call``: the framework told once from the distribution's arrays (or the
            seed), the converted distribution, the native seed and the checked count.

        Raises:
            TypeError: an unsupported distribution, a non-callable ``f``, a non-int
                ``num_samples`` or a seed of the wrong type.
            ValueError: ``num_samples`` below ``minimum_samples``.
        """
        converted = self._check_distribution(distribution)
        num_samples = self._check_num_samples(num_samples)
        framework = framework_of_distribution(converted, seed=seed)
        seed = canonical_seed(seed, framework)
        if not callable(function):
            raise TypeError(f"function must be callable, got {type(function).__name__}.")
        return Call(framework, function, converted, seed, num_samples)

    def _check_state(self, state):
        """``state`` checked to be a state of this estimator (here: the empty state)."""
        if not (isinstance(state, tuple) and len(state) == 0):
            raise TypeError(
                f"{self.name} has no state: pass state=() (what init() returns), got "
                f"{type(state).__name__}."
            )
        return state

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
        if not self.streaming.streams:
            raise ValueError(
                f"{self.name} cannot stream (chunk_size={chunk_size}): "
                f"{self.streaming.reason or 'its samples are not independent'}."
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
        if num_samples is None:
            return self.minimum_samples
        if isinstance(num_samples, bool) or not isinstance(num_samples, int):
            raise TypeError(f"num_samples must be an int, got {num_samples!r}.")
        if num_samples < self.minimum_samples:
            raise ValueError(
                f"{self.name} needs num_samples >= {self.minimum_samples}, got {num_samples}."
            )
        return num_samples


def propagate_non_finite(framework, surrogate, distribution):
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
        framework: the framework of the arrays.
        surrogate: an estimator's surrogate, shape ``batch_shape``.
        distribution: the (converted) distribution whose parameters are checked.

    Returns:
        The guarded surrogate.
    """
    if not isinstance(distribution, Distribution):
        return surrogate
    xp = framework.xp
    stop = framework.stop_gradient
    guard = None
    for _, parameter, event_rank in distribution.parameter_arrays():
        rank = len(parameter.shape)
        finite = xp.isfinite(parameter)
        poison = xp.where(finite, xp.zeros_like(parameter), xp.zeros_like(parameter) + float("nan"))
        term = (parameter - stop(parameter)) * stop(poison)
        axes = tuple(range(max(0, rank - event_rank), rank))
        term = xp.sum(term, axis=axes) if axes else term
        term = xp.astype(term, surrogate.dtype)
        guard = term if guard is None else guard + term
    if guard is None:
        return surrogate
    return surrogate - (stop(guard) - guard)
