"""The :class:`Categorical` head, e.g. for the tokens of a sentence."""

from __future__ import annotations

import dataclasses

import distrax
import jax

from jaxvae.likelihoods.base import as_unit_float, independent, ndims, no_param

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Categorical:
    """p(x|z) = prod_t Categorical(x_t; softmax(logits_t)), e.g. tokens of a sentence.

    raw: logits ``[*event, num_classes]``; x: integer classes ``[*event]``.
    """

    num_classes: int

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the output shape ``(*event_shape, num_classes)``."""
        return (*event_shape, self.num_classes)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: classes ``x``. Returns: float32 ``x / (num_classes - 1)`` in [0, 1]."""
        return as_unit_float(x) / (self.num_classes - 1)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event, num_classes]`` (logits).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a distribution over integer classes ``[*event]``; log_prob in nats.
        """
        no_param(self, param)
        return independent(distrax.Categorical(logits=raw), ndims(raw, event_ndims, 1))
