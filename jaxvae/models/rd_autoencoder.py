"""A rate–distortion autoencoder: one deterministic, quantized code per image.

The hard-EM contrast to the VAE. A VAE keeps a posterior q(z|x) over codes (soft EM);
this model keeps a single code per x (hard EM), ŷ = Q(g_a(x)), and pays for it in bits.
With an analysis transform y = g_a(x) (strided convolutions), a synthesis transform
x̂ = g_s(y) (the :class:`jaxvae.models.ConvDecoder` of the conv VAE, its Gaussian mean), a
quantizer ŷ = Δ round(y / Δ) and a factorized prior p(y) = prod_d p_d(y_d) (learned
per-dimension logistic or Gaussian with CDF F_d), the cost of image x is

    R(x) = -sum_d log P_d(ŷ_d),    P_d(c) = F_d(c + Δ/2) - F_d(c - Δ/2),   (nats, >= 0)
    D(x) = ||x - g_s(ŷ)||^2,                                                (squared units)
    L(x) = R(x) + (λ/2) D(x).

R is the ideal code length of an entropy coder driven by the prior (R / ln 2 bits).
Rounding has no useful gradient, so training replaces it by additive uniform noise,
ỹ = y + u, u ~ U(-Δ/2, Δ/2)^d, and R by -sum_d log P_d(ỹ_d) (Ballé, Laparra & Simoncelli,
2017). That relaxed loss is exactly a negative ELBO: with the "posterior" q(ỹ|x) =
U(y - Δ/2, y + Δ/2) of fixed width (entropy d log Δ) and the prior convolved with the
same uniform, p̃_d(c) = P_d(c) / Δ,

    KL(q || p̃) = E_q[-log p̃(ỹ)] - d log Δ = E_q[-sum_d log P_d(ỹ_d)],

and (λ/2) D = -log N(x; x̂, λ^-1 I) - (D_x / 2) log(2 π / λ): the L2 decoder of the VAE
with σ^2 = 1/λ. So the rate here is in the same nats as a VAE's E[KL], and λ plays the
part of 1/σ^2 (β-VAE at fixed σ0: β = σ^2 / σ0^2). What differs is the posterior: a box
of fixed width around one learned point, against the VAE's learned per-x variances.

References:
  Ballé, Laparra & Simoncelli (2017), End-to-end Optimized Image Compression, ICLR
  (the uniform-noise relaxation, the factorized prior, Sec. 4 on the VAE view);
  Theis, Shi, Cunningham & Huszár (2017), Lossy Image Compression with Compressive
  Autoencoders; the VAE lecture's hard vs soft EM (one code per x vs a posterior).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxvae import likelihoods
from jaxvae.models.conv import ConvDecoder, layer_plan
from jaxvae.models.mlp import get_activation

Array = jax.Array

__all__ = ["PRIORS", "log_bin_mass", "quantize", "AnalysisTransform", "RDAutoencoder",
           "rate_distortion_loss", "rate_distortion_metrics", "sample"]

#: the factorized priors: per-dimension logistic (CDF sigmoid) or Gaussian (CDF Φ)
PRIORS = ("logistic", "gaussian")
def _log_sub_cdf_logistic(upper: Array, lower: Array) -> Array:
    """log(sigmoid(a) - sigmoid(b)) for a > b, = log sigmoid(a) + log sigmoid(-b) +
    log(1 - exp(-(a - b))): three terms <= 0, no cancellation in either tail."""
    return (jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower)
            + jnp.log(-jnp.expm1(-(upper - lower))))


def _log_sub_cdf_gaussian(upper: Array, lower: Array) -> Array:
    """log(Φ(a) - Φ(b)) for a > b, evaluated in the lower tail: by symmetry
    Φ(a) - Φ(b) = Φ(-b) - Φ(-a), so the interval is reflected when its midpoint is > 0."""
    flip = upper + lower > 0
    a = jnp.where(flip, -lower, upper)
    b = jnp.where(flip, -upper, lower)
    log_a, log_b = log_ndtr(a), log_ndtr(b)
    return log_a + jnp.log(-jnp.expm1(log_b - log_a))


def log_bin_mass(y: Array, loc: Array, scale: Array, width: float = 1.0,
                 prior: str = "logistic") -> Array:
    """log P(y) = log[F((y + Δ/2 - μ) / s) - F((y - Δ/2 - μ) / s)], elementwise, nats.

    The prior mass of the bin of width Δ centred at y: the probability of the quantized
    value y (at a quantization point), or Δ times the prior density convolved with
    U(-Δ/2, Δ/2) (at a noisy ỹ). F is the logistic CDF sigmoid or the normal CDF Φ.

    Args:
      y: codes ``[..., d]`` (any shape broadcasting with ``loc`` and ``scale``).
      loc, scale: the prior's μ and s > 0 per dimension.
      width: the bin width Δ > 0.
      prior: ``"logistic"`` or ``"gaussian"`` (:data:`PRIORS`).

    Returns: log P, the broadcast shape, <= 0 (nats); -log P / ln 2 is the code length in
      bits.
    """
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; expected one of {PRIORS}")
    if not width > 0:
        raise ValueError(f"bin width must be positive, got {width}")
    upper = (y + 0.5 * width - loc) / scale
    lower = (y - 0.5 * width - loc) / scale
    if prior == "logistic":
        return _log_sub_cdf_logistic(upper, lower)
    return _log_sub_cdf_gaussian(upper, lower)


def quantize(y: Array, width: float = 1.0) -> Array:
    """ŷ = Δ round(y / Δ): the nearest quantization point. Args: ``y``; ``width`` Δ > 0.
    Returns: ``ŷ``, the shape of ``y``."""
    return width * jnp.round(y / width)


class AnalysisTransform(nn.Module):
    """y = g_a(x): the conv VAE encoder's layers with a single output, the code.

    ``x: [*batch, H, W(, C)]`` -> per level of :func:`jaxvae.models.conv.layer_plan` a 3x3
    stride-2 convolution and ``activation`` -> flatten -> Dense(``hidden``) ->
    Dense(``latent_dim``) named ``code``.
    """

    event_shape: Sequence[int]
    latent_dim: int
    hidden: int = 256
    channels: Sequence[int] | None = None
    levels: int | None = None
    activation: Any = "relu"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Args: ``x: [*batch, *event_shape]``. Returns: ``y: [*batch, latent_dim]``."""
        plan = layer_plan(self.event_shape, self.levels, self.channels)
        event_ndims = len(tuple(self.event_shape))
        if tuple(x.shape[x.ndim - event_ndims:]) != tuple(self.event_shape):
            raise ValueError(f"AnalysisTransform expects images of shape "
                             f"{tuple(self.event_shape)} (optionally with leading batch axes), "
                             f"got shape {tuple(x.shape)}")
        batch = x.shape[:x.ndim - event_ndims]
        h = x.reshape(-1, plan.height, plan.width, plan.channels).astype(jnp.float32)
        act = get_activation(self.activation)
        for width in plan.widths:
            h = act(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(h))
        h = act(nn.Dense(self.hidden)(h.reshape(h.shape[0], -1)))
        return nn.Dense(self.latent_dim, name="code")(h).reshape(*batch, self.latent_dim)


class RDAutoencoder(nn.Module):
    """g_a (:class:`AnalysisTransform`), g_s (:class:`jaxvae.models.ConvDecoder`, Gaussian
    head: x̂ is its mean) and a learned factorized prior over ``[latent_dim]``.

    Parameters: ``analysis/...``, ``synthesis/...``, ``prior_loc [latent_dim]`` (init 0)
    and ``prior_log_scale [latent_dim]`` (init log 2: s = 2, a few bins wide). Methods
    (via ``apply(params, ..., method=...)``): ``encode`` (y, unquantized), ``decode``
    (x̂ for any code), ``log_bin_mass`` (per-dimension log P, nats) and ``prior_params``.
    """

    event_shape: Sequence[int] = (28, 28)
    latent_dim: int = 32
    decoder: str = "transposed"
    hidden: int = 256
    channels: Sequence[int] | None = None
    levels: int | None = None
    prior: str = "logistic"
    bin_width: float = 1.0
    activation: Any = "relu"

    def setup(self):
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; expected one of {PRIORS}")
        if not self.bin_width > 0:
            raise ValueError(f"bin_width must be positive, got {self.bin_width}")
        shape = tuple(int(s) for s in self.event_shape)
        self.analysis = AnalysisTransform(shape, self.latent_dim, self.hidden, self.channels,
                                          self.levels, self.activation)
        self.synthesis = ConvDecoder(shape, self.decoder, self.hidden, self.channels,
                                     self.levels, likelihoods.Gaussian(1.0), self.activation)
        self.prior_loc = self.param("prior_loc", nn.initializers.zeros, (self.latent_dim,))
        self.prior_log_scale = self.param("prior_log_scale", nn.initializers.constant(
            jnp.log(2.0)), (self.latent_dim,))

    def encode(self, x: Array) -> Array:
        """Args: ``x: [*batch, *event_shape]``. Returns: ``y = g_a(x): [*batch, latent_dim]``."""
        return self.analysis(x)

    def decode(self, y: Array) -> Array:
        """Args: codes ``[*batch, latent_dim]``. Returns: ``x̂ = g_s(y): [*batch, *event]``."""
        return self.synthesis(y).mean()

    def prior_params(self) -> tuple[Array, Array]:
        """Returns: ``(loc, scale)`` of the factorized prior, each ``[latent_dim]``."""
        return self.prior_loc, jnp.exp(self.prior_log_scale)

    def log_bin_mass(self, y: Array) -> Array:
        """Args: codes ``[*batch, latent_dim]``. Returns: log P_d of each code's bin,
        ``[*batch, latent_dim]``, nats (:func:`log_bin_mass`)."""
        loc, scale = self.prior_params()
        return log_bin_mass(y, loc, scale, self.bin_width, self.prior)

    def __call__(self, x: Array) -> Array:
        """Args: ``x: [*batch, *event]``. Returns: the reconstruction of the quantized code
        (used by ``init``: creates every parameter)."""
        y = self.encode(x)
        self.log_bin_mass(y)
        return self.decode(quantize(y, self.bin_width))

    def init_params(self, key: Array) -> Any:
        """Args: ``key``. Returns: Flax variables ``{"params": {...}}`` for one example."""
        return self.init(key, jnp.zeros(tuple(self.event_shape)))


def _distortion(x: Array, x_hat: Array, event_ndims: int) -> Array:
    axes = tuple(range(x.ndim - event_ndims, x.ndim))
    return jnp.sum((x.astype(jnp.float32) - x_hat) ** 2, axis=axes)


def rate_distortion_loss(model: RDAutoencoder, lam: float):
    """The training loss of ``model``: the batch mean of R̃ + (λ/2) D with uniform noise.

    Per example, with y = g_a(x), ỹ = y + u, u ~ U(-Δ/2, Δ/2)^d drawn from ``key``:

        R̃ = -sum_d log P_d(ỹ_d) (nats, = KL(q || p̃), see the module docstring),
        D = ||x - g_s(ỹ)||^2,    loss = mean_batch [R̃ + (λ/2) D].

    Args: ``model``; ``lam`` = λ > 0 (1/σ^2 of the equivalent L2 decoder).
    Returns: ``loss(params, x, key) -> (loss, metrics)`` for :func:`jaxvae.make_train_step`
      with ``x: [B, *event]`` floats (e.g. dequantized images in [0, 1]); ``metrics`` holds
      ``rate`` (nats per image), ``rate_bits``, ``distortion`` (D per image), ``mse``
      (D per pixel) and ``bound`` (= -loss, shown by :func:`jaxvae.fit`).
    """
    if not (isinstance(lam, (int, float)) and lam > 0 and lam < float("inf")):
        raise ValueError(f"lam (λ) must be a positive, finite number, got {lam!r}")
    event_ndims = len(tuple(model.event_shape))
    width = model.bin_width

    def loss(params, x, key):
        if x.ndim != event_ndims + 1:
            raise ValueError(f"the batch must be x: [B, {', '.join(map(str, model.event_shape))}]"
                             f", got shape {tuple(x.shape)}")
        y = model.apply(params, x, method="encode")
        noise = jax.random.uniform(key, y.shape, y.dtype, -0.5 * width, 0.5 * width)
        y_noisy = y + noise
        rate = -jnp.sum(model.apply(params, y_noisy, method="log_bin_mass"), axis=-1)
        x_hat = model.apply(params, y_noisy, method="decode")
        distortion = _distortion(x, x_hat, event_ndims)
        value = jnp.mean(rate + 0.5 * lam * distortion)
        pixels = x[0].size
        return value, {"rate": jnp.mean(rate), "rate_bits": jnp.mean(rate) / jnp.log(2.0),
                       "distortion": jnp.mean(distortion),
                       "mse": jnp.mean(distortion) / pixels, "bound": -value}

    return loss


def rate_distortion_metrics(model: RDAutoencoder, params, x: Array,
                            batch_size: int = 500) -> dict[str, float]:
    """Rate and distortion of the quantized codes ŷ = Q(g_a(x)) (no noise), averaged over x.

    Args: ``model``, ``params``, ``x: [N, *event]`` floats; ``batch_size`` for memory.
    Returns: ``{"rate": nats per image, "rate_bits": bits per image, "bits_per_dim": bits
      per pixel, "mse": mean squared error per pixel, "distortion": squared error per image,
      "num": N}`` as floats; ``rate`` >= 0 (every bin mass is <= 1).
    """
    event_ndims = len(tuple(model.event_shape))

    @jax.jit
    def one(xb):
        y_hat = quantize(model.apply(params, xb, method="encode"), model.bin_width)
        rate = -jnp.sum(model.apply(params, y_hat, method="log_bin_mass"), axis=-1)
        x_hat = model.apply(params, y_hat, method="decode")
        return rate, _distortion(xb, x_hat, event_ndims)

    rates, distortions = [], []
    for i in range(0, x.shape[0], batch_size):
        r, d = one(jnp.asarray(x[i:i + batch_size]))
        rates.append(r)
        distortions.append(d)
    rate, distortion = jnp.concatenate(rates), jnp.concatenate(distortions)
    pixels = x[0].size
    return {"rate": float(jnp.mean(rate)), "rate_bits": float(jnp.mean(rate) / jnp.log(2.0)),
            "bits_per_dim": float(jnp.mean(rate) / jnp.log(2.0) / pixels),
            "mse": float(jnp.mean(distortion) / pixels),
            "distortion": float(jnp.mean(distortion)), "num": int(x.shape[0])}


def sample(model: RDAutoencoder, params, key: Array, num: int) -> Array:
    """Images from the quantized generative model: ŷ ~ P (each ŷ_d a quantization point
    with probability P_d), x = g_s(ŷ).

    Rounding a draw y_d ~ p_d gives exactly P(ŷ_d = c) = F_d(c + Δ/2) - F_d(c - Δ/2).

    Args: ``model``, ``params``, ``key``, ``num`` >= 1.
    Returns: ``[num, *event]`` decoder outputs (not clipped).
    """
    if not (isinstance(num, int) and num >= 1):
        raise ValueError(f"num must be an int >= 1, got {num!r}")
    loc, scale = model.apply(params, method="prior_params")
    shape = (num, model.latent_dim)
    if model.prior == "logistic":
        y = loc + scale * jax.random.logistic(key, shape)
    else:
        y = loc + scale * jax.random.normal(key, shape)
    return model.apply(params, quantize(y, model.bin_width), method="decode")
