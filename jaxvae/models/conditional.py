"""Conditional VAE: q(z|x, c), p(z|c) and p(x|z, c) for a label or code vector c.

The condition enters both networks by concatenation (Sohn, Lee & Yan, 2015; Kingma et al.,
2014, model M2 with the label observed):

    q(z|x, c) = N(mu([x, c]), diag sigma([x, c])^2),   p(x|z, c) = head(f([z, c])),
    p(z|c) = N(0, I)   or, with ``prior="learned"``, N(m(c), diag s(c)^2) (a linear map of c).

The condition of one example is ``c: [condition_dim]`` (a one-hot label, an identity code
and a viewpoint, any float vector) or an integer label ``c: []`` in [0, condition_dim),
one-hot encoded inside. It reaches the model through the contract's ``condition`` argument
(:func:`jaxvae.model_terms`), so every objective, estimator and the evaluator take it as the
second part of a batch ``(x, c)``. log p(x|c) is estimated by :func:`jaxvae.log_likelihood`
with ``condition=``; :func:`jaxvae.evaluate.condition_log_likelihoods` scores every label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import likelihoods
from jaxvae.models.mlp import GaussianEncoder, GaussianHead, MLPDecoder, diag_gaussian
from jaxvae.types import Array

__all__ = ["ConditionalVAE", "conditional_mlp", "PRIORS"]

#: ``"standard"``: p(z|c) = N(0, I); ``"learned"``: a Gaussian whose mean and log-scale are
#: linear in c (Sohn et al.'s prior network, at its simplest)
PRIORS = ("standard", "learned")


class ConditionalVAE(nn.Module):
    """A VAE whose encoder, prior and decoder see a condition c.

    Implements :class:`jaxvae.types.Model` with the condition: ``posterior(x, c)`` for
    ``x: [*event_shape]``, ``prior(c)``, ``likelihood(z, c)`` for ``z: [latent_dim]``;
    ``c: [condition_dim]`` floats or an integer label ``[]`` (one-hot inside).

    Attributes:
      encoder: maps the features ``[D + condition_dim]`` (x flattened, then c) to a
        Gaussian over ``[latent_dim]``, e.g. :class:`jaxvae.models.GaussianEncoder`.
      decoder: maps ``[latent_dim + condition_dim]`` (z, then c) to p(x|z, c), e.g.
        :class:`jaxvae.models.MLPDecoder`.
      condition_dim: the length of c (the number of classes for labels).
      prior_kind: one of :data:`PRIORS`.
    """

    encoder: nn.Module
    decoder: nn.Module
    condition_dim: int
    prior_kind: str = "standard"

    #: sub-networks of q(z|x, c), for :func:`jaxvae.split_params`
    inference_networks = ("encoder",)

    def setup(self):
        """Creates the learned prior's network (``prior_kind="learned"``)."""
        if self.prior_kind not in PRIORS:
            raise ValueError(f"prior_kind must be one of {PRIORS}, got {self.prior_kind!r}")
        if self.prior_kind == "learned":
            self.prior_net = GaussianHead(self.latent_dim, "exp")

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

    def condition_vector(self, condition: Array) -> Array:
        """The condition as the networks see it: float32 ``[condition_dim]``.

        Args: ``condition``, an integer label ``[]`` (one-hot encoded; labels outside
          [0, condition_dim) give a zero vector, as ``jax.nn.one_hot`` does) or a vector
          ``[condition_dim]``. Raises ValueError (at trace time) for other shapes.
        """
        if condition is None:
            raise ValueError(f"{type(self).__name__} needs a condition: pass condition= (an "
                             f"integer label or a [{self.condition_dim}] vector), or a batch "
                             "(x, c)")
        c = jnp.asarray(condition)
        if c.ndim == 0:
            if not jnp.issubdtype(c.dtype, jnp.integer):
                raise ValueError(f"a scalar condition must be an integer label, got {c.dtype}")
            return jax.nn.one_hot(c, self.condition_dim, dtype=jnp.float32)
        if c.shape != (self.condition_dim,):
            raise ValueError(f"condition must be an integer label or a vector "
                             f"[{self.condition_dim}] for one example, got shape {c.shape}")
        return c.astype(jnp.float32)

    def encoder_input(self, x: Array) -> Array:
        """``x`` in [0, 1] as the encoder sees it (the head's ``to_unit``), float32."""
        head = getattr(self.decoder, "head", None)
        return head.to_unit(x) if hasattr(head, "to_unit") else jnp.asarray(x, jnp.float32)

    def posterior(self, x: Array, condition: Array = None) -> distrax.Distribution:
        """Args: ``x: [*event_shape]``, ``condition``. Returns: q(z|x, c) over ``[latent_dim]``."""
        features = jnp.ravel(self.encoder_input(x)).astype(jnp.float32)
        return self.encoder(jnp.concatenate([features, self.condition_vector(condition)]))

    def prior(self, condition: Array = None) -> distrax.Distribution:
        """Args: ``condition``. Returns: p(z|c) over ``[latent_dim]`` (N(0, I) for the
        standard prior, which still checks the condition's shape)."""
        c = self.condition_vector(condition)
        if self.prior_kind == "learned":
            return self.prior_net(c)
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def likelihood(self, z: Array, condition: Array = None) -> distrax.Distribution:
        """Args: ``z: [latent_dim]``, ``condition``. Returns: p(x|z, c) over ``[*event_shape]``."""
        c = self.condition_vector(condition)
        c = jnp.broadcast_to(c, (*jnp.shape(z)[:-1], self.condition_dim))
        return self.decoder(jnp.concatenate([z, c], axis=-1))

    def __call__(self, x: Array, condition: Array = None) -> distrax.Distribution:
        """Args: ``x: [*event_shape]``, ``condition``. Returns: q(z|x, c); creates every
        parameter (used by ``init``)."""
        q = self.posterior(x, condition)
        self.prior(condition)
        self.likelihood(jnp.zeros(self.latent_shape), condition)
        return q

    def init_params(self, key: Array) -> Any:
        """Parameters for one example. Args: ``key``. Returns: Flax variables."""
        return self.init(key, jnp.zeros(self.event_shape), jnp.zeros(self.condition_dim))


def conditional_mlp(event_shape=(28, 28), condition_dim: int = 10, latent_dim: int = 20,
                    hidden: Sequence[int] = (500,), head=likelihoods.Bernoulli(),
                    activation: str = "tanh", prior: str = "standard",
                    output_bias_init=nn.initializers.zeros) -> ConditionalVAE:
    """An MLP conditional VAE (Sohn et al., 2015): x and c concatenated into the encoder,
    z and c into the decoder. The defaults are the AEVB paper's MNIST network
    (:func:`jaxvae.kingma_welling_mlp`: 500 tanh units, 20 latents) plus the condition, so
    that the two compare at equal size.

    Args: ``event_shape`` of x; ``condition_dim`` (number of classes, or the length of a
      code vector); ``latent_dim``; ``hidden`` encoder widths (mirrored in the decoder);
      ``head`` the likelihood; ``activation``; ``prior`` one of :data:`PRIORS`;
      ``output_bias_init`` for the decoder's output layer.
    Returns: a :class:`ConditionalVAE`.

    References: Sohn, Lee & Yan (2015), Learning Structured Output Representation using Deep
      Conditional Generative Models; Kingma, Rezende, Mohamed & Welling (2014), M2.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if not isinstance(condition_dim, int) or condition_dim < 1:
        raise ValueError(f"condition_dim must be an int >= 1, got {condition_dim!r}")
    if math.prod(event_shape) < 1:
        raise ValueError(f"event_shape must be non-empty, got {event_shape}")
    return ConditionalVAE(
        encoder=GaussianEncoder(tuple(hidden), latent_dim, activation, "exp", event_ndims=1),
        decoder=MLPDecoder(tuple(reversed(hidden)), tuple(event_shape), head, activation,
                           output_bias_init),
        condition_dim=condition_dim, prior_kind=prior)
