"""p(x|z) for a sentence: an autoregressive Categorical over padded token ids.

    log p(x|z) = sum_{t=1}^{n+1} log Cat(x_t | x_0..x_{t-1}, z),    x_0 = <bos>, x_{n+1} = <eos>,

summed over the real tokens of one row ``x: [L]`` (``<bos> w_1 .. w_n <eos> <pad> ..``, the
layout of :func:`jaxvae.data.encode_batch`); ``<pad>`` targets contribute nothing, so the
value is in nats per sentence, counting ``<eos>``. :class:`TokenSequence` is what a sentence
model's ``likelihood(z)`` returns: it holds the decoder as a pure function (an unbound Flax
module and its variables), so scoring, ancestral sampling, greedy decoding and beam search
all run outside the model's ``apply``, jitted, with the fixed length L.

Word dropout (Bowman et al., 2016): the decoder's input tokens (not ``<bos>``, not
``<pad>``) are replaced by ``<unk>`` with probability ``1 - word_keep`` when scoring with a
key (training). ``word_keep = 0`` is the *inputless* decoder: it never sees a word, neither
in training nor in evaluation nor while decoding.
"""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp

from jaxvae.types import Array, PRNGKey

__all__ = ["TokenSequence", "PAD", "UNK", "BOS", "EOS", "drop_words", "next_token_log_probs"]

#: the reserved ids, as :class:`jaxvae.data.Vocabulary` numbers them
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def next_token_log_probs(logits: Array) -> Array:
    """log p(next token) ``[..., V]`` from decoder logits, float32.

    ``<pad>`` and ``<bos>`` are never a next token (probability 0), so the probabilities
    of the sentences of any length, plus that of running on past the row without
    ``<eos>``, sum to 1 (tested by enumeration).
    """
    logits = logits.astype(jnp.float32).at[..., PAD].set(-jnp.inf).at[..., BOS].set(-jnp.inf)
    return jax.nn.log_softmax(logits, axis=-1)


def _no_unk(log_p: Array, allow_unk: bool, renormalize: bool = True) -> Array:
    if allow_unk:
        return log_p
    log_p = log_p.at[..., UNK].set(-jnp.inf)
    return jax.nn.log_softmax(log_p, axis=-1) if renormalize else log_p


def drop_words(key: PRNGKey | None, inputs: Array, word_keep: float) -> Array:
    """Replaces decoder inputs by ``<unk>`` (word dropout).

    Args: ``key`` (None: no dropout unless ``word_keep == 0``); ``inputs: [T]`` token ids;
      ``word_keep`` in [0, 1], the probability that a word is kept.
    Returns: ``[T]`` ids; ``<bos>`` and ``<pad>`` are never replaced.
    """
    droppable = (inputs != BOS) & (inputs != PAD)
    if word_keep == 0.0:
        return jnp.where(droppable, UNK, inputs)
    if key is None or word_keep == 1.0:
        return inputs
    drop = jax.random.bernoulli(key, 1.0 - word_keep, inputs.shape)
    return jnp.where(droppable & drop, UNK, inputs)


class TokenSequence(distrax.Distribution):
    """An autoregressive Categorical over one padded sentence ``x: [length]`` given one z.

    Args:
      decoder: an unbound Flax module with ``__call__(z, inputs: [T]) -> logits [T, V]``
        (teacher forcing), ``start(z) -> carry`` and ``step(carry, token, z) -> (carry,
        logits [V])``; variables: its variables.
      z: ``[latent_dim]``, the latent code.
      length: L, the row length (``max_length + 2``).
      vocab_size: V.
      word_keep: see :func:`drop_words`.
      key: the word-dropout key for :meth:`log_prob`, or None (no dropout).
    """

    #: every id is an integer in [0, vocab_size) (checked on concrete data)
    integer_support = True
    head_name = "TokenSequence"

    def __init__(self, decoder: Any, variables: Any, z: Array, length: int, vocab_size: int,
                 word_keep: float = 1.0, key: PRNGKey | None = None):
        self.decoder, self.variables, self.z = decoder, variables, z
        self.length, self.vocab_size, self.word_keep, self.key = \
            int(length), int(vocab_size), float(word_keep), key
        self.support = (0, self.vocab_size - 1)

    @property
    def event_shape(self) -> tuple:
        """``(length,)``."""
        return (self.length,)

    @property
    def batch_shape(self) -> tuple:
        """``()``: one sentence."""
        return ()

    def logits(self, x: Array) -> Array:
        """Teacher-forced logits ``[L - 1, V]`` predicting ``x[1:]`` from ``x[:-1]``."""
        inputs = drop_words(self.key, jnp.asarray(x)[:-1], self.word_keep)
        return self.decoder.apply(self.variables, self.z, inputs)

    def token_log_probs(self, x: Array) -> Array:
        """log p(x_t | x_<t, z) for t = 1..L-1, zero at ``<pad>`` targets: ``[L - 1]`` nats."""
        x = jnp.asarray(x)
        if x.shape != self.event_shape:
            raise ValueError(f"x must be token ids of shape {self.event_shape}, got {x.shape}")
        targets = x[1:]
        log_p = next_token_log_probs(self.logits(x))
        picked = jnp.take_along_axis(log_p, targets[:, None], axis=-1)[:, 0]
        return jnp.where(targets != PAD, picked, 0.0)

    def log_prob(self, value: Array) -> Array:
        """log p(x|z) in nats, summed over the tokens after ``<bos>`` (``<eos>`` included)."""
        return jnp.sum(self.token_log_probs(value))

    def _input(self, token: Array) -> Array:
        """The token the decoder reads next (``<unk>`` for the inputless decoder)."""
        if self.word_keep == 0.0:
            return jnp.where(token == BOS, token, UNK)
        return token

    def _step(self, carry, token):
        return self.decoder.apply(self.variables, carry, self._input(token), self.z,
                                  method="step")

    def _decode(self, key: PRNGKey | None, allow_unk: bool = True) -> Array:
        """One row ``[L]``: ``<bos>``, then sampled (key) or argmax tokens, ``<pad>`` after
        ``<eos>``; without ``allow_unk``, ``<unk>`` is never chosen."""
        carry = self.decoder.apply(self.variables, self.z, method="start")
        keys = (jax.random.split(key, self.length - 1) if key is not None
                else jnp.zeros((self.length - 1,), jnp.uint32))

        def body(state, key_t):
            carry, token, done = state
            carry, logits = self._step(carry, token)
            log_p = _no_unk(next_token_log_probs(logits), allow_unk)
            nxt = jnp.argmax(log_p, axis=-1) if key is None else \
                jax.random.categorical(key_t, log_p)
            nxt = jnp.where(done, PAD, nxt).astype(jnp.int32)
            return (carry, nxt, done | (nxt == EOS)), nxt

        start = (carry, jnp.int32(BOS), jnp.bool_(False))
        _, tokens = jax.lax.scan(body, start, keys)
        return jnp.concatenate([jnp.array([BOS], jnp.int32), tokens])

    def _sample_n(self, key: PRNGKey, n: int) -> Array:
        """``n`` ancestral samples ``[n, L]`` (int32)."""
        return jax.vmap(self._decode)(jax.random.split(key, n))

    def greedy(self, allow_unk: bool = True) -> Array:
        """The greedy decode: the argmax token at every step, ``[L]`` (int32); with
        ``allow_unk=False`` the best token other than ``<unk>``."""
        return self._decode(None, allow_unk)

    def sample_words(self, key: PRNGKey, allow_unk: bool = True) -> Array:
        """One ancestral sample ``[L]``; ``allow_unk=False`` renormalizes without ``<unk>``."""
        return self._decode(key, allow_unk)

    def beam_search(self, beam_size: int = 5, allow_unk: bool = True) -> tuple[Array, Array]:
        """Beam search for the most probable row: a sentence of at most L - 2 words and
        ``<eos>``, or L - 1 words that reach the row's end without ``<eos>``.

        Keeps the ``beam_size`` best prefixes by log-probability; a prefix that has emitted
        ``<eos>`` continues only with ``<pad>`` at no cost, so finished and open sentences
        compete on their total log-probability.

        Args: ``beam_size`` >= 1 (1 is greedy decoding); ``allow_unk`` (False: never
          ``<unk>``).
        Returns: ``(ids [L] int32, log p(ids|z))`` for the best beam (the model's
          probability, also when ``<unk>`` was excluded).
        """
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError(f"beam_size must be an int >= 1, got {beam_size!r}")
        carry0 = self.decoder.apply(self.variables, self.z, method="start")
        carry = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (beam_size, *a.shape)),
                                       carry0)
        tokens = jnp.full((beam_size, self.length), PAD, jnp.int32).at[:, 0].set(BOS)
        score = jnp.full((beam_size,), -jnp.inf).at[0].set(0.0)   # one live beam at first
        done = jnp.zeros((beam_size,), bool)
        vocab = self.vocab_size
        only_pad = jnp.full((vocab,), -jnp.inf).at[PAD].set(0.0)

        def body(state, t):
            carry, tokens, score, done = state
            carry, logits = jax.vmap(self._step)(carry, tokens[:, t - 1])
            log_p = jnp.where(done[:, None], only_pad,
                              _no_unk(next_token_log_probs(logits), allow_unk, renormalize=False))
            total = (score[:, None] + log_p).reshape(-1)
            score, flat = jax.lax.top_k(total, beam_size)
            beam, word = flat // vocab, (flat % vocab).astype(jnp.int32)
            carry = jax.tree_util.tree_map(lambda a: a[beam], carry)
            tokens = tokens[beam].at[:, t].set(word)
            done = done[beam] | (word == EOS)
            return (carry, tokens, score, done), None

        state = (carry, tokens, score, done)
        (_, tokens, score, _), _ = jax.lax.scan(body, state, jnp.arange(1, self.length))
        best = jnp.argmax(score)
        return tokens[best], score[best]
