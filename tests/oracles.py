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
# The same model as a Flax VAE (jaxvae.models.LinearGaussianVAE) and helpers for the
# gradient-estimator tests.

import numpy as np  # noqa: E402

from jaxvae.models import LinearGaussianVAE  # noqa: E402,F401


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
