"""DRAW: a recurrent VAE that draws an image on a canvas over T steps (Gregor et al., 2015).

For t = 1..T, from a learned first canvas c_0 and zero LSTM states (paper eqs. 3-8):

    x^_t = x - sigmoid(c_{t-1})
    r_t = read(x, x^_t, h^dec_{t-1})
    h^enc_t = LSTM_enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t ~ q(z_t | h^enc_t) = N(mu_t, diag sigma_t^2),   (mu_t, log sigma_t) = Linear(h^enc_t)
    h^dec_t = LSTM_dec(h^dec_{t-1}, z_t)
    c_t = c_{t-1} + write(h^dec_t)

and p(x | z_1..T) = Bernoulli(sigmoid(c_T)), p(z_t) = N(0, I). One example is a grey image
``x: [H, W]`` and its latent the whole sequence ``z: [T, D]``, so the model implements
:class:`jaxvae.types.Model` and every bound of the library applies: log q(z|x) =
sum_t log q(z_t | h^enc_t), the KL of the ELBO is the sum of the steps' KLs
(:func:`jaxvae.draw_tools.step_kl` reports them one by one), and the k=5000 evaluator runs
unchanged.

q(z|x) is sequential and reads the decoder's state: :class:`DrawPosterior` is a distrax
distribution (:mod:`jaxvae.models.draw_posterior`) that runs the recurrence in one
``lax.scan`` (compile time does not grow with T); sampling draws z_t as it goes,
``log_prob(z)`` runs it on a given z (teacher forcing), and the bounds take log p(x|z) from
the canvas the sampling run drew instead of decoding z a second time.
Because q reads the decoder's parameters, the model declares ``shared_networks =
("decoder",)`` and the estimators that split inference from generative parameters (STL,
DReG, score function, RWS) refuse it; see docs/design.md, "DRAW".

Read and write without attention take the whole image and write a dense update; with
attention they are the N x N Gaussian grids of :mod:`jaxvae.models.draw_attention`, their
five parameters a linear map of h^dec (the read's in the encoder, the write's in the
decoder), each starting with its grid tiling the image
(:func:`jaxvae.models.draw_attention.tiling_init`; with the
paper's raw = 0 start a 2 x 2 read sees only the blank corners and q collapses).

Reference: Gregor, Danihelka, Graves, Rezende & Wierstra (2015), DRAW: A Recurrent Neural
Network For Image Generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxvae.models import draw_attention as attention_ops
from jaxvae.models.draw_posterior import (
    DrawPath,
    DrawPosterior,
    canvas_likelihood,
    zero_state,
)
from jaxvae.types import Array

__all__ = ["LSTMCell", "DrawEncoder", "DrawDecoder", "DrawPath", "DrawPosterior", "Draw",
           "draw"]

class LSTMCell(nn.Module):
    """An LSTM step with one matrix for all four gates: ``[i, f, g, o] = W [input, h] + b``,
    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c') (one matmul per step;
    the parameter ``gates/kernel`` is ``[inputs + hidden, 4 hidden]``, gates in that order).
    """

    hidden: int

    @nn.compact
    def __call__(self, carry, inputs: Array):
        """Args: ``carry = (c, h)``, each ``[hidden]``; ``inputs: [n]``.
        Returns: ``((c', h'), h')``."""
        c, h = carry
        gates = nn.Dense(4 * self.hidden, name="gates")(jnp.concatenate([inputs, h]))
        i, f, g, o = jnp.split(gates, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h


class DrawEncoder(nn.Module):
    """One step of q: read, LSTM_enc, the Gaussian of z_t.

    ``read_size`` 0 reads the whole image and error image; N > 0 reads two N x N glimpses
    placed by ``Linear(h^dec_{t-1})``.
    """

    hidden: int
    latent_dim: int
    read_size: int = 0

    @nn.compact
    def __call__(self, carry, x: Array, x_hat: Array, h_dec: Array):
        """Args: LSTM ``carry``; ``x``, ``x_hat``: ``[H, W]``; ``h_dec: [hidden]``.
        Returns: ``(carry, loc [D], scale [D], read glimpse [5] (zeros without attention))``.
        """
        if self.read_size:
            height, width = x.shape
            glimpse = nn.Dense(5, name="read_attention", bias_init=attention_ops.tiling_init(
                self.read_size, height, width))(h_dec)
            r = attention_ops.read(x, x_hat, glimpse, self.read_size)
        else:
            glimpse, r = jnp.zeros(5), attention_ops.read_plain(x, x_hat)
        carry, h = LSTMCell(self.hidden, name="lstm")(
            carry, jnp.concatenate([r, h_dec]))
        loc, log_scale = jnp.split(nn.Dense(2 * self.latent_dim, name="head")(h), 2)
        return carry, loc, jnp.exp(log_scale), glimpse


class DrawDecoder(nn.Module):
    """One step of p: LSTM_dec reads z_t, the canvas gets ``write(h^dec_t)``.

    ``write_size`` 0 writes a dense ``[H, W]`` update; N > 0 writes an N x N patch through
    a Gaussian grid placed by ``Linear(h^dec_t)``. The first canvas c_0 is a learned
    ``[H W]`` parameter ``canvas0`` (``canvas_init``: its initializer, zeros by default;
    the presets start it at the logits of the training images' mean).
    """

    hidden: int
    image_shape: tuple
    write_size: int = 0
    canvas_init: Callable | None = None

    def setup(self):
        """The LSTM, the write layer(s) and c_0."""
        height, width = self.image_shape
        self.lstm = LSTMCell(self.hidden)
        n = self.write_size
        self.write = nn.Dense(n * n if n else height * width)
        if n:
            self.write_attention = nn.Dense(5, bias_init=attention_ops.tiling_init(
                n, height, width, write=True))
        self.canvas0 = self.param("canvas0", self.canvas_init or nn.initializers.zeros,
                                  (height * width,))

    def start(self) -> Array:
        """c_0, the canvas logits before the first step: ``[H, W]``."""
        return self.canvas0.reshape(self.image_shape)

    def __call__(self, carry, canvas: Array, z: Array):
        """Args: LSTM ``carry``; ``canvas: [H, W]`` logits; ``z: [D]``.
        Returns: ``(carry, canvas [H, W], h_dec [hidden], write glimpse [5])``."""
        height, width = self.image_shape
        carry, h = self.lstm(carry, z)
        if self.write_size:
            n = self.write_size
            glimpse = self.write_attention(h)
            update = attention_ops.write(self.write(h).reshape(n, n), glimpse, height, width)
        else:
            glimpse = jnp.zeros(5)
            update = self.write(h).reshape(height, width)
        return carry, canvas + update, h, glimpse


class Draw(nn.Module):
    """Implements :class:`jaxvae.types.Model` for grey images ``x: [H, W]``, ``z: [T, D]``.

    Attributes:
      image_shape: (H, W).
      steps: T, the number of glimpses.
      latent_dim: D, the size of each z_t.
      hidden: the width of both LSTMs.
      read_size, write_size: N of the read and write grids; 0 reads the whole image and
        writes a dense update (no attention).
      canvas_init: the initializer of c_0 (``[H W]`` logits), e.g.
        :func:`jaxvae.models.mean_logit_init`; None: zeros.
    """

    image_shape: tuple = (28, 28)
    steps: int = 64
    latent_dim: int = 100
    hidden: int = 256
    read_size: int = 0
    write_size: int = 0
    canvas_init: Callable | None = None

    #: q(z|x)'s own network; the decoder is generative but q reads it as well
    inference_networks = ("encoder",)
    shared_networks = ("decoder",)

    def setup(self):
        """The encoder step and the decoder step (each applied T times)."""
        self.encoder = DrawEncoder(self.hidden, self.latent_dim, self.read_size)
        self.decoder = DrawDecoder(self.hidden, tuple(self.image_shape), self.write_size,
                                   self.canvas_init)

    @property
    def event_shape(self) -> tuple:
        """``(H, W)``."""
        return tuple(self.image_shape)

    @property
    def latent_shape(self) -> tuple:
        """``(T, D)``."""
        return (self.steps, self.latent_dim)

    def _unbound(self, name: str):
        module = getattr(self, name).clone(parent=None, name=None)
        return module, {"params": self.variables["params"][name]}

    def posterior(self, x: Array) -> DrawPosterior:
        """Args: ``x: [H, W]`` in [0, 1]. Returns: q(z_1..T | x), a :class:`DrawPosterior`."""
        return DrawPosterior(*self._unbound("encoder"), *self._unbound("decoder"), x,
                             self.steps, self.latent_dim, self.hidden)

    def prior(self) -> distrax.Distribution:
        """Returns: p(z) = N(0, I) over ``[T, D]``."""
        zeros = jnp.zeros(self.latent_shape)
        return distrax.Independent(distrax.Normal(zeros, 1.0 + zeros), 2)

    def _decode(self, z: Array, trace: bool):
        """The decoder alone over ``z: [T, D]``: ``(c_T [H, W], per-step (canvas logits,
        write glimpse) stacked over T when ``trace``, else None)``."""
        decoder, variables = self._unbound("decoder")

        def step(carry, z_t):
            dec, canvas = carry
            dec, canvas, _, glimpse = decoder.apply(variables, dec, canvas, z_t)
            return (dec, canvas), ((canvas, glimpse) if trace else None)

        start = (zero_state(self.hidden), decoder.apply(variables, method="start"))
        (_, canvas), steps = jax.lax.scan(step, start, z)
        return canvas, steps

    def canvases(self, z: Array) -> tuple[Array, Array]:
        """The decoder alone over ``z: [T, D]``: ``(canvas logits [T, H, W] after each step,
        write glimpses [T, 5])``."""
        return self._decode(z, trace=True)[1]

    def likelihood(self, z: Array) -> distrax.Distribution:
        """Args: ``z: [T, D]``. Returns: p(x|z) = Bernoulli(sigmoid(c_T)) over ``[H, W]``."""
        return canvas_likelihood(self._decode(z, trace=False)[0])

    def __call__(self, x: Array) -> Array:
        """Creates every parameter with one step of each network (used by ``init``).
        Args: ``x: [H, W]``. Returns: the canvas after one step."""
        state = zero_state(self.hidden)
        _, loc, _, _ = self.encoder(state, x, x, jnp.zeros(self.hidden))
        return self.decoder(state, self.decoder.start(), loc)[1]

    def init_params(self, key: Array) -> Any:
        """Parameters for one image. Args: ``key``. Returns: Flax variables."""
        return self.init(key, jnp.zeros(self.event_shape))


def draw(image_shape: tuple = (28, 28), steps: int = 64, latent_dim: int = 100,
         hidden: int = 256, attention: bool = False, read_size: int = 2,
         write_size: int = 5, canvas_init: Callable | None = None) -> Draw:
    """A DRAW model (Gregor et al., 2015) for grey images.

    Args: ``image_shape`` (H, W); ``steps`` T >= 1; ``latent_dim`` D >= 1; ``hidden`` LSTM
      width; ``attention`` (False: read the whole image, write densely); ``read_size`` and
      ``write_size``, N >= 1 of the attention grids (the paper's MNIST model: 2 and 5);
      ``canvas_init``, the initializer of the first canvas c_0 (None: zeros).
    Returns: a :class:`Draw`; ValueError for bad settings.
    """
    shape = tuple(image_shape)
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 2 for s in shape):
        raise ValueError(f"DRAW draws grey images: image_shape must be (H, W) with H, W >= 2, "
                         f"got {image_shape!r}")
    for name, value in (("steps", steps), ("latent_dim", latent_dim), ("hidden", hidden),
                        ("read_size", read_size), ("write_size", write_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if attention and max(read_size, write_size) > min(shape):
        raise ValueError(f"attention grids of {read_size} and {write_size} do not fit an "
                         f"image of {shape}")
    sizes = (read_size, write_size) if attention else (0, 0)
    return Draw(shape, steps, latent_dim, hidden, *sizes, canvas_init)
