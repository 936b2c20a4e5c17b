"""Latent-space tools: codes, prior samples, reconstructions, paths, attributes, neighbours.

Pure functions of ``(model, params, ...)`` with explicit keys, for a model in the sense
of :class:`jaxvae.types.Model` whose latent is a vector ``z: [latent_dim]``; the model is
reached through :func:`jaxvae.bind`. Images are the *mean* of the decoder p(x|z) (for
Bernoulli heads the pixel probabilities sigmoid(logits), for Gaussian heads the means),
shape ``[num, *model.event_shape]``. Every function that encodes or decodes takes
``condition=`` for a conditional model (:class:`jaxvae.ConditionalVAE`): one condition per
row for batches, one condition for functions of a single example; None otherwise.

* :mod:`jaxvae.latent.codes` — encode, decode, sample_prior, reconstruct, posterior_mean,
  display_units and the checks the other modules share;
* :mod:`jaxvae.latent.paths` — lerp, slerp, interpolate, path_smoothness;
* :mod:`jaxvae.latent.attributes` — attribute_vector, attribute_groups, analogy, edit,
  traverse, traversal_grid (pixel attributes to split examples by are in
  :mod:`jaxvae.image_metrics`: stroke_thickness, slant);
* :mod:`jaxvae.latent.neighbours` — nearest_neighbours, copy_check (memorisation).
"""

from jaxvae.latent.attributes import (
    analogy,
    attribute_groups,
    attribute_vector,
    edit,
    traversal_grid,
    traverse,
)
from jaxvae.latent.codes import (
    MEAN_SAMPLES,
    decode,
    display_units,
    encode,
    encode_mean,
    posterior_mean,
    reconstruct,
    sample_prior,
)
from jaxvae.latent.neighbours import copy_check, nearest_neighbours
from jaxvae.latent.paths import interpolate, lerp, path_smoothness, slerp

__all__ = ["MEAN_SAMPLES", "posterior_mean", "encode", "encode_mean", "decode",
           "display_units", "sample_prior", "reconstruct", "lerp", "slerp", "interpolate",
           "path_smoothness", "traverse", "traversal_grid", "edit", "analogy",
           "attribute_vector", "attribute_groups", "nearest_neighbours", "copy_check"]
