"""DRAW's selective attention: an N x N grid of 2-D Gaussian filters (Gregor et al., 2015).

For an image of H rows and W columns (pixel coordinates a = 1..W, b = 1..H, as in the
paper), five numbers from the decoder's state set the grid (paper eqs. 19-24):

    (g~_X, g~_Y, log sigma^2, log delta~, log gamma) = Linear(h_dec)
    g_X = (W + 1)/2 (g~_X + 1),   g_Y = (H + 1)/2 (g~_Y + 1)
    delta = (max(H, W) - 1)/(N - 1) delta~
    mu_X^i = g_X + (i - N/2 - 1/2) delta,   mu_Y^j = g_Y + (j - N/2 - 1/2) delta,   i, j = 1..N
    F_X[i, a] = exp(-(a - mu_X^i)^2 / (2 sigma^2)) / Z_X,   sum_a F_X[i, a] = 1 (and F_Y alike)

read(x, x^, h) = gamma [F_Y x F_X^T, F_Y x^ F_X^T] (two N x N glimpses) and
write(h) = (1/gamma^) F^_Y^T w F^_X (an N x N patch w placed on the canvas). Without
attention, read is [x, x^] whole and write a dense layer to the canvas. The normalization
is a softmax over pixels, so it holds exactly even when every filter weight underflows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxvae.types import Array

__all__ = ["Glimpse", "glimpse_params", "filterbank", "read", "write", "read_plain",
           "tiling_init"]


class Glimpse(NamedTuple):
    """One attention grid, in pixel units (coordinates 1..W and 1..H)."""

    g_x: Array      # [] grid centre, column
    g_y: Array      # [] grid centre, row
    sigma2: Array   # [] filter variance
    delta: Array    # [] stride between filter centres
    gamma: Array    # [] intensity


def glimpse_params(raw: Array, height: int, width: int, size: int) -> Glimpse:
    """The grid that five unconstrained numbers describe (paper eqs. 21-24).

    Args: ``raw: [5]`` = (g~_X, g~_Y, log sigma^2, log delta~, log gamma); the image
      ``height`` H and ``width`` W; ``size`` N >= 1 filters per side.
    Returns: a :class:`Glimpse`.
    """
    if raw.shape[-1:] != (5,):
        raise ValueError(f"attention takes 5 numbers per glimpse, got shape {raw.shape}")
    gx, gy, log_sigma2, log_delta, log_gamma = jnp.moveaxis(raw, -1, 0)
    span = (max(height, width) - 1) / max(size - 1, 1)
    return Glimpse(g_x=(width + 1) / 2 * (gx + 1), g_y=(height + 1) / 2 * (gy + 1),
                   sigma2=jnp.exp(log_sigma2), delta=span * jnp.exp(log_delta),
                   gamma=jnp.exp(log_gamma))


def tiling_init(size: int, height: int, width: int, write: bool = False):
    """Initializer of the ``[5]`` bias of a glimpse layer: the N x N grid tiles the image.

    Centred (g~ = 0), stride delta = max(H, W) / N, sigma = delta / 2; gamma = 1 for a
    read, and for a write gamma = 1 / (2 pi sigma^2), so that a patch value of 1 moves the
    canvas logit under a filter centre by about 1 (normalized filters spread a written
    value over ~2 pi sigma^2 pixels; at gamma = 1 the canvas barely moves and the write
    weights take thousands of Adam steps to grow). The paper's parameterization starts
    (at raw = 0) with delta = (max(H, W) - 1)/(N - 1) and sigma = 1 pixel: a 2 x 2 read grid
    then samples four corner pixels, blank in MNIST, so neither the encoder nor the grid's
    own gradient sees the digit and q collapses to the prior.

    Args: ``size`` N >= 1; the image ``height`` and ``width``; ``write``.
    Returns: ``init(key, shape, dtype) -> [5]``.
    """
    span = max(height, width)
    delta = span / size
    delta_tilde = delta / ((span - 1) / max(size - 1, 1))
    log_sigma2 = 2.0 * math.log(delta / 2.0)
    log_gamma = -(math.log(2.0 * math.pi) + log_sigma2) if write else 0.0
    raw = jnp.array([0.0, 0.0, log_sigma2, math.log(delta_tilde), log_gamma])

    def init(key, shape, dtype=jnp.float32):
        if tuple(shape) != (5,):
            raise ValueError(f"a glimpse layer has 5 outputs, got a bias of shape {shape}")
        return raw.astype(dtype)

    return init


def _filters(centre: Array, delta: Array, sigma2: Array, size: int, pixels: int) -> Array:
    """``[N, pixels]`` rows of normalized Gaussian weights around the N filter centres."""
    offsets = jnp.arange(1, size + 1, dtype=jnp.float32) - size / 2 - 0.5
    mu = centre + offsets * delta                                       # [N]
    a = jnp.arange(1, pixels + 1, dtype=jnp.float32)                    # pixel coordinates
    return jax.nn.softmax(-jnp.square(a[None, :] - mu[:, None]) / (2 * sigma2), axis=-1)


def filterbank(glimpse: Glimpse, size: int, height: int, width: int) -> tuple[Array, Array]:
    """The horizontal and vertical filterbanks of a glimpse.

    Args: ``glimpse``; ``size`` N; the image ``height`` H and ``width`` W.
    Returns: ``(F_Y [N, H], F_X [N, W])``, each row summing to 1.
    """
    f_y = _filters(glimpse.g_y, glimpse.delta, glimpse.sigma2, size, height)
    f_x = _filters(glimpse.g_x, glimpse.delta, glimpse.sigma2, size, width)
    return f_y, f_x


def read(x: Array, x_hat: Array, raw: Array, size: int) -> Array:
    """The attentive read: gamma [F_Y x F_X^T, F_Y x^ F_X^T], flattened.

    Args: ``x``, ``x_hat``: ``[H, W]`` (the image and the error image); ``raw: [5]``;
      ``size`` N. Returns: ``[2 N N]``.
    """
    height, width = x.shape
    glimpse = glimpse_params(raw, height, width, size)
    f_y, f_x = filterbank(glimpse, size, height, width)
    patches = jnp.stack([f_y @ x @ f_x.T, f_y @ x_hat @ f_x.T])
    return glimpse.gamma * patches.reshape(-1)


def write(patch: Array, raw: Array, height: int, width: int) -> Array:
    """The attentive write: (1/gamma) F_Y^T w F_X, an ``[H, W]`` canvas update.

    Args: ``patch: [N, N]`` (w); ``raw: [5]``; the canvas ``height`` and ``width``.
    Returns: ``[H, W]``.
    """
    size = patch.shape[0]
    if patch.shape != (size, size):
        raise ValueError(f"a written patch must be square [N, N], got {patch.shape}")
    glimpse = glimpse_params(raw, height, width, size)
    f_y, f_x = filterbank(glimpse, size, height, width)
    return (f_y.T @ patch @ f_x) / glimpse.gamma


def read_plain(x: Array, x_hat: Array) -> Array:
    """The read without attention: the whole image and the error image.

    Args: ``x``, ``x_hat``: ``[H, W]``. Returns: ``[2 H W]``, both flattened.
    """
    return jnp.concatenate([jnp.ravel(x), jnp.ravel(x_hat)])
