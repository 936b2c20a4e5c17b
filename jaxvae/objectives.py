"""Per-example variational bounds on log p(x): log-weights, ELBO, IWAE.

Every function here works on a single example: a posterior ``q`` over
``z: [latent_dim]``, a prior of the same event shape, and the log-likelihood
``log_likelihood(z) -> scalar`` of that example. Vectorize over a batch with
``jax.vmap`` (or use :func:`jaxvae.batched`); all functions are pure and jit-able.
Results are in nats per example; losses are their negated batch mean.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

from jaxvae import _checks
from jaxvae.types import Array, LogLikelihood, PRNGKey

__all__ = [
    "Samples",
    "sample_terms",
    "log_joint",
    "log_weights",
    "log_mean_exp",
    "elbo",
    "iwae_bound",
    "kl_divergence",
    "gaussian_kl",
    "kl_per_unit",
    "diag_gaussian_params",
]


class Samples(NamedTuple):
    """k samples z_i ~ q(z|x) and the three log-densities at them (nats), for one x."""

    z: Array               # [k, *latent]
    log_likelihood: Array  # [k]  log p(x|z_i)
    log_prior: Array       # [k]  log p(z_i)
    log_q: Array           # [k]  log q(z_i|x)

    @property
    def log_w(self) -> Array:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x): ``[k]``."""
        return self.log_likelihood + self.log_prior - self.log_q


def log_joint(prior: distrax.Distribution, log_likelihood: LogLikelihood,
              z: Array) -> tuple[Array, Array]:
    """(log p(x|z_i), log p(z_i)) for ``z: [k, *latent]``, each ``[k]`` (nats).

    ``log_likelihood`` is vmapped over the k samples and must return a scalar per z.

    Args: ``prior`` p(z) over ``[*latent]``; ``log_likelihood: z -> log p(x|z)``;
      ``z: [k, *latent]``.

    Returns: ``(log_px_z, log_pz)``, each ``[k]`` in nats.
    """
    log_px_z = jax.vmap(log_likelihood)(z)
    if log_px_z.shape != z.shape[:1]:
        raise ValueError(
            "log_likelihood(z) must return a scalar for one z of shape "
            f"{tuple(prior.event_shape)}, got shape {log_px_z.shape[1:]}")
    return log_px_z, prior.log_prob(z)


def sample_terms(key: PRNGKey, q: distrax.Distribution, prior: distrax.Distribution,
                 log_likelihood: LogLikelihood, num_samples: int = 1) -> Samples:
    """Draws z_1..z_k ~ q(z|x) and evaluates log p(x|z_i), log p(z_i), log q(z_i|x).

    The one sampling primitive under every objective and estimator: z is reparameterized
    (``q.sample_and_log_prob``), so gradients flow through z and q's parameters.

    Args:
      key: PRNG key.
      q: posterior for one example, event shape ``[*latent]`` (batch shape ``()``).
      prior: p(z), same event shape as ``q``.
      log_likelihood: ``z: [*latent] -> log p(x|z)``, a scalar; vmapped over the k samples.
      num_samples: k >= 1.

    A posterior that draws the decoder's output as it samples (DRAW) may provide
    ``sample_and_log_likelihood(key, k) -> (z, log_q, log_px_z)``: it is used, with the
    same draws and values, when ``log_likelihood`` is the model's own, the one
    :func:`jaxvae.model_terms` built for this very ``q`` (its ``posterior`` attribute);
    any other ``log_likelihood`` is evaluated as given.

    Returns:
      :class:`Samples` with ``z: [k, *latent]`` and three ``[k]`` arrays in nats.
    """
    _checks.num_samples(num_samples)
    _checks.same_event_shape(q, prior)
    if getattr(log_likelihood, "posterior", None) is q and \
            hasattr(q, "sample_and_log_likelihood"):     # q decodes as it samples (DRAW)
        z, log_q, log_px_z = q.sample_and_log_likelihood(key, num_samples)
        return Samples(z, log_px_z, prior.log_prob(z), log_q)
    z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
    log_px_z, log_pz = log_joint(prior, log_likelihood, z)
    return Samples(z, log_px_z, log_pz, log_q)


def log_weights(key: PRNGKey, q: distrax.Distribution, prior: distrax.Distribution,
                log_likelihood: LogLikelihood, num_samples: int = 1) -> Array:
    r"""Importance log-weights of k samples from q.

    .. math::

        \log w_i = \log p(x \mid z_i) + \log p(z_i) - \log q(z_i \mid x),
        \qquad z_i \sim q(z \mid x),\ i = 1..k.

    Args: as :func:`sample_terms` (``q`` and ``prior`` over ``[*latent]``, k >= 1).

    Returns:
      ``log_w: [k]`` in nats.

    References:
      Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, eq. (8).
    """
    return sample_terms(key, q, prior, log_likelihood, num_samples).log_w


def log_mean_exp(log_w: Array, axis: int = 0) -> Array:
    """log (1/k) sum_i exp(log_w_i) along ``axis``, computed stably with logsumexp.

    Args: ``log_w: [..., k, ...]`` log-weights (nats); ``axis`` the k axis.

    Returns: ``log_w`` reduced over ``axis`` (nats).
    """
    k = log_w.shape[axis]
    return jax.nn.logsumexp(log_w, axis=axis) - math.log(k)


def iwae_bound(key: PRNGKey, q: distrax.Distribution, prior: distrax.Distribution,
               log_likelihood: LogLikelihood, num_samples: int = 1) -> Array:
    r"""Importance-weighted bound.

    .. math::

        \mathcal{L}_k = \log \frac{1}{k} \sum_{i=1}^k w_i \;\le\; \log p(x),

    with :math:`w_i` as in :func:`log_weights`.

    E[L_k] is non-decreasing in k and tends to log p(x); L_1 is the ELBO, on the same key
    exactly the Monte Carlo ELBO:

    >>> import jax, jax.numpy as jnp, distrax, jaxvae
    >>> gauss = lambda m, s: distrax.Independent(distrax.Normal(m, s), 1)
    >>> q, prior = gauss(jnp.ones(2), 0.5 * jnp.ones(2)), gauss(jnp.zeros(2), jnp.ones(2))
    >>> log_lik = lambda z: -0.5 * jnp.sum((z - 2.0) ** 2)
    >>> key = jax.random.key(0)
    >>> a = jaxvae.iwae_bound(key, q, prior, log_lik, num_samples=1)
    >>> b = jaxvae.elbo(key, q, prior, log_lik, num_samples=1)
    >>> bool(jnp.allclose(a, b, rtol=1e-6))
    True

    Args: as :func:`sample_terms`.

    Returns: a scalar, nats for this example.

    References:
      Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, eq. (8).
    """
    return log_mean_exp(log_weights(key, q, prior, log_likelihood, num_samples))


def elbo(key: PRNGKey, q: distrax.Distribution, prior: distrax.Distribution,
         log_likelihood: LogLikelihood, num_samples: int = 1, *,
         analytic_kl: bool = False, beta: float | Array = 1.0) -> Array:
    r"""Evidence lower bound with a k-sample Monte Carlo average and a KL weight beta.

    .. math::

        \mathrm{ELBO}_\beta = \frac{1}{k} \sum_{i=1}^k \log p(x \mid z_i)
        - \beta\, \mathrm{KL}\big(q(z \mid x) \,\|\, p(z)\big),
        \qquad z_i \sim q(z \mid x).

    With ``analytic_kl=False`` the KL is the Monte Carlo estimate
    (1/k) sum_i [log q(z_i|x) - log p(z_i)] on the same samples; with
    ``analytic_kl=True`` it is the closed form (diagonal Gaussian q and prior,
    see :func:`kl_divergence`). beta = 1 gives the ELBO (a bound on log p(x));
    other values give the beta-VAE / rate-distortion objective, and a traced
    beta (e.g. from :func:`jaxvae.schedules.linear_annealing`) gives KL annealing
    without retracing. With one sample and the same key it equals the IWAE bound L_1:

    >>> import jax, jax.numpy as jnp, distrax, jaxvae
    >>> gauss = lambda m, s: distrax.Independent(distrax.Normal(m, s), 1)
    >>> q, prior = gauss(jnp.zeros(3), jnp.ones(3)), gauss(jnp.zeros(3), jnp.ones(3))
    >>> log_lik = lambda z: jnp.sum(z)
    >>> key = jax.random.key(1)
    >>> bool(jnp.allclose(jaxvae.elbo(key, q, prior, log_lik),
    ...                   jaxvae.iwae_bound(key, q, prior, log_lik), rtol=1e-6))
    True

    Args: as :func:`sample_terms`, plus ``analytic_kl`` and ``beta`` (a float or a traced
      scalar).

    Returns: a scalar, nats for this example.

    References:
      Kingma & Welling (2014), Auto-Encoding Variational Bayes, eq. (3) and (10);
      Higgins et al. (2017), beta-VAE.
    """
    t = sample_terms(key, q, prior, log_likelihood, num_samples)
    if analytic_kl:
        kl = kl_divergence(q, prior)
    else:
        kl = jnp.mean(t.log_q - t.log_prior)
    return jnp.mean(t.log_likelihood) - beta * kl


def gaussian_kl(mean_q: Array, scale_q: Array, mean_p: Array | float = 0.0,
                scale_p: Array | float = 1.0) -> Array:
    """KL(N(mean_q, scale_q^2) || N(mean_p, scale_p^2)) for diagonal Gaussians.

    KL = sum_j [ log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2 ].

    Args: arrays broadcastable to ``[*batch, latent]``; scales must be positive.

    Returns: the KL summed over the last axis, shape ``[*batch]``, in nats.

    References: Kingma & Welling (2014), Appendix B.
    """
    return jnp.sum(_gaussian_kl_terms(mean_q, scale_q, mean_p, scale_p), axis=-1)


def _gaussian_kl_terms(mean_q, scale_q, mean_p, scale_p):
    var_ratio = jnp.square(scale_q / scale_p)
    mean_term = jnp.square((mean_q - mean_p) / scale_p)
    return 0.5 * (var_ratio + mean_term - 1.0 - jnp.log(var_ratio))


def kl_per_unit(q: distrax.Distribution, prior: distrax.Distribution) -> Array:
    """KL(q(z_j|x) || p(z_j)) of each latent unit j, in closed form (nats).

    For diagonal Gaussians the KL is a sum over units; its terms are the units' own KLs,
    which free bits (Kingma et al., 2016) and collapse diagnostics read one by one.

    Args: ``q`` and ``prior``, diagonal Gaussians over ``[latent]`` (see
      :func:`diag_gaussian_params`). Returns: ``[latent]`` nats; TypeError for other
      distributions.
    """
    params_q, params_p = diag_gaussian_params(q), diag_gaussian_params(prior)
    if params_q is None or params_p is None:
        raise TypeError(
            "a per-unit KL needs a diagonal Gaussian posterior and prior "
            "(MultivariateNormalDiag or Independent(Normal)), got q: "
            f"{type(q).__name__}, prior: {type(prior).__name__}")
    return _gaussian_kl_terms(*params_q, *params_p)


def diag_gaussian_params(dist: distrax.Distribution) -> tuple[Array, Array] | None:
    """``(loc, scale)`` of a diagonal Gaussian over one event axis, else None.

    Recognizes ``distrax.MultivariateNormalDiag`` and ``Independent(Normal)`` with one
    reinterpreted axis.

    Args: ``dist``, any distrax distribution.

    Returns: ``(loc, scale)``, each ``[*batch, latent]``, or None for other distributions.
    """
    if isinstance(dist, distrax.MultivariateNormalDiag):
        return dist.loc, dist.scale_diag
    if isinstance(dist, distrax.Independent) and isinstance(dist.distribution, distrax.Normal) \
            and len(dist.event_shape) == 1:
        return dist.distribution.loc, dist.distribution.scale
    return None


def kl_divergence(q: distrax.Distribution, prior: distrax.Distribution) -> Array:
    """KL(q || prior) in closed form, nats.

    Diagonal Gaussians (``distrax.MultivariateNormalDiag`` or ``Independent(Normal)``
    with one event axis) use :func:`gaussian_kl`; other pairs fall back to distrax's
    registered KL and raise ``TypeError`` if there is none (use the Monte Carlo KL).

    Args: ``q`` and ``prior`` for one example, the same event shape, batch shape ``()``.

    Returns: a scalar, nats.

    References: Kingma & Welling (2014), Auto-Encoding Variational Bayes, Appendix B.
    """
    _checks.same_event_shape(q, prior)
    params_q, params_p = diag_gaussian_params(q), diag_gaussian_params(prior)
    if params_q is not None and params_p is not None:
        return gaussian_kl(*params_q, *params_p)
    try:
        return q.kl_divergence(prior)
    except NotImplementedError as err:
        raise TypeError(
            f"no closed-form KL between {type(q).__name__} and {type(prior).__name__}; "
            "use analytic_kl=False (Monte Carlo KL)") from err
