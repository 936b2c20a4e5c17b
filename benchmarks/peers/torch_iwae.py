"""The IWAE train step in PyTorch: eager, and the same step under ``torch.compile``.

torch.nn.Linear layers, ``torch.optim.Adam`` (default settings: on CPU the single-tensor
implementation), ``F.binary_cross_entropy_with_logits(reduction='none')`` for the
Bernoulli log-likelihood, closed-form Gaussian log-densities and ``torch.logsumexp``.
The noise is drawn with one ``torch.randn(B, k, 50)`` per step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LATENT = 50


class IWAE(nn.Module):
    def __init__(self, data_dim: int = 784, hidden=(200, 200), latent: int = LATENT):
        super().__init__()
        self.enc1 = nn.Linear(data_dim, hidden[0])
        self.enc2 = nn.Linear(hidden[0], hidden[1])
        self.loc = nn.Linear(hidden[1], latent)
        self.raw_scale = nn.Linear(hidden[1], latent)
        self.dec1 = nn.Linear(latent, hidden[1])
        self.dec2 = nn.Linear(hidden[1], hidden[0])
        self.out = nn.Linear(hidden[0], data_dim)
        self.latent = latent

    def log_weights(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x: [B, D]``, ``eps: [B, k, L]`` -> log w: [B, k]."""
        h = torch.tanh(self.enc2(torch.tanh(self.enc1(x))))
        mu, log_var = self.loc(h), self.raw_scale(h)
        z = mu.unsqueeze(1) + torch.exp(0.5 * log_var).unsqueeze(1) * eps
        logits = self.out(torch.tanh(self.dec2(torch.tanh(self.dec1(z)))))
        log_px = -F.binary_cross_entropy_with_logits(
            logits, x.unsqueeze(1).expand_as(logits), reduction="none").sum(-1)
        half_log_2pi = 0.5 * math.log(2 * math.pi) * eps.shape[-1]
        log_pz = -0.5 * z.square().sum(-1) - half_log_2pi
        log_qz = -0.5 * eps.square().sum(-1) - 0.5 * log_var.sum(-1, keepdim=True) - half_log_2pi
        return log_px + log_pz - log_qz

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """-mean_batch(logsumexp_k log w - log k)."""
        x = x.reshape(x.shape[0], -1)
        k = eps.shape[1]
        return -(torch.logsumexp(self.log_weights(x, eps), dim=1) - math.log(k)).mean()


def from_jaxvae(params) -> IWAE:
    """An :class:`IWAE` holding a copy of ``jaxvae.iwae_mlp()`` parameters."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    src = {"enc1": enc["MLP_0"]["Dense_0"], "enc2": enc["MLP_0"]["Dense_1"], "loc": enc["loc"],
           "raw_scale": enc["raw_scale"], "dec1": dec["MLP_0"]["Dense_0"],
           "dec2": dec["MLP_0"]["Dense_1"], "out": dec["out"]}
    model = IWAE(data_dim=src["enc1"]["kernel"].shape[0], hidden=(src["enc1"]["kernel"].shape[1],
                 src["enc2"]["kernel"].shape[1]), latent=src["loc"]["kernel"].shape[1])
    with torch.no_grad():
        for name, d in src.items():
            layer = getattr(model, name)
            layer.weight.copy_(torch.from_numpy(np.array(d["kernel"], np.float32).T))
            layer.bias.copy_(torch.from_numpy(np.array(d["bias"], np.float32)))
    return model


class Trainer:
    """One Adam step of the IWAE loss with fresh noise; ``compile=True`` wraps the whole step
    function (forward, backward, optimizer update) in ``torch.compile``."""

    def __init__(self, model: IWAE, k: int, lr: float = 1e-3, compile: bool = False):
        self.model, self.k = model, k
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.step = torch.compile(self._step) if compile else self._step

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(x.shape[0], self.k, self.model.latent)
        loss = self.model.loss(x, eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()
