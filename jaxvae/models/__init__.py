"""Flax modules, one file per model family."""

from jaxvae.models.mlp import (GaussianEncoder, MLPDecoder, VAE, iwae_mlp, kingma_welling_mlp,
                               mean_logit_init)

__all__ = ["GaussianEncoder", "MLPDecoder", "VAE", "iwae_mlp", "kingma_welling_mlp", "mean_logit_init"]
