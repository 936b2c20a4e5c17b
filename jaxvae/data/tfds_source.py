"""``"tfds:NAME"`` data sets, read with ``tfds.data_source``, and their per-data-set transforms.

Needs the optional tensorflow-datasets (``pip install 'jaxvae[tfds]'``). The table
``_TFDS_TRANSFORMS`` holds the fixed image transforms (``celeb_a``'s crop and 2 x 2
average to 64 x 64 x 3); see :mod:`jaxvae.data.registry` for the split mapping and the
pixel rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxvae.data.errors import DataError, MissingDependencyError
from jaxvae.data.validation import to_images, to_labels

__all__ = ["check_tfds_split", "load_tfds", "load_tfds_text", "TFDS_TEXT_FEATURES"]

# TFDS data sets whose uint8 image feature holds 0/1 values rather than 0..255.
_TFDS_BINARY_UINT8 = frozenset({"binarized_mnist"})
# Our split names -> TFDS split names.
_TFDS_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
# TFDS data sets without a 'validation' split -> their splits. Split 'valid' is refused
# before anything is downloaded.
_TFDS_NO_VALIDATION = {
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "svhn_cropped": ("train", "test", "extra"),
    "lm1b": ("train", "test"),
    "imdb_reviews": ("train", "test", "unsupervised"),
    "ag_news_subset": ("train", "test"),
    "yelp_polarity_reviews": ("train", "test"),
}
#: TFDS text data sets -> the string feature read as the sentence (others: ``"text"``)
TFDS_TEXT_FEATURES = {"lm1b": "text", "imdb_reviews": "text", "yelp_polarity_reviews": "text",
                      "ag_news_subset": "description"}


class _Transform(NamedTuple):
    """A fixed per-data-set image transform applied while reading a TFDS data set."""

    in_shape: tuple[int, ...]  # the shape each image must have
    apply: Callable[[np.ndarray], np.ndarray]  # uint8 [*in_shape] -> uint8 [*out_shape]
    description: str


def _crop_and_pool(image: np.ndarray, top: int, left: int, size: int, factor: int) -> np.ndarray:
    """``uint8 [H, W, C]`` -> ``uint8 [size // factor, size // factor, C]``.

    Crops ``image[top:top + size, left:left + size]`` and averages ``factor x factor``
    blocks, rounding half up: ``(sum + n // 2) // n`` with n = factor^2.
    """
    crop = image[top:top + size, left:left + size].astype(np.uint32)
    m, n = size // factor, factor * factor
    blocks = crop.reshape(m, factor, m, factor, crop.shape[-1]).sum(axis=(1, 3))
    return ((blocks + n // 2) // n).astype(np.uint8)


def _celeb_a_64(image: np.ndarray) -> np.ndarray:
    return _crop_and_pool(image, top=45, left=25, size=128, factor=2)


# TFDS data set -> transform of each image (see the module docstring).
_TFDS_TRANSFORMS = {
    "celeb_a": _Transform(
        in_shape=(218, 178, 3), apply=_celeb_a_64,
        description="the central 128x128 crop (rows 45..172, columns 25..152) averaged "
                    "over 2x2 blocks to 64x64x3"),
}


def _import_tfds():
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (optional dependency)
    except ImportError as err:
        raise MissingDependencyError(
            "'tfds:' data sets need tensorflow-datasets (and importlib_resources, which "
            "tensorflow-datasets 4.9 uses without declaring it): pip install 'jaxvae[tfds]'"
            f" ({type(err).__name__}: {err})") from err
    return tfds


def _tfds_base(tfds_name: str) -> str:
    """``"celeb_a:2.1.0"`` or ``"celeb_a/config"`` -> ``"celeb_a"``."""
    return tfds_name.split(":")[0].split("/")[0]


def check_tfds_split(tfds_name: str, part: str) -> None:
    """Refuses split ``valid`` of the data sets known to have no 'validation' split."""
    base = _tfds_base(tfds_name)
    if part == "valid" and base in _TFDS_NO_VALIDATION:
        raise DataError(f"TFDS data set {tfds_name!r} has no 'validation' split (its splits "
                        f"are {', '.join(_TFDS_NO_VALIDATION[base])}), so split 'valid' "
                        "(and 'train+valid') is not available; use split 'train' or 'test'")


def load_tfds(tfds_name: str, part: str, dtype: str):
    """Reads one split of a TFDS data set through ``tfds.data_source`` into arrays."""
    tfds = _import_tfds()
    tfds_split = _TFDS_SPLITS[part]
    origin = f"TFDS data set {tfds_name!r} (split {tfds_split!r})"
    try:
        source = tfds.data_source(tfds_name, split=tfds_split)
    except ValueError as err:  # DatasetNotFoundError and unknown splits are ValueErrors.
        hint = ""
        if part == "valid":
            hint = ("; data sets without a 'validation' split (e.g. kmnist, emnist) only "
                    "support split 'train' and 'test'")
        raise DataError(f"cannot load {origin}: {err}{hint}") from err
    n = len(source)
    if n == 0:
        raise DataError(f"{origin} has no examples")
    base = _tfds_base(tfds_name)
    transform = _TFDS_TRANSFORMS.get(base)
    # Per-example reads: the data source is random access; __getitems__ is avoided
    # because tfds.testing.mock_data (4.9.10) does not support it. Each image is transformed
    # as it is read, so that large originals (celeb_a) are never all in memory at once.
    images, labels = [], []
    for i in range(n):
        example = source[i]
        if i == 0:
            if "image" not in example:
                raise DataError(f"{origin} has no 'image' feature (features: "
                                f"{sorted(example)}); only image data sets are supported")
            if "label" not in example:
                labels = None
        image = np.asarray(example["image"])
        if transform is not None:
            if image.shape != transform.in_shape or image.dtype != np.uint8:
                raise DataError(f"'image' {i} of {origin} must be uint8 {list(transform.in_shape)} "
                                f"for the {base} transform ({transform.description}); found "
                                f"{image.dtype} {list(image.shape)}")
            image = transform.apply(image)
        images.append(image)
        if labels is not None:
            labels.append(np.asarray(example["label"]))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise DataError(f"{origin} has images of {len(shapes)} different shapes (e.g. "
                        f"{sorted(shapes)[:2]}); only data sets of one image size are "
                        "supported, or add a transform to _TFDS_TRANSFORMS")
    x = np.stack(images)
    del images
    what = f"'image' of {origin}"
    out = to_images(x, what, dtype, zero_one=base in _TFDS_BINARY_UINT8 and x.dtype == np.uint8)
    if labels is not None:
        labels = to_labels(np.stack(labels), len(out), f"'label' of {origin}", "image")
    return out, labels



def load_tfds_text(tfds_name: str, part: str, feature: str | None = None) -> list[str]:
    """One split of a TFDS text data set as a list of strings (one per example).

    Args: ``tfds_name`` (e.g. ``"lm1b"``, ``"imdb_reviews"``); ``part`` ``train``,
      ``valid`` or ``test``; ``feature``, the string feature (default
      :data:`TFDS_TEXT_FEATURES`'s, else ``"text"``).
    Returns: the examples' texts, whitespace (new lines included) collapsed, empty ones
      dropped. Raises DataError for a missing split or feature, non-UTF-8 bytes or no text.
    """
    check_tfds_split(tfds_name, part)
    tfds = _import_tfds()
    feature = feature or TFDS_TEXT_FEATURES.get(_tfds_base(tfds_name), "text")
    origin = f"TFDS data set {tfds_name!r} (split {_TFDS_SPLITS[part]!r})"
    try:
        source = tfds.data_source(tfds_name, split=_TFDS_SPLITS[part])
    except ValueError as err:
        raise DataError(f"cannot load {origin}: {err}") from err
    texts = []
    for i in range(len(source)):
        example = source[i]
        if feature not in example:
            raise DataError(f"{origin} has no {feature!r} feature (features: "
                            f"{sorted(example)})")
        value = example[feature]
        if isinstance(value, (bytes, np.bytes_)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"example {i} of {origin} is not UTF-8") from err
        text = " ".join(str(value).split())
        if text:
            texts.append(text)
    if not texts:
        raise DataError(f"{origin} has no text")
    return texts
