"""Fully connected Gaussian encoder, MLP decoder and the VAE that ties them to a prior.

Presets:
* :func:`iwae_mlp` — Burda et al. (2015), one stochastic layer: 784-200-200-50, tanh,
  exp-parameterized variances.
* :func:`kingma_welling_mlp` — Kingma & Welling (2014): one hidden layer of 500 units, tanh.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import likelihoods

Array = jax.Array

__all__ = ["diag_gaussian", "GaussianEncoder", "MLPDecoder", "VAE", "iwae_mlp",
           "kingma_welling_mlp",
           "mean_logit_init", "GaussianHead", "get_activation"]

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "elu": jax.nn.elu,
                "softplus": jax.nn.softplus, "gelu": jax.nn.gelu}


def get_activation(name_or_fn) -> Callable[[Array], Array]:
    """An activation by name (``tanh``, ``relu``, ``elu``, ``softplus``, ``gelu``) or the
    callable itself; ValueError listing the names otherwise."""
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name_or_fn!r}; expected one of "
                         f"{sorted(_ACTIVATIONS)} or a callable")
    return _ACTIVATIONS[name_or_fn]


def diag_gaussian(loc: Array, scale: Array) -> distrax.Distribution:
    """N(loc, diag scale^2) over the last axis, as ``Independent(Normal)``.

    Preferred to ``distrax.MultivariateNormalDiag`` because its pytree leaves are exactly
    ``loc`` and ``scale``: ``tree_map(stop_gradient, q)`` then stops every path to the
    parameters (MultivariateNormalDiag keeps bound methods of its scale bijector as static
    data, through which gradients leak), which STL and DReG rely on.

    Args: ``loc: [*batch, latent]``; ``scale`` > 0, broadcastable to it.
    Returns: a distribution with event shape ``[latent]`` and batch shape ``[*batch]``.
    """
    return distrax.Independent(distrax.Normal(loc, scale), reinterpreted_batch_ndims=1)


def positive_scale(raw: Array, parameterization: str) -> Array:
    """Maps an unconstrained output to a standard deviation > 0.

    ``"exp"``: sigma = exp(raw / 2), i.e. raw is log sigma^2 (IWAE paper);
    ``"softplus"``: sigma = softplus(raw).
    """
    if parameterization == "exp":
        return jnp.exp(0.5 * raw)
    if parameterization == "softplus":
        return jax.nn.softplus(raw)
    raise ValueError(f"unknown scale parameterization {parameterization!r}; "
                     "expected 'exp' or 'softplus'")


class MLP(nn.Module):
    """Dense layers with a shared activation: ``[..., d_in] -> [..., hidden[-1]]``."""

    hidden: Sequence[int]
    activation: Any = "tanh"
    kernel_init: Callable = nn.initializers.glorot_uniform()

    @nn.compact
    def __call__(self, h: Array) -> Array:
        act = get_activation(self.activation)
        for width in self.hidden:
            h = act(nn.Dense(width, kernel_init=self.kernel_init)(h))
        return h


class GaussianHead(nn.Module):
    """h: ``[..., H]`` -> N(loc(h), diag positive_scale(raw_scale(h))^2) over ``[latent_dim]``.

    Two Dense layers named ``loc`` and ``raw_scale`` (Glorot-uniform kernels, zero biases),
    then :func:`positive_scale` and :func:`diag_gaussian`. An encoder that keeps these layers
    at its own level (``encoder/loc/kernel``) shares its scope: ``nn.share_scope(self, head)``.
    """

    latent_dim: int
    scale: str = "exp"

    @nn.compact
    def __call__(self, h: Array) -> distrax.Distribution:
        """Args: ``h: [..., H]``. Returns: N(loc, diag scale^2), event ``[latent_dim]``."""
        init = nn.initializers.glorot_uniform()
        loc = nn.Dense(self.latent_dim, kernel_init=init, name="loc")(h)
        raw_scale = nn.Dense(self.latent_dim, kernel_init=init, name="raw_scale")(h)
        return diag_gaussian(loc, positive_scale(raw_scale, self.scale))


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma(x)^2).

    x: ``[*event]`` (flattened inside) -> a diagonal Gaussian (:func:`diag_gaussian`) over
    ``z: [latent_dim]``. Works on a leading batch too, giving a batched distribution.
    """

    hidden: Sequence[int]
    latent_dim: int
    activation: Any = "tanh"
    scale: str = "exp"
    event_ndims: int = 1

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [*batch, *event]`` (``event_ndims`` axes of event).

        Returns: q(z|x), event shape ``[latent_dim]``, batch shape ``[*batch]``.
        """
        batch_shape = x.shape[:x.ndim - self.event_ndims]
        h = jnp.reshape(x, (*batch_shape, -1)).astype(jnp.float32)
        h = MLP(self.hidden, self.activation)(h)
        head = GaussianHead(self.latent_dim, self.scale)
        nn.share_scope(self, head)          # its layers stay at encoder/loc, encoder/raw_scale
        return head(h)


class MLPDecoder(nn.Module):
    """p(x|z): ``z: [latent_dim] -> distribution over x: [*event_shape]`` via ``head``."""

    hidden: Sequence[int]
    event_shape: Sequence[int]
    head: Any = likelihoods.Bernoulli()
    activation: Any = "tanh"
    output_bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, z: Array) -> distrax.Distribution:
        """Args: ``z: [*batch, latent_dim]``.

        Returns: p(x|z) from ``head``, event shape ``[*event_shape]``, batch ``[*batch]``.
        """
        h = MLP(self.hidden, self.activation)(z)
        raw_shape = self.head.raw_shape(tuple(self.event_shape))
        raw = nn.Dense(math.prod(raw_shape), kernel_init=nn.initializers.glorot_uniform(),
                       bias_init=self.output_bias_init, name="out")(h)
        raw = jnp.reshape(raw, (*z.shape[:-1], *raw_shape))
        return likelihoods.apply_head(self, self.head, raw, tuple(self.event_shape),
                                      len(self.event_shape))


class VAE(nn.Module):
    """Encoder + standard-normal prior + decoder, one stochastic layer.

    Implements :class:`jaxvae.types.Model`: ``posterior(x)`` is q(z|x) for
    ``x: [*event_shape]``, ``likelihood(z)`` is p(x|z) for ``z: [latent_dim]``, and
    ``prior()`` (no parameters) is N(0, I) over ``[latent_dim]``. Use
    :func:`jaxvae.model_terms` to get ``(q, prior, log_likelihood)`` for one x.
    """

    encoder: nn.Module
    decoder: nn.Module

    #: sub-networks of q(z|x), for :func:`jaxvae.split_params`
    inference_networks = ("encoder",)

    @property
    def latent_dim(self) -> int:
        """The number of latent units (the encoder's ``latent_dim``)."""
        return self.encoder.latent_dim

    @property
    def latent_shape(self) -> tuple:
        """``(latent_dim,)``, the shape of one z."""
        return (self.latent_dim,)

    @property
    def event_shape(self) -> tuple:
        """The shape of one x (the decoder's ``event_shape``)."""
        return tuple(self.decoder.event_shape)

    def prior(self) -> distrax.Distribution:
        """Returns: p(z) = N(0, I) over ``[latent_dim]`` (no parameters)."""
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def encoder_input(self, x: Array) -> Array:
        """``x`` as the encoder sees it: in [0, 1] (the head's ``to_unit``; 8-bit levels of a
        discretized head are divided by 255), float32."""
        head = getattr(self.decoder, "head", None)
        return head.to_unit(x) if hasattr(head, "to_unit") else x

    def posterior(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [*event_shape]``, data units. Returns: q(z|x) over ``[latent_dim]``."""
        return self.encoder(self.encoder_input(x))

    def likelihood(self, z: Array) -> distrax.Distribution:
        """Args: ``z: [latent_dim]``. Returns: p(x|z) over ``[*event_shape]``."""
        return self.decoder(z)

    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [*event_shape]``. Returns: q(z|x); also creates the decoder's parameters."""
        # Used by ``init``: touches both networks so that all parameters are created.
        q = self.encoder(self.encoder_input(x))
        self.decoder(jnp.zeros((*q.batch_shape, *q.event_shape)))   # flows have no closed-form mean
        return q

    def init_params(self, key: Array) -> Any:
        """Parameters for one example of shape ``event_shape``.

        Args: ``key``, a PRNG key. Returns: Flax variables ``{"params": {...}}``.
        """
        return self.init(key, jnp.zeros(self.event_shape))


def mean_logit_init(data_mean, eps: float = 1e-3) -> Callable:
    """Bias initializer: logit of the training mean of each pixel.

    b_d = log m_d - log(1 - m_d). The mean is kept inside [eps, 1 - eps] so that constant
    pixels get a finite logit; this only chooses the starting point, the model is unchanged.

    Args: ``data_mean: [*event]`` in [0, 1] (e.g. ``images.mean(0)``); ``eps`` > 0.
    Returns: ``init(key, shape, dtype) -> [D]`` for the decoder's ``output_bias_init``.

    References: Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
    """
    mean = jnp.clip(jnp.ravel(jnp.asarray(data_mean, jnp.float32)), eps, 1.0 - eps)
    logit = jnp.log(mean) - jnp.log1p(-mean)

    def init(key, shape, dtype=jnp.float32):
        if shape != logit.shape:
            raise ValueError(f"mean_logit_init: the data mean has {logit.size} entries, "
                             f"the output layer has shape {shape}")
        return logit.astype(dtype)

    return init


def iwae_mlp(event_shape=(28, 28), latent_dim: int = 50, hidden=(200, 200),
             head=likelihoods.Bernoulli(), output_bias_init=nn.initializers.zeros) -> VAE:
    """The IWAE paper's one-stochastic-layer architecture: D-200-200-50, tanh.

    Args: ``event_shape`` of x; ``latent_dim``; ``hidden`` encoder widths (mirrored in the
      decoder); ``head`` the decoder's likelihood; ``output_bias_init`` (e.g.
      :func:`mean_logit_init`).
    Returns: a :class:`VAE` with exp-parameterized Gaussian q(z|x) and N(0, I) prior.

    References: Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
    """
    return VAE(
        encoder=GaussianEncoder(hidden, latent_dim, "tanh", "exp", event_ndims=len(event_shape)),
        decoder=MLPDecoder(tuple(reversed(hidden)), tuple(event_shape), head, "tanh",
                           output_bias_init))


def kingma_welling_mlp(event_shape=(28, 28), latent_dim: int = 20, hidden: int = 500,
                       head=likelihoods.Bernoulli(),
                       output_bias_init=nn.initializers.zeros) -> VAE:
    """The AEVB paper's MNIST architecture: one tanh hidden layer of 500 units.

    Args: ``event_shape``; ``latent_dim``; ``hidden`` (one width); ``head``;
      ``output_bias_init``, as in :func:`iwae_mlp`.
    Returns: a :class:`VAE`.

    References: Kingma & Welling (2014), Auto-Encoding Variational Bayes.
    """
    return VAE(
        encoder=GaussianEncoder((hidden,), latent_dim, "tanh", "exp",
                                event_ndims=len(event_shape)),
        decoder=MLPDecoder((hidden,), tuple(event_shape), head, "tanh", output_bias_init))
