"""Directions in the latent space: attribute vectors, analogies, edits and traversals.

An attribute vector (White, 2016) is the difference of the mean codes of examples with and
without an attribute; the attribute may be measured on the images themselves (e.g.
:func:`jaxvae.image_metrics.stroke_thickness` or :func:`jaxvae.image_metrics.slant`) and
the examples split by :func:`attribute_groups`. Adding the vector to a code (:func:`edit`)
should add the attribute; :func:`traverse` and :func:`traversal_grid` instead vary single
latent units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks
from jaxvae.latent.codes import (
    check_condition,
    check_example,
    decode,
    encode_mean,
    latent_dim_of,
    one_condition,
)
from jaxvae.types import Array, PRNGKey

__all__ = ["attribute_vector", "attribute_groups", "analogy", "edit", "traverse",
           "traversal_grid"]


def _values(values, name: str) -> Array:
    values = jnp.asarray(values, jnp.float32)
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty vector [num], got shape "
                         f"{tuple(values.shape)}")
    return values


def _dim(dim, latent_dim: int, name: str = "dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) \
            or not 0 <= dim < latent_dim:
        raise ValueError(f"{name} must be an int in [0, {latent_dim}), got {dim!r}")
    return int(dim)


def _code(model, params, x, key, condition) -> Array:
    """E_q[z|x] of one example: ``[latent_dim]``."""
    x = check_example(x, model, "x")
    return encode_mean(model, params, x[None], key, one_condition(condition, 1))[0]


def attribute_vector(model, params, x_with: Array, x_without: Array,
                     key: PRNGKey | None = None, *, condition_with: Array | None = None,
                     condition_without: Array | None = None) -> Array:
    """Attribute vector: the difference of mean posterior means of two sets of examples.

    a = mean_{x in x_with} E_q[z|x] - mean_{x in x_without} E_q[z|x].
    Adding a to an encoding adds the attribute (:func:`edit`). The two sets may come from
    :func:`attribute_groups` of an attribute measured on the images.

    Args: ``model``, ``params``, ``x_with: [N1, *event]``, ``x_without: [N2, *event]``,
      ``key`` (for Monte Carlo posterior means, or None), ``condition_with`` and
      ``condition_without`` (for a conditional model: one per row, ``[N1]`` / ``[N1, C]``
      and ``[N2]`` / ``[N2, C]``; else None).
    Returns: ``a: [latent_dim]``.

    References: White (2016), Sampling Generative Networks.
    """
    _checks.batch(x_with, model.event_shape, name="x_with")
    _checks.batch(x_without, model.event_shape, name="x_without")
    if (condition_with is None) != (condition_without is None):
        raise ValueError("give both condition_with and condition_without, or neither")
    condition_with = check_condition(condition_with, np.shape(x_with)[0], "condition_with")
    condition_without = check_condition(condition_without, np.shape(x_without)[0],
                                        "condition_without")
    key_with, key_without = (None, None) if key is None else jax.random.split(key)
    z_with = encode_mean(model, params, x_with, key_with, condition_with)
    z_without = encode_mean(model, params, x_without, key_without, condition_without)
    return jnp.mean(z_with, axis=0) - jnp.mean(z_without, axis=0)


def attribute_groups(values, low_quantile: float = 0.2,
                     high_quantile: float = 0.8) -> tuple[Array, Array]:
    """The examples high and low in a measured attribute, e.g. for :func:`attribute_vector`.

    mask_high = values >= Q(high_quantile), mask_low = values <= Q(low_quantile), with Q
    the empirical quantiles of ``values`` (``numpy.quantile``, linear interpolation); both
    groups are non-empty (they hold the maximum and the minimum).

    Args: ``values: [N]`` finite, one per example (e.g. ``stroke_thickness(x)``);
      ``low_quantile < high_quantile``, both in [0, 1].
    Returns: ``(mask_high, mask_low)``, boolean ``[N]`` each: ``x[mask_high], x[mask_low]``
      are ``x_with, x_without``.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"values must be a non-empty vector [N], got shape "
                         f"{tuple(values.shape)}")
    _checks.batch(values, name="values")
    low, high = float(low_quantile), float(high_quantile)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low_quantile < high_quantile <= 1, got low_quantile="
                         f"{low_quantile}, high_quantile={high_quantile}")
    q_low, q_high = np.quantile(values, [low, high])
    return jnp.asarray(values >= q_high), jnp.asarray(values <= q_low)


def analogy(model, params, a: Array, b: Array, c: Array, key: PRNGKey | None = None,
            condition: Array | None = None) -> Array:
    """"a is to b as ? is to c": decode(z_a - z_b + z_c) with posterior means z = E_q[z|x].

    The difference z_a - z_b (what a has and b lacks) is added to c's code; with a == b
    the result is c's reconstruction.

    Args: ``model``, ``params``; ``a, b, c`` all one example ``[*event]`` or all batches
      ``[N, *event]``; ``key`` (for Monte Carlo posterior means, or None); ``condition``
      None or, for a conditional model, one condition for single examples (label ``[]``
      or vector ``[C]``) or one per row ``[N]`` / ``[N, C]`` for batches, used for all
      three encodings and the decoding.
    Returns: ``[*event]`` or ``[N, *event]`` like the inputs.
    """
    event = tuple(model.event_shape)
    a, b, c = (jnp.asarray(v) for v in (a, b, c))
    single = tuple(a.shape) == event
    if single:
        a, b, c = (check_example(v, model, n)[None] for v, n in ((a, "a"), (b, "b"), (c, "c")))
        condition = one_condition(condition, 1)
    for v, n in ((a, "a"), (b, "b"), (c, "c")):
        _checks.batch(v, event, name=n)
        if v.shape[0] != a.shape[0]:
            raise ValueError(f"a, b and c must have the same number of examples, got "
                             f"{a.shape[0]} and {n}: {v.shape[0]}")
    keys = (None,) * 3 if key is None else tuple(jax.random.split(key, 3))
    z_a, z_b, z_c = (encode_mean(model, params, v, k, condition)
                     for v, k in zip((a, b, c), keys))
    images = decode(model, params, z_a - z_b + z_c, condition)
    return images[0] if single else images


def edit(model, params, x: Array, direction: Array, amounts, key: PRNGKey | None = None,
         condition: Array | None = None) -> Array:
    """Moves the code of ``x`` along a direction: decode(E_q[z|x] + t * direction) per t.

    Args: ``model``, ``params``, ``x: [*event]``, ``direction: [latent_dim]`` (e.g. an
      :func:`attribute_vector`), ``amounts: [num]`` the t's, ``key`` (for Monte Carlo
      posterior means, or None), ``condition`` None or one condition (label ``[]`` or
      vector ``[C]``) for the encoding and every decoding.
    Returns: ``[num, *event]``; t = 0 gives x's reconstruction.
    """
    latent_dim = latent_dim_of(model)
    direction = jnp.asarray(direction, jnp.float32)
    if direction.shape != (latent_dim,):
        raise ValueError(f"direction must have shape [{latent_dim}], got "
                         f"{tuple(direction.shape)}")
    _checks.batch(direction[None], name="direction")
    amounts = _values(amounts, "amounts")
    z = _code(model, params, x, key, condition)
    zs = z + amounts[:, None] * direction
    return decode(model, params, zs, one_condition(condition, amounts.shape[0]))


def traverse(model, params, x: Array, dim: int, values,
             key: PRNGKey | None = None, condition: Array | None = None) -> Array:
    """Latent traversal: vary unit ``dim`` of the posterior mean of ``x``, keep the rest.

    z_i = E_q[z|x] with z_i[dim] = values[i], decoded to the means of p(x|z_i).

    Args: ``model``, ``params``, ``x: [*event]``, ``dim`` in [0, latent_dim),
      ``values: [num]`` the latent values to set, ``key`` (for Monte Carlo posterior means,
      or None), ``condition`` None or one condition (label ``[]`` or vector ``[C]``).
    Returns: ``[num, *event]``.
    """
    return traversal_grid(model, params, x, [dim], values, key, condition)[0]


def traversal_grid(model, params, x: Array, dims, values, key: PRNGKey | None = None,
                   condition: Array | None = None) -> Array:
    """:func:`traverse` for several units: row r varies unit ``dims[r]`` over ``values``.

    Args: ``model``, ``params``, ``x: [*event]``, ``dims`` a non-empty sequence of ints in
      [0, latent_dim), ``values: [num]``, ``key`` (for Monte Carlo posterior means, or
      None), ``condition`` None or one condition (label ``[]`` or vector ``[C]``).
    Returns: ``[len(dims), num, *event]``.
    """
    latent_dim = latent_dim_of(model)
    if isinstance(dims, (np.ndarray, jax.Array)):
        dims = dims.tolist()
    elif isinstance(dims, range):
        dims = list(dims)
    if not isinstance(dims, (list, tuple)) or len(dims) == 0:
        raise ValueError(f"dims must be a non-empty sequence of ints, got {dims!r}")
    name = "dim" if len(dims) == 1 else "dims"
    dims = [_dim(d, latent_dim, name) for d in dims]
    values = _values(values, "values")
    z = _code(model, params, x, key, condition)
    num = values.shape[0]
    zs = jnp.stack([jnp.tile(z, (num, 1)).at[:, d].set(values) for d in dims])
    flat = zs.reshape(len(dims) * num, latent_dim)
    images = decode(model, params, flat, one_condition(condition, flat.shape[0]))
    return images.reshape(len(dims), num, *images.shape[1:])
