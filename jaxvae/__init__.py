"""jaxvae: a functional JAX library for variational autoencoders."""

from jaxvae import likelihoods
from jaxvae.losses import batched
from jaxvae.losses import check_batch
from jaxvae.losses import make_loss
from jaxvae.losses import make_objective
from jaxvae.losses import model_terms
from jaxvae.models import GaussianEncoder
from jaxvae.models import MLPDecoder
from jaxvae.models import VAE
from jaxvae.models import iwae_mlp
from jaxvae.models import kingma_welling_mlp
from jaxvae.objectives import elbo
from jaxvae.objectives import gaussian_kl
from jaxvae.objectives import iwae_bound
from jaxvae.objectives import kl_divergence
from jaxvae.objectives import linear_annealing
from jaxvae.objectives import log_mean_exp
from jaxvae.objectives import log_weights

__version__ = "0.1.0"

__all__ = [
    "GaussianEncoder",
    "MLPDecoder",
    "VAE",
    "batched",
    "check_batch",
    "elbo",
    "gaussian_kl",
    "iwae_bound",
    "iwae_mlp",
    "kingma_welling_mlp",
    "kl_divergence",
    "likelihoods",
    "linear_annealing",
    "log_mean_exp",
    "log_weights",
    "make_loss",
    "make_objective",
    "model_terms",
]
