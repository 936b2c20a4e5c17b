"""The sentence VAE of ``jaxvae.models.sentence.sentence_vae`` in PyTorch, for the sentence
throughput benchmark.

A plain reference implementation over padded rows of token ids ``x: [B, max_length + 2]``
(``<bos> w_1 .. w_n <eos> <pad> ..``, ids ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>``
3): an encoder (``nn.Embedding``, a one-layer ``nn.LSTM(batch_first=True)`` run over the
whole padded row, the hidden state at the last real token gathered at ``length - 1``,
Linear heads ``loc`` and ``raw_scale`` with sigma = exp(raw / 2)), and a decoder (its own
``nn.Embedding``, the initial state ``(h0, c0)`` from ``Linear(2H)(z)`` split into ``c0``
and ``tanh(h0)``, an ``nn.LSTM`` over the inputs ``x[:, :-1]`` teacher-forced, a Linear
to V logits with ``<pad>`` and ``<bos>`` set to -inf, and ``F.cross_entropy(...,
ignore_index=<pad>, reduction="none")`` summed over each row's targets ``x[:, 1:]``). The
loss is the negative ELBO with one reparameterized z per sentence and the closed-form
Gaussian KL, trained with ``torch.optim.Adam``. Word dropout replaces each decoder input
that is neither ``<bos>`` nor ``<pad>`` by ``<unk>`` with probability ``1 - word_keep``,
drawn with ``torch.rand`` inside every step.

:func:`from_jaxvae` copies the parameters of a ``sentence_vae`` model. The conventions
that make the two compute exactly the same function:

* flax's ``OptimizedLSTMCell`` (flax 0.12) computes the gates in the order i, f, g, o as
  ``sigmoid / sigmoid / tanh / sigmoid(W_i* x + W_h* h + b_h*)``, then ``c' = f c + i g``
  and ``h' = o tanh(c')``, with no forget-gate offset: the same equations as
  ``torch.nn.LSTM``. Its input kernels ``ii, if, ig, io`` (``[E, H]``, no bias) and hidden
  kernels ``hi, hf, hg, ho`` (``[H, H]``, with bias) become torch's ``weight_ih_l0`` and
  ``weight_hh_l0`` (``[4H, in]``, gate blocks stacked i, f, g, o: the flax kernels
  concatenated along their output axis, transposed) and ``bias_hh_l0``;
* torch's LSTM adds two biases, ``bias_ih + bias_hh``; flax has one. ``bias_ih_l0`` is
  set to zero and frozen (``requires_grad = False``), so the trainable parameters are
  exactly jaxvae's, one tensor for each of its leaves (the LSTM's gate blocks packed);
* flax ``Dense`` kernels are ``[in, out]``, torch ``Linear`` weights ``[out, in]``; the
  decoder's ``init_state`` output splits into (c, h) in that order, as ``jnp.split``
  does in ``SentenceDecoder.start``;
* the encoder's ``nn.RNN(..., seq_lengths=n)`` returns the carry after ``n`` steps, n the
  number of non-``<pad>`` ids; an LSTM over the full row gives the same hidden state at
  position ``n - 1`` (the later steps read ``<pad>`` and are not used).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.peers.torch_conv import copy_parameters

PAD, UNK, BOS, EOS = 0, 1, 2, 3
GATES = ("i", "f", "g", "o")


class SentenceVAE(nn.Module):
    """jaxvae's ``sentence_vae(vocab_size, max_length, embed_dim, hidden, latent_dim,
    word_keep)`` (``z_every_step=False``)."""

    def __init__(self, vocab_size: int, embed_dim: int = 256, hidden: int = 256,
                 latent: int = 16, word_keep: float = 1.0):
        super().__init__()
        self.vocab_size, self.hidden, self.latent = vocab_size, hidden, latent
        self.word_keep = float(word_keep)
        self.enc_embed = nn.Embedding(vocab_size, embed_dim)
        self.enc_lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.loc = nn.Linear(hidden, latent)
        self.raw_scale = nn.Linear(hidden, latent)
        self.dec_embed = nn.Embedding(vocab_size, embed_dim)
        self.init_state = nn.Linear(latent, 2 * hidden)
        self.dec_lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        for lstm in (self.enc_lstm, self.dec_lstm):          # one bias, as flax's cell
            with torch.no_grad():
                lstm.bias_ih_l0.zero_()
            lstm.bias_ih_l0.requires_grad_(False)
        never = torch.zeros(vocab_size)
        never[PAD] = never[BOS] = float("-inf")               # never a next token
        self.register_buffer("never_next", never, persistent=False)

    def encode(self, x: torch.Tensor):
        """``x: [B, L]`` ids -> (mu, raw) each ``[B, latent]``; sigma = exp(raw / 2)."""
        lengths = (x != PAD).sum(1)
        hs, _ = self.enc_lstm(self.enc_embed(x))                            # [B, L, H]
        h = hs[torch.arange(x.shape[0]), lengths - 1]                       # [B, H]
        return self.loc(h), self.raw_scale(h)

    def drop_words(self, inputs: torch.Tensor) -> torch.Tensor:
        """Word dropout: inputs that are neither ``<bos>`` nor ``<pad>`` become ``<unk>``
        with probability ``1 - word_keep`` (a fresh ``torch.rand`` draw)."""
        if self.word_keep >= 1.0:
            return inputs
        droppable = (inputs != BOS) & (inputs != PAD)
        drop = torch.rand(inputs.shape) < 1.0 - self.word_keep
        return torch.where(droppable & drop, torch.full_like(inputs, UNK), inputs)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor,
                       inputs: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) per row, ``[B]`` nats: targets ``x[:, 1:]``, ``<pad>`` excluded;
        ``inputs`` (default ``x[:, :-1]``) are what the decoder reads."""
        inputs = x[:, :-1] if inputs is None else inputs
        c0, h0 = self.init_state(z).chunk(2, dim=-1)
        state = (torch.tanh(h0).unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous())
        hs, _ = self.dec_lstm(self.dec_embed(inputs), state)                # [B, T, H]
        logits = self.out(hs) + self.never_next                             # [B, T, V]
        targets = x[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1),
                              ignore_index=PAD, reduction="none")
        return -nll.view(targets.shape).sum(1)

    def loss(self, x: torch.Tensor, eps: torch.Tensor,
             inputs: torch.Tensor | None = None) -> torch.Tensor:
        """The negative ELBO, mean over the batch: ``x: [B, L]`` ids, ``eps: [B, latent]``;
        KL(q || N(0, I)) in closed form."""
        mu, raw = self.encode(x)
        z = mu + torch.exp(0.5 * raw) * eps
        kl = 0.5 * (torch.exp(raw) + mu.square() - 1.0 - raw).sum(-1)
        return -(self.log_likelihood(x, z, inputs) - kl).mean()


# ------------------------------------------------------------------ jaxvae <-> torch layouts

def _np(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _lstm(cell) -> dict:
    """flax ``OptimizedLSTMCell`` parameters (or gradients) -> torch's packed layout."""
    w_ih = np.concatenate([_np(cell[f"i{g}"]["kernel"]) for g in GATES], axis=1).T
    w_hh = np.concatenate([_np(cell[f"h{g}"]["kernel"]) for g in GATES], axis=1).T
    b_hh = np.concatenate([_np(cell[f"h{g}"]["bias"]) for g in GATES])
    return {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_hh_l0": b_hh}


def torch_layout(params) -> dict:
    """A ``sentence_vae`` parameter tree (or a gradient of one) as ``{torch parameter name:
    np.ndarray in torch's layout}``, for the trainable parameters (not ``bias_ih_l0``)."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    out = {"enc_embed.weight": _np(enc["embed"]["embedding"]),
           "dec_embed.weight": _np(dec["embed"]["embedding"])}
    out.update({f"enc_lstm.{k}": v for k, v in _lstm(enc["lstm"]).items()})
    out.update({f"dec_lstm.{k}": v for k, v in _lstm(dec["cell"]).items()})
    for name in ("loc", "raw_scale"):
        out[f"{name}.weight"] = _np(enc["head"][name]["kernel"]).T
        out[f"{name}.bias"] = _np(enc["head"][name]["bias"])
    for name in ("init_state", "out"):
        out[f"{name}.weight"] = _np(dec[name]["kernel"]).T
        out[f"{name}.bias"] = _np(dec[name]["bias"])
    return {name: np.ascontiguousarray(a) for name, a in out.items()}


def trainable(model: nn.Module) -> dict:
    """``{name: parameter}`` of the parameters that train (all but ``bias_ih_l0``)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def from_jaxvae(params, word_keep: float = 1.0) -> SentenceVAE:
    """A :class:`SentenceVAE` holding a copy of ``sentence_vae(...)`` parameters."""
    p = params["params"]
    vocab, embed = _np(p["encoder"]["embed"]["embedding"]).shape
    hidden, latent = _np(p["encoder"]["head"]["loc"]["kernel"]).shape
    model = SentenceVAE(vocab, embed, hidden, latent, word_keep)
    values = torch_layout(params)
    named = trainable(model)
    copy_parameters(named, values)
    return model


# ---------------------------------------------------------------------------- training

class Trainer:
    """One Adam step of the negative ELBO with fresh noise ``torch.randn(B, latent)`` and
    fresh word dropout, as jaxvae's train step does; ``compile=True`` wraps the whole step
    function in ``torch.compile`` (default mode). Dynamo does not trace ``nn.LSTM``
    (``torch._dynamo.config.allow_rnn`` is off by default): the compiled step is split into
    graphs around the two LSTMs, which run as in eager mode."""

    def __init__(self, model: SentenceVAE, lr: float = 1e-3, compile: bool = False):
        self.model = model
        self.opt = torch.optim.Adam(trainable(model).values(), lr=lr)
        self.step = torch.compile(self._step) if compile else self._step

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, max_length + 2]`` int64 token ids."""
        eps = torch.randn(x.shape[0], self.model.latent)
        loss = self.model.loss(x, eps, self.model.drop_words(x[:, :-1]))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()
