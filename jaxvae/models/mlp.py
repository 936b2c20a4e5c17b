"""Fully connected Gaussian encoder, MLP decoder and the VAE that ties them to a prior.

Presets:
* :func:`iwae_mlp` — Burda et al. (2015), one stochastic layer: 784-200-200-50, tanh,
  exp-parameterized variances.
* :func:`kingma_welling_mlp` — Kingma & Welling (2014): one hidden layer of 500 units, tanh.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import likelihoods

Array = jax.Array

__all__ = ["diag_gaussian", "GaussianEncoder", "MLPDecoder", "VAE", "iwae_mlp", "kingma_welling_mlp",
           "mean_logit_init"]

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "elu": jax.nn.elu,
                "softplus": jax.nn.softplus, "gelu": jax.nn.gelu}


def _activation(name_or_fn) -> Callable[[Array], Array]:
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
        act = _activation(self.activation)
        for width in self.hidden:
            h = act(nn.Dense(width, kernel_init=self.kernel_init)(h))
        return h


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
        batch_shape = x.shape[:x.ndim - self.event_ndims]
        h = jnp.reshape(x, (*batch_shape, -1)).astype(jnp.float32)
        h = MLP(self.hidden, self.activation)(h)
        init = nn.initializers.glorot_uniform()
        loc = nn.Dense(self.latent_dim, kernel_init=init, name="loc")(h)
        raw_scale = nn.Dense(self.latent_dim, kernel_init=init, name="raw_scale")(h)
        return diag_gaussian(loc, positive_scale(raw_scale, self.scale))


class MLPDecoder(nn.Module):
    """p(x|z): ``z: [latent_dim] -> distribution over x: [*event_shape]`` via ``head``."""

    hidden: Sequence[int]
    event_shape: Sequence[int]
    head: Any = likelihoods.Bernoulli()
    activation: Any = "tanh"
    output_bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, z: Array) -> distrax.Distribution:
        h = MLP(self.hidden, self.activation)(z)
        raw_shape = self.head.raw_shape(tuple(self.event_shape))
        raw = nn.Dense(math.prod(raw_shape), kernel_init=nn.initializers.glorot_uniform(),
                       bias_init=self.output_bias_init, name="out")(h)
        raw = jnp.reshape(raw, (*z.shape[:-1], *raw_shape))
        return self.head(raw, event_ndims=len(self.event_shape))


class VAE(nn.Module):
    """Encoder + standard-normal prior + decoder, one stochastic layer.

    Methods (call with ``model.apply(params, ..., method=...)``):
      * ``__call__(x)`` / ``posterior(x)``: q(z|x) for ``x: [*event_shape]``;
      * ``likelihood(z)``: p(x|z) for ``z: [latent_dim]``;
    and :meth:`prior` (no parameters): N(0, I) over ``[latent_dim]``.
    Use :func:`jaxvae.model_terms` to get ``(q, prior, log_likelihood)`` for one x.
    """

    encoder: nn.Module
    decoder: nn.Module

    #: sub-networks of q(z|x), for :func:`jaxvae.split_params`
    inference_networks = ("encoder",)

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    @property
    def event_shape(self) -> tuple:
        return tuple(self.decoder.event_shape)

    def prior(self) -> distrax.Distribution:
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def posterior(self, x: Array) -> distrax.Distribution:
        return self.encoder(x)

    def likelihood(self, z: Array) -> distrax.Distribution:
        return self.decoder(z)

    def __call__(self, x: Array) -> distrax.Distribution:
        # Used by ``init``: touches both networks so that all parameters are created.
        q = self.encoder(x)
        self.decoder(jnp.zeros((*q.batch_shape, *q.event_shape)))   # flows have no closed-form mean
        return q

    def init_params(self, key: Array) -> Any:
        """Parameters for one example of shape ``event_shape``."""
        return self.init(key, jnp.zeros(self.event_shape))


def mean_logit_init(data_mean, eps: float = 1e-3) -> Callable:
    """Bias initializer: logit of the training mean of each pixel (Burda et al. 2015).

    The mean is kept inside [eps, 1 - eps] so that constant pixels get a finite logit;
    this only chooses the starting point, the model is unchanged.
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
    """Burda et al. (2015) one-stochastic-layer architecture: D-200-200-50, tanh."""
    return VAE(
        encoder=GaussianEncoder(hidden, latent_dim, "tanh", "exp", event_ndims=len(event_shape)),
        decoder=MLPDecoder(tuple(reversed(hidden)), tuple(event_shape), head, "tanh",
                           output_bias_init))


def kingma_welling_mlp(event_shape=(28, 28), latent_dim: int = 20, hidden: int = 500,
                       head=likelihoods.Bernoulli(),
                       output_bias_init=nn.initializers.zeros) -> VAE:
    """Kingma & Welling (2014) MNIST architecture: one tanh hidden layer of 500 units."""
    return VAE(
        encoder=GaussianEncoder((hidden,), latent_dim, "tanh", "exp",
                                event_ndims=len(event_shape)),
        decoder=MLPDecoder((hidden,), tuple(event_shape), head, "tanh", output_bias_init))
