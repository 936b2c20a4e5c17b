"""Decoder heads: map a decoder's raw output to p(x|z) as a distrax distribution.

A head is a small, hashable object (usable as a Flax module attribute) with

* ``raw_shape(event_shape)``: the shape the decoder network must output for data
  of shape ``event_shape``;
* ``__call__(raw, event_ndims=None)``: the distribution p(x|z) whose event shape is
  ``event_shape``; leading axes of ``raw`` beyond ``event_ndims`` (default: none) are
  batch axes.

All log-probabilities are computed from logits / unconstrained parameters, never
from probabilities, so they are exact in float32 where the inputs are.
"""

from __future__ import annotations

import dataclasses

import distrax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

__all__ = ["BernoulliLogits", "Bernoulli", "Gaussian", "LearnedGaussian", "Categorical", "get_head",
           "check_support"]


def check_support(dist, x) -> None:
    """Raises ValueError when concrete data ``x`` leaves the range ``dist.support`` states.

    A head's distribution may state ``support = (low, high)``, the data range its density
    is defined on (Bernoulli: [0, 1]); distributions without one accept anything. Traced
    values (under ``jit``) are not checked.

    Args: ``dist``, a distribution from a head; ``x``, data of any shape.
    """
    support = getattr(dist, "support", None)
    if support is None or isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    low, high = float(values.min()), float(values.max())
    if low < support[0] or high > support[1]:
        raise ValueError(
            f"{type(dist).__name__} describes data in [{support[0]:g}, {support[1]:g}], but x "
            f"has values in [{low:g}, {high:g}]" + (" (scale 8-bit images by 1/255)"
                                                   if high > 1.5 and support[1] == 1 else ""))


def _ndims(raw: Array, event_ndims: int | None, extra_axes: int) -> int:
    """Event rank: given, or all axes of ``raw`` but the ``extra_axes`` parameter axes."""
    return raw.ndim - extra_axes if event_ndims is None else event_ndims


def _independent(dist: distrax.Distribution, event_ndims: int) -> distrax.Distribution:
    return distrax.Independent(dist, reinterpreted_batch_ndims=event_ndims)


@jax.custom_vjp
def _bernoulli_log_prob(x: Array, logits: Array) -> Array:
    """x * l - softplus(l) per element, softplus written out as max(l, 0) + log1p(exp(-|l|))."""
    return x * logits - (jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def _bernoulli_log_prob_fwd(x, logits):
    return _bernoulli_log_prob(x, logits), (x, logits)


def _bernoulli_log_prob_bwd(residuals, g):
    x, logits = residuals
    return g * logits, g * (x - jax.nn.sigmoid(logits))


_bernoulli_log_prob.defvjp(_bernoulli_log_prob_fwd, _bernoulli_log_prob_bwd)


class BernoulliLogits(distrax.Independent):
    """Independent Bernoulli(sigmoid(l)) over the event axes, log p = sum x * l - softplus(l).

    Equal to distrax's (1 - x) log sigmoid(-l) + x log sigmoid(l) for x in [0, 1] and finite
    logits, but computed so that XLA:CPU fuses the decoder's output layer with it: one
    softplus per pixel written without NaN-guard selects, the gradient x - sigmoid(l) given
    directly (a ``custom_vjp``, so forward-mode ``jvp`` through it is not supported), and
    one sum over the flattened event. This is the hot spot of training and of large-k
    evaluation on CPU.
    """

    #: the data range the density is defined on (values outside it are an error)
    support = (0.0, 1.0)

    def __init__(self, logits: Array, event_ndims: int):
        super().__init__(distrax.Bernoulli(logits=logits), reinterpreted_batch_ndims=event_ndims)

    def log_prob(self, value: Array) -> Array:
        """Args: ``value: [*batch, *event]`` in [0, 1]. Returns: ``[*batch]`` log p, nats.

        Concrete values outside [0, 1] raise ValueError (see :func:`check_support`).
        """
        check_support(self, value)
        logits = self.distribution.logits
        shape = jnp.broadcast_shapes(jnp.shape(value), logits.shape)
        per_pixel = _bernoulli_log_prob(jnp.broadcast_to(value, shape).astype(logits.dtype),
                                        jnp.broadcast_to(logits, shape))
        n = self.reinterpreted_batch_ndims
        return jnp.sum(per_pixel.reshape(*shape[:len(shape) - n], -1), axis=-1)


@dataclasses.dataclass(frozen=True)
class Bernoulli:
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d)), x_d in {0, 1} (or [0, 1]).

    raw: logits ``[*event]``.
    """

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape, the same (logits)."""
        return tuple(event_shape)

    def __call__(self, raw: Array, event_ndims: int | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event]`` (logits).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes).
        Returns: a :class:`BernoulliLogits` with event shape ``[*event]``; log_prob in nats.
        """
        return BernoulliLogits(raw, _ndims(raw, event_ndims, 0))


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """p(x|z) = N(x; mean, scale^2 I) with a fixed ``scale`` (a hyper-parameter).

    -log p(x|z) = ||x - mean||^2 / (2 scale^2) + D log(scale sqrt(2 pi)): the
    L2-distortion decoder. raw: means ``[*event]``.
    """

    scale: float = 1.0

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"Gaussian scale must be positive, got {self.scale}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape, the same (means)."""
        return tuple(event_shape)

    def __call__(self, raw: Array, event_ndims: int | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event]`` (means).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes).
        Returns: a distribution with event shape ``[*event]``; log_prob in nats.
        """
        dist = distrax.Normal(raw, jnp.full_like(raw, self.scale))
        return _independent(dist, _ndims(raw, event_ndims, 0))


@dataclasses.dataclass(frozen=True)
class LearnedGaussian:
    """p(x|z) = N(x; mean, diag(scale^2)), scale = softplus(s) + min_scale, learned per pixel.

    raw: ``[*event, 2]`` stacking means and unconstrained scales. ``min_scale`` (default 0)
    is an explicit part of the model, not a clamp: it bounds the density from above.
    """

    min_scale: float = 0.0

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape ``(*event_shape, 2)``."""
        return (*event_shape, 2)

    def __call__(self, raw: Array, event_ndims: int | None = None) -> distrax.Distribution:
        """p(x|z) from ``raw: [*batch, *event, 2]`` (means, unconstrained scales).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes).
        Returns: a distribution with event shape ``[*event]``; log_prob in nats.
        """
        mean, raw_scale = raw[..., 0], raw[..., 1]
        scale = jax.nn.softplus(raw_scale) + self.min_scale
        return _independent(distrax.Normal(mean, scale), _ndims(raw, event_ndims, 1))


@dataclasses.dataclass(frozen=True)
class Categorical:
    """p(x|z) = prod_t Categorical(x_t; softmax(logits_t)), e.g. tokens of a sentence.

    raw: logits ``[*event, num_classes]``; x: integer classes ``[*event]``.
    """

    num_classes: int

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the output shape ``(*event_shape, num_classes)``."""
        return (*event_shape, self.num_classes)

    def __call__(self, raw: Array, event_ndims: int | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event, num_classes]`` (logits).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes).
        Returns: a distribution over integer classes ``[*event]``; log_prob in nats.
        """
        return _independent(distrax.Categorical(logits=raw), _ndims(raw, event_ndims, 1))


_HEADS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "learned_gaussian": LearnedGaussian}


def get_head(name: str, **kwargs):
    """Head by name: ``bernoulli``, ``gaussian`` (fixed ``scale=``), ``learned_gaussian``.

    Args: ``name``; ``**kwargs``, the head's fields. Returns: the head (a frozen dataclass).
    """
    if name not in _HEADS:
        raise ValueError(f"unknown likelihood {name!r}; expected one of {sorted(_HEADS)}")
    return _HEADS[name](**kwargs)

