"""Paths through the latent space: lerp, slerp, decoded interpolations and their smoothness.

Interpolation follows White (2016), "Sampling Generative Networks": spherical linear
interpolation (slerp) keeps intermediate points at the norms typical of a Gaussian
prior, where linear interpolation passes through the low-norm interior.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxvae import _checks
from jaxvae.latent.codes import check_example, decode, encode_mean, one_condition
from jaxvae.types import Array, PRNGKey

__all__ = ["INTERPOLATIONS", "lerp", "slerp", "interpolate", "path_smoothness"]

#: the interpolation methods of :func:`interpolate`
INTERPOLATIONS = ("slerp", "lerp")


def _check_endpoints(z0, z1, num):
    num = _checks.integer(num, "num", 2)
    z0, z1 = jnp.asarray(z0, jnp.float32), jnp.asarray(z1, jnp.float32)
    if z0.ndim != 1 or z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must be vectors of the same shape [latent_dim], got "
                         f"{tuple(z0.shape)} and {tuple(z1.shape)}")
    return z0, z1, jnp.linspace(0.0, 1.0, num)


def lerp(z0: Array, z1: Array, num: int) -> Array:
    """Linear interpolation z(t) = (1 - t) z0 + t z1 at t = 0, 1/(num-1), ..., 1.

    Args: ``z0, z1: [latent_dim]``, ``num >= 2``.
    Returns: float32 ``[num, latent_dim]`` (rows 0 and -1 are the endpoints).
    """
    z0, z1, t = _check_endpoints(z0, z1, num)
    return (1.0 - t)[:, None] * z0 + t[:, None] * z1


def slerp(z0: Array, z1: Array, num: int, eps: float = 1e-6) -> Array:
    """Spherical linear interpolation between two latent vectors.

    z(t) = sin((1 - t) theta) / sin(theta) z0 + sin(t theta) / sin(theta) z1,
    cos(theta) = <z0, z1> / (|z0| |z1|),  t = 0, 1/(num-1), ..., 1.

    For equal-norm endpoints every z(t) has that norm (a great-circle arc); otherwise the
    norm varies smoothly between them. When sin(theta) < ``eps`` (nearly parallel or
    anti-parallel endpoints, or a zero vector) the arc is undefined and the result is
    :func:`lerp`. Jit-compatible.

    Args: ``z0, z1: [latent_dim]``, ``num >= 2``, ``eps`` > 0 the degeneracy threshold.
    Returns: float32 ``[num, latent_dim]`` (rows 0 and -1 are the endpoints).

    References: Shoemake (1985); White (2016), Sampling Generative Networks.
    """
    z0, z1, t = _check_endpoints(z0, z1, num)
    norms = jnp.linalg.norm(z0) * jnp.linalg.norm(z1)
    cos = jnp.clip(jnp.dot(z0, z1) / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
    theta = jnp.arccos(cos)
    sin = jnp.sin(theta)
    degenerate = (sin < eps) | (norms == 0)
    safe_sin = jnp.where(degenerate, 1.0, sin)
    w0 = jnp.sin((1.0 - t) * theta) / safe_sin
    w1 = jnp.sin(t * theta) / safe_sin
    arc = w0[:, None] * z0 + w1[:, None] * z1
    return jnp.where(degenerate, lerp(z0, z1, num), arc)


def interpolate(model, params, x0: Array, x1: Array, num: int,
                method: str = "slerp", key: PRNGKey | None = None,
                condition: Array | None = None) -> Array:
    """Decoded path between the posterior means of two examples.

    z0 = E_q[z|x0], z1 = E_q[z|x1]; the path is ``slerp`` or ``lerp`` (see those) and
    each point is decoded to the mean of p(x|z). For a conditional model one condition
    serves both encodings and every decoded point.

    Args: ``model``, ``params``, ``x0, x1: [*event]``, ``num >= 2``, ``method``
      (``"slerp"`` or ``"lerp"``), ``key`` (for Monte Carlo posterior means, or None),
      ``condition`` None or one condition (an integer label ``[]`` or a vector ``[C]``).
    Returns: ``[num, *event]``; the first and last images reconstruct x0 and x1.

    References: White (2016), Sampling Generative Networks.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of "
                         f"{list(INTERPOLATIONS)}")
    num = _checks.integer(num, "num", 2)
    x0, x1 = check_example(x0, model, "x0"), check_example(x1, model, "x1")
    z0, z1 = encode_mean(model, params, jnp.stack([x0, x1]), key,
                         one_condition(condition, 2))
    path = slerp(z0, z1, num) if method == "slerp" else lerp(z0, z1, num)
    return decode(model, params, path, one_condition(condition, num))


def path_smoothness(images) -> dict[str, float]:
    """How smoothly a decoded path changes: total variation along it against its ends.

    For images x_0, ..., x_{T-1} of D pixels each (e.g. :func:`interpolate`'s output), the
    step sizes are s_t = ||x_{t+1} - x_t||_1 / D, the mean absolute change per pixel, and

    * ``total_variation`` TV = sum_t s_t (per pixel, summed over the steps);
    * ``direct_distance`` = ||x_{T-1} - x_0||_1 / D, the endpoints' own distance;
    * ``ratio`` = TV / direct_distance >= 1 (triangle inequality); exactly 1 when every
      pixel moves monotonically from its first to its last value; 1 for a constant path,
      inf when a path returns to its start;
    * ``largest_step_share`` = max_t s_t / TV in [1/(T-1), 1] (0 for a constant path):
      1 when the whole change happens in one step, 1/(T-1) for equal steps.

    A smooth latent space gives a path whose TV is close to the direct distance (ratio
    near 1: no detour through unrelated images) and in which no single step dominates
    (share near 1/(T-1): no sudden jump between two neighbouring latent points).

    Args: ``images: [T, *event]``, T >= 2, finite.
    Returns: ``{"total_variation", "direct_distance", "ratio", "largest_step_share"}`` as
      Python floats.
    """
    x = np.asarray(images, np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"images must be a path [T, *event] with T >= 2, got shape "
                         f"{tuple(x.shape)}")
    _checks.batch(x, name="images")
    flat = x.reshape(x.shape[0], -1)
    steps = np.mean(np.abs(np.diff(flat, axis=0)), axis=1)
    tv = float(np.sum(steps))
    direct = float(np.mean(np.abs(flat[-1] - flat[0])))
    if direct > 0:
        ratio = tv / direct
    else:
        ratio = 1.0 if tv == 0 else float("inf")
    share = float(np.max(steps) / tv) if tv > 0 else 0.0
    return {"total_variation": tv, "direct_distance": direct, "ratio": ratio,
            "largest_step_share": share}
