"""Sharpness of image batches: Laplacian variance, gradient energy, high-frequency fraction.

Each measure maps a batch ``[N, H, W]`` or ``[N, H, W, C]`` (grey levels, by convention in
[0, 1]; values are used as given, so clip decoder means first if they should be shown as
images) to one value per image ``[N]``, computed per channel and averaged over channels.
All three are 0 for a constant image and fall when an image is blurred; they are
quadratic (the first two) or scale-free (the third) in the intensity. They measure
*local contrast*, not quality: salt-and-pepper noise is "sharp". Compare a model's images
with the data's own values (:func:`sharpness`), never with an absolute threshold.

* :func:`laplacian_variance` — Var of the 4-neighbour discrete Laplacian over the interior
  pixels (Pech-Pacheco et al., 2000, "Diatom autofocusing in brightfield microscopy").
* :func:`gradient_energy` — mean squared forward differences along both axes (the
  "energy of image gradient" focus measure; Subbarao, Choi & Nikzad, 1993).
* :func:`high_frequency_fraction` — the share of the non-DC spectral power above a radial
  frequency cutoff (in cycles per pixel).

Two *shape attributes* of the ink in an image (e.g. to split a data set for a latent
attribute vector, :func:`jaxvae.latent.attribute_groups`), for grey images with ink >= 0
on a background of 0 (channels are averaged first):

* :func:`stroke_thickness` — ink / (half the total variation): the stroke width in pixels;
* :func:`slant` — the shear of the ink distribution, cov(x, y) / var(y).

All functions are pure ``jax.numpy`` and jit-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["MEASURES", "laplacian", "laplacian_variance", "gradient_energy",
           "high_frequency_fraction", "sharpness", "stroke_thickness", "slant"]


def _as_channels(images, name: str = "images", min_side: int = 2) -> Array:
    """``[N, H, W]`` or ``[N, H, W, C]`` -> float32 ``[N, C, H, W]`` with a clear error."""
    images = jnp.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"{name} must be a batch [N, H, W] or [N, H, W, C], got shape "
                         f"{tuple(images.shape)}" + ("; add a leading batch axis for one image"
                                                     if images.ndim == 2 else ""))
    if images.shape[0] < 1 or images.shape[1] < min_side or images.shape[2] < min_side:
        raise ValueError(f"{name} of shape {tuple(images.shape)}: need at least one image of "
                         f"at least {min_side} x {min_side} pixels")
    if not (jnp.issubdtype(images.dtype, jnp.floating)
            or jnp.issubdtype(images.dtype, jnp.integer) or images.dtype == jnp.bool_):
        raise ValueError(f"{name} must be real-valued, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    return jnp.moveaxis(images.astype(jnp.float32), -1, 1)


def laplacian(images) -> Array:
    """The 4-neighbour discrete Laplacian at the interior pixels.

    L[i, j] = x[i-1, j] + x[i+1, j] + x[i, j-1] + x[i, j+1] - 4 x[i, j],
    for 1 <= i <= H-2, 1 <= j <= W-2 (no padding: border pixels have no value).

    Args: ``images: [N, H, W]`` or ``[N, H, W, C]``, H, W >= 3.
    Returns: ``[N, C, H-2, W-2]`` float32 (C = 1 for ``[N, H, W]``), in intensity units.
    """
    x = _as_channels(images, min_side=3)
    centre = x[..., 1:-1, 1:-1]
    return (x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:]
            - 4.0 * centre)


def laplacian_variance(images) -> Array:
    """Variance of the discrete Laplacian over each image's interior, averaged over channels.

    V = (1/C) sum_c Var_{i,j}(L_c[i, j]),  L as in :func:`laplacian`; the variance is the
    population one (divided by (H-2)(W-2)).

    Closed forms: 0 for a constant image or any linear ramp a + b i + c j (L = 0); 16 a^2
    for a checkerboard a * ((i + j) mod 2) whose (H-2)(W-2) interior holds as many 0s as
    a's (L = -4a on the a's, +4a on the 0s, mean 0).

    Args: ``images: [N, H, W]`` or ``[N, H, W, C]``, H, W >= 3 (values e.g. in [0, 1]).
    Returns: ``[N]`` float32, in squared intensity units.

    References: Pech-Pacheco, Cristóbal, Chamorro-Martínez & Fernández-Valdivia (2000),
    Diatom autofocusing in brightfield microscopy: a comparative study.
    """
    lap = laplacian(images)
    return jnp.mean(jnp.var(lap, axis=(-2, -1)), axis=1)


def gradient_energy(images) -> Array:
    """Mean squared finite-difference gradient, averaged over channels.

    E = (1/C) sum_c [ mean_{i,j} (x[i, j+1] - x[i, j])^2 + mean_{i,j} (x[i+1, j] - x[i, j])^2 ],
    each mean over the H (W-1) horizontal, resp. (H-1) W vertical, differences.

    Closed forms: 0 for a constant image; b^2 + c^2 for a ramp a + b i + c j; 2 a^2 for a
    checkerboard a * ((i + j) mod 2) (every difference is +-a).

    Args: ``images: [N, H, W]`` or ``[N, H, W, C]``, H, W >= 2.
    Returns: ``[N]`` float32, in squared intensity units per pixel^2.

    References: Subbarao, Choi & Nikzad (1993), Focusing techniques (the energy of the
    image gradient as a focus measure).
    """
    x = _as_channels(images)
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    per_channel = jnp.mean(dx ** 2, axis=(-2, -1)) + jnp.mean(dy ** 2, axis=(-2, -1))
    return jnp.mean(per_channel, axis=1)


def high_frequency_fraction(images, cutoff: float = 0.25) -> Array:
    """Share of each image's non-DC spectral power above a radial frequency, per channel,
    averaged over channels.

    With X = DFT_2(x) (periodic extension of the H x W image) and f = (f_i, f_j) in cycles
    per pixel (``numpy.fft.fftfreq``, each in [-1/2, 1/2)):

        F = sum_{|f| > cutoff} |X(f)|^2 / sum_{f != 0} |X(f)|^2,    F = 0 when x is constant.

    Closed forms: 1 for a checkerboard on even H, W (all power at f = (1/2, 1/2)); for a
    pure cosine cos(2 pi k j / W), 1 if k / W > cutoff and 0 if k / W < cutoff.

    Args:
      images: ``[N, H, W]`` or ``[N, H, W, C]``, H, W >= 2.
      cutoff: the radial frequency in cycles per pixel, in (0, sqrt(2)/2); the default 1/4
        is half the Nyquist frequency along an axis.

    Returns: ``[N]`` float32 in [0, 1] (a fraction, no units).
    """
    if not 0.0 < float(cutoff) < 0.5 ** 0.5:
        raise ValueError(f"cutoff must be a radial frequency in (0, {0.5 ** 0.5:.4f}) cycles "
                         f"per pixel, got {cutoff}")
    x = _as_channels(images)
    height, width = x.shape[-2:]
    power = jnp.abs(jnp.fft.fft2(x)) ** 2                               # [N, C, H, W]
    fi = jnp.fft.fftfreq(height)[:, None]
    fj = jnp.fft.fftfreq(width)[None, :]
    radius = jnp.sqrt(fi ** 2 + fj ** 2)
    total = jnp.sum(jnp.where(radius > 0, power, 0.0), axis=(-2, -1))
    high = jnp.sum(jnp.where(radius > cutoff, power, 0.0), axis=(-2, -1))
    # relative to the DC power: below float32 resolution the image is constant
    dc = power[..., 0, 0]
    flat = total <= 1e-10 * jnp.maximum(dc, 1.0)
    fraction = jnp.where(flat, 0.0, high / jnp.where(flat, 1.0, total))
    return jnp.mean(fraction, axis=1)


#: the measures by name, as used by :func:`sharpness`
MEASURES = {"laplacian_variance": laplacian_variance, "gradient_energy": gradient_energy,
            "high_frequency_fraction": high_frequency_fraction}


def sharpness(images, clip: bool = True) -> dict[str, float]:
    """Every measure of :data:`MEASURES`, averaged over the batch.

    Args:
      images: ``[N, H, W]`` or ``[N, H, W, C]`` (e.g. decoder means or data in [0, 1]).
      clip: clip to [0, 1] first, as an image grid shows them (decoder means of Gaussian
        or Laplace heads may leave [0, 1]).

    Returns: ``{name: mean over the N images}`` as Python floats, each with
      ``name + "_stderr"``, the standard error of that mean over the images.
    """
    images = jnp.asarray(images, jnp.float32)
    if clip:
        images = jnp.clip(images, 0.0, 1.0)
    out = {}
    for name, fn in MEASURES.items():
        values = fn(images)
        n = values.shape[0]
        out[name] = float(jnp.mean(values))
        out[name + "_stderr"] = float(jnp.std(values) / jnp.sqrt(n)) if n > 1 else 0.0
    return out


def _ink(images, name: str = "images") -> Array:
    """``[N, H, W]`` or ``[N, H, W, C]`` -> float32 ``[N, H, W]``, the channel mean."""
    return jnp.mean(_as_channels(images, name, min_side=1), axis=1)


def stroke_thickness(images) -> Array:
    """The mean stroke width of each image in pixels: ink / (half its total variation).

    With the image on a background of 0 (zero-padded by one pixel on every side),

        ink = sum_{i,j} x[i, j],
        TV  = sum |x[i, j+1] - x[i, j]| + sum |x[i+1, j] - x[i, j]|   (all edges, incl. the
              border with the padding),
        thickness = ink / (TV / 2),   0 for a blank image (TV = 0).

    A stroke of width w and length L has ink w L and TV = 2 (L + w) (each of its L
    cross-sections rises and falls once, as do its w ends), so thickness = w L / (L + w),
    which tends to w for L >> w; an edge blurred monotonically over several pixels has the
    same TV as a sharp one, so blur keeps the ink and the thickness. Thicker pen, larger
    value; the total length of the strokes cancels out.

    Args: ``images: [N, H, W]`` or ``[N, H, W, C]``, ink >= 0 on a background of 0 (e.g.
      MNIST in [0, 1]; invert images with dark ink on white first).
    Returns: ``[N]`` float32, in pixels.
    """
    x = jnp.pad(_ink(images), ((0, 0), (1, 1), (1, 1)))
    tv = (jnp.sum(jnp.abs(jnp.diff(x, axis=2)), axis=(1, 2))
          + jnp.sum(jnp.abs(jnp.diff(x, axis=1)), axis=(1, 2)))
    ink = jnp.sum(x, axis=(1, 2))
    return jnp.where(tv > 0, ink / jnp.where(tv > 0, 0.5 * tv, 1.0), 0.0)


def slant(images) -> Array:
    """The slant of each image: the shear of its ink distribution, cov(x, y) / var(y).

    Pixel (i, j) of an H x W image has the coordinates x = j (the column, rightwards) and
    y = H - 1 - i (the height above the bottom row, upwards); with the ink x[i, j] as
    weights w (their sum W),

        slant = cov_w(x, y) / var_w(y),  cov_w(x, y) = sum w (x - mean_w x)(y - mean_w y) / W,

    0 when the image is blank or its ink lies in one row. It is the least-squares slope
    dx/dy of the ink's column against its height: positive for a stroke that leans to the
    right going up ("/"), negative for "\\", 0 for an upright one; a shape sheared by
    x -> x + s y gains exactly s. This is the classic MNIST deskewing measure, up to its
    sign: deskewing code that counts rows downwards computes cov(row, col) / var(row) =
    -slant.

    Args: ``images: [N, H, W]`` or ``[N, H, W, C]``, ink >= 0 on a background of 0.
    Returns: ``[N]`` float32, in columns per row (the tangent of the lean from vertical).
    """
    w = _ink(images)
    height, width = w.shape[1:]
    y = (height - 1 - jnp.arange(height, dtype=jnp.float32))[:, None]
    x = jnp.arange(width, dtype=jnp.float32)[None, :]
    total = jnp.sum(w, axis=(1, 2))
    safe = jnp.where(total > 0, total, 1.0)
    mean_x = jnp.sum(w * x, axis=(1, 2)) / safe
    mean_y = jnp.sum(w * y, axis=(1, 2)) / safe
    dy = y - mean_y[:, None, None]
    cov = jnp.sum(w * (x - mean_x[:, None, None]) * dy, axis=(1, 2)) / safe
    var = jnp.sum(w * dy ** 2, axis=(1, 2)) / safe
    ok = (total > 0) & (var > 1e-12)
    return jnp.where(ok, cov / jnp.where(ok, var, 1.0), 0.0)
