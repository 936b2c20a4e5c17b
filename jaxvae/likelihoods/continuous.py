"""Heads with a density on the real line: :class:`Gaussian`, :class:`LearnedGaussian`
and :class:`Laplace`, with their distributions."""

from __future__ import annotations

import dataclasses

import distrax
import jax
import jax.numpy as jnp

from jaxvae.likelihoods.base import CheckedIndependent, as_unit_float, ndims, no_param

Array = jax.Array


#: how :class:`LearnedGaussian` obtains sigma: a decoder output per pixel, a learned
#: parameter per pixel (independent of z), or one learned scalar
SHARINGS = ("output", "pixel", "shared")


class GaussianDistribution(CheckedIndependent):
    """Independent N(loc, scale^2) over the event axes: the :class:`Gaussian` and
    :class:`LearnedGaussian` heads' p(x|z).

    -log p = sum (x - loc)^2 / (2 scale^2) + log(scale sqrt(2 pi)), nats. A density on the
    real line; the data it is fed are floats in [0, 1] (``support``), so integer data
    (raw 8-bit images) and values outside [0, 1] are errors. ``mean()`` is ``loc``;
    ``sample`` gives float32 values (which can leave [0, 1]).
    """

    support = (0.0, 1.0)
    integer_support = False
    continuous = True
    head_name = "Gaussian"

    def __init__(self, loc: Array, scale: Array, event_ndims: int, head_name: str = "Gaussian"):
        super().__init__(distrax.Normal(loc, scale), reinterpreted_batch_ndims=event_ndims)
        self.head_name = head_name


class LaplaceDistribution(CheckedIndependent):
    """Independent Laplace(loc, scale) over the event axes: the :class:`Laplace` head's p(x|z).

    -log p = sum |x - loc| / scale + log(2 scale), nats. Data: floats in [0, 1], as for
    :class:`GaussianDistribution`. ``mean()`` is ``loc``; ``sample`` gives float32 values.
    """

    support = (0.0, 1.0)
    integer_support = False
    continuous = True
    head_name = "Laplace"

    def __init__(self, loc: Array, scale: Array, event_ndims: int):
        super().__init__(distrax.Laplace(loc, scale), reinterpreted_batch_ndims=event_ndims)


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """p(x|z) = N(x; mean, scale^2 I) with a fixed ``scale`` (a hyper-parameter).

    -log p(x|z) = ||x - mean||^2 / (2 scale^2) + D log(scale sqrt(2 pi)): the
    L2-distortion decoder. raw: means ``[*event]``. Data: floats in [0, 1].
    """

    scale: float = 1.0

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"Gaussian scale must be positive, got {self.scale}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape, the same (means)."""
        return tuple(event_shape)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: data, means or samples ``x``. Returns: ``x`` as float32 (unchanged values)."""
        return as_unit_float(x)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event]`` (means).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a :class:`GaussianDistribution` with event shape ``[*event]``; log_prob in
          nats.
        """
        no_param(self, param)
        return GaussianDistribution(raw, jnp.full_like(raw, self.scale),
                                    ndims(raw, event_ndims, 0))


@dataclasses.dataclass(frozen=True)
class LearnedGaussian:
    """p(x|z) = N(x; mean, diag(sigma^2)), sigma = softplus(s) + min_scale.

    ``sharing`` says where the unconstrained s comes from:

    * ``"output"`` (default): a decoder output per pixel, raw ``[*event, 2]`` stacking
      means and s (sigma depends on z);
    * ``"pixel"``: a learned parameter per pixel, independent of z: raw = means
      ``[*event]``, ``param_shape = event_shape``;
    * ``"shared"``: one learned scalar for all pixels: raw = means ``[*event]``,
      ``param_shape = ()``.

    Free parameters are created by :func:`apply_head` (zeros: sigma = log 2 + min_scale at
    initialization). ``min_scale`` (default 0) is an explicit part of the model, not a
    clamp: it bounds the density from above. Data: floats in [0, 1].
    """

    min_scale: float = 0.0
    sharing: str = "output"

    def __post_init__(self):
        if self.sharing not in SHARINGS:
            raise ValueError(f"LearnedGaussian sharing must be one of {SHARINGS}, "
                             f"got {self.sharing!r}")
        if not self.min_scale >= 0:
            raise ValueError(f"LearnedGaussian min_scale must be >= 0, got {self.min_scale}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: ``(*event_shape, 2)`` for ``sharing="output"``,
        else ``event_shape`` (means)."""
        return (*event_shape, 2) if self.sharing == "output" else tuple(event_shape)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (``"output"``), ``event_shape``
        (``"pixel"``) or ``()`` (``"shared"``): the shape of the learned s."""
        return {"output": None, "pixel": tuple(event_shape), "shared": ()}[self.sharing]

    def to_unit(self, x) -> Array:
        """Args: data, means or samples ``x``. Returns: ``x`` as float32 (unchanged values)."""
        return as_unit_float(x)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output and, unless ``sharing="output"``, the learned s.

        Args: ``raw: [*batch, *event, 2]`` (means, s) for ``"output"``, else means
          ``[*batch, *event]``; ``event_ndims``, the rank of the event (default: no batch
          axes); ``param``: None for ``"output"``, else s of shape ``param_shape``.
        Returns: a :class:`GaussianDistribution` with event shape ``[*event]``; log_prob in
          nats.
        """
        if self.sharing == "output":
            no_param(self, param)
            mean, raw_scale = raw[..., 0], raw[..., 1]
            event_ndims = ndims(raw, event_ndims, 1)
        else:
            event_ndims = ndims(raw, event_ndims, 0)
            expected = self.param_shape(raw.shape[raw.ndim - event_ndims:])
            if param is None or jnp.shape(param) != expected:
                raise ValueError(
                    f"LearnedGaussian(sharing={self.sharing!r}) needs its learned scale as "
                    f"param= of shape {expected} (apply_head creates it), got "
                    f"{None if param is None else jnp.shape(param)}")
            mean, raw_scale = raw, jnp.broadcast_to(param, raw.shape)
        scale = jax.nn.softplus(raw_scale) + self.min_scale
        return GaussianDistribution(mean, scale, event_ndims, head_name="LearnedGaussian")


@dataclasses.dataclass(frozen=True)
class Laplace:
    """p(x|z) = prod_d Laplace(x_d; mean_d, scale) with a fixed ``scale`` b.

    -log p(x|z) = sum_d |x_d - mean_d| / b + D log(2 b): the L1-distortion decoder.
    raw: means ``[*event]``. Data: floats in [0, 1].
    """

    scale: float = 0.1

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"Laplace scale must be positive, got {self.scale}")

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape, the same (means)."""
        return tuple(event_shape)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: data, means or samples ``x``. Returns: ``x`` as float32 (unchanged values)."""
        return as_unit_float(x)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """p(x|z) from the decoder output ``raw: [*batch, *event]`` (means).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a :class:`LaplaceDistribution` with event shape ``[*event]``; log_prob in
          nats.
        """
        no_param(self, param)
        return LaplaceDistribution(raw, jnp.full_like(raw, self.scale),
                                   ndims(raw, event_ndims, 0))
