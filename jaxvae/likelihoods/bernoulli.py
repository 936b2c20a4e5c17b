"""The Bernoulli head: :class:`Bernoulli` and its distribution :class:`BernoulliLogits`."""

from __future__ import annotations

import dataclasses

import distrax
import jax
import jax.numpy as jnp

from jaxvae.likelihoods.base import as_unit_float, check_support, ndims, no_param

Array = jax.Array


@jax.custom_vjp
def _bernoulli_log_prob(x: Array, logits: Array) -> Array:
    """x * l - softplus(l) per element, softplus written out as max(l, 0) + log1p(exp(-|l|))."""
    return x * logits - (jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def _bernoulli_log_prob_fwd(x, logits):
    return _bernoulli_log_prob(x, logits), (x, logits)


def _bernoulli_log_prob_bwd(residuals, g):
    x, logits = residuals
    return g * logits, g * (x - jax.nn.sigmoid(logits))


_bernoulli_log_prob.defvjp(_bernoulli_log_prob_fwd, _bernoulli_log_prob_bwd)


class BernoulliLogits(distrax.Independent):
    """Independent Bernoulli(sigmoid(l)) over the event axes, log p = sum x * l - softplus(l).

    Equal to distrax's (1 - x) log sigmoid(-l) + x log sigmoid(l) for x in [0, 1] and finite
    logits, but computed so that XLA:CPU fuses the decoder's output layer with it: one
    softplus per pixel written without NaN-guard selects, the gradient x - sigmoid(l) given
    directly (a ``custom_vjp``, so forward-mode ``jvp`` through it is not supported), and
    one sum over the flattened event. This is the hot spot of training and of large-k
    evaluation on CPU.

    ``mean()`` is sigmoid(l); ``sample`` gives int32 zeros and ones.
    """

    #: the data range the density is defined on (values outside it are an error)
    support = (0.0, 1.0)
    #: any dtype is accepted: bool, 0/1 integers and grey values in [0, 1]
    integer_support = False
    continuous = False
    head_name = "Bernoulli"

    def __init__(self, logits: Array, event_ndims: int):
        super().__init__(distrax.Bernoulli(logits=logits), reinterpreted_batch_ndims=event_ndims)

    def log_prob(self, value: Array) -> Array:
        """Args: ``value: [*batch, *event]`` in [0, 1]. Returns: ``[*batch]`` log p, nats.

        Concrete values outside [0, 1] raise ValueError (see :func:`check_support`).
        """
        check_support(self, value)
        logits = self.distribution.logits
        shape = jnp.broadcast_shapes(jnp.shape(value), logits.shape)
        per_pixel = _bernoulli_log_prob(jnp.broadcast_to(value, shape).astype(logits.dtype),
                                        jnp.broadcast_to(logits, shape))
        n = self.reinterpreted_batch_ndims
        return jnp.sum(per_pixel.reshape(*shape[:len(shape) - n], -1), axis=-1)


@dataclasses.dataclass(frozen=True)
class Bernoulli:
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d)), x_d in {0, 1} (or [0, 1]).

    raw: logits ``[*event]``. Data: any dtype with values in [0, 1].
    """

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape, the same (logits)."""
        return tuple(event_shape)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: data or samples ``x``. Returns: ``x`` as float32 (already in [0, 1])."""
        return as_unit_float(x)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event]`` (logits).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a :class:`BernoulliLogits` with event shape ``[*event]``; log_prob in nats.
        """
        no_param(self, param)
        return BernoulliLogits(raw, ndims(raw, event_ndims, 0))
