"""Every public name of the documented modules has a Google-style docstring.

The API reference (``docs/api/*.md``, rendered by mkdocstrings) is made from these docstrings,
so a missing one is a hole in the site. The public names of a module are its ``__all__``, or,
without one, the functions and classes defined in it whose names do not start with ``_``.

- A function needs a docstring; an ``Args:`` section when it takes parameters (other than
  ``*args``/``**kwargs`` alone); a ``Returns:`` section when it returns a value (its return
  annotation is not ``None``, or its source has a ``return`` with a value).
- A class needs a docstring; a dataclass an ``Attributes:`` section; any other class whose
  ``__init__`` takes parameters an ``Args:`` section in the class or ``__init__`` docstring.
  Its public methods (and ``__call__``) follow the rule for functions, its properties need a
  docstring; an override may inherit the docstring of the method it overrides.
- Constants (``__version__``, ``DEFAULT_PROBLEM``) carry no docstring of their own and are
  skipped.

The check reads the sources with :mod:`inspect` and :mod:`ast`; it imports neither TensorFlow
nor JAX.
"""

import ast
import dataclasses
import importlib
import inspect
import textwrap

import pytest

MODULES = [
    "fxgx",
    "fxgx.core.custom_gradient",
    "fxgx.backends",
    "fxgx.catalogue",
    "fxgx.distributions",
    "fxgx.estimators",
    "fxgx.problems",
    "fxgx.testing",
    "fxgx.vi",
    "fxgx.vi.expectation",
]


def public_names(module) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    )


def has_section(docstring: str, section: str) -> bool:
    return any(line.strip() == f"{section}:" for line in docstring.splitlines())


def documented_parameters(function) -> list[str]:
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return [
        parameter.name
        for parameter in parameters
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def returns_value(function) -> bool:
    annotation = inspect.signature(function).return_annotation
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None")
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]

    def walk(node):  # the function's own statements, not those of nested functions
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            yield child
            yield from walk(child)

    return any(
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        for node in walk(definition)
    )


def function_problems(function) -> list[str]:
    docstring = inspect.getdoc(function) or ""
    if not docstring:
        return ["no docstring"]
    problems = []
    if documented_parameters(function) and not has_section(docstring, "Args"):
        problems.append("no Args: section")
    if returns_value(function) and not (
        has_section(docstring, "Returns") or has_section(docstring, "Yields")
    ):
        problems.append("no Returns: section")
    return problems


def class_problems(cls) -> list[str]:
    docstring = cls.__doc__ or ""  # not inspect.getdoc: a base class's docstring is not one
    if not docstring.strip():
        return ["no docstring"]
    if dataclasses.is_dataclass(cls):
        fields = [field for field in dataclasses.fields(cls) if field.init]
        if fields and not has_section(docstring, "Attributes"):
            return ["dataclass without an Attributes: section"]
        return []
    init = cls.__dict__.get("__init__")
    if init is None or not inspect.isfunction(init) or not documented_parameters(init):
        return []
    if has_section(docstring, "Args") or has_section(inspect.getdoc(init) or "", "Args"):
        return []
    return ["__init__ takes parameters but no Args: section documents them"]


def member_problems(cls) -> list[str]:
    problems = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(member, property):
            if not inspect.getdoc(getattr(cls, name)):
                problems.append(f"{name}: a property without a docstring")
            continue
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if inspect.isfunction(member):
            problems += [f"{name}: {problem}" for problem in function_problems(member)]
    return problems


def undocumented(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    problems = []
    if not (module.__doc__ or "").strip():
        problems.append(f"{module_name}: no module docstring")
    for name in public_names(module):
        value = getattr(module, name)
        if inspect.isclass(value):
            found = class_problems(value)
            if value.__module__.startswith("fxgx."):
                found += member_problems(value)
        elif inspect.isfunction(value):
            found = function_problems(value)
        else:
            continue  # a constant
        problems += [f"{module_name}.{name}: {problem}" for problem in found]
    return problems


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_google_style_docstrings(module_name):
    problems = undocumented(module_name)
    assert not problems, "\n".join(problems)


class ExamplePlain:
    """Takes a value (an example for the self-test below).

    Args:
        value: the value.
    """

    def __init__(self, value):
        self.value = value

    @property
    def doubled(self):
        return 2 * self.value

    def scaled(self, factor):
        """The value times ``factor``."""
        return factor * self.value


class ExampleChild(ExamplePlain):
    def scaled(self, factor):
        return factor * self.value


def test_the_check_finds_what_is_missing():
    def documented(value, scale=2.0):
        """Scale a value.

        Args:
            value: the value.
            scale: the factor.

        Returns:
            ``value * scale``.
        """
        return value * scale

    def no_returns(value):
        """Scale a value.

        Args:
            value: the value.
        """
        return 2 * value

    def no_args(value) -> None:
        """Print a value."""
        print(value)

    def without_docstring():
        pass

    @dataclasses.dataclass
    class Record:
        """A record without its fields described."""

        value: float


    assert function_problems(documented) == []
    assert function_problems(no_returns) == ["no Returns: section"]
    assert function_problems(no_args) == ["no Args: section"]
    assert function_problems(without_docstring) == ["no docstring"]
    assert class_problems(Record) == ["dataclass without an Attributes: section"]
    assert class_problems(ExamplePlain) == []
    assert member_problems(ExamplePlain) == [
        "doubled: a property without a docstring",
        "scaled: no Args: section",
        "scaled: no Returns: section",
    ]
    # The override inherits the docstring of the method it overrides.
    assert member_problems(ExampleChild) == member_problems(ExamplePlain)[1:]
