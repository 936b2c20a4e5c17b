"""Builds the text corpus embedded in the package: ``jaxvae/data/wordnet_sentences.txt.gz``.

Reads the WordNet 3.0 database files of Debian's ``wordnet-base`` package
(``/usr/share/wordnet/data.noun``, ``data.verb``, ``data.adj``, ``data.adv``, in that
order). On every synset line the gloss follows ``"| "``; its example sentences are the
double-quoted strings in the gloss. Each example is stripped and its whitespace collapsed
to single spaces; empty examples and exact duplicates (after the first) are dropped. The
sentences are written one per line, UTF-8, gzip-compressed with ``mtime=0`` so the output
is byte-for-byte reproducible.

Usage (from the repository root)::

    python scripts/make_wordnet_corpus.py [--source /usr/share/wordnet]

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Used under the
WordNet 3.0 license (see ``jaxvae/data/README.md``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re

PARTS = ("noun", "verb", "adj", "adv")
QUOTED = re.compile(r'"([^"]*)"')
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = "/usr/share/wordnet"
DEFAULT_OUTPUT = os.path.join(HERE, "..", "jaxvae", "data", "wordnet_sentences.txt.gz")


def extract_sentences(source: str) -> list[str]:
    """The example sentences of ``data.{noun,verb,adj,adv}`` in ``source``, in file order,
    without empty ones and duplicates."""
    seen: set[str] = set()
    out: list[str] = []
    for part in PARTS:
        path = os.path.join(source, f"data.{part}")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("  ") or "| " not in line:   # licence header lines
                    continue
                gloss = line.split("| ", 1)[1]
                for example in QUOTED.findall(gloss):
                    sentence = " ".join(example.split())
                    if sentence and sentence not in seen:
                        seen.add(sentence)
                        out.append(sentence)
    return out


def write_corpus(sentences: list[str], output: str) -> None:
    data = "".join(s + "\n" for s in sentences).encode("utf-8")
    with open(output, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                  compresslevel=9, mtime=0) as f:
        f.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    sentences = extract_sentences(args.source)
    write_corpus(sentences, args.output)
    print(f"wrote {os.path.normpath(args.output)}: {len(sentences)} sentences, "
          f"{os.path.getsize(args.output)} bytes")


if __name__ == "__main__":
    main()
