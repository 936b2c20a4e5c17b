"""Sphinx configuration of the jaxvae documentation site.

Build (warnings are errors):  python -m sphinx -W --keep-going -b html docs docs/_build/html

The API pages are generated from the docstrings: ``api.rst`` lists every function and
class of ``jaxvae.__all__`` (written here at build time, so a new public name gets a page
without anyone editing a list) and every public module; ``check_api_coverage`` then fails
the build when a name of ``jaxvae.__all__`` has no documented object or no docstring.
"""

from __future__ import annotations

import inspect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jaxvae  # noqa: E402

project = "jaxvae"
author = "the jaxvae developers"
copyright = "2026, the jaxvae developers"
release = jaxvae.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.mathjax", "sphinx.ext.viewcode", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_api/.doctrees"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"          # the docstrings state shapes and types in words
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "furo"
html_title = f"jaxvae {release}"
suppress_warnings = ["myst.xref_missing"]   # links into the repository (benchmarks/, ...)


def _public_names():
    """``(objects, modules)``: the names of ``jaxvae.__all__`` by kind."""
    objects, modules = [], []
    for name in sorted(jaxvae.__all__):
        (modules if inspect.ismodule(getattr(jaxvae, name)) else objects).append(name)
    return objects, modules


def _write_api_page() -> None:
    objects, modules = _public_names()
    lines = ["API reference", "=============", "",
             "Every public name of ``jaxvae`` (``jaxvae.__all__``), generated from the "
             "docstrings; each page links to its source.", "",
             ".. currentmodule:: jaxvae", "", "Functions and classes", "---------------------",
             "", ".. autosummary::", "   :toctree: _api", "",
             *(f"   {name}" for name in objects), "", "Modules", "-------", "",
             ".. autosummary::", "   :toctree: _api", "",
             *(f"   {name}" for name in modules), ""]
    text = "\n".join(lines)
    path = os.path.join(HERE, "api.rst")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


def _doc(name: str):
    """The docstring of ``jaxvae.<name>`` (a container's: its ``#:`` comment)."""
    obj = getattr(jaxvae, name)
    doc = inspect.getdoc(obj)
    if not inspect.ismodule(obj) and doc == inspect.getdoc(type(obj)):
        return "\n".join(_attribute_doc(f"jaxvae.{name}"))
    return doc


def check_api_coverage(app, env) -> None:
    """Fails the build when a name of ``jaxvae.__all__`` is undocumented."""
    documented = set(env.get_domain("py").objects) | {
        name for name, *_ in env.get_domain("py").get_objects()}
    objects, modules = _public_names()
    missing = [n for n in objects + modules if f"jaxvae.{n}" not in documented]
    empty = [n for n in objects + modules if not _doc(n)]
    if missing or empty:
        from sphinx.errors import ExtensionError

        raise ExtensionError(f"undocumented public names: {missing}; without a docstring: "
                             f"{empty}")


SECTIONS = ("Args:", "Returns:", "Raises:", "Reference:", "References:", "Attributes:",
            "Example:", "Examples:", "Yields:", "Note:")


def _escape_bars(line: str) -> str:
    """``|`` as an absolute value or a norm, not a substitution (inline literals untouched)."""
    parts = line.split("``")
    return "``".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _attribute_doc(name: str) -> list[str]:
    """The ``#:`` comment above a module attribute (``jaxvae.PRESETS``), from the module of
    the library that defines it."""
    from sphinx.pycode import ModuleAnalyzer

    short, obj = name.rsplit(".", 1)[-1], eval(name, {"jaxvae": jaxvae})  # noqa: S307
    for modname, module in sorted(sys.modules.items()):
        if modname.startswith("jaxvae.") and getattr(module, short, None) is obj:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", short))
            if docs:
                return list(docs)
    return []


def plain_docstrings_as_rst(app, what, name, obj, options, lines) -> None:
    """The docstrings' plain-text conventions as reStructuredText, before napoleon reads
    them: ``|x|`` is an absolute value (outside math), and a section line (``Returns: ...``) after a
    paragraph starts a new block (the docstrings often write a section on one line)."""
    if what == "data" and "\n".join(lines).strip() == (inspect.getdoc(type(obj)) or "").strip():
        lines[:] = _attribute_doc(name)          # a dict or tuple: its ``#:`` comment
    out, math_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if math_indent is not None and line.strip() and indent <= math_indent:
            math_indent = None                   # the end of a ``.. math::`` block
        if line.lstrip().startswith(".. math::"):
            math_indent = indent
        if line.lstrip().startswith(SECTIONS) and out and out[-1].strip():
            out.append("")
        out.append(line if math_indent is not None or ":math:" in line else _escape_bars(line))
    lines[:] = out


def setup(app):
    import shutil

    shutil.rmtree(os.path.join(HERE, "_api"), ignore_errors=True)   # no stale API stubs
    _write_api_page()
    app.connect("autodoc-process-docstring", plain_docstrings_as_rst, priority=400)
    app.connect("env-check-consistency", check_api_coverage)
