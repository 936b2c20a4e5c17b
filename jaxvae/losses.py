"""Model-level objectives and the training loss: pure functions of ``(params, batch, key)``.

:func:`make_objective` gives the per-example bound of a model over a batch;
:func:`make_loss` the loss for ``jax.grad`` and :func:`jaxvae.make_train_step`, with the
plain gradient of the bound or any gradient estimator of :mod:`jaxvae.estimators`. Both
close over the settings (objective, k, beta, ...) so that nothing needs ``static_argnums``.
A batch is ``x: [B, *event]``, a tuple ``(x, condition)`` or a dict with ``"x"`` and
``"condition"`` (see :func:`jaxvae.terms.batch_parts`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxvae import _checks, estimators, objectives, terms
from jaxvae.terms import ParamGroups
from jaxvae.types import LossFn

__all__ = ["make_objective", "make_loss", "make_free_bits_loss", "make_run_loss", "OBJECTIVES"]

_OBJECTIVES = {"elbo": objectives.elbo, "iwae": objectives.iwae_bound}
#: names of the objectives
OBJECTIVES = tuple(_OBJECTIVES)


def _example_terms(model, params, x, key, condition: tuple, training: bool):
    """``(key for z, (q, prior, log_likelihood))`` of one example; ``condition`` is ``()`` or
    ``(c,)``; with ``training`` the model's training noise takes its keys off ``key``."""
    key, rngs = terms.training_rngs(model, key) if training else (key, None)
    return key, terms.model_terms(model, params, x, condition=condition[0] if condition else None,
                                  rngs=rngs)


def make_objective(model, objective: str = "iwae", num_samples: int = 1, *,
                   training: bool = False, **kwargs):
    """Per-example bound of ``model`` over a batch.

    Args:
      model: implements :class:`jaxvae.types.Model` (e.g. :func:`jaxvae.iwae_mlp`).
      objective: ``"elbo"`` or ``"iwae"``.
      num_samples: k >= 1 importance / Monte Carlo samples per example.
      training: give the model its training-time noise (the rng streams it names in
        ``rng_streams``, e.g. word dropout; :func:`jaxvae.terms.training_rngs`);
        False (evaluation) gives none.
      **kwargs: passed to the objective (``analytic_kl``, ``beta`` for the ELBO).

    Returns:
      ``bound(params, batch, key) -> [B]`` in nats per example; ``batch`` is
      ``x: [B, *event]``, ``(x, condition)`` or a dict.
    """
    if objective not in _OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(_OBJECTIVES)}")
    _checks.num_samples(num_samples)
    if objective == "iwae" and kwargs:
        raise ValueError(f"the IWAE bound takes no options, got {sorted(kwargs)}")
    fn = _OBJECTIVES[objective]

    def per_example(params, x, key, *condition):
        key, terms_x = _example_terms(model, params, x, key, condition, training)
        return fn(key, *terms_x, num_samples, **kwargs)

    def bound(params, batch, key):
        return terms.map_examples(model, per_example, params, batch, key)

    return bound


def make_loss(model, objective: str | None = "iwae", num_samples: int = 1,
              estimator: str | estimators.Estimator | None = None, **options) -> LossFn:
    """Loss for ``jax.grad``: ``loss(params, batch, key) -> (loss, info)``.

    loss = -mean_batch(bound) (nats per example); ``info = {"bound": mean bound}``.

    Args:
      model: implements :class:`jaxvae.types.Model`.
      objective: ``"elbo"`` or ``"iwae"``; with an ``estimator``, None means the
        estimator's own objective, and any other value must equal it.
      num_samples: k >= 1.
      estimator: None for the plain gradient of the objective, or a gradient estimator
        (a name in :data:`jaxvae.ESTIMATORS` or an :class:`jaxvae.estimators.Estimator`).
        The loss then takes the model's ordinary parameters and splits them into
        inference and generative groups inside (explicit :class:`jaxvae.ParamGroups` are
        accepted too; gradients have the structure of what was passed).
      **options: the objective's options (``analytic_kl``, ``beta``), or the estimator's;
        ``free_bits=λ`` (ELBO, no estimator) trains with :func:`make_free_bits_loss`, whose
        KL is always the closed form (``analytic_kl`` is then not read).
        ``beta`` may be a schedule ``step -> β`` (KL annealing, e.g. from
        :mod:`jaxvae.schedules`): the loss then takes the step as a fourth argument and
        has ``takes_step = True``, which :func:`jaxvae.make_train_step` honours.

    Returns:
      ``loss(params, batch, key) -> (loss, {"bound": bound})``: scalars in nats per example,
      ``batch`` as in :func:`make_objective`.
    """
    if callable(options.get("beta")):
        schedule = options.pop("beta")
        per_step = lambda beta: make_loss(model, objective, num_samples, estimator, beta=beta,
                                          **options)
        per_step(1.0)   # settings are checked now, not at the first step

        def annealed(params, batch, key, step):
            loss_value, info = per_step(schedule(step))(params, batch, key)
            return loss_value, {**info, "beta": schedule(step)}

        annealed.takes_step = True
        return annealed
    if options.get("free_bits") is not None:
        if estimator is not None or objective != "elbo":
            raise ValueError("free_bits applies to objective='elbo' with the plain gradient")
        options.pop("analytic_kl", None)      # the floor is on the closed-form KL
        return make_free_bits_loss(model, options.pop("free_bits"), num_samples, **options)
    options.pop("free_bits", None)
    if estimator is None:
        if objective is None:
            raise ValueError("objective=None needs an estimator")
        bound_fn = make_objective(model, objective, num_samples, training=True, **options)
    else:
        surrogate = estimators.make_estimator(model, estimator, num_samples, **options)
        est = surrogate.estimator
        if objective is not None and objective != est.objective:
            raise ValueError(f"estimator {est.name!r} estimates the gradient of "
                             f"{est.objective!r}, not of objective={objective!r}")

        def bound_fn(params, batch, key):
            groups = params if isinstance(params, ParamGroups) else \
                terms.split_params(model, params)
            return surrogate(groups, batch, key)

    def loss(params, batch, key):
        bound = bound_fn(params, batch, key).mean()
        return -bound, {"bound": bound}

    return loss


def make_free_bits_loss(model, free_bits: float, num_samples: int = 1,
                        beta: float = 1.0) -> LossFn:
    """The ELBO with free bits (Kingma et al., 2016, eq. 15): a KL floor per latent unit.

        loss = -mean_b (1/k) sum_i log p(x_b|z_bi) + beta * sum_j max(λ, mean_b KL_bj),

    KL_bj = KL(q(z_j|x_b) || p(z_j)) in closed form. A unit whose minibatch-averaged KL is
    below λ nats gets no gradient pushing it further towards the prior, so the encoder
    keeps using it; above λ the loss is the β-weighted ELBO. The floor is on the
    *minibatch average*, which is why it lives in the loss and not in the per-example
    :func:`jaxvae.elbo`. The logged ``bound`` is the plain ELBO (β = 1, no floor) and
    ``kl`` the rate, both nats per example.

    Args: ``model`` with diagonal Gaussian q(z|x) and p(z); ``free_bits`` λ >= 0 nats per
      unit (or a traced scalar); ``num_samples`` k; ``beta`` >= 0 (a traced value is
      fine: the annealing wrapper of :func:`make_loss` passes one).
    Returns: ``loss(params, batch, key) -> (loss, {"bound", "kl"})``; training noise
      (:func:`jaxvae.terms.training_rngs`) is on.

    Reference: Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), Improved
      Variational Inference with Inverse Autoregressive Flow, Appendix C.8.
    """
    traced = isinstance(free_bits, jax.core.Tracer)
    if not traced and (isinstance(free_bits, bool) or not isinstance(free_bits, (int, float))
                       or not free_bits >= 0):
        raise ValueError(f"free_bits must be a number of nats >= 0, got {free_bits!r}")
    _checks.num_samples(num_samples)

    def per_example(params, x, key, *condition):
        key, (q, prior, log_likelihood) = _example_terms(model, params, x, key, condition, True)
        samples = objectives.sample_terms(key, q, prior, log_likelihood, num_samples)
        return jnp.mean(samples.log_likelihood), objectives.kl_per_unit(q, prior)

    def loss(params, batch, key):
        reconstruction, kl = terms.map_examples(model, per_example, params, batch, key)
        reconstruction, kl = reconstruction.mean(), kl.mean(axis=0)
        floored = jnp.sum(jnp.maximum(kl, free_bits))
        return -(reconstruction - beta * floored), \
            {"bound": reconstruction - jnp.sum(kl), "kl": jnp.sum(kl)}

    return loss


def make_run_loss(model, num_samples: int = 1) -> Callable:
    """The loss of a sweep whose objective and β are data: one program for VAE and IWAE runs.

    On the same k samples of each example (the draws of :func:`jaxvae.elbo` and
    :func:`jaxvae.iwae_bound` with the same key),

        bound = IWAE_k                                    if hparams["iwae"],
        bound = (1/k) sum_i log p(x|z_i) - β (1/k) sum_i [log q(z_i|x) - log p(z_i)]  else,

    so a run with ``iwae = 0`` trains exactly as ``make_loss(model, "elbo", k, beta=β)`` and
    one with ``iwae = 1`` as ``make_loss(model, "iwae", k)`` (tested). Used with
    :func:`jaxvae.runs.make_runs_step`, whose runs pass their own ``hparams``.

    Args: ``model`` (:class:`jaxvae.types.Model`); ``num_samples`` k >= 1.
    Returns: ``loss(params, batch, key, hparams) -> (loss, {"bound": bound})``, ``hparams`` a
      dict of scalars ``iwae`` (bool or 0/1) and ``beta``; nats per example; training noise on.
    """
    _checks.num_samples(num_samples)

    def loss(params, batch, key, hparams):
        def per_example(params, x, key, *condition):
            key, (q, prior, log_likelihood) = _example_terms(model, params, x, key, condition,
                                                             True)
            t = objectives.sample_terms(key, q, prior, log_likelihood, num_samples)
            elbo = jnp.mean(t.log_likelihood) - hparams["beta"] * jnp.mean(t.log_q - t.log_prior)
            return jnp.where(hparams["iwae"], objectives.log_mean_exp(t.log_w), elbo)

        bound = terms.map_examples(model, per_example, params, batch, key).mean()
        return -bound, {"bound": bound}

    return loss
