"""Each backend module satisfies ``fxgx.backends.protocol.Backend``.

For every member of the protocol the backend has the attribute, and, for a function, its
signature accepts every call the protocol allows: the protocol's positional-only arguments
positionally, its other arguments by name, with and without the optional ones. A function
removed from a backend, or renamed, or given a new required argument fails here (pyright
checks the same statically, where ``fxgx.backends`` returns a module as a ``Backend``).
"""

from __future__ import annotations

import inspect

import pytest

from fxgx.backends import protocol
from fxgx.backends.protocol import Backend


def protocol_members():
    """``{name: signature without self}`` of the protocol's functions, ``{name: None}`` of its
    data attributes."""
    members = {name: None for name in Backend.__annotations__}
    for name, value in vars(Backend).items():
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
            if not isinstance(value, str):
                problems.append(f"{name}: expected a str, got {value!r}")
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


def test_the_protocol_lists_the_functions_estimator_code_uses():
    members = protocol_members()
    assert len(members) > 50
    for name in ("name", "stop_gradient", "reduce_sum", "where", "split_seed", "uniform",
                 "value_and_gradient", "compile"):
        assert name in members, name
    assert members["reduce_sum"] is not None
    assert list(members["reduce_sum"].parameters) == ["value", "axis", "keepdims"]


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_backend_module_satisfies_the_protocol(backend_name):
    module = pytest.importorskip(f"fxgx.backends.{backend_name}_backend")
    problems = incompatibilities(module, protocol_members())
    assert not problems, "\n".join(problems)
    assert module.name == backend_name


class _StandIn:
    """A backend to break: a copy of the JAX backend's members."""


def test_the_check_fails_for_a_missing_or_incompatible_function():
    module = pytest.importorskip("fxgx.backends.jax_backend")
    members = protocol_members()
    stand_in = _StandIn()
    for name in members:
        setattr(stand_in, name, getattr(module, name))
    assert incompatibilities(stand_in, members) == []
    delattr(stand_in, "where")  # removed
    stand_in.reduce_sum = lambda value, axes=None, keepdims=False: value  # keyword renamed
    stand_in.exp = lambda value, scale: value  # a new required argument
    problems = incompatibilities(stand_in, members)
    assert {line.split("(")[0].split(":")[0] for line in problems} == {
        "where", "reduce_sum", "exp"}, problems


def test_protocol_module_imports_no_framework():
    source = inspect.getsource(protocol)
    assert "import tensorflow" not in source and "import jax" not in source
