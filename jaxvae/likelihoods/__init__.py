"""Decoder heads: map a decoder's raw output to p(x|z) as a distrax distribution.

A head is a small, hashable object (usable as a Flax module attribute) with

* ``raw_shape(event_shape)``: the shape the decoder network must output for data
  of shape ``event_shape``;
* ``param_shape(event_shape)``: the shape of the head's own learned parameter, one that
  does not depend on z (a per-pixel or shared scale), or None when it has none;
* ``__call__(raw, event_ndims=None, param=None)``: the distribution p(x|z) whose event
  shape is ``event_shape``; leading axes of ``raw`` beyond ``event_ndims`` (default: none)
  are batch axes, and ``param`` is that free parameter (:func:`apply_head` creates it);
* ``to_unit(x)``: data or samples as floats on the [0, 1] scale, for display.

The heads of image models (names for :func:`get_head`, the data each accepts):

* ``bernoulli`` (:class:`Bernoulli`): binary or grey values in [0, 1], any dtype (bool,
  0/1 integers, floats);
* ``gaussian`` (:class:`Gaussian`, fixed sigma, the L2 distortion), ``learned-gaussian``
  (:class:`LearnedGaussian`, sigma per pixel from the decoder, per pixel or shared) and
  ``laplace`` (:class:`Laplace`, fixed b, the L1 distortion): densities on the real line,
  fed floating-point data in [0, 1] (8-bit images dequantized as (x + u) / 256);
* ``logistic`` (:class:`DiscretizedLogistic`) and ``logistic-mixture``
  (:class:`DiscretizedLogisticMixture`): probabilities of the integer levels
  {0, ..., 2^b - 1} themselves (uint8 images for b = 8), given as an integer dtype.

Each head's distribution states this through class attributes: ``support = (low, high)``,
``integer_support`` (the data are integer levels) and ``continuous`` (a density: the data
must be floating point); :func:`check_support` enforces them on concrete data. Non-image
heads (:class:`Categorical`) state nothing and accept anything.

All log-probabilities are in nats and computed from logits / unconstrained parameters,
never from probabilities, so they are exact in float32 where the inputs are.
:func:`bits_per_dim` converts a negative log-likelihood to bits per dimension.
"""

from __future__ import annotations

from jaxvae.likelihoods.base import (
    apply_head,
    bits_per_dim,
    check_support,
)
from jaxvae.likelihoods.bernoulli import (
    Bernoulli,
    BernoulliLogits,
)
from jaxvae.likelihoods.categorical import (
    Categorical,
)
from jaxvae.likelihoods.continuous import (
    SHARINGS,
    Gaussian,
    GaussianDistribution,
    Laplace,
    LaplaceDistribution,
    LearnedGaussian,
)
from jaxvae.likelihoods.discretized import (
    DiscretizedLogistic,
    DiscretizedLogisticDistribution,
    DiscretizedLogisticMixture,
    DiscretizedLogisticMixtureDistribution,
)
from jaxvae.likelihoods.registry import (
    HEAD_NAMES,
    get_head,
)

__all__ = ["BernoulliLogits", "GaussianDistribution", "LaplaceDistribution",
           "DiscretizedLogisticDistribution", "DiscretizedLogisticMixtureDistribution",
           "Bernoulli", "Gaussian", "LearnedGaussian", "Laplace", "DiscretizedLogistic",
           "DiscretizedLogisticMixture", "Categorical", "HEAD_NAMES", "SHARINGS", "get_head",
           "apply_head", "check_support", "bits_per_dim"]
