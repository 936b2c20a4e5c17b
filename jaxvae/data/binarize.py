"""Bernoulli binarization of grey-level images in [0, 1].

Two protocols, which give different numbers and must be stated with every result:

* dynamic (:func:`binarize_dynamic`): a fresh draw ``x_bin ~ Bernoulli(x)`` every time a
  batch is used, inside the jitted train step with a new key each step (the protocol of
  Burda, Grosse & Salakhutdinov, 2015, for MNIST training);
* fixed (:func:`binarize_fixed`): one draw from a seeded NumPy generator, made once, for
  evaluation sets, so that every model is scored on the same binary images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae.data.registry import DataError

Array = jax.Array

__all__ = ["binarize_dynamic", "binarize_fixed"]


def _check_probabilities(values: np.ndarray, what: str) -> None:
    n_nan = int(np.count_nonzero(np.isnan(values)))
    if n_nan:
        raise DataError(f"{what} contains {n_nan} NaN values; expected probabilities in [0, 1]")
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{what} must hold probabilities in [0, 1], found min {lo:g}, "
                        f"max {hi:g}")


def binarize_dynamic(key: Array, x: Array) -> Array:
    """A fresh Bernoulli draw: ``out[i] = 1`` with probability ``x[i]``, else 0.

    Meant to be called inside the jitted train step with a new key every step (e.g.
    ``key, sub = jax.random.split(key)``), so that each pass over the data sees a new
    binarization (dynamic binarization, as in the IWAE paper).

    Args:
      key: PRNG key.
      x: probabilities, any shape (e.g. ``[batch, 28, 28]``), values in [0, 1]. Checked
        (NaN, range) only when concrete, not under ``jit``.

    Returns:
      ``float32`` array of the shape of ``x`` with values in {0., 1.}.
    """
    if not isinstance(x, jax.core.Tracer):
        values = np.asarray(x)
        if np.issubdtype(values.dtype, np.floating) or values.dtype == np.bool_:
            _check_probabilities(values.astype(np.float32), "x")
    p = jnp.asarray(x, dtype=jnp.float32)
    return jax.random.bernoulli(key, p).astype(jnp.float32)


def binarize_fixed(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A deterministic Bernoulli draw for evaluation sets.

    ``out = (u < x)`` with ``u ~ Uniform[0, 1)`` drawn, in C order over ``x``'s shape, by
    ``np.random.default_rng(seed)``. The same ``x`` and ``seed`` give the same binary images
    in every process and on every machine (NumPy's PCG64 generator does not depend on the
    platform; NEP 19 allows the stream to change between NumPy versions, which
    ``Generator.random`` has not done so far). State the seed with every result.

    Args:
      x: probabilities, e.g. ``images: float32 [N, 28, 28]`` in [0, 1].
      seed: a non-negative int.

    Returns:
      ``float32`` numpy array of the shape of ``x`` with values in {0., 1.}.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative int, got {seed!r}")
    values = np.asarray(x, dtype=np.float32)
    _check_probabilities(values, "x")
    rng = np.random.default_rng(int(seed))
    return (rng.random(values.shape) < values).astype(np.float32)
