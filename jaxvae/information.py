"""How much information the latent code carries: I_q(x; z) under the encoder.

    I_q(x; z) = E_x E_{q(z|x)} [log q(z|x) - log q(z)],   q(z) = E_x q(z|x),

with q(z) replaced by the mixture of the N evaluated posteriors (Hoffman & Johnson, 2016;
the estimate He et al., 2019 use to watch posterior collapse). With the rate
R = E_x KL(q(z|x) || p(z)), ``R = I_q(x; z) + KL(q(z) || p(z))``: a rate that is all
mutual information means the code is used; I_q near 0 means the posterior has collapsed
onto one distribution whatever x. The estimate is at most log N (N examples).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, objectives, terms
from jaxvae.types import Array, Params, PRNGKey

__all__ = ["mutual_information"]


def _posterior_params(model, params, x, condition):
    def one(x_i, *c):
        q = terms.bind(model, params, condition=c[0] if c else None).posterior(x_i)
        found = objectives.diag_gaussian_params(q)
        if found is None:
            raise TypeError(f"mutual_information needs a diagonal Gaussian q(z|x), got "
                            f"{type(q).__name__}")
        return found

    extra = () if condition is None else (condition,)
    return jax.vmap(one)(x, *extra)


_posterior_params_jit = jax.jit(_posterior_params, static_argnums=0)


def _log_normal(z, loc, scale):
    """log N(z_i; loc_n, diag scale_n^2) for every pair: ``[I, N]``."""
    u = (z[:, None, :] - loc[None]) / scale[None]
    return jnp.sum(-0.5 * u ** 2 - jnp.log(scale)[None] - 0.5 * math.log(2 * math.pi), -1)


@jax.jit
def _estimate(key, loc, scale):
    z = loc + scale * jax.random.normal(key, loc.shape)          # one z_i ~ q(z|x_i)
    log_q = _log_normal(z, loc, scale)                            # [N, N]
    own = jnp.diagonal(log_q)
    aggregate = jax.nn.logsumexp(log_q, axis=1) - math.log(loc.shape[0])
    return jnp.mean(own - aggregate)


def mutual_information(model, params: Params, x: Array, key: PRNGKey, *,
                       condition: Array | None = None, num_draws: int = 10) -> float:
    """The encoder's mutual information I_q(x; z) in nats, estimated on ``x``.

    Each of ``num_draws`` rounds draws one z_i ~ q(z|x_i) per example and scores it under
    every example's posterior (an N x N matrix: keep N to a few thousand); the rounds are
    averaged.

    Args:
      model: with a diagonal Gaussian q(z|x); params: its parameters.
      x: ``[N, *event_shape]``, N >= 2. key: PRNG key.
      condition: ``[N, ...]`` conditions of a conditional model, or None.
      num_draws: rounds (>= 1).

    Returns: a float in nats, in [~0, log N] up to Monte Carlo error.

    References: Hoffman & Johnson (2016), ELBO surgery; He, Spokoyny, Neubig &
      Berg-Kirkpatrick (2019), Lagging Inference Networks and Posterior Collapse in VAEs.
    """
    _checks.batch(x, model.event_shape)
    num_draws = _checks.integer(num_draws, "num_draws")
    if x.shape[0] < 2:
        raise ValueError(f"mutual_information needs at least 2 examples, got {x.shape[0]}")
    loc, scale = _posterior_params_jit(model, params, jnp.asarray(x), condition)
    keys = jax.random.split(key, num_draws)
    return float(np.mean([float(_estimate(k, loc, scale)) for k in keys]))
