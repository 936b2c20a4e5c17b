"""Autoencoders on a VAE's own networks, and the ELBO with its two terms weighted apart.

The same encoder and decoder train as three different objects, so that what the objective
does to the latent space can be seen with everything else fixed:

    plain AE:      loss = -log p(x | z = mu(x)),     mu(x) = E_q[z|x], the encoder's mean
    denoising AE:  loss = -log p(x | z = mu(x~)),    x~ ~ C(x~ | x), a corruption of x
    weighted ELBO: loss = -(a E_q[log p(x|z)] - b KL(q(z|x) || p(z)))

The autoencoders use only the mean of q (its scale gets no gradient); their loss is a
reconstruction error in nats per example (for Bernoulli pixels, the cross-entropy). They
give no density and no prior to sample from: a Gaussian fitted to their codes is the usual
stand-in (see ``examples/ae_vs_vae.py``). The weighted ELBO is the VAE-intuition talk's
triptych: (a, b) = (1, 0) reconstruction only, (0, 1) KL only (every q(z|x) becomes the
prior), (1, 1) both, the ELBO itself; (1, beta) is the beta-VAE.

Denoising corruption (Vincent et al., 2008): ``"mask"`` zeroes each input value with
probability ``level`` (any data); ``"gaussian"`` adds N(0, level^2) noise and clips to
[0, 1] (data in [0, 1] only). The target is always the clean x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxvae import _checks, objectives, terms
from jaxvae.types import Array, PRNGKey

__all__ = ["CORRUPTIONS", "corrupt", "make_autoencoder_loss", "make_weighted_elbo_loss"]

#: denoising corruptions C(x~|x)
CORRUPTIONS = ("mask", "gaussian")


def corrupt(key: PRNGKey, x: Array, kind: str, level: float) -> Array:
    """A corrupted copy x~ ~ C(x~|x) of a batch or example in [0, 1].

    Args: ``key``; ``x: [...]`` floats in [0, 1]; ``kind`` in :data:`CORRUPTIONS`;
      ``level`` the masking probability in [0, 1) or the noise's standard deviation > 0.
    Returns: float32 array of the shape of ``x``.
    """
    x = jnp.asarray(x, jnp.float32)
    if kind == "mask":
        if not 0.0 <= level < 1.0:
            raise ValueError(f"mask level must be a probability in [0, 1), got {level}")
        return jnp.where(jax.random.uniform(key, x.shape) < level, 0.0, x)
    if kind == "gaussian":
        if not level > 0.0:
            raise ValueError(f"gaussian noise level must be > 0, got {level}")
        return jnp.clip(x + level * jax.random.normal(key, x.shape), 0.0, 1.0)
    raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")


def code(q) -> Array:
    """The autoencoder's code: the mean of q(z|x); TypeError when q has no closed-form mean."""
    try:
        return q.mean()
    except NotImplementedError as err:
        raise TypeError(f"an autoencoder needs the encoder's mean, and {type(q).__name__} has "
                        "no closed form") from err


def make_autoencoder_loss(model, corruption: str | None = None, level: float = 0.0):
    """The (denoising) autoencoder loss on ``model``'s encoder mean and decoder.

    loss = -mean_batch log p(x | z = E_q[z|x~]), with x~ = x (plain) or a draw of
    :func:`corrupt` (denoising; one corruption per example and step, from ``key``).

    Args: ``model`` (the model contract, e.g. :func:`jaxvae.iwae_mlp`); ``corruption`` None
      or one of :data:`CORRUPTIONS`; ``level`` its level.
    Returns: ``loss(params, batch, key) -> (loss, {"reconstruction": mean log p(x|z)})``,
      nats per example; ``batch`` as in :func:`jaxvae.make_objective` (a condition is
      passed on).
    """
    if corruption is not None:
        corrupt(jax.random.PRNGKey(0), jnp.zeros(1), corruption, level)   # checks the settings

    def per_example(params, x, key, *condition):
        if corruption == "gaussian" and jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError("gaussian corruption is for data in [0, 1]; integer (8-bit) data "
                             "take corruption='mask'")
        m = terms.bind(model, params, condition=condition[0] if condition else None)
        x_in = x if corruption is None else corrupt(key, x, corruption, level).astype(x.dtype)
        return m.likelihood(code(m.posterior(x_in))).log_prob(x)

    def loss(params, batch, key):
        rec = jnp.mean(terms.map_examples(model, per_example, params, batch, key))
        return -rec, {"reconstruction": rec}

    return loss


def make_weighted_elbo_loss(model, reconstruction_weight: float = 1.0,
                            kl_weight: float = 1.0, num_samples: int = 1,
                            analytic_kl: bool = True):
    """-(a E_q[log p(x|z)] - b KL(q(z|x) || p(z))), averaged over the batch.

    Args: ``model``; ``reconstruction_weight`` a >= 0 and ``kl_weight`` b >= 0 (not both
      0); ``num_samples`` k of the Monte Carlo reconstruction term; ``analytic_kl`` the
      closed-form KL (else the Monte Carlo estimate on the same samples).
    Returns: ``loss(params, batch, key) -> (loss, info)`` with ``info`` the batch means of
      ``reconstruction`` E_q[log p(x|z)], ``kl`` and ``elbo`` (their difference, a bound on
      log p(x) whatever the weights), all in nats per example.
    """
    _checks.num_samples(num_samples)
    if reconstruction_weight < 0 or kl_weight < 0 or reconstruction_weight + kl_weight == 0:
        raise ValueError("reconstruction_weight and kl_weight must be >= 0 and not both 0, "
                         f"got {reconstruction_weight} and {kl_weight}")

    def per_example(params, x, key, *condition):
        q, prior, log_lik = terms.model_terms(model, params, x,
                                              condition=condition[0] if condition else None)
        t = objectives.sample_terms(key, q, prior, log_lik, num_samples)
        kl = objectives.kl_divergence(q, prior) if analytic_kl else jnp.mean(t.log_q
                                                                             - t.log_prior)
        return jnp.mean(t.log_likelihood), kl

    def loss(params, batch, key):
        rec, kl = terms.map_examples(model, per_example, params, batch, key)
        rec, kl = jnp.mean(rec), jnp.mean(kl)
        value = -(reconstruction_weight * rec - kl_weight * kl)
        return value, {"reconstruction": rec, "kl": kl, "elbo": rec - kl}

    return loss
