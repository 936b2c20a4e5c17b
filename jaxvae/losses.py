"""Model-level objectives: pure functions of ``(params, x, key)`` over a batch.

:func:`model_terms` turns a model (see :class:`jaxvae.VAE`), its parameters and one
example into the ``(q, prior, log_likelihood)`` triple the per-example objectives of
:mod:`jaxvae.objectives` take; :func:`batched` vmaps a per-example function over a
batch with one key per example; :func:`make_objective` and :func:`make_loss` close
over the settings (objective, k, beta, ...) so that nothing needs ``static_argnums``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import objectives

Array = jax.Array

__all__ = ["model_terms", "batched", "make_objective", "make_loss", "check_batch"]

_OBJECTIVES = {"elbo": objectives.elbo, "iwae": objectives.iwae_bound}


def model_terms(model, params, x: Array):
    """``(q, prior, log_likelihood)`` for one example ``x: [*model.event_shape]``.

    q = q(z|x) from the encoder; prior = p(z) (it may have learned parameters, as in
    the two-stochastic-layer model); ``log_likelihood(z) = log p(x|z)`` evaluates the
    decoder at one ``z: [latent_dim]``. The model is anything with
    ``apply(params, ..., method=...)`` for ``"posterior"``, ``"likelihood"`` and
    ``"prior"``, and an ``event_shape`` (a :class:`jaxvae.VAE`, a
    :class:`jaxvae.HierarchicalVAE`, or your own Flax module).
    """
    _check_example(model, x)
    q = model.apply(params, x, method="posterior")
    prior = model.apply(params, method="prior")

    def log_likelihood(z: Array) -> Array:
        return model.apply(params, z, method="likelihood").log_prob(x)

    return q, prior, log_likelihood


def _check_example(model, x: Array) -> None:
    """Raises ValueError unless ``x`` is one example of the shape the model describes."""
    event_shape = tuple(model.event_shape)
    if tuple(x.shape) != event_shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but the model's decoder describes data of shape "
            f"{event_shape} (per example)")


def check_batch(x, event_shape=None, name: str = "x") -> None:
    """Raises ValueError for a batch ``x: [batch, *event_shape]`` with the wrong shape
    or with NaN/inf values. Value checks run only on concrete arrays (not under jit)."""
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


def batched(per_example: Callable[[Any, Array, Array], Array]):
    """Vectorizes ``per_example(params, x, key)`` over a batch.

    Returns ``f(params, x: [batch, *event], key) -> [batch, ...]``: the key is split into
    one key per example and the function is ``jax.vmap``-ed over (x, key); params are shared.
    """

    def fn(params, x: Array, key: Array):
        check_batch(x)
        return _map_batch(per_example, params, x, key)

    return fn


def _map_batch(per_example, params, x: Array, key: Array):
    """``per_example`` vmapped over (x, one key per example), params shared."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(per_example, in_axes=(None, 0, 0))(params, x, keys)


def make_objective(model, objective: str = "iwae", num_samples: int = 1, **kwargs):
    """Per-example bound of ``model`` over a batch.

    Args:
      model: a module with ``posterior``, ``likelihood``, ``prior`` and ``event_shape``
        (e.g. :func:`jaxvae.iwae_mlp`).
      objective: ``"elbo"`` or ``"iwae"``.
      num_samples: k >= 1 importance / Monte Carlo samples per example.
      **kwargs: passed to the objective (``analytic_kl``, ``beta`` for the ELBO).

    Returns:
      ``bound(params, x: [batch, *event], key) -> [batch]`` in nats per example.
    """
    if objective not in _OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(_OBJECTIVES)}")
    objectives._check_num_samples(num_samples)
    if objective == "iwae" and kwargs:
        raise ValueError(f"the IWAE bound takes no options, got {sorted(kwargs)}")
    fn = _OBJECTIVES[objective]
    event_shape = tuple(model.event_shape)

    def per_example(params, x, key):
        q, prior, log_likelihood = model_terms(model, params, x)
        return fn(key, q, prior, log_likelihood, num_samples, **kwargs)

    def bound(params, x, key):
        check_batch(x, event_shape)   # shape and NaN checks, once
        return _map_batch(per_example, params, x, key)

    return bound


def make_loss(model, objective: str = "iwae", num_samples: int = 1, **kwargs):
    """Loss for ``jax.grad``: ``loss(params, x, key) -> (loss, info)``.

    loss = -mean_batch(bound) (nats per example); ``info = {"bound": mean bound}``.
    See :func:`make_objective` for the arguments.
    """
    bound_fn = make_objective(model, objective, num_samples, **kwargs)

    def loss(params, x, key):
        bound = jnp.mean(bound_fn(params, x, key))
        return -bound, {"bound": bound}

    return loss
