"""fxgx's TensorFlow array API namespace agrees with the standard: the same names, the same
parameters, the same results as ``array_api_strict`` (the standard's reference namespace) on
the calls fxgx makes. A function given another parameter name or kind, or other semantics
(a reverse ``flip``, an inclusive ``cumulative_sum`` prefix), fails here."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
strict = pytest.importorskip("array_api_strict")

from fxgx.backends import tensorflow_array_api as shim  # noqa: E402

EXTENSIONS = {"float16", "bfloat16"}  # jax.numpy has them too; the standard does not


def public_names():
    return sorted(name for name, value in vars(shim).items()
                  if not name.startswith("_") and name not in EXTENSIONS
                  and not inspect.ismodule(value) and name != "annotations")


def test_every_name_is_the_standards():
    missing = [name for name in public_names() if not hasattr(strict, name)]
    assert not missing, missing


@pytest.mark.parametrize("name", [name for name in public_names()
                                  if inspect.isfunction(getattr(shim, name))])
def test_parameters_are_the_standards(name):
    ours = inspect.signature(getattr(shim, name)).parameters.values()
    theirs = inspect.signature(getattr(strict, name)).parameters.values()

    def described(parameters):
        return [(parameter.name, parameter.kind is inspect.Parameter.KEYWORD_ONLY)
                for parameter in parameters]

    assert described(ours) == described(theirs)


MATRIX = np.array([[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]], np.float32)
VECTOR = np.array([1.0, -2.0, 0.5], np.float32)

#: (name, positional arguments as a function of a namespace and its array maker, keywords or
#: a function of the namespace giving them).
CALLS = [
    ("sum", lambda x, a: (a(MATRIX),), {"axis": (0, 1)}),
    ("sum", lambda x, a: (a(MATRIX),), {"axis": -1, "keepdims": True}),
    ("mean", lambda x, a: (a(MATRIX),), {"axis": 0}),
    ("argmax", lambda x, a: (a(MATRIX),), {"axis": -1}),
    ("cumulative_sum", lambda x, a: (a(MATRIX),), {"axis": 1, "include_initial": True}),
    ("cumulative_sum", lambda x, a: (a(VECTOR),), {}),
    ("flip", lambda x, a: (a(MATRIX),), {"axis": 1}),
    ("where", lambda x, a: (x.greater(a(MATRIX), 0.0), a(MATRIX), 0.0), {}),
    ("maximum", lambda x, a: (a(MATRIX), 0.5), {}),
    ("minimum", lambda x, a: (a(VECTOR), a(VECTOR) * 0.0), {}),
    ("expand_dims", lambda x, a: (a(VECTOR),), {"axis": 0}),
    ("concat", lambda x, a: ([a(MATRIX), a(MATRIX)],), {"axis": -1}),
    ("stack", lambda x, a: ([a(VECTOR), a(VECTOR)],), {"axis": 1}),
    ("tile", lambda x, a: (a(VECTOR), (2, 1)), {}),
    ("permute_dims", lambda x, a: (a(MATRIX), (1, 0)), {}),
    ("reshape", lambda x, a: (a(MATRIX), (3, 2)), {}),
    ("broadcast_to", lambda x, a: (a(VECTOR), (2, 3)), {}),
    ("matmul", lambda x, a: (a(MATRIX), x.permute_dims(a(MATRIX), (1, 0))), {}),
    ("astype", lambda x, a: (a(MATRIX), x.int32), {}),
    ("arange", lambda x, a: (4,), lambda x: {"dtype": x.float32}),
    ("zeros", lambda x, a: ((2, 3),), lambda x: {"dtype": x.float64}),
    ("ones_like", lambda x, a: (a(VECTOR),), {}),
    ("equal", lambda x, a: (a(VECTOR), 0.5), {}),
    ("less", lambda x, a: (a(VECTOR), a(VECTOR) * 0.5), {}),
    ("abs", lambda x, a: (a(VECTOR),), {}),
    ("log1p", lambda x, a: (x.abs(a(VECTOR)),), {}),
    ("isfinite", lambda x, a: (a(VECTOR) / 0.0,), {}),
]


@pytest.mark.parametrize("name, arguments, keywords", CALLS,
                         ids=[f"{name}-{index}" for index, (name, _, _) in enumerate(CALLS)])
def test_results_are_the_standards(name, arguments, keywords):
    def run(namespace, make):
        options = keywords(namespace) if callable(keywords) else keywords
        result = getattr(namespace, name)(*arguments(namespace, make), **options)
        return np.asarray(result.numpy() if hasattr(result, "numpy") else result)

    with np.errstate(divide="ignore", invalid="ignore"):
        expected = run(strict, strict.asarray)
    actual = run(shim, tf.constant)
    assert actual.shape == expected.shape
    assert actual.dtype.kind == expected.dtype.kind
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_dtype_queries_are_the_standards():
    assert shim.isdtype(shim.float32, "real floating") and shim.isdtype(shim.bfloat16,
                                                                         "real floating")
    assert not shim.isdtype(shim.int32, "real floating")
    assert shim.isdtype(shim.int32, ("bool", "signed integer"))
    assert shim.finfo(shim.float32).eps == strict.finfo(strict.float32).eps
    assert shim.finfo(tf.constant(1.0, tf.float64)).eps == strict.finfo(strict.float64).eps


def test_a_missing_function_names_the_shim():
    with pytest.raises(AttributeError, match="tensorflow_array_api.py"):
        shim.linspace  # noqa: B018 - the attribute access is the test
