"""Shuffled minibatches for one epoch, reproducible from ``(seed, epoch)``.

A data set is an array ``[N, ...]`` or any pytree of arrays with the same leading axis N
(``(images, labels)``, ``{"x": images, "y": labels}``); batches have the same structure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from jaxvae import _checks
from jaxvae.data.registry import DataError

__all__ = ["batches", "num_batches"]


def _integer(value, name: str, minimum: int, context: str = "") -> int:
    """:func:`jaxvae._checks.integer` in this module's wording, as :class:`DataError`:
    "{name} must be an int, got ..." for a non-integer, and the range error followed by
    ``context`` (e.g. " (data set of 10 examples)")."""
    try:
        return _checks.integer(value, name, minimum, error=DataError, type_error=TypeError)
    except TypeError:
        raise DataError(f"{name} must be an int, got {value!r}") from None
    except DataError as err:
        raise DataError(f"{err}{context}") from None


def _batch_size(n: int, batch_size) -> int:
    batch_size = _integer(batch_size, "batch_size", 1, f" (data set of {n} examples)")
    if batch_size > n:
        raise DataError(f"batch_size {batch_size} is larger than the data set "
                        f"({n} examples)")
    return batch_size


def _num_examples(data: Any) -> int:
    """The common leading axis N of every leaf of ``data``; raises :class:`DataError`
    naming the leaves' shapes when they disagree."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(data)
    if not leaves:
        raise DataError(f"data must be an array [N, ...] or a pytree of them, got "
                        f"{type(data).__name__} with no arrays")
    for path, leaf in leaves:
        if not hasattr(leaf, "shape") or len(leaf.shape) == 0:
            where = f"data{jax.tree_util.keystr(path)}" if path else "x"
            raise DataError(f"{where} must be an array [N, ...], got {type(leaf).__name__}"
                            + (f" of shape {tuple(leaf.shape)}" if hasattr(leaf, "shape") else ""))
    sizes = {int(leaf.shape[0]) for _, leaf in leaves}
    if len(sizes) > 1:
        shapes = ", ".join(f"data{jax.tree_util.keystr(p)}: {tuple(leaf.shape)}"
                           for p, leaf in leaves)
        raise DataError(f"every array of the data must have the same leading axis (number "
                        f"of examples), got {shapes}")
    n = sizes.pop()
    if n == 0:
        shapes = ", ".join(str(tuple(leaf.shape)) for _, leaf in leaves)
        raise DataError(f"x is empty (shape {shapes})")
    return n


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches per epoch over ``n`` examples.

    ``n // batch_size`` with ``drop_remainder`` (every batch full), else
    ``ceil(n / batch_size)`` (the last batch may be smaller).

    Args: ``n``, an int >= 1 or the data itself (an array ``[N, ...]`` or a pytree of them,
      whose leading axis is counted); ``batch_size`` in [1, N]; ``drop_remainder``.
    Returns: an int; :class:`DataError` for invalid arguments.
    """
    if isinstance(n, (bool, int, np.integer, float)):
        n = _integer(n, "n", 1)
    else:
        n = _num_examples(n)
    batch_size = _batch_size(n, batch_size)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(data: Any, batch_size: int, *, seed: int, epoch: int,
            drop_remainder: bool = True) -> Iterator[Any]:
    """Iterates over one epoch of ``data`` in shuffled minibatches.

    The order is the permutation drawn by ``np.random.default_rng((seed, epoch))``, so it
    depends only on ``(seed, epoch, N)``: a run resumed at ``epoch`` sees the same
    batches as an uninterrupted one. Arguments are checked when ``batches`` is called,
    not at the first ``next``.

    Args:
      data: an array ``[N, ...]`` (e.g. ``Dataset.images: float32 [N, 28, 28]``) or a
        pytree of arrays sharing the leading axis N (``(images, labels)``, a dict).
      batch_size: 1 <= batch_size <= N.
      seed: non-negative int, the run's data seed.
      epoch: non-negative int, the epoch index.
      drop_remainder: drop the last ``N % batch_size`` examples of the permutation
        (every batch has ``batch_size`` rows, so a jitted step compiles once); with
        ``False`` the last batch has the remainder and every example appears exactly once.

    Yields:
      ``num_batches(N, batch_size, drop_remainder)`` batches with the structure of
      ``data``, each leaf ``leaf[idx]`` of shape ``[batch_size, ...]`` (the last one
      possibly smaller when ``drop_remainder=False``) and the leaf's dtype. Every leaf is
      indexed by the same rows.
    """
    n = _num_examples(data)
    seed = _integer(seed, "seed", 0)
    epoch = _integer(epoch, "epoch", 0)
    count = num_batches(n, batch_size, drop_remainder)
    order = np.random.default_rng((seed, epoch)).permutation(n)
    take = lambda idx: jax.tree_util.tree_map(lambda leaf: leaf[idx], data)
    return (take(order[i * batch_size:(i + 1) * batch_size]) for i in range(count))
