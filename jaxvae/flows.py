"""Normalizing flows as distrax bijectors, and flow posteriors for VAEs.

A flow pushes a base sample z_0 ~ q_0(z|x) through invertible maps f_1..f_K:

    z_K = f_K(...f_1(z_0)),   log q_K(z_K) = log q_0(z_0) - sum_k log|det df_k/dz_{k-1}|.

Bijectors (each acts on events ``z: [..., D]``, ``event_ndims_in = 1``; parameters are
plain arrays for *one* example, so an encoder can emit them per x):

* :class:`Planar` — f(z) = z + u^ h(w^T z + b), h = tanh (Rezende & Mohamed, 2015),
  with u^ = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a), so that
  w^T u^ > -1 and f is invertible for every raw u. log|det| = log|1 + h'(.) w^T u^|.
* :class:`Radial` — f(z) = z + beta h(alpha, r) (z - z0), h = 1 / (alpha + r),
  r = |z - z0|, with alpha = softplus(raw) > 0 and beta = -alpha + softplus(raw) > -alpha.
* :func:`nice_coupling` — NICE additive coupling (Dinh et al., 2014) built on
  ``distrax.MaskedCoupling``: y = m*z + (1-m)*(z + t(m*z, context)), log|det| = 0.
* :class:`Stacked` — K steps of one type with stacked parameters, run by ``lax.scan``
  (what :class:`FlowEncoder` uses for planar and radial flows).
* :class:`IAF` — inverse autoregressive flow (Kingma et al., 2016) with a MADE network
  (Germain et al., 2015) and the gated update y = sigma*z + (1 - sigma)*mu,
  sigma = sigmoid(s), log|det| = sum log sigma.

Planar and radial flows have no closed-form inverse: their ``inverse`` raises
``NotImplementedError``. A flow posterior only needs the forward pass
(``sample_and_log_prob``); the estimators that need log q at a given z with stopped
parameters (STL, DReG) or at a fixed z (score function, RWS) get it from the base
sample (see :func:`jaxvae.estimators.make_estimator`).

:class:`FlowEncoder` is the amortized version: an MLP encoder emits the Gaussian base and
either the planar/radial parameters for each x (the DLGM+NF model of Rezende & Mohamed)
or a context vector that conditions global NICE/IAF networks (as in Kingma et al.).
"""

from __future__ import annotations

from typing import Any, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import likelihoods
from jaxvae.models.mlp import MLP, VAE, MLPDecoder, diag_gaussian, positive_scale

Array = jax.Array

__all__ = ["Planar", "Radial", "Stacked", "IAF", "nice_coupling", "made_masks", "flow",
           "FlowEncoder", "flow_vae", "FLOWS"]

FLOWS = ("planar", "radial", "nice", "iaf")


def _check_vector(name: str, value: Array, dim: int | None = None) -> Array:
    value = jnp.asarray(value)
    if value.ndim != 1 or (dim is not None and value.shape[0] != dim):
        want = f"[{dim}]" if dim is not None else "[D]"
        raise ValueError(f"{name} must have shape {want} (one example), got {value.shape}")
    return value


class Planar(distrax.Bijector):
    """Planar flow f(z) = z + u^ tanh(w^T z + b), invertible by construction.

    Args:
      u, w: ``[D]``; ``u`` is the raw (unconstrained) vector, mapped to u^ with
        w^T u^ = m(w^T u) = -1 + softplus(w^T u) > -1. ``w`` must be non-zero.
      b: scalar.
    """

    def __init__(self, u: Array, w: Array, b: Array):
        super().__init__(event_ndims_in=1)
        self.w = _check_vector("w", w)
        self.u = _check_vector("u", u, self.w.shape[0])
        self.b = jnp.asarray(b)
        if self.b.ndim != 0:
            raise ValueError(f"b must be a scalar, got shape {self.b.shape}")

    def constrained(self):
        """(u^, softplus(w^T u)) with w^T u^ = softplus(w^T u) - 1."""
        wu = jnp.dot(self.w, self.u)
        softplus_wu = jax.nn.softplus(wu)
        u_hat = self.u + (softplus_wu - 1.0 - wu) * self.w / jnp.dot(self.w, self.w)
        return u_hat, softplus_wu

    def forward_and_log_det(self, z: Array):
        self._check_forward_input_shape(z)
        u_hat, softplus_wu = self.constrained()
        t = jnp.tanh(z @ self.w + self.b)                    # [...]
        y = z + u_hat * t[..., None]
        # 1 + h'(a) w^T u^ = t^2 + (1 - t^2) softplus(w^T u): a sum of positive terms,
        # accurate even where w^T u^ is close to -1.
        t2 = jnp.square(t)
        log_det = jnp.log(t2 + (1.0 - t2) * softplus_wu)
        return y, log_det

    def inverse_and_log_det(self, y: Array):
        raise NotImplementedError(
            "the planar flow has no closed-form inverse; use sample_and_log_prob (it only "
            "needs the forward pass) instead of log_prob at an arbitrary z")


class Radial(distrax.Bijector):
    """Radial flow f(z) = z + beta (z - z0) / (alpha + |z - z0|), invertible by construction.

    Args:
      z0: ``[D]`` centre.
      alpha_raw, beta_raw: scalars; alpha = softplus(alpha_raw) > 0 and
        beta = -alpha + softplus(beta_raw) > -alpha.
    """

    def __init__(self, z0: Array, alpha_raw: Array, beta_raw: Array):
        super().__init__(event_ndims_in=1)
        self.z0 = _check_vector("z0", z0)
        self.alpha_raw = jnp.asarray(alpha_raw)
        self.beta_raw = jnp.asarray(beta_raw)
        if self.alpha_raw.ndim or self.beta_raw.ndim:
            raise ValueError("alpha_raw and beta_raw must be scalars")

    def constrained(self):
        """(alpha, beta, softplus(beta_raw)) with beta = softplus(beta_raw) - alpha."""
        alpha = jax.nn.softplus(self.alpha_raw)
        sp = jax.nn.softplus(self.beta_raw)
        return alpha, sp - alpha, sp

    def forward_and_log_det(self, z: Array):
        self._check_forward_input_shape(z)
        alpha, beta, sp = self.constrained()
        diff = z - self.z0
        sq = jnp.sum(jnp.square(diff), axis=-1)
        nonzero = sq > 0
        r = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)   # |z - z0|, smooth at 0
        y = z + (beta / (alpha + r))[..., None] * diff
        dim = z.shape[-1]
        # 1 + beta h = (r + sp) / (alpha + r);  1 + beta h + beta h' r = (r (2 alpha + r) + alpha sp)
        # / (alpha + r)^2; both written as ratios of positive terms.
        log_det = ((dim - 1) * (jnp.log(r + sp) - jnp.log(alpha + r))
                   + jnp.log(r * (2 * alpha + r) + alpha * sp) - 2 * jnp.log(alpha + r))
        return y, log_det

    def inverse_and_log_det(self, y: Array):
        raise NotImplementedError(
            "the radial flow has no closed-form inverse; use sample_and_log_prob (it only "
            "needs the forward pass) instead of log_prob at an arbitrary z")


class Stacked(distrax.Bijector):
    """K steps of one bijector type with stacked parameters, applied in order with
    ``jax.lax.scan``: the same map as ``flow(base, [make(*p_1), ..., make(*p_K)])`` but
    compiled once whatever K (an unrolled chain of 80 planar steps takes minutes to
    compile on a CPU).

    Args:
      make: bijector constructor, e.g. :class:`Planar`.
      params: tuple of arrays with a leading axis K; step k is ``make(*(a[k] for a in params))``.
    """

    def __init__(self, make, params):
        super().__init__(event_ndims_in=1)
        self.make = make
        self.params = tuple(jnp.asarray(a) for a in params)

    def forward_and_log_det(self, z: Array):
        self._check_forward_input_shape(z)

        def step(z, p):
            return self.make(*p).forward_and_log_det(z)

        y, log_dets = jax.lax.scan(step, z, self.params)
        return y, jnp.sum(log_dets, axis=0)

    def inverse_and_log_det(self, y: Array):
        self._check_inverse_input_shape(y)

        def step(y, p):
            return self.make(*p).inverse_and_log_det(y)

        z, log_dets = jax.lax.scan(step, y, self.params, reverse=True)
        return z, jnp.sum(log_dets, axis=0)


# ---------------------------------------------------------------- MADE and IAF

def made_masks(dim: int, hidden: Sequence[int], reverse: bool = False):
    """Connectivity masks of a MADE network over ``dim`` inputs (Germain et al., 2015).

    Input i gets degree d(i) (1..dim, or dim..1 with ``reverse``); hidden unit j of every
    layer gets (j mod max(dim - 1, 1)) + 1; a weight is kept where the receiving degree is
    >= the sending one, and an output only sees hidden units of strictly lower degree, so
    output i depends on the inputs of degree < d(i) only.

    Returns: a list of float masks ``[dim, h_1], [h_1, h_2], ..., [h_L, dim]``.
    """
    degrees_in = np.arange(1, dim + 1)
    if reverse:
        degrees_in = degrees_in[::-1]
    degrees = [degrees_in]
    for width in hidden:
        degrees.append(np.arange(width) % max(dim - 1, 1) + 1)
    masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees_in[None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks


def _made_apply(params: dict, masks, z: Array, context: Array | None):
    """(mu, s), each ``[..., D]``: an autoregressive MLP with ELU hidden units."""
    kernels, biases = params["kernels"], params["biases"]
    h = z @ (kernels[0] * masks[0]) + biases[0]
    if context is not None:
        h = h + context @ params["context_kernel"]
    h = jax.nn.elu(h)
    for kernel, bias, mask in zip(kernels[1:-1], biases[1:-1], masks[1:-1]):
        h = jax.nn.elu(h @ (kernel * mask) + bias)
    out = h @ (kernels[-1] * jnp.tile(masks[-1], (1, 2))) + biases[-1]
    mu, s = jnp.split(out, 2, axis=-1)
    return mu, s


class IAF(distrax.Bijector):
    """Inverse autoregressive flow step with the gated update of Kingma et al. (2016).

    (mu, s) = MADE(z, context);  sigma = sigmoid(s);  y = sigma * z + (1 - sigma) * mu;
    log|det dy/dz| = sum log sigma  (the Jacobian is lower triangular in the MADE order).

    Args:
      params: ``{"kernels": [W_1, ..., W_L, W_out], "biases": [...], "context_kernel"}``
        with ``W_out: [h_L, 2D]`` (mu then s); see :class:`FlowEncoder` for how they are
        created.
      context: ``[C]`` per-example context (or None).
      reverse: use the reversed variable order (alternate it between steps).

    The inverse takes D sequential passes of the MADE network; it divides by sigma, so far
    out in the tails of a sharply gated flow it can overflow (log_prob then gives NaN where
    the true density underflows anyway).
    """

    def __init__(self, params: dict, context: Array | None = None, reverse: bool = False):
        super().__init__(event_ndims_in=1)
        self.params = params
        self.context = context
        self.reverse = reverse
        dim = params["kernels"][0].shape[0]
        hidden = [k.shape[1] for k in params["kernels"][:-1]]
        self.masks = [jnp.asarray(m) for m in made_masks(dim, hidden, reverse)]

    def _gate(self, z):
        mu, s = _made_apply(self.params, self.masks, z, self.context)
        return mu, jax.nn.sigmoid(s), jax.nn.log_sigmoid(s)

    def forward_and_log_det(self, z: Array):
        self._check_forward_input_shape(z)
        mu, sigma, log_sigma = self._gate(z)
        return sigma * z + (1.0 - sigma) * mu, jnp.sum(log_sigma, axis=-1)

    def inverse_and_log_det(self, y: Array):
        self._check_inverse_input_shape(y)

        dim = y.shape[-1]
        degrees = jnp.arange(dim, 0, -1) if self.reverse else jnp.arange(1, dim + 1)

        def step(i, z):
            # mu and sigma of the variable of degree i + 1 depend on degrees <= i only, all
            # already solved; the unsolved ones stay at 0 (finite), never at a wild iterate.
            mu, sigma, _ = self._gate(z)
            return jnp.where(degrees == i + 1, (y - (1.0 - sigma) * mu) / sigma, z)

        z = jax.lax.fori_loop(0, dim, step, jnp.zeros_like(y))
        _, _, log_sigma = self._gate(z)
        return z, -jnp.sum(log_sigma, axis=-1)


# ---------------------------------------------------------------- NICE

def _mlp_apply(params: dict, x: Array, context: Array | None) -> Array:
    """A ReLU MLP ``[..., D] -> [..., D]`` with an optional context added to layer 1."""
    kernels, biases = params["kernels"], params["biases"]
    h = x @ kernels[0] + biases[0]
    if context is not None:
        h = h + context @ params["context_kernel"]
    for kernel, bias in zip(kernels[1:], biases[1:]):
        h = jax.nn.relu(h) @ kernel + bias
    return h


def nice_coupling(params: dict, mask: Array, context: Array | None = None) -> distrax.Bijector:
    """NICE additive coupling layer (Dinh et al., 2014) as a ``distrax.MaskedCoupling``.

    y = z where ``mask`` is True, y = z + t(mask * z, context) elsewhere, with t a ReLU
    MLP (``params = {"kernels": [D x h, ..., h x D], "biases": [...], "context_kernel"}``);
    log|det| = 0. The inverse subtracts the same shift.
    """
    mask = jnp.asarray(mask, bool)
    return distrax.MaskedCoupling(
        mask=mask,
        conditioner=lambda masked: _mlp_apply(params, masked, context),
        bijector=distrax.Shift)


# ---------------------------------------------------------------- composition

def flow(base: distrax.Distribution, bijectors: Sequence[distrax.Bijector]) -> distrax.Distribution:
    """``base`` pushed through ``bijectors`` applied in list order (f_1 first).

    Returns ``base`` itself for an empty list, else a ``distrax.Transformed``."""
    bijectors = list(bijectors)
    if not bijectors:
        return base
    return distrax.Transformed(base, distrax.Chain(bijectors[::-1]))


class FlowEncoder(nn.Module):
    """Amortized flow posterior q_K(z|x): a Gaussian base pushed through ``num_flows`` flows.

    x: ``[*event]`` -> a distribution over ``z: [latent_dim]`` (a ``distrax.Transformed``;
    the plain diagonal Gaussian when ``num_flows == 0``). ``flow``:

    * ``"planar"`` / ``"radial"``: the encoder's last hidden layer also emits each flow's
      parameters for this x (K (2D + 1) numbers for planar, K (D + 2) for radial);
    * ``"nice"`` / ``"iaf"``: the encoder emits a context vector of ``context_dim``; the
      coupling / MADE networks (one hidden layer of ``flow_hidden`` units each, repeated
      ``flow_layers`` times) are shared across x and take the context as an extra input.
      Successive steps alternate the NICE mask halves / the IAF variable order.

    Use it as the ``encoder`` of :class:`jaxvae.VAE`; see :func:`flow_vae`.
    """

    hidden: Sequence[int]
    latent_dim: int
    flow: str = "planar"
    num_flows: int = 2
    activation: Any = "tanh"
    scale: str = "exp"
    event_ndims: int = 1
    flow_hidden: int = 100
    flow_layers: int = 1
    context_dim: int = 50
    gate_bias: float = 1.0

    def _check(self):
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow {self.flow!r}; expected one of {list(FLOWS)}")
        if isinstance(self.num_flows, bool) or not isinstance(self.num_flows, int) \
                or self.num_flows < 0:
            raise ValueError(f"num_flows must be an int >= 0, got {self.num_flows!r}")
        if self.flow == "nice" and self.latent_dim < 2:
            raise ValueError("NICE coupling needs latent_dim >= 2")

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        self._check()
        batch_shape = x.shape[:x.ndim - self.event_ndims]
        h = jnp.reshape(x, (*batch_shape, -1)).astype(jnp.float32)
        h = MLP(self.hidden, self.activation)(h)
        init = nn.initializers.glorot_uniform()
        loc = nn.Dense(self.latent_dim, kernel_init=init, name="loc")(h)
        raw_scale = nn.Dense(self.latent_dim, kernel_init=init, name="raw_scale")(h)
        base = diag_gaussian(loc, positive_scale(raw_scale, self.scale))
        if self.num_flows == 0:
            return base
        if batch_shape:
            raise ValueError(
                f"FlowEncoder takes one example x: [*event] (vmap over a batch); got a "
                f"leading batch of shape {batch_shape}")
        build = {"planar": self._planar, "radial": self._radial,
                 "nice": self._nice, "iaf": self._iaf}[self.flow]
        return flow(base, build(h))

    def _amortized(self, h, per_flow: int, name: str, bias_init):
        raw = nn.Dense(self.num_flows * per_flow, name=name,
                       kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "normal"),
                       bias_init=bias_init)(h)
        return jnp.reshape(raw, (self.num_flows, per_flow))

    def _planar(self, h):
        d, k = self.latent_dim, self.num_flows

        def bias_init(key, shape, dtype=jnp.float32):
            # w starts random with |w| ~ 1 (so that u^ is small), u and b at 0: f ~ identity.
            w = jax.random.normal(key, (k, d), dtype) / np.sqrt(d)
            return jnp.concatenate([jnp.zeros((k, d), dtype), w, jnp.zeros((k, 1), dtype)],
                                   axis=1).reshape(shape)

        raw = self._amortized(h, 2 * d + 1, "planar", bias_init)
        return [Stacked(Planar, (raw[:, :d], raw[:, d:2 * d], raw[:, 2 * d]))]

    def _radial(self, h):
        d, k = self.latent_dim, self.num_flows

        def bias_init(key, shape, dtype=jnp.float32):
            # alpha_raw = beta_raw = 0 gives beta = softplus(0) - softplus(0) = 0: the identity.
            z0 = jax.random.normal(key, (k, d), dtype)
            return jnp.concatenate([z0, jnp.zeros((k, 2), dtype)], axis=1).reshape(shape)

        raw = self._amortized(h, d + 2, "radial", bias_init)
        return [Stacked(Radial, (raw[:, :d], raw[:, d], raw[:, d + 1]))]

    def _context(self, h):
        return nn.Dense(self.context_dim, name="context")(h)

    def _net_params(self, name: str, sizes, zero_last: bool, last_bias=None):
        kernels, biases = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            k_init = nn.initializers.zeros if (last and zero_last) else \
                nn.initializers.glorot_uniform()
            b_init = last_bias if (last and last_bias is not None) else nn.initializers.zeros
            kernels.append(self.param(f"{name}_kernel_{i}", k_init, (n_in, n_out)))
            biases.append(self.param(f"{name}_bias_{i}", b_init, (n_out,)))
        ctx = self.param(f"{name}_context_kernel", nn.initializers.glorot_uniform(),
                         (self.context_dim, sizes[1]))
        return {"kernels": kernels, "biases": biases, "context_kernel": ctx}

    def _nice(self, h):
        d = self.latent_dim
        context = self._context(h)
        sizes = [d] + [self.flow_hidden] * self.flow_layers + [d]
        first_half = np.arange(d) < d // 2
        steps = []
        for i in range(self.num_flows):
            params = self._net_params(f"nice_{i}", sizes, zero_last=True)
            steps.append(nice_coupling(params, first_half if i % 2 == 0 else ~first_half,
                                       context))
        return steps

    def _iaf(self, h):
        d = self.latent_dim
        context = self._context(h)
        sizes = [d] + [self.flow_hidden] * self.flow_layers + [2 * d]

        def gate_init(key, shape, dtype=jnp.float32):   # mu bias 0, s bias gate_bias
            return jnp.concatenate([jnp.zeros((d,), dtype),
                                    jnp.full((d,), self.gate_bias, dtype)])

        steps = []
        for i in range(self.num_flows):
            params = self._net_params(f"iaf_{i}", sizes, zero_last=False, last_bias=gate_init)
            steps.append(IAF(params, context, reverse=i % 2 == 1))
        return steps


def flow_vae(event_shape=(28, 28), latent_dim: int = 40, hidden=(400,), flow: str = "planar",
             num_flows: int = 10, head=likelihoods.Bernoulli(),
             output_bias_init=nn.initializers.zeros, **flow_options) -> VAE:
    """A :class:`jaxvae.VAE` whose encoder is a :class:`FlowEncoder`: a tanh MLP
    (``hidden``, mirrored in the decoder), ``latent_dim`` latents, ``num_flows`` steps of
    ``flow``. The defaults follow the DLGM+NF MNIST setting of Rezende & Mohamed (2015):
    40 latents, one deterministic layer of 400 units. ``flow_options`` go to
    :class:`FlowEncoder` (``flow_hidden``, ``context_dim``, ...)."""
    encoder = FlowEncoder(tuple(hidden), latent_dim, flow=flow, num_flows=num_flows,
                          event_ndims=len(event_shape), **flow_options)
    decoder = MLPDecoder(tuple(reversed(hidden)), tuple(event_shape), head, "tanh",
                         output_bias_init)
    return VAE(encoder, decoder)
