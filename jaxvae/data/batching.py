"""Shuffled minibatches for one epoch, reproducible from ``(seed, epoch)``."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from jaxvae.data.registry import DataError

__all__ = ["batches", "num_batches"]


def _check_int(value, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise DataError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _check_batch_size(n: int, batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DataError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size} (data set of {n} examples)")
    if batch_size > n:
        raise DataError(f"batch_size {batch_size} is larger than the data set "
                        f"({n} examples)")
    return int(batch_size)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches per epoch over ``n`` examples.

    ``n // batch_size`` with ``drop_remainder`` (every batch full), else
    ``ceil(n / batch_size)`` (the last batch may be smaller).
    """
    n = _check_int(n, "n", minimum=1)
    batch_size = _check_batch_size(n, batch_size)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(x: np.ndarray, batch_size: int, *, seed: int, epoch: int,
            drop_remainder: bool = True) -> Iterator[np.ndarray]:
    """Iterates over one epoch of ``x`` in shuffled minibatches.

    The order is the permutation drawn by ``np.random.default_rng((seed, epoch))``, so it
    depends only on ``(seed, epoch, len(x))``: a run resumed at ``epoch`` sees the same
    batches as an uninterrupted one. Arguments are checked when ``batches`` is called,
    not at the first ``next``.

    Args:
      x: ``[N, ...]`` array (e.g. ``Dataset.images: float32 [N, 28, 28]``).
      batch_size: 1 <= batch_size <= N.
      seed: non-negative int, the run's data seed.
      epoch: non-negative int, the epoch index.
      drop_remainder: drop the last ``N % batch_size`` examples of the permutation
        (every batch has ``batch_size`` rows, so a jitted step compiles once); with
        ``False`` the last batch has the remainder and every example appears exactly once.

    Yields:
      ``num_batches(N, batch_size, drop_remainder)`` arrays ``x[idx]`` of shape
      ``[batch_size, ...]`` (the last one possibly smaller when ``drop_remainder=False``),
      with ``x``'s dtype.
    """
    if not hasattr(x, "shape") or len(x.shape) == 0:
        raise DataError(f"x must be an array [N, ...], got {type(x).__name__}")
    n = int(x.shape[0])
    if n == 0:
        raise DataError(f"x is empty (shape {tuple(x.shape)})")
    seed = _check_int(seed, "seed")
    epoch = _check_int(epoch, "epoch")
    count = num_batches(n, batch_size, drop_remainder)
    order = np.random.default_rng((seed, epoch)).permutation(n)
    return (x[order[i * batch_size:(i + 1) * batch_size]] for i in range(count))
