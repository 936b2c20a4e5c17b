"""Closed-form reference models for tests.

Linear-Gaussian model: p(z) = N(0, I_d), p(x|z) = N(W z + b, sigma^2 I_D). Then
  p(x)   = N(b, W W^T + sigma^2 I)                       (exact marginal likelihood)
  p(z|x) = N(m, S),  S = (I + W^T W / sigma^2)^{-1},  m = S W^T (x - b) / sigma^2.
With q = p(z|x) every importance weight equals p(x) exactly.
"""

import dataclasses

import distrax
import jax
import jax.numpy as jnp


@dataclasses.dataclass
class LinearGaussian:
    W: jax.Array   # [D, d]
    b: jax.Array   # [D]
    sigma: float

    @classmethod
    def random(cls, key, data_dim=5, latent_dim=3, sigma=0.7):
        k1, k2 = jax.random.split(key)
        return cls(jax.random.normal(k1, (data_dim, latent_dim)),
                   jax.random.normal(k2, (data_dim,)), sigma)

    @property
    def latent_dim(self):
        return self.W.shape[1]

    def prior(self):
        d = self.latent_dim
        return distrax.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d))

    def log_likelihood_fn(self, x):
        def log_likelihood(z):
            mean = self.W @ z + self.b
            return distrax.MultivariateNormalDiag(mean, jnp.full_like(mean, self.sigma)).log_prob(x)
        return log_likelihood

    def log_marginal(self, x):
        cov = self.W @ self.W.T + self.sigma ** 2 * jnp.eye(self.W.shape[0])
        return distrax.MultivariateNormalFullCovariance(self.b, cov).log_prob(x)

    def posterior(self, x):
        d = self.latent_dim
        precision = jnp.eye(d) + self.W.T @ self.W / self.sigma ** 2
        cov = jnp.linalg.inv(precision)
        mean = cov @ self.W.T @ (x - self.b) / self.sigma ** 2
        return distrax.MultivariateNormalFullCovariance(mean, cov)

    def sample_x(self, key):
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (self.latent_dim,))
        return self.W @ z + self.b + self.sigma * jax.random.normal(kx, self.b.shape)


# ---------------------------------------------------------------------------------------
# The same model as a Flax VAE with separate inference and generative parameters, for the
# gradient-estimator tests: q(z|x) = N(A x + c, diag(exp(log_scale))^2), p(x|z) as above.

import flax.linen as nn  # noqa: E402
import numpy as np  # noqa: E402

from jaxvae.models import diag_gaussian  # noqa: E402


class _LinearEncoder(nn.Module):
    data_dim: int
    latent_dim: int

    @nn.compact
    def __call__(self, x):
        A = self.param("A", nn.initializers.normal(0.3), (self.latent_dim, self.data_dim))
        c = self.param("c", nn.initializers.normal(0.3), (self.latent_dim,))
        log_scale = self.param("log_scale", nn.initializers.normal(0.3), (self.latent_dim,))
        return diag_gaussian(A @ x + c, jnp.exp(log_scale))


class _LinearDecoder(nn.Module):
    data_dim: int
    latent_dim: int
    sigma: float

    @nn.compact
    def __call__(self, z):
        W = self.param("W", nn.initializers.normal(1.0), (self.data_dim, self.latent_dim))
        b = self.param("b", nn.initializers.normal(1.0), (self.data_dim,))
        mean = W @ z + b
        return diag_gaussian(mean, jnp.full_like(mean, self.sigma))


class LinearGaussianVAE(nn.Module):
    """Linear-Gaussian model as a VAE; ``exact_params`` makes q the exact posterior."""

    data_dim: int = 5
    latent_dim: int = 3
    sigma: float = 0.7
    inference_networks = ("encoder",)

    def setup(self):
        self.encoder = _LinearEncoder(self.data_dim, self.latent_dim)
        self.decoder = _LinearDecoder(self.data_dim, self.latent_dim, self.sigma)

    @property
    def event_shape(self):
        return (self.data_dim,)

    def __call__(self, x):
        q = self.encoder(x)
        self.decoder(q.mean())
        return q

    def posterior(self, x):
        return self.encoder(x)

    def likelihood(self, z):
        return self.decoder(z)

    def prior(self):
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def init_params(self, key):
        return self.init(key, jnp.zeros(self.event_shape))

    def oracle(self, params) -> LinearGaussian:
        dec = params["params"]["decoder"]
        return LinearGaussian(dec["W"], dec["b"], self.sigma)

    def exact_params(self, key):
        """Parameters whose W has orthogonal columns (so p(z|x) is diagonal) and whose
        encoder computes the exact posterior p(z|x) for every x."""
        k1, k2, k3 = jax.random.split(key, 3)
        Q, _ = jnp.linalg.qr(jax.random.normal(k1, (self.data_dim, self.latent_dim)))
        W = Q * jnp.linspace(0.5, 2.0, self.latent_dim)
        b = jax.random.normal(k2, (self.data_dim,))
        S = 1.0 / (1.0 + jnp.sum(W ** 2, axis=0) / self.sigma ** 2)        # diag of p(z|x) cov
        A = S[:, None] * W.T / self.sigma ** 2
        enc = {"A": A, "c": -A @ b, "log_scale": 0.5 * jnp.log(S)}
        return {"params": {"encoder": enc, "decoder": {"W": W, "b": b}}}


def perturb(params, key, scale):
    """params + scale * N(0, 1) on every leaf (a q away from the exact posterior)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [v + scale * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)])


def flat_draws(tree) -> np.ndarray:
    """``[M, P]``: a pytree of M draws per leaf (leading axis) as one matrix."""
    leaves = jax.tree_util.tree_leaves(tree)
    return np.concatenate([np.asarray(v).reshape(v.shape[0], -1) for v in leaves], axis=-1)
