"""Image grids of samples, reconstructions and interpolations, written as PNG with PIL.

Images are grayscale with values in [0, 1] (decoder means, see :mod:`jaxvae.latent`):
``[N, H, W]``, ``[N, H, W, 1]``, or flat ``[N, D]`` with D a perfect square (reshaped
to ``[N, sqrt(D), sqrt(D)]``, e.g. 784 -> 28 x 28). Values are clipped to [0, 1] for
display and quantized to uint8 as round(255 v). PNGs are written atomically (a temporary
file in the target directory, then ``os.replace``), so a reader never sees a partial file.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from jaxvae import latent, rundir

__all__ = ["image_grid", "save_grid", "save_samples", "save_reconstructions",
           "save_interpolation"]


def as_images(images, name: str = "images") -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, 1]`` or ``[N, D]`` (D = s^2) -> float ``[N, H, W]``.

    Args: ``images``; ``name`` for error messages. Returns: float64 ``[N, H, W]``.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(f"{name} of shape {images.shape} are flat vectors of length "
                             f"{images.shape[1]}, which is not a perfect square; reshape "
                             "them to [N, H, W] first")
        images = images.reshape(images.shape[0], side, side)
    if images.ndim != 3:
        raise ValueError(f"{name} must have shape [N, H, W], [N, H, W, 1] or [N, D] with "
                         f"D a perfect square, got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {images.shape})")
    if np.isnan(images).any():
        raise ValueError(f"{name} contains {int(np.isnan(images).sum())} NaN values")
    return images


def image_grid(images, ncols: int | None = None, pad_value: float = 1.0) -> np.ndarray:
    """Tiles images into one uint8 image with 1-pixel gaps.

    Image i goes to row i // ncols, column i % ncols; its top-left pixel lands at
    ``(row * (H + 1), col * (W + 1))``. Gaps and the empty cells of an incomplete last row
    are ``pad_value`` (white by default, separating dark-background digits).

    Args:
      images: ``[N, H, W]`` (or see :func:`as_images`), values in [0, 1].
      ncols: images per row (default ceil(sqrt(N))).
      pad_value: gap colour in [0, 1].

    Returns:
      ``uint8 [R (H + 1) - 1, C (W + 1) - 1]`` with R = ceil(N / C) rows, C = ncols.
    """
    images = as_images(images)
    n, h, w = images.shape
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), float(pad_value))
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = image
    return np.round(np.clip(grid, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_grid(images, path, ncols: int | None = None, pad_value: float = 1.0) -> str:
    """Writes :func:`image_grid` of ``images`` to ``path`` as a grayscale PNG, atomically.

    Creates the parent directory if needed.

    Args: ``images`` (values in [0, 1]), ``path``, ``ncols``, ``pad_value`` as in
      :func:`image_grid`.
    Returns: ``path`` as a string.
    """
    grid = image_grid(images, ncols, pad_value)
    return rundir.atomic_write(os.fspath(path),
                               lambda f: Image.fromarray(grid).save(f, format="PNG"))


def save_samples(model, params, key, path, num: int = 64, ncols: int | None = None) -> str:
    """PNG grid of ``num`` decoder means at z ~ p(z) (:func:`jaxvae.latent.sample_prior`).

    Args: ``model``, ``params``, ``key`` (PRNG key), ``path``, ``num`` >= 1, ``ncols``.
    Returns: ``path`` as a string.
    """
    return save_grid(latent.sample_prior(model, params, key, num), path, ncols)


def save_reconstructions(model, params, x, path, num: int = 32, ncols: int = 8,
                         key=None) -> str:
    """PNG of the first ``num`` examples of ``x: [N, *event]`` and their reconstructions.

    Layout: rows come in pairs — a row of ``ncols`` inputs, and directly below it the
    reconstructions (decoder mean at the posterior mean) of those same inputs — so the
    image has 2 * ceil(num / ncols) rows. ``key`` is needed for posteriors without a
    closed-form mean (a Monte Carlo mean, see :func:`jaxvae.latent.encode_mean`).

    Args: ``model``, ``params``, ``x: [N, *event]`` in [0, 1], ``path``, ``num``, ``ncols``,
      ``key`` (PRNG key or None).
    Returns: ``path`` as a string.
    """
    x = np.asarray(x)[:num]
    recon = np.asarray(latent.decode(model, params, latent.encode_mean(model, params, x, key)))
    inputs, outputs = as_images(x, "x"), as_images(recon, "reconstructions")
    n, h, w = inputs.shape
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    cells = np.full((2 * nrows * ncols, h, w), np.nan)
    for i in range(n):
        r, c = divmod(i, ncols)
        cells[2 * r * ncols + c] = inputs[i]
        cells[(2 * r + 1) * ncols + c] = outputs[i]
    # Empty cells of an incomplete last pair of rows are drawn as gap colour.
    return save_grid(np.where(np.isnan(cells), 1.0, cells), path, ncols)


def save_interpolation(model, params, x0, x1, path, num: int = 10,
                       method: str = "slerp", key=None) -> str:
    """PNG row of ``num`` decoded points between the encodings of ``x0`` and ``x1``.

    The path of :func:`jaxvae.latent.interpolate`, from x0's reconstruction to x1's.

    Args: ``model``, ``params``, ``x0, x1: [*event]``, ``path``, ``num`` >= 2, ``method``
      (``"slerp"`` or ``"lerp"``), ``key`` (PRNG key or None).
    Returns: ``path`` as a string.

    References: White (2016), Sampling Generative Networks.
    """
    images = latent.interpolate(model, params, x0, x1, num, method, key=key)
    return save_grid(images, path, ncols=num)
