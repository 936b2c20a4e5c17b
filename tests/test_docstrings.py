"""The public API is documented: every function in ``jaxvae.__all__`` says what it returns,
and every class (and each public method it defines) has a docstring of its own."""

import inspect

import pytest

import jaxvae

# Functions whose docstring need not have a "Returns" section, with the reason.
NO_RETURNS = {
    "check_batch": "a validator: returns None and raises ValueError for a bad batch",
}

_PUBLIC = [getattr(jaxvae, name) for name in jaxvae.__all__]
FUNCTIONS = sorted((obj for obj in _PUBLIC if inspect.isfunction(obj)),
                   key=lambda f: f.__name__)
CLASSES = sorted((obj for obj in _PUBLIC if inspect.isclass(obj)), key=lambda c: c.__name__)


def _own_doc(cls) -> str:
    """The class's own docstring, not an inherited one nor the signature that
    ``NamedTuple`` and ``dataclass`` write for an undocumented class."""
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(f"{cls.__name__}(") else doc.strip()


def _own_methods(cls):
    """(name, function) for the public methods and properties that ``cls`` itself defines."""
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, property):
            value = value.fget
        elif isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) and value.__module__.startswith("jaxvae"):
            yield name, value


def test_the_lists_are_not_empty():
    assert len(FUNCTIONS) > 30 and len(CLASSES) > 20
    assert set(NO_RETURNS) <= {f.__name__ for f in FUNCTIONS}, "stale NO_RETURNS entry"


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_function_docstring_says_what_it_returns(fn):
    doc = inspect.getdoc(fn)
    assert doc, f"jaxvae.{fn.__name__} has no docstring"
    if fn.__name__ not in NO_RETURNS:
        assert "Returns" in doc, f"jaxvae.{fn.__name__}: the docstring has no Returns section"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_has_its_own_docstring(cls):
    assert _own_doc(cls), f"jaxvae.{cls.__name__} has no docstring of its own"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_public_methods_have_docstrings(cls):
    missing = [name for name, fn in _own_methods(cls) if not (fn.__doc__ or "").strip()]
    assert not missing, f"jaxvae.{cls.__name__}: methods without a docstring: {missing}"
