"""Uniform dequantization of 8-bit images, for continuous likelihoods.

A continuous density p(y) on y in [0, 1]^D, fitted to y = (x + u) / 256 with x the 8-bit
levels and u ~ U[0, 1)^D, bounds the discrete model P(x) = ∫ over x's bin of p:

    log P(x) >= E_u[log p((x + u) / 256)] - D log 256

(Jensen; Theis, van den Oord & Bethge, 2016), so a continuous head's NLL in nats plus
D log 256 is an upper bound on the data's NLL in nats at 8 bits, comparable with a
discretized likelihood's (:func:`jaxvae.likelihoods.bits_per_dim` with ``levels=256``).

Two protocols, like binarization: dynamic (a fresh u every step, inside the jitted train
step) for training; fixed (one seeded draw) for evaluation sets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae.data.registry import DataError

Array = jax.Array

__all__ = ["LEVELS", "dequantize_dynamic", "dequantize_fixed", "dynamic_dequantization"]

#: the number of levels of 8-bit data
LEVELS = 256


def _check_levels(x, what: str = "x") -> None:
    if isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    if not (np.issubdtype(values.dtype, np.integer)):
        raise DataError(f"{what} must hold 8-bit integer levels (uint8), got dtype "
                        f"{values.dtype}; load the data with dtype='uint8'")
    if values.size and (values.min() < 0 or values.max() >= LEVELS):
        raise DataError(f"{what} must hold levels in [0, {LEVELS - 1}], found "
                        f"[{values.min()}, {values.max()}]")


def dequantize_dynamic(key: Array, x: Array) -> Array:
    """``(x + u) / 256`` with a fresh ``u ~ U[0, 1)`` per pixel.

    Args: ``key``; ``x``: integer levels 0..255, any shape (e.g. ``[B, H, W, C]``).
    Returns: ``float32`` of x's shape, values in [0, 1).
    """
    _check_levels(x)
    u = jax.random.uniform(key, jnp.shape(x), jnp.float32)
    return (jnp.asarray(x, jnp.float32) + u) / LEVELS


def dequantize_fixed(x, seed: int = 0) -> np.ndarray:
    """``(x + u) / 256`` with ``u`` from ``numpy.random.default_rng(seed)``: one fixed
    dequantization of an evaluation set, the same for every model.

    Args: ``x``: integer levels 0..255 ``[N, *event]``; ``seed``.
    Returns: ``float32 [N, *event]`` in [0, 1).
    """
    _check_levels(x)
    u = np.random.default_rng(seed).random(np.shape(x), dtype=np.float32)
    return ((np.asarray(x, np.float32) + u) / np.float32(LEVELS)).astype(np.float32)


def dynamic_dequantization(key: Array, batch):
    """The ``preprocess`` of :func:`jaxvae.make_train_step` for 8-bit images under a
    continuous likelihood: :func:`dequantize_dynamic` on ``batch``, ``batch[0]`` (a tuple)
    or ``batch["x"]``; everything else is left alone."""
    if isinstance(batch, dict):
        return {**batch, "x": dequantize_dynamic(key, batch["x"])}
    if isinstance(batch, (tuple, list)):
        return type(batch)((dequantize_dynamic(key, batch[0]), *batch[1:]))
    return dequantize_dynamic(key, batch)
