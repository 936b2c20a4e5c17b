"""Sentence models at work: decoding codes into words, homotopies, and text metrics.

For a model whose p(x|z) is a :class:`jaxvae.TokenSequence` (:func:`jaxvae.sentence_vae`,
:func:`jaxvae.rnn_lm`). Rows of ids are ``[N, L]`` with ``L = max_length + 2`` (the layout
of :func:`jaxvae.data.encode_batch`); codes are ``z: [N, latent_dim]``. Decoding is jitted
with the fixed length L and vmapped over the codes:

* ``"greedy"``: the argmax word at every step;
* ``"beam"``: :meth:`jaxvae.TokenSequence.beam_search` (``beam_size`` prefixes);
* ``"sample"``: ancestral sampling (needs a key).

A homotopy (Bowman et al., 2016, section 5.2) decodes the codes on the line
z(t) = z_1 (1 - t) + z_2 t between the posterior means of two sentences.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, evaluate, information, latent, rundir, terms
from jaxvae.models.token_sequence import EOS, PAD
from jaxvae.types import Array, Params, PRNGKey

__all__ = ["DECODERS", "decode", "homotopy", "to_text", "text_metrics", "count_words",
           "write_decodes"]

#: decoding methods of :func:`decode`
DECODERS = ("greedy", "beam", "sample")


def _decode_one(model, params, z, key, method, beam_size, allow_unk):
    dist = terms.bind(model, params).likelihood(z)
    if method == "greedy":
        return dist.greedy(allow_unk)
    if method == "beam":
        return dist.beam_search(beam_size, allow_unk)[0]
    return dist.sample_words(key, allow_unk)


_decode_batch = jax.jit(jax.vmap(_decode_one, in_axes=(None, None, 0, 0, None, None, None)),
                        static_argnums=(0, 4, 5, 6))


def decode(model, params: Params, z: Array, method: str = "greedy", *,
           key: PRNGKey | None = None, beam_size: int = 5,
           allow_unk: bool = True) -> np.ndarray:
    """Token ids decoded from codes.

    Args: ``model``, ``params``; ``z: [N, latent_dim]`` (``[N, 0]`` for the language
      model); ``method`` in :data:`DECODERS`; ``key`` (``"sample"`` only); ``beam_size``;
      ``allow_unk``: False never emits ``<unk>`` (readable decodes when rare words are
      many; sampling then renormalizes over the other tokens).
    Returns: ``int32 [N, L]`` rows ``<bos> w_1 .. <eos> <pad> ..``.
    """
    if method not in DECODERS:
        raise ValueError(f"unknown decoding method {method!r}; expected one of {DECODERS}")
    if (key is None) != (method != "sample"):
        raise ValueError("a key is needed for method='sample' and only for it")
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1:] != tuple(model.latent_shape):
        raise ValueError(f"z must be codes [N, {model.latent_shape[0]}], got shape {z.shape}")
    keys = jax.random.split(key if key is not None else jax.random.PRNGKey(0), z.shape[0])
    return np.asarray(_decode_batch(model, params, z, keys, method, int(beam_size),
                                    bool(allow_unk)))


def homotopy(model, params: Params, x1: Array, x2: Array, num: int = 5,
             method: str = "greedy", beam_size: int = 5, allow_unk: bool = True) -> np.ndarray:
    """Decodes the line between the posterior means of two sentences.

    Args: ``x1``, ``x2``: ``[L]`` id rows; ``num`` >= 2 points t = 0, 1/(num-1), .., 1;
      ``method`` ``"greedy"`` or ``"beam"``; ``allow_unk`` as in :func:`decode`.
    Returns: ``int32 [num, L]``, the decodes of z(t) = z_1 (1 - t) + z_2 t.
    """
    if method == "sample":
        raise ValueError("a homotopy decodes deterministically: method 'greedy' or 'beam'")
    codes = latent.encode_mean(model, params, jnp.stack([jnp.asarray(x1), jnp.asarray(x2)]))
    return decode(model, params, latent.lerp(codes[0], codes[1], num), method,
                  beam_size=beam_size, allow_unk=allow_unk)


def to_text(vocab, ids: Array) -> list[str]:
    """Rows of ids as sentences: the words after ``<bos>`` up to ``<eos>``, space-joined.

    Args: ``vocab``, a :class:`jaxvae.data.Vocabulary`; ``ids: [N, L]`` (or one ``[L]`` row).
    Returns: N strings (``<unk>`` is kept visible).
    """
    rows = np.atleast_2d(np.asarray(ids))
    out = []
    for r in rows:
        words = []
        for token in r[1:]:
            if token in (EOS, PAD):
                break
            words.append(int(token))
        out.append(" ".join(vocab.decode(words)))
    return out


def count_words(ids: Array) -> int:
    """The predicted tokens of rows ``[N, L]``: the words and each row's ``<eos>``."""
    ids = np.asarray(ids)
    return int(np.sum(ids[:, 1:] != PAD))


def text_metrics(model, params: Params, ids: Array, key: PRNGKey, eval_k: int = 100,
                 progress: bool = False) -> dict:
    """Per-sentence NLL, KL, perplexity, active units and mutual information.

    * ``nll``: -log p(x) per sentence by importance sampling (:func:`jaxvae.log_likelihood`
      with ``eval_k`` samples; the language model's is exact with one, and ``eval_k`` is
      then 1), and ``nll_stderr``;
    * ``elbo``: the ELBO per sentence (one sample); ``kl``: the mean closed-form
      KL(q(z|x) || p(z)) (the rate), with ``kl_per_unit`` listed;
    * ``ppl`` = exp(sum_n NLL_n / W), W the predicted tokens, words and ``<eos>`` alike
      (:func:`count_words`), as language-model perplexities are reported;
    * ``active_units`` (Burda et al.'s criterion), ``mutual_information``
      (:func:`jaxvae.information.mutual_information`, at most log N).

    Args: ``model``, ``params``; ``ids: [N, L]``; ``key``; ``eval_k`` >= 1; ``progress``.
    Returns: a dict of floats (nats) and ints.
    """
    _checks.num_samples(eval_k, "eval_k")
    ids = np.asarray(ids)
    if model.latent_shape[0] == 0:
        eval_k = 1          # the language model: every bound is log p(x) exactly
    k1, k2, k3, k4 = jax.random.split(key, 4)
    log_px = evaluate.log_likelihood(model, params, ids, k1, num_samples=eval_k,
                                     progress=progress)
    elbo = evaluate.log_likelihood(model, params, ids, k2, num_samples=1, progress=False)
    words = count_words(ids)
    out = {"nll": float(-np.mean(log_px)),
           "nll_stderr": float(np.std(log_px) / math.sqrt(len(log_px))),
           "elbo": float(np.mean(elbo)), "eval_k": int(eval_k),
           "ppl": float(np.exp(-np.sum(log_px, dtype=np.float64) / words)),
           "words_per_sentence": words / len(ids), "num_sentences": int(len(ids))}
    if model.latent_shape[0] == 0:
        return {**out, "kl": 0.0, "kl_per_unit": [], "active_units": 0,
                "mutual_information": 0.0}
    kl = evaluate.kl_per_dimension(model, params, ids)
    active, _ = evaluate.active_units(model, params, ids, key=k3)
    return {**out, "kl": float(np.sum(kl)), "kl_per_unit": [round(float(v), 4) for v in kl],
            "active_units": int(active),
            "mutual_information": information.mutual_information(
                model, params, ids[:2000], k4)}


def write_decodes(results, vocab, test_ids, path: str, num: int = 5) -> None:
    """A sentence model's decodes as text: test sentences with the greedy decode from the
    posterior mean and three samples, sentences from the prior, and a homotopy."""
    model, params, seed = results.model, results.params, results.config.seed
    key = jax.random.PRNGKey(seed + 1)
    x = np.asarray(test_ids[:num])
    lines = []
    if model.latent_shape[0] > 0:
        mean = latent.encode_mean(model, params, x)
        codes = latent.encode(model, params, np.repeat(x, 3, axis=0), key, sample=True)
        greedy = to_text(vocab, decode(model, params, mean))
        drawn = to_text(vocab, decode(model, params, codes))
        for i, sentence in enumerate(to_text(vocab, x)):
            lines += [f"INPUT  {sentence}", f"MEAN   {greedy[i]}",
                      *(f"SAMPLE {s}" for s in drawn[3 * i:3 * i + 3]), ""]
        lines += ["HOMOTOPY", *to_text(
            vocab, homotopy(model, params, x[0], x[1], 5)), ""]
    z = jax.random.normal(jax.random.fold_in(key, 1), (num, model.latent_shape[0]))
    lines += ["FROM THE PRIOR (ancestral sampling)", *to_text(
        vocab, decode(model, params, z, "sample", key=jax.random.fold_in(key, 2)))]
    rundir.atomic_write(path, "\n".join(lines) + "\n")
