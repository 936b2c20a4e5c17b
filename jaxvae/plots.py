"""Image grids of samples, reconstructions and interpolations, written as PNG with PIL.

Images have values in [0, 1] (decoder means, see :mod:`jaxvae.latent`) and are either
grayscale, ``[N, H, W]``, ``[N, H, W, 1]``, or flat ``[N, D]`` with D a perfect square
(reshaped to ``[N, sqrt(D), sqrt(D)]``, e.g. 784 -> 28 x 28), written as 8-bit grayscale
PNGs (mode ``"L"``); or colour, ``[N, H, W, 3]`` (red, green, blue), written as RGB PNGs
(mode ``"RGB"``). The gap colour ``pad_value`` is a grey level in [0, 1] for both, or an
``(r, g, b)`` triple for colour images. Values are clipped to [0, 1] for display and
quantized to uint8 as round(255 v). PNGs are written atomically (a temporary file in the
target directory, then ``os.replace``), so a reader never sees a partial file.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxvae import latent, rundir, terms

__all__ = ["image_grid", "save_grid", "save_samples", "save_reconstructions",
           "save_interpolation", "save_conditional_samples"]


def as_images(images, name: str = "images") -> np.ndarray:
    """Grayscale or RGB images in any accepted layout -> float ``[N, H, W]`` or ``[N, H, W, 3]``.

    Grayscale: ``[N, H, W]``, ``[N, H, W, 1]`` or ``[N, D]`` (D = s^2) -> ``[N, H, W]``;
    RGB: ``[N, H, W, 3]`` is kept.

    Args: ``images``; ``name`` for error messages. Returns: float64 ``[N, H, W]``
      (grayscale) or ``[N, H, W, 3]`` (RGB).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(f"{name} of shape {images.shape} are flat vectors of length "
                             f"{images.shape[1]}, which is not a perfect square; reshape "
                             "them to [N, H, W] (or [N, H, W, 3] for colour) first")
        images = images.reshape(images.shape[0], side, side)
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise ValueError(f"{name} must have shape [N, H, W], [N, H, W, 1] or [N, D] with "
                         f"D a perfect square (grayscale), or [N, H, W, 3] (RGB), got "
                         f"{images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {images.shape})")
    if np.isnan(images).any():
        raise ValueError(f"{name} contains {int(np.isnan(images).sum())} NaN values")
    return images


def _pad_colour(pad_value, channels: tuple[int, ...]) -> np.ndarray:
    """``pad_value`` -> float ``[]`` (a grey level) or, for RGB (``channels == (3,)``), ``[3]``."""
    rgb = channels == (3,)
    try:
        pad = np.asarray(pad_value, dtype=np.float64)
    except (TypeError, ValueError):
        pad = None
    if pad is None or np.isnan(pad).any() or not (pad.shape == () or (rgb and pad.shape == (3,))):
        expected = "a number in [0, 1] or an (r, g, b) triple" if rgb else "a number in [0, 1]"
        kind = "RGB" if rgb else "grayscale"
        raise ValueError(f"pad_value must be {expected} for {kind} images, got {pad_value!r}")
    return pad


def image_grid(images, ncols: int | None = None, pad_value: float | tuple = 1.0) -> np.ndarray:
    """Tiles images into one uint8 image with 1-pixel gaps.

    Image i goes to row i // ncols, column i % ncols; its top-left pixel lands at
    ``(row * (H + 1), col * (W + 1))``. Gaps and the empty cells of an incomplete last row
    are ``pad_value`` (white by default, separating dark-background digits).

    Args:
      images: grayscale ``[N, H, W]`` or RGB ``[N, H, W, 3]`` (or see :func:`as_images`),
        values in [0, 1].
      ncols: images per row (default ceil(sqrt(N))).
      pad_value: gap colour: a grey level in [0, 1], or for RGB images also an
        ``(r, g, b)`` triple in [0, 1].

    Returns:
      ``uint8 [R (H + 1) - 1, C (W + 1) - 1]`` (grayscale) or
      ``uint8 [R (H + 1) - 1, C (W + 1) - 1, 3]`` (RGB), with R = ceil(N / C) rows,
      C = ncols.
    """
    images = as_images(images)
    n, h, w = images.shape[:3]
    channels = images.shape[3:]
    pad = _pad_colour(pad_value, channels)
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    grid = np.empty((nrows * (h + 1) - 1, ncols * (w + 1) - 1, *channels))
    grid[...] = pad
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = image
    return np.round(np.clip(grid, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_grid(images, path, ncols: int | None = None, pad_value: float | tuple = 1.0) -> str:
    """Writes :func:`image_grid` of ``images`` to ``path`` as a PNG, atomically.

    Grayscale images give a grayscale PNG (mode ``"L"``), ``[N, H, W, 3]`` an RGB PNG.

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

    Grayscale or RGB, following the model's event shape (see :func:`as_images`).

    Args: ``model``, ``params``, ``key`` (PRNG key), ``path``, ``num`` >= 1, ``ncols``.
    Returns: ``path`` as a string.
    """
    images = latent.display_units(model, latent.sample_prior(model, params, key, num))
    return save_grid(images, path, ncols)


def save_conditional_samples(model, params, key, path, num_conditions: int,
                             per_condition: int = 8) -> str:
    """PNG grid of a conditional model's samples: row c holds decoder means at z ~ p(z|c)
    for the integer label c (the same z draws in every row when the prior ignores c).

    Args: ``model`` (a conditional model taking integer labels, e.g.
      :func:`jaxvae.models.conditional_mlp`), ``params``, ``key``, ``path``,
      ``num_conditions`` >= 1 labels 0..num_conditions-1, ``per_condition`` >= 1 columns.
    Returns: ``path`` as a string.
    """
    labels = np.repeat(np.arange(num_conditions, dtype=np.int32), per_condition)
    keys = jax.random.split(key, per_condition)
    z = jnp.concatenate([
        jax.vmap(lambda k: terms.bind(model, params, condition=c).prior().sample(seed=k))(keys)
        for c in range(num_conditions)])
    images = latent.decode(model, params, z, condition=labels)
    return save_grid(latent.display_units(model, images), path, ncols=per_condition)


def save_reconstructions(model, params, x, path, num: int = 32, ncols: int = 8,
                         key=None) -> str:
    """PNG of the first ``num`` examples of ``x: [N, *event]`` and their reconstructions.

    Layout: rows come in pairs — a row of ``ncols`` inputs, and directly below it the
    reconstructions (decoder mean at the posterior mean) of those same inputs — so the
    image has 2 * ceil(num / ncols) rows. ``key`` is needed for posteriors without a
    closed-form mean (a Monte Carlo mean, see :func:`jaxvae.latent.encode_mean`).

    Args: ``model``, ``params``, ``x: [N, *event]`` in [0, 1] (grayscale, or RGB
      ``[N, H, W, 3]`` for an RGB PNG), ``path``, ``num``, ``ncols``, ``key`` (PRNG key or
      None).
    Returns: ``path`` as a string.
    """
    x = np.asarray(x)[:num]
    recon = latent.decode(model, params, latent.encode_mean(model, params, x, key))
    x, recon = (np.asarray(latent.display_units(model, a)) for a in (x, recon))
    inputs, outputs = as_images(x, "x"), as_images(recon, "reconstructions")
    n = inputs.shape[0]
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    cells = np.full((2 * nrows * ncols, *inputs.shape[1:]), np.nan)
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

    Grayscale or RGB, following the model's event shape (see :func:`as_images`).

    Args: ``model``, ``params``, ``x0, x1: [*event]``, ``path``, ``num`` >= 2, ``method``
      (``"slerp"`` or ``"lerp"``), ``key`` (PRNG key or None).
    Returns: ``path`` as a string.

    References: White (2016), Sampling Generative Networks.
    """
    images = latent.display_units(model, latent.interpolate(model, params, x0, x1, num, method,
                                                            key=key))
    return save_grid(images, path, ncols=num)
