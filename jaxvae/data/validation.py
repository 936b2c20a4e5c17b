"""The image and label conversion and checks shared by every data source.

:func:`to_images` turns uint8, bool or float images into ``float32`` in [0, 1] or ``uint8``
0..255 (see :mod:`jaxvae.data.registry` for the rules); :func:`to_labels` checks class
labels and returns ``int32``. Both raise :class:`~jaxvae.data.errors.DataError`.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxvae.data.errors import DataError

__all__ = ["to_images", "to_labels"]


def to_images(x: np.ndarray, what: str, dtype: str, zero_one: bool = False) -> np.ndarray:
    """Checks ``x: [N, D]``, ``[N, H, W]`` or ``[N, H, W, C]``; returns ``dtype`` images.

    ``dtype="float32"``: values in [0, 1]; uint8 is divided by 255 (kept as 0/1 when
    ``zero_one``), bool becomes 0/1, floats are kept. ``dtype="uint8"``: 0..255; uint8 is
    kept (0/1 becomes 0/255 when ``zero_one``), bool becomes 0/255, floats must be multiples
    of 1/255. A trailing channel axis of size 1 is dropped; other channel axes are kept.
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
        if zero_one:
            hi = int(x.max())
            if hi > 1:
                n_out = int(np.count_nonzero(x > 1))
                raise DataError(f"{what} should hold 0/1 pixels (binarized data), but {n_out} "
                                f"values are outside [0, 1] (max {hi})")
            images = x * np.uint8(255) if dtype == "uint8" else x.astype(np.float32)
        else:
            if x.max() == 1:
                warnings.warn(f"{what} is uint8 with values in {{0, 1}} only; it is read as "
                              "0..255 grey levels (1 means 1/255). Store 0/1 data as bool or "
                              "float32.", stacklevel=4)
            images = x if dtype == "uint8" else x.astype(np.float32) / np.float32(255)
    elif x.dtype == np.bool_:
        images = x.astype(np.uint8) * np.uint8(255) if dtype == "uint8" else x.astype(np.float32)
    elif np.issubdtype(x.dtype, np.floating):
        n_bad = int(np.count_nonzero(np.isnan(x)))
        if n_bad:
            raise DataError(f"{what} contains {n_bad} NaN values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            n_out = int(np.count_nonzero((x < 0.0) | (x > 1.0)))
            raise DataError(f"{what} has {n_out} values outside [0, 1] after scaling "
                            f"(min {lo:g}, max {hi:g}); float images must already be in [0, 1]")
        images = _float_to_uint8(x, what) if dtype == "uint8" else x.astype(np.float32)
    else:
        raise DataError(f"{what} has dtype {x.dtype}; expected uint8 (0..255), bool, or "
                        "float in [0, 1]")
    # A fresh, writeable array: not a view into a file's bytes or a larger array.
    return np.require(images, requirements=("C", "W", "O"))


def _float_to_uint8(x: np.ndarray, what: str) -> np.ndarray:
    """Float ``x`` in [0, 1] whose values are k / 255 -> ``uint8`` k.

    A value counts as k / 255 when it is within 2 units in the last place of k / 255 in
    float32 (or in ``x``'s own dtype, when that is coarser), so 8-bit data scaled in
    float32 or float64 passes and anything else is refused.
    """
    levels = np.rint(x * 255).astype(np.uint8)
    ulp_dtype = x.dtype if np.finfo(x.dtype).eps > np.finfo(np.float32).eps else np.float32
    exact = np.arange(256) / 255.0
    tolerance = 2 * np.spacing(exact.astype(ulp_dtype)).astype(x.dtype)
    off = np.abs(x - exact.astype(x.dtype)[levels]) > tolerance[levels]
    n_off = int(np.count_nonzero(off))
    if n_off:
        example = float(x[off].flat[0])
        raise DataError(f"{what} is not 8-bit data: {n_off} of {x.size} values are not "
                        f"multiples of 1/255 (e.g. {example:.9g}); dtype='uint8' needs uint8 "
                        "or bool images, or floats k / 255; use dtype='float32' for these")
    return levels


def to_labels(y: np.ndarray, n: int, what: str, x_what: str) -> np.ndarray:
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
