"""Two stochastic layers (Burda, Grosse & Salakhutdinov 2015, Sec. 5).

Inference:   q(z1, z2 | x) = q(z1 | x) q(z2 | z1)
Generative:  p(x, z1, z2)  = p(z2) p(z1 | z2) p(x | z1),   p(z2) = N(0, I)

with every conditional a diagonal Gaussian (exp-parameterized variances) computed by a
tanh MLP, and a Bernoulli p(x|z1). The paper's MNIST sizes: x -> 200 -> 200 -> z1 (100)
-> 100 -> 100 -> z2 (50), and the mirror image for the generative model.

Both q and the prior are distrax distributions over the concatenation z = [z1, z2]
(event shape ``[d1 + d2]``), so the log-weights

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)

come out of the ordinary objectives (:func:`jaxvae.log_weights`, :func:`jaxvae.elbo`,
:func:`jaxvae.iwae_bound`) unchanged. The networks' parameters are attributes of these
distributions, hence pytree leaves: ``tree_map(stop_gradient, q)`` stops them too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import likelihoods
from jaxvae.models.mlp import GaussianEncoder, MLPDecoder, diag_gaussian

Array = jax.Array

__all__ = ["GaussianChain", "HierarchicalVAE", "iwae_two_layer"]


class GaussianChain(distrax.Distribution):
    """p(a, b) = base(a) N(b; mu(a), diag sigma(a)^2) over z = [a, b] (or [b, a]).

    Args:
      base: distribution of the first variable ``a: [d_a]`` (batch shape ``()``).
      conditional: an unbound Flax module mapping ``a: [..., d_a]`` to a batched
        diagonal Gaussian over ``b: [d_b]`` (e.g. :class:`jaxvae.GaussianEncoder`).
      params: the conditional's variables (``{"params": ...}``).
      b_first: lay the event out as ``[b, a]`` instead of ``[a, b]`` (the prior samples
        z2 first but is a density over ``[z1, z2]``, like the posterior).
    """

    def __init__(self, base: distrax.Distribution, conditional: nn.Module, params: Any,
                 b_first: bool = False):
        if len(base.event_shape) != 1 or base.batch_shape != ():
            raise ValueError(f"base must be one vector-valued distribution, got event shape "
                             f"{base.event_shape} and batch shape {base.batch_shape}")
        self.base = base
        self.conditional = conditional
        self.params = params
        self.b_first = b_first

    @property
    def _sizes(self):
        return self.base.event_shape[0], self.conditional.latent_dim

    @property
    def event_shape(self):
        """``(d_a + d_b,)``, the shape of z."""
        return (sum(self._sizes),)

    def _join(self, a, b):
        return jnp.concatenate([b, a] if self.b_first else [a, b], axis=-1)

    def _split(self, z):
        d_a, d_b = self._sizes
        if self.b_first:
            return z[..., d_b:], z[..., :d_b]
        return z[..., :d_a], z[..., d_a:]

    def _sample_n_and_log_prob(self, key: Array, n: int):
        key_a, key_b = jax.random.split(key)
        a, log_p_a = self.base.sample_and_log_prob(seed=key_a, sample_shape=(n,))
        b, log_p_b = self.conditional.apply(self.params, a).sample_and_log_prob(seed=key_b)
        return self._join(a, b), log_p_a + log_p_b

    def _sample_n(self, key: Array, n: int):
        return self._sample_n_and_log_prob(key, n)[0]

    def log_prob(self, value: Array) -> Array:
        """log base(a) + log N(b; mu(a), diag sigma(a)^2).

        Args: ``value: [..., d_a + d_b]``. Returns: ``[...]``, nats.
        """
        a, b = self._split(value)
        return self.base.log_prob(a) + self.conditional.apply(self.params, a).log_prob(b)


def _standard_normal(dim: int) -> distrax.Distribution:
    return diag_gaussian(jnp.zeros(dim), jnp.ones(dim))


@dataclasses.dataclass(frozen=True)
class HierarchicalVAE:
    """VAE with two stochastic layers; the latent is ``z = [z1, z2]: [d1 + d2]``.

    Parameters are a dict with one entry per network: ``q_z1`` (x -> z1), ``q_z2``
    (z1 -> z2), ``p_z1`` (z2 -> z1) and ``decoder`` (z1 -> x), each initialised and
    applied on its own. It implements :class:`jaxvae.types.Model` without being one Flax
    module: ``apply(params, *args, method=name)`` dispatches to :meth:`posterior` (x),
    :meth:`likelihood` (z) and :meth:`prior`, which is all the library ever calls.

    References: Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, Sec. 5.
    """

    q_z1: GaussianEncoder
    q_z2: GaussianEncoder
    p_z1: GaussianEncoder
    decoder: MLPDecoder

    #: sub-networks of q(z|x), for :func:`jaxvae.split_params`
    inference_networks = ("q_z1", "q_z2")

    @property
    def z1_dim(self) -> int:
        """d1, the size of the lower latent z1."""
        return self.q_z1.latent_dim

    @property
    def latent_dim(self) -> int:
        """d1 + d2, the size of z = [z1, z2]."""
        return self.q_z1.latent_dim + self.q_z2.latent_dim

    @property
    def latent_shape(self) -> tuple:
        """``(d1 + d2,)``, the shape of one z."""
        return (self.latent_dim,)

    @property
    def event_shape(self) -> tuple:
        """The shape of one x (the decoder's ``event_shape``)."""
        return tuple(self.decoder.event_shape)

    def init_params(self, key: Array) -> dict:
        """Args: ``key``. Returns: ``{"q_z1", "q_z2", "p_z1", "decoder"}`` Flax variables."""
        keys = jax.random.split(key, 4)
        d1, d2 = self.z1_dim, self.q_z2.latent_dim
        return {"q_z1": self.q_z1.init(keys[0], jnp.zeros(self.event_shape)),
                "q_z2": self.q_z2.init(keys[1], jnp.zeros(d1)),
                "p_z1": self.p_z1.init(keys[2], jnp.zeros(d2)),
                "decoder": self.decoder.init(keys[3], jnp.zeros(d1))}

    def posterior(self, params, x: Array) -> GaussianChain:
        """Args: ``params``; one ``x: [*event_shape]``.

        Returns: q(z1, z2 | x) = q(z1|x) q(z2|z1), a :class:`GaussianChain` over ``[d1 + d2]``.
        """
        return GaussianChain(self.q_z1.apply(params["q_z1"], x), self.q_z2, params["q_z2"])

    def prior(self, params) -> GaussianChain:
        """Args: ``params``. Returns: p(z1, z2) = p(z2) p(z1 | z2), a density over ``[z1, z2]``."""
        return GaussianChain(_standard_normal(self.q_z2.latent_dim), self.p_z1, params["p_z1"],
                             b_first=True)

    def likelihood(self, params, z: Array) -> distrax.Distribution:
        """p(x | z1) for ``z = [z1, z2]: [..., d1 + d2]`` (x depends on z1 only).

        Args: ``params``; ``z``. Returns: a distribution over ``[*event_shape]``.
        """
        return self.decoder.apply(params["decoder"], z[..., :self.z1_dim])

    def apply(self, params, *args, method: str, rngs=None):
        """The contract's entry point (as ``flax.linen.Module.apply``); ``rngs`` unused.

        Args: ``params``; the method's ``*args``; ``method``: ``"posterior"``, ``"prior"``
          or ``"likelihood"``. Returns: that method's distribution.
        """
        del rngs
        if method not in ("posterior", "prior", "likelihood"):
            raise ValueError(f"unknown method {method!r}; expected 'posterior', 'prior' "
                             "or 'likelihood'")
        return getattr(self, method)(params, *args)


def iwae_two_layer(event_shape=(28, 28), z1_dim: int = 100, z2_dim: int = 50,
                   hidden1=(200, 200), hidden2=(100, 100), head=likelihoods.Bernoulli(),
                   output_bias_init=nn.initializers.zeros) -> HierarchicalVAE:
    """The IWAE paper's two-stochastic-layer MNIST model (x-200-200-100-100-100-50, tanh).

    Args: ``event_shape`` of x; ``z1_dim``, ``z2_dim`` the latent sizes; ``hidden1`` (x <-> z1)
      and ``hidden2`` (z1 <-> z2) widths; ``head`` of p(x|z1); ``output_bias_init``.
    Returns: a :class:`HierarchicalVAE` with ``z = [z1, z2]: [z1_dim + z2_dim]``.

    References: Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, Sec. 5.
    """
    return HierarchicalVAE(
        q_z1=GaussianEncoder(hidden1, z1_dim, "tanh", "exp", event_ndims=len(event_shape)),
        q_z2=GaussianEncoder(hidden2, z2_dim, "tanh", "exp"),
        p_z1=GaussianEncoder(tuple(reversed(hidden2)), z1_dim, "tanh", "exp"),
        decoder=MLPDecoder(tuple(reversed(hidden1)), tuple(event_shape), head, "tanh",
                           output_bias_init))
