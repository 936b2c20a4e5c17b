"""Latent-space tools: prior samples, reconstructions, interpolation, traversals, attributes.

Pure functions of ``(model, params, ...)`` with explicit keys, for a model in the sense
of :class:`jaxvae.types.Model` whose latent is a vector ``z: [latent_dim]``; the model is
reached through :func:`jaxvae.bind`. Images are
the *mean* of the decoder p(x|z) (for Bernoulli heads the pixel probabilities
sigmoid(logits), for Gaussian heads the means), shape ``[num, *model.event_shape]``.

Interpolation follows White (2016), "Sampling Generative Networks": spherical linear
interpolation (slerp) keeps intermediate points at the norms typical of a Gaussian
prior, where linear interpolation passes through the low-norm interior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, terms
from jaxvae.types import Array, PRNGKey

__all__ = ["decode", "display_units", "encode_mean", "sample_prior", "reconstruct", "lerp", "slerp",
           "interpolate", "traverse", "attribute_vector"]

_INTERPOLATIONS = ("slerp", "lerp")


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


def _latent_dim(model) -> int:
    shape = tuple(getattr(model, "latent_shape", ()))
    if len(shape) != 1:
        raise ValueError(f"latent tools need a vector latent z: [latent_dim]; "
                         f"{type(model).__name__} has latent_shape {shape}")
    return int(shape[0])


def _check_z(z, model, name: str = "z") -> Array:
    z = jnp.asarray(z)
    latent_dim = _latent_dim(model)
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"{name} must have shape [num, {latent_dim}], got {tuple(z.shape)}")
    return z


def _check_example(x, model, name: str) -> Array:
    x = jnp.asarray(x)
    if tuple(x.shape) != tuple(model.event_shape):
        raise ValueError(f"{name} must be one example of shape {tuple(model.event_shape)}, "
                         f"got {tuple(x.shape)}")
    _checks.batch(x[None], name=name)
    return x


def decode(model, params, z: Array) -> Array:
    """Mean of p(x|z) for each row of ``z``.

    Args: ``model`` (vector latent), ``params``, ``z: [num, latent_dim]``.
    Returns: ``[num, *event]`` decoder means (Bernoulli probabilities in [0, 1] for
      Bernoulli heads); TypeError when the decoder's distribution has no mean.
    """
    z = _check_z(z, model)

    def mean(z_i):
        dist = terms.bind(model, params).likelihood(z_i)
        try:
            return dist.mean()
        except NotImplementedError as err:
            raise TypeError(f"the decoder's {type(dist).__name__} has no mean to show as an "
                            "image") from err

    return jax.vmap(mean)(z)


def display_units(model, x) -> Array:
    """Data or decoder means ``x`` in [0, 1] for display: the model's likelihood head's
    ``to_unit`` (8-bit levels / 255 for a discretized head), else ``x`` unchanged.

    Args: ``model``; ``x: [N, *event]`` in the data's units. Returns: float ``[N, *event]``.
    """
    head = getattr(getattr(model, "decoder", None), "head", None)
    return head.to_unit(x) if hasattr(head, "to_unit") else jnp.asarray(x)


def encode_mean(model, params, x: Array, key: PRNGKey | None = None) -> Array:
    """Posterior means E_q[z|x]: ``x: [N, *event] -> [N, latent_dim]``.

    ``key`` is needed only for a posterior without a closed-form mean (see
    :func:`posterior_mean`); example i then uses ``jax.random.split(key, N)[i]``.

    Args: ``model``, ``params``, ``x: [N, *event]``, ``key`` (PRNG key or None).
    Returns: ``[N, latent_dim]``.
    """
    _checks.batch(x, model.event_shape)
    x = jnp.asarray(x)
    posterior = terms.bind(model, params).posterior
    if key is None:
        return jax.vmap(lambda x_i: posterior_mean(posterior(x_i)))(x)
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda x_i, k: posterior_mean(posterior(x_i), k))(x, keys)


def sample_prior(model, params, key: Array, num: int) -> Array:
    """Images from the generative model: z_i ~ p(z), x_i = E[x | z_i].

    Args: ``model``, ``params``, ``key`` (PRNG key of the z_i), ``num`` >= 1.
    Returns: ``[num, *event]`` decoder means (e.g. Bernoulli probabilities in [0, 1]).
    """
    num = _checks.integer(num, "num", 1)
    z = terms.bind(model, params).prior().sample(seed=key, sample_shape=(num,))
    return decode(model, params, z)


def reconstruct(model, params, x: Array, key: Array | None = None) -> Array:
    """Decoder means at the encoding of each example: ``[N, *event] -> [N, *event]``.

    With ``key=None`` z = E_q[z|x] (the posterior mean); otherwise one sample
    z_i ~ q(z|x_i) per example, using ``jax.random.split(key, N)``.

    Args: ``model``, ``params``, ``x: [N, *event]``, ``key`` (PRNG key or None).
    Returns: ``[N, *event]`` decoder means.
    """
    _checks.batch(x, model.event_shape)
    x = jnp.asarray(x)
    if key is None:
        z = encode_mean(model, params, x)
    else:
        keys = jax.random.split(key, x.shape[0])
        posterior = terms.bind(model, params).posterior
        z = jax.vmap(lambda x_i, k: posterior(x_i).sample(seed=k))(x, keys)
    return decode(model, params, z)


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
                method: str = "slerp", key: PRNGKey | None = None) -> Array:
    """Decoded path between the posterior means of two examples.

    z0 = E_q[z|x0], z1 = E_q[z|x1]; the path is ``slerp`` or ``lerp`` (see those) and
    each point is decoded to the mean of p(x|z).

    Args: ``model``, ``params``, ``x0, x1: [*event]``, ``num >= 2``, ``method``
      (``"slerp"`` or ``"lerp"``), ``key`` (for Monte Carlo posterior means, or None).
    Returns: ``[num, *event]``; the first and last images reconstruct x0 and x1.

    References: White (2016), Sampling Generative Networks.
    """
    if method not in _INTERPOLATIONS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of "
                         f"{list(_INTERPOLATIONS)}")
    _checks.integer(num, "num", 2)
    x0, x1 = _check_example(x0, model, "x0"), _check_example(x1, model, "x1")
    z0, z1 = encode_mean(model, params, jnp.stack([x0, x1]), key)
    path = slerp(z0, z1, num) if method == "slerp" else lerp(z0, z1, num)
    return decode(model, params, path)


def traverse(model, params, x: Array, dim: int, values,
             key: PRNGKey | None = None) -> Array:
    """Latent traversal: vary unit ``dim`` of the posterior mean of ``x``, keep the rest.

    z_i = E_q[z|x] with z_i[dim] = values[i], decoded to the means of p(x|z_i).

    Args: ``model``, ``params``, ``x: [*event]``, ``dim`` in [0, latent_dim), ``values:
      [num]`` the latent values to set, ``key`` (for Monte Carlo posterior means, or None).
    Returns: ``[num, *event]``.
    """
    latent_dim = _latent_dim(model)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) \
            or not 0 <= dim < latent_dim:
        raise ValueError(f"dim must be an int in [0, {latent_dim}), got {dim!r}")
    values = jnp.asarray(values, jnp.float32)
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"values must be a non-empty vector [num], got shape "
                         f"{tuple(values.shape)}")
    z = encode_mean(model, params, _check_example(x, model, "x")[None], key)[0]
    zs = jnp.tile(z, (values.shape[0], 1)).at[:, dim].set(values)
    return decode(model, params, zs)


def attribute_vector(model, params, x_with: Array, x_without: Array,
                     key: PRNGKey | None = None) -> Array:
    """Attribute vector: the difference of mean posterior means of two sets of examples.

    a = mean_{x in x_with} E_q[z|x] - mean_{x in x_without} E_q[z|x].
    Adding a to an encoding adds the attribute.

    Args: ``model``, ``params``, ``x_with: [N1, *event]``, ``x_without: [N2, *event]``,
      ``key`` (for Monte Carlo posterior means, or None).
    Returns: ``a: [latent_dim]``.

    References: White (2016), Sampling Generative Networks.
    """
    _checks.batch(x_with, model.event_shape, name="x_with")
    _checks.batch(x_without, model.event_shape, name="x_without")
    key_with, key_without = (None, None) if key is None else jax.random.split(key)
    return (jnp.mean(encode_mean(model, params, x_with, key_with), axis=0)
            - jnp.mean(encode_mean(model, params, x_without, key_without), axis=0))
