"""Heads over integer levels: :class:`DiscretizedLogistic` and
:class:`DiscretizedLogisticMixture`, with their distributions."""

from __future__ import annotations

import dataclasses

import distrax
import jax
import jax.numpy as jnp

from jaxvae.likelihoods.base import CheckedIndependent, as_unit_float, ndims, no_param

Array = jax.Array


def _log_level_prob(x: Array, loc: Array, scale: Array, num_bits: int) -> Array:
    """log P(x) of the discretized logistic, elementwise, nats.

    With L = 2^b - 1, the level x in {0, ..., L} is the bin [(x - 1/2) / L, (x + 1/2) / L)
    of y ~ Logistic(loc, scale), the lowest bin extended to -inf and the highest to +inf.
    With a and b the bin's upper and lower edges standardized, (edge - loc) / scale, and
    d = a - b = 1 / (L scale),

        sigmoid(a) - sigmoid(b) = sigmoid(a) * (1 - sigmoid(b)) * (1 - exp(-d)),

    so log P = -softplus(-a) - softplus(b) + log(-expm1(-d)): three terms <= 0, each
    accurate in float32 for any a, b and d > 0, and summed without cancellation: far in
    either tail (a bin mass that underflows float32 still has a finite, accurate log), for
    a scale much smaller than a level (log P near 0) or much larger (log P ~ log(d / 4)),
    and computed in level units, where the bin edges x +- 1/2 are exact. The lowest
    bin drops the factors of its lower edge (1 - sigmoid(-inf) and 1 - exp(-inf) are 1),
    the highest those of its upper edge. Levels outside {0, ..., L} get -inf (only
    reachable under jit, where :func:`check_support` cannot look at the values).

    Args: ``x``, integer levels; ``loc`` on the [0, 1] scale; ``scale`` > 0; broadcastable.
    Returns: log P(x), their broadcast shape.
    """
    top = 2 ** num_bits - 1
    level = jnp.asarray(x).astype(loc.dtype)
    centre, width = loc * top, scale * top          # in levels: the edges x +- 1/2 are exact
    a = (level + 0.5 - centre) / width
    b = (level - 0.5 - centre) / width
    d = 1.0 / width
    lowest, highest = level <= 0, level >= top
    log_p = (jnp.where(highest, 0.0, -jax.nn.softplus(-a))
             + jnp.where(lowest, 0.0, -jax.nn.softplus(b))
             + jnp.where(lowest | highest, 0.0, jnp.log(-jnp.expm1(-d))))
    return jnp.where((level < 0) | (level > top), -jnp.inf, log_p)


def _mean_level(loc: Array, scale: Array, num_bits: int) -> Array:
    """E[x] = sum_{k=1}^{L} P(x >= k) = sum_k sigmoid((L loc - (k - 1/2)) / (L scale)), exact.

    L sigmoids per element, accumulated in a loop (memory of one term). Returns a float
    in [0, L] of the broadcast shape of ``loc`` and ``scale``.
    """
    top = 2 ** num_bits - 1
    centre, width = loc * top, scale * top

    def add(k, total):
        return total + jax.nn.sigmoid((centre - (k - 0.5)) / width)

    shape = jnp.broadcast_shapes(loc.shape, scale.shape)
    return jax.lax.fori_loop(1, top + 1, add, jnp.zeros(shape, loc.dtype))


def _level_of(y: Array, num_bits: int) -> Array:
    """The level whose bin holds y: round(y L) in {0, ..., L} (the end bins are unbounded)."""
    top = 2 ** num_bits - 1
    return jnp.clip(jnp.floor(y * top + 0.5), 0, top).astype(jnp.int32)


class _LogisticLevels(distrax.Distribution):
    """One discretized logistic per element of ``loc`` (event shape ``()``)."""

    def __init__(self, loc: Array, scale: Array, num_bits: int):
        super().__init__()
        self._loc, self._scale, self._num_bits = loc, scale, num_bits

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return jnp.broadcast_shapes(self._loc.shape, self._scale.shape)

    def log_prob(self, value: Array) -> Array:
        return _log_level_prob(value, self._loc, self._scale, self._num_bits)

    def _sample_n(self, key, n: int) -> Array:
        shape = (n, *self.batch_shape)
        y = self._loc + self._scale * jax.random.logistic(key, shape, self._loc.dtype)
        return _level_of(y, self._num_bits)

    def mean(self) -> Array:
        return _mean_level(self._loc, self._scale, self._num_bits)


class _LogisticMixtureLevels(distrax.Distribution):
    """One mixture of K discretized logistics per element (parameters ``[..., K]``)."""

    def __init__(self, logits: Array, loc: Array, scale: Array, num_bits: int):
        super().__init__()
        self._logits, self._loc, self._scale = logits, loc, scale
        self._num_bits = num_bits

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return self._loc.shape[:-1]

    def log_prob(self, value: Array) -> Array:
        log_w = jax.nn.log_softmax(self._logits, axis=-1)
        per_component = _log_level_prob(jnp.asarray(value)[..., None], self._loc,
                                        self._scale, self._num_bits)
        return jax.nn.logsumexp(log_w + per_component, axis=-1)

    def _sample_n(self, key, n: int) -> Array:
        key_k, key_y = jax.random.split(key)
        shape = (n, *self.batch_shape)
        k = jax.random.categorical(key_k, self._logits, axis=-1, shape=shape)[..., None]
        loc = jnp.take_along_axis(jnp.broadcast_to(self._loc, (*shape, self._loc.shape[-1])),
                                  k, axis=-1)[..., 0]
        scale = jnp.take_along_axis(
            jnp.broadcast_to(self._scale, (*shape, self._scale.shape[-1])), k, axis=-1)[..., 0]
        y = loc + scale * jax.random.logistic(key_y, shape, loc.dtype)
        return _level_of(y, self._num_bits)

    def mean(self) -> Array:
        weights = jax.nn.softmax(self._logits, axis=-1)
        return jnp.sum(weights * _mean_level(self._loc, self._scale, self._num_bits), axis=-1)


class _LevelsIndependent(CheckedIndependent):
    """Independent distributions over integer levels {0, ..., 2^b - 1} (``num_bits`` b)."""

    integer_support = True
    continuous = False

    @property
    def support(self) -> tuple[float, float]:
        """The data range (0, 2^b - 1)."""
        return (0.0, float(2 ** self.num_bits - 1))


class DiscretizedLogisticDistribution(_LevelsIndependent):
    """Independent discretized logistics over the event axes: the
    :class:`DiscretizedLogistic` head's P(x|z) on the levels {0, ..., 2^b - 1}.

    ``log_prob`` sums log P(x_d) (nats; see :class:`DiscretizedLogistic`), and needs
    integer data in [0, 2^b - 1] (``support``, ``integer_support``): floats, such as
    images scaled to [0, 1], are an error. ``mean()`` is the exact expected level, a float
    in [0, 2^b - 1] (2^b - 1 sigmoids per pixel); ``sample`` gives int32 levels.
    """

    head_name = "DiscretizedLogistic"

    def __init__(self, loc: Array, scale: Array, num_bits: int, event_ndims: int):
        super().__init__(_LogisticLevels(loc, scale, num_bits),
                         reinterpreted_batch_ndims=event_ndims)
        self.num_bits = num_bits


class DiscretizedLogisticMixtureDistribution(_LevelsIndependent):
    """Independent mixtures of discretized logistics over the event axes: the
    :class:`DiscretizedLogisticMixture` head's P(x|z); data, ``mean()`` (exact) and
    ``sample`` (int32 levels) as for :class:`DiscretizedLogisticDistribution`.
    """

    head_name = "DiscretizedLogisticMixture"

    def __init__(self, logits: Array, loc: Array, scale: Array, num_bits: int,
                 event_ndims: int):
        super().__init__(_LogisticMixtureLevels(logits, loc, scale, num_bits),
                         reinterpreted_batch_ndims=event_ndims)
        self.num_bits = num_bits


def _check_bits(head) -> None:
    if not (isinstance(head.num_bits, int) and 1 <= head.num_bits <= 16):
        raise ValueError(f"{type(head).__name__} num_bits must be an integer in [1, 16], "
                         f"got {head.num_bits!r}")
    if head.min_scale is not None and not head.min_scale >= 0:
        raise ValueError(f"{type(head).__name__} min_scale must be >= 0 (or None), "
                         f"got {head.min_scale}")


def _scale_floor(head) -> float:
    top = 2 ** head.num_bits - 1
    return 0.01 / top if head.min_scale is None else float(head.min_scale)


@dataclasses.dataclass(frozen=True)
class DiscretizedLogistic:
    """P(x|z) = prod_d P(x_d) over the integer levels x_d in {0, ..., L}, L = 2^b - 1.

    Each level is a bin of a logistic y ~ Logistic(mu, s) on the [0, 1] scale: with
    c = x / L and the half bin width h = 1 / (2L),

        P(x) = sigmoid((c + h - mu) / s) - sigmoid((c - h - mu) / s),

    the lowest bin's lower edge at -inf and the highest bin's upper edge at +inf, so the
    L + 1 probabilities sum to exactly 1. log P is computed in a form that is accurate in
    float32 in every regime without clamping anything (see the distribution's docstring).

    raw: ``[*event, 2]`` = (mu, r), mu on the [0, 1] scale and r the unconstrained scale:
    ``s = softplus(r) + min_scale``. The floor ``min_scale`` is a model parameter, not a
    clamp; it keeps 1 / s and the gradients finite in float32. None (the default) means
    a hundredth of a level, 1 / (100 L), which caps an interior level's probability at
    tanh(25), equal to 1 in float32: the floor does not restrict the model. 0 is
    allowed (probabilities stay <= 1), but s then underflows to 0 for r below about -87.

    Data: integer levels (uint8 images for b = 8) in [0, L]. ``to_unit`` maps them to
    [0, 1] for display.
    """

    num_bits: int = 8
    min_scale: float | None = None

    def __post_init__(self):
        _check_bits(self)

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the decoder output shape ``(*event_shape, 2)``."""
        return (*event_shape, 2)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: levels, samples or means ``x`` in [0, L]. Returns: float32 ``x / L``."""
        return as_unit_float(x) / (2 ** self.num_bits - 1)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """P(x|z) from the decoder output ``raw: [*batch, *event, 2]`` (mu, r).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a :class:`DiscretizedLogisticDistribution`, event shape ``[*event]``;
          log_prob in nats.
        """
        no_param(self, param)
        scale = jax.nn.softplus(raw[..., 1]) + _scale_floor(self)
        return DiscretizedLogisticDistribution(raw[..., 0], scale, self.num_bits,
                                               ndims(raw, event_ndims, 1))


@dataclasses.dataclass(frozen=True)
class DiscretizedLogisticMixture:
    """P(x|z) = prod_d sum_k pi_dk P_k(x_d): a mixture of K discretized logistics per pixel.

    log P(x_d) = logsumexp_k(log_softmax(w_d)_k + log P(x_d; mu_dk, s_dk)), with P as in
    :class:`DiscretizedLogistic` and s = softplus(r) + min_scale (the same floor). Every
    sub-pixel (colour channel) is independent given z: unlike PixelCNN++, the channels of
    a pixel are not coupled (no mean of one channel depends on another).

    raw: ``[*event, 3K]`` laid out as ``[w_1..w_K, mu_1..mu_K, r_1..r_K]``: mixture
    logits, means on the [0, 1] scale, unconstrained scales. With K = 1 it equals
    :class:`DiscretizedLogistic` given ``raw[..., 1:]``. Data: integer levels in [0, L].
    """

    num_components: int = 5
    num_bits: int = 8
    min_scale: float | None = None

    def __post_init__(self):
        if not (isinstance(self.num_components, int) and self.num_components >= 1):
            raise ValueError(f"DiscretizedLogisticMixture num_components must be a positive "
                             f"integer, got {self.num_components!r}")
        _check_bits(self)

    def raw_shape(self, event_shape):
        """Args: ``event_shape``. Returns: the output shape ``(*event_shape, 3K)``."""
        return (*event_shape, 3 * self.num_components)

    def param_shape(self, event_shape):
        """Args: ``event_shape``. Returns: None (no free parameter)."""
        return None

    def to_unit(self, x) -> Array:
        """Args: levels, samples or means ``x`` in [0, L]. Returns: float32 ``x / L``."""
        return as_unit_float(x) / (2 ** self.num_bits - 1)

    def __call__(self, raw: Array, event_ndims: int | None = None,
                 param: Array | None = None) -> distrax.Distribution:
        """P(x|z) from the decoder output ``raw: [*batch, *event, 3K]`` (w, mu, r).

        Args: ``raw``; ``event_ndims``, the rank of the event (default: no batch axes);
          ``param`` must be None.
        Returns: a :class:`DiscretizedLogisticMixtureDistribution`, event shape
          ``[*event]``; log_prob in nats.
        """
        no_param(self, param)
        k = self.num_components
        if raw.shape[-1] != 3 * k:
            raise ValueError(f"DiscretizedLogisticMixture({k}) needs raw [..., {3 * k}], got "
                             f"shape {raw.shape}")
        logits, loc, raw_scale = raw[..., :k], raw[..., k:2 * k], raw[..., 2 * k:]
        scale = jax.nn.softplus(raw_scale) + _scale_floor(self)
        return DiscretizedLogisticMixtureDistribution(logits, loc, scale, self.num_bits,
                                                      ndims(raw, event_ndims, 1))
