"""DRAW of ``jaxvae.models.draw.draw`` in PyTorch, for the DRAW throughput benchmark.

A plain reference implementation over a batch of grey images ``x: [B, H, W]`` in [0, 1]
(Gregor et al., 2015, eqs. 3-8), the whole batch through one recurrence of T steps. From
the first canvas c_0, both LSTM states (h, c) = 0 and h^dec_0 = 0, each step computes

    x^ = x - sigmoid(c)
    r = read(x, x^, h^dec)                          (read attention: Linear(h^dec) -> 5)
    h^enc = LSTM_enc([r, h^dec], h^enc)
    (loc, log sigma) = Linear(h^enc) split in halves,   z = loc + sigma eps
    h^dec = LSTM_dec(z, h^dec)
    c = c + write(h^dec)                            (write attention: Linear(h^dec) -> 5)

c_0 is a learned ``[H W]`` parameter ``canvas0`` (jaxvae's ``DrawDecoder.canvas0``). Without
attention ``read = [x, x^]`` flattened and ``write`` a Linear to the H x W canvas; with
attention the N x N Gaussian grids of ``jaxvae.models.draw_attention`` (read N = 2,
write N = 5 for MNIST): pixel coordinates a = 1..W, b = 1..H, g_X = (W + 1)/2 (g~_X + 1),
g_Y = (H + 1)/2 (g~_Y + 1), delta = (max(H, W) - 1)/(N - 1) exp(log delta~),
mu_i = g + (i - N/2 - 1/2) delta for i = 1..N, each filter row a softmax over the pixels
of -(a - mu_i)^2 / (2 sigma^2); read = gamma [F_Y x F_X^T, F_Y x^ F_X^T], write =
F_Y^T w F_X / gamma with the patch w = Linear(h^dec) as N x N. The loss is the negative
ELBO with one z per image and the Monte Carlo KL, -mean_B [log p(x|z) + log p(z) -
log q(z|x)]: log p(x|z) the Bernoulli log-likelihood of the final canvas's logits
(``F.binary_cross_entropy_with_logits`` summed over the pixels), p(z) = N(0, I) and
log q(z|x) = sum_t log N(z_t; loc_t, sigma_t^2), trained with ``torch.optim.Adam``.

:func:`from_jaxvae` copies the parameters of a ``draw(...)`` model. The conventions that
make the two compute exactly the same function:

* jaxvae's ``LSTMCell`` is one Dense ``gates`` (kernel ``[inputs + hidden, 4 hidden]``,
  bias ``[4 hidden]``) on ``concat[inputs, h]``, split into the gates i, f, g, o, then
  c' = sigmoid(f) c + sigmoid(i) tanh(g) and h' = sigmoid(o) tanh(c'): the equations of
  ``torch.nn.LSTMCell``, whose ``weight_ih`` ``[4 hidden, inputs]`` and ``weight_hh``
  ``[4 hidden, hidden]`` stack their gate blocks in the same order i, f, g, o. So
  ``weight_ih = kernel[:inputs].T``, ``weight_hh = kernel[inputs:].T``, ``bias_ih =
  bias``; torch adds a second bias ``bias_hh``, set to zero and frozen
  (``requires_grad = False``), so the trainable parameters are exactly jaxvae's;
* jaxvae's carry is (c, h), torch's (h, c); the encoder's inputs are ``concat[r,
  h^dec]`` in that order (the read first);
* flax ``Dense`` kernels are ``[in, out]``, torch ``Linear`` weights ``[out, in]``; the
  head's output splits into (loc, log sigma) in that order, the read's two glimpses are
  flattened x's first, row major, and the written patch and the dense canvas update are
  reshaped row major, as ``jnp.reshape`` does, and so is ``canvas0``. A jaxvae DRAW
  without ``canvas0`` (c_0 = 0) gets a zero ``canvas0`` that does not train.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.peers.torch_conv import copy_parameters

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Draw(nn.Module):
    """jaxvae's ``draw(image_shape, steps, latent_dim, hidden, attention, read_size,
    write_size)``; ``read_size = write_size = 0`` is the model without attention."""

    def __init__(self, image_shape=(28, 28), steps: int = 64, latent: int = 100,
                 hidden: int = 256, read_size: int = 0, write_size: int = 0):
        super().__init__()
        if bool(read_size) != bool(write_size):
            raise ValueError("read and write attention go together: give both sizes or none")
        self.image_shape = tuple(image_shape)
        height, width = self.image_shape
        self.steps, self.latent, self.hidden = steps, latent, hidden
        self.read_size, self.write_size = read_size, write_size
        read_dim = 2 * read_size * read_size if read_size else 2 * height * width
        self.enc_lstm = nn.LSTMCell(read_dim + hidden, hidden)
        self.head = nn.Linear(hidden, 2 * latent)
        self.dec_lstm = nn.LSTMCell(latent, hidden)
        self.write = nn.Linear(hidden, write_size * write_size if write_size
                               else height * width)
        if read_size:
            self.read_attention = nn.Linear(hidden, 5)
            self.write_attention = nn.Linear(hidden, 5)
        self.canvas0 = nn.Parameter(torch.zeros(height * width))    # c_0, logits
        for cell in (self.enc_lstm, self.dec_lstm):           # one bias, as jaxvae's cell
            with torch.no_grad():
                cell.bias_hh.zero_()
            cell.bias_hh.requires_grad_(False)
        # pixel coordinates 1..H and 1..W, and the filter offsets i - N/2 - 1/2, i = 1..N
        self.register_buffer("rows", torch.arange(1, height + 1, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("cols", torch.arange(1, width + 1, dtype=torch.float32),
                             persistent=False)
        for name, n in (("read_offsets", read_size), ("write_offsets", write_size)):
            offsets = torch.arange(1, n + 1, dtype=torch.float32) - n / 2 - 0.5
            self.register_buffer(name, offsets, persistent=False)

    # ------------------------------------------------------------------------ attention

    def filterbank(self, raw: torch.Tensor, offsets: torch.Tensor):
        """The grids of ``raw: [B, 5]`` = (g~_X, g~_Y, log sigma^2, log delta~, log gamma):
        ``(F_Y [B, N, H], F_X [B, N, W], gamma [B])``, each filter row summing to 1."""
        height, width = self.image_shape
        n = offsets.shape[0]
        gx, gy, log_sigma2, log_delta, log_gamma = raw.unbind(-1)
        span = (max(height, width) - 1) / max(n - 1, 1)
        g_x = (width + 1) / 2 * (gx + 1)
        g_y = (height + 1) / 2 * (gy + 1)
        sigma2 = torch.exp(log_sigma2).unsqueeze(-1).unsqueeze(-1)           # [B, 1, 1]
        delta = (span * torch.exp(log_delta)).unsqueeze(-1)                   # [B, 1]

        def filters(centre, coords):
            mu = centre.unsqueeze(-1) + offsets * delta                       # [B, N]
            d2 = torch.square(coords - mu.unsqueeze(-1))                      # [B, N, P]
            return torch.softmax(-d2 / (2 * sigma2), dim=-1)

        return filters(g_y, self.rows), filters(g_x, self.cols), torch.exp(log_gamma)

    def read(self, x: torch.Tensor, x_hat: torch.Tensor, h_dec: torch.Tensor) -> torch.Tensor:
        """``x, x_hat: [B, H, W]``, ``h_dec: [B, hidden]`` -> ``[B, read_dim]``."""
        if not self.read_size:
            return torch.cat([x.flatten(1), x_hat.flatten(1)], dim=1)
        f_y, f_x, gamma = self.filterbank(self.read_attention(h_dec), self.read_offsets)
        f_xt = f_x.transpose(1, 2)
        patches = torch.stack([f_y @ x @ f_xt, f_y @ x_hat @ f_xt], dim=1)   # [B, 2, N, N]
        return gamma.unsqueeze(-1) * patches.flatten(1)

    def write_update(self, h_dec: torch.Tensor) -> torch.Tensor:
        """``h_dec: [B, hidden]`` -> the canvas update ``[B, H, W]``."""
        batch = h_dec.shape[0]
        if not self.write_size:
            return self.write(h_dec).view(batch, *self.image_shape)
        n = self.write_size
        f_y, f_x, gamma = self.filterbank(self.write_attention(h_dec), self.write_offsets)
        patch = self.write(h_dec).view(batch, n, n)
        return (f_y.transpose(1, 2) @ patch @ f_x) / gamma.view(batch, 1, 1)

    # ---------------------------------------------------------------------- recurrence

    def run(self, x: torch.Tensor, inputs: torch.Tensor, given: bool = False):
        """The recurrence over ``inputs: [B, T, D]``: noise eps (``given=False``, z_t =
        loc_t + sigma_t eps_t) or the latents themselves (``given=True``, teacher forcing).

        Returns: ``(z, loc, scale)`` each ``[B, T, D]``, and the final canvas logits
        ``[B, H, W]``."""
        batch = x.shape[0]
        zero = x.new_zeros(batch, self.hidden)
        enc, dec, h_dec = (zero, zero), (zero, zero), zero
        canvas = self.canvas0.view(1, *self.image_shape).expand(batch, *self.image_shape)
        zs, locs, scales = [], [], []
        for t in range(inputs.shape[1]):
            x_hat = x - torch.sigmoid(canvas)
            r = self.read(x, x_hat, h_dec)
            enc = self.enc_lstm(torch.cat([r, h_dec], dim=1), enc)
            loc, log_scale = self.head(enc[0]).chunk(2, dim=-1)
            scale = torch.exp(log_scale)
            z = inputs[:, t] if given else loc + scale * inputs[:, t]
            dec = self.dec_lstm(z, dec)
            h_dec = dec[0]
            canvas = canvas + self.write_update(h_dec)
            zs.append(z)
            locs.append(loc)
            scales.append(scale)
        stack = lambda values: torch.stack(values, dim=1)
        return stack(zs), stack(locs), stack(scales), canvas

    def log_weight_terms(self, x: torch.Tensor, inputs: torch.Tensor, given: bool = False):
        """``(log p(x|z), log p(z), log q(z|x))``, each ``[B]`` nats, for ``x: [B, H, W]``
        binary and ``inputs: [B, T, D]`` (eps, or z with ``given=True``)."""
        z, loc, scale, canvas = self.run(x, inputs, given)
        log_px = -F.binary_cross_entropy_with_logits(canvas, x, reduction="none").flatten(1) \
            .sum(1)
        log_pz = (-0.5 * z.square() - HALF_LOG_2PI).flatten(1).sum(1)
        u = (z - loc) / scale
        log_q = (-0.5 * u.square() - torch.log(scale) - HALF_LOG_2PI).flatten(1).sum(1)
        return log_px, log_pz, log_q

    def log_weight(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log w = log p(x|z) + log p(z) - log q(z|x) at GIVEN latents ``z: [B, T, D]``
        (teacher forcing): ``[B]`` nats."""
        log_px, log_pz, log_q = self.log_weight_terms(x, z, given=True)
        return log_px + log_pz - log_q

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The negative ELBO (one z per image, Monte Carlo KL), mean over the batch:
        ``x: [B, H, W]`` binary, ``eps: [B, T, D]`` standard normal."""
        log_px, log_pz, log_q = self.log_weight_terms(x, eps)
        return -(log_px + log_pz - log_q).mean()


# ------------------------------------------------------------------ jaxvae <-> torch layouts

def _np(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _lstm(prefix: str, cell, hidden: int) -> dict:
    """jaxvae ``LSTMCell`` parameters (or gradients) -> torch ``LSTMCell`` tensors."""
    kernel = _np(cell["gates"]["kernel"])                     # [inputs + hidden, 4 hidden]
    inputs = kernel.shape[0] - hidden
    return {f"{prefix}.weight_ih": kernel[:inputs].T, f"{prefix}.weight_hh": kernel[inputs:].T,
            f"{prefix}.bias_ih": _np(cell["gates"]["bias"])}


def _dense(name: str, layer) -> dict:
    return {f"{name}.weight": _np(layer["kernel"]).T, f"{name}.bias": _np(layer["bias"])}


def torch_layout(params) -> dict:
    """A ``draw(...)`` parameter tree (or a gradient of one) as ``{torch parameter name:
    np.ndarray in torch's layout}``, for the trainable parameters (not ``bias_hh``)."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    hidden = _np(enc["lstm"]["gates"]["kernel"]).shape[1] // 4
    out = {**_lstm("enc_lstm", enc["lstm"], hidden), **_dense("head", enc["head"]),
           **_lstm("dec_lstm", dec["lstm"], hidden), **_dense("write", dec["write"])}
    if "read_attention" in enc:
        out.update(_dense("read_attention", enc["read_attention"]))
    if "write_attention" in dec:
        out.update(_dense("write_attention", dec["write_attention"]))
    if "canvas0" in dec:
        out["canvas0"] = _np(dec["canvas0"])
    return {name: np.ascontiguousarray(a) for name, a in out.items()}


def trainable(model: nn.Module) -> dict:
    """``{name: parameter}`` of the parameters that train (all but the ``bias_hh``, and
    ``canvas0`` where jaxvae's c_0 is fixed at 0)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def from_jaxvae(params, attention: bool, image_shape=(28, 28), steps: int = 64) -> Draw:
    """A :class:`Draw` holding a copy of ``draw(image_shape, steps, ..., attention)``
    parameters (the sizes are read off the parameters; ``steps`` T only sets the noise
    shape :class:`Trainer` draws). ValueError when ``attention`` or ``image_shape`` do not
    fit the parameters."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    height, width = image_shape
    hidden = _np(enc["lstm"]["gates"]["kernel"]).shape[1] // 4
    latent = _np(enc["head"]["kernel"]).shape[1] // 2
    read_dim = _np(enc["lstm"]["gates"]["kernel"]).shape[0] - 2 * hidden
    has_attention = "read_attention" in enc
    if has_attention != bool(attention):
        raise ValueError(f"attention={attention!r}, but the parameters are of a DRAW "
                         f"{'with' if has_attention else 'without'} attention")
    if attention:
        read_size = int(round(math.sqrt(read_dim / 2)))
        write_size = int(round(math.sqrt(_np(dec["write"]["kernel"]).shape[1])))
    else:
        read_size = write_size = 0
        if read_dim != 2 * height * width:
            raise ValueError(f"the encoder reads {read_dim} values, not 2 x {height} x {width}")
    model = Draw((height, width), steps, latent, hidden, read_size, write_size)
    if "canvas0" not in dec:                                  # c_0 = 0, not a parameter
        model.canvas0.requires_grad_(False)
    copy_parameters(trainable(model), torch_layout(params))
    return model


# ---------------------------------------------------------------------------- training

class Trainer:
    """One Adam step of the negative ELBO with fresh noise ``torch.randn(B, T, D)``, as
    jaxvae's train step does; ``compile=True`` wraps the whole step function in
    ``torch.compile`` (default mode), which unrolls the T steps of the recurrence."""

    def __init__(self, model: Draw, lr: float = 1e-3, compile: bool = False):
        self.model = model
        self.opt = torch.optim.Adam(trainable(model).values(), lr=lr)
        self.step = torch.compile(self._step) if compile else self._step

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, H, W]`` binary images (float32)."""
        eps = torch.randn(x.shape[0], self.model.steps, self.model.latent)
        loss = self.model.loss(x, eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()
