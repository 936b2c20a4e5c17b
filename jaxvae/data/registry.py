"""Data sets by name: the embedded MNIST subset, npz files, IDX files, TFDS data sets.

``load(name, split)`` returns a :class:`Dataset` with ``images: float32 [N, *event_shape]``
in [0, 1] (or, with ``dtype="uint8"``, the 8-bit integers 0..255) and ``labels: int32 [N]``
(or ``None``). Names:

* ``"embedded"`` (alias ``"mnist-small"``): the MNIST subset shipped in the package
  (10,000 train, 1,000 valid, 2,000 test images of MNIST's 50k/10k/10k split; see
  ``jaxvae/data/README.md``). Needs no network and no extra package.
* ``"fashion-mnist"`` (alias ``"fashion_mnist"``): Fashion-MNIST read offline from the
  four IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzip-compressed or not) in
  the directory ``$JAXVAE_FASHION_MNIST``, by default ``/usr/share/datasets/fashion-mnist``
  where Debian's ``dataset-fashion-mnist`` package puts them. Nothing is cached on disk.
* ``"npz:PATH"``: an npz with keys ``x_train``, ``x_test`` and optionally ``x_valid``,
  ``y_train``, ``y_valid``, ``y_test`` (the layout of the usual ``mnist.npz``: images
  ``[N, 28, 28]`` uint8, labels ``[N]``; colour images ``[N, H, W, 3]`` work too).
* ``"idx:DIR"``: any directory with MNIST's IDX file layout (the four file names above,
  each with or without ``.gz``; the label files are optional). Fashion-MNIST is
  ``"idx:/usr/share/datasets/fashion-mnist"``.
* ``"tfds:NAME"``, e.g. ``"tfds:binarized_mnist"``, ``"tfds:mnist"``,
  ``"tfds:fashion_mnist"``, ``"tfds:cifar10"``, ``"tfds:svhn_cropped"``,
  ``"tfds:celeb_a"``: read with ``tfds.data_source`` (numpy random access, no TensorFlow
  needed); requires ``pip install 'jaxvae[tfds]'``. The first call downloads and prepares
  the data set in ``$TFDS_DATA_DIR`` (default ``~/tensorflow_datasets``).

Splits: ``"train"``, ``"valid"``, ``"test"`` and ``"train+valid"`` (the concatenation, in
that order; the IWAE paper trains on MNIST's 60,000 = 50,000 train + 10,000 valid images).
IDX data (``"fashion-mnist"``, ``"idx:DIR"``) is split like the MNIST npz: ``train`` is
the first 50,000 of the 60,000 training images, ``valid`` the last 10,000 and ``test``
the 10,000 ``t10k`` images; a training file of another size N gives ``valid`` = its last
N // 6 images and ``train`` the rest. TFDS splits map to ``train``, ``validation`` and
``test``; ``mnist``, ``fashion_mnist``, ``cifar10`` and ``svhn_cropped`` (whose splits are
train, test and extra) have no validation split, so ``valid`` is refused for them.

Per-data-set transforms (TFDS): ``celeb_a``'s 218 x 178 x 3 images are cropped to their
central 128 x 128 region (rows 45..172, columns 25..152: a vertical offset of 45 and a
horizontal offset of 25 pixels) and downsampled to 64 x 64 x 3 by averaging 2 x 2 blocks,
rounded half up to uint8, because 218 x 178 cannot be tiled by a strided conv net. The
table ``_TFDS_TRANSFORMS`` of :mod:`jaxvae.data.tfds_source` holds these; others can
be added there.

Pixel values: with the default ``dtype="float32"``, uint8 images are divided by 255,
except for TFDS data sets whose uint8 pixels are already 0/1 (``binarized_mnist``), which
are used as they are; bool images become 0/1; float images must already lie in [0, 1].
With ``dtype="uint8"`` the 8-bit integers are returned: uint8 images as they are, 0/1
data (bool, ``binarized_mnist``) as 0/255, and float images only when every value is a
multiple of 1/255 (to float32 precision). Discretized likelihoods (e.g. a discretized
logistic over 256 levels) need the integers; continuous ones (Bernoulli, Gaussian) the
floats. A trailing channel axis of size 1 is dropped, so MNIST-like data has
``event_shape == (28, 28)``; colour images keep their channel axis, ``(H, W, C)``.

Every problem with a name, a split or a file's contents raises :class:`DataError`, a
``ValueError``.
"""

from __future__ import annotations

import importlib.resources
import os
import zipfile
from typing import NamedTuple

import numpy as np

from jaxvae.data.errors import DataError, MissingDependencyError
from jaxvae.data.idx import idx_not_found, load_idx, read_idx
from jaxvae.data.tfds_source import check_tfds_split, load_tfds
from jaxvae.data.validation import to_images, to_labels

__all__ = [
    "Dataset",
    "DataError",
    "MissingDependencyError",
    "load",
    "read_idx",
    "SPLITS",
    "DTYPES",
    "EMBEDDED_NAMES",
    "FASHION_MNIST_NAMES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
]

SPLITS = ("train", "valid", "test", "train+valid")
DTYPES = ("float32", "uint8")
EMBEDDED_NAMES = ("embedded", "mnist-small")
EMBEDDED_FILE = "mnist_small.npz"
FASHION_MNIST_NAMES = ("fashion-mnist", "fashion_mnist")
FASHION_MNIST_ENV = "JAXVAE_FASHION_MNIST"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
NAME_FORMS = ("'embedded'", "'mnist-small'", "'fashion-mnist'", "'npz:PATH'", "'idx:DIR'",
              "'tfds:NAME'")


class Dataset(NamedTuple):
    """One split of a data set, in memory.

    Attributes:
      images: ``float32 [N, *event_shape]``, values in [0, 1] (e.g. ``[N, 28, 28]`` for
        MNIST, ``[N, 32, 32, 3]`` for CIFAR-10), or ``uint8`` 0..255 when loaded with
        ``dtype="uint8"``. Grey levels for MNIST; binarize with
        :func:`jaxvae.data.binarize_dynamic` (training) or
        :func:`jaxvae.data.binarize_fixed` (evaluation).
      labels: ``int32 [N]`` class labels, or ``None`` when the source has none.
      name: the data set name, with aliases resolved (``"embedded"``,
        ``"fashion-mnist"``, ``"npz:PATH"``, ``"idx:DIR"``, ``"tfds:NAME"``); the split
        is not part of it.
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
        """The shape of one example, e.g. ``(28, 28)`` or ``(32, 32, 3)``."""
        return tuple(self.images.shape[1:])


def load(name: str = "embedded", split: str = "train", *, dtype: str = "float32") -> Dataset:
    """Loads one split of a data set into memory.

    Args:
      name: ``"embedded"`` / ``"mnist-small"``, ``"fashion-mnist"`` / ``"fashion_mnist"``,
        ``"npz:PATH"``, ``"idx:DIR"`` or ``"tfds:NAME"`` (see the module docstring).
      split: ``"train"``, ``"valid"``, ``"test"`` or ``"train+valid"``.
      dtype: ``"float32"`` (default): images in [0, 1], for continuous likelihoods
        (Bernoulli on binarized or grey-level pixels, Gaussian). ``"uint8"``: the 8-bit
        integers 0..255, for discretized likelihoods over 256 levels; 0/1 data becomes
        0/255, and float data must hold multiples of 1/255.

    Returns:
      A :class:`Dataset`: ``images float32 [N, *event_shape]`` in [0, 1] (``uint8`` 0..255
      with ``dtype="uint8"``), ``labels int32 [N]`` or ``None``, and the resolved ``name``.

    Raises:
      DataError: unknown name, split or dtype, missing or unreadable file, missing key,
        wrong shapes, NaN values, values outside [0, 1], float values that are not 8-bit
        with ``dtype="uint8"``, or labels of the wrong length.
      MissingDependencyError: ``tfds:`` names without tensorflow-datasets installed.
    """
    if not isinstance(name, str):
        raise DataError(f"name must be a string, one of {', '.join(NAME_FORMS)}; got {name!r}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
    dtype = _check_dtype(dtype)
    parts = ("train", "valid") if split == "train+valid" else (split,)

    if name in EMBEDDED_NAMES:
        name = "embedded"
        ref = importlib.resources.files(__package__).joinpath(EMBEDDED_FILE)
        with importlib.resources.as_file(ref) as path:
            pieces = _load_npz(str(path), parts, dtype,
                               origin=f"the embedded data set ({EMBEDDED_FILE})")
    elif name in FASHION_MNIST_NAMES:
        name = "fashion-mnist"
        directory = os.path.expanduser(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
        pieces = load_idx(directory, parts, dtype, origin="Fashion-MNIST",
                          not_found=_fashion_mnist_not_found, labels_required=True)
    elif name.startswith("npz:"):
        path = os.path.expanduser(name[len("npz:"):])
        if not path:
            raise DataError("name 'npz:' needs a path after the colon, e.g. 'npz:/data/mnist.npz'")
        pieces = _load_npz(path, parts, dtype, origin=repr(path))
    elif name.startswith("idx:"):
        directory = os.path.expanduser(name[len("idx:"):])
        if not directory:
            raise DataError("name 'idx:' needs a directory after the colon, e.g. "
                            f"'idx:{FASHION_MNIST_DIR}'")
        pieces = load_idx(directory, parts, dtype, origin=repr(name),
                          not_found=idx_not_found, labels_required=False)
    elif name.startswith("tfds:"):
        tfds_name = name[len("tfds:"):]
        if not tfds_name:
            raise DataError("name 'tfds:' needs a TFDS data set name, e.g. 'tfds:binarized_mnist'")
        for part in parts:  # refuse a missing split before downloading anything
            check_tfds_split(tfds_name, part)
        pieces = [load_tfds(tfds_name, part, dtype) for part in parts]
    else:
        hint = ""
        if os.path.isdir(os.path.expanduser(name)):
            hint = f"; for a directory of IDX files, write 'idx:{name}'"
        elif name.endswith(".npz") or os.sep in name:
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


def _check_dtype(dtype) -> str:
    """``"float32"`` / ``"uint8"`` (or the numpy types) -> the name; anything else raises."""
    found = dtype
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        found = np.dtype(dtype).name
    if isinstance(found, str) and found in DTYPES:
        return found
    raise DataError(f"dtype must be 'float32' (images in [0, 1]) or 'uint8' (8-bit integers "
                    f"0..255); got {dtype!r}")


# ----------------------------------------------------------------------------- npz


def _load_npz(path: str, parts, dtype: str, origin: str):
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
            images = to_images(x, f"{x_key} in {origin}", dtype)
            labels = None if y is None else to_labels(y, len(images),
                                                      f"{y_key} in {origin}", x_key)
            out.append((images, labels))
    return out


def _fashion_mnist_not_found(directory: str, detail: str) -> str:
    return (f"Fashion-MNIST not found in {directory} ({detail}): install Debian's "
            "dataset-fashion-mnist package (apt install dataset-fashion-mnist), set "
            f"{FASHION_MNIST_ENV} to a directory with its IDX files, or use "
            "--data tfds:fashion_mnist")
