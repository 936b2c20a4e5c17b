"""Data for jaxvae: named data sets, Bernoulli binarization, shuffled minibatches.

* :func:`load` (``"embedded"``, ``"fashion-mnist"``, ``"npz:PATH"``, ``"idx:DIR"``,
  ``"tfds:NAME"``; splits ``train``, ``valid``, ``test``, ``train+valid``) returns a
  :class:`Dataset` of ``float32`` images in [0, 1] (``uint8`` 0..255 with
  ``dtype="uint8"``; grayscale ``[N, H, W]`` or colour ``[N, H, W, C]``) and ``int32``
  labels; :func:`read_idx` reads one IDX file (MNIST's format);
* :func:`dequantize_dynamic` / :func:`dequantize_fixed` / :func:`dynamic_dequantization`:
  ``(x + u) / 256`` of 8-bit levels, for continuous likelihoods (:mod:`.dequantize`);
* :func:`binarize_dynamic` (a fresh draw per training step) and :func:`binarize_fixed`
  (a seeded draw for evaluation sets); :func:`dynamic_binarization` binarizes the images
  of a batch ``x``, ``(x, y)`` or ``{"x": ...}`` as a train step's ``preprocess``;
* :func:`batches` / :func:`num_batches`: one epoch of shuffled minibatches, reproducible
  from ``(seed, epoch)``, of an array or a pytree of arrays (images and labels);
* :func:`mnist_views` / :func:`tfds_views` / :func:`make_views`: identities x viewpoints
  (:class:`Views`) for conditional generators, with :func:`rotate_scale`,
  :func:`view_pairs` and :func:`views_condition` (:mod:`.views`);
* :func:`load_text` (``"wordnet"``, ``"text:PATH"``, ``"text:DIR"``, ``"tfds:NAME"``;
  splits ``train``, ``valid``, ``test``, ``all``) returns :class:`TextData` sentences;
  :func:`tokenize`, :class:`Vocabulary` and :func:`encode_batch` turn them into padded
  ``int32`` id rows (:mod:`.text`).
"""

from jaxvae.data.batching import batches, num_batches
from jaxvae.data.binarize import binarize_dynamic, binarize_fixed, dynamic_binarization
from jaxvae.data.dequantize import dequantize_dynamic, dequantize_fixed, dynamic_dequantization
from jaxvae.data.registry import (
    DTYPES,
    SPLITS,
    DataError,
    Dataset,
    MissingDependencyError,
    load,
    read_idx,
)
from jaxvae.data.text import TextData, Vocabulary, encode_batch, load_text, tokenize
from jaxvae.data.views import (
    DEFAULT_ANGLES,
    DEFAULT_SCALES,
    Views,
    make_views,
    mnist_views,
    rotate_scale,
    tfds_views,
    view_pairs,
    views_condition,
)

__all__ = [
    "DEFAULT_ANGLES",
    "DEFAULT_SCALES",
    "DTYPES",
    "DataError",
    "Dataset",
    "MissingDependencyError",
    "SPLITS",
    "TextData",
    "Views",
    "Vocabulary",
    "batches",
    "binarize_dynamic",
    "binarize_fixed",
    "dequantize_dynamic",
    "dequantize_fixed",
    "dynamic_dequantization",
    "dynamic_binarization",
    "encode_batch",
    "load",
    "load_text",
    "make_views",
    "mnist_views",
    "num_batches",
    "read_idx",
    "rotate_scale",
    "tfds_views",
    "tokenize",
    "view_pairs",
    "views_condition",
]
