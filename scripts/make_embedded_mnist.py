"""Builds the MNIST subset embedded in the package: ``jaxvae/data/mnist_small.npz``.

Reads a full MNIST npz (keys ``x_train [50000, 28, 28]``, ``y_train``, ``x_valid [10000]``,
``y_valid``, ``x_test [10000]``, ``y_test``; uint8) and keeps a random subset of each split,
drawn without replacement by ``np.random.default_rng(SEED)`` (one permutation per split, in
the order train, valid, test; the kept indices are sorted so the subset keeps source order).
Images stay uint8 and the file is written with ``np.savez_compressed``.

Usage (from the repository root)::

    python scripts/make_embedded_mnist.py [--source ../shared/data/mnist.npz]

MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

SEED = 0
SIZES = {"train": 10_000, "valid": 1_000, "test": 2_000}
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(HERE, "..", "..", "shared", "data", "mnist.npz")
DEFAULT_OUTPUT = os.path.join(HERE, "..", "jaxvae", "data", "mnist_small.npz")


def make_subset(source: str, output: str, seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    with np.load(source) as data:
        for split, size in SIZES.items():
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or len(y) != len(x):
                raise ValueError(f"unexpected {split} arrays in {source}: "
                                 f"x {x.shape} {x.dtype}, y {y.shape}")
            if size > len(x):
                raise ValueError(f"asked for {size} {split} images, {source} has {len(x)}")
            idx = np.sort(rng.permutation(len(x))[:size])
            out[f"x_{split}"] = np.ascontiguousarray(x[idx])
            out[f"y_{split}"] = np.ascontiguousarray(y[idx])
    np.savez_compressed(output, **out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    out = make_subset(args.source, args.output, args.seed)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in out.items())
    print(f"wrote {os.path.normpath(args.output)} ({os.path.getsize(args.output) / 1e6:.2f} MB): "
          f"{shapes}")


if __name__ == "__main__":
    main()
