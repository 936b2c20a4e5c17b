"""What a trained DRAW model does over its T steps: per-step KLs, canvases, glimpses.

The model is :class:`jaxvae.models.Draw`; images are ``[N, H, W]`` in [0, 1]. Canvases are
returned as probabilities sigmoid(c_t), ``[N, T, H, W]``, the picture after each step;
glimpses as their five raw numbers per step (see
:func:`jaxvae.models.draw_attention.glimpse_params`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, plots
from jaxvae.models import draw
from jaxvae.types import Array, PRNGKey

__all__ = ["mean_step_kl", "posterior_trace", "prior_canvases", "canvas_steps",
           "save_canvas_steps"]


def _check_model(model) -> None:
    if not isinstance(model, draw.Draw):
        raise TypeError(f"expected a DRAW model (jaxvae.models.draw.draw), got "
                        f"{type(model).__name__}")


@functools.lru_cache(maxsize=16)
def _trace_fn(model, traced: bool):
    def one(params, x, key):
        path = model.apply(params, x, method="posterior").path(key, trace=traced)
        return path._replace(canvas=None if path.canvas is None else
                             jax.nn.sigmoid(path.canvas))

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def posterior_trace(model, params, x: Array, key: PRNGKey) -> draw.DrawPath:
    """One run of q(z|x) per image, with the canvas and the glimpses at every step.

    Args: ``model``, ``params``; ``x: [N, H, W]`` in [0, 1]; ``key`` (split per image).
    Returns: a :class:`jaxvae.models.draw.DrawPath` with a leading N axis: ``z``, ``loc``,
      ``scale`` ``[N, T, D]``, ``canvas`` ``[N, T, H, W]`` probabilities, ``read`` and
      ``write`` ``[N, T, 5]``.
    """
    _check_model(model)
    _checks.batch(x, model.event_shape, "x")
    return _trace_fn(model, True)(params, jnp.asarray(x, jnp.float32),
                                  jax.random.split(key, len(x)))


def mean_step_kl(model, params, x: Array, key: PRNGKey, batch_size: int = 200) -> np.ndarray:
    """The closed-form KL of each step, averaged over images: ``[T]`` nats.

    KL(q(z_t | h^enc_t) || N(0, I)) along one sampled path per image
    (:func:`jaxvae.models.draw.step_kl`); the sum over t estimates KL(q(z|x) || p(z)).

    Args: ``model``, ``params``; ``x: [N, H, W]``; ``key``; ``batch_size`` images per call.
    """
    _check_model(model)
    _checks.batch(x, model.event_shape, "x")
    fn = _trace_fn(model, False)
    keys = jax.random.split(key, len(x))
    total = np.zeros(model.steps)
    for i in range(0, len(x), batch_size):
        path = fn(params, jnp.asarray(x[i:i + batch_size], jnp.float32), keys[i:i + batch_size])
        total += np.asarray(jnp.sum(jax.vmap(draw.step_kl)(path), axis=0), np.float64)
    return total / len(x)


@functools.lru_cache(maxsize=16)
def _prior_fn(model):
    def one(params, z):
        canvas, glimpse = model.apply(params, z, method="canvases")
        return jax.nn.sigmoid(canvas), glimpse

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def prior_canvases(model, params, key: PRNGKey, num: int) -> tuple[Array, Array]:
    """Drawings from the generative model: z ~ p(z), the canvas after every step.

    Args: ``model``, ``params``, ``key``, ``num`` >= 1.
    Returns: ``(canvas [num, T, H, W] probabilities, write glimpses [num, T, 5])``.
    """
    _check_model(model)
    num = _checks.integer(num, "num", 1)
    z = jax.random.normal(key, (num, *model.latent_shape))
    return _prior_fn(model)(params, z)


def canvas_steps(num_steps: int, columns: int) -> np.ndarray:
    """``columns`` step indices spread evenly over ``0..num_steps-1``, ending at the last."""
    columns = min(columns, num_steps)
    return np.unique(np.round(np.linspace(num_steps / columns - 1, num_steps - 1,
                                          columns)).astype(int))


def save_canvas_steps(canvases: Array, path, columns: int = 8) -> str:
    """PNG grid of canvases over time: one row per drawing, ``columns`` steps from left to
    right (spread evenly, the last step in the last column).

    Args: ``canvases: [N, T, H, W]`` in [0, 1]; ``path``; ``columns`` >= 1.
    Returns: ``path`` as a string.
    """
    canvases = np.asarray(canvases)
    if canvases.ndim != 4:
        raise ValueError(f"canvases must be [N, T, H, W], got shape {canvases.shape}")
    steps = canvas_steps(canvases.shape[1], _checks.integer(columns, "columns", 1))
    picked = canvases[:, steps]
    return plots.save_grid(picked.reshape(-1, *picked.shape[2:]), path, ncols=len(steps))
