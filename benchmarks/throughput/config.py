"""Shapes, contender names, model sizes and targets of the throughput benchmark."""

from __future__ import annotations

import os

PACKAGE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(PACKAGE))

SHAPES = ((20, 1), (20, 50), (100, 5))
FLOP_SHAPE = (20, 50)
CONTENDERS = ("jaxvae", "jax_handwritten", "torch_eager", "torch_eager_1t", "torch_compile",
              "torch_compile_1t", "numpyro")
PEERS = CONTENDERS[1:]
TORCH_CONTENDERS = ("torch_eager", "torch_eager_1t", "torch_compile", "torch_compile_1t")
# Derived per repeat: the faster of torch_eager (all cores) and torch_eager_1t (1 thread).
TORCH_BEST = "torch_eager_best"
TORCH_COMPILE_BEST = "torch_compile_best"
DERIVED = {TORCH_BEST: ("torch_eager", "torch_eager_1t"),
           TORCH_COMPILE_BEST: ("torch_compile", "torch_compile_1t")}
MATMUL_N = 2048
LATENT, HIDDEN, DATA_DIM = 50, (200, 200), 784
LR = 1e-3
EVAL_K = 5000
EVAL_FULL_N = 10000
# (sample_chunk, batch_size) candidates for the k=5000 evaluation; the first one is used
# in --quick mode (on the reference machine all four were within 10 %, i.e. within noise,
# and all stayed near 0.5 GB).
EVAL_SETTINGS = ((500, 20), (100, 100), (500, 4), (1000, 10))
TARGETS = {"torch_ratio": 2.5, "numpyro_ratio": 1.1, "overhead": 0.05, "flop_fraction": 0.60,
           "eval_seconds": 180.0, "eval_peak_mb": 2048.0}
DEFAULT_DATA = "npz:../shared/data/mnist.npz"


def resolve_data(name: str) -> str:
    """``npz:`` paths are relative to the repository root."""
    if name.startswith("npz:"):
        path = os.path.expanduser(name[4:])
        if not os.path.isabs(path):
            path = os.path.normpath(os.path.join(REPO, path))
        return "npz:" + path
    return name
