"""Per-example variational bounds on log p(x): log-weights, ELBO, IWAE.

Every function here works on a single example: a posterior ``q`` over
``z: [latent_dim]``, a prior of the same event shape, and the log-likelihood
``log_likelihood(z) -> scalar`` of that example. Vectorize over a batch with
``jax.vmap`` (or use :func:`jaxvae.batched`); all functions are pure and jit-able.
Results are in nats per example; losses are their negated batch mean.
"""

from __future__ import annotations

import math
from typing import Callable

import distrax
import jax
import jax.numpy as jnp

Array = jax.Array
LogLikelihood = Callable[[Array], Array]

__all__ = [
    "log_weights",
    "log_mean_exp",
    "elbo",
    "iwae_bound",
    "kl_divergence",
    "gaussian_kl",
    "linear_annealing",
]


def _check_num_samples(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(
            f"num_samples must be a Python int (it fixes array shapes), got {num_samples!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    return num_samples


def _check_event_shapes(q: distrax.Distribution, prior: distrax.Distribution) -> None:
    if tuple(q.event_shape) != tuple(prior.event_shape):
        raise ValueError(
            f"posterior q has event shape {tuple(q.event_shape)} but the prior has "
            f"{tuple(prior.event_shape)}; they must describe the same latent z")
    if tuple(q.batch_shape) != ():
        raise ValueError(
            f"q must describe one example (batch shape ()), got batch shape "
            f"{tuple(q.batch_shape)}; vmap the objective over the batch instead")


def _sample_terms(key, q, prior, log_likelihood, num_samples):
    """Draws z_1..z_k ~ q and returns (log p(x|z_i), log p(z_i), log q(z_i|x)), each [k]."""
    _check_num_samples(num_samples)
    _check_event_shapes(q, prior)
    z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
    log_pz = prior.log_prob(z)
    log_px_z = jax.vmap(log_likelihood)(z)
    if log_px_z.shape != (num_samples,):
        raise ValueError(
            "log_likelihood(z) must return a scalar for one z of shape "
            f"{tuple(q.event_shape)}, got shape {log_px_z.shape[1:]}")
    return log_px_z, log_pz, log_q


def log_weights(key: Array, q: distrax.Distribution, prior: distrax.Distribution,
                log_likelihood: LogLikelihood, num_samples: int = 1) -> Array:
    """Importance log-weights of k samples from q.

    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),   z_i ~ q(z|x), i = 1..k.

    Args:
      key: PRNG key.
      q: posterior for one example, event shape ``[*latent]`` (batch shape ``()``).
      prior: p(z), same event shape as ``q``.
      log_likelihood: ``z: [*latent] -> log p(x|z)``, a scalar; vmapped over the k samples.
      num_samples: k >= 1.

    Returns:
      ``log_w: [k]`` in nats.
    """
    log_px_z, log_pz, log_q = _sample_terms(key, q, prior, log_likelihood, num_samples)
    return log_px_z + log_pz - log_q


def log_mean_exp(log_w: Array, axis: int = 0) -> Array:
    """log (1/k) sum_i exp(log_w_i) along ``axis``, computed stably with logsumexp."""
    k = log_w.shape[axis]
    return jax.nn.logsumexp(log_w, axis=axis) - math.log(k)


def iwae_bound(key: Array, q: distrax.Distribution, prior: distrax.Distribution,
               log_likelihood: LogLikelihood, num_samples: int = 1) -> Array:
    """Importance-weighted bound (Burda, Grosse & Salakhutdinov, 2015).

    L_k = log (1/k) sum_{i=1}^k w_i  <=  log p(x),  with w_i as in :func:`log_weights`.

    E[L_k] is non-decreasing in k and tends to log p(x); L_1 is the ELBO.

    Returns: a scalar, nats for this example.
    """
    return log_mean_exp(log_weights(key, q, prior, log_likelihood, num_samples))


def elbo(key: Array, q: distrax.Distribution, prior: distrax.Distribution,
         log_likelihood: LogLikelihood, num_samples: int = 1, *,
         analytic_kl: bool = False, beta: float | Array = 1.0) -> Array:
    """Evidence lower bound with a k-sample Monte Carlo average and a KL weight beta.

    ELBO_beta = (1/k) sum_i log p(x|z_i) - beta * KL(q(z|x) || p(z)),  z_i ~ q(z|x).

    With ``analytic_kl=False`` the KL is the Monte Carlo estimate
    (1/k) sum_i [log q(z_i|x) - log p(z_i)] on the same samples; with
    ``analytic_kl=True`` it is the closed form (diagonal Gaussian q and prior,
    see :func:`kl_divergence`). beta = 1 gives the ELBO (a bound on log p(x));
    other values give the beta-VAE / rate-distortion objective, and a traced
    beta (e.g. from :func:`linear_annealing`) gives KL annealing without retracing.

    Returns: a scalar, nats for this example.
    """
    log_px_z, log_pz, log_q = _sample_terms(key, q, prior, log_likelihood, num_samples)
    if analytic_kl:
        kl = kl_divergence(q, prior)
    else:
        kl = jnp.mean(log_q - log_pz)
    return jnp.mean(log_px_z) - beta * kl


def gaussian_kl(mean_q: Array, scale_q: Array, mean_p: Array | float = 0.0,
                scale_p: Array | float = 1.0) -> Array:
    """KL(N(mean_q, scale_q^2) || N(mean_p, scale_p^2)) for diagonal Gaussians.

    KL = sum_j [ log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2 ].

    Args: arrays broadcastable to ``[*latent]``; scales must be positive.
    Returns: the KL summed over the last axis, shape ``[*batch]``, in nats.
    """
    var_ratio = jnp.square(scale_q / scale_p)
    mean_term = jnp.square((mean_q - mean_p) / scale_p)
    return 0.5 * jnp.sum(var_ratio + mean_term - 1.0 - jnp.log(var_ratio), axis=-1)


def _diag_gaussian_params(dist: distrax.Distribution):
    if isinstance(dist, distrax.MultivariateNormalDiag):
        return dist.loc, dist.scale_diag
    if isinstance(dist, distrax.Independent) and isinstance(dist.distribution, distrax.Normal) \
            and len(dist.event_shape) == 1:
        return dist.distribution.loc, dist.distribution.scale
    return None


def kl_divergence(q: distrax.Distribution, prior: distrax.Distribution) -> Array:
    """KL(q || prior) in closed form.

    Diagonal Gaussians (``distrax.MultivariateNormalDiag`` or ``Independent(Normal)``
    with one event axis) use :func:`gaussian_kl`; other pairs fall back to distrax's
    registered KL and raise ``TypeError`` if there is none (use the Monte Carlo KL).
    """
    _check_event_shapes(q, prior)
    params_q, params_p = _diag_gaussian_params(q), _diag_gaussian_params(prior)
    if params_q is not None and params_p is not None:
        return gaussian_kl(*params_q, *params_p)
    try:
        return q.kl_divergence(prior)
    except NotImplementedError as err:
        raise TypeError(
            f"no closed-form KL between {type(q).__name__} and {type(prior).__name__}; "
            "use analytic_kl=False (Monte Carlo KL)") from err


def linear_annealing(step: Array | int, warmup_steps: int, start: float = 0.0,
                     end: float = 1.0) -> Array:
    """KL weight rising linearly from ``start`` to ``end`` over ``warmup_steps`` steps.

    beta(t) = start + (end - start) * min(t / warmup_steps, 1)  (Bowman et al., 2016).
    ``step`` may be traced, so the schedule lives inside a jitted train step.
    """
    if warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be positive, got {warmup_steps}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
    return start + (end - start) * frac
