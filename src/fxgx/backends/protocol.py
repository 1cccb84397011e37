"""The backend interface: the array functions estimator code is written against.

A backend is a module (``fxgx.backends.tensorflow_backend``, ``fxgx.backends.jax_backend``)
whose functions satisfy :class:`Backend`. The protocol is what a type checker checks
(``pyright src``: a module returned as ``Backend`` must provide every member with a compatible
signature) and what ``tests/backends/test_protocol.py`` checks at run time on each backend.

Arrays are typed ``Any``: each framework has its own array type, and neither is imported here.
Array arguments are positional-only, so a backend may alias a framework function whatever its
parameter names (``stop_gradient = tf.stop_gradient``); options are keywords, named the same in
every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

#: A static shape: one entry per dimension, ``None`` where TensorFlow does not know it.
Shape = tuple[Any, ...]
#: A dtype: a name ("float32"), a NumPy dtype or the framework's own dtype object.
DType = Any
#: A framework array (``tf.Tensor``/``tf.Variable`` or ``jax.Array``).
Array = Any
#: A framework-native seed: a TF stateless seed (int64 ``[2]``) or a JAX key.
Seed = Any
Axis = int | Sequence[int] | None


class Backend(Protocol):
    """The array operations one framework provides to fxgx (see the module docstring)."""

    #: The framework's name: "tensorflow" or "jax".
    name: str

    # ------------------------------------------------------------ arrays and dtypes

    def is_array(self, value: Any, /) -> bool:
        """Whether ``value`` is an array of this framework."""
        ...

    def convert(self, value: Any, /, dtype: DType = None) -> Array:
        """``value`` as an array (of ``dtype`` when given)."""
        ...

    def dtype_of(self, value: Array, /) -> DType:
        """The dtype of an array."""
        ...

    def dtype_name(self, dtype: DType, /) -> str:
        """The canonical name of a dtype ("float32")."""
        ...

    def is_floating(self, dtype: DType, /) -> bool:
        """Whether a dtype is a floating-point type."""
        ...

    def shape_of(self, value: Array, /) -> Any:
        """The static shape as a tuple (``None`` entries for unknown dimensions on
        TensorFlow; ``None`` for an unknown rank)."""
        ...

    def finfo_eps(self, dtype: DType, /) -> float:
        """The machine epsilon of a floating dtype."""
        ...

    def cast(self, value: Array, dtype: DType, /) -> Array:
        """``value`` converted to ``dtype``."""
        ...

    def to_numpy(self, value: Array, /) -> Any:
        """A NumPy copy of a (concrete) array."""
        ...

    # ---------------------------------------------------------------- construction

    def zeros(self, shape: Any, dtype: DType, /) -> Array:
        """Zeros of ``shape`` and ``dtype``."""
        ...

    def ones(self, shape: Any, dtype: DType, /) -> Array:
        """Ones of ``shape`` and ``dtype``."""
        ...

    def zeros_like(self, value: Array, /) -> Array:
        """Zeros of ``value``'s shape and dtype."""
        ...

    def ones_like(self, value: Array, /) -> Array:
        """Ones of ``value``'s shape and dtype."""
        ...

    def arange(self, n: Any, dtype: DType, /) -> Array:
        """``0, 1, ..., n - 1`` of ``dtype``."""
        ...

    def one_hot(self, indices: Array, depth: int, dtype: DType, /) -> Array:
        """One-hot vectors of length ``depth`` (a new last axis)."""
        ...

    # --------------------------------------------------------------------- shapes

    def reshape(self, value: Array, shape: Any, /) -> Array:
        """``value`` with a new shape of the same size."""
        ...

    def broadcast_to(self, value: Array, shape: Any, /) -> Array:
        """``value`` broadcast to ``shape``."""
        ...

    def expand_dims(self, value: Array, axis: int, /) -> Array:
        """``value`` with a new axis of size 1 at ``axis``."""
        ...

    def stack(self, values: Sequence[Array], /, axis: int = 0) -> Array:
        """Arrays of one shape stacked along a new axis."""
        ...

    def concat(self, values: Sequence[Array], /, axis: int) -> Array:
        """Arrays concatenated along an existing axis."""
        ...

    def tile(self, value: Array, multiples: Any, /) -> Array:
        """``value`` repeated ``multiples[i]`` times along axis ``i``."""
        ...

    def transpose(self, value: Array, permutation: Any, /) -> Array:
        """``value`` with its axes permuted."""
        ...

    def where(self, condition: Array, x: Any, y: Any, /) -> Array:
        """``x`` where ``condition`` holds, else ``y`` (elementwise, broadcasting)."""
        ...

    # ------------------------------------------------------------ elementwise math

    def stop_gradient(self, value: Array, /) -> Array:
        """``value`` with a zero gradient (the same value)."""
        ...

    def exp(self, value: Array, /) -> Array: ...
    def log(self, value: Array, /) -> Array: ...
    def log1p(self, value: Array, /) -> Array: ...
    def abs(self, value: Array, /) -> Array: ...
    def sqrt(self, value: Array, /) -> Array: ...
    def square(self, value: Array, /) -> Array: ...
    def tanh(self, value: Array, /) -> Array: ...
    def sigmoid(self, value: Array, /) -> Array: ...
    def log_sigmoid(self, value: Array, /) -> Array: ...
    def softplus(self, value: Array, /) -> Array: ...
    def isfinite(self, value: Array, /) -> Array: ...
    def maximum(self, first: Any, second: Any, /) -> Array: ...
    def minimum(self, first: Any, second: Any, /) -> Array: ...
    def equal(self, first: Any, second: Any, /) -> Array: ...
    def less(self, first: Any, second: Any, /) -> Array: ...
    def greater(self, first: Any, second: Any, /) -> Array: ...
    def matmul(self, first: Array, second: Array, /) -> Array: ...

    def magic_box(self, value: Array, /) -> Array:
        """``exp(value)`` for a ``value`` that is 0 wherever it is used (DiCE's
        ``L - stop_gradient(L)``): ones of ``value``'s shape and dtype, computed without
        reading ``value``, whose derivative is ``magic_box(value) * d value``, so that its
        derivatives of every order are those of ``exp`` at 0 while a gradient pass never
        needs ``value`` itself (the compiler drops the work that made it)."""
        ...

    def softmax(self, logits: Array, /, axis: int = -1) -> Array:
        """``exp(logits) / sum exp(logits)`` along ``axis``."""
        ...

    def log_softmax(self, logits: Array, /, axis: int = -1) -> Array:
        """``logits - logsumexp(logits)`` along ``axis``."""
        ...

    # ------------------------------------------------------------------ reductions

    def reduce_sum(self, value: Array, /, axis: Axis = None, keepdims: bool = False) -> Array:
        """The sum over ``axis`` (every axis when ``None``)."""
        ...

    def reduce_mean(self, value: Array, /, axis: Axis = None, keepdims: bool = False) -> Array:
        """The mean over ``axis`` (every axis when ``None``)."""
        ...

    def logsumexp(self, value: Array, /, axis: Axis = None, keepdims: bool = False) -> Array:
        """``log sum exp`` over ``axis``, computed stably."""
        ...

    def exclusive_cumsum(self, value: Array, /, axis: int = 0, reverse: bool = False) -> Array:
        """``sum_{j < i} value_j`` along ``axis`` (``j > i`` with ``reverse``)."""
        ...

    def argmax(self, value: Array, /, axis: int = -1) -> Array:
        """The int32 index of the largest value along ``axis``."""
        ...

    def top_k(self, value: Array, k: int, /) -> tuple[Array, Array]:
        """The ``k`` largest values along the last axis, in descending order, and their int32
        indices (ties: the lower index first)."""
        ...

    def assert_finite(self, value: Array, message: str, /) -> Array:
        """``value``, checked to be finite when the computation runs (raises ``message``)."""
        ...

    # ---------------------------------------------------------------------- seeds

    def is_native_seed(self, seed: Any, /) -> bool:
        """Whether ``seed`` is already this framework's seed type."""
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

    def uniform(self, shape: Any, seed: Seed, dtype: DType, /, low: Any = 0.0,
                high: Any = 1.0) -> Array:
        """Uniform draws on ``[low, high)`` from a stateless seed."""
        ...

    def normal(self, shape: Any, seed: Seed, dtype: DType, /) -> Array:
        """Standard normal draws from a stateless seed."""
        ...

    # ------------------------------------------------------------ transformations

    def compile(self, function: Callable[..., Any], /, jit_compile: bool = True
                ) -> Callable[..., Any]:
        """``function`` compiled (``tf.function``/``jax.jit``; XLA when ``jit_compile``)."""
        ...

    def value_and_gradient(self, function: Callable[..., Any], parameters: Sequence[Any], /
                           ) -> tuple[Any, list[Any]]:
        """``function(*parameters)`` and the gradient of its sum w.r.t. each parameter."""
        ...

    def sum_over_chunks(self, body: Callable[[list[Any], Seed], Any], parameters: Sequence[Any],
                        seeds: Any, num_chunks: int, /, devices: Any = None) -> Any:
        """``sum_c body(parameters, seeds[c])`` for ``c < num_chunks`` (a tuple of arrays),
        computed in a compiled loop whose memory does not grow with ``num_chunks``, and
        differentiable w.r.t. ``parameters`` and what ``body`` reads (JAX: closed-over arrays;
        TensorFlow: variables). ``devices`` (from ``resolve_devices``) spreads the chunks
        over several devices; chunk ``c`` gets ``seeds[c]`` on whichever device runs it."""
        ...

    def name_scope(self, name: str, /) -> AbstractContextManager[Any]:
        """A name scope for graph op names (a null context where there are none)."""
        ...

    def device_description(self) -> str:
        """The device computations run on, in words ("CPU", "GPU (1)")."""
        ...

    def widest_float(self) -> str:
        """The most precise float dtype this backend computes in (for accumulation)."""
        ...

    # -------------------------------------------------------------------- devices

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
