"""Each framework module satisfies ``fxgx.backends.framework.Framework``.

For every member of the protocol the framework has the attribute, and, for a function, its
signature accepts every call the protocol allows: the protocol's positional-only arguments
positionally, its other arguments by name, with and without the optional ones. A function
removed from a framework, or renamed, or given a new required argument fails here (pyright
checks the same statically, where ``fxgx.backends`` returns a module as a ``Framework``).
"""

from __future__ import annotations

import inspect

import pytest

from fxgx.backends import framework as protocol
from fxgx.backends.framework import Framework


def protocol_members():
    """``{name: signature without self}`` of the protocol's functions, ``{name: None}`` of its
    data attributes."""
    members = {name: None for name in Framework.__annotations__}
    for name, value in vars(Framework).items():
        if inspect.isfunction(value) and not name.startswith("_"):
            signature = inspect.signature(value)
            parameters = list(signature.parameters.values())[1:]
            members[name] = signature.replace(parameters=parameters)
    return members


def calls_allowed_by(signature: inspect.Signature):
    """The argument lists the protocol allows: every parameter given, and only the required
    ones; positional-only parameters positionally, the others by name."""
    for include_optional in (True, False):
        positional, keywords = [], {}
        for parameter in signature.parameters.values():
            if parameter.default is not inspect.Parameter.empty and not include_optional:
                continue
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                positional.append(object())
            else:
                keywords[parameter.name] = object()
        yield positional, keywords


def incompatibilities(module, members):
    """One line per protocol member the module lacks or cannot be called as."""
    problems = []
    for name, signature in members.items():
        if not hasattr(module, name):
            problems.append(f"{name}: missing")
            continue
        value = getattr(module, name)
        if signature is None:
            expected = {"name": str, "differentiates_closed_over_arrays": bool}.get(name)
            if expected is not None and not isinstance(value, expected):
                problems.append(f"{name}: expected a {expected.__name__}, got {value!r}")
            continue
        if not callable(value):
            problems.append(f"{name}: not callable")
            continue
        implementation = inspect.signature(value)
        for positional, keywords in calls_allowed_by(signature):
            try:
                implementation.bind(*positional, **keywords)
            except TypeError as error:
                problems.append(
                    f"{name}{implementation} cannot be called as {name}{signature} with "
                    f"{len(positional)} positional and keywords {sorted(keywords)}: {error}")
    return problems


def test_the_protocol_holds_what_the_standard_lacks_and_nothing_it_has():
    members = protocol_members()
    for name in ("name", "xp", "stop_gradient", "magic_box", "split_seed", "uniform",
                 "value_and_gradient", "compile", "sum_over_chunks", "map_over_devices",
                 "concrete_value", "logsumexp"):
        assert name in members, name
    # The array API standard's own functions are the namespace's, not the protocol's.
    for standard in ("sum", "reduce_sum", "where", "concat", "reshape", "astype", "exp",
                     "zeros", "arange", "argmax", "expand_dims", "matmul"):
        assert standard not in members, standard
    assert list(members["logsumexp"].parameters) == ["value", "axis", "keepdims"]
    assert len(members) == 33


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_framework_module_satisfies_the_protocol(backend_name):
    module = pytest.importorskip(f"fxgx.backends.{backend_name}_backend")
    problems = incompatibilities(module, protocol_members())
    assert not problems, "\n".join(problems)
    assert module.name == backend_name


class _StandIn:
    """A framework to break: a copy of the JAX framework's members."""


def test_the_check_fails_for_a_missing_or_incompatible_function():
    module = pytest.importorskip("fxgx.backends.jax_backend")
    members = protocol_members()
    stand_in = _StandIn()
    for name in members:
        setattr(stand_in, name, getattr(module, name))
    assert incompatibilities(stand_in, members) == []
    delattr(stand_in, "fold_in")  # removed
    stand_in.logsumexp = lambda value, axes=None, keepdims=False: value  # keyword renamed
    stand_in.sigmoid = lambda value, scale: value  # a new required argument
    stand_in.differentiates_closed_over_arrays = "yes"  # the wrong type
    problems = incompatibilities(stand_in, members)
    assert {line.split("(")[0].split(":")[0] for line in problems} == {
        "fold_in", "logsumexp", "sigmoid", "differentiates_closed_over_arrays"}, problems


def test_protocol_module_imports_no_framework():
    source = inspect.getsource(protocol)
    assert "import tensorflow" not in source and "import jax" not in source
