"""The ``Framework`` protocol: what fxgx needs from a framework beyond the array API standard.

fxgx's array code (estimators, distributions, problems, the harness) is written once against
the array API standard (https://data-apis.org/array-api/), on the namespace ``framework.xp``:
``xp.sum``, ``xp.where``, ``xp.concat``, ``xp.astype``... For JAX that namespace is
``jax.numpy`` itself (what ``array_api_compat.array_namespace`` returns for a JAX array);
TensorFlow does not implement the standard, so ``fxgx.backends.tensorflow_array_api`` is a
thin one over TensorFlow's operations.

The standard has no autodiff, no random numbers, no compilation and no devices. What fxgx
needs of those, and the few functions that frameworks fuse for speed or accuracy
(``sigmoid``, ``softplus``, ``logsumexp``...), is this protocol. A framework is a module that
satisfies it (``fxgx.backends.tensorflow_backend``, ``fxgx.backends.jax_backend``) plus its
adapters (its distributions, its optimizers). ``pyright src`` checks every framework module
against it (``fxgx.backends`` returns the modules as ``Framework``), and
``tests/backends/test_framework_protocol.py`` checks the same at run time.

Arrays are typed ``Any``: each framework has its own array type, and none is imported here.
Array arguments are positional-only, so a framework may alias its own function whatever its
parameter names (``stop_gradient = tf.stop_gradient``); options are keywords, named the same
in every framework.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

#: A framework array (``tf.Tensor``/``tf.Variable``, ``jax.Array``).
Array = Any
#: A dtype: a name ("float32") or the framework's own dtype object (``xp.float32``).
DType = Any
#: A framework-native seed: a TF stateless seed (int64 ``[2]``) or a JAX key.
Seed = Any
Axis = int | Sequence[int] | None


class Framework(Protocol):
    """What one framework provides to fxgx beyond ``xp`` (see the module docstring)."""

    name: str
    """The framework's name: "tensorflow" or "jax"."""
    xp: Any
    """The framework's array API namespace (``jax.numpy``; fxgx's TensorFlow shim)."""
    differentiates_closed_over_arrays: bool
    """Whether a compiled loop's body may close over arrays and still pass them gradients
    (JAX: yes; TensorFlow: only variables reach a ``tf.custom_gradient``)."""

    # ------------------------------------------------------------------------ arrays

    def is_array(self, value: Any, /) -> bool:
        """Whether ``value`` is an array of this framework (a variable counts)."""
        ...

    def concrete_value(self, value: Any, /) -> Any:
        """``value`` as a NumPy array when its values are known now (eagerly), else None
        (a symbolic TF tensor inside ``tf.function``, a JAX tracer): how fxgx tells a
        compiled computation from an eager one."""
        ...

    def widest_float(self) -> str:
        """The most precise float dtype this framework computes in now (for accumulation):
        "float64", or "float32" where float64 is off (JAX without ``jax_enable_x64``)."""
        ...

    def assert_finite(self, value: Array, message: str, /) -> Array:
        """``value``, checked to be finite when the computation runs (raises ``message``)."""
        ...

    def name_scope(self, name: str, /) -> AbstractContextManager[Any]:
        """A name scope for graph op names (a null context where there are none)."""
        ...

    # --------------------------------------------------------------------- gradients

    def stop_gradient(self, value: Array, /) -> Array:
        """``value`` with a zero gradient (the same value)."""
        ...

    def magic_box(self, value: Array, /) -> Array:
        """``exp(value)`` for a ``value`` that is 0 wherever it is used (DiCE's
        ``L - stop_gradient(L)``): ones of ``value``'s shape and dtype, computed without
        reading ``value``, whose derivative is ``magic_box(value) * d value``, so that its
        derivatives of every order are those of ``exp`` at 0 while a gradient pass never
        needs ``value`` itself (the compiler drops the work that made it)."""
        ...

    def value_and_gradient(self, function: Callable[..., Any], parameters: Sequence[Any], /
                           ) -> tuple[Any, list[Any]]:
        """``function(*parameters)`` and the gradient of its sum w.r.t. each parameter
        (zeros for a parameter it does not depend on)."""
        ...

    # ------------------------------------------------------------- special functions
    # Not in the standard, and fused by the frameworks (one kernel, accurate derivatives).

    def sigmoid(self, value: Array, /) -> Array:
        """``1 / (1 + exp(-value))``."""
        ...

    def log_sigmoid(self, value: Array, /) -> Array:
        """``-softplus(-value)``, accurate for large ``|value|``."""
        ...

    def softplus(self, value: Array, /) -> Array:
        """``log(1 + exp(value))``, accurate for large ``|value|``."""
        ...

    def softmax(self, logits: Array, /, axis: int = -1) -> Array:
        """``exp(logits) / sum exp(logits)`` along ``axis``."""
        ...

    def log_softmax(self, logits: Array, /, axis: int = -1) -> Array:
        """``logits - logsumexp(logits)`` along ``axis``."""
        ...

    def logsumexp(self, value: Array, /, axis: Axis = None, keepdims: bool = False) -> Array:
        """``log sum exp`` over ``axis`` (every axis when ``None``), computed stably."""
        ...

    def top_k(self, value: Array, k: int, /) -> tuple[Array, Array]:
        """The ``k`` largest values along the last axis, in descending order, and their int32
        indices (ties: the lower index first)."""
        ...

    # --------------------------------------------------------- counter-based random draws

    def is_native_seed(self, seed: Any, /) -> bool:
        """Whether ``seed`` is already this framework's canonical seed (TF: an int64 ``[2]``
        tensor; JAX: a typed key)."""
        ...

    def seed_from_int(self, value: int, /) -> Seed:
        """The native seed of a Python int (all 64 bits kept)."""
        ...

    def seed_from_integer_scalar(self, value: Array, /) -> Seed:
        """``seed_from_int`` for an integer array (traced or symbolic)."""
        ...

    def seed_from_pair(self, pair: Any, /) -> Seed:
        """The native seed of two 32-bit words."""
        ...

    def split_seed(self, seed: Seed, count: int, /) -> Any:
        """``count`` independent seeds derived from ``seed`` (stacked on axis 0)."""
        ...

    def fold_in(self, seed: Seed, data: Any, /) -> Seed:
        """A seed derived from ``seed`` and the integer ``data`` (a step index): distinct
        ``data`` give independent seeds."""
        ...

    def sampler_seed(self, seed: Seed, /) -> Any:
        """``seed`` in the form the framework's distribution libraries take it (TensorFlow
        Probability: an int32 pair; distrax and NumPyro: the key itself)."""
        ...

    def uniform(self, shape: Any, seed: Seed, dtype: DType, /, low: Any = 0.0,
                high: Any = 1.0) -> Array:
        """Uniform draws on ``[low, high)`` from a stateless seed (counter-based: the same
        seed gives the same draws eagerly and compiled)."""
        ...

    def normal(self, shape: Any, seed: Seed, dtype: DType, /) -> Array:
        """Standard normal draws from a stateless seed."""
        ...

    # ----------------------------------------------------------------- compiled loops

    def compile(self, function: Callable[..., Any], /, jit_compile: bool = True
                ) -> Callable[..., Any]:
        """``function`` compiled (``tf.function``/``jax.jit``; XLA when ``jit_compile``)."""
        ...

    def sum_over_chunks(self, body: Callable[[list[Any], Seed], Any], parameters: Sequence[Any],
                        seeds: Any, num_chunks: int, /, devices: Any = None) -> Any:
        """``sum_c body(parameters, seeds[c])`` for ``c < num_chunks`` (a tuple of arrays),
        computed in a compiled loop whose memory does not grow with ``num_chunks``, and
        differentiable w.r.t. ``parameters`` and what ``body`` reads (JAX: closed-over arrays;
        TensorFlow: variables). ``devices`` (from ``resolve_devices``) spreads the chunks
        over several devices; chunk ``c`` gets ``seeds[c]`` on whichever device runs it."""
        ...

    # ---------------------------------------------------------- devices and collectives

    def device_description(self) -> str:
        """The device computations run on, in words ("CPU", "GPU (1)")."""
        ...

    def resolve_devices(self, devices: Any, /) -> Any:
        """``devices`` (None, a device count ``N``: the first ``N`` devices the framework
        sees, a one-axis ``jax.sharding.Mesh`` or a ``tf.distribute.Strategy``) as a
        one-axis mesh (JAX) or a list of device names (TensorFlow); None for one device.
        Raises a one-line error when more are asked for than are visible (saying how to
        simulate more)."""
        ...

    def device_count(self, devices: Any, /) -> int:
        """How many devices a ``resolve_devices`` result spans (1 for None)."""
        ...

    def map_over_devices(self, function: Callable[..., Any], devices: Any, /,
                         jit_compile: bool = True) -> Callable[..., Any]:
        """``mapped(shared, per_device)`` over the devices of a ``resolve_devices`` result:
        device ``i`` runs ``function(shared, *rows_i)`` at the same time as the others,
        where ``shared`` (a list of arrays) is copied to every device and ``rows_i`` is row
        ``i`` of each array in ``per_device`` (leading axis ``device_count(devices)``);
        returns the outputs stacked on a new leading axis."""
        ...
