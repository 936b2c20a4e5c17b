"""IDX files (MNIST's format): :func:`read_idx` and the loader of a directory of them.

:func:`load_idx` reads the ``"fashion-mnist"`` and ``"idx:DIR"`` data sets of
:func:`jaxvae.data.load`: MNIST's file layout (:data:`IDX_FILES`, each file gzip-compressed
or not), ``train`` / ``valid`` split from the training file like the MNIST npz.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable

import numpy as np

from jaxvae.data.errors import DataError
from jaxvae.data.validation import to_images, to_labels

__all__ = ["IDX_FILES", "read_idx", "load_idx", "idx_not_found"]

# MNIST's IDX layout: source split -> (images file, labels file), without ".gz".
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# IDX data type codes (the third byte of the magic number); only unsigned bytes are read.
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Reads an IDX file of unsigned bytes, gzip-compressed or not.

    The layout of LeCun's MNIST files: a 4-byte magic number ``0x0000TTDD`` (two zero
    bytes, the data type code ``TT``, which must be ``0x08`` = unsigned byte, and the number
    of dimensions ``DD``), then ``DD`` big-endian uint32 sizes, then the values in C order.
    Compression is recognized by the gzip magic bytes, not by the file name.

    Args:
      path: the file, e.g. ``train-images-idx3-ubyte.gz``.
      ndim: the expected number of dimensions (3 for images, 1 for labels).

    Returns:
      ``uint8`` array of the shape the header declares, e.g. ``[60000, 28, 28]``
      (read-only: a view of the file's bytes).

    Raises:
      DataError: the file cannot be read, its gzip data is truncated or corrupt, its magic
        number, data type code or number of dimensions is wrong, or its length does not
        match the declared shape. The message names the file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"cannot read IDX file {path!r} ({type(err).__name__}: {err})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"cannot decompress IDX file {path!r}: truncated or corrupt gzip "
                            f"data ({type(err).__name__}: {err})") from err
    expected = f"0x000008{ndim:02X} (unsigned bytes, {ndim} dimensions)"
    if len(raw) < 4:
        raise DataError(f"IDX file {path!r} has {len(raw)} bytes, too few for the 4-byte magic "
                        f"number {expected}")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] or raw[1]:
        raise DataError(f"{path!r} is not an IDX file: its magic number is 0x{magic:08X}, "
                        f"expected {expected}")
    if raw[2] != 0x08:
        kind = _IDX_TYPES.get(raw[2], "unknown")
        raise DataError(f"IDX file {path!r} has data type code 0x{raw[2]:02X} ({kind}); only "
                        "0x08 (unsigned byte) is supported")
    if raw[3] != ndim:
        raise DataError(f"IDX file {path!r} has {raw[3]} dimensions (magic number "
                        f"0x{magic:08X}); expected {expected}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path!r} is truncated: {len(raw)} bytes, fewer than its "
                        f"{header}-byte header of {ndim} sizes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = math.prod(shape)
    if len(raw) - header != size:
        raise DataError(f"IDX file {path!r} declares shape {list(shape)} = {size} bytes of "
                        f"data but holds {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx_not_found(directory: str, detail: str) -> str:
    """The message for a directory without MNIST's IDX files (``detail``: what is missing)."""
    names = ", ".join(name for pair in IDX_FILES.values() for name in pair)
    return (f"no MNIST-layout IDX data in {directory!r} ({detail}); expected the files "
            f"{names}, each optionally gzip-compressed (.gz)")


def _find_idx_file(directory: str, stem: str) -> str | None:
    for candidate in (f"{stem}.gz", stem):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def load_idx(directory: str, parts, dtype: str, origin: str,
             not_found: Callable[[str, str], str], labels_required: bool):
    """``(images, labels)`` for each split in ``parts`` from a directory of IDX files.

    ``train`` / ``valid`` are the first N - N // 6 / last N // 6 of the N training images
    (50,000 / 10,000 for MNIST's 60,000); ``test`` is the t10k file. Each file is read once.
    """
    if not os.path.isdir(directory):
        raise DataError(not_found(directory, "no such directory"))
    paths = {}
    for source in dict.fromkeys("test" if part == "test" else "train" for part in parts):
        images_stem, labels_stem = IDX_FILES[source]
        paths[source] = (_find_idx_file(directory, images_stem),
                         _find_idx_file(directory, labels_stem))
        if paths[source][0] is None:
            raise DataError(not_found(directory, f"no {images_stem}[.gz]"))
        if labels_required and paths[source][1] is None:
            raise DataError(not_found(directory, f"no {labels_stem}[.gz]"))

    arrays = {}
    for source, (images_path, labels_path) in paths.items():
        x = read_idx(images_path, ndim=3)
        y = None
        if labels_path is not None:
            y = to_labels(read_idx(labels_path, ndim=1), len(x), repr(labels_path),
                          repr(images_path))
        arrays[source] = (x, y, images_path)

    out = []
    for part in parts:
        x, y, images_path = arrays["test" if part == "test" else "train"]
        n = len(x)
        rows = slice(0, n)
        what = f"split {part!r} of {origin} ({images_path!r})"
        if part != "test":
            n_train = n - n // 6
            rows = slice(0, n_train) if part == "train" else slice(n_train, n)
            which = f"first {n_train}" if part == "train" else f"last {n - n_train}"
            what = f"split {part!r} of {origin} (the {which} of the {n} images in {images_path!r})"
        images = to_images(x[rows], what, dtype)
        out.append((images, None if y is None else y[rows]))
    return out

