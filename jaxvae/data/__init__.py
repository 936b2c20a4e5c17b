"""Data for jaxvae: named data sets, Bernoulli binarization, shuffled minibatches.

* :func:`load` (``"embedded"``, ``"npz:PATH"``, ``"tfds:NAME"``; splits ``train``,
  ``valid``, ``test``, ``train+valid``) returns a :class:`Dataset` of ``float32`` images in
  [0, 1] and ``int32`` labels;
* :func:`binarize_dynamic` (a fresh draw per training step) and :func:`binarize_fixed`
  (a seeded draw for evaluation sets); :func:`dynamic_binarization` binarizes the images
  of a batch ``x``, ``(x, y)`` or ``{"x": ...}`` as a train step's ``preprocess``;
* :func:`batches` / :func:`num_batches`: one epoch of shuffled minibatches, reproducible
  from ``(seed, epoch)``, of an array or a pytree of arrays (images and labels).
"""

from jaxvae.data.batching import batches, num_batches
from jaxvae.data.binarize import binarize_dynamic, binarize_fixed, dynamic_binarization
from jaxvae.data.registry import SPLITS, DataError, Dataset, MissingDependencyError, load

__all__ = [
    "DataError",
    "Dataset",
    "MissingDependencyError",
    "SPLITS",
    "batches",
    "binarize_dynamic",
    "binarize_fixed",
    "dynamic_binarization",
    "load",
    "num_batches",
]
