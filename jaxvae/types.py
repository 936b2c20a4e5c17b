"""Type names and the model contract.

Every model family in :mod:`jaxvae.models` implements :class:`Model`, and every objective,
estimator, evaluator and latent-space tool reaches a model only through
:func:`jaxvae.model_terms` / :func:`jaxvae.bind`, the one place that calls
``model.apply(..., method=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax

__all__ = ["Array", "PRNGKey", "Params", "Batch", "LogLikelihood", "LossFn", "Model"]

Array = jax.Array
#: a typed key from ``jax.random.key`` or a raw ``jax.random.PRNGKey``
PRNGKey = jax.Array
#: a parameter pytree: Flax variables ``{"params": {...}}`` or a dict of sub-networks
Params = Any
#: a batch pytree: ``x: [B, *event]``, a tuple ``(x, y)`` or a dict of ``[B, ...]`` arrays
Batch = Any
#: ``log_likelihood(z: [*latent]) -> log p(x|z)``, a scalar, for one fixed example x
LogLikelihood = Callable[[Array], Array]
#: ``loss(params, batch, key) -> (scalar loss, dict of scalar metrics)``
LossFn = Callable[[Params, Batch, PRNGKey], "tuple[Array, dict]"]


@runtime_checkable
class Model(Protocol):
    """What a model provides to the library: q(z|x), p(z), p(x|z) and their parameters.

    Attributes:
      event_shape: the shape of one example x, e.g. ``(28, 28)``.
      latent_shape: the shape of one latent z, e.g. ``(50,)``; a sequential model
        (DRAW) has ``(T, D)``.
      inference_networks: names of the top-level sub-networks that q(z|x) reads (its
        parameters phi); every other sub-network is generative (theta). Estimators that
        treat phi and theta differently (STL, DReG, score function, RWS, wake-sleep)
        split the parameters by these names.
      shared_networks: optional; generative sub-networks that q(z|x) reads as well (DRAW's
        posterior reads its decoder's state). Such a model's parameters do not split, and
        :func:`jaxvae.split_params` refuses it (docs/design.md, "DRAW").

    Methods (reached as ``model.apply(params, *args, method=name, rngs=rngs)``, exactly as
    a ``flax.linen.Module`` is applied):

    * ``posterior(x, condition=None)``: q(z|x[, c]) for one ``x: [*event_shape]``, a
      distrax distribution with event shape ``latent_shape`` and batch shape ``()``.
    * ``prior(condition=None)``: p(z[|c]), a distrax distribution over ``[*latent_shape]``.
    * ``likelihood(z, condition=None)``: p(x|z[, c]) for one ``z: [*latent_shape]``, a
      distrax distribution over ``[*event_shape]``.

    ``condition`` carries a label or code vector for conditional models; the library passes
    it only when the caller gives one, so an unconditional model may leave it out of its
    signatures. A stochastic part of a model (word dropout) draws from flax ``rngs``: the
    model names those streams in an optional ``rng_streams`` tuple, and the training losses
    provide them (:func:`jaxvae.terms.training_rngs`); evaluation does not.

    And ``init_params(key) -> Params``, parameters for one example.

    A Flax module joins by adding these methods::

        class MyVAE(nn.Module):
            latent_dim: int = 8
            event_shape = (28, 28)
            inference_networks = ("encoder",)

            def setup(self):
                self.encoder = MyEncoder(self.latent_dim)     # x -> (loc, scale)
                self.decoder = MyDecoder()                     # z -> logits [28, 28]

            @property
            def latent_shape(self):
                return (self.latent_dim,)

            def posterior(self, x):
                loc, scale = self.encoder(x)
                return distrax.Independent(distrax.Normal(loc, scale), 1)

            def prior(self):
                zeros = jnp.zeros(self.latent_dim)
                return distrax.Independent(distrax.Normal(zeros, 1.0 + zeros), 1)

            def likelihood(self, z):
                return distrax.Independent(distrax.Bernoulli(logits=self.decoder(z)), 2)

            def __call__(self, x):            # used by init: touches every network
                return self.likelihood(self.posterior(x).mean())

            def init_params(self, key):
                return self.init(key, jnp.zeros(self.event_shape))
    """

    event_shape: tuple
    latent_shape: tuple
    inference_networks: tuple

    def init_params(self, key: PRNGKey) -> Params:
        """Args: ``key``, a PRNG key. Returns: parameters for one example ``[*event_shape]``."""
        ...

    def apply(self, params: Params, *args, method: str, **kwargs) -> Any:
        """Calls ``method`` (``"posterior"``, ``"prior"``, ``"likelihood"``) with ``params``.

        Args: ``params``; the method's ``*args`` (``x``, none, or ``z``, and ``condition``);
          ``method``, its name; ``**kwargs`` such as ``rngs``.
        Returns: the method's distrax distribution.
        """
        ...
