"""The layering of docs/design.md, checked on the source: what each floor may import."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "jaxvae"
FILES = sorted(ROOT.rglob("*.py"))
MODULES = {p: ".".join(p.relative_to(ROOT.parent).with_suffix("").parts) for p in FILES}


def imports(path):
    """Fully qualified names imported by ``path`` (``from a import b`` gives ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def rel(path):
    return str(path.relative_to(ROOT.parent))


@pytest.mark.parametrize("name", ["objectives.py", "flows.py", "types.py", "_checks.py"])
def test_mathematics_imports_no_flax(name):
    assert not {n for n in imports(ROOT / name) if n.split(".")[0] == "flax"}


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.py")), ids=rel)
def test_models_import_nothing_above_them(path):
    allowed = ("jaxvae.flows", "jaxvae.likelihoods", "jaxvae.types", "jaxvae._checks",
               "jaxvae.models")
    own = {n for n in imports(path) if n.startswith("jaxvae")}
    bad = {n for n in own if not n.startswith(allowed)}
    assert not bad, f"{rel(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_no_private_names_cross_modules(path):
    """``from jaxvae.x import _y`` and ``x._y`` for another jaxvae module are refused; the
    shared checks live in the public functions of ``jaxvae._checks``."""
    source = path.read_text()
    shared = {"jaxvae._checks", "jaxvae._cache"}      # modules of shared helpers
    private_imports = {n for n in imports(path)
                       if n.startswith("jaxvae") and n.rsplit(".", 1)[-1].startswith("_")
                       and not n.endswith("__") and n not in shared}
    assert not private_imports
    sibling = "|".join(m.rsplit(".", 1)[-1] for m in MODULES.values() if "__init__" not in m)
    uses = re.findall(rf"\b(?:{sibling})\._[a-z]\w*", source)
    assert not uses, f"{rel(path)} uses {uses}"


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_library_never_imports_examples_or_benchmarks(path):
    assert not {n for n in imports(path) if n.split(".")[0] in ("examples", "benchmarks")}


def applies_by_method(path) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "apply" and any(k.arg == "method" for k in node.keywords)
               for node in ast.walk(ast.parse(path.read_text())))


def test_only_terms_applies_models_by_method_name():
    """Models may apply themselves; everything else reaches a model through jaxvae.terms."""
    offenders = [rel(p) for p in FILES if p.name != "terms.py" and p.parent.name != "models"
                 and applies_by_method(p)]
    assert not offenders
    assert applies_by_method(ROOT / "terms.py")


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_library_files_fit_the_size_limit(path):
    assert len(path.read_text().splitlines()) <= 360
