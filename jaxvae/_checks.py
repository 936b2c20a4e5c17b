"""Argument checks shared by every module: one wording, one place.

Each check raises a ``TypeError`` for a value of the wrong kind and a ``ValueError`` (or
the ``error`` class given, e.g. :class:`jaxvae.data.DataError`) for a value out of range,
naming the argument and quoting what it got. Checks on array *values* (finiteness) run
only on concrete arrays, never on tracers, so they cost nothing under ``jax.jit``.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["integer", "num_samples", "same_event_shape", "single_example", "batch", "vector"]


def integer(value, name: str, minimum: int = 1, *, error: type = ValueError,
            type_error: type = TypeError) -> int:
    """``value`` as an ``int`` >= ``minimum``; bools and floats are refused.

    Raises ``type_error`` ("{name} must be a Python int, got ...") for a non-integer and
    ``error`` ("{name} must be >= {minimum}, got ...") for one below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise type_error(f"{name} must be a Python int, got {value!r}")
    if value < minimum:
        raise error(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def num_samples(value, name: str = "num_samples") -> int:
    """k >= 1 samples per example; a Python int because it fixes array shapes."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a Python int (it fixes array shapes), got {value!r}")
    return integer(value, name, 1)


def same_event_shape(q, prior) -> None:
    """q(z|x) and p(z) describe the same latent z, for one example (batch shape ())."""
    if tuple(q.event_shape) != tuple(prior.event_shape):
        raise ValueError(
            f"posterior q has event shape {tuple(q.event_shape)} but the prior has "
            f"{tuple(prior.event_shape)}; they must describe the same latent z")
    if tuple(q.batch_shape) != ():
        raise ValueError(
            f"q must describe one example (batch shape ()), got batch shape "
            f"{tuple(q.batch_shape)}; vmap the objective over the batch instead")


def single_example(x, event_shape, name: str = "x") -> None:
    """``x`` is one example: its shape is exactly ``event_shape``."""
    event_shape = tuple(event_shape)
    if tuple(x.shape) != event_shape:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but the model's decoder describes data of "
            f"shape {event_shape} (per example)")


def batch(x, event_shape=None, name: str = "x") -> None:
    """A non-empty batch ``x: [batch, *event_shape]`` with finite values (when concrete)."""
    if event_shape is not None and tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(f"{name} must have shape [batch, *{tuple(event_shape)}], "
                         f"got {tuple(x.shape)}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch, got shape {tuple(x.shape)}")
    if not isinstance(x, jax.core.Tracer):
        values = np.asarray(x)
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise ValueError(f"{name} contains {bad} NaN or infinite values")


def vector(value, name: str, dim: int | None = None):
    """``value`` as a 1-D array ``[dim]`` (one example's parameter vector)."""
    value = jax.numpy.asarray(value)
    if value.ndim != 1 or (dim is not None and value.shape[0] != dim):
        want = f"[{dim}]" if dim is not None else "[D]"
        raise ValueError(f"{name} must have shape {want} (one example), got {value.shape}")
    return value
