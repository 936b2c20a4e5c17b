"""The shared parts of the decoder heads: :func:`check_support`, :func:`apply_head`,
:func:`bits_per_dim`, the checked ``Independent`` base and small helpers of the heads."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _is_integer_dtype(dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_))


def check_support(dist, x) -> None:
    """Raises ValueError when concrete data ``x`` are not the data ``dist`` describes.

    A head's distribution may state, as class attributes,

    * ``support = (low, high)``: the data range (Bernoulli and the continuous heads:
      [0, 1]; the discretized heads: [0, 2^b - 1]); values outside it are an error;
    * ``integer_support = True``: the data are integer levels, so a floating-point ``x``
      (e.g. images already scaled to [0, 1]) is an error naming its dtype;
    * ``continuous = True``: a density over real values, so an integer or bool ``x``
      (e.g. raw uint8 images) is an error naming its dtype.

    Distributions stating no ``support`` (e.g. :class:`Categorical`'s) accept anything,
    and so does everything under ``jit``: traced values are not checked.

    Args: ``dist``, a distribution from a head; ``x``, data of any shape. Returns None.
    """
    support = getattr(dist, "support", None)
    if support is None or isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    name = getattr(dist, "head_name", type(dist).__name__)
    low, high = support
    if getattr(dist, "integer_support", False):
        num_bits = getattr(dist, "num_bits", None)
        what = (f"{num_bits}-bit integers" if num_bits else "integers") + \
            f" in [{low:g}, {high:g}]"
        if not _is_integer_dtype(values.dtype):
            images = "uint8 images" if num_bits == 8 else "integer levels"
            raise ValueError(f"{name} describes {what}, but x has dtype {values.dtype}; pass "
                             f"the {images}, not images scaled to [0, 1]")
    elif getattr(dist, "continuous", False):
        what = f"continuous data in [{low:g}, {high:g}]"
        if not jnp.issubdtype(values.dtype, jnp.floating):
            raise ValueError(
                f"{name} is a density over {what}, but x has dtype {values.dtype}; scale "
                "8-bit images by 1/255 (or dequantize them, (x + u) / 256), or use the "
                "discretized logistic head ('logistic') for the integer levels")
    else:
        what = f"data in [{low:g}, {high:g}]"
    if values.size == 0:
        return
    found_low, found_high = float(values.min()), float(values.max())
    if found_low < low or found_high > high:
        raise ValueError(
            f"{name} describes {what}, but x has values in [{found_low:g}, {found_high:g}]"
            + (" (scale 8-bit images by 1/255)" if found_high > 1.5 and high == 1 else ""))


def ndims(raw: Array, event_ndims: int | None, extra_axes: int) -> int:
    """Event rank: given, or all axes of ``raw`` but the ``extra_axes`` parameter axes."""
    return raw.ndim - extra_axes if event_ndims is None else event_ndims


def independent(dist: distrax.Distribution, event_ndims: int) -> distrax.Distribution:
    """``dist`` with its last ``event_ndims`` batch axes made event axes."""
    return distrax.Independent(dist, reinterpreted_batch_ndims=event_ndims)


def no_param(head, param) -> None:
    """Raises ValueError when ``param`` is given to a ``head`` without a free parameter."""
    if param is not None:
        raise ValueError(f"{type(head).__name__} has no free parameter (param_shape is "
                         f"None), but param= was given")


def as_unit_float(x) -> Array:
    """``x`` as a float32 array (values unchanged)."""
    return jnp.asarray(x).astype(jnp.float32)


class CheckedIndependent(distrax.Independent):
    """An ``Independent`` whose ``log_prob`` first checks concrete data (:func:`check_support`)."""

    def log_prob(self, value: Array) -> Array:
        """Args: ``value: [*batch, *event]``. Returns: ``[*batch]`` log p(value), nats.

        Concrete data the head does not describe raise ValueError (:func:`check_support`).
        """
        check_support(self, value)
        return super().log_prob(value)


def apply_head(module, head, raw: Array, event_shape, event_ndims: int):
    """p(x|z) from ``head``, creating the head's free parameter inside ``module``.

    When ``head.param_shape(event_shape)`` is not None, the Flax ``module`` gets a
    parameter named ``"likelihood"`` of that shape (initialized to zeros) and the head is
    called with it; otherwise the head is called on ``raw`` alone. Call it from a
    decoder's ``@nn.compact`` ``__call__``.

    Args: ``module``, the calling Flax module; ``head``; ``raw: [*batch, *raw_shape]``;
      ``event_shape``; ``event_ndims = len(event_shape)``.
    Returns: the head's distribution, event shape ``[*event_shape]``.
    """
    param_shape = getattr(head, "param_shape", lambda shape: None)(tuple(event_shape))
    if param_shape is None:
        return head(raw, event_ndims=event_ndims)
    param = module.param("likelihood", jax.nn.initializers.zeros, param_shape)
    return head(raw, event_ndims=event_ndims, param=param)


def bits_per_dim(nll_nats, num_dims: int, levels: int | None = None):
    """Bits per dimension of a negative log-likelihood in nats per example.

    Without ``levels``: nll / (D ln 2), for discrete data (e.g. a discretized head's NLL
    of the 8-bit levels, or a Bernoulli head's). With ``levels``: ``nll_nats`` is a
    continuous density's -log p(y) on data dequantized as y = (x + u) / levels,
    u ~ U[0, 1)^D, and the result is (nll + D ln levels) / (D ln 2): by Jensen,

        -log P(x) <= -E_u log p((x + u) / levels) + D ln levels,

    P(x) being the mass of p on x's bin (volume levels^-D), so this bounds the discrete
    data's bits per dimension from above.

    Args: ``nll_nats``, a number or array (nats per example); ``num_dims`` D >= 1;
      ``levels`` (e.g. 256) or None.
    Returns: bits per dimension, the type of ``nll_nats``.
    """
    if not num_dims >= 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    if levels is None:
        return nll_nats / (num_dims * math.log(2))
    if not levels >= 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return (nll_nats + num_dims * math.log(levels)) / (num_dims * math.log(2))
