"""Data sets by name: the embedded MNIST subset, any MNIST-layout npz, TFDS data sets.

``load(name, split)`` returns a :class:`Dataset` with ``images: float32 [N, *event_shape]``
in [0, 1] and ``labels: int32 [N]`` (or ``None``). Names:

* ``"embedded"`` (alias ``"mnist-small"``): the MNIST subset shipped in the package
  (10,000 train, 1,000 valid, 2,000 test images of MNIST's 50k/10k/10k split; see
  ``jaxvae/data/README.md``). Needs no network and no extra package.
* ``"npz:PATH"``: an npz with keys ``x_train``, ``x_test`` and optionally ``x_valid``,
  ``y_train``, ``y_valid``, ``y_test`` (the layout of the usual ``mnist.npz``: images
  ``[N, 28, 28]`` uint8, labels ``[N]``).
* ``"tfds:NAME"``, e.g. ``"tfds:binarized_mnist"``, ``"tfds:mnist"``,
  ``"tfds:fashion_mnist"``: read with ``tfds.data_source`` (numpy random access, no
  TensorFlow needed); requires ``pip install 'jaxvae[tfds]'``. The first call downloads
  and prepares the data set in ``$TFDS_DATA_DIR`` (default ``~/tensorflow_datasets``).

Splits: ``"train"``, ``"valid"``, ``"test"`` and ``"train+valid"`` (the concatenation, in
that order; the IWAE paper trains on MNIST's 60,000 = 50,000 train + 10,000 valid images).

Pixel values: uint8 images are divided by 255, except for TFDS data sets whose uint8
pixels are already 0/1 (``binarized_mnist``), which are used as they are; bool images
become 0/1; float images must already lie in [0, 1]. A trailing channel axis of size 1
is dropped, so MNIST-like data has ``event_shape == (28, 28)``.

Every problem with a name, a split or a file's contents raises :class:`DataError`, a
``ValueError``.
"""

from __future__ import annotations

import importlib.resources
import os
import warnings
import zipfile
from typing import NamedTuple

import numpy as np

__all__ = [
    "Dataset",
    "DataError",
    "MissingDependencyError",
    "load",
    "SPLITS",
    "EMBEDDED_NAMES",
]

SPLITS = ("train", "valid", "test", "train+valid")
EMBEDDED_NAMES = ("embedded", "mnist-small")
EMBEDDED_FILE = "mnist_small.npz"
NAME_FORMS = ("'embedded'", "'mnist-small'", "'npz:PATH'", "'tfds:NAME'")

# TFDS data sets whose uint8 image feature holds 0/1 values rather than 0..255.
_TFDS_BINARY_UINT8 = frozenset({"binarized_mnist"})
# Our split names -> TFDS split names.
_TFDS_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


class DataError(ValueError):
    """A bad data set name or split, a missing or malformed file, or invalid values."""


class MissingDependencyError(DataError, ImportError):
    """An optional package needed for this data source is not installed."""


class Dataset(NamedTuple):
    """One split of a data set, in memory.

    Attributes:
      images: ``float32 [N, *event_shape]``, values in [0, 1] (e.g. ``[N, 28, 28]`` for
        MNIST). Grey levels for MNIST; binarize with :func:`jaxvae.data.binarize_dynamic`
        (training) or :func:`jaxvae.data.binarize_fixed` (evaluation).
      labels: ``int32 [N]`` class labels, or ``None`` when the source has none.
      name: the data set name, with aliases resolved (``"embedded"``, ``"npz:PATH"``,
        ``"tfds:NAME"``); the split is not part of it.
    """

    images: np.ndarray
    labels: np.ndarray | None
    name: str

    @property
    def num_examples(self) -> int:
        """N, the number of examples."""
        return int(self.images.shape[0])

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. ``(28, 28)``."""
        return tuple(self.images.shape[1:])


def load(name: str = "embedded", split: str = "train") -> Dataset:
    """Loads one split of a data set into memory.

    Args:
      name: ``"embedded"`` / ``"mnist-small"``, ``"npz:PATH"`` or ``"tfds:NAME"``
        (see the module docstring).
      split: ``"train"``, ``"valid"``, ``"test"`` or ``"train+valid"``.

    Returns:
      A :class:`Dataset`: ``images float32 [N, *event_shape]`` in [0, 1],
      ``labels int32 [N]`` or ``None``, and the resolved ``name``.

    Raises:
      DataError: unknown name or split, missing or unreadable file, missing key, wrong
        shapes, NaN values, values outside [0, 1], or labels of the wrong length.
      MissingDependencyError: ``tfds:`` names without tensorflow-datasets installed.
    """
    if not isinstance(name, str):
        raise DataError(f"name must be a string, one of {', '.join(NAME_FORMS)}; got {name!r}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
    parts = ("train", "valid") if split == "train+valid" else (split,)

    if name in EMBEDDED_NAMES:
        name = "embedded"
        ref = importlib.resources.files(__package__).joinpath(EMBEDDED_FILE)
        with importlib.resources.as_file(ref) as path:
            pieces = _load_npz(str(path), parts, origin=f"the embedded data set ({EMBEDDED_FILE})")
    elif name.startswith("npz:"):
        path = os.path.expanduser(name[len("npz:"):])
        if not path:
            raise DataError("name 'npz:' needs a path after the colon, e.g. 'npz:/data/mnist.npz'")
        pieces = _load_npz(path, parts, origin=repr(path))
    elif name.startswith("tfds:"):
        tfds_name = name[len("tfds:"):]
        if not tfds_name:
            raise DataError("name 'tfds:' needs a TFDS data set name, e.g. 'tfds:binarized_mnist'")
        pieces = [_load_tfds(tfds_name, part) for part in parts]
    else:
        hint = ""
        if name.endswith(".npz") or os.sep in name:
            hint = f"; for a file, write 'npz:{name}'"
        raise DataError(f"unknown data set name {name!r}; expected one of "
                        f"{', '.join(NAME_FORMS)}{hint}")

    if len(pieces) == 1:
        images, labels = pieces[0]
    else:
        shapes = [p[0].shape[1:] for p in pieces]
        if len(set(shapes)) != 1:
            raise DataError(f"cannot concatenate splits {' + '.join(parts)} of {name!r}: "
                            f"their examples have different shapes {shapes}")
        images = np.concatenate([p[0] for p in pieces])
        has_labels = all(p[1] is not None for p in pieces)
        labels = np.concatenate([p[1] for p in pieces]) if has_labels else None
    return Dataset(images=images, labels=labels, name=name)


# ----------------------------------------------------------------------------- npz


def _load_npz(path: str, parts, origin: str):
    """Reads and validates ``(images, labels)`` for each split in ``parts`` from an npz."""
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"data file {path!r} is a directory, not an npz file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {origin} as an npz archive "
                        f"({type(err).__name__}: {err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{origin} holds a single array (.npy), not an npz archive with keys "
                        "x_train, x_test (and optionally x_valid, y_*)")
    with archive:
        keys = set(archive.files)
        for required in ("x_train", "x_test"):
            if required not in keys:
                raise DataError(f"{origin} has no key {required!r} (found keys: "
                                f"{sorted(keys)}); expected x_train, x_test and optionally "
                                "x_valid, y_train, y_valid, y_test")
        out = []
        for part in parts:
            x_key, y_key = f"x_{part}", f"y_{part}"
            if x_key not in keys:
                raise DataError(f"{origin} has no {part!r} split (no key {x_key!r}; found "
                                f"keys: {sorted(keys)}); use split 'train' or 'test'")
            try:
                x = archive[x_key]
                y = archive[y_key] if y_key in keys else None
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                raise DataError(f"cannot read {x_key!r}/{y_key!r} from {origin} "
                                f"({type(err).__name__}: {err})") from err
            images = _to_unit_images(x, f"{x_key} in {origin}")
            labels = None if y is None else _to_labels(y, len(images),
                                                       f"{y_key} in {origin}", x_key)
            out.append((images, labels))
    return out


# ---------------------------------------------------------------------------- tfds


def _import_tfds():
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (optional dependency)
    except ImportError as err:
        raise MissingDependencyError(
            "'tfds:' data sets need tensorflow-datasets (and importlib_resources, which "
            "tensorflow-datasets 4.9 uses without declaring it): pip install 'jaxvae[tfds]'"
            f" ({type(err).__name__}: {err})") from err
    return tfds


def _load_tfds(tfds_name: str, part: str):
    """Reads one split of a TFDS data set through ``tfds.data_source`` into arrays."""
    tfds = _import_tfds()
    tfds_split = _TFDS_SPLITS[part]
    origin = f"TFDS data set {tfds_name!r} (split {tfds_split!r})"
    try:
        source = tfds.data_source(tfds_name, split=tfds_split)
    except ValueError as err:  # DatasetNotFoundError and unknown splits are ValueErrors.
        hint = ""
        if part == "valid":
            hint = ("; data sets without a 'validation' split (e.g. mnist, fashion_mnist) "
                    "only support split 'train' and 'test'")
        raise DataError(f"cannot load {origin}: {err}{hint}") from err
    n = len(source)
    if n == 0:
        raise DataError(f"{origin} has no examples")
    # Per-example reads: the data source is random access; __getitems__ is avoided
    # because tfds.testing.mock_data (4.9.10) does not support it.
    examples = [source[i] for i in range(n)]
    if "image" not in examples[0]:
        raise DataError(f"{origin} has no 'image' feature (features: {sorted(examples[0])}); "
                        "only image data sets are supported")
    x = np.stack([np.asarray(ex["image"]) for ex in examples])
    base = tfds_name.split(":")[0].split("/")[0]
    scale = 1.0 if (base in _TFDS_BINARY_UINT8 and x.dtype == np.uint8) else None
    images = _to_unit_images(x, f"'image' of {origin}", uint8_scale=scale)
    labels = None
    if "label" in examples[0]:
        y = np.stack([np.asarray(ex["label"]) for ex in examples])
        labels = _to_labels(y, len(images), f"'label' of {origin}", "image")
    return images, labels


# ----------------------------------------------------------------------- validation


def _to_unit_images(x: np.ndarray, what: str, uint8_scale: float | None = None) -> np.ndarray:
    """Checks ``x: [N, D]``, ``[N, H, W]`` or ``[N, H, W, C]`` and returns float32 in [0, 1].

    uint8 is divided by 255 (or by ``uint8_scale`` when given), bool becomes 0/1, floats are
    kept; a trailing channel axis of size 1 is dropped.
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4):
        raise DataError(f"{what} must have shape [N, H, W] (or [N, H, W, C], or flat [N, D]); "
                        f"found rank {x.ndim} with shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{what} is empty (shape {x.shape})")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.dtype == np.uint8:
        scale = 255.0 if uint8_scale is None else uint8_scale
        if uint8_scale is None and x.max() == 1:
            warnings.warn(f"{what} is uint8 with values in {{0, 1}} only; it is divided by 255 "
                          "as 0..255 grey levels. Store 0/1 data as bool or float32.",
                          stacklevel=4)
        images = x.astype(np.float32) / np.float32(scale)
    elif x.dtype == np.bool_:
        images = x.astype(np.float32)
    elif np.issubdtype(x.dtype, np.floating):
        images = x.astype(np.float32)
        n_bad = int(np.count_nonzero(np.isnan(images)))
        if n_bad:
            raise DataError(f"{what} contains {n_bad} NaN values")
    else:
        raise DataError(f"{what} has dtype {x.dtype}; expected uint8 (0..255), bool, or "
                        "float in [0, 1]")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        n_out = int(np.count_nonzero((images < 0.0) | (images > 1.0)))
        raise DataError(f"{what} has {n_out} values outside [0, 1] after scaling "
                        f"(min {lo:g}, max {hi:g}); float images must already be in [0, 1]")
    return np.ascontiguousarray(images)


def _to_labels(y: np.ndarray, n: int, what: str, x_what: str) -> np.ndarray:
    """Checks ``y: [n]`` of integers and returns int32."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{what} must have shape [N] = [{n}], found shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels but {x_what} has {n} examples")
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int32)
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int32)
    raise DataError(f"{what} must hold integer class labels, found dtype {y.dtype}")
