"""Codes and images: encode, decode, prior samples, reconstructions, and the shared checks.

Every function that encodes or decodes takes ``condition=None``: for a conditional model
(e.g. :class:`jaxvae.ConditionalVAE`) one condition per row, integer labels ``[N]`` or
vectors ``[N, C]``, passed to :func:`jaxvae.bind` as ``condition=c_i`` for row i under
``jax.vmap``; for an unconditional model leave it None (nothing is passed to the model).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxvae import _checks, terms
from jaxvae.types import Array, PRNGKey

__all__ = ["MEAN_SAMPLES", "posterior_mean", "latent_dim_of", "check_z", "check_example",
           "check_condition", "one_condition", "per_example", "decode", "display_units",
           "encode", "encode_mean", "sample_prior", "reconstruct"]

#: draws of a Monte Carlo posterior mean (:func:`posterior_mean`)
MEAN_SAMPLES = 1000


def posterior_mean(q, key: PRNGKey | None = None) -> Array:
    """E_q[z] for one example: ``q.mean()`` where it has a closed form, else a Monte Carlo
    average of ``MEAN_SAMPLES`` draws with ``key`` (e.g. the two-layer posterior
    q(z1|x) q(z2|z1), whose z2 mean has no closed form, or a flow). Raises ValueError
    when a Monte Carlo mean is needed and no key is given.

    Args: ``q`` over ``[*latent]`` (batch shape ``()``), ``key`` (PRNG key or None).
    Returns: ``[*latent]``.
    """
    try:
        return q.mean()
    except NotImplementedError:
        if key is None:
            raise ValueError(f"{type(q).__name__} has no closed-form mean; pass key= for a "
                             f"Monte Carlo mean of {MEAN_SAMPLES} draws") from None
        draws = q.sample(seed=key, sample_shape=(MEAN_SAMPLES,))
        return jnp.mean(draws, axis=0)


def latent_dim_of(model) -> int:
    """The length of the model's vector latent.

    Args: ``model`` with ``latent_shape == (latent_dim,)``.
    Returns: ``latent_dim``; ValueError for any other latent shape.
    """
    shape = tuple(getattr(model, "latent_shape", ()))
    if len(shape) != 1:
        raise ValueError(f"latent tools need a vector latent z: [latent_dim]; "
                         f"{type(model).__name__} has latent_shape {shape}")
    return int(shape[0])


def check_z(z, model, name: str = "z") -> Array:
    """Args: ``z``, ``model``, ``name`` for the error. Returns: ``z`` as an array
    ``[num, latent_dim]``; ValueError for another shape."""
    z = jnp.asarray(z)
    latent_dim = latent_dim_of(model)
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"{name} must have shape [num, {latent_dim}], got {tuple(z.shape)}")
    return z


def check_example(x, model, name: str) -> Array:
    """Args: ``x``, ``model``, ``name`` for the error. Returns: ``x`` as an array of shape
    ``model.event_shape`` with finite values; ValueError otherwise."""
    x = jnp.asarray(x)
    if tuple(x.shape) != tuple(model.event_shape):
        raise ValueError(f"{name} must be one example of shape {tuple(model.event_shape)}, "
                         f"got {tuple(x.shape)}")
    _checks.batch(x[None], name=name)
    return x


def check_condition(condition, num: int, name: str = "condition") -> Array | None:
    """One condition per row: integer labels ``[num]`` or vectors ``[num, C]``.

    Args: ``condition`` (None for an unconditional model), ``num`` the number of rows,
      ``name`` for the error.
    Returns: None, or the condition as an array; ValueError for another shape, a float
      label vector or non-finite values.
    """
    if condition is None:
        return None
    c = jnp.asarray(condition)
    if c.ndim not in (1, 2) or c.shape[0] != num:
        raise ValueError(f"{name} must hold one condition per row: integer labels [{num}] "
                         f"or vectors [{num}, condition_dim], got shape {tuple(c.shape)}")
    if c.ndim == 1 and not jnp.issubdtype(c.dtype, jnp.integer):
        raise ValueError(f"{name} of shape [{num}] must be integer labels, got {c.dtype}; "
                         "pass condition vectors as [num, condition_dim]")
    _checks.batch(c, name=name)
    return c


def one_condition(condition, num: int, name: str = "condition") -> Array | None:
    """One condition (an integer label ``[]`` or a vector ``[C]``) repeated for ``num`` rows.

    Args: ``condition`` (or None), ``num`` >= 1, ``name`` for the error.
    Returns: None, or ``[num]`` labels / ``[num, C]`` vectors; ValueError for another shape.
    """
    if condition is None:
        return None
    c = jnp.asarray(condition)
    if c.ndim > 1 or (c.ndim == 0 and not jnp.issubdtype(c.dtype, jnp.integer)):
        raise ValueError(f"{name} must be one condition: an integer label [] or a vector "
                         f"[condition_dim], got shape {tuple(c.shape)} ({c.dtype})")
    _checks.batch(c[None], name=name)
    return jnp.broadcast_to(c, (num, *c.shape))


def per_example(model, params, fn, args, condition=None):
    """``fn(bound, *args_i)`` vmapped over rows, with ``bound = bind(model, params,
    condition=c_i)`` (or one unconditional binding when ``condition`` is None).

    Args: ``model``, ``params``, ``fn(bound, *row_args)``, ``args`` a tuple of arrays
      ``[N, ...]``, ``condition`` None or ``[N]`` / ``[N, C]`` (checked by the caller).
    Returns: the stacked outputs ``[N, ...]``.
    """
    if condition is None:
        bound = terms.bind(model, params)
        return jax.vmap(lambda *a: fn(bound, *a))(*args)
    return jax.vmap(lambda c, *a: fn(terms.bind(model, params, condition=c), *a))(
        condition, *args)


def decode(model, params, z: Array, condition: Array | None = None) -> Array:
    """Mean of p(x|z) (p(x|z, c) for a conditional model) for each row of ``z``.

    Args: ``model``, ``params``, ``z: [num, *latent_shape]`` (``[num, latent_dim]`` for a
      vector latent), ``condition`` None or one per row, ``[num]`` labels or ``[num, C]``
      vectors.
    Returns: ``[num, *event]`` decoder means (Bernoulli probabilities in [0, 1] for
      Bernoulli heads); TypeError when the decoder's distribution has no mean.
    """
    z = jnp.asarray(z)
    shape = tuple(model.latent_shape)
    if tuple(z.shape[1:]) != shape or z.ndim != len(shape) + 1:
        raise ValueError(f"z must have shape [num, {', '.join(map(str, shape))}], got "
                         f"{tuple(z.shape)}")
    condition = check_condition(condition, z.shape[0])

    def mean(bound, z_i):
        dist = bound.likelihood(z_i)
        try:
            return dist.mean()
        except NotImplementedError as err:
            raise TypeError(f"the decoder's {type(dist).__name__} has no mean to show as an "
                            "image") from err

    return per_example(model, params, mean, (z,), condition)


def display_units(model, x) -> Array:
    """Data or decoder means ``x`` in [0, 1] for display: the model's likelihood head's
    ``to_unit`` (8-bit levels / 255 for a discretized head), else ``x`` unchanged.

    Args: ``model``; ``x: [N, *event]`` in the data's units. Returns: float ``[N, *event]``.
    """
    head = getattr(getattr(model, "decoder", None), "head", None)
    return head.to_unit(x) if hasattr(head, "to_unit") else jnp.asarray(x)


def encode(model, params, x: Array, key: PRNGKey | None = None, *, sample: bool = False,
           condition: Array | None = None) -> Array:
    """Codes of a batch: posterior means E_q[z|x_i], or with ``sample=True`` one draw
    z_i ~ q(z|x_i) (q(z|x_i, c_i) for a conditional model) per example.

    Example i uses ``jax.random.split(key, N)[i]``, for its draw or, for a posterior
    without a closed-form mean, its Monte Carlo mean (see :func:`posterior_mean`).

    Args: ``model``, ``params``, ``x: [N, *event]``, ``key`` (PRNG key or None; required
      with ``sample=True``), ``sample``, ``condition`` None or ``[N]`` / ``[N, C]``.
    Returns: ``[N, latent_dim]``.
    """
    x = jnp.asarray(x)
    _checks.batch(x, model.event_shape)
    condition = check_condition(condition, x.shape[0])
    if sample and key is None:
        raise ValueError("key is required with sample=True (one draw z_i ~ q(z|x_i) each)")
    if key is None:
        return per_example(model, params, lambda b, x_i: posterior_mean(b.posterior(x_i)),
                           (x,), condition)
    keys = jax.random.split(key, x.shape[0])
    if sample:
        return per_example(model, params, lambda b, x_i, k: b.posterior(x_i).sample(seed=k),
                           (x, keys), condition)
    return per_example(model, params, lambda b, x_i, k: posterior_mean(b.posterior(x_i), k),
                       (x, keys), condition)


def encode_mean(model, params, x: Array, key: PRNGKey | None = None,
                condition: Array | None = None) -> Array:
    """Posterior means E_q[z|x]: ``x: [N, *event] -> [N, latent_dim]`` (:func:`encode`).

    ``key`` is needed only for a posterior without a closed-form mean (see
    :func:`posterior_mean`); example i then uses ``jax.random.split(key, N)[i]``.

    Args: ``model``, ``params``, ``x: [N, *event]``, ``key`` (PRNG key or None),
      ``condition`` None or ``[N]`` / ``[N, C]``.
    Returns: ``[N, latent_dim]``.
    """
    return encode(model, params, x, key, condition=condition)


def sample_prior(model, params, key: Array, num: int, condition: Array | None = None) -> Array:
    """Images from the generative model: z_i ~ p(z) (p(z|c_i)), x_i = E[x | z_i (, c_i)].

    Unconditionally the z_i are ``prior().sample(seed=key, sample_shape=(num,))``; with a
    condition row i draws with ``jax.random.split(key, num)[i]``.

    Args: ``model``, ``params``, ``key`` (PRNG key of the z_i), ``num`` >= 1, ``condition``
      None or one per image, ``[num]`` labels or ``[num, C]`` vectors.
    Returns: ``[num, *event]`` decoder means (e.g. Bernoulli probabilities in [0, 1]).
    """
    num = _checks.integer(num, "num", 1)
    condition = check_condition(condition, num)
    if condition is None:
        z = terms.bind(model, params).prior().sample(seed=key, sample_shape=(num,))
    else:
        z = per_example(model, params, lambda b, k: b.prior().sample(seed=k),
                        (jax.random.split(key, num),), condition)
    return decode(model, params, z, condition)


def reconstruct(model, params, x: Array, key: Array | None = None,
                condition: Array | None = None) -> Array:
    """Decoder means at the encoding of each example: ``[N, *event] -> [N, *event]``.

    With ``key=None`` z = E_q[z|x] (the posterior mean); otherwise one sample
    z_i ~ q(z|x_i) per example, using ``jax.random.split(key, N)`` (see :func:`encode`).

    Args: ``model``, ``params``, ``x: [N, *event]``, ``key`` (PRNG key or None),
      ``condition`` None or ``[N]`` / ``[N, C]`` (used to encode and to decode).
    Returns: ``[N, *event]`` decoder means.
    """
    z = encode(model, params, x, key, sample=key is not None, condition=condition)
    return decode(model, params, z, condition)
