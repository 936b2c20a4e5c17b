"""Flow posteriors for VAEs: a Gaussian base q_0(z|x) pushed through K flows of
:mod:`jaxvae.flows`, and the Flax networks that parameterize them.

    z_0 ~ N(mu(x), diag sigma(x)^2),  z_K = f_K(...f_1(z_0)),
    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log|det df_k/dz_{k-1}|.

* :class:`FlowEncoder` — the amortized posterior; :func:`flow_vae` — a VAE built on it.
* :class:`MADE` — the masked autoregressive conditioner of an IAF step, z -> (mu, s).
* :class:`NICEShift` — the shift network t of a NICE coupling step.
* :class:`MaskedDense` — a dense layer whose kernel is multiplied by a fixed mask.

Bijectors take their conditioner as a pure function of z; a Flax module becomes one with
``module.unbind()`` (see :func:`conditioner_function`), so the distribution that
:class:`FlowEncoder` returns can be sampled outside ``model.apply``.

References: Rezende & Mohamed (2015), Variational inference with normalizing flows;
Kingma et al. (2016), Improved variational inference with inverse autoregressive flow;
Germain et al. (2015), MADE; Dinh et al. (2014), NICE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, flows, likelihoods
from jaxvae.models.mlp import MLP, VAE, GaussianHead, MLPDecoder

Array = jax.Array
_GLOROT = nn.initializers.glorot_uniform()

__all__ = ["MaskedDense", "MADE", "NICEShift", "conditioner_function", "FlowEncoder",
           "flow_vae"]


def _widths(hidden: Sequence[int], name: str) -> tuple:
    hidden = tuple(hidden)
    if not hidden:
        raise ValueError(f"{name} must list at least one hidden layer width, got {hidden!r}")
    return tuple(_checks.integer(width, f"{name} width", 1) for width in hidden)


class MaskedDense(nn.Module):
    """Dense layer with a fixed mask on its kernel: h -> h @ (W * mask) + b.

    h: ``[..., n_in]`` -> ``[..., features]``; ``mask: [n_in, features]`` is fixed (not a
    parameter). Parameters ``kernel: [n_in, features]`` and ``bias``, created in
    ``param_dtype`` (float32 as in ``nn.Dense``, also under ``jax_enable_x64``).
    """

    features: int
    kernel_init: Callable = _GLOROT
    bias_init: Callable = nn.initializers.zeros
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h: Array, mask) -> Array:
        """Args: ``h: [..., n_in]``; ``mask: [n_in, features]`` (0/1).

        Returns: ``[..., features]``.
        """
        shape = (h.shape[-1], self.features)
        if tuple(np.shape(mask)) != shape:
            raise ValueError(f"mask must have shape {shape}, got {tuple(np.shape(mask))}")
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return h @ (kernel * mask) + bias


class MADE(nn.Module):
    """Autoregressive conditioner of an IAF step (Germain et al., 2015; Kingma et al., 2016).

    z: ``[..., D]`` (and an optional ``context: [..., C]``) -> (mu, s), each ``[..., D]``:

        h_1 = elu(z @ (W_1 * M_1) + b_1 + context @ W_c),
        h_l = elu(h_{l-1} @ (W_l * M_l) + b_l),   l = 2..L,
        (mu, s) = split(h_L @ (W_out * [M_out, M_out]) + b_out),

    with masks ``M = flows.made_masks(D, hidden, reverse)``, so (mu_i, s_i) depend on the
    z_j before z_i in the order 1..D (D..1 with ``reverse``) only, as :class:`flows.IAF`
    requires. b_out starts at mu = 0, s = ``gate_bias``: the gates sigma = sigmoid(s) start
    near sigmoid(gate_bias), so an IAF step starts close to y = z. Parameters:
    ``hidden_{l}/{kernel,bias}``, ``out/{kernel,bias}`` (kernel ``[h_L, 2D]``, mu then s),
    ``context/kernel``.

    References: Germain et al. (2015), MADE; Kingma et al. (2016), IAF.
    """

    hidden: Sequence[int]
    reverse: bool = False
    gate_bias: float = 1.0

    @nn.compact
    def __call__(self, z: Array, context: Array | None = None):
        """Args: ``z: [..., D]``; ``context: [..., C]`` or None.

        Returns: ``(mu, s)``, each ``[..., D]``, autoregressive in z.
        """
        hidden = _widths(self.hidden, "hidden")
        dim = z.shape[-1]
        masks = flows.made_masks(dim, hidden, self.reverse)
        h = z
        for i, (width, mask) in enumerate(zip(hidden, masks)):
            h = MaskedDense(width, name=f"hidden_{i}")(h, mask)
            if i == 0 and context is not None:
                h = h + nn.Dense(width, use_bias=False, kernel_init=_GLOROT,
                                 name="context")(context)
            h = jax.nn.elu(h)

        def gate_init(key, shape, dtype=jnp.float32):      # mu bias 0, s bias gate_bias
            return jnp.concatenate([jnp.zeros((dim,), dtype),
                                    jnp.full((dim,), self.gate_bias, dtype)])

        out = MaskedDense(2 * dim, bias_init=gate_init, name="out")(h, np.tile(masks[-1], (1, 2)))
        mu, s = jnp.split(out, 2, axis=-1)
        return mu, s


class NICEShift(nn.Module):
    """Shift network t of a NICE coupling (Dinh et al., 2014), a ReLU MLP.

    masked_z: ``[..., D]`` (and an optional ``context: [..., C]``) -> shift ``[..., D]``:

        a_1 = masked_z @ W_1 + b_1 + context @ W_c,  a_l = relu(a_{l-1}) @ W_l + b_l,
        t = relu(a_L) @ W_out + b_out,

    with W_out and b_out zero at the start, so the coupling starts at the identity.
    Parameters: ``hidden_{l}/{kernel,bias}``, ``out/{kernel,bias}``, ``context/kernel``.

    References: Dinh et al. (2014), NICE.
    """

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, masked_z: Array, context: Array | None = None) -> Array:
        """Args: ``masked_z: [..., D]``; ``context: [..., C]`` or None.

        Returns: the shift t, ``[..., D]``.
        """
        hidden = _widths(self.hidden, "hidden")
        h = nn.Dense(hidden[0], kernel_init=_GLOROT, name="hidden_0")(masked_z)
        if context is not None:
            h = h + nn.Dense(hidden[0], use_bias=False, kernel_init=_GLOROT,
                             name="context")(context)
        for i, width in enumerate(hidden[1:], start=1):
            h = nn.Dense(width, kernel_init=_GLOROT, name=f"hidden_{i}")(jax.nn.relu(h))
        return nn.Dense(masked_z.shape[-1], kernel_init=nn.initializers.zeros,
                        name="out")(jax.nn.relu(h))


def conditioner_function(module: nn.Module, dim: int,
                         context: Array | None = None) -> Callable:
    """The pure function ``z: [..., dim] -> module(z, context)`` of a bound submodule.

    ``module`` is bound inside a parent's ``nn.compact`` method (e.g. :class:`MADE`,
    :class:`NICEShift`). Calls it once on zeros ``[dim]`` (which creates its parameters at
    init; under ``jit`` the unused result costs nothing), then closes over
    ``module.unbind()``: the function still works after the parent's ``apply`` has returned,
    as the bijectors of a returned ``distrax.Transformed`` need.

    Args: ``module`` taking ``(z, context)``; ``dim`` D; ``context: [C]`` or None.
    Returns: ``fn(z: [..., D])``, the module's output with its current parameters.
    """
    dtype = jnp.float32 if context is None else context.dtype
    module(jnp.zeros((dim,), dtype), context)
    unbound, variables = module.unbind()
    return lambda z: unbound.apply(variables, z, context)


class FlowEncoder(nn.Module):
    """Amortized flow posterior q_K(z|x): a Gaussian base pushed through ``num_flows`` flows.

    x: ``[*event]`` -> a distribution over ``z: [latent_dim]`` (a ``distrax.Transformed``;
    the plain diagonal Gaussian when ``num_flows == 0``). The base comes from a tanh MLP
    and a :class:`jaxvae.models.mlp.GaussianHead` (parameters ``MLP_0``, ``loc``,
    ``raw_scale``, as in :class:`jaxvae.GaussianEncoder`). ``flow``:

    * ``"planar"`` / ``"radial"``: the last hidden layer also emits each flow's parameters
      for this x (K (2D + 1) numbers for planar, K (D + 2) for radial; Dense ``planar`` /
      ``radial``), starting near the identity (Rezende & Mohamed, 2015);
    * ``"iaf"`` / ``"nice"``: the encoder emits a ``context: [context_dim]`` (Dense
      ``context``); step i is a global :class:`MADE` ``iaf_{i}`` / :class:`NICEShift`
      ``nice_{i}`` (``flow_layers`` hidden layers of ``flow_hidden`` units) that takes the
      context as an extra input (Kingma et al., 2016). Steps alternate the IAF variable
      order / the NICE mask halves.

    Use it as the ``encoder`` of :class:`jaxvae.VAE`; see :func:`flow_vae`.

    References: Rezende & Mohamed (2015); Kingma et al. (2016);
    Dinh et al. (2014).
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
        if self.flow not in flows.FLOWS:
            raise ValueError(f"unknown flow {self.flow!r}; expected one of {list(flows.FLOWS)}")
        _checks.integer(self.num_flows, "num_flows", 0)
        if self.flow in ("iaf", "nice"):
            for name in ("flow_hidden", "flow_layers", "context_dim"):
                _checks.integer(getattr(self, name), name, 1)
        if self.flow == "nice" and self.latent_dim < 2:
            raise ValueError(f"flow='nice' needs latent_dim >= 2, got {self.latent_dim!r}")

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: one ``x: [*event]`` (a leading batch only with ``num_flows == 0``).

        Returns: q_K(z|x) over ``[latent_dim]``; log_prob / sample_and_log_prob in nats.
        """
        self._check()
        batch_shape = x.shape[:x.ndim - self.event_ndims]
        h = jnp.reshape(x, (*batch_shape, -1)).astype(jnp.float32)
        h = MLP(self.hidden, self.activation)(h)
        head = GaussianHead(self.latent_dim, self.scale)
        nn.share_scope(self, head)          # its layers stay at encoder/loc, encoder/raw_scale
        base = head(h)
        if self.num_flows == 0:
            return base
        if batch_shape:
            raise ValueError(
                f"FlowEncoder takes one example x: [*event] (vmap over a batch); got a "
                f"leading batch of shape {batch_shape}")
        build = {"planar": self._planar, "radial": self._radial,
                 "nice": self._nice, "iaf": self._iaf}[self.flow]
        return flows.flow(base, build(h))

    def _amortized(self, h, per_flow: int, name: str, bias_init):
        raw = nn.Dense(self.num_flows * per_flow, name=name,
                       kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "normal"),
                       bias_init=bias_init)(h)
        return jnp.reshape(raw, (self.num_flows, per_flow))

    def _planar(self, h):
        d, k = self.latent_dim, self.num_flows

        def bias_init(key, shape, dtype=jnp.float32):
            # w starts random with |w| ~ 1 (so that u^ is small), u and b at 0: f ~ identity.
            # (A Python float keeps dtype: np.sqrt(d) would promote to float64 under x64.)
            w = jax.random.normal(key, (k, d), dtype) / math.sqrt(d)
            return jnp.concatenate([jnp.zeros((k, d), dtype), w, jnp.zeros((k, 1), dtype)],
                                   axis=1).reshape(shape)

        raw = self._amortized(h, 2 * d + 1, "planar", bias_init)
        return [flows.Stacked(flows.Planar, (raw[:, :d], raw[:, d:2 * d], raw[:, 2 * d]))]

    def _radial(self, h):
        d, k = self.latent_dim, self.num_flows

        def bias_init(key, shape, dtype=jnp.float32):
            # alpha_raw = beta_raw = 0 gives beta = softplus(0) - softplus(0) = 0: the identity.
            z0 = jax.random.normal(key, (k, d), dtype)
            return jnp.concatenate([z0, jnp.zeros((k, 2), dtype)], axis=1).reshape(shape)

        raw = self._amortized(h, d + 2, "radial", bias_init)
        return [flows.Stacked(flows.Radial, (raw[:, :d], raw[:, d], raw[:, d + 1]))]

    def _context(self, h):
        return nn.Dense(self.context_dim, name="context")(h)

    def _nice(self, h):
        d = self.latent_dim
        context = self._context(h)
        hidden = (self.flow_hidden,) * self.flow_layers
        first_half = np.arange(d) < d // 2
        steps = []
        for i in range(self.num_flows):
            shift = conditioner_function(NICEShift(hidden, name=f"nice_{i}"), d, context)
            steps.append(flows.nice_coupling(shift, first_half if i % 2 == 0 else ~first_half))
        return steps

    def _iaf(self, h):
        d = self.latent_dim
        context = self._context(h)
        hidden = (self.flow_hidden,) * self.flow_layers
        steps = []
        for i in range(self.num_flows):
            reverse = i % 2 == 1
            made = MADE(hidden, reverse, self.gate_bias, name=f"iaf_{i}")
            steps.append(flows.IAF(conditioner_function(made, d, context), reverse=reverse))
        return steps


def flow_vae(event_shape=(28, 28), latent_dim: int = 40, hidden=(400,), flow: str = "planar",
             num_flows: int = 10, head=likelihoods.Bernoulli(),
             output_bias_init=nn.initializers.zeros, **flow_options) -> VAE:
    """A :class:`jaxvae.VAE` with a normalizing-flow posterior (:class:`FlowEncoder`).

    The encoder is a tanh MLP (``hidden``, mirrored in the decoder), ``latent_dim`` latents,
    ``num_flows`` steps of ``flow``. The defaults follow the DLGM+NF MNIST setting of
    Rezende & Mohamed (2015): 40 latents, one deterministic layer of 400 units.

    Args: ``event_shape`` of x; ``latent_dim``; ``hidden`` widths; ``flow`` (one of
      :data:`jaxvae.flows.FLOWS`); ``num_flows`` K >= 0; ``head`` of p(x|z);
      ``output_bias_init``; ``**flow_options`` for :class:`FlowEncoder` (``flow_hidden``,
      ``context_dim``, ...).
    Returns: a :class:`jaxvae.VAE` with N(0, I) prior over ``[latent_dim]``.

    References: Rezende & Mohamed (2015), Variational inference with normalizing flows;
      Rezende, Mohamed & Wierstra (2014), Stochastic Backpropagation and Approximate
      Inference in Deep Generative Models (the DLGM).
    """
    encoder = FlowEncoder(tuple(hidden), latent_dim, flow=flow, num_flows=num_flows,
                          event_ndims=len(event_shape), **flow_options)
    decoder = MLPDecoder(tuple(reversed(hidden)), tuple(event_shape), head, "tanh",
                         output_bias_init)
    return VAE(encoder, decoder)
