"""The framework registry: the only place that decides which framework handles an array.

A framework is a module typed by ``fxgx.backends.framework.Framework`` (implemented by
``tensorflow_backend`` and ``jax_backend``): its ``xp`` is the array API namespace that
fxgx's array code is written against, the rest is what the standard lacks. The framework is
told from the arrays the caller passes, the way einops and ``array_api_compat`` do: the
array's type names its framework, so no framework is imported until an array of it is seen
(``import fxgx`` imports none). Public functions find it once and pass it down.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxgx.backends.framework import Framework

# Framework name -> module prefixes of its array types.
_ARRAY_MODULES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tf_keras", "keras"),
    "jax": ("jax", "jaxlib"),
}

DEFAULT_FRAMEWORK = "tensorflow"

_ALIASES = {"tf": "tensorflow", "tensorflow": "tensorflow", "jax": "jax"}
_EXTRAS = {"tensorflow": "tf", "jax": "jax"}

_LOADED: dict[str, Framework] = {}


def framework_by_name(name: str) -> Framework:
    """The framework module called ``name`` ("tensorflow"/"tf" or "jax").

    Args:
        name: the framework's name.

    Returns:
        The framework module.

    Raises:
        ValueError: the name is not known.
        ImportError: the framework is not installed (the message says which extra to install).
    """
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
        raise ImportError(
            f"The {key} backend needs {key} installed: pip install 'fxgx[{_EXTRAS[key]}]' "
            f"({error})."
        ) from error
    _LOADED[key] = module
    return module


def _protocol_members() -> list[str]:
    """The names a framework module must have: the ``Framework`` protocol's attributes and
    functions."""
    from fxgx.backends.framework import Framework  # noqa: PLC0415 - no import cost otherwise

    names = set(Framework.__annotations__)
    names.update(name for name, value in vars(Framework).items()
                 if callable(value) and not name.startswith("_"))
    return sorted(names)


def register_framework(name: str, module: Any, array_modules: str | tuple[str, ...]) -> None:
    """Make a framework module outside fxgx known to the registry.

    Afterwards ``framework_by_name(name)`` returns ``module``, and ``find_framework``,
    ``get_framework`` and ``array_namespace`` recognise the arrays whose type is defined in
    one of ``array_modules`` (so estimators, distributions and problems run on them). The
    registration lasts for the process.

    Args:
        name: the framework's name; it must be ``module.name`` (fxgx's distributions name
            their framework by it) and not be taken.
        module: a module (or any object) satisfying ``fxgx.backends.framework.Framework``.
        array_modules: the top-level module name(s) of its array types (``"array_api_strict"``).

    Raises:
        ValueError: the name is taken, differs from ``module.name``, or an array module
            already belongs to a framework.
        TypeError: ``module`` lacks members of the protocol, or ``array_modules`` is not a
            string or a tuple of strings.
    """
    if isinstance(array_modules, str):
        array_modules = (array_modules,)
    if (not isinstance(array_modules, tuple) or not array_modules
            or not all(isinstance(prefix, str) and prefix for prefix in array_modules)):
        raise TypeError(
            f"array_modules={array_modules!r} must be a module name or a tuple of them.")
    key = str(name).lower()
    if key in _ALIASES or key in _ARRAY_MODULES:
        raise ValueError(f"A framework named {name!r} is already registered.")
    missing = [member for member in _protocol_members() if not hasattr(module, member)]
    if missing:
        raise TypeError(
            f"{getattr(module, '__name__', module)!r} is not an fxgx framework: it lacks "
            f"{', '.join(missing)} (see fxgx.backends.framework.Framework)."
        )
    if module.name != key:
        raise ValueError(
            f"The framework {name!r} is a module named {module.name!r}; they must match.")
    for other, prefixes in _ARRAY_MODULES.items():
        taken = sorted(set(prefixes) & set(array_modules))
        if taken:
            raise ValueError(f"The arrays of {taken} already belong to the framework {other!r}.")
    _ARRAY_MODULES[key] = array_modules
    _ALIASES[key] = key
    _LOADED[key] = module


def _framework_name_of(value: Any) -> str | None:
    module = type(value).__module__ or ""
    root = module.split(".", 1)[0]
    if root == "keras" and ".backend.jax." in module + ".":
        return "jax"  # a Keras 3 variable of Keras' JAX backend
    for name, prefixes in _ARRAY_MODULES.items():
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


def find_framework(*values: Any) -> Framework | None:
    """The framework of the first framework array among ``values`` (nested), or None.

    An object may name its framework with an ``fxgx_framework_name`` attribute (fxgx's
    distributions do).

    Args:
        *values: arrays, numbers, nested lists/tuples/dicts/dataclasses of them.

    Returns:
        The framework module, or None when no value belongs to a framework.

    Raises:
        TypeError: arrays of two frameworks are mixed.
    """
    found: str | None = None
    for value in values:
        for leaf in _leaves(value):
            name = _framework_name_of(leaf)
            if name is None:
                name = getattr(leaf, "fxgx_framework_name", None)
            if name is None:
                continue
            if found is not None and name != found:
                raise TypeError(
                    f"Arrays of two frameworks were mixed ({found} and {name}); "
                    "pass arrays of one framework only."
                )
            found = name
    return None if found is None else framework_by_name(found)


def get_framework(*values: Any, default: str | None = DEFAULT_FRAMEWORK) -> Framework:
    """The framework of ``values``; ``default`` for plain Python/NumPy values.

    Args:
        *values: as for ``find_framework``.
        default: the framework for values of none (None: a ``TypeError`` instead).

    Returns:
        The framework module.

    Raises:
        TypeError: no value names a framework and there is no default, or two are mixed.
    """
    framework = find_framework(*values)
    if framework is not None:
        return framework
    if default is None:
        raise TypeError(
            "Could not tell the framework from the arguments: pass tf.Tensor/tf.Variable "
            "or jax.Array values."
        )
    return framework_by_name(default)


def array_namespace(*arrays: Any) -> Any:
    """The array API namespace of ``arrays``: fxgx's for TensorFlow, ``jax.numpy`` for JAX,
    and ``array_api_compat``'s for any other array library it knows (NumPy, PyTorch, ...).

    Write an ``f`` once against it (``xp = array_namespace(samples)``) and it runs on every
    framework.

    Args:
        *arrays: arrays of one library (Python numbers are skipped).

    Returns:
        The namespace.

    Raises:
        TypeError: no array of a known library, or arrays of two libraries.
    """
    framework = find_framework(*arrays)
    if framework is not None:
        return framework.xp
    import array_api_compat  # noqa: PLC0415 - only for arrays of no fxgx framework

    return array_api_compat.array_namespace(*arrays)


def default_framework_name() -> str:
    """TensorFlow when it is installed (the project default), else JAX.

    Returns:
        The framework's name.

    Raises:
        ImportError: neither is installed.
    """
    for name in (DEFAULT_FRAMEWORK, "jax"):
        try:
            framework_by_name(name)
        except ImportError:
            continue
        return name
    raise ImportError("Neither TensorFlow nor JAX is installed: pip install 'fxgx[tf]'.")


def available_frameworks() -> list[str]:
    """Names of the frameworks that can be imported here.

    Returns:
        The names, TensorFlow first.
    """
    names = []
    for name in _ARRAY_MODULES:
        try:
            framework_by_name(name)
        except ImportError:
            continue
        names.append(name)
    return names
