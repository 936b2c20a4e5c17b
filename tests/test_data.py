"""Tests for jaxvae.data: loading by name, validation errors, binarization, batching.

The npz and IDX tests build small files in tmp_path (one test reads Debian's Fashion-MNIST
files and is skipped when they are absent); the TFDS tests run offline under
``tfds.testing.mock_data`` and are skipped when tensorflow-datasets is not installed.
"""

import gzip
import importlib.resources
import json
import math
import os
import re
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import jaxvae
from jaxvae import plots
from jaxvae.data import (
    SPLITS,
    DataError,
    Dataset,
    MissingDependencyError,
    batches,
    binarize_dynamic,
    binarize_fixed,
    load,
    num_batches,
    read_idx,
    registry,
)

EMBEDDED_SIZES = {"train": 10_000, "valid": 1_000, "test": 2_000}


def write_npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def mnist_like(n, seed, channel=False):
    """uint8 images [n, 28, 28] (or [n, 28, 28, 1]) covering 0..255, labels uint8 [n]."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    y = rng.integers(0, 10, size=n, dtype=np.uint8)
    return (x[..., None] if channel else x), y


@pytest.fixture
def full_npz(tmp_path):
    """A small npz with every key of mnist.npz: 10 train, 4 valid, 6 test examples."""
    arrays = {}
    for i, (split, n) in enumerate([("train", 10), ("valid", 4), ("test", 6)]):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = mnist_like(n, seed=i)
    return write_npz(tmp_path, **arrays), arrays


# ------------------------------------------------------------------------- embedded


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_embedded_shapes_dtypes_and_ranges(split):
    ds = load("embedded", split)
    n = EMBEDDED_SIZES[split]
    assert isinstance(ds, Dataset)
    assert ds.name == "embedded"
    assert ds.images.shape == (n, 28, 28) and ds.images.dtype == np.float32
    assert ds.num_examples == n and ds.event_shape == (28, 28)
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    # uint8 grey levels scaled by 1/255 exactly.
    np.testing.assert_allclose(ds.images * 255, np.round(ds.images * 255), atol=1e-4)
    # MNIST's mean pixel intensity is about 0.13.
    assert 0.12 < ds.images.mean() < 0.145
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int32
    assert ds.labels.min() == 0 and ds.labels.max() == 9
    assert set(np.unique(ds.labels).tolist()) == set(range(10))
    # No digit is wildly over- or under-represented (each is about 10%).
    counts = np.bincount(ds.labels, minlength=10) / n
    assert counts.min() > 0.06 and counts.max() < 0.14


def test_embedded_is_deterministic_and_alias_matches():
    a, b, c = load("embedded", "test"), load("embedded", "test"), load("mnist-small", "test")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.images, c.images)
    np.testing.assert_array_equal(a.labels, c.labels)
    assert c.name == "embedded"
    # Default arguments: embedded train split.
    assert load().images.shape == (10_000, 28, 28)


def test_embedded_train_plus_valid_is_the_concatenation():
    train, valid = load("embedded", "train"), load("embedded", "valid")
    both = load("embedded", "train+valid")
    assert both.images.shape == (11_000, 28, 28)
    np.testing.assert_array_equal(both.images[:10_000], train.images)
    np.testing.assert_array_equal(both.images[10_000:], valid.images)
    np.testing.assert_array_equal(both.labels, np.concatenate([train.labels, valid.labels]))


def test_embedded_file_is_small_uint8_and_splits_are_distinct():
    ref = importlib.resources.files("jaxvae.data").joinpath("mnist_small.npz")
    with importlib.resources.as_file(ref) as path:
        assert os.path.getsize(path) < 3_000_000
        with np.load(path) as f:
            assert sorted(f.files) == sorted(
                ["x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"])
            for split, n in EMBEDDED_SIZES.items():
                assert f[f"x_{split}"].dtype == np.uint8
                assert f[f"x_{split}"].shape == (n, 28, 28)
                assert f[f"y_{split}"].shape == (n,)
            train = {img.tobytes() for img in f["x_train"]}
            test = {img.tobytes() for img in f["x_test"]}
    # Disjoint source splits: no test image appears in the training subset.
    assert len(train) == 10_000 and len(test) == 2_000 and not train & test


# ------------------------------------------------------------------------------ npz


def test_npz_uint8_is_scaled_by_255(full_npz):
    path, arrays = full_npz
    for split in ["train", "valid", "test"]:
        ds = load(f"npz:{path}", split)
        assert ds.name == f"npz:{path}"
        assert ds.images.dtype == np.float32 and ds.images.shape == arrays[f"x_{split}"].shape
        np.testing.assert_array_equal(ds.images, arrays[f"x_{split}"].astype(np.float32) / 255)
        assert ds.labels.dtype == np.int32
        np.testing.assert_array_equal(ds.labels, arrays[f"y_{split}"])
    ds = load(f"npz:{path}", "train")
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0


def test_npz_train_plus_valid_concatenates_in_order(full_npz):
    path, arrays = full_npz
    ds = load(f"npz:{path}", "train+valid")
    assert ds.images.shape == (14, 28, 28) and ds.labels.shape == (14,)
    expected = np.concatenate([arrays["x_train"], arrays["x_valid"]]).astype(np.float32) / 255
    np.testing.assert_array_equal(ds.images, expected)
    np.testing.assert_array_equal(ds.labels, np.concatenate([arrays["y_train"],
                                                             arrays["y_valid"]]))


def test_npz_drops_trailing_channel_and_accepts_float_and_bool(tmp_path):
    x, y = mnist_like(5, seed=3, channel=True)
    xt = np.linspace(0, 1, 3 * 28 * 28, dtype=np.float64).reshape(3, 28, 28)
    path = write_npz(tmp_path, x_train=x, y_train=y, x_test=xt)
    train = load(f"npz:{path}", "train")
    assert train.images.shape == (5, 28, 28)
    np.testing.assert_array_equal(train.images, x[..., 0] / np.float32(255))
    test = load(f"npz:{path}", "test")
    assert test.images.dtype == np.float32 and test.labels is None
    np.testing.assert_allclose(test.images, xt, rtol=1e-6)
    path = write_npz(tmp_path, "bool.npz", x_train=x[..., 0] > 127, x_test=xt)
    np.testing.assert_array_equal(load(f"npz:{path}").images, (x[..., 0] > 127).astype(np.float32))


def test_npz_labels_are_optional_and_flat_vectors_allowed(tmp_path):
    x = np.random.default_rng(0).random((4, 784)).astype(np.float32)
    path = write_npz(tmp_path, x_train=x, x_valid=x[:2], y_valid=np.arange(2), x_test=x)
    ds = load(f"npz:{path}", "train")
    assert ds.labels is None and ds.event_shape == (784,)
    assert load(f"npz:{path}", "valid").labels.tolist() == [0, 1]
    # train has no labels, so the concatenation has none either.
    both = load(f"npz:{path}", "train+valid")
    assert both.images.shape == (6, 784) and both.labels is None


def test_npz_path_with_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    x, y = mnist_like(2, seed=0)
    write_npz(tmp_path, "home.npz", x_train=x, y_train=y, x_test=x)
    assert load("npz:~/home.npz").images.shape == (2, 28, 28)


# ---------------------------------------------------------------- dtype="uint8"


def test_embedded_uint8_are_the_stored_integers():
    ints = load("embedded", "valid", dtype="uint8")
    floats = load("embedded", "valid")
    assert ints.images.dtype == np.uint8 and ints.images.shape == (1_000, 28, 28)
    assert ints.images.min() == 0 and ints.images.max() == 255
    np.testing.assert_array_equal(ints.images.astype(np.float32) / 255, floats.images)
    np.testing.assert_array_equal(ints.labels, floats.labels)
    both = load("embedded", "train+valid", dtype="uint8")
    assert both.images.dtype == np.uint8 and both.images.shape == (11_000, 28, 28)


def test_npz_uint8_dtype_per_source_dtype(tmp_path):
    x, y = mnist_like(4, seed=5)
    ints = load(f"npz:{write_npz(tmp_path, x_train=x, y_train=y, x_test=x)}", dtype="uint8")
    np.testing.assert_array_equal(ints.images, x)
    assert ints.images.flags.writeable and ints.labels.dtype == np.int32
    # bool -> 0/255.
    path = write_npz(tmp_path, "bool.npz", x_train=x > 127, x_test=x > 127)
    np.testing.assert_array_equal(load(f"npz:{path}", dtype="uint8").images,
                                  np.where(x > 127, 255, 0))
    # Floats k / 255, made in float32 or float64 (or float32 stored as float64), -> k.
    for xf in [x.astype(np.float32) / 255, x / 255.0, (x.astype(np.float32) / 255).astype(float),
               x.astype(np.float32) * np.float32(1 / 255), (x / 255.0).astype(np.float16)]:
        path = write_npz(tmp_path, "float.npz", x_train=xf, x_test=xf)
        got = load(f"npz:{path}", dtype="uint8").images
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("value", [0.5, 0.3, 1e-4, 2 / 255 + 1e-6])
def test_float_data_that_is_not_8bit_is_refused_as_uint8(tmp_path, value):
    x = np.full((2, 4, 4), 3 / 255, np.float32)
    x[1, 2, 3] = value
    path = write_npz(tmp_path, x_train=x, x_test=x)
    assert load(f"npz:{path}").images.dtype == np.float32  # fine as floats
    with pytest.raises(DataError, match=r"x_train .* is not 8-bit data: 1 of 32 values are not "
                                        r"multiples of 1/255 .*use dtype='float32'"):
        load(f"npz:{path}", dtype="uint8")


def test_dtype_accepts_the_numpy_types_and_nothing_else(tmp_path):
    x, _ = mnist_like(2, seed=0)
    path = write_npz(tmp_path, x_train=x, x_test=x)
    assert load(f"npz:{path}", dtype=np.uint8).images.dtype == np.uint8
    assert load(f"npz:{path}", dtype=np.dtype("float32")).images.dtype == np.float32
    for bad in ["float64", "int", "UINT8", None, np.float64, 8]:
        with pytest.raises(DataError, match=r"dtype must be 'float32' \(images in \[0, 1\]\) "
                                            rf"or 'uint8' \(8-bit integers 0\.\.255\); got "
                                            rf"{re.escape(repr(bad))}"):
            load(f"npz:{path}", dtype=bad)


# -------------------------------------------------------------------- colour images


@pytest.mark.parametrize("channels", [3, 2, 4])
def test_npz_colour_images_keep_their_channel_axis(tmp_path, channels):
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 256, size=(5, 6, 7, channels), dtype=np.uint8)
    path = write_npz(tmp_path, x_train=x, y_train=np.arange(5), x_valid=x[:2], x_test=x[:3])
    floats = load(f"npz:{path}")
    assert floats.images.shape == (5, 6, 7, channels) and floats.event_shape == (6, 7, channels)
    np.testing.assert_array_equal(floats.images, x.astype(np.float32) / 255)
    ints = load(f"npz:{path}", "train+valid", dtype="uint8")
    assert ints.images.shape == (7, 6, 7, channels) and ints.images.dtype == np.uint8
    np.testing.assert_array_equal(ints.images, np.concatenate([x, x[:2]]))


def test_npz_colour_images_end_to_end(tmp_path):
    """npz -> load -> batches -> an MLP VAE on [4, 4, 3] -> an RGB reconstruction PNG."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    ds = load(f"npz:{write_npz(tmp_path, x_train=x, x_test=x[:2])}", "train")
    batch = next(iter(batches(ds.images, 4, seed=0, epoch=0)))
    assert batch.shape == (4, 4, 4, 3) and batch.dtype == np.float32
    model = jaxvae.iwae_mlp(event_shape=ds.event_shape, latent_dim=2, hidden=(8,))
    params = model.init_params(jax.random.PRNGKey(0))
    path = plots.save_reconstructions(model, params, batch, tmp_path / "r.png", num=4, ncols=4)
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (4 * 5 - 1, 2 * 5 - 1)
        grid = np.asarray(img)
    np.testing.assert_array_equal(grid[:4, :4], np.round(batch[0] * 255))
    assert grid[5:9, :4].std() > 0   # a decoded colour image below the input


# --------------------------------------------------------------------------- errors


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
    assert issubclass(MissingDependencyError, DataError)
    assert issubclass(MissingDependencyError, ImportError)
    assert SPLITS == ("train", "valid", "test", "train+valid")


@pytest.mark.parametrize("name", ["mnist", "tfds-mnist", "", "EMBEDDED"])
def test_unknown_name_lists_valid_forms(name):
    with pytest.raises(DataError, match=r"unknown data set name .*'embedded'.*'npz:PATH'.*"
                                        r"'tfds:NAME'"):
        load(name)


def test_bare_npz_path_suggests_prefix():
    with pytest.raises(DataError, match=r"write 'npz:data/mnist\.npz'"):
        load("data/mnist.npz")


def test_empty_npz_and_tfds_names():
    with pytest.raises(DataError, match=r"'npz:' needs a path"):
        load("npz:")
    with pytest.raises(DataError, match=r"'tfds:' needs a TFDS data set name"):
        load("tfds:")
    with pytest.raises(DataError, match=r"name must be a string"):
        load(None)


@pytest.mark.parametrize("split", ["validation", "TRAIN", "all", "valid+train"])
def test_unknown_split(split):
    with pytest.raises(DataError, match=rf"unknown split '{re.escape(split)}'.*'train', 'valid', "
                                        r"'test', 'train\+valid'"):
        load("embedded", split)


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nope.npz")
    with pytest.raises(DataError, match=rf"data file '{path}' does not exist"):
        load(f"npz:{path}")
    with pytest.raises(DataError, match="is a directory"):
        load(f"npz:{tmp_path}")


def test_file_that_is_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("x_train,x_test\n1,2\n")
    with pytest.raises(DataError, match="cannot read .*notes.npz.* as an npz archive"):
        load(f"npz:{text}")
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"single array \(\.npy\), not an npz"):
        load(f"npz:{npy}")


@pytest.mark.parametrize("missing", ["x_train", "x_test"])
def test_missing_required_key_is_named(tmp_path, missing):
    x, y = mnist_like(3, seed=0)
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    del arrays[missing]
    path = write_npz(tmp_path, **arrays)
    with pytest.raises(DataError, match=rf"has no key '{missing}' \(found keys: "):
        load(f"npz:{path}", "train")


@pytest.mark.parametrize("split", ["valid", "train+valid"])
def test_npz_without_valid_split(tmp_path, split):
    x, y = mnist_like(3, seed=0)
    path = write_npz(tmp_path, x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match=r"has no 'valid' split \(no key 'x_valid'"):
        load(f"npz:{path}", split)


@pytest.mark.parametrize("shape", [(7,), (2, 28, 28, 1, 1), ()])
def test_wrong_rank_says_expected_and_found(tmp_path, shape):
    x = np.zeros(shape, np.uint8)
    path = write_npz(tmp_path, x_train=x, x_test=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=rf"x_train .* must have shape \[N, H, W\].*found "
                                        rf"rank {len(shape)} with shape"):
        load(f"npz:{path}", "train")


def test_empty_split_and_mismatched_split_shapes(tmp_path):
    path = write_npz(tmp_path, x_train=np.zeros((0, 28, 28), np.uint8),
                     x_test=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"x_train .* is empty \(shape \(0, 28, 28\)\)"):
        load(f"npz:{path}")
    path = write_npz(tmp_path, "mixed.npz", x_train=np.zeros((2, 28, 28), np.uint8),
                     x_valid=np.zeros((2, 14, 14), np.uint8),
                     x_test=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"different shapes \[\(28, 28\), \(14, 14\)\]"):
        load(f"npz:{path}", "train+valid")


def test_nan_values(tmp_path):
    x = np.full((3, 28, 28), 0.5, np.float32)
    x[1, 2, 3] = x[2, 0, 0] = np.nan
    path = write_npz(tmp_path, x_train=x, x_test=x)
    with pytest.raises(DataError, match=r"x_train .* contains 2 NaN values"):
        load(f"npz:{path}")


@pytest.mark.parametrize("bad", [1.5, -0.25, np.inf])
def test_float_values_outside_unit_interval(tmp_path, bad):
    x = np.full((3, 28, 28), 0.5, np.float32)
    x[0, 0, 0] = bad
    path = write_npz(tmp_path, x_train=x, x_test=x)
    with pytest.raises(DataError, match=r"x_train .* has 1 values outside \[0, 1\] after "
                                        r"scaling"):
        load(f"npz:{path}")


def test_float_0_255_data_is_rejected(tmp_path):
    x, _ = mnist_like(3, seed=0)
    path = write_npz(tmp_path, x_train=x.astype(np.float32), x_test=x)
    with pytest.raises(DataError, match=r"outside \[0, 1\].*max 255.*must already be in"):
        load(f"npz:{path}")


def test_other_integer_dtypes_are_rejected(tmp_path):
    x = np.zeros((3, 28, 28), np.int64)
    path = write_npz(tmp_path, x_train=x, x_test=x)
    with pytest.raises(DataError, match=r"dtype int64; expected uint8 \(0\.\.255\), bool"):
        load(f"npz:{path}")


def test_uint8_zero_one_data_warns(tmp_path):
    x = (mnist_like(3, seed=0)[0] > 127).astype(np.uint8)
    path = write_npz(tmp_path, x_train=x, x_test=x)
    with pytest.warns(UserWarning, match=r"uint8 with values in \{0, 1\} only"):
        ds = load(f"npz:{path}")
    assert ds.images.max() == np.float32(1 / 255)


def test_label_length_and_dtype_mismatch(tmp_path):
    x, y = mnist_like(10, seed=0)
    path = write_npz(tmp_path, x_train=x, y_train=y[:9], x_test=x, y_test=y)
    with pytest.raises(DataError, match=r"y_train .* has 9 labels but x_train has 10 examples"):
        load(f"npz:{path}", "train")
    path = write_npz(tmp_path, "rank.npz", x_train=x, y_train=y[:, None], x_test=x)
    with pytest.raises(DataError, match=r"y_train .* must have shape \[N\] = \[10\], found "
                                        r"shape \(10, 1\)"):
        load(f"npz:{path}", "train")
    path = write_npz(tmp_path, "frac.npz", x_train=x, y_train=y + 0.5, x_test=x)
    with pytest.raises(DataError, match=r"integer class labels, found dtype float64"):
        load(f"npz:{path}", "train")


# ------------------------------------------------------------------------------ IDX

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def idx_bytes(array, dtype_code=0x08):
    """The IDX encoding of a uint8 array: magic 0x0000 TT DD, big-endian sizes, data."""
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx_dir(folder, n_train=12, n_test=5, gz=True, labels=True, seed=0):
    """MNIST-layout IDX files of tiny 3x4 images; returns {source: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for source, prefix, n in [("train", "train", n_train), ("test", "t10k", n_test)]:
        x = rng.integers(0, 256, size=(n, 3, 4), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[source] = (x, y)
        files = [(f"{prefix}-images-idx3-ubyte", x)] + (
            [(f"{prefix}-labels-idx1-ubyte", y)] if labels else [])
        for stem, array in files:
            data = idx_bytes(array)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_splits_follow_the_mnist_npz_rule(tmp_path, gz):
    # 12 training images: valid = the last 12 // 6 = 2, train = the first 10.
    arrays = write_idx_dir(tmp_path / "idx", gz=gz)
    name = f"idx:{tmp_path / 'idx'}"
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    expected = {"train": (x_train[:10], y_train[:10]), "valid": (x_train[10:], y_train[10:]),
                "test": (x_test, y_test), "train+valid": (x_train, y_train)}
    for split, (x, y) in expected.items():
        ds = load(name, split)
        assert ds.name == name and ds.images.dtype == np.float32
        np.testing.assert_array_equal(ds.images, x.astype(np.float32) / 255)
        assert ds.labels.dtype == np.int32
        np.testing.assert_array_equal(ds.labels, y)
        ints = load(name, split, dtype="uint8")
        assert ints.images.dtype == np.uint8 and ints.images.flags.writeable
        np.testing.assert_array_equal(ints.images, x)


def test_idx_labels_are_optional_and_tilde_is_expanded(tmp_path, monkeypatch):
    arrays = write_idx_dir(tmp_path / "nolabels", n_train=6, labels=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    ds = load("idx:~/nolabels", "valid")
    assert ds.labels is None and ds.name == "idx:~/nolabels"
    np.testing.assert_array_equal(ds.images, arrays["train"][0][5:] / np.float32(255))


def test_fashion_mnist_reads_the_directory_in_the_environment(tmp_path, monkeypatch):
    arrays = write_idx_dir(tmp_path / "fm", n_train=18, seed=3)
    monkeypatch.setenv("JAXVAE_FASHION_MNIST", str(tmp_path / "fm"))
    for name in ["fashion-mnist", "fashion_mnist"]:
        ds = load(name, "valid", dtype="uint8")
        assert ds.name == "fashion-mnist"
        np.testing.assert_array_equal(ds.images, arrays["train"][0][15:])
        np.testing.assert_array_equal(ds.labels, arrays["train"][1][15:])
    assert load("fashion-mnist", "test").images.shape == (5, 3, 4)


def test_fashion_mnist_not_found_says_how_to_get_it(tmp_path, monkeypatch):
    hint = (r"install Debian's dataset-fashion-mnist package \(apt install "
            r"dataset-fashion-mnist\), set JAXVAE_FASHION_MNIST to a directory with its IDX "
            r"files, or use --data tfds:fashion_mnist$")
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("JAXVAE_FASHION_MNIST", str(missing))
    with pytest.raises(DataError, match=rf"^Fashion-MNIST not found in {missing} \(no such "
                                        rf"directory\): {hint}"):
        load("fashion-mnist", "test")
    write_idx_dir(tmp_path / "partial")
    (tmp_path / "partial" / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("JAXVAE_FASHION_MNIST", str(tmp_path / "partial"))
    assert load("fashion-mnist", "test").images.shape == (5, 3, 4)  # t10k files are there
    with pytest.raises(DataError, match=r"not found in .*partial \(no train-labels-idx1-ubyte"
                                        rf"\[\.gz\]\): {hint}"):
        load("fashion-mnist", "train")
    # Without the variable (or with it empty): Debian's directory, here made absent.
    assert registry.FASHION_MNIST_DIR == FASHION_MNIST_DIR
    monkeypatch.setattr(registry, "FASHION_MNIST_DIR", str(missing))
    monkeypatch.setenv("JAXVAE_FASHION_MNIST", "")
    with pytest.raises(DataError, match=rf"^Fashion-MNIST not found in {missing} "):
        load("fashion-mnist", "test")
    monkeypatch.delenv("JAXVAE_FASHION_MNIST")
    with pytest.raises(DataError, match=rf"^Fashion-MNIST not found in {missing} "):
        load("fashion-mnist", "test")


def test_idx_missing_directory_or_files(tmp_path):
    with pytest.raises(DataError, match=r"no MNIST-layout IDX data in '.*nope' \(no such "
                                        r"directory\); expected the files train-images-idx3-ubyte"
                                        r", .*each optionally gzip-compressed"):
        load(f"idx:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"\(no t10k-images-idx3-ubyte\[\.gz\]\)"):
        load(f"idx:{tmp_path / 'empty'}", "test")
    with pytest.raises(DataError, match=r"'idx:' needs a directory after the colon"):
        load("idx:")
    with pytest.raises(DataError, match=rf"unknown data set name .*'fashion-mnist'.*'idx:DIR'.*"
                                        rf"write 'idx:{re.escape(str(tmp_path))}'"):
        load(str(tmp_path))


def test_idx_training_set_too_small_for_a_valid_split(tmp_path):
    write_idx_dir(tmp_path, n_train=5)
    assert load(f"idx:{tmp_path}", "train").images.shape == (5, 3, 4)
    with pytest.raises(DataError, match=r"split 'valid' of .* \(the last 0 of the 5 images in "
                                        r".*train-images-idx3-ubyte\.gz'\) is empty"):
        load(f"idx:{tmp_path}", "valid")


def test_idx_label_count_must_match(tmp_path):
    write_idx_dir(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz' has 4 labels but "
                                        r"'.*t10k-images-idx3-ubyte\.gz' has 5 examples"):
        load(f"idx:{tmp_path}", "test")


GOOD_IDX = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
#: with a fixed header time, so that both test processes collect the same parameter ids
GOOD_GZ = gzip.compress(GOOD_IDX, mtime=0)


@pytest.mark.parametrize("data,message", [
    (b"\x00\x00", r"has 2 bytes, too few for the 4-byte magic number 0x00000803"),
    (b"\x01" + GOOD_IDX[1:], r"is not an IDX file: its magic number is 0x01000803, expected "
                              r"0x00000803 \(unsigned bytes, 3 dimensions\)"),
    (b"P5\n" + GOOD_IDX, r"is not an IDX file: its magic number is 0x50350A00"),
    (idx_bytes(np.zeros((2, 3, 4), np.uint8), dtype_code=0x0D),
     r"has data type code 0x0D \(float\); only 0x08 \(unsigned byte\) is supported"),
    (idx_bytes(np.zeros((2, 12), np.uint8)), r"has 2 dimensions \(magic number 0x00000802\); "
                                             r"expected 0x00000803"),
    (GOOD_IDX[:10], r"is truncated: 10 bytes, fewer than its 16-byte header"),
    (GOOD_IDX[:-1], r"declares shape \[2, 3, 4\] = 24 bytes of data but holds 23 \(truncated"),
    (GOOD_IDX + b"\x00", r"declares shape \[2, 3, 4\] = 24 bytes of data but holds 25"),
    (GOOD_GZ[:-12], r"cannot decompress IDX file .*: truncated or corrupt gzip "
                    r"data \(EOFError"),
    (GOOD_GZ[:12] + b"\xff" * 30, r"cannot decompress IDX file .*: truncated or "
                                  r"corrupt gzip data"),
])
def test_read_idx_validation_names_the_file(tmp_path, data, message):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message) as info:
        read_idx(str(path), ndim=3)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match=re.escape(str(path))):  # and through load()
        load(f"idx:{tmp_path}", "test")


def test_read_idx_reads_plain_and_gzip_files(tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.write_bytes(GOOD_IDX)
    packed.write_bytes(gzip.compress(GOOD_IDX))   # recognized by content, not by name
    for path in [plain, packed]:
        x = read_idx(str(path), ndim=3)
        assert x.dtype == np.uint8
        np.testing.assert_array_equal(x, np.arange(24).reshape(2, 3, 4))
    with pytest.raises(DataError, match=r"cannot read IDX file .*missing"):
        read_idx(str(tmp_path / "missing"), ndim=1)


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.delenv("JAXVAE_FASHION_MNIST", raising=False)
    both = load("fashion-mnist", "train+valid", dtype="uint8")
    test = load("fashion_mnist", "test", dtype="uint8")
    assert both.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert both.images.dtype == np.uint8 and both.images.min() == 0 and both.images.max() == 255
    # Ten balanced classes: 6,000 training and 1,000 test images each.
    assert np.bincount(both.labels).tolist() == [6_000] * 10
    assert np.bincount(test.labels).tolist() == [1_000] * 10
    # Fashion-MNIST's mean pixel is about 0.286 (train) / 0.287 (test).
    assert 0.28 < both.images.mean() / 255 < 0.29 and 0.28 < test.images.mean() / 255 < 0.29


# ---------------------------------------------------------------------- binarization


def binomial_tolerance(p, num_sd=5.0):
    """num_sd standard errors of the mean of independent Bernoulli(p) draws."""
    p = np.asarray(p, np.float64)
    return num_sd * math.sqrt(float(np.sum(p * (1 - p)))) / p.size


@pytest.fixture(scope="module")
def test_images():
    return load("embedded", "test").images[:1000]


def test_binarize_fixed_is_reproducible_binary_and_unbiased(test_images):
    a = binarize_fixed(test_images, seed=3)
    b = binarize_fixed(test_images, seed=3)
    c = binarize_fixed(test_images, seed=4)
    assert a.dtype == np.float32 and a.shape == test_images.shape
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.01
    tol = binomial_tolerance(test_images)
    assert abs(a.mean() - test_images.mean()) < tol
    # Pixels with p = 0 stay 0 and pixels with p = 1 become 1.
    assert np.all(a[test_images == 0] == 0) and np.all(a[test_images == 1] == 1)
    # It is numpy's default_rng(seed).random compared against x.
    expected = np.random.default_rng(3).random(test_images.shape) < test_images
    np.testing.assert_array_equal(a, expected.astype(np.float32))


def test_binarize_fixed_default_seed_is_zero(test_images):
    np.testing.assert_array_equal(binarize_fixed(test_images[:10]),
                                  binarize_fixed(test_images[:10], seed=0))


def test_binarize_fixed_rejects_bad_input():
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\], found min 0, max 2"):
        binarize_fixed(np.array([0.0, 2.0]))
    with pytest.raises(DataError, match=r"contains 1 NaN values"):
        binarize_fixed(np.array([0.5, np.nan]))
    with pytest.raises(DataError, match=r"seed must be a non-negative int, got -1"):
        binarize_fixed(np.array([0.5]), seed=-1)


def test_binarize_dynamic_differs_across_keys_and_is_unbiased(test_images):
    x = test_images[:500]
    a = binarize_dynamic(jax.random.key(0), x)
    b = binarize_dynamic(jax.random.key(0), x)
    c = binarize_dynamic(jax.random.key(1), x)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert set(np.unique(np.asarray(a)).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert float(np.mean(np.asarray(a) != np.asarray(c))) > 0.01
    assert abs(float(a.mean()) - float(x.mean())) < binomial_tolerance(x)
    assert np.all(np.asarray(a)[x == 0] == 0) and np.all(np.asarray(a)[x == 1] == 1)


def test_binarize_dynamic_under_jit_per_pixel_frequency():
    # Each pixel's frequency over many keys matches its probability.
    p = np.linspace(0, 1, 11, dtype=np.float32)
    keys = jax.random.split(jax.random.key(42), 4000)
    draws = jax.jit(jax.vmap(binarize_dynamic, in_axes=(0, None)))(keys, p)
    assert draws.shape == (4000, 11) and draws.dtype == np.float32
    freq = np.asarray(draws).mean(axis=0)
    se = np.sqrt(p * (1 - p) / 4000)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-7), (freq, p)


def test_binarize_dynamic_rejects_bad_concrete_input():
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\], found min -1"):
        binarize_dynamic(jax.random.key(0), np.array([-1.0, 0.5], np.float32))


# ------------------------------------------------------------------------ batching


@pytest.mark.parametrize("n,batch_size", [(10, 3), (12, 4), (7, 7), (5, 1)])
def test_batches_cover_each_example_once_without_drop(n, batch_size):
    x = np.arange(n)
    got = list(batches(x, batch_size, seed=0, epoch=2, drop_remainder=False))
    assert len(got) == num_batches(n, batch_size, drop_remainder=False) == math.ceil(n / batch_size)
    assert [len(b) for b in got[:-1]] == [batch_size] * (len(got) - 1)
    assert len(got[-1]) == n - batch_size * (len(got) - 1)
    np.testing.assert_array_equal(np.sort(np.concatenate(got)), x)


def test_batches_drop_remainder_gives_full_batches():
    x = np.arange(10)
    got = list(batches(x, 3, seed=1, epoch=0))
    assert len(got) == num_batches(10, 3) == 3
    assert all(b.shape == (3,) for b in got)
    flat = np.concatenate(got)
    assert len(np.unique(flat)) == 9
    np.testing.assert_array_equal(flat, np.random.default_rng((1, 0)).permutation(10)[:9])


def test_batches_order_depends_only_on_seed_and_epoch():
    x = np.arange(100).reshape(50, 2)
    run = lambda seed, epoch: np.concatenate(list(batches(x, 10, seed=seed, epoch=epoch)))
    np.testing.assert_array_equal(run(0, 3), run(0, 3))
    assert not np.array_equal(run(0, 3), run(0, 4))
    assert not np.array_equal(run(1, 3), run(0, 3))
    # Rows stay intact: each batch row is a row of x.
    assert np.all(run(0, 3)[:, 1] == run(0, 3)[:, 0] + 1)


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_batches_of_a_pytree_keep_rows_together(kind):
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10, dtype=np.int32)
    tree = (x, y) if kind == "tuple" else {"x": x, "y": y}
    got = list(batches(tree, 3, seed=5, epoch=1))
    plain = list(batches(x, 3, seed=5, epoch=1))   # the same permutation as an array
    assert len(got) == len(plain) == num_batches(tree, 3) == 3
    for b, p in zip(got, plain):
        bx, by = b if kind == "tuple" else (b["x"], b["y"])
        assert type(b) is type(tree) and by.dtype == np.int32
        np.testing.assert_array_equal(bx, p)
        np.testing.assert_array_equal(bx, x[by])


def test_batches_of_a_pytree_need_one_leading_axis():
    with pytest.raises(DataError, match=r"same leading axis.*\(10, 2\).*\(9,\)"):
        batches((np.zeros((10, 2)), np.zeros(9)), 2, seed=0, epoch=0)
    with pytest.raises(DataError, match=r"same leading axis.*\['y'\]: \(3,\)"):
        num_batches({"x": np.zeros((4, 1)), "y": np.zeros(3)}, 2)
    with pytest.raises(DataError, match="must be an array"):
        batches((np.zeros((4, 1)), 3), 2, seed=0, epoch=0)


def test_num_batches_values():
    assert num_batches(10, 3) == 3
    assert num_batches(10, 3, drop_remainder=False) == 4
    assert num_batches(9, 3, drop_remainder=False) == 3
    assert num_batches(60_000, 100) == 600


def test_batch_size_errors_name_both_numbers():
    x = np.zeros((10, 2))
    with pytest.raises(DataError, match=r"batch_size must be >= 1, got 0 \(data set of 10"):
        batches(x, 0, seed=0, epoch=0)  # raised at the call, not at the first next()
    with pytest.raises(DataError, match=r"batch_size 11 is larger than the data set \(10 "
                                        r"examples\)"):
        batches(x, 11, seed=0, epoch=0, drop_remainder=False)
    with pytest.raises(DataError, match=r"batch_size 11 is larger than the data set \(10 "):
        num_batches(10, 11)
    with pytest.raises(DataError, match=r"batch_size must be an int, got 2\.5"):
        num_batches(10, 2.5)
    with pytest.raises(DataError, match=r"epoch must be >= 0, got -1"):
        batches(x, 2, seed=0, epoch=-1)


# ---------------------------------------------------------------------------- TFDS


def test_tfds_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'jaxvae\[tfds\]'"):
        load("tfds:mnist")


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def write_tfds_metadata(root, name, version, splits):
    """Minimal dataset_info.json so that mock_data(policy=USE_FILES) knows the real splits."""
    folder = root / name / version
    folder.mkdir(parents=True)
    info = {"name": name, "version": version, "fileFormat": "array_record",
            "splits": [{"name": s, "shardLengths": ["1"],
                        "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"}
                       for s in splits]}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return str(root)


def test_tfds_mnist_with_default_mock_data(tfds):
    with tfds.testing.mock_data(num_examples=7):
        ds = load("tfds:mnist", "train")
        source = tfds.data_source("mnist", split="train")
        raw = np.stack([source[i]["image"] for i in range(len(source))])
        raw_labels = np.array([source[i]["label"] for i in range(len(source))])
    assert ds.name == "tfds:mnist"
    assert raw.shape == (7, 28, 28, 1) and raw.dtype == np.uint8  # mock keeps the channel
    assert ds.images.shape == (7, 28, 28) and ds.images.dtype == np.float32
    np.testing.assert_array_equal(ds.images, raw[..., 0].astype(np.float32) / 255)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.labels.dtype == np.int32 and ds.labels.shape == (7,)
    np.testing.assert_array_equal(ds.labels, raw_labels)


def test_tfds_unknown_validation_split_comes_from_tfds(tfds, tmp_path):
    # With only the default policy, the mock accepts any split name; real split names
    # come from a dataset_info.json under MockPolicy.USE_FILES. kmnist is not in the
    # loader's table of data sets without a validation split, so TFDS itself refuses it.
    data_dir = write_tfds_metadata(tmp_path, "kmnist", "3.0.1", ["train", "test"])
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=data_dir):
        assert load("tfds:kmnist", "test").images.shape == (5, 28, 28)
        with pytest.raises(DataError, match=r"'kmnist' \(split 'validation'\).*Unknown split "
                                            r"'validation'.*only support split 'train' and"):
            load("tfds:kmnist", "valid")
        with pytest.raises(DataError, match=r"Unknown split 'validation'"):
            load("tfds:kmnist", "train+valid")


@pytest.mark.parametrize("name,splits", [("mnist", "train, test"),
                                         ("fashion_mnist", "train, test"),
                                         ("cifar10", "train, test"),
                                         ("svhn_cropped", "train, test, extra")])
@pytest.mark.parametrize("split", ["valid", "train+valid"])
def test_tfds_known_sets_without_validation_are_refused_before_loading(tfds, name, splits,
                                                                       split):
    calls = []
    with tfds.testing.mock_data(as_data_source_fn=binary_source_fn(2, calls)):
        with pytest.raises(DataError, match=rf"'{name}' has no 'validation' split \(its splits "
                                            rf"are {splits}\), so split 'valid'"):
            load(f"tfds:{name}", split)
    assert calls == []   # nothing was read (or, for real, downloaded)


def binary_source_fn(num_examples, calls):
    """as_data_source_fn for mock_data: 0/1 uint8 images like the real binarized_mnist."""

    def as_data_source(self, split, decoders=None, deserialize_method=None):
        calls.append(split)
        offset = {"train": 0, "validation": 1, "test": 2}[str(split)]
        rng = np.random.default_rng(offset)
        images = rng.integers(0, 2, size=(num_examples, 28, 28, 1), dtype=np.uint8)
        return [{"image": img} for img in images]

    return as_data_source


def test_tfds_binarized_mnist_keeps_zero_one_pixels_and_maps_splits(tfds):
    calls = []
    with tfds.testing.mock_data(as_data_source_fn=binary_source_fn(6, calls)):
        train = load("tfds:binarized_mnist", "train")
        valid = load("tfds:binarized_mnist", "valid")
        test = load("tfds:binarized_mnist", "test")
        both = load("tfds:binarized_mnist", "train+valid")
    assert calls == ["train", "validation", "test", "train", "validation"]
    expected = np.random.default_rng(0).integers(0, 2, size=(6, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_array_equal(train.images, expected[..., 0].astype(np.float32))
    assert set(np.unique(train.images).tolist()) == {0.0, 1.0}  # not divided by 255
    assert train.labels is None and train.name == "tfds:binarized_mnist"
    assert not np.array_equal(valid.images, test.images)
    assert both.images.shape == (12, 28, 28) and both.labels is None
    np.testing.assert_array_equal(both.images, np.concatenate([train.images, valid.images]))


def test_tfds_binarized_mnist_default_mock_is_rejected_as_not_binary(tfds):
    # The default mock draws uint8 pixels in 0..254 for every image feature, but the real
    # binarized_mnist holds 0/1 values, which load() keeps as they are: the range check fires.
    with tfds.testing.mock_data(num_examples=3):
        with pytest.raises(DataError, match=r"binarized_mnist.*outside \[0, 1\]"):
            load("tfds:binarized_mnist", "train")


def test_tfds_unknown_dataset(tfds):
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(DataError, match=r"cannot load TFDS data set 'no_such_dataset_xyz'"):
            load("tfds:no_such_dataset_xyz", "train")


def raw_tfds(tfds, name, split):
    """The mock's images (and labels, when it has them) for one split, as stacked arrays."""
    source = tfds.data_source(name, split=split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(ex["image"]) for ex in examples])
    labels = np.array([ex["label"] for ex in examples]) if "label" in examples[0] else None
    return images, labels


def check_both_dtypes(floats, ints, shape):
    assert floats.images.shape == ints.images.shape == shape
    assert floats.images.dtype == np.float32 and ints.images.dtype == np.uint8
    assert 0.0 <= floats.images.min() and floats.images.max() <= 1.0
    assert ints.images.max() > 1   # 0..255 integers, not 0/1
    np.testing.assert_array_equal(floats.images, ints.images.astype(np.float32) / 255)


def test_tfds_mnist_and_fashion_mnist_uint8(tfds):
    for name in ["mnist", "fashion_mnist"]:
        with tfds.testing.mock_data(num_examples=4):
            floats, ints = load(f"tfds:{name}", "test"), load(f"tfds:{name}", "test", dtype="uint8")
            raw, raw_labels = raw_tfds(tfds, name, "test")
        check_both_dtypes(floats, ints, (4, 28, 28))
        np.testing.assert_array_equal(ints.images, raw[..., 0])
        np.testing.assert_array_equal(ints.labels, raw_labels)


def test_tfds_binarized_mnist_uint8_is_0_or_255(tfds):
    with tfds.testing.mock_data(as_data_source_fn=binary_source_fn(5, [])):
        ints = load("tfds:binarized_mnist", "valid", dtype="uint8")
        floats = load("tfds:binarized_mnist", "valid")
    assert ints.images.dtype == np.uint8 and set(np.unique(ints.images).tolist()) == {0, 255}
    np.testing.assert_array_equal(ints.images, floats.images * 255)


@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped"])
def test_tfds_colour_32x32(tfds, name):
    # Both have splits train and test (svhn_cropped also 'extra', which load() does not
    # reach); 'valid' is refused, see test_tfds_known_sets_without_validation_are_refused...
    with tfds.testing.mock_data(num_examples=3):
        for split in ["train", "test"]:
            floats = load(f"tfds:{name}", split)
            ints = load(f"tfds:{name}", split, dtype="uint8")
            raw, raw_labels = raw_tfds(tfds, name, split)
            assert raw.shape == (3, 32, 32, 3) and raw.dtype == np.uint8
            check_both_dtypes(floats, ints, (3, 32, 32, 3))
            assert floats.event_shape == (32, 32, 3) and floats.name == f"tfds:{name}"
            np.testing.assert_array_equal(ints.images, raw)
            assert ints.labels.dtype == np.int32
            np.testing.assert_array_equal(ints.labels, raw_labels)


def test_tfds_celeb_a_is_cropped_and_downsampled_to_64x64(tfds):
    with tfds.testing.mock_data(num_examples=2):
        floats = load("tfds:celeb_a", "valid")
        ints = load("tfds:celeb_a", "valid", dtype="uint8")
        raw, raw_labels = raw_tfds(tfds, "celeb_a", "validation")
        both = load("tfds:celeb_a", "train+valid", dtype="uint8")
    assert raw.shape == (2, 218, 178, 3) and raw_labels is None
    check_both_dtypes(floats, ints, (2, 64, 64, 3))
    assert ints.labels is None and both.images.shape == (4, 64, 64, 3)
    # Pixel (i, j) is the mean of the 2x2 block at (45 + 2i, 25 + 2j), rounded half up.
    crop = raw[:, 45:173, 25:153].astype(np.int64)
    block_sums = sum(crop[:, a::2, b::2] for a in (0, 1) for b in (0, 1))
    np.testing.assert_array_equal(ints.images, (block_sums + 2) // 4)
    i, j, k = 10, 20, 1
    block = raw[1, 45 + 2 * i:47 + 2 * i, 25 + 2 * j:27 + 2 * j, k].astype(float)
    assert ints.images[1, i, j, k] == math.floor(block.mean() + 0.5)


def test_tfds_celeb_a_of_the_wrong_size_is_refused(tfds):
    def as_data_source(self, split, decoders=None, deserialize_method=None):
        return [{"image": np.zeros((32, 32, 3), np.uint8)}]

    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        with pytest.raises(DataError, match=r"'image' 0 of TFDS data set 'celeb_a' \(split "
                                            r"'train'\) must be uint8 \[218, 178, 3\] for the "
                                            r"celeb_a transform \(the central 128x128 crop.*"
                                            r"found uint8 \[32, 32, 3\]"):
            load("tfds:celeb_a", "train")


def test_tfds_images_of_different_sizes_are_refused(tfds):
    def as_data_source(self, split, decoders=None, deserialize_method=None):
        return [{"image": np.zeros((4, 4, 3), np.uint8)}, {"image": np.zeros((5, 4, 3), np.uint8)}]

    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        with pytest.raises(DataError, match=r"has images of 2 different shapes"):
            load("tfds:cifar10", "train")
