"""Convolutional VAEs for images of any H x W x C: a strided-conv encoder, three decoders.

The layer plan follows from the event shape (:func:`layer_plan`): ``levels`` stride-2
steps take H x W down to ``H / 2^levels x W / 2^levels``, so H and W must be divisible by
``2^levels``; the decoder climbs back with one 2x up-sampling per level. Three ways up:

* ``"transposed"``: a transposed convolution (kernel 4, stride 2);
* ``"depth-to-space"``: a stride-1 convolution to 4C channels, then each low-resolution
  pixel's 4C channels become a 2 x 2 block of C channels (:func:`depth_to_space`) — the
  "deconvolution as a reshape" of the VAE lecture (sub-pixel convolution);
* ``"unpool"``: unpooling (each value to the top-left corner of a 2 x 2 block of zeros,
  :func:`unpool`) followed by a stride-1 convolution, as in Dosovitskiy et al. (2015).

Images are ``[H, W]`` (one channel, the registry's MNIST form) or ``[H, W, C]``; nothing
here assumes 28 or 784. The model is the library's :class:`jaxvae.models.VAE`, so every
objective, estimator and the evaluator use it unchanged.

References: Kingma & Welling (2014); Dosovitskiy, Springenberg & Brox (2015), Learning to
Generate Chairs with Convolutional Neural Networks; Shi et al. (2016), Real-Time Single
Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import likelihoods
from jaxvae.models.mlp import VAE, GaussianHead, get_activation

Array = jax.Array

__all__ = ["DECODERS", "LayerPlan", "layer_plan", "depth_to_space", "unpool", "ConvEncoder",
           "ConvDecoder", "conv_vae"]

#: the up-sampling decoders of :class:`ConvDecoder`
DECODERS = ("transposed", "depth-to-space", "unpool")
#: the most stride-2 levels the automatic plan uses
MAX_LEVELS = 4
#: the automatic plan stops halving before a side would drop below this
MIN_SIDE = 4


class LayerPlan(NamedTuple):
    """What the networks look like for one event shape.

    Attributes:
      height, width, channels: the image (``channels`` is 1 for an ``[H, W]`` event).
      channel_axis: whether the event has a channel axis (``[H, W, C]``).
      levels: the number of stride-2 steps.
      widths: feature channels after each encoder level (the decoder mirrors them).
      base: ``(H / 2^levels, W / 2^levels)``, the decoder's starting grid.
    """

    height: int
    width: int
    channels: int
    channel_axis: bool
    levels: int
    widths: tuple[int, ...]
    base: tuple[int, int]


def _tilable_sizes(side: int, levels: int) -> str:
    step = 2 ** levels
    below, above = side // step * step, -(-side // step) * step
    return " or ".join(str(s) for s in sorted({below, above}) if s > 0)


def layer_plan(event_shape: Sequence[int], levels: int | None = None,
               channels: Sequence[int] | None = None) -> LayerPlan:
    """The convolutional layer plan for images of shape ``event_shape``.

    Args:
      event_shape: ``(H, W)`` or ``(H, W, C)``.
      levels: stride-2 steps; None picks the most (at most :data:`MAX_LEVELS`) that keep
        both sides integers and at least :data:`MIN_SIDE` (28 -> 2 levels, 7 x 7; 32 -> 3,
        4 x 4; 64 -> 4, 4 x 4).
      channels: feature channels per level (length ``levels``); None gives 32, 64, 128, 256.

    Returns: a :class:`LayerPlan`. Raises ValueError naming the shape when it cannot be
      tiled (a side not divisible by ``2^levels``, a non-positive size, a wrong rank).
    """
    shape = tuple(int(s) for s in event_shape)
    if len(shape) not in (2, 3) or min(shape, default=0) < 1:
        raise ValueError(f"conv models need an image event shape (H, W) or (H, W, C) with "
                         f"positive sizes, got {tuple(event_shape)}")
    height, width = shape[:2]
    num_channels = shape[2] if len(shape) == 3 else 1
    if levels is None:
        levels = 0
        while (levels < MAX_LEVELS and height % 2 ** (levels + 1) == 0
               and width % 2 ** (levels + 1) == 0
               and min(height, width) // 2 ** (levels + 1) >= MIN_SIDE):
            levels += 1
        if levels == 0:
            raise ValueError(
                f"cannot tile an image of shape {shape} with stride-2 convolutions: H and W "
                f"must both be even (and at least {2 * MIN_SIDE}); e.g. H = "
                f"{_tilable_sizes(height, 1)}, W = {_tilable_sizes(width, 1)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    step = 2 ** levels
    if height % step or width % step:
        raise ValueError(
            f"cannot tile an image of shape {shape} with {levels} stride-2 levels: H and W "
            f"must be divisible by 2^{levels} = {step}; e.g. H = "
            f"{_tilable_sizes(height, levels)}, W = {_tilable_sizes(width, levels)}")
    if channels is None:
        channels = tuple(min(32 * 2 ** i, 256) for i in range(levels))
    channels = tuple(int(c) for c in channels)
    if len(channels) != levels or min(channels) < 1:
        raise ValueError(f"channels must give {levels} positive widths (one per level), got "
                         f"{channels}")
    return LayerPlan(height, width, num_channels, len(shape) == 3, levels, channels,
                     (height // step, width // step))


def depth_to_space(x: Array, block: int = 2) -> Array:
    """Rearranges channels into space: ``[..., h, w, b*b*C] -> [..., b*h, b*w, C]``.

    out[..., b*i + r, b*j + s, c] = x[..., i, j, (b*r + s)*C + c]: each pixel's b*b*C
    channels, read as a b x b block of C-channel pixels in row-major order.

    Args: ``x: [..., h, w, b*b*C]``; ``block`` = b >= 1. Returns: ``[..., b*h, b*w, C]``.
    """
    *lead, h, w, depth = x.shape
    if depth % (block * block):
        raise ValueError(f"depth_to_space: {depth} channels cannot be split into "
                         f"{block}x{block} blocks")
    c = depth // (block * block)
    x = x.reshape(*lead, h, w, block, block, c)
    n = len(lead)
    x = x.transpose(*range(n), n, n + 2, n + 1, n + 3, n + 4)     # [.., h, r, w, s, C]
    return x.reshape(*lead, h * block, w * block, c)


def unpool(x: Array, factor: int = 2) -> Array:
    """Unpooling: ``[..., h, w, C] -> [..., f*h, f*w, C]``, each value at the top-left
    corner of an f x f block of zeros (Dosovitskiy et al., 2015)."""
    *lead, h, w, c = x.shape
    out = jnp.zeros((*lead, h, factor, w, factor, c), x.dtype)
    out = out.at[..., :, 0, :, 0, :].set(x)
    return out.reshape(*lead, h * factor, w * factor, c)


class Upsample(nn.Module):
    """One 2x step up: ``[..., h, w, C_in] -> [..., 2h, 2w, features]`` by ``method``."""

    features: int
    method: str = "depth-to-space"

    @nn.compact
    def __call__(self, h: Array) -> Array:
        """Args: ``h: [N, h, w, C_in]``. Returns: ``[N, 2h, 2w, features]``."""
        if self.method == "transposed":
            return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME")(h)
        if self.method == "depth-to-space":
            return depth_to_space(nn.Conv(4 * self.features, (3, 3), padding="SAME")(h))
        if self.method == "unpool":
            return nn.Conv(self.features, (3, 3), padding="SAME")(unpool(h))
        raise ValueError(f"unknown decoder {self.method!r}; expected one of {DECODERS}")


def _as_image_batch(x: Array, plan: LayerPlan, what: str) -> tuple[Array, tuple]:
    """``x: [*batch, *event] -> ([N, H, W, C], batch_shape)`` with a clear shape error."""
    event = (plan.height, plan.width) + ((plan.channels,) if plan.channel_axis else ())
    if tuple(x.shape[x.ndim - len(event):]) != event or x.ndim < len(event):
        raise ValueError(f"{what} expects images of shape {event} (optionally with leading "
                         f"batch axes), got shape {tuple(x.shape)}"
                         + ("; the data and the model differ in their channels"
                            if x.shape[:2] == event[:2] else ""))
    batch = tuple(x.shape[:x.ndim - len(event)])
    return x.reshape(-1, plan.height, plan.width, plan.channels), batch


class ConvEncoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma(x)^2) from strided convolutions and one dense layer.

    ``x: [*batch, H, W(, C)]`` -> per level a 3x3 stride-2 convolution and ``activation``
    -> flatten -> Dense(``hidden``) -> :class:`jaxvae.models.GaussianHead` over
    ``[latent_dim]`` (layers ``loc`` and ``raw_scale``, exp-parameterized variances).
    """

    event_shape: Sequence[int]
    latent_dim: int
    hidden: int = 256
    channels: Sequence[int] | None = None
    levels: int | None = None
    activation: Any = "relu"

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [*batch, *event_shape]``. Returns: q(z|x), event ``[latent_dim]``."""
        plan = layer_plan(self.event_shape, self.levels, self.channels)
        act = get_activation(self.activation)
        h, batch = _as_image_batch(x, plan, "ConvEncoder")
        h = h.astype(jnp.float32)
        for width in plan.widths:
            h = act(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(h))
        h = act(nn.Dense(self.hidden)(h.reshape(*batch, -1)))
        head = GaussianHead(self.latent_dim, "exp")
        nn.share_scope(self, head)          # its layers stay at encoder/loc, encoder/raw_scale
        return head(h)


class ConvDecoder(nn.Module):
    """p(x|z): Dense -> a ``base`` grid -> one 2x up-sampling per level -> 3x3 conv -> head.

    ``z: [*batch, latent_dim]`` -> Dense(``hidden``) -> Dense to ``[h0, w0, widths[-1]]``
    -> per level :class:`Upsample` (``decoder``: transposed / depth-to-space / unpool) to
    the mirrored widths -> a 3x3 stride-1 convolution to the head's raw channels, plus a
    per-pixel bias ``pixel_bias`` (``output_bias_init``, e.g. the data's mean logits) ->
    ``head`` (:mod:`jaxvae.likelihoods`).
    """

    event_shape: Sequence[int]
    decoder: str = "depth-to-space"
    hidden: int = 256
    channels: Sequence[int] | None = None
    levels: int | None = None
    head: Any = likelihoods.Bernoulli()
    activation: Any = "relu"
    output_bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, z: Array) -> distrax.Distribution:
        """Args: ``z: [*batch, latent_dim]``. Returns: p(x|z), event ``[*event_shape]``."""
        if self.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.decoder!r}; expected one of {DECODERS}")
        plan = layer_plan(self.event_shape, self.levels, self.channels)
        act = get_activation(self.activation)
        batch = z.shape[:-1]
        h = z.reshape(-1, z.shape[-1])
        h = act(nn.Dense(self.hidden)(h))
        h0, w0 = plan.base
        h = act(nn.Dense(h0 * w0 * plan.widths[-1])(h)).reshape(-1, h0, w0, plan.widths[-1])
        for width in reversed(plan.widths):
            h = act(Upsample(width, self.decoder)(h))
        event_shape = tuple(self.event_shape)
        raw_shape = self.head.raw_shape(event_shape)
        pixels = plan.height * plan.width
        out_channels = math.prod(raw_shape) // pixels
        raw = nn.Conv(out_channels, (3, 3), padding="SAME", name="out")(h)
        bias = self.param("pixel_bias", self.output_bias_init, (math.prod(raw_shape),))
        raw = raw.reshape(*batch, *raw_shape) + bias.reshape(raw_shape)
        return likelihoods.apply_head(self, self.head, raw, event_shape, len(event_shape))


def conv_vae(event_shape=(28, 28), latent_dim: int = 32, decoder: str = "depth-to-space",
             hidden: int = 256, channels: Sequence[int] | None = None,
             levels: int | None = None, head=likelihoods.Bernoulli(),
             output_bias_init=nn.initializers.zeros, activation: Any = "relu") -> VAE:
    """A convolutional VAE for images of shape ``event_shape`` ((H, W) or (H, W, C)).

    Args:
      event_shape: the image shape; the layer plan follows from it (:func:`layer_plan`).
      latent_dim: the size of z (N(0, I) prior).
      decoder: ``"depth-to-space"`` (default), ``"transposed"`` or ``"unpool"``
        (:data:`DECODERS`); on CPU the transposed convolution's kernel gradient is slow.
      hidden: the dense layer's width on both sides.
      channels, levels: the plan's widths and stride-2 levels (None: automatic).
      head: the likelihood (:mod:`jaxvae.likelihoods`), e.g. ``Bernoulli()`` for binary
        images, ``DiscretizedLogistic()`` for 8-bit ones.
      output_bias_init: initializer of the per-pixel output bias (``[prod(raw_shape)]``).
      activation: a name (``relu``, ``elu``, ``tanh``, ...) or a callable.

    Returns: a :class:`jaxvae.models.VAE`. Raises ValueError at once for a shape the plan
      cannot tile or an unknown decoder.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
    layer_plan(event_shape, levels, channels)            # fail here, not at the first call
    shape = tuple(int(s) for s in event_shape)
    return VAE(encoder=ConvEncoder(shape, latent_dim, hidden, channels, levels, activation),
               decoder=ConvDecoder(shape, decoder, hidden, channels, levels, head, activation,
                                   output_bias_init))
