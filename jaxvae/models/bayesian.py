"""Bayesian dense layers with factorized Gaussian weight posteriors.

q(W) = prod_ij N(w_ij; mu_ij, sigma_ij^2) for a layer b = x W (+ bias, a point estimate),
with the minibatch gradient estimator chosen per layer (Kingma, Salimans & Welling, 2015):

* ``"local"``: the local reparameterization trick. For an input row x the pre-activation
  b_j = sum_i x_i w_ij is Gaussian, N(gamma_j, delta_j) with gamma = x mu and
  delta = x^2 sigma^2, so it is sampled directly, b = gamma + sqrt(delta) * zeta with
  zeta ~ N(0, 1) drawn per example and unit: independent noise per example (no
  covariance between the examples of a minibatch) at the cost of one extra matmul;
* ``"separate"``: a separate weight sample W_n = mu + sigma * eps_n for every example n:
  the same distribution of b and also independent, but B x in x out random numbers;
* ``"shared"``: one weight sample for the whole minibatch (the plain SGVB estimator): the
  examples' gradients are correlated through the shared W;
* ``"mean"``: no noise, b = x mu (e.g. for evaluation with the posterior mean).

Two layers:

* :class:`BayesianDense`: free sigma = exp(log_sigma) (positive by construction), with the
  closed-form KL to a N(0, prior_scale^2) prior (:func:`gaussian_weight_kl`).
* :class:`VariationalDropoutDense`: variational (Gaussian) dropout, sigma^2 = alpha mu^2
  with a learned alpha per weight (the paper's "variational dropout B", independent weight
  noise), with alpha <= 1 by construction, and the paper's approximation of the KL to the
  log-uniform prior (:func:`dropout_kl`).

The noise comes from the ``"noise"`` RNG stream: ``model.apply(params, x,
rngs={"noise": key})``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae import _checks

Array = jax.Array

__all__ = ["WEIGHT_NOISE", "BayesianDense", "VariationalDropoutDense", "BayesianMLP",
           "weight_kl", "gaussian_weight_kl", "dropout_kl", "sample_preactivations", "log_alpha",
           "DROPOUT_KL_COEFFS", "classification_loss"]

# The weight-noise estimators of a layer (not to be confused with jaxvae.ESTIMATORS, the
# gradient estimators of the VAE objectives).
WEIGHT_NOISE = ("local", "separate", "shared", "mean")
# -KL(q(w) || log-uniform prior) ~ const + 0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3
# (Kingma, Salimans & Welling 2015, eq. 24, for alpha <= 1).
DROPOUT_KL_COEFFS = (1.16145124, -1.50204118, 0.58629921)


def _check_estimator(estimator: str) -> str:
    if estimator not in WEIGHT_NOISE:
        raise ValueError(f"unknown weight estimator {estimator!r}; expected one of {WEIGHT_NOISE}")
    return estimator


def sample_preactivations(x: Array, mean: Array, var: Array, estimator: str,
                          key: Array | None) -> Array:
    """b = x W for W ~ N(mean, var) elementwise, by the chosen estimator.

    Args:
      x: inputs ``[batch, in]``.
      mean, var: ``[in, out]`` posterior means and variances of the weights.
      estimator: ``"local"``, ``"separate"``, ``"shared"`` or ``"mean"``.
      key: PRNG key (unused for ``"mean"``).

    Returns:
      ``[batch, out]`` pre-activations (without bias).

    References:
      Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick (``"local"``).
    """
    _check_estimator(estimator)
    if x.ndim != 2:
        raise ValueError(f"inputs must have shape [batch, in], got {x.shape}")
    if estimator == "mean":
        return x @ mean
    if estimator == "local":
        gamma = x @ mean
        delta = (x * x) @ var
        return gamma + jnp.sqrt(delta) * jax.random.normal(key, gamma.shape, gamma.dtype)
    if estimator == "shared":
        w = mean + jnp.sqrt(var) * jax.random.normal(key, mean.shape, mean.dtype)
        return x @ w
    eps = jax.random.normal(key, (x.shape[0], *mean.shape), mean.dtype)   # separate
    return jnp.einsum("bi,bio->bo", x, mean + jnp.sqrt(var) * eps)


def _check_width(module: nn.Module, x: Array, name: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{type(module).__name__} takes inputs [batch, in], got shape {x.shape}")
    if module.has_variable("params", name):
        width = module.get_variable("params", name).shape[0]
        if x.shape[-1] != width:
            raise ValueError(f"{type(module).__name__} {module.name!r} was built for inputs of "
                             f"width {width}, got width {x.shape[-1]}")


def _sample_with_bias(module: nn.Module, x: Array, mean: Array, var: Array) -> Array:
    """Pre-activations by ``module.estimator`` (noise from the "noise" stream) plus the
    module's point-estimate bias when ``module.use_bias``."""
    key = None if module.estimator == "mean" else module.make_rng("noise")
    out = sample_preactivations(x, mean, var, module.estimator, key)
    if module.use_bias:
        out = out + module.param("bias", nn.initializers.zeros, (module.features,))
    return out


class BayesianDense(nn.Module):
    """Dense layer with q(w_ij) = N(mu_ij, sigma_ij^2), sigma = exp(log_sigma).

    ``x: [batch, in] -> [batch, features]``. Parameters: ``kernel_mean``,
    ``kernel_log_sigma`` (``[in, features]``) and a point-estimate ``bias``.

    References: Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick.
    """

    features: int
    estimator: str = "local"
    init_log_sigma: float = -5.0
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Args: ``x: [batch, in]``; noise from the ``"noise"`` stream.

        Returns: ``[batch, features]`` sampled pre-activations plus bias.
        """
        _check_estimator(self.estimator)
        _check_width(self, x, "kernel_mean")
        shape = (x.shape[-1], self.features)
        mean = self.param("kernel_mean", self.kernel_init, shape)
        log_sigma = self.param("kernel_log_sigma", nn.initializers.constant(self.init_log_sigma),
                               shape)
        return _sample_with_bias(self, x, mean, jnp.exp(2.0 * log_sigma))


class VariationalDropoutDense(nn.Module):
    """Variational dropout: q(w_ij) = N(theta_ij, alpha_ij theta_ij^2), alpha learned.

    ``x: [batch, in] -> [batch, features]``. Parameters: ``kernel`` (theta),
    ``log_alpha_raw`` and ``bias``; log alpha = -softplus(-log_alpha_raw) <= 0, so
    alpha <= 1 (the range where the KL approximation holds) by construction, and
    sigma^2 = alpha theta^2 >= 0 for any parameter values.
    ``init_log_alpha`` sets the initial dropout rate (alpha = p / (1 - p) for binary
    dropout rate p; -inf for none).

    References: Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick.
    """

    features: int
    estimator: str = "local"
    init_log_alpha: float = -2.0
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Args: ``x: [batch, in]``; noise from the ``"noise"`` stream.

        Returns: ``[batch, features]`` sampled pre-activations plus bias.
        """
        _check_estimator(self.estimator)
        _check_width(self, x, "kernel")
        shape = (x.shape[-1], self.features)
        theta = self.param("kernel", self.kernel_init, shape)
        raw = self.param("log_alpha_raw",
                         nn.initializers.constant(_inverse_log_alpha(self.init_log_alpha)), shape)
        return _sample_with_bias(self, x, theta, jnp.exp(log_alpha(raw)) * theta * theta)


def log_alpha(raw: Array) -> Array:
    """log alpha = -softplus(-raw) = log sigmoid(raw), in (-inf, 0].

    Args: ``raw``, the ``log_alpha_raw`` parameter (any shape). Returns: log alpha, same shape.
    """
    return jax.nn.log_sigmoid(raw)


def _inverse_log_alpha(value: float) -> float:
    if not value < 0:
        raise ValueError(f"init_log_alpha must be < 0 (alpha < 1), got {value}")
    return value - math.log(-math.expm1(value))     # log sigmoid(raw) = value


class BayesianMLP(nn.Module):
    """Classifier ``x: [batch, *event] -> logits [batch, num_classes]`` of Bayesian layers.

    ``layer``: ``"dropout"`` (:class:`VariationalDropoutDense`) or ``"gaussian"``
    (:class:`BayesianDense`); ``estimator`` is used by every layer.
    """

    hidden: tuple = (1024, 1024)
    num_classes: int = 10
    layer: str = "dropout"
    estimator: str = "local"
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Args: ``x: [batch, *event]`` (flattened). Returns: logits ``[batch, num_classes]``."""
        kinds = {"dropout": VariationalDropoutDense, "gaussian": BayesianDense}
        if self.layer not in kinds:
            raise ValueError(f"unknown layer {self.layer!r}; expected one of {sorted(kinds)}")
        h = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            h = self.activation(kinds[self.layer](width, self.estimator, name=f"layer_{i}")(h))
        return kinds[self.layer](self.num_classes, self.estimator,
                                 name=f"layer_{len(self.hidden)}")(h)


def _layers(params, *names):
    """Every sub-dict of ``params`` that holds all of ``names``."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if all(n in node for n in names):
                found.append(node)
            else:
                for v in node.values():
                    walk(v)

    walk(params)
    return found


def gaussian_weight_kl(params, prior_scale: float = 1.0) -> Array:
    """sum over :class:`BayesianDense` weights of KL(N(mu, sigma^2) || N(0, prior_scale^2)).

    KL = log(prior_scale / sigma) + (sigma^2 + mu^2) / (2 prior_scale^2) - 1/2 per weight.

    Args: ``params``, a model's parameter tree; ``prior_scale`` > 0.
    Returns: a scalar, nats (0 when there is no such layer).
    """
    if not prior_scale > 0:
        raise ValueError(f"prior_scale must be positive, got {prior_scale}")
    total = jnp.zeros(())
    for layer in _layers(params, "kernel_mean", "kernel_log_sigma"):
        mu, log_sigma = layer["kernel_mean"], layer["kernel_log_sigma"]
        total += jnp.sum(jnp.log(prior_scale) - log_sigma
                         + (jnp.exp(2 * log_sigma) + mu ** 2) / (2 * prior_scale ** 2) - 0.5)
    return total


def dropout_kl(params) -> Array:
    """Approximate KL(q(w) || log-uniform prior) summed over the dropout layers' weights.

    KL = -sum (0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3) over the weights of every
    :class:`VariationalDropoutDense`, up to an additive constant per weight
    (:data:`DROPOUT_KL_COEFFS`).

    Args: ``params``, a model's parameter tree.
    Returns: a scalar, nats up to that constant (0 when there is no such layer).

    References: Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick, eq. (24).
    """
    c1, c2, c3 = DROPOUT_KL_COEFFS
    total = jnp.zeros(())
    for layer in _layers(params, "kernel", "log_alpha_raw"):
        la = log_alpha(layer["log_alpha_raw"])
        a = jnp.exp(la)
        total -= jnp.sum(0.5 * la + c1 * a + c2 * a ** 2 + c3 * a ** 3)
    return total


def weight_kl(params, prior_scale: float = 1.0) -> Array:
    """KL of every Bayesian layer in ``params`` to its prior (see the two functions above).

    Args: ``params``; ``prior_scale`` for :func:`gaussian_weight_kl`. Returns: a scalar, nats.
    """
    return gaussian_weight_kl(params, prior_scale) + dropout_kl(params)


def classification_loss(model: nn.Module, num_data: int, kl_fn: Callable = weight_kl):
    """Negative SGVB bound per example for a Bayesian classifier.

    L(params) = sum_n E_q[log p(y_n | x_n, W)] - KL(q(W) || p(W)), estimated on a
    minibatch of M as (N / M) sum_{n in batch} log p(y_n | x_n, W_n) - KL, with W_n from
    the layers' estimator. Returns ``loss(params, batch, key) -> (loss, info)`` with
    ``batch = (x: [M, *event], y: [M] int)`` (the loss of :func:`jaxvae.make_train_step`;
    the weight noise is drawn from ``key`` as the ``"noise"`` stream), loss = -L / N (nats
    per training example) and ``info`` holding ``nll`` (mean -log p(y|x, W)), ``kl``
    (total) and ``accuracy`` of the noisy forward pass.

    Args: ``model``, e.g. :class:`BayesianMLP`; ``num_data`` N >= 1; ``kl_fn(params) ->``
      KL in nats (default :func:`weight_kl`).
    Returns: ``loss(params, batch, key) -> (loss, info)`` as above.

    References: Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick.
    """
    num_data = _checks.integer(num_data, "num_data", 1)      # the training set size N

    def loss(params, batch, key: Array):
        x, y = batch
        logits = model.apply(params, x, rngs={"noise": key})
        log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
        kl = kl_fn(params)
        nll = -jnp.mean(log_p)
        info = {"nll": nll, "kl": kl, "accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}
        return nll + kl / num_data, info

    return loss
