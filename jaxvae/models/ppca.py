"""Probabilistic PCA with a fixed noise level: exact likelihood, closed-form ML, and EM.

The generative half of :class:`jaxvae.models.LinearGaussianVAE`, on its decoder parameters
``W: [D, d]`` and ``b: [D]``:

    p(z) = N(0, I_d),  p(x|z) = N(W z + b, sigma^2 I_D),
    so  p(x) = N(b, C),  C = W W^T + sigma^2 I_D.

The observation noise ``sigma`` is FIXED (a positive scalar, as in the model), never
fitted: every function below optimizes or differentiates in W and b only. The exact
posterior is p(z|x) = N(m, S) with S = (I + W^T W / sigma^2)^-1, m = S W^T (x - b) / sigma^2.

These functions give the ground truth that a VAE trained on the ELBO is compared with:
the maximum-likelihood solution in closed form, EM (coordinate ascent on the ELBO with the
exact posterior as q), and the expected gradient of the joint under p(z|x), which equals
the gradient of log p(x) (Fisher's identity, the "EG identity"). All log-likelihoods are in
nats per example; all functions are pure, work in the dtype of ``x`` and are jit-able.

References:
  Tipping & Bishop (1999), Probabilistic principal component analysis, JRSS B 61(3).
  Dempster, Laird & Rubin (1977), Maximum likelihood from incomplete data via the EM ...
  Neal & Hinton (1998), A view of the EM algorithm that justifies incremental, sparse, ...
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks
from jaxvae.types import Array

__all__ = [
    "ppca_log_likelihood",
    "ppca_maximum_likelihood",
    "ppca_em_step",
    "ppca_em",
    "expected_joint_gradient",
]


def _data(x) -> Array:
    """``x`` as a float ``[N, D]`` array, N >= 1, finite when concrete."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array [N, D] (N examples of dimension D), "
                         f"got shape {tuple(x.shape)}")
    _checks.batch(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _sigma(sigma, dtype) -> Array:
    """The fixed noise scale as a scalar of ``dtype``; finite and > 0 when concrete."""
    if not isinstance(sigma, jax.core.Tracer):
        value = np.asarray(sigma)
        if value.ndim != 0 or not (np.isfinite(value) and value > 0):
            raise ValueError(f"sigma must be a finite scalar > 0 (the fixed noise scale), "
                             f"got {sigma!r}")
    return jnp.asarray(sigma, dtype)


def _decoder(W, b, sigma, data_dim: int, dtype):
    """Checks ``W: [D, d]``, ``b: [D]`` and ``sigma > 0``; casts all three to ``dtype``."""
    W, b = jnp.asarray(W, dtype), jnp.asarray(b, dtype)
    if W.ndim != 2 or W.shape[0] != data_dim or W.shape[1] < 1:
        raise ValueError(f"W must have shape [D, d] = [{data_dim}, d >= 1] (D from x), "
                         f"got {tuple(W.shape)}")
    return W, _checks.vector(b, "b", data_dim), _sigma(sigma, dtype)


def _posterior_cov(W: Array, sigma: Array) -> Array:
    """S = (I + W^T W / sigma^2)^-1: ``[d, d]``, the same for every x."""
    d = W.shape[1]
    precision = jnp.eye(d, dtype=W.dtype) + W.T @ W / sigma ** 2
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(precision),
                                      jnp.eye(d, dtype=W.dtype))


@jax.jit
def _log_likelihood(W: Array, b: Array, sigma: Array, x: Array) -> Array:
    D = x.shape[1]
    cov = W @ W.T + sigma ** 2 * jnp.eye(D, dtype=x.dtype)
    L = jnp.linalg.cholesky(cov)
    y = jax.scipy.linalg.solve_triangular(L, (x - b).T, lower=True)       # [D, N]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(L)))
    return -0.5 * (D * math.log(2 * math.pi) + log_det + jnp.mean(jnp.sum(y ** 2, axis=0)))


def ppca_log_likelihood(W, b, sigma, x) -> Array:
    """Average exact log-likelihood (1/N) sum_n log N(x_n; b, W W^T + sigma^2 I).

    Computed with one Cholesky factor L of C = W W^T + sigma^2 I (D x D): log det C =
    2 sum log diag L and the quadratic form by a triangular solve, no explicit inverse.
    Equals the mean of :meth:`LinearGaussianVAE.log_marginal` over the rows of ``x``.

    Args:
      W: ``[D, d]`` decoder weights; b: ``[D]`` decoder bias; sigma: the fixed noise scale
        (scalar > 0); x: ``[N, D]`` data.

    Returns:
      A scalar, nats per example.
    """
    x = _data(x)
    W, b, sigma = _decoder(W, b, sigma, x.shape[1], x.dtype)
    return _log_likelihood(W, b, sigma, x)


def ppca_maximum_likelihood(x, latent_dim: int, sigma) -> tuple[Array, Array]:
    """The maximum-likelihood (W, b) of p(x) = N(b, W W^T + sigma^2 I) with sigma FIXED.

    b_ML = (1/N) sum_n x_n;  W_ML = U_d (Lambda_d - sigma^2 I)_+^{1/2},

    where Lambda_d holds the d largest eigenvalues of the ML sample covariance
    (1/N) sum_n (x_n - b_ML)(x_n - b_ML)^T and U_d their eigenvectors; an eigenvalue below
    sigma^2 gives a zero column. W_ML is unique up to W_ML R for any orthogonal R (and the
    signs of the eigenvectors); it is the global maximum of :func:`ppca_log_likelihood`.

    Args:
      x: ``[N, D]`` data; latent_dim: d, an int with 1 <= d < D; sigma: the fixed noise
        scale (scalar > 0).

    Returns:
      ``(W_ml: [D, d], b_ml: [D])`` in the dtype of ``x`` (float64 under ``jax_enable_x64``
      for float64 data).

    References:
      Tipping & Bishop (1999), Probabilistic principal component analysis, section 3.2.
    """
    x = _data(x)
    D = x.shape[1]
    d = _checks.integer(latent_dim, "latent_dim", 1)
    if d >= D:
        raise ValueError(f"latent_dim must be < D = {D} (the data dimension), got {d}")
    return _maximum_likelihood(x, _sigma(sigma, x.dtype), d)


@functools.partial(jax.jit, static_argnames="latent_dim")
def _maximum_likelihood(x: Array, sigma: Array, latent_dim: int) -> tuple[Array, Array]:
    D = x.shape[1]
    b = jnp.mean(x, axis=0)
    centered = x - b
    eigenvalues, eigenvectors = jnp.linalg.eigh(centered.T @ centered / x.shape[0])
    top = jnp.arange(D - 1, D - 1 - latent_dim, -1)         # eigh sorts in ascending order
    scale = jnp.sqrt(jnp.maximum(eigenvalues[top] - sigma ** 2, 0.0))
    return eigenvectors[:, top] * scale, b


@jax.jit
def _em_step(W: Array, b: Array, sigma: Array, x: Array) -> tuple[Array, Array]:
    N, d = x.shape[0], W.shape[1]
    S = _posterior_cov(W, sigma)
    m = (x - b) @ W @ S / sigma ** 2                                       # [N, d]
    sum_m = jnp.sum(m, axis=0)
    second = jnp.block([[N * S + m.T @ m, sum_m[:, None]],                 # sum E[z~ z~^T]
                        [sum_m[None, :], jnp.full((1, 1), N, x.dtype)]])
    cross = jnp.concatenate([x.T @ m, jnp.sum(x, axis=0)[:, None]], axis=1)   # [D, d + 1]
    Wb = jnp.linalg.solve(second, cross.T).T                   # second is symmetric
    return Wb[:, :d], Wb[:, d]


def ppca_em_step(W, b, sigma, x) -> tuple[Array, Array]:
    """One EM iteration for (W, b) with sigma fixed.

    E-step: q(z|x_n) = p(z|x_n) = N(m_n, S), S = (I + W^T W / sigma^2)^-1,
    m_n = S W^T (x_n - b) / sigma^2. M-step: with z~ = [z, 1] and Theta = [W, b] ``[D, d+1]``,
    maximize sum_n E_q[log p(x_n, z)] = -1/(2 sigma^2) sum_n E_q||x_n - Theta z~||^2 + const:

        Theta_new = (sum_n x_n E[z~_n]^T) (sum_n E[z~_n z~_n^T])^-1,
        E[z~ z~^T] = [[S + m m^T, m], [m^T, 1]].

    EM is coordinate ascent on the ELBO L(q, theta) = log p(x) - KL(q || p(z|x)): the
    E-step sets q to the exact posterior, so L = log p(x); the M-step raises L in theta
    with q held; hence log p(x; theta_new) >= L(q, theta_new) >= L(q, theta) = log p(x;
    theta): the log-likelihood never decreases.

    Args: ``W: [D, d]``; ``b: [D]``; ``sigma``, the fixed noise scale; ``x: [N, D]``.

    Returns: ``(W_new: [D, d], b_new: [D])``.

    References:
      Dempster, Laird & Rubin (1977); Neal & Hinton (1998); Tipping & Bishop (1999).
    """
    x = _data(x)
    W, b, sigma = _decoder(W, b, sigma, x.shape[1], x.dtype)
    return _em_step(W, b, sigma, x)


@functools.partial(jax.jit, static_argnames="num_steps")
def _em(W: Array, b: Array, sigma: Array, x: Array, num_steps: int):
    def step(carry, _):
        W_new, b_new = _em_step(*carry, sigma, x)
        return (W_new, b_new), _log_likelihood(W_new, b_new, sigma, x)

    start = _log_likelihood(W, b, sigma, x)
    (W, b), history = jax.lax.scan(step, (W, b), None, length=num_steps)
    return W, b, jnp.concatenate([start[None], history])


def ppca_em(W0, b0, sigma, x, num_steps: int) -> tuple[Array, Array, Array]:
    """``num_steps`` iterations of :func:`ppca_em_step` from (W0, b0), in one jitted scan.

    Args:
      W0: ``[D, d]`` initial weights; b0: ``[D]`` initial bias; sigma: the fixed noise
        scale; x: ``[N, D]`` data; num_steps: an int >= 0.

    Returns:
      ``(W: [D, d], b: [D], history: [num_steps + 1])``: the final parameters and
      :func:`ppca_log_likelihood` (nats per example) at the start and after each step;
      non-decreasing up to rounding.
    """
    x = _data(x)
    W0, b0, sigma = _decoder(W0, b0, sigma, x.shape[1], x.dtype)
    return _em(W0, b0, sigma, x, _checks.integer(num_steps, "num_steps", 0))


def expected_joint_gradient(W, b, sigma, x) -> tuple[Array, Array]:
    """E_{z ~ p(z|x)}[grad_(W, b) log p(x, z)] in closed form, for one example.

    With log p(x, z) = log N(x; W z + b, sigma^2 I) + log N(z; 0, I) and p(z|x) = N(m, S):

        grad_W = ((x - b) m^T - W (S + m m^T)) / sigma^2,   grad_b = (x - b - W m) / sigma^2.

    By Fisher's identity (the "EG identity") this equals grad_(W, b) log p(x): the
    gradient of the marginal likelihood is the expected gradient of the joint under the
    exact posterior. So with q(z|x) = p(z|x) the ELBO's gradient in theta is grad log p(x).

    Args: ``W: [D, d]``; ``b: [D]``; ``sigma``, the fixed noise scale; ``x: [D]``, one example.

    Returns: ``(grad_W: [D, d], grad_b: [D])``, nats per unit of each parameter.

    References:
      Fisher (1925), Theory of statistical estimation; Cappé, Moulines & Rydén (2005),
      Inference in Hidden Markov Models, "Fisher's identity".
    """
    x = _data(_checks.vector(x, "x")[None])[0]
    return _expected_joint_gradient(*_decoder(W, b, sigma, x.shape[0], x.dtype), x)


@jax.jit
def _expected_joint_gradient(W: Array, b: Array, sigma: Array, x: Array):
    S = _posterior_cov(W, sigma)
    r = x - b
    m = S @ W.T @ r / sigma ** 2
    grad_W = (jnp.outer(r, m) - W @ (S + jnp.outer(m, m))) / sigma ** 2
    return grad_W, (r - W @ m) / sigma ** 2
