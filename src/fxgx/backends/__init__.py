"""Backend registry: the only place that decides which framework handles an array.

A backend is a module exposing one shared set of array functions, typed by the protocol
``fxgx.backends.protocol.Backend`` (implemented by ``tensorflow_backend`` and
``jax_backend``). Estimator code is written once against that set. The backend is chosen
from the arrays the caller passes, the way einops does: the array's type names its
framework, so neither framework is imported until an array of it is seen (``import fxgx``
imports neither).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxgx.backends.protocol import Backend

# Framework name -> (module prefixes of its array types, backend module path).
_REGISTRY: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorflow": (("tensorflow", "tf_keras", "keras"), "fxgx.backends.tensorflow_backend"),
    "jax": (("jax", "jaxlib"), "fxgx.backends.jax_backend"),
}

DEFAULT_BACKEND = "tensorflow"

_ALIASES = {"tf": "tensorflow", "tensorflow": "tensorflow", "jax": "jax"}


_LOADED: dict[str, Backend] = {}


def backend_by_name(name: str) -> Backend:
    """Return the backend module called ``name`` ("tensorflow"/"tf" or "jax")."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(
            f"backend={name!r} is not known; choose one of {sorted(set(_ALIASES.values()))}."
        )
    if key in _LOADED:
        return _LOADED[key]
    try:
        # Import statements, not importlib calls: AutoGraph (tracing a user's tf.function)
        # converts function calls it meets, and would warn about importlib's internals.
        if key == "tensorflow":
            from fxgx.backends import tensorflow_backend as module  # noqa: PLC0415
        else:
            from fxgx.backends import jax_backend as module  # noqa: PLC0415
    except ImportError as error:
        extra = "tf" if key == "tensorflow" else "jax"
        raise ImportError(
            f"The {key} backend needs {key} installed: pip install 'fxgx[{extra}]' ({error})."
        ) from error
    _LOADED[key] = module
    return module


def _framework_of(value: Any) -> str | None:
    module = type(value).__module__ or ""
    root = module.split(".", 1)[0]
    if root == "keras" and ".backend.jax." in module + ".":
        return "jax"  # a Keras 3 variable of Keras' JAX backend
    for name, (prefixes, _) in _REGISTRY.items():
        if root in prefixes:
            # Only claim the array if its framework is already imported: an array of a
            # framework can only exist once that framework is loaded.
            if name in sys.modules or root in sys.modules:
                return name
    return None


def _leaves(value: Any):
    """Leaves of nested lists, tuples, dicts and dataclasses (Equinox modules are those)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _leaves(getattr(value, field.name, None))
    else:
        yield value


def find_backend(*values: Any) -> Backend | None:
    """Return the backend of the first framework array among ``values`` (nested), or None.

    Raises ``TypeError`` when arrays of two frameworks are mixed.
    """
    found: str | None = None
    for value in values:
        for leaf in _leaves(value):
            name = _framework_of(leaf)
            if name is None:
                name = getattr(leaf, "fxgx_backend_name", None)
            if name is None:
                continue
            if found is not None and name != found:
                raise TypeError(
                    f"Arrays of two frameworks were mixed ({found} and {name}); "
                    "pass arrays of one framework only."
                )
            found = name
    return None if found is None else backend_by_name(found)


def get_backend(*values: Any, default: str | None = DEFAULT_BACKEND) -> Backend:
    """Return the backend for ``values``; fall back to ``default`` for plain Python/NumPy."""
    backend = find_backend(*values)
    if backend is not None:
        return backend
    if default is None:
        raise TypeError(
            "Could not tell the framework from the arguments: pass tf.Tensor/tf.Variable "
            "or jax.Array values."
        )
    return backend_by_name(default)


def default_backend_name() -> str:
    """TensorFlow when it is installed (the project default), else JAX."""
    for name in (DEFAULT_BACKEND, "jax"):
        try:
            backend_by_name(name)
        except ImportError:
            continue
        return name
    raise ImportError("Neither TensorFlow nor JAX is installed: pip install 'fxgx[tf]'.")


def available_backends() -> list[str]:
    """Names of the backends whose framework can be imported here."""
    names = []
    for name in _REGISTRY:
        try:
            backend_by_name(name)
        except ImportError:
            continue
        names.append(name)
    return names
