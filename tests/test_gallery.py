"""docs/gallery.md against the figures in the repository (no jax: reads files only).

* every PNG or GIF tracked by git, or present under docs/images/ or benchmarks/results/
  (smoke-run folders ``quick/`` and ``*-quick/`` and run directories ``runs/`` excepted:
  they are never committed), is linked from the gallery by its path relative to docs/;
* every image or link target in the gallery that names a .png or .gif exists;
* every figure is followed, within its section, by a ``python ...`` command whose script
  exists.
"""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
GALLERY = os.path.join(DOCS, "gallery.md")
FIGURE_DIRS = ("docs/images", "benchmarks/results")
EXTENSIONS = (".png", ".gif")

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
COMMAND = re.compile(r"`(python [^`]+)`")


def is_smoke_output(path: str) -> bool:
    """Paths in a ``quick/``, ``*-quick/`` or ``runs/`` folder (see .gitignore: smoke runs
    and the run directories a table trains, checkpoints and all)."""
    parts = path.split("/")[:-1]
    return any(p in ("quick", "runs") or p.endswith("-quick") for p in parts)


def tracked_figures() -> set[str]:
    """PNG and GIF files tracked by git (empty when git or the repository is absent)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "*.png", "*.gif"], cwd=ROOT,
                             capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    if out.returncode != 0:
        return set()
    return {p for p in out.stdout.decode().split("\0") if p}


def present_figures() -> set[str]:
    """PNG and GIF files under FIGURE_DIRS, smoke-run output left out."""
    found = set()
    for top in FIGURE_DIRS:
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.lower().endswith(EXTENSIONS):
                    rel = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
                    if not is_smoke_output(rel):
                        found.add(rel)
    return found


def from_docs(path: str) -> str:
    """A repository path as a link from docs/."""
    return os.path.relpath(os.path.join(ROOT, path), DOCS).replace(os.sep, "/")


def sections(text: str) -> list[str]:
    """The gallery cut at its Markdown headings (outside code fences)."""
    parts, current, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6}\s", line):
            parts.append("\n".join(current))
            current = []
        current.append(line)
    parts.append("\n".join(current))
    return parts


def figure_links(text: str) -> list[re.Match]:
    return [m for m in LINK.finditer(text) if m.group(1).lower().endswith(EXTENSIONS)]


@pytest.fixture(scope="module")
def gallery() -> str:
    assert os.path.exists(GALLERY), "docs/gallery.md is missing"
    with open(GALLERY, encoding="utf-8") as f:
        return f.read()


def test_smoke_output_filter():
    assert is_smoke_output("benchmarks/results/estimator_variance/quick/snr_vs_k.png")
    assert is_smoke_output("benchmarks/results/nf_table-quick/x.png")
    assert not is_smoke_output("benchmarks/results/estimator_variance/snr_vs_k.png")
    assert not is_smoke_output("docs/images/quick.png")


def test_every_figure_is_in_the_gallery(gallery):
    linked = {m.group(1) for m in figure_links(gallery)}
    figures = tracked_figures() | present_figures()
    assert figures, "no figures found"
    missing = sorted(p for p in figures if from_docs(p) not in linked)
    assert not missing, ("figures not linked from docs/gallery.md (as their path relative "
                         "to docs/):\n" + "\n".join(missing))


def test_every_gallery_link_exists(gallery):
    links = [m.group(1) for m in figure_links(gallery)]
    assert links, "docs/gallery.md links no figures"
    absent = sorted({p for p in links if not os.path.isfile(os.path.join(DOCS, p))})
    assert not absent, "docs/gallery.md links missing files:\n" + "\n".join(absent)


def test_every_figure_is_followed_by_its_command(gallery):
    without = []
    for section in sections(gallery):
        for link in figure_links(section):
            if not COMMAND.search(section, link.end()):
                without.append(link.group(1))
    assert not without, ("figures with no `python ...` command after them in their "
                         "section:\n" + "\n".join(without))


def test_commands_name_existing_scripts(gallery):
    bad = []
    for command in COMMAND.findall(gallery):
        script = command.split()[1]
        if script != "-m" and not os.path.isfile(os.path.join(ROOT, script)):
            bad.append(command)
    assert not bad, "commands naming missing scripts:\n" + "\n".join(bad)
