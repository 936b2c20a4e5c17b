"""DRAW's posterior q(z_1..T | x): the recurrence of :mod:`jaxvae.models.draw` as a
distrax distribution over ``[T, D]``.

It holds the encoder and decoder steps as pure functions (unbound Flax modules and their
variables) and runs them in one ``lax.scan``: sampling draws z_t = mu_t + sigma_t eps_t as
it goes; ``log_prob(z)`` runs the recurrence on a given z (teacher forcing). Because the
recurrence draws the canvas anyway, :meth:`DrawPosterior.sample_and_log_likelihood` also
returns log p(x|z) from the last canvas, and :func:`jaxvae.sample_terms` uses it instead of
decoding z a second time (see docs/design.md, "DRAW").
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp

from jaxvae import likelihoods
from jaxvae.types import Array, PRNGKey

__all__ = ["DrawPath", "DrawPosterior", "canvas_likelihood", "zero_state"]

def canvas_likelihood(canvas: Array) -> distrax.Distribution:
    """p(x|z) = Bernoulli(sigmoid(c_T)) over ``[H, W]`` from the last canvas ``[H, W]``
    (logits): what ``Draw.likelihood`` returns and the bounds score."""
    return likelihoods.Bernoulli()(canvas, 2)


def zero_state(hidden: int) -> tuple[Array, Array]:
    """The LSTM state ``(c, h)`` before the first step: zeros ``[hidden]`` each."""
    return jnp.zeros(hidden), jnp.zeros(hidden)


class DrawPath(NamedTuple):
    """One run of the recurrence for one image: T steps."""

    z: Array          # [T, D] the latents
    loc: Array        # [T, D] the means of q(z_t | h^enc_t)
    scale: Array      # [T, D] their standard deviations
    canvas: Any       # [T, H, W] the canvas logits after each step (when traced), else None
    read: Any         # [T, 5] read glimpses (when traced), else None
    write: Any        # [T, 5] write glimpses (when traced), else None
    last_canvas: Any = None   # [H, W] the logits of c_T, what p(x|z) reads


class DrawPosterior(distrax.Distribution):
    """q(z_1..T | x) of DRAW for one image: a distribution over ``[T, D]``.

    Holds both networks as pure functions (unbound Flax modules and their variables) and
    runs the recurrence of :mod:`jaxvae.models.draw` in a ``lax.scan``.

    Args: ``encoder``, ``encoder_variables``, ``decoder``, ``decoder_variables``; ``x: [H,
      W]``; ``steps`` T; ``latent_dim`` D; ``hidden`` (both LSTMs' width).
    """

    def __init__(self, encoder, encoder_variables, decoder, decoder_variables, x: Array,
                 steps: int, latent_dim: int, hidden: int):
        self.encoder, self.encoder_variables = encoder, encoder_variables
        self.decoder, self.decoder_variables = decoder, decoder_variables
        self.x, self.steps, self.latent_dim, self.hidden = x, steps, latent_dim, hidden

    @property
    def event_shape(self) -> tuple:
        """``(T, D)``."""
        return (self.steps, self.latent_dim)

    batch_shape = ()        # one image

    def run(self, inputs: Array, given: bool, trace: bool = False) -> DrawPath:
        """The recurrence over ``inputs: [T, D]``: standard-normal noise (``given=False``,
        z_t = mu_t + sigma_t eps_t) or the latents themselves (``given=True``).

        Returns: a :class:`DrawPath`; with ``trace`` also the canvas and glimpses per step.
        """
        x = self.x.astype(jnp.float32)

        def step(carry, value):
            enc, dec, canvas, h_dec = carry
            x_hat = x - jax.nn.sigmoid(canvas)
            enc, loc, scale, read = self.encoder.apply(self.encoder_variables, enc, x, x_hat,
                                                       h_dec)
            z = value if given else loc + scale * value
            dec, canvas, h_dec, write = self.decoder.apply(self.decoder_variables, dec,
                                                           canvas, z)
            out = (z, loc, scale) + ((canvas, read, write) if trace else ())
            return (enc, dec, canvas, h_dec), out

        canvas0 = self.decoder.apply(self.decoder_variables, method="start")
        start = (zero_state(self.hidden), zero_state(self.hidden), canvas0,
                 jnp.zeros(self.hidden))
        (_, _, canvas, _), out = jax.lax.scan(step, start, inputs)
        return DrawPath(*out, last_canvas=canvas) if trace else \
            DrawPath(*out, None, None, None, canvas)

    def path(self, key: PRNGKey, trace: bool = False) -> DrawPath:
        """One sampled run: ``z ~ q(z|x)`` with its per-step Gaussians (and, with ``trace``,
        the canvas and glimpses over time)."""
        return self.run(jax.random.normal(key, self.event_shape), False, trace)

    def _draws(self, key: PRNGKey, n: int) -> tuple[DrawPath, Array]:
        """``n`` sampled paths (one key each from ``split(key, n)``) and their log q."""
        paths = jax.vmap(self.path)(jax.random.split(key, n))
        return paths, jax.vmap(_log_q)(paths)

    def _sample_n(self, key: PRNGKey, n: int) -> Array:
        return self._draws(key, n)[0].z

    def _sample_n_and_log_prob(self, key: PRNGKey, n: int) -> tuple[Array, Array]:
        paths, log_q = self._draws(key, n)
        return paths.z, log_q

    def sample_and_log_likelihood(self, key: PRNGKey, n: int) -> tuple[Array, Array, Array]:
        """``n`` draws with log q(z|x) and log p(x|z) from the canvas the run drew.

        The same draws and log q as ``sample_and_log_prob(seed=key, sample_shape=(n,))``;
        log p(x|z) = log Bernoulli(x | sigmoid(c_T)) is what ``Draw.likelihood(z)`` gives,
        without decoding z again. Returns: ``(z [n, T, D], log_q [n], log_px_z [n])``.
        """
        paths, log_q = self._draws(key, n)
        log_px_z = jax.vmap(lambda c: canvas_likelihood(c).log_prob(self.x))(paths.last_canvas)
        return paths.z, log_q, log_px_z

    def log_prob(self, value: Array) -> Array:
        """log q(z|x) = sum_t log N(z_t; mu_t, sigma_t^2), nats. Args: ``value: [T, D]``."""
        value = jnp.asarray(value)
        if value.shape != self.event_shape:
            raise ValueError(f"z must have shape {self.event_shape}, got {value.shape}")
        return _log_q(self.run(value, True))


def _log_q(path: DrawPath) -> Array:
    """log q(z|x) = sum_t log N(z_t; mu_t, sigma_t^2) along a path, nats."""
    return jnp.sum(distrax.Normal(path.loc, path.scale).log_prob(path.z))
