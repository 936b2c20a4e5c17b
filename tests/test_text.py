"""Text data: tokenize, Vocabulary, encode_batch, load_text and the shipped corpus."""

import gzip
import importlib.resources
import json

import numpy as np
import pytest

from jaxvae.data import DataError, TextData, Vocabulary, encode_batch, load_text, tokenize

# ------------------------------------------------------------------------- tokenize


@pytest.mark.parametrize("sentence, tokens", [
    ("The Cat sat.", ["the", "cat", "sat", "."]),
    ("Don't stop, it's O'Brien's!", ["don't", "stop", ",", "it's", "o'brien's", "!"]),
    ("a well-known 3-D film", ["a", "well-known", "3-d", "film"]),
    ("rock -- and 'roll'", ["rock", "-", "-", "and", "'", "roll", "'"]),
    ("trailing- 'tis end?", ["trailing", "-", "'", "tis", "end", "?"]),
    ("  spaced\tout  ", ["spaced", "out"]),
    ("", []),
])
def test_tokenize(sentence, tokens):
    assert tokenize(sentence) == tokens


# ----------------------------------------------------------------------- Vocabulary

SENTENCES = ["the cat sat", "the dog sat", "the cat ran", "a bird"]
# counts: the 3, cat 2, sat 2, a 1, bird 1, dog 1, ran 1


def test_vocabulary_build_orders_by_count_then_alphabet():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.to_json() == ["<pad>", "<unk>", "<bos>", "<eos>",
                               "the", "cat", "sat", "a", "bird", "dog", "ran"]
    assert len(vocab) == 11


def test_vocabulary_min_count_and_max_size():
    assert Vocabulary.build(SENTENCES, min_count=2).to_json()[4:] == ["the", "cat", "sat"]
    assert Vocabulary.build(SENTENCES, max_size=6).to_json() == [
        "<pad>", "<unk>", "<bos>", "<eos>", "the", "cat"]
    assert Vocabulary.build(SENTENCES, min_count=3, max_size=100).to_json()[4:] == ["the"]
    assert len(Vocabulary.build(SENTENCES, max_size=4)) == 4
    with pytest.raises(DataError, match="max_size"):
        Vocabulary.build(SENTENCES, max_size=3)
    with pytest.raises(DataError, match="min_count"):
        Vocabulary.build(SENTENCES, min_count=0)


def test_vocabulary_specials_encode_decode_and_json():
    vocab = Vocabulary.build(SENTENCES)
    assert [vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id] == [0, 1, 2, 3]
    assert vocab.encode(["<pad>", "<unk>", "<bos>", "<eos>"]) == [0, 1, 2, 3]
    ids = vocab.encode("The cat sat")
    assert ids == [4, 5, 6]
    assert vocab.decode(ids) == ["the", "cat", "sat"]
    assert vocab.encode(["the", "zebra"]) == [4, 1]
    assert vocab.decode(np.array(vocab.encode(["zebra"]))) == ["<unk>"]
    with pytest.raises(DataError, match="outside"):
        vocab.decode([11])
    restored = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert restored == vocab and restored.encode("a bird") == vocab.encode("a bird")
    with pytest.raises(DataError, match="specials"):
        Vocabulary.from_json(["the", "cat"])


# --------------------------------------------------------------------- encode_batch


def test_encode_batch_shapes_padding_mask_lengths():
    vocab = Vocabulary.build(SENTENCES)
    ids, mask, lengths = encode_batch(["the cat", "", "a zebra sat"], vocab, max_length=4)
    assert ids.shape == mask.shape == (3, 6) and lengths.shape == (3,)
    assert ids.dtype == np.int32 and mask.dtype == np.bool_ and lengths.dtype == np.int32
    np.testing.assert_array_equal(ids, [[2, 4, 5, 3, 0, 0],
                                        [2, 3, 0, 0, 0, 0],
                                        [2, 7, 1, 6, 3, 0]])
    np.testing.assert_array_equal(lengths, [4, 2, 5])
    np.testing.assert_array_equal(mask, np.arange(6) < lengths[:, None])


def test_encode_batch_truncates_keeping_eos_or_raises():
    vocab = Vocabulary.build(SENTENCES)
    ids, mask, lengths = encode_batch(["the cat sat", "the cat sat a bird"], vocab, 3)
    np.testing.assert_array_equal(ids, [[2, 4, 5, 6, 3], [2, 4, 5, 6, 3]])
    assert mask.all() and lengths.tolist() == [5, 5]
    with pytest.raises(DataError, match=r"sentence 1 has 5 tokens.*max_length=3"):
        encode_batch(["the cat sat", "the cat sat a bird"], vocab, 3, overflow="error")
    with pytest.raises(DataError, match="overflow"):
        encode_batch(["the"], vocab, 3, overflow="drop")


# ----------------------------------------------------------------- embedded corpus


def test_shipped_corpus_is_utf8_without_empty_or_duplicate_lines():
    data = importlib.resources.files("jaxvae.data").joinpath(
        "wordnet_sentences.txt.gz").read_bytes()
    assert len(data) < 2_000_000
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) > 30_000
    assert all(line and line == " ".join(line.split()) for line in lines)
    assert len(set(lines)) == len(lines)


def test_load_wordnet_splits_are_disjoint_and_cover_all():
    every = load_text("wordnet", "all")
    assert isinstance(every, TextData) and every.name == "wordnet"
    n = len(every.sentences)
    assert n > 30_000
    parts = {s: load_text("wordnet", s).sentences for s in ("train", "valid", "test")}
    assert load_text().sentences == parts["train"]
    assert parts["test"] == every.sentences[0::20]
    assert parts["valid"] == every.sentences[1::20]
    assert len(parts["train"]) == n - len(parts["test"]) - len(parts["valid"])
    assert sorted(sum(parts.values(), [])) == sorted(every.sentences)
    assert len(set(every.sentences)) == n      # distinct sentences, so the splits are disjoint


# ------------------------------------------------------------------- text:PATH/DIR


def test_text_file_skips_blank_lines_and_splits_by_rule(tmp_path):
    lines = [f"Sentence number {i} ." for i in range(45)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(lines) + "\n   \n", encoding="utf-8")
    every = load_text(f"text:{path}", "all")
    assert every.sentences == lines and every.name == f"text:{path}"
    assert load_text(f"text:{path}", "test").sentences == [lines[0], lines[20], lines[40]]
    assert load_text(f"text:{path}", "valid").sentences == [lines[1], lines[21], lines[41]]
    train = load_text(f"text:{path}", "train").sentences
    assert len(train) == 39 and lines[0] not in train and lines[2] in train


@pytest.mark.parametrize("names", [("train.txt", "valid.txt", "test.txt"),
                                   ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")])
def test_text_directory_files_are_the_splits(tmp_path, names):
    for name, split in zip(names, ("train", "valid", "test")):
        (tmp_path / name).write_text(f" {split} one \n\n{split} two\n", encoding="utf-8")
    assert load_text(f"text:{tmp_path}", "train").sentences == ["train one", "train two"]
    assert load_text(f"text:{tmp_path}", "test").sentences == ["test one", "test two"]
    assert load_text(f"text:{tmp_path}", "all").sentences == [
        "train one", "train two", "valid one", "valid two", "test one", "test two"]


# ---------------------------------------------------------------------------- errors


def test_load_text_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no sentences in .*empty.txt"):
        load_text(f"text:{empty}")
    with pytest.raises(DataError, match="no such file: .*missing.txt"):
        load_text(f"text:{tmp_path / 'missing.txt'}")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("héllo\n".encode() + b"ab\xffcd\n")
    with pytest.raises(DataError, match=r"bad.txt is not UTF-8.*offset 9"):
        load_text(f"text:{bad}", "all")
    with pytest.raises(DataError, match=r"unknown text corpus name 'ptb'.*'wordnet'.*'text:PATH'"):
        load_text("ptb")
    with pytest.raises(DataError, match=r"unknown split 'dev'.*train, valid, test, all"):
        load_text("wordnet", "dev")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.txt").write_text("a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no such file: .*valid.txt"):
        load_text(f"text:{tmp_path / 'd'}", "valid")


def test_tfds_text_corpora_under_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        lm1b = load_text("tfds:lm1b", "train")
        raw = [tfds.data_source("lm1b", split="train")[i]["text"] for i in range(6)]
        news = load_text("tfds:ag_news_subset", "test")
        with pytest.raises(DataError, match="no 'validation' split"):
            load_text("tfds:lm1b", "valid")
        with pytest.raises(DataError, match="no 'body' feature"):
            from jaxvae.data.tfds_source import load_tfds_text
            load_tfds_text("imdb_reviews", "train", feature="body")
    assert lm1b.name == "tfds:lm1b"
    assert lm1b.sentences == [" ".join(str(t).split()) for t in raw if str(t).split()]
    assert len(news.sentences) >= 1 and all(isinstance(s, str) for s in news.sentences)
