"""Text data for sentence models: a tokenizer, a vocabulary, padded batches, corpora by name.

* :func:`tokenize` splits a sentence into lower-case word and punctuation tokens;
* :class:`Vocabulary` maps tokens to ids, with the specials ``<pad>`` = 0, ``<unk>`` = 1,
  ``<bos>`` = 2 and ``<eos>`` = 3; it is built from sentences by count and saved as a
  plain JSON list;
* :func:`encode_batch` turns sentences into ``int32`` id rows ``<bos> w1 .. wn <eos>``
  padded with ``<pad>``, a ``bool`` mask and ``int32`` lengths;
* :func:`load_text` returns a :class:`TextData` by name: ``"wordnet"`` (the WordNet 3.0
  example sentences shipped in the package; see ``jaxvae/data/README.md``) or
  ``"text:PATH"`` (a UTF-8 file with one sentence per line, or a directory of split files).

Every problem with a name, a split, a file or a sentence raises :class:`DataError`.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from jaxvae.data.errors import DataError

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "TEXT_SPLITS", "TOKEN_PATTERN",
           "TextData", "Vocabulary", "encode_batch", "load_text", "tokenize"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
TEXT_SPLITS = ("train", "valid", "test", "all")
EMBEDDED_FILE = "wordnet_sentences.txt.gz"
SPLIT_PERIOD = 20            # every 20th sentence: offset 0 is test, offset 1 is valid

# A token is a word: a run of letters or digits, with single inner apostrophes or hyphens
# joining further runs ("don't", "well-known", "3-d"); or any single other character that
# is not whitespace (punctuation: ",", ".", "?", "'", "-", "_", ...).
TOKEN_PATTERN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_")


def tokenize(sentence: str) -> list[str]:
    """Split ``sentence`` into tokens after lower-casing it.

    Words are runs of letters or digits that may contain single inner apostrophes or
    hyphens (``"Don't"`` -> ``"don't"``, ``"well-known"``); every other non-space character
    is a token of its own (``"end."`` -> ``["end", "."]``). See :data:`TOKEN_PATTERN`.

    Returns:
        The list of tokens, in order.
    """
    return TOKEN_PATTERN.findall(sentence.lower())


def _as_tokens(sentence: str | Sequence[str]) -> list[str]:
    return tokenize(sentence) if isinstance(sentence, str) else list(sentence)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Tokens and their ids: ``tokens[i]`` has id ``i``; the first four are the specials
    ``<pad>`` (0), ``<unk>`` (1), ``<bos>`` (2) and ``<eos>`` (3)."""

    tokens: tuple[str, ...]
    _index: dict = dataclasses.field(init=False, repr=False, compare=False)

    PAD, UNK, BOS, EOS = PAD, UNK, BOS, EOS
    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __post_init__(self):
        tokens = tuple(self.tokens)
        if tokens[:4] != SPECIALS:
            raise DataError(f"a vocabulary starts with the specials {list(SPECIALS)}, "
                            f"got {list(tokens[:4])}")
        if not all(isinstance(t, str) for t in tokens):
            raise DataError("vocabulary tokens must be strings")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise DataError(f"duplicate vocabulary tokens: {dup[:10]}")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, sentences: Iterable[str | Sequence[str]], min_count: int = 1,
              max_size: int | None = None) -> Vocabulary:
        """Count the tokens of ``sentences`` (strings are :func:`tokenize`-d, token lists
        used as they are) and keep those seen at least ``min_count`` times, ordered by
        count descending with ties broken alphabetically, after the four specials.
        ``max_size`` (if given, at least 4) bounds the size *including* the specials.

        Returns:
            The :class:`Vocabulary`.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise DataError(f"min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < len(SPECIALS)):
            raise DataError(f"max_size must be None or an integer >= {len(SPECIALS)} "
                            f"(it counts the specials), got {max_size!r}")
        counts = Counter(t for s in sentences for t in _as_tokens(s) if t not in SPECIALS)
        kept = sorted((t for t, n in counts.items() if n >= min_count),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - len(SPECIALS)]
        return cls(SPECIALS + tuple(kept))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: str | Sequence[str]) -> list[int]:
        """The ids of ``tokens`` (a string is :func:`tokenize`-d first); unknown tokens get
        the id of ``<unk>``. No ``<bos>``/``<eos>`` is added.

        Returns:
            A list of ``int`` ids.
        """
        index, unk = self._index, self.unk_id
        return [index.get(t, unk) for t in _as_tokens(tokens)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids`` (specials included).

        Returns:
            A list of token strings.
        """
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise DataError(f"token id {i} is outside the vocabulary of size "
                                f"{len(self.tokens)}")
            out.append(self.tokens[i])
        return out

    def to_json(self) -> list[str]:
        """The vocabulary as a plain JSON-serializable list of its tokens (for checkpoints).

        Returns:
            ``list(self.tokens)``.
        """
        return list(self.tokens)

    @classmethod
    def from_json(cls, data: Sequence[str]) -> Vocabulary:
        """The inverse of :meth:`to_json`.

        Returns:
            The :class:`Vocabulary` whose tokens are ``data``.
        """
        if isinstance(data, str) or not isinstance(data, Sequence):
            raise DataError(f"a vocabulary is stored as a list of tokens, got "
                            f"{type(data).__name__}")
        return cls(tuple(data))


def encode_batch(sentences: Sequence[str | Sequence[str]], vocab: Vocabulary,
                 max_length: int, overflow: str = "truncate"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode sentences (strings are :func:`tokenize`-d) as padded id rows.

    Row ``i`` is ``<bos> w1 .. wn <eos>`` followed by ``<pad>`` up to ``max_length + 2``
    columns. A sentence of more than ``max_length`` tokens is, with
    ``overflow="truncate"``, cut to its first ``max_length`` tokens and still ends with
    ``<eos>``; with ``overflow="error"`` it raises :class:`DataError` naming the sentence's
    index and its length.

    Returns:
        ``(ids, mask, lengths)``: ``ids`` ``int32 [N, max_length + 2]``; ``mask``
        ``bool [N, max_length + 2]``, true on ``<bos>`` .. ``<eos>``; ``lengths``
        ``int32 [N]``, the number of true mask entries (kept tokens + 2).
    """
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) \
            or max_length < 1:
        raise DataError(f"max_length must be an integer >= 1, got {max_length!r}")
    if overflow not in ("truncate", "error"):
        raise DataError(f"overflow must be 'truncate' or 'error', got {overflow!r}")
    if isinstance(sentences, str):
        raise DataError("encode_batch takes a sequence of sentences, not one string")
    width = int(max_length) + 2
    ids = np.full((len(sentences), width), vocab.pad_id, dtype=np.int32)
    lengths = np.zeros(len(sentences), dtype=np.int32)
    for i, sentence in enumerate(sentences):
        row = vocab.encode(sentence)
        if len(row) > max_length:
            if overflow == "error":
                raise DataError(f"sentence {i} has {len(row)} tokens, more than "
                                f"max_length={max_length}")
            row = row[:max_length]
        n = len(row) + 2
        ids[i, :n] = [vocab.bos_id, *row, vocab.eos_id]
        lengths[i] = n
    mask = np.arange(width)[None, :] < lengths[:, None]
    return ids, mask, lengths


class TextData(NamedTuple):
    """A list of sentences (strings, one per line of the source) and the corpus name."""

    sentences: list[str]
    name: str


def _decode(data: bytes, source: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{source} is not UTF-8: invalid byte at offset {e.start}") from None
    lines = (line.strip() for line in text.removeprefix("\ufeff").split("\n"))
    return [line for line in lines if line]


def _read_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    sentences = _decode(data, path)
    if not sentences:
        raise DataError(f"no sentences in {path}")
    return sentences


def _split_lines(sentences: list[str], split: str, source: str) -> list[str]:
    if split == "all":
        return sentences
    offset = {"test": 0, "valid": 1}.get(split)
    out = [s for i, s in enumerate(sentences)
           if (i % SPLIT_PERIOD == offset if offset is not None else i % SPLIT_PERIOD > 1)]
    if not out:
        raise DataError(f"no sentences in the {split} split of {source} "
                        f"({len(sentences)} sentences in all)")
    return out


def _split_file(directory: str, split: str) -> str:
    names = (f"{split}.txt", f"ptb.{split}.txt")
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"no such file: {os.path.join(directory, names[0])} "
                    f"(nor {names[1]}) for the {split} split")


def load_text(name: str = "wordnet", split: str = "train") -> TextData:
    """Load a text corpus by name: one sentence per non-blank line, stripped.

    Names: ``"wordnet"``, the WordNet 3.0 example sentences shipped in the package;
    ``"text:PATH"`` with PATH a UTF-8 file (``.gz`` is decompressed) with one sentence per
    line, blank lines skipped; or ``"text:DIR"`` with DIR a directory holding
    ``train.txt``, ``valid.txt`` and ``test.txt`` (or Penn Treebank's ``ptb.train.txt``,
    ``ptb.valid.txt``, ``ptb.test.txt``); or ``"tfds:NAME"`` for a TFDS text data set
    (``lm1b``, ``imdb_reviews``, ``yelp_polarity_reviews``, ``ag_news_subset``, or any with
    a ``text`` feature; one example per sentence; needs tensorflow-datasets).

    Splits: ``"train"``, ``"valid"``, ``"test"`` and ``"all"``. For the embedded corpus and
    a single file, sentence ``i`` (counted after blank lines are skipped) is in ``test``
    when ``i % 20 == 0``, in ``valid`` when ``i % 20 == 1`` and in ``train`` otherwise;
    ``all`` is every sentence in file order. For a directory the files are the splits and
    ``all`` is train, valid and test concatenated.

    Returns:
        The :class:`TextData` of the split.
    """
    if split not in TEXT_SPLITS:
        raise DataError(f"unknown split {split!r}; accepted: {', '.join(TEXT_SPLITS)}")
    if name == "wordnet":
        data = importlib.resources.files("jaxvae.data").joinpath(EMBEDDED_FILE).read_bytes()
        sentences = _decode(gzip.decompress(data), EMBEDDED_FILE)
        return TextData(_split_lines(sentences, split, EMBEDDED_FILE), name)
    if isinstance(name, str) and name.startswith("tfds:") and name[5:]:
        if split == "all":
            raise DataError("split 'all' is for files; a TFDS corpus has train, valid, test")
        from jaxvae.data.tfds_source import load_tfds_text

        return TextData(load_tfds_text(name[5:], split), name)
    if not isinstance(name, str) or not name.startswith("text:") or not name[5:]:
        raise DataError(f"unknown text corpus name {name!r}; accepted: 'wordnet', "
                        f"'text:PATH' (a file, one sentence per line), 'text:DIR' "
                        f"(a directory with train.txt, valid.txt, test.txt or ptb.*.txt) "
                        f"or 'tfds:NAME'")
    path = os.path.expanduser(name[5:])
    if os.path.isdir(path):
        splits = ("train", "valid", "test") if split == "all" else (split,)
        sentences = [s for part in splits for s in _read_file(_split_file(path, part))]
        return TextData(sentences, name)
    return TextData(_split_lines(_read_file(path), split, path), name)
