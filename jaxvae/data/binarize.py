"""Bernoulli binarization of grey-level images in [0, 1].

Two protocols, which give different numbers and must be stated with every result:

* dynamic (:func:`binarize_dynamic`): a fresh draw ``x_bin ~ Bernoulli(x)`` every time a
  batch is used, inside the jitted train step with a new key each step (the protocol of
  Burda, Grosse & Salakhutdinov, 2015, for MNIST training);
  :func:`dynamic_binarization` applies it to the images of a batch pytree, as the
  ``preprocess`` of :func:`jaxvae.make_train_step`;
* fixed (:func:`binarize_fixed`): one draw from a seeded NumPy generator, made once, for
  evaluation sets, so that every model is scored on the same binary images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks
from jaxvae.data.registry import DataError

Array = jax.Array

__all__ = ["binarize_dynamic", "binarize_fixed", "dynamic_binarization"]


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


def dynamic_binarization(key: Array, batch):
    """The ``preprocess`` of :func:`jaxvae.make_train_step` for dynamic binarization.

    Replaces the images of ``batch`` by :func:`binarize_dynamic` ``(key, images)`` and
    leaves everything else (labels) untouched. The images are ``batch`` itself when it is
    an array, its first element when it is a tuple or list (``(x, y)``), and ``batch["x"]``
    when it is a dict.

    Args:
      key: PRNG key (the train step's data key: a fresh one every step).
      batch: ``x: [batch, *event]`` intensities in [0, 1], ``(x, y, ...)`` or
        ``{"x": x, ...}``.

    Returns:
      a batch of the same structure, with ``float32`` images in {0., 1.}.
    """
    if isinstance(batch, dict):
        if "x" not in batch:
            raise DataError(f"a dict batch must hold the images under 'x', got keys "
                            f"{sorted(batch)}")
        return {**batch, "x": binarize_dynamic(key, batch["x"])}
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise DataError("a tuple batch must hold the images first, got an empty tuple")
        rest = tuple(batch[1:])
        images = binarize_dynamic(key, batch[0])
        if hasattr(batch, "_fields"):                       # a NamedTuple
            return type(batch)(images, *rest)
        return type(batch)((images, *rest))
    return binarize_dynamic(key, batch)


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
    try:
        seed = _checks.integer(seed, "seed", 0, error=DataError, type_error=DataError)
    except DataError:
        raise DataError(f"seed must be a non-negative int, got {seed!r}") from None
    values = np.asarray(x, dtype=np.float32)
    _check_probabilities(values, "x")
    rng = np.random.default_rng(seed)
    return (rng.random(values.shape) < values).astype(np.float32)
