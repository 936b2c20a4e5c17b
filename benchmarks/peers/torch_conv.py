"""The convolutional VAE of ``jaxvae.conv_vae`` in PyTorch, for the conv throughput benchmark.

A plain reference implementation for 28 x 28 x 1 binary images (NCHW layout): a strided-conv
encoder (3x3 stride-2 convolutions + relu, flatten, Linear(hidden) + relu, Linear heads
``loc`` and ``raw_scale`` with sigma = exp(raw / 2)), and one of three decoders
(``transposed``: ConvTranspose2d(kernel 4, stride 2, padding 1); ``depth-to-space``: a 3x3
convolution to 4C channels, then each pixel's 4C channels become a 2 x 2 block; ``unpool``:
each value at the top-left of a 2 x 2 block of zeros, then a 3x3 convolution), a 3x3
convolution to one channel of logits plus a per-pixel bias, and a Bernoulli likelihood.
The loss is the IWAE bound with k samples (k = 1: the ELBO with a Monte Carlo KL), trained
with ``torch.optim.Adam``.

:func:`from_jaxvae` copies the parameters of a ``jaxvae.conv_vae`` model. The conventions
that make the two compute exactly the same function:

* flax ``Conv`` kernels are HWIO, torch's OIHW: ``w = k.transpose(3, 2, 0, 1)``;
* XLA's SAME padding of a 3x3 stride-2 convolution on an even side pads (0, 1) (nothing
  before, one row / column after); torch's ``padding=1`` pads (1, 1), so the encoder pads
  explicitly with ``F.pad(x, (0, 1, 0, 1))`` and convolves with ``padding=0``;
* flax ``ConvTranspose`` (``transpose_kernel=False``, SAME, kernel 4, stride 2) is a
  correlation of the 2x-dilated input, padded (2, 2), with the kernel as stored; torch's
  ``ConvTranspose2d(padding=1)`` correlates the same dilated, (2, 2)-padded input with the
  spatially *flipped* kernel, weights ``[in, out, kh, kw]``: ``w = k[::-1, ::-1].transpose(2,
  3, 0, 1)``;
* jaxvae's ``depth_to_space`` reads channel ``(2 r + s) C + c`` as sub-pixel (r, s) of
  channel c (block position major); ``torch.nn.PixelShuffle`` reads channel
  ``4 c + 2 r + s`` (channel major). :func:`depth_to_space` below follows jaxvae's order;
* flax flattens the encoder's ``[7, 7, C]`` features (and reshapes the decoder's first grid)
  in HWC order, torch in CHW order: the rows of the encoder's first Linear and the outputs
  of the decoder's second Linear are permuted on loading.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DECODERS = ("transposed", "depth-to-space", "unpool")


def depth_to_space(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """``[N, b*b*C, h, w] -> [N, C, b*h, b*w]``, out[n, c, b*i + r, b*j + s] =
    x[n, (b*r + s)*C + c, i, j] (jaxvae's order, not PixelShuffle's)."""
    n, depth, h, w = x.shape
    c = depth // (block * block)
    x = x.view(n, block, block, c, h, w)             # [N, r, s, C, h, w]
    x = x.permute(0, 3, 4, 1, 5, 2)                  # [N, C, h, r, w, s]
    return x.reshape(n, c, h * block, w * block)


def unpool(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``[N, C, h, w] -> [N, C, f*h, f*w]``, each value at the top-left of an f x f block."""
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h, factor, w, factor)
    out[:, :, :, 0, :, 0] = x
    return out.view(n, c, h * factor, w * factor)


class Upsample(nn.Module):
    """One 2x step up: ``[N, C_in, h, w] -> [N, C_out, 2h, 2w]``."""

    def __init__(self, c_in: int, c_out: int, method: str):
        super().__init__()
        self.method = method
        if method == "transposed":
            self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        elif method == "depth-to-space":
            self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)
        elif method == "unpool":
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        else:
            raise ValueError(f"unknown decoder {method!r}; expected one of {DECODERS}")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.method == "transposed":
            return self.conv(h)
        if self.method == "depth-to-space":
            return depth_to_space(self.conv(h))
        return self.conv(unpool(h))


class ConvVAE(nn.Module):
    """jaxvae's default ``conv_vae((28, 28))``: widths (32, 64), hidden 256, latent 32."""

    def __init__(self, decoder: str = "transposed", latent: int = 32, hidden: int = 256,
                 widths=(32, 64), side: int = 28):
        super().__init__()
        self.latent, self.widths, self.side = latent, tuple(widths), side
        self.base = side // 2 ** len(widths)
        chans = (1,) + self.widths
        self.enc_convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2)
                                       for a, b in zip(chans[:-1], chans[1:]))
        flat = self.widths[-1] * self.base * self.base
        self.enc_dense = nn.Linear(flat, hidden)
        self.loc = nn.Linear(hidden, latent)
        self.raw_scale = nn.Linear(hidden, latent)
        self.dec_dense1 = nn.Linear(latent, hidden)
        self.dec_dense2 = nn.Linear(hidden, flat)
        up = list(reversed(self.widths))                 # 64, 32
        ins = [self.widths[-1]] + up[:-1]                # 64, 64
        self.ups = nn.ModuleList(Upsample(a, b, decoder) for a, b in zip(ins, up))
        self.out = nn.Conv2d(up[-1], 1, 3, padding=1)
        self.pixel_bias = nn.Parameter(torch.zeros(side * side))

    def encode(self, x: torch.Tensor):
        """``x: [B, 1, 28, 28]`` -> (mu, raw) each ``[B, latent]``; sigma = exp(raw / 2)."""
        h = x
        for conv in self.enc_convs:
            h = F.relu(conv(F.pad(h, (0, 1, 0, 1))))      # XLA SAME, stride 2: pad (0, 1)
        h = F.relu(self.enc_dense(h.flatten(1)))
        return self.loc(h), self.raw_scale(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z: [M, latent]`` -> logits ``[M, 1, 28, 28]``."""
        h = F.relu(self.dec_dense1(z))
        h = F.relu(self.dec_dense2(h)).view(-1, self.widths[-1], self.base, self.base)
        for up in self.ups:
            h = F.relu(up(h))
        return self.out(h) + self.pixel_bias.view(1, 1, self.side, self.side)

    def log_weights(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x: [B, 1, 28, 28]`` binary, ``eps: [B, k, L]`` -> log w: [B, k]."""
        b, k, _ = eps.shape
        mu, raw = self.encode(x)
        z = mu.unsqueeze(1) + torch.exp(0.5 * raw).unsqueeze(1) * eps          # [B, k, L]
        logits = self.decode(z.reshape(b * k, -1)).view(b, k, -1)              # [B, k, D]
        xs = x.reshape(b, 1, -1)
        log_px = (xs * logits - F.softplus(logits)).sum(-1)
        half_log_2pi = 0.5 * math.log(2 * math.pi) * self.latent
        log_pz = -0.5 * z.square().sum(-1) - half_log_2pi
        log_qz = -0.5 * eps.square().sum(-1) - 0.5 * raw.sum(-1, keepdim=True) - half_log_2pi
        return log_px + log_pz - log_qz

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """-mean_batch(logsumexp_k log w - log k); k = 1 is the Monte Carlo ELBO."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        k = eps.shape[1]
        return -(torch.logsumexp(self.log_weights(x, eps), dim=1) - math.log(k)).mean()


# ------------------------------------------------------------------ jaxvae <-> torch layouts

def _np(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _hwc_rows_to_chw(kernel: np.ndarray, c: int, s: int) -> np.ndarray:
    """Rows of a ``[s*s*c, n]`` kernel in (h, w, c) order -> (c, h, w) order."""
    return kernel.reshape(s, s, c, -1).transpose(2, 0, 1, 3).reshape(s * s * c, -1)


def _hwc_cols_to_chw(a: np.ndarray, c: int, s: int) -> np.ndarray:
    """Last axis of ``[..., s*s*c]`` in (h, w, c) order -> (c, h, w) order."""
    lead = a.shape[:-1]
    return a.reshape(*lead, s, s, c).transpose(*range(len(lead)), len(lead) + 2,
                                                len(lead), len(lead) + 1).reshape(*lead, -1)


def decoder_of(params) -> str:
    """Which up-sampling decoder a ``conv_vae`` parameter tree belongs to."""
    up = params["params"]["decoder"]["Upsample_0"]
    if "ConvTranspose_0" in up:
        return "transposed"
    conv = up["Conv_0"]["kernel"]
    return "depth-to-space" if conv.shape[-1] == 4 * conv.shape[-2] else "unpool"


def torch_layout(params, decoder: str | None = None) -> dict:
    """A ``conv_vae((28, 28))`` parameter tree (or a gradient of one) as
    ``{torch parameter name: np.ndarray in torch's layout}``."""
    decoder = decoder or decoder_of(params)
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    n_levels = sum(1 for name in enc if name.startswith("Conv_"))
    c_last = _np(enc[f"Conv_{n_levels - 1}"]["kernel"]).shape[-1]
    side = int(round(math.sqrt(_np(dec["pixel_bias"]).size)))
    base = side // 2 ** n_levels
    out = {}
    for i in range(n_levels):
        out[f"enc_convs.{i}.weight"] = _np(enc[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1)
        out[f"enc_convs.{i}.bias"] = _np(enc[f"Conv_{i}"]["bias"])
    out["enc_dense.weight"] = _hwc_rows_to_chw(_np(enc["Dense_0"]["kernel"]), c_last, base).T
    out["enc_dense.bias"] = _np(enc["Dense_0"]["bias"])
    for name in ("loc", "raw_scale"):
        out[f"{name}.weight"] = _np(enc[name]["kernel"]).T
        out[f"{name}.bias"] = _np(enc[name]["bias"])
    out["dec_dense1.weight"] = _np(dec["Dense_0"]["kernel"]).T
    out["dec_dense1.bias"] = _np(dec["Dense_0"]["bias"])
    out["dec_dense2.weight"] = _hwc_cols_to_chw(_np(dec["Dense_1"]["kernel"]), c_last, base).T
    out["dec_dense2.bias"] = _hwc_cols_to_chw(_np(dec["Dense_1"]["bias"]), c_last, base)
    for i in range(n_levels):
        up = dec[f"Upsample_{i}"]
        if decoder == "transposed":
            k = _np(up["ConvTranspose_0"]["kernel"])           # [4, 4, in, out]
            out[f"ups.{i}.conv.weight"] = k[::-1, ::-1].transpose(2, 3, 0, 1)
            out[f"ups.{i}.conv.bias"] = _np(up["ConvTranspose_0"]["bias"])
        else:
            out[f"ups.{i}.conv.weight"] = _np(up["Conv_0"]["kernel"]).transpose(3, 2, 0, 1)
            out[f"ups.{i}.conv.bias"] = _np(up["Conv_0"]["bias"])
    out["out.weight"] = _np(dec["out"]["kernel"]).transpose(3, 2, 0, 1)
    out["out.bias"] = _np(dec["out"]["bias"])
    out["pixel_bias"] = _np(dec["pixel_bias"])
    return {name: np.ascontiguousarray(a) for name, a in out.items()}


def from_jaxvae(params, decoder: str | None = None) -> ConvVAE:
    """A :class:`ConvVAE` holding a copy of ``jaxvae.conv_vae((28, 28), ...)`` parameters."""
    decoder = decoder or decoder_of(params)
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    n_levels = sum(1 for name in enc if name.startswith("Conv_"))
    widths = tuple(_np(enc[f"Conv_{i}"]["kernel"]).shape[-1] for i in range(n_levels))
    model = ConvVAE(decoder, latent=_np(enc["loc"]["kernel"]).shape[1],
                    hidden=_np(enc["Dense_0"]["kernel"]).shape[1], widths=widths,
                    side=int(round(math.sqrt(_np(dec["pixel_bias"]).size))))
    values = torch_layout(params, decoder)
    named = dict(model.named_parameters())
    copy_parameters(named, values)
    return model


def copy_parameters(named: dict, values: dict) -> None:
    """Copies ``values`` (name -> numpy array in torch's layout) into the torch parameters
    ``named``; ValueError when the names or a shape differ."""
    if set(named) != set(values):
        raise ValueError(f"parameter names differ: torch {sorted(set(named) - set(values))}, "
                         f"jaxvae {sorted(set(values) - set(named))}")
    with torch.no_grad():
        for name, param in named.items():
            if tuple(param.shape) != values[name].shape:
                raise ValueError(f"{name}: torch {tuple(param.shape)} vs jaxvae "
                                 f"{values[name].shape}")
            param.copy_(torch.from_numpy(values[name].copy()))


# ---------------------------------------------------------------------------- training

class Trainer:
    """One Adam step of the k-sample IWAE loss (k = 1: the ELBO) with fresh noise and a
    fresh dynamic binarization of the grey-level batch, as jaxvae's train step does;
    ``compile=True`` wraps the whole step function in ``torch.compile`` (default mode)."""

    def __init__(self, model: ConvVAE, k: int, lr: float = 1e-3, compile: bool = False):
        self.model, self.k = model, k
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.step = torch.compile(self._step) if compile else self._step

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, 1, 28, 28]`` grey levels in [0, 1]."""
        xb = torch.bernoulli(x)
        eps = torch.randn(x.shape[0], self.k, self.model.latent)
        loss = self.model.loss(xb, eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()
