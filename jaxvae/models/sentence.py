"""The sentence VAE (Bowman et al., 2016) and its RNN language-model baseline.

    q(z|x) = N(mu(h_n), diag sigma(h_n)^2),   h_n = LSTM_enc(embed(x_0..x_n+1)),
    p(z) = N(0, I),   p(x|z) = prod_t Cat(x_t | LSTM_dec(x_<t, z)),

with the decoder's initial LSTM state a linear map of z (and, with ``z_every_step``, z
concatenated to every input word as well). One example is a padded row of token ids
``x: [max_length + 2]`` (``<bos> w_1 .. w_n <eos> <pad> ..``, from
:func:`jaxvae.data.encode_batch`); p(x|z) is a :class:`jaxvae.models.TokenSequence`, so
every objective, estimator and the evaluator of the library apply unchanged, and the
same distribution samples, decodes greedily and runs beam search.

Both LSTMs are Flax's scanned ``nn.RNN`` over ``OptimizedLSTMCell``: compile time does not
grow with the sentence length. Word dropout (``word_keep < 1``) draws from the flax rng
stream ``"word_dropout"``, which the training loss provides (:func:`jaxvae.make_loss`) and
the evaluation does not; ``word_keep = 0`` is the inputless decoder.

:func:`rnn_lm` is the same decoder without z (``latent_dim = 0``): q(z|x) and p(z) are
distributions over an empty vector, every bound equals log p(x) exactly, and the model
trains and evaluates through the same code as the VAE.

Reference: Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio (2016), Generating Sentences
from a Continuous Space.
"""

from __future__ import annotations

from typing import Any

import distrax
import flax.linen as nn
import jax.numpy as jnp

from jaxvae.models.mlp import GaussianHead, diag_gaussian
from jaxvae.models.token_sequence import PAD, TokenSequence
from jaxvae.types import Array

__all__ = ["SentenceEncoder", "SentenceDecoder", "SentenceVAE", "sentence_vae", "rnn_lm",
           "WORD_DROPOUT_RNG"]

#: the flax rng stream that word dropout draws from
WORD_DROPOUT_RNG = "word_dropout"


class SentenceEncoder(nn.Module):
    """ids ``[L]`` -> q(z|x): an embedding, an LSTM over the real tokens, a Gaussian head.

    The LSTM's last state at the sentence's own length (``<pad>`` excluded) feeds
    :class:`jaxvae.models.GaussianHead`.
    """

    vocab_size: int
    embed_dim: int
    hidden: int
    latent_dim: int

    @nn.compact
    def __call__(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [L]`` int ids. Returns: N(mu, diag sigma^2) over ``[latent_dim]``."""
        length = jnp.sum(x != PAD)
        words = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(x)
        cell = nn.OptimizedLSTMCell(self.hidden, name="lstm")
        (_, h), _ = nn.RNN(cell, return_carry=True)(words, seq_lengths=length)
        return GaussianHead(self.latent_dim, "exp", name="head")(h)


class SentenceDecoder(nn.Module):
    """An LSTM language model whose initial state (and optionally every input) sees z.

    Methods: ``__call__(z, inputs [T]) -> logits [T, V]`` (teacher forcing, scanned);
    ``start(z) -> carry`` and ``step(carry, token, z) -> (carry, logits [V])`` for decoding.
    """

    vocab_size: int
    embed_dim: int
    hidden: int
    latent_dim: int
    z_every_step: bool = False

    def setup(self):
        """The embedding, the initial-state map, the shared LSTM cell and the output layer."""
        self.embed = nn.Embed(self.vocab_size, self.embed_dim)
        if self.latent_dim == 0:    # the language model: a learned initial state
            self.initial_state = self.param("initial_state", nn.initializers.zeros,
                                            (2 * self.hidden,))
        else:
            self.init_state = nn.Dense(2 * self.hidden)
        self.cell = nn.OptimizedLSTMCell(self.hidden)
        self.rnn = nn.RNN(self.cell)
        self.out = nn.Dense(self.vocab_size)

    def start(self, z: Array):
        """The LSTM state before ``<bos>``: ``(c, h)``, each ``[hidden]``, a linear map of z
        ``[D]`` (learned, the same for every sentence, when ``latent_dim == 0``)."""
        state = self.initial_state if self.latent_dim == 0 else self.init_state(z)
        c, h = jnp.split(state, 2, axis=-1)
        return c, jnp.tanh(h)

    def _inputs(self, tokens: Array, z: Array) -> Array:
        words = self.embed(tokens)
        if not self.z_every_step:
            return words
        return jnp.concatenate([words, jnp.broadcast_to(z, (*words.shape[:-1], z.shape[-1]))],
                               axis=-1)

    def step(self, carry, token: Array, z: Array):
        """One step: ``(carry, logits [V])`` after reading ``token`` (an int id)."""
        carry, h = self.cell(carry, self._inputs(token, z))
        return carry, self.out(h)

    def __call__(self, z: Array, inputs: Array) -> Array:
        """Teacher forcing. Args: ``z: [D]``, ``inputs: [T]`` ids. Returns: logits ``[T, V]``."""
        h = self.rnn(self._inputs(inputs, z), initial_carry=self.start(z))
        return self.out(h)


class SentenceVAE(nn.Module):
    """Implements :class:`jaxvae.types.Model` for sentences ``x: [max_length + 2]`` ids.

    Attributes:
      vocab_size: V, including the four reserved ids (``<pad>`` 0, ``<unk>`` 1, ``<bos>``
        2, ``<eos>`` 3).
      max_length: the most words in a sentence (the row length is ``max_length + 2``).
      embed_dim, hidden: word-embedding and LSTM widths (encoder and decoder alike).
      latent_dim: D; 0 makes the RNN language model (no encoder).
      word_keep: the probability that the decoder sees a word in training (Bowman et al.'s
        word dropout; 0 is the inputless decoder).
      z_every_step: also feed z with every decoder input.
    """

    vocab_size: int
    max_length: int = 30
    embed_dim: int = 256
    hidden: int = 256
    latent_dim: int = 16
    word_keep: float = 1.0
    z_every_step: bool = False

    def setup(self):
        """The encoder (none when ``latent_dim == 0``) and the decoder."""
        if self.latent_dim > 0:
            self.encoder = SentenceEncoder(self.vocab_size, self.embed_dim, self.hidden,
                                           self.latent_dim)
        self.decoder = SentenceDecoder(self.vocab_size, self.embed_dim, self.hidden,
                                       self.latent_dim, self.z_every_step)

    @property
    def inference_networks(self) -> tuple:
        """``("encoder",)``; the language model (``latent_dim == 0``) has none."""
        return ("encoder",) if self.latent_dim > 0 else ()

    @property
    def rng_streams(self) -> tuple:
        """The flax rng streams of training-time noise: word dropout's when ``0 < word_keep
        < 1`` (the inputless decoder, ``word_keep = 0``, is deterministic)."""
        return (WORD_DROPOUT_RNG,) if 0.0 < self.word_keep < 1.0 else ()

    @property
    def event_shape(self) -> tuple:
        """``(max_length + 2,)``: one padded row of ids."""
        return (self.max_length + 2,)

    @property
    def latent_shape(self) -> tuple:
        """``(latent_dim,)``."""
        return (self.latent_dim,)

    def posterior(self, x: Array) -> distrax.Distribution:
        """Args: ``x: [max_length + 2]`` ids. Returns: q(z|x) over ``[latent_dim]``."""
        if self.latent_dim == 0:
            return self.prior()
        return self.encoder(x)

    def prior(self) -> distrax.Distribution:
        """Returns: p(z) = N(0, I) over ``[latent_dim]``."""
        return diag_gaussian(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim))

    def likelihood(self, z: Array) -> TokenSequence:
        """Args: ``z: [latent_dim]``. Returns: p(x|z), a :class:`TokenSequence` over
        ``[max_length + 2]`` ids; with ``0 < word_keep < 1`` and a ``"word_dropout"`` rng,
        its ``log_prob`` applies word dropout."""
        key = None
        if 0.0 < self.word_keep < 1.0 and self.has_rng(WORD_DROPOUT_RNG):
            key = self.make_rng(WORD_DROPOUT_RNG)
        decoder = self.decoder.clone(parent=None, name=None)
        variables = {"params": self.variables["params"]["decoder"]}
        return TokenSequence(decoder, variables, z, self.max_length + 2, self.vocab_size,
                             self.word_keep, key)

    def __call__(self, x: Array) -> Array:
        """Creates every parameter (used by ``init``). Args: ``x: [L]``. Returns: logits."""
        z = self.posterior(x).mean()
        return self.decoder(z, x[:-1])

    def init_params(self, key: Array) -> Any:
        """Parameters for one sentence. Args: ``key``. Returns: Flax variables."""
        return self.init(key, jnp.zeros(self.event_shape, jnp.int32))


def _check(vocab_size, max_length, embed_dim, hidden, latent_dim, word_keep):
    for name, value, low in (("vocab_size", vocab_size, 5), ("max_length", max_length, 1),
                             ("embed_dim", embed_dim, 1), ("hidden", hidden, 1),
                             ("latent_dim", latent_dim, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(word_keep, bool) or not isinstance(word_keep, (int, float)) \
            or not 0.0 <= word_keep <= 1.0:
        raise ValueError(f"word_keep must be a probability in [0, 1], got {word_keep!r}")


def sentence_vae(vocab_size: int, max_length: int = 30, embed_dim: int = 256,
                 hidden: int = 256, latent_dim: int = 16, word_keep: float = 1.0,
                 z_every_step: bool = False) -> SentenceVAE:
    """A sentence VAE (Bowman et al., 2016): LSTM encoder and decoder, Gaussian z.

    Args: ``vocab_size`` (>= 5: the four reserved ids and a word); ``max_length`` words;
      ``embed_dim``; ``hidden`` LSTM units; ``latent_dim`` >= 0; ``word_keep`` in [0, 1];
      ``z_every_step``. Returns: a :class:`SentenceVAE`; ValueError for bad settings.
    """
    _check(vocab_size, max_length, embed_dim, hidden, latent_dim, word_keep)
    return SentenceVAE(vocab_size, max_length, embed_dim, hidden, latent_dim,
                       float(word_keep), bool(z_every_step))


def rnn_lm(vocab_size: int, max_length: int = 30, embed_dim: int = 256, hidden: int = 256,
           word_keep: float = 1.0) -> SentenceVAE:
    """The RNN language model: :func:`sentence_vae`'s decoder without z (``latent_dim=0``).

    Every bound of the library is then exactly log p(x) (q = p(z) over an empty vector).
    Args and Returns as :func:`sentence_vae`.
    """
    return sentence_vae(vocab_size, max_length, embed_dim, hidden, 0, word_keep)
