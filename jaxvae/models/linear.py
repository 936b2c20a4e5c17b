"""Linear-Gaussian VAE: a model whose posterior and marginal likelihood are known exactly.

p(z) = N(0, I_d), p(x|z) = N(W z + b, sigma^2 I_D), q(z|x) = N(A x + c, diag(exp(s))^2).

Then p(x) = N(b, W W^T + sigma^2 I) and p(z|x) = N(m, S) with S = (I + W^T W / sigma^2)^-1,
m = S W^T (x - b) / sigma^2. When W has orthogonal columns, S is diagonal and the encoder
can represent p(z|x) exactly (:meth:`LinearGaussianVAE.exact_params`): every importance
weight then equals p(x), and the STL and DReG inference gradients vanish. Used by the tests
and by the estimator-variance benchmark as a ground truth.
"""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae.models.mlp import diag_gaussian

Array = jax.Array

__all__ = ["LinearGaussianVAE"]


class _LinearEncoder(nn.Module):
    data_dim: int
    latent_dim: int

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        A = self.param("A", nn.initializers.normal(0.3), (self.latent_dim, self.data_dim))
        c = self.param("c", nn.initializers.normal(0.3), (self.latent_dim,))
        log_scale = self.param("log_scale", nn.initializers.normal(0.3), (self.latent_dim,))
        return diag_gaussian(A @ x + c, jnp.exp(log_scale))


class _LinearDecoder(nn.Module):
    data_dim: int
    latent_dim: int
    sigma: float

    @nn.compact
    def __call__(self, z: Array) -> distrax.Distribution:
        W = self.param("W", nn.initializers.normal(1.0), (self.data_dim, self.latent_dim))
        b = self.param("b", nn.initializers.normal(1.0), (self.data_dim,))
        mean = W @ z + b
        return diag_gaussian(mean, jnp.full_like(mean, self.sigma))


class LinearGaussianVAE(nn.Module):
    """Linear encoder and decoder, Gaussian everywhere, fixed observation noise ``sigma``.

    Methods as :class:`jaxvae.VAE`: ``posterior(x: [data_dim])``, ``likelihood(z:
    [latent_dim])``, ``prior()``; plus :meth:`exact_params`, :meth:`log_marginal` and
    :meth:`sample_x` for ground truth.
    """

    data_dim: int = 5
    latent_dim: int = 3
    sigma: float = 0.7

    #: sub-networks of q(z|x), for :func:`jaxvae.split_params`
    inference_networks = ("encoder",)

    def setup(self):
        """Creates the linear encoder (A, c, log_scale) and decoder (W, b)."""
        self.encoder = _LinearEncoder(self.data_dim, self.latent_dim)
        self.decoder = _LinearDecoder(self.data_dim, self.latent_dim, self.sigma)

    @property
    def event_shape(self) -> tuple:
        """``(data_dim,)``, the shape of one x."""
        return (self.data_dim,)

    @property
    def latent_shape(self) -> tuple:
        """``(latent_dim,)``, the shape of one z."""
        return (self.latent_dim,)

    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [data_dim]``. Returns: q(z|x); touches both networks (for ``init``)."""
        q = self.encoder(x)
        self.decoder(q.mean())
        return q

    def posterior(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [data_dim]``. Returns: q(z|x) = N(A x + c, diag(exp(s))^2)."""
        return self.encoder(x)

    def likelihood(self, z: Array) -> distrax.Distribution:
        """Args: ``z: [latent_dim]``. Returns: p(x|z) = N(W z + b, sigma^2 I)."""
        return self.decoder(z)

    def prior(self) -> distrax.Distribution:
        """Returns: p(z) = N(0, I) over ``[latent_dim]``."""
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def init_params(self, key: Array):
        """Args: ``key``. Returns: random Flax variables ``{"params": {...}}``."""
        return self.init(key, jnp.zeros(self.event_shape))

    def exact_params(self, key: Array, scales=(0.5, 2.0)):
        """Parameters whose encoder computes the exact posterior p(z|x) for every x.

        W has orthogonal columns (norms spaced in ``scales``), so p(z|x) is diagonal.

        Args: ``key``; ``scales``, (smallest, largest) column norm of W.
        Returns: Flax variables ``{"params": {"encoder": ..., "decoder": ...}}``.
        """
        k1, k2 = jax.random.split(key)
        Q, _ = jnp.linalg.qr(jax.random.normal(k1, (self.data_dim, self.latent_dim)))
        W = Q * jnp.linspace(scales[0], scales[1], self.latent_dim)
        b = jax.random.normal(k2, (self.data_dim,))
        S = 1.0 / (1.0 + jnp.sum(W ** 2, axis=0) / self.sigma ** 2)     # diag of p(z|x) cov
        A = S[:, None] * W.T / self.sigma ** 2
        enc = {"A": A, "c": -A @ b, "log_scale": 0.5 * jnp.log(S)}
        return {"params": {"encoder": enc, "decoder": {"W": W, "b": b}}}

    def log_marginal(self, params, x: Array) -> Array:
        """Exact log p(x) = log N(x; b, W W^T + sigma^2 I), nats.

        Args: ``params``; one ``x: [data_dim]``. Returns: a scalar, nats.
        """
        dec = params["params"]["decoder"]
        cov = dec["W"] @ dec["W"].T + self.sigma ** 2 * jnp.eye(self.data_dim)
        return distrax.MultivariateNormalFullCovariance(dec["b"], cov).log_prob(x)

    def exact_posterior(self, params, x: Array):
        """The exact posterior p(z|x) = N(m, S), S = (I + W^T W / sigma^2)^-1.

        Args: ``params``; one ``x: [data_dim]``.
        Returns: ``(m: [latent_dim], S: [latent_dim, latent_dim])``.
        """
        dec = params["params"]["decoder"]
        W = dec["W"]
        cov = jnp.linalg.inv(jnp.eye(self.latent_dim) + W.T @ W / self.sigma ** 2)
        return cov @ W.T @ (x - dec["b"]) / self.sigma ** 2, cov

    def kl_to_posterior(self, params, x: Array) -> Array:
        """KL(q(z|x) || p(z|x)) in nats for one ``x``, in closed form (0 iff q is exact).

        Args: ``params``; one ``x: [data_dim]``. Returns: a scalar, nats.
        """
        q = self.apply(params, x, method=LinearGaussianVAE.posterior)
        mean_p, cov_p = self.exact_posterior(params, x)
        var_q = q.variance()
        prec_p = jnp.linalg.inv(cov_p)
        diff = mean_p - q.mean()
        return 0.5 * (jnp.sum(jnp.diag(prec_p) * var_q) + diff @ prec_p @ diff - self.latent_dim
                      + jnp.linalg.slogdet(cov_p)[1] - jnp.sum(jnp.log(var_q)))

    def sample_x(self, params, key: Array) -> Array:
        """One x ~ p(x) (ancestral: z ~ N(0, I), x ~ N(W z + b, sigma^2 I)).

        Args: ``params``; ``key``. Returns: ``x: [data_dim]``.
        """
        dec = params["params"]["decoder"]
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (self.latent_dim,))
        return dec["W"] @ z + dec["b"] + self.sigma * jax.random.normal(kx, (self.data_dim,))
