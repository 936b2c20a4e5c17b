"""Flax modules, one file per model family."""

from jaxvae.models import bayesian, draw, draw_attention
from jaxvae.models.bayesian import BayesianDense, BayesianMLP, VariationalDropoutDense
from jaxvae.models.conditional import PRIORS, ConditionalVAE, conditional_mlp
from jaxvae.models.conv import ConvDecoder, ConvEncoder, conv_vae, depth_to_space, unpool
from jaxvae.models.draw import Draw, DrawPosterior
from jaxvae.models.flow import MADE, FlowEncoder, NICEShift, flow_vae
from jaxvae.models.hierarchical import GaussianChain, HierarchicalVAE, iwae_two_layer
from jaxvae.models.linear import LinearGaussianVAE
from jaxvae.models.mlp import (
    VAE,
    GaussianEncoder,
    GaussianHead,
    MLPDecoder,
    diag_gaussian,
    iwae_mlp,
    kingma_welling_mlp,
    mean_logit_init,
)
from jaxvae.models.ppca import (
    expected_joint_gradient,
    ppca_em,
    ppca_em_step,
    ppca_log_likelihood,
    ppca_maximum_likelihood,
)
from jaxvae.models.sentence import (
    SentenceDecoder,
    SentenceEncoder,
    SentenceVAE,
    rnn_lm,
    sentence_vae,
)
from jaxvae.models.token_sequence import TokenSequence

__all__ = [
    "bayesian",
    "draw",
    "draw_attention",
    "Draw",
    "DrawPosterior",
    "BayesianDense",
    "BayesianMLP",
    "VariationalDropoutDense",
    "diag_gaussian",
    "LinearGaussianVAE",
    "GaussianChain",
    "HierarchicalVAE",
    "iwae_two_layer",
    "GaussianEncoder",
    "GaussianHead",
    "MLPDecoder",
    "VAE",
    "iwae_mlp",
    "kingma_welling_mlp",
    "mean_logit_init",
    "MADE",
    "NICEShift",
    "FlowEncoder",
    "flow_vae",
    "ConvEncoder",
    "ConvDecoder",
    "conv_vae",
    "depth_to_space",
    "unpool",
    "ConditionalVAE",
    "conditional_mlp",
    "PRIORS",
    "SentenceEncoder",
    "SentenceDecoder",
    "SentenceVAE",
    "sentence_vae",
    "rnn_lm",
    "TokenSequence",
    "ppca_log_likelihood",
    "ppca_maximum_likelihood",
    "ppca_em_step",
    "ppca_em",
    "expected_joint_gradient",
]
