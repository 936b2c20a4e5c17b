"""What a trained DRAW model does over its T steps: per-step KLs, canvases, glimpses.

The model is :class:`jaxvae.models.Draw`; images are ``[N, H, W]`` in [0, 1]. Canvases are
returned as probabilities sigmoid(c_t), ``[N, T, H, W]``, the picture after each step;
glimpses as their five raw numbers per step (see
:func:`jaxvae.models.draw_attention.glimpse_params`). Pictures: the canvas over time as a
PNG grid (:func:`save_canvas_steps`) or an animated GIF (:func:`save_canvas_gif`), and the
read and write glimpses as boxes over the images or canvases (:func:`save_glimpses`,
:func:`glimpse_box`).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from jaxvae import _checks, objectives, plots, rundir, terms
from jaxvae.models import draw, draw_attention
from jaxvae.types import Array, PRNGKey

__all__ = ["step_kl", "mean_step_kl", "posterior_trace", "prior_canvases", "canvas_steps",
           "save_canvas_steps", "save_canvas_gif", "glimpse_box", "save_glimpses"]

READ_COLOUR, WRITE_COLOUR = (0, 255, 0), (255, 0, 0)    # green reads, red writes


def _check_model(model) -> None:
    if not isinstance(model, draw.Draw):
        raise TypeError(f"expected a DRAW model (jaxvae.models.draw.draw), got "
                        f"{type(model).__name__}")


def step_kl(path: draw.DrawPath) -> Array:
    """KL(q(z_t | h^enc_t) || N(0, I)) of each step along a path, closed form: ``[T]`` nats.

    :func:`jaxvae.gaussian_kl` of each step's Gaussian; the sum over t is the paper's latent
    loss L^z for that path (an unbiased estimate of KL(q(z|x) || p(z)), as is the Monte
    Carlo log q(z|x) - log p(z) on the same z).

    Args: ``path``, a :class:`jaxvae.models.draw.DrawPath` (``loc``, ``scale``: ``[T, D]``).
    """
    return objectives.gaussian_kl(path.loc, path.scale)


@functools.lru_cache(maxsize=16)
def _trace_fn(model, traced: bool):
    def one(params, x, key):
        path = terms.bind(model, params).posterior(x).path(key, trace=traced)
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
    (:func:`step_kl`); the sum over t estimates KL(q(z|x) || p(z)).

    Args: ``model``, ``params``; ``x: [N, H, W]``; ``key``; ``batch_size`` images per call.
    """
    _check_model(model)
    _checks.batch(x, model.event_shape, "x")
    fn = _trace_fn(model, False)
    keys = jax.random.split(key, len(x))
    total = np.zeros(model.steps)
    for i in range(0, len(x), batch_size):
        path = fn(params, jnp.asarray(x[i:i + batch_size], jnp.float32), keys[i:i + batch_size])
        total += np.asarray(jnp.sum(jax.vmap(step_kl)(path), axis=0), np.float64)
    return total / len(x)


@functools.lru_cache(maxsize=16)
def _prior_fn(model):
    def one(params, z):
        canvas, glimpse = model.bind(params).canvases(z)     # not part of the Model contract
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


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def save_canvas_gif(canvases: Array, path, ncols: int | None = None, duration_ms: int = 80,
                    scale: int = 2, hold_ms: int = 1500) -> str:
    """Animated GIF of canvases over time: frame t is the grid (:func:`jaxvae.plots.image_grid`)
    of all N canvases after step t, enlarged ``scale`` times; the last frame is held for
    ``max(hold_ms, duration_ms)``, and the animation loops forever. Written atomically.

    Pillow merges a frame identical to the one before it into that one (adding the
    durations), so a drawing that stops changing gives fewer than T frames.

    Args: ``canvases: [N, T, H, W]`` in [0, 1]; ``path``; ``ncols`` canvases per row
      (default ceil(sqrt(N))); ``duration_ms`` per frame >= 1; ``scale`` >= 1; ``hold_ms``.
    Returns: ``path`` as a string.
    """
    canvases = np.asarray(canvases, np.float64)
    if canvases.ndim != 4:
        raise ValueError(f"canvases must be [N, T, H, W], got shape {canvases.shape}")
    duration_ms = _checks.integer(duration_ms, "duration_ms", 1)
    scale = _checks.integer(scale, "scale", 1)
    frames = [Image.fromarray(_upscale(plots.image_grid(canvases[:, t], ncols), scale))
              for t in range(canvases.shape[1])]
    durations = [duration_ms] * (len(frames) - 1) + [max(int(hold_ms), duration_ms)]

    def write(f):
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                       duration=durations, loop=0)

    return rundir.atomic_write(os.fspath(path), write)


def glimpse_box(raw: Array, size: int, height: int, width: int):
    """The extent of a glimpse's N x N grid of filter centres: ``(x0, y0, x1, y1)``.

    Coordinates are 0-based pixel units: column c (0-based) covers [c, c + 1), so the image
    is [0, W] x [0, H] and the paper's 1-based coordinate a is a - 1/2 here. Each filter
    centre mu_i = g + (i - N/2 - 1/2) delta gets a cell of width delta, so the box runs from
    mu_1 - delta/2 to mu_N + delta/2, i.e. g -+ N delta / 2, on each axis (with g_X, g_Y and
    delta of :func:`jaxvae.models.draw_attention.glimpse_params`). It may reach past the
    image; the filters' width sigma is not part of it.

    Args: ``raw: [..., 5]``, the glimpse's five numbers; ``size`` N >= 1; the image
      ``height`` H and ``width`` W.
    Returns: four numpy float64 values (arrays of shape ``[...]`` for a batch of glimpses).
    """
    size = _checks.integer(size, "size", 1)
    glimpse = draw_attention.glimpse_params(jnp.asarray(raw, jnp.float32), height, width, size)
    g_x, g_y, delta = (np.asarray(v, np.float64) for v in
                       (glimpse.g_x, glimpse.g_y, glimpse.delta))
    half = size / 2 * delta
    box = (g_x - 0.5 - half, g_y - 0.5 - half, g_x - 0.5 + half, g_y - 0.5 + half)
    return tuple(v[()] for v in box)


def _draw_box(canvas: ImageDraw.ImageDraw, box, scale: int, limit: int, colour, line: int):
    if not np.all(np.isfinite(box)):
        return
    x0, y0, x1, y1 = (float(np.clip(v * scale, -2 * line, limit + 2 * line)) for v in box)
    x0, y0 = round(x0), round(y0)
    canvas.rectangle([x0, y0, max(round(x1) - 1, x0), max(round(y1) - 1, y0)],
                     outline=colour, width=line)


def save_glimpses(images: Array, reads: Array | None, writes: Array | None, read_size: int,
                  write_size: int, path, steps=None, scale: int = 4) -> str:
    """PNG of where DRAW reads and writes: one row per picture, one column per chosen step,
    each cell the picture enlarged ``scale`` times with the read glimpse's box in green
    and the write glimpse's box in red (:func:`glimpse_box`; the write drawn on top).

    The pictures are either one per row, shown at every step (``[N, H, W]``, e.g. the input
    digits), or one per row and step (``[N, T, H, W]``, e.g. the canvases of
    :func:`posterior_trace`); rows of both kinds can be mixed by stacking the first kind
    along T.

    Args: ``images``: ``[N, H, W]`` or ``[N, T, H, W]`` in [0, 1]; ``reads``, ``writes``:
      ``[N, T, 5]`` glimpses or None (not drawn; not both); ``read_size``, ``write_size``:
      the N of their grids; ``path``; ``steps``: step indices (default
      ``canvas_steps(T, 8)``); ``scale`` >= 1.
    Returns: ``path`` as a string.
    """
    glimpses = [(np.asarray(g, np.float64), n, c) for g, n, c in
                ((reads, read_size, READ_COLOUR), (writes, write_size, WRITE_COLOUR))
                if g is not None]
    if not glimpses:
        raise ValueError("save_glimpses needs reads or writes (or both)")
    images = np.asarray(images, np.float64)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be [N, H, W] or [N, T, H, W], got shape {images.shape}")
    first = glimpses[0][0]
    rows, num_steps = images.shape[0], first.shape[1] if first.ndim == 3 else 0
    for g, _, _ in glimpses:
        if g.shape != (rows, num_steps, 5) or num_steps < 1:
            raise ValueError(f"glimpses must be [N, T, 5] (the same T for both) for the "
                             f"N = {rows} pictures, got shape {g.shape}")
    if images.ndim == 4 and images.shape[1] != num_steps:
        raise ValueError(f"images [N, T, H, W] must have T = {num_steps} like the glimpses, "
                         f"got shape {images.shape}")
    scale = _checks.integer(scale, "scale", 1)
    steps = canvas_steps(num_steps, 8) if steps is None else np.asarray(steps, int).reshape(-1)
    if not len(steps) or steps.min() < -num_steps or steps.max() >= num_steps:
        raise ValueError(f"steps must be indices into the {num_steps} steps, got {steps}")
    height, width = images.shape[-2:]
    boxes = [(glimpse_box(g, _checks.integer(n, "glimpse size", 1), height, width), c)
             for g, n, c in glimpses]
    line = max(1, round(scale / 4))
    cells = []
    for i in range(rows):
        for t in steps:
            picture = images[i] if images.ndim == 3 else images[i, t]
            grey = _upscale(np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8), scale)
            cell = Image.fromarray(grey).convert("RGB")
            canvas = ImageDraw.Draw(cell)
            for box, colour in boxes:
                _draw_box(canvas, [b[i, t] for b in box], scale, max(grey.shape), colour, line)
            cells.append(np.asarray(cell, np.float64) / 255.0)
    return plots.save_grid(np.stack(cells), path, ncols=len(steps))
