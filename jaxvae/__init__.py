"""jaxvae: a functional JAX library for variational autoencoders."""

from jaxvae import data
from jaxvae import estimators
from jaxvae import evaluate
from jaxvae import flows
from jaxvae import latent
from jaxvae import likelihoods
from jaxvae import plots
from jaxvae import schedules
from jaxvae import terms
from jaxvae import train
from jaxvae import types
from jaxvae import variance
from jaxvae.data import Dataset
from jaxvae.data import DataError
from jaxvae.data import binarize_dynamic
from jaxvae.data import binarize_fixed
from jaxvae.data import load
from jaxvae.estimators import DReG
from jaxvae.estimators import ESTIMATORS
from jaxvae.estimators import IWAE
from jaxvae.estimators import RWS
from jaxvae.estimators import STL
from jaxvae.estimators import Estimator
from jaxvae.estimators import Reparam
from jaxvae.estimators import ScoreFunction
from jaxvae.estimators import WakeSleep
from jaxvae.estimators import make_estimator
from jaxvae.evaluate import active_units
from jaxvae.evaluate import kl_per_dimension
from jaxvae.evaluate import log_likelihood
from jaxvae.models import FlowEncoder
from jaxvae.flows import IAF
from jaxvae.flows import Planar
from jaxvae.flows import Radial
from jaxvae.models import flow_vae
from jaxvae.flows import nice_coupling
from jaxvae.latent import attribute_vector
from jaxvae.latent import interpolate
from jaxvae.latent import lerp
from jaxvae.latent import reconstruct
from jaxvae.latent import sample_prior
from jaxvae.latent import slerp
from jaxvae.latent import traverse
from jaxvae.losses import OBJECTIVES
from jaxvae.losses import make_loss
from jaxvae.losses import make_objective
from jaxvae.models import BayesianDense
from jaxvae.models import BayesianMLP
from jaxvae.models import GaussianChain
from jaxvae.models import GaussianEncoder
from jaxvae.models import HierarchicalVAE
from jaxvae.models import LinearGaussianVAE
from jaxvae.models import MLPDecoder
from jaxvae.models import VariationalDropoutDense
from jaxvae.models import bayesian
from jaxvae.models import VAE
from jaxvae.models import diag_gaussian
from jaxvae.models import iwae_mlp
from jaxvae.models import iwae_two_layer
from jaxvae.models import kingma_welling_mlp
from jaxvae.models import mean_logit_init
from jaxvae.objectives import Samples
from jaxvae.objectives import elbo
from jaxvae.objectives import gaussian_kl
from jaxvae.objectives import iwae_bound
from jaxvae.objectives import kl_divergence
from jaxvae.objectives import log_mean_exp
from jaxvae.objectives import log_weights
from jaxvae.objectives import sample_terms
from jaxvae.schedules import cyclical_annealing
from jaxvae.schedules import iwae_paper_optimizer
from jaxvae.schedules import linear_annealing
from jaxvae.schedules import sigmoid_annealing
from jaxvae.terms import ParamGroups
from jaxvae.terms import batched
from jaxvae.terms import bind
from jaxvae.terms import check_batch
from jaxvae.terms import merge_params
from jaxvae.terms import model_terms
from jaxvae.terms import split_params
from jaxvae.train import CheckpointError
from jaxvae.train import TrainState
from jaxvae.train import create_train_state
from jaxvae.train import fit
from jaxvae.train import make_train_step
from jaxvae.types import Model
from jaxvae.variance import estimator_grad
from jaxvae.variance import gradient_stats
from jaxvae.variance import minibatch_covariance
from jaxvae.variance import summarize

__version__ = "0.1.0"

__all__ = [
    "BayesianDense",
    "BayesianMLP",
    "CheckpointError",
    "DReG",
    "DataError",
    "Dataset",
    "ESTIMATORS",
    "Estimator",
    "FlowEncoder",
    "GaussianChain",
    "GaussianEncoder",
    "HierarchicalVAE",
    "IAF",
    "IWAE",
    "LinearGaussianVAE",
    "MLPDecoder",
    "Model",
    "OBJECTIVES",
    "ParamGroups",
    "Planar",
    "RWS",
    "Radial",
    "Reparam",
    "STL",
    "Samples",
    "ScoreFunction",
    "TrainState",
    "VAE",
    "VariationalDropoutDense",
    "WakeSleep",
    "active_units",
    "attribute_vector",
    "batched",
    "bayesian",
    "binarize_dynamic",
    "binarize_fixed",
    "bind",
    "check_batch",
    "create_train_state",
    "cyclical_annealing",
    "data",
    "diag_gaussian",
    "elbo",
    "estimator_grad",
    "estimators",
    "evaluate",
    "fit",
    "flow_vae",
    "flows",
    "gaussian_kl",
    "gradient_stats",
    "interpolate",
    "iwae_bound",
    "iwae_mlp",
    "iwae_paper_optimizer",
    "iwae_two_layer",
    "kingma_welling_mlp",
    "kl_divergence",
    "kl_per_dimension",
    "latent",
    "lerp",
    "likelihoods",
    "linear_annealing",
    "load",
    "log_likelihood",
    "log_mean_exp",
    "log_weights",
    "make_estimator",
    "make_loss",
    "make_objective",
    "make_train_step",
    "mean_logit_init",
    "merge_params",
    "minibatch_covariance",
    "model_terms",
    "nice_coupling",
    "plots",
    "reconstruct",
    "sample_prior",
    "sample_terms",
    "schedules",
    "sigmoid_annealing",
    "slerp",
    "split_params",
    "summarize",
    "terms",
    "train",
    "traverse",
    "types",
    "variance",
]
