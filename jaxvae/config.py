"""The settings of one experiment: a frozen, validated :class:`Config` with a JSON round trip.

A :class:`Config` names everything that decides a run (model preset, objective or
estimator, k, β and its annealing, optimizer protocol, batch size, length, seed, data,
evaluation). :meth:`Config.validate` checks every field and changes nothing; it runs
before anything is loaded or written, so a bad value ends in one line naming the field.

    >>> import jaxvae
    >>> c = jaxvae.Config(objective="elbo", k=1, epochs=2)
    >>> jaxvae.Config.from_json(c.to_json()) == c
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from jaxvae import config_checks as checks
from jaxvae.config_checks import ConfigError

__all__ = ["Config", "ConfigError", "PROTOCOLS", "ANNEALING", "TRAINING_LENGTH",
           "EVALUATION_FIELDS"]

#: optimizer protocols: constant Adam, Adam with a cosine decay to lr/10, the IWAE paper's
PROTOCOLS = ("adam", "cosine", "iwae-paper")
#: β schedules over the first ``annealing_steps`` steps (see :mod:`jaxvae.schedules`)
ANNEALING = ("none", "linear", "sigmoid", "cyclical")
#: fields that may change when a run is resumed (the length of training)
TRAINING_LENGTH = ("epochs", "steps", "passes_scale")
#: fields read only by the final evaluation (they may change on resume too)
EVALUATION_FIELDS = ("eval_split", "eval_k", "eval_limit")


@dataclasses.dataclass(frozen=True)
class Config:
    """One experiment's settings (all plain JSON values).

    Attributes:
      model: a preset name in :data:`jaxvae.PRESETS` (``iwae``, ``iwae-2layer``,
        ``kingma-welling``, ``nf``, ``bayesian-mlp``).
      latent_dim, hidden, flow, num_flows, weight_noise, decoder, channels, num_classes:
        preset options; None means the preset's default, and setting one the preset does
        not read is an error (``conv``: ``decoder`` in ``transposed``, ``depth-to-space``,
        ``unpool``; ``channels`` per stride-2 level; ``hidden`` one dense width; ``cvae``:
        ``num_classes`` labels 0..num_classes-1, default 10).
      max_length, min_count, vocab_size, embed_dim, word_keep: options of the sentence
        models (``sentence-vae``, ``rnn-lm``): words per sentence (default 20; longer
        sentences are cut, and the run says how many), the vocabulary (words seen at
        least ``min_count`` times in the training split, default 3, at most
        ``vocab_size`` of them, default no limit), the word-embedding width (default
        256; ``hidden`` is then one LSTM width, default 256) and the word-dropout keep
        rate (default 1; 0 is the inputless decoder).
      draw_steps, attention: ``draw``'s number of glimpses T (default 64) and, for
        attention, the sizes (read N, write N) of its grids (the paper's MNIST model: 2,
        5); None reads the whole image and writes densely.
      likelihood: p(x|z), a name in :data:`jaxvae.presets.LIKELIHOODS`, which also decides
        the data: ``bernoulli`` trains on dynamically binarized images; the continuous
        heads (``gaussian``, ``laplace``, ``learned-gaussian*``) on 8-bit images
        dequantized to [0, 1] (``(x + u) / 256``); the discretized ``logistic`` heads on
        the 8-bit integers themselves.
      likelihood_scale: the fixed σ of ``gaussian`` (the L2 distortion's σ) or b of
        ``laplace``; None means 0.1. Other likelihoods take none.
      objective: ``"elbo"`` or ``"iwae"``; estimator: None (plain gradient) or a name in
        :data:`jaxvae.ESTIMATORS`.
      k: samples per example in the training objective (>= 1).
      beta: KL weight (ELBO only), >= 0; analytic_kl: closed-form KL (ELBO only).
      free_bits: λ nats per latent unit, a floor under each unit's minibatch-averaged KL
        (Kingma et al., 2016; ELBO with the plain gradient; its KL is the closed form).
      annealing: β schedule (:data:`ANNEALING`) over ``annealing_steps`` steps.
      protocol: :data:`PROTOCOLS`; lr: Adam's learning rate (> 0, finite).
      batch_size: None means 20 for ``iwae-paper``, else 100.
      epochs: passes over the training data; steps: if set, the exact number of steps
        (overrides ``epochs``); passes_scale: the fraction of the IWAE paper's 3280
        passes (``iwae-paper`` only).
      seed: one seed for initialization, batch order, noise and the fixed binarization.
      data, split: a data name for :func:`jaxvae.data.load` (images) or
        :func:`jaxvae.data.load_text` (sentence models: ``wordnet``, which ``embedded``
        means for them, or ``text:PATH``) and the training split.
      eval_split, eval_k, eval_limit: the final evaluation (IWAE bound with ``eval_k``
        samples on the first ``eval_limit`` examples of ``eval_split``).
    """

    model: str = "iwae"
    latent_dim: int | None = None
    hidden: tuple[int, ...] | None = None
    flow: str | None = None
    num_flows: int | None = None
    weight_noise: str | None = None
    decoder: str | None = None
    channels: tuple[int, ...] | None = None
    num_classes: int | None = None
    max_length: int | None = None
    min_count: int | None = None
    vocab_size: int | None = None
    embed_dim: int | None = None
    word_keep: float | None = None
    draw_steps: int | None = None
    attention: tuple[int, int] | None = None
    likelihood: str = "bernoulli"
    likelihood_scale: float | None = None
    objective: str = "iwae"
    estimator: str | None = None
    k: int = 5
    beta: float = 1.0
    analytic_kl: bool = False
    free_bits: float | None = None
    annealing: str = "none"
    annealing_steps: int | None = None
    protocol: str = "adam"
    lr: float = 1e-3
    batch_size: int | None = None
    epochs: int = 30
    steps: int | None = None
    passes_scale: float = 1.0
    seed: int = 0
    data: str = "embedded"
    split: str = "train"
    eval_split: str = "test"
    eval_k: int = 500
    eval_limit: int | None = None

    def __post_init__(self):
        for name in ("hidden", "channels", "attention"):
            if isinstance(getattr(self, name), list):   # from JSON
                object.__setattr__(self, name, tuple(getattr(self, name)))

    # --- derived values ---------------------------------------------------------------------

    @property
    def effective_batch_size(self) -> int:
        """``batch_size``, or the protocol's default (20 for iwae-paper, else 100)."""
        if self.batch_size is not None:
            return self.batch_size
        return 20 if self.protocol == "iwae-paper" else 100

    def replace(self, **changes) -> Config:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: Config, ignore=()) -> list[str]:
        """Names of the fields whose values differ from ``other``'s, except ``ignore``."""
        return [f.name for f in dataclasses.fields(self) if f.name not in ignore
                and getattr(self, f.name) != getattr(other, f.name)]

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples become lists)."""
        out = dataclasses.asdict(self)
        for name in ("hidden", "channels", "attention"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    def to_json(self) -> str:
        """Standard JSON (no NaN or infinity; :class:`ConfigError` otherwise)."""
        try:
            return json.dumps(self.to_dict(), indent=2, allow_nan=False)
        except ValueError as err:
            raise ConfigError(f"a Config with non-finite values has no JSON form: {err}") from err

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> Config:
        """The Config of ``values``; unknown keys are an error naming them and ``source``.

        Keys that are missing take their defaults.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"{source} must be a JSON object, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source} has unknown setting(s) {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> Config:
        """Inverse of :meth:`to_json`."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source} is not valid JSON ({err})") from err
        return cls.from_dict(values, source)

    # --- validation ----------------------------------------------------------------------------

    def validate(self) -> Config:
        """Checks every field (types, ranges, combinations); returns ``self`` unchanged.

        Raises :class:`ConfigError` naming the first bad field. Data-dependent checks
        (batch size against the data size, memory) happen in
        :func:`jaxvae.train_and_evaluate` before anything is written.
        """
        from jaxvae import estimators, flows, losses, presets
        from jaxvae.data import SPLITS

        checks.choice(self, "model", tuple(presets.PRESETS))
        preset = presets.PRESETS[self.model]
        for name in presets.OPTION_FIELDS:
            if getattr(self, name) is not None and name not in preset.options:
                raise ConfigError(f"model {self.model!r} takes no {name} setting (it reads "
                                  f"{', '.join(preset.options) or 'none'})", name)
        checks.optional_int(self, "latent_dim", 1)
        checks.optional_int(self, "num_flows", 0)
        checks.optional_int(self, "num_classes", 1)
        checks.optional_int(self, "max_length", 1)
        checks.optional_int(self, "min_count", 1)
        checks.optional_int(self, "vocab_size", 5)
        checks.optional_int(self, "embed_dim", 1)
        checks.optional_int(self, "draw_steps", 1)
        if self.attention is not None and not (isinstance(self.attention, tuple) and len(
                self.attention) == 2 and all(checks.is_int(n) and n >= 1 for n in self.attention)):
            raise ConfigError(f"attention must be two grid sizes (read, write), e.g. [2, 5], "
                              f"got {self.attention!r}", "attention")
        if self.word_keep is not None:
            checks.real(self, "word_keep", 0.0)
            if self.word_keep > 1:
                raise ConfigError(f"word_keep must be a probability in [0, 1], got "
                                  f"{self.word_keep}", "word_keep")
        if self.hidden is not None:
            if not isinstance(self.hidden, tuple) or not self.hidden or not all(
                    checks.is_int(h) and h >= 1 for h in self.hidden):
                raise ConfigError(f"hidden must be a non-empty list of positive layer widths, "
                                  f"got {self.hidden!r}")
        if self.flow is not None:
            checks.choice(self, "flow", tuple(flows.FLOWS))
        if self.weight_noise is not None:
            checks.choice(self, "weight_noise", presets.WEIGHT_NOISE)
        if self.decoder is not None:
            checks.choice(self, "decoder", presets.DECODERS)
        if self.channels is not None:
            if not isinstance(self.channels, tuple) or not self.channels or not all(
                    checks.is_int(c) and c >= 1 for c in self.channels):
                raise ConfigError(f"channels must be a non-empty list of positive widths, got "
                                  f"{self.channels!r}", "channels")
        checks.choice(self, "likelihood", tuple(presets.LIKELIHOODS))
        if self.likelihood_scale is not None:
            if self.likelihood not in presets.SCALED_LIKELIHOODS:
                raise ConfigError(f"likelihood_scale applies to "
                                  f"{' and '.join(presets.SCALED_LIKELIHOODS)} only, not "
                                  f"{self.likelihood!r}", "likelihood_scale")
            checks.real(self, "likelihood_scale", 0.0, strict=True)
        if preset.task == "classification" and self.likelihood != "bernoulli":
            raise ConfigError(f"model {self.model!r} is a classifier; it takes no likelihood",
                              "likelihood")
        if preset.text and self.likelihood != "bernoulli":
            raise ConfigError(f"model {self.model!r} models words (a Categorical over the "
                              "vocabulary); it takes no likelihood setting", "likelihood")
        text_data = self.data in ("embedded", "wordnet") or self.data.startswith("text:")
        if preset.text and not (text_data or self.data.startswith("tfds:")):
            raise ConfigError(f"model {self.model!r} reads sentences: data must be 'wordnet', "
                              f"'text:PATH' or 'tfds:NAME', got {self.data!r}", "data")
        if not preset.text and (self.data == "wordnet" or self.data.startswith("text:")):
            raise ConfigError(f"{self.data!r} is text; model {self.model!r} reads images (the "
                              "sentence models are sentence-vae and rnn-lm)", "data")
        checks.choice(self, "objective", tuple(losses.OBJECTIVES))
        if self.estimator is not None:
            checks.choice(self, "estimator", tuple(estimators.ESTIMATORS))
            own = estimators.get_estimator(self.estimator).objective
            if own != self.objective:
                raise ConfigError(f"estimator {self.estimator!r} estimates the gradient of "
                                  f"{own!r}; set objective={own!r}")
        checks.integer(self, "k", 1)
        checks.real(self, "beta", 0.0)
        checks.flag(self, "analytic_kl")
        if self.free_bits is not None:
            checks.real(self, "free_bits", 0.0)
            if self.objective != "elbo" or self.estimator is not None:
                raise ConfigError("free_bits applies to objective='elbo' with the plain "
                                  "gradient", "free_bits")
        if preset.shared_posterior:
            for name, plain in (("estimator", None), ("analytic_kl", False),
                                ("free_bits", None), ("likelihood", "bernoulli")):
                if getattr(self, name) != plain:
                    raise ConfigError(f"model {self.model!r} trains on binary images with the "
                                      "plain gradient of the ELBO or IWAE bound and a Monte "
                                      f"Carlo KL; it takes no {name} (its q(z|x) reads the "
                                      "decoder: docs/design.md, 'DRAW')", name)
        elbo_only = self.beta != 1.0 or self.analytic_kl or self.annealing != "none"
        if self.objective != "elbo" and elbo_only:
            raise ConfigError("beta, analytic_kl and annealing apply to objective='elbo' only",
                              "beta")
        if self.analytic_kl and self.model == "nf" and (self.num_flows is None or
                                                        self.num_flows > 0):
            raise ConfigError("analytic_kl needs a Gaussian q(z|x); a flow posterior has no "
                              "closed-form KL")
        checks.choice(self, "annealing", ANNEALING)
        if self.annealing != "none":
            checks.integer(self, "annealing_steps", 1)
        elif self.annealing_steps is not None:
            raise ConfigError("annealing_steps needs an annealing schedule", "annealing_steps")
        checks.choice(self, "protocol", PROTOCOLS)
        checks.real(self, "lr", 0.0, strict=True)
        checks.optional_int(self, "batch_size", 1)
        checks.integer(self, "epochs", 1)
        checks.optional_int(self, "steps", 1)
        checks.real(self, "passes_scale", 0.0, strict=True)
        checks.integer(self, "seed", 0)
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError(f"data must be a data set name, got {self.data!r}")
        checks.choice(self, "split", SPLITS)
        checks.choice(self, "eval_split", SPLITS)
        checks.integer(self, "eval_k", 1)
        checks.optional_int(self, "eval_limit", 1)
        if preset.task == "classification" and self.objective != "elbo":
            raise ConfigError(f"model {self.model!r} is trained with its own SGVB bound; "
                              "set objective='elbo'")
        return self

    def resolved(self) -> Config:
        """A copy whose ``npz:`` or ``text:`` path is absolute (a run directory is used from
        anywhere); a sentence model's ``embedded`` data are ``wordnet``."""
        from jaxvae import presets

        for prefix in ("npz:", "text:"):
            if self.data.startswith(prefix):
                path = os.path.abspath(os.path.expanduser(self.data[len(prefix):]))
                return self.replace(data=prefix + path)
        if self.data == "embedded" and presets.PRESETS[self.model].text:
            return self.replace(data="wordnet")
        return self
