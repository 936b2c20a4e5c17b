"""Model presets by name: what ``Config.model`` (and ``--model`` on the command line) means.

A :class:`Preset` builds a model from a :class:`jaxvae.Config` and the training data's
event shape and mean; it states which config options it reads and whether it is a
density model (``task="density"``: a VAE under the model contract) or a classifier
(``task="classification"``: a Bayesian network trained on ``(x, y)``). Add your own with
:func:`register_preset`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jaxvae.models.conv import DECODERS

__all__ = ["Preset", "PRESETS", "register_preset", "get_preset", "OPTION_FIELDS",
           "WEIGHT_NOISE", "DECODERS", "LIKELIHOODS", "SCALED_LIKELIHOODS", "make_head",
           "data_kind", "num_classes", "DEFAULT_CLASSES", "TEXT_DEFAULTS", "text_option"]

#: the Config fields that are preset options (None = the preset's default)
OPTION_FIELDS = ("latent_dim", "hidden", "flow", "num_flows", "weight_noise", "decoder",
                 "channels", "num_classes", "max_length", "min_count", "vocab_size",
                 "embed_dim", "word_keep", "draw_steps", "attention")
#: the sentence models' defaults for the options left at None
TEXT_DEFAULTS = {"max_length": 20, "min_count": 3, "embed_dim": 256, "hidden": (256,),
                 "latent_dim": 16, "word_keep": 1.0}
#: the ``cvae`` preset's number of label classes when ``Config.num_classes`` is None
DEFAULT_CLASSES = 10
#: weight-noise estimators of the ``bayesian-mlp`` preset
WEIGHT_NOISE = ("local", "shared", "separate")

#: ``Config.likelihood`` -> (head factory ``f(scale) -> head``, the data it is trained on):
#: ``"binary"`` (dynamically binarized grey levels), ``"continuous"`` (8-bit images
#: dequantized to [0, 1]) or ``"integer"`` (the 8-bit levels 0..255)
LIKELIHOODS = {
    "bernoulli": (lambda scale: _heads().Bernoulli(), "binary"),
    "gaussian": (lambda scale: _heads().Gaussian(scale), "continuous"),
    "laplace": (lambda scale: _heads().Laplace(scale), "continuous"),
    "learned-gaussian": (lambda scale: _heads().LearnedGaussian(sharing="output"),
                         "continuous"),
    "learned-gaussian-pixel": (lambda scale: _heads().LearnedGaussian(sharing="pixel"),
                               "continuous"),
    "learned-gaussian-shared": (lambda scale: _heads().LearnedGaussian(sharing="shared"),
                                "continuous"),
    "logistic": (lambda scale: _heads().DiscretizedLogistic(), "integer"),
    "logistic-mixture": (lambda scale: _heads().DiscretizedLogisticMixture(5), "integer"),
}
#: the likelihoods with a fixed scale (``Config.likelihood_scale``, default 0.1)
SCALED_LIKELIHOODS = ("gaussian", "laplace")
DEFAULT_SCALE = 0.1


def _heads():
    from jaxvae import likelihoods

    return likelihoods


def make_head(config):
    """The likelihood head ``config.likelihood`` (and ``likelihood_scale``) names."""
    factory, _ = LIKELIHOODS[config.likelihood]
    scale = config.likelihood_scale
    return factory(DEFAULT_SCALE if scale is None else scale)


def data_kind(config) -> str:
    """``"binary"``, ``"continuous"`` or ``"integer"``: the data ``config.likelihood`` needs;
    ``"tokens"`` for the sentence models."""
    if PRESETS[config.model].text:
        return "tokens"
    return LIKELIHOODS[config.likelihood][1]


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model family.

    Attributes:
      name: the ``Config.model`` value.
      build: ``build(config, event_shape, data_info) -> model``: ``data_info`` is the
        training images' mean ``[*event]`` (for the output bias) or None; for a text
        preset, the vocabulary size.
      description: one line for ``--help``.
      options: the :data:`OPTION_FIELDS` it reads.
      task: ``"density"`` or ``"classification"``.
      conditional: a density model of x given the label, p(x|c) (trained and evaluated on
        ``(images, labels)``; its condition is the integer label).
      text: a model of sentences (rows of token ids from :func:`jaxvae.data.load_text`).
      shared_posterior: q(z|x) reads generative networks (DRAW): no estimator that splits
        the parameters, no closed-form KL, binary images only.
    """

    name: str
    build: Callable
    description: str
    options: tuple[str, ...] = ()
    task: str = "density"
    conditional: bool = False
    text: bool = False
    shared_posterior: bool = False


#: the registry of model presets by name (:func:`register_preset` adds one)
PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Adds ``preset`` to :data:`PRESETS`, replacing one of the same name.

    Args: ``preset``, a :class:`Preset`. Returns: the same preset.
    """
    unknown = set(preset.options) - set(OPTION_FIELDS)
    if unknown or preset.task not in ("density", "classification"):
        raise ValueError(f"preset {preset.name!r}: options must be among {OPTION_FIELDS} "
                         "and task 'density' or 'classification'")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Args: ``name``. Returns: the :class:`Preset`; ValueError listing the known ones otherwise.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _options(config, event_shape, data_mean, names):
    from jaxvae.models import mlp

    kwargs = {"event_shape": tuple(event_shape), "head": make_head(config)}
    if data_mean is not None and data_kind(config) == "binary":
        kwargs["output_bias_init"] = mlp.mean_logit_init(data_mean)
    for name in names:
        if getattr(config, name) is not None:
            kwargs[name] = getattr(config, name)
    return kwargs


def _iwae(config, event_shape, data_mean):
    from jaxvae.models import mlp

    return mlp.iwae_mlp(**_options(config, event_shape, data_mean, ("latent_dim", "hidden")))


def _two_layer(config, event_shape, data_mean):
    from jaxvae.models import hierarchical

    if data_kind(config) == "integer":
        raise ValueError("iwae-2layer reads continuous or binary images; the discretized "
                         f"{config.likelihood!r} likelihood needs a one-layer model (iwae, conv)")
    return hierarchical.iwae_two_layer(**_options(config, event_shape, data_mean, ()))


def _kingma_welling(config, event_shape, data_mean):
    from jaxvae.models import mlp

    kwargs = _options(config, event_shape, data_mean, ("latent_dim",))
    if config.hidden is not None:
        if len(config.hidden) != 1:
            raise ValueError("kingma-welling has one hidden layer: give hidden=[width]")
        kwargs["hidden"] = config.hidden[0]
    return mlp.kingma_welling_mlp(**kwargs)


def _flow(config, event_shape, data_mean):
    from jaxvae.models import flow

    return flow.flow_vae(**_options(config, event_shape, data_mean,
                                    ("latent_dim", "hidden", "flow", "num_flows")))


def _conv(config, event_shape, data_mean):
    from jaxvae.models import conv

    kwargs = _options(config, event_shape, data_mean, ("latent_dim", "decoder", "channels"))
    # The pixel bias starts at zero, not at the data's mean logits: a conv decoder started at
    # the mean image lets q(z|x) collapse to the prior (docs/design.md, "Image VAEs").
    kwargs.pop("output_bias_init", None)
    if config.hidden is not None:
        if len(config.hidden) != 1:
            raise ValueError("conv has one dense layer on each side: give hidden=[width]")
        kwargs["hidden"] = config.hidden[0]
    return conv.conv_vae(**kwargs)


def num_classes(config) -> int:
    """The number of label classes a conditional preset models (``Config.num_classes``)."""
    return DEFAULT_CLASSES if config.num_classes is None else config.num_classes


def _cvae(config, event_shape, data_mean):
    from jaxvae.models import conditional

    kwargs = _options(config, event_shape, data_mean, ("latent_dim", "hidden"))
    return conditional.conditional_mlp(condition_dim=num_classes(config), **kwargs)


def text_option(config, name: str):
    """A sentence model's option: ``config``'s value or :data:`TEXT_DEFAULTS`'s."""
    value = getattr(config, name)
    return TEXT_DEFAULTS.get(name) if value is None else value


def _sentence(config, event_shape, vocab_size):
    from jaxvae.models import sentence

    hidden = text_option(config, "hidden")
    if len(hidden) != 1:
        raise ValueError("a sentence model has one LSTM layer: give hidden=[width]")
    common = dict(vocab_size=vocab_size, max_length=event_shape[0] - 2,
                  embed_dim=text_option(config, "embed_dim"), hidden=hidden[0],
                  word_keep=text_option(config, "word_keep"))
    if config.model == "rnn-lm":
        return sentence.rnn_lm(**common)
    return sentence.sentence_vae(latent_dim=text_option(config, "latent_dim"), **common)


def _draw(config, event_shape, data_mean):
    from jaxvae.models import draw, mlp

    if config.hidden is not None and len(config.hidden) != 1:
        raise ValueError("draw has one LSTM width for its encoder and decoder: give "
                         "hidden=[width]")
    sizes = dict(zip(("read_size", "write_size"), config.attention or ()))
    return draw.draw(tuple(event_shape), steps=config.draw_steps or 64,
                     latent_dim=config.latent_dim or 100,
                     hidden=config.hidden[0] if config.hidden else 256,
                     attention=config.attention is not None, **sizes,
                     canvas_init=None if data_mean is None else mlp.mean_logit_init(data_mean))


def _bayesian(config, event_shape, data_mean):
    from jaxvae.models import bayesian

    return bayesian.BayesianMLP(hidden=config.hidden or (1024, 1024), layer="dropout",
                                estimator=config.weight_noise or "local")


register_preset(Preset("iwae", _iwae, "784-200-200-50 tanh MLP VAE (Burda et al., 2015)",
                       ("latent_dim", "hidden")))
register_preset(Preset("iwae-2layer", _two_layer,
                       "two stochastic layers of 100 and 50 units (Burda et al., 2015)"))
register_preset(Preset("kingma-welling", _kingma_welling,
                       "one hidden layer of 500 units, 20 latents (Kingma & Welling, 2014)",
                       ("latent_dim", "hidden")))
register_preset(Preset("nf", _flow, "784-400-40 with num_flows steps of flow in q(z|x) "
                       "(Rezende & Mohamed, 2015)", ("latent_dim", "hidden", "flow", "num_flows")))
register_preset(Preset("conv", _conv, "strided-conv encoder, decoder by transposed conv, "
                       "depth-to-space or unpool+conv; any HxWxC image", ("latent_dim", "hidden",
                                                                         "decoder", "channels")))
register_preset(Preset("cvae", _cvae, "conditional VAE, the kingma-welling MLP (500 tanh, 20 "
                       "latents) with the one-hot label in q(z|x,c) and p(x|z,c) (Sohn et al., "
                       "2015)",
                       ("latent_dim", "hidden", "num_classes"), conditional=True))
_TEXT_OPTIONS = ("hidden", "max_length", "min_count", "vocab_size", "embed_dim", "word_keep")
register_preset(Preset("sentence-vae", _sentence, "LSTM encoder and decoder over words, "
                       "word dropout (Bowman et al., 2016)", ("latent_dim", *_TEXT_OPTIONS),
                       text=True))
register_preset(Preset("rnn-lm", _sentence, "the sentence-vae's LSTM decoder without z: an "
                       "RNN language model", _TEXT_OPTIONS, text=True))
register_preset(Preset("draw", _draw, "LSTM encoder and decoder drawing on a canvas over "
                       "draw_steps glimpses, optionally with attention (Gregor et al., 2015)",
                       ("latent_dim", "hidden", "draw_steps", "attention"),
                       shared_posterior=True))
register_preset(Preset("bayesian-mlp", _bayesian, "variational-dropout classifier "
                       "(Kingma, Salimans & Welling, 2015)", ("hidden", "weight_noise"),
                       task="classification"))
