"""The training and evaluation steps behind :func:`jaxvae.train_and_evaluate`.

Kept apart from :mod:`jaxvae.experiment` (which checks settings and owns the run
directory) so that each file has one job: here a checked config becomes a model, a loss,
an optimizer and a train step; :func:`jaxvae.fit` runs them, and the final evaluation
turns the parameters into numbers.

Keys: ``(key_init, key_train, key_eval) = split(PRNGKey(seed), 3)``; the evaluation set
is binarized with a fixed draw from ``seed``, and pictures use ``PRNGKey(seed + 1)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import (
    data,
    draw_tools,
    evaluate,
    losses,
    objectives,
    plots,
    presets,
    sentences,
    terms,
    train,
)
from jaxvae.models import bayesian, draw

__all__ = ["Results", "NonFiniteResultError", "run_training", "make_optimizer", "init_params",
           "training_loss", "evaluation_set", "evaluate_density",
           "beta_schedule", "density_metrics", "classification_error", "data_dtype",
           "evaluation_images", "data_metrics"]


class NonFiniteResultError(RuntimeError):
    """An evaluation produced NaN or infinite values (the model or checkpoint is broken)."""


@dataclasses.dataclass(frozen=True)
class Results:
    """What :func:`train_and_evaluate` returns.

    Attributes:
      config: the (resolved) config that ran.
      metrics: the contents of ``results.json``: for density models ``test_elbo``,
        ``test_iwae_k{K}``, ``nll`` (= -IWAE bound), ``nll_stderr`` (standard error over
        images), ``active_units``; for classifiers ``test_error``; and ``steps``,
        ``passes``, ``train_seconds``, ``eval_seconds``.
      model: the model; params: its trained parameters; workdir: the run directory or None.
      posterior_variances: ``[latent_dim]`` variance over the test images of each latent
        unit's posterior mean (density models; a unit is active above 0.01), else None.
    """

    config: Any
    metrics: dict
    model: Any
    params: Any
    workdir: str | None = None
    posterior_variances: Any = None


def init_params(model, config, event_shape, key):
    """Initial parameters of a preset's model (classifiers are initialized on a dummy batch)."""
    if presets.get_preset(config.model).task == "classification":
        init = lambda k: model.init({"params": k, "noise": k}, jnp.zeros((1, *event_shape)))
        return jax.jit(init)(key)
    return jax.jit(model.init_params)(key)    # one compilation instead of many small ones


def make_optimizer(config, num_train: int, inject_lr: bool = False):
    """``(tx, num_steps)`` of ``config.protocol`` for ``num_train`` examples; ``inject_lr``
    (protocol "adam"): Adam under ``optax.inject_hyperparams``, whose learning rate is data
    (the runs of a group with different rates, :mod:`jaxvae.experiment_runs`)."""
    import optax

    from jaxvae import schedules

    steps_per_pass = max(1, num_train // config.effective_batch_size)
    if config.protocol == "iwae-paper":
        protocol = schedules.iwae_paper_optimizer(steps_per_pass, config.passes_scale)
        return protocol.tx, config.steps or protocol.num_steps
    total = config.steps or steps_per_pass * config.epochs
    if config.protocol == "cosine":
        return optax.adam(optax.cosine_decay_schedule(config.lr, total, alpha=0.1)), total
    if inject_lr:
        return optax.inject_hyperparams(optax.adam)(learning_rate=config.lr), total
    return optax.adam(config.lr), total


def beta_schedule(config):
    """``config.beta``, or a schedule ``step -> β`` when ``config.annealing`` is set."""
    from jaxvae import schedules

    if config.annealing == "none":
        return config.beta
    fn = {"linear": lambda t: schedules.linear_annealing(t, config.annealing_steps),
          # steepness 10 / annealing_steps: beta goes from sigmoid(-5) = 0.007 at step 0 to
          # 0.993 at annealing_steps, whatever their number
          "sigmoid": lambda t: schedules.sigmoid_annealing(
              t, max(1, config.annealing_steps // 2), rate=10.0 / config.annealing_steps),
          "cyclical": lambda t: schedules.cyclical_annealing(t, config.annealing_steps)}
    return lambda t: config.beta * fn[config.annealing](t)




def _finite(metrics: dict, where: str) -> dict:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise NonFiniteResultError(
            f"the evaluation of {where} gave non-finite {', '.join(bad)}; the parameters "
            "are not usable")
    return metrics


def density_metrics(model, params, x, key, eval_k: int, progress: bool, condition=None):
    """Test ELBO (k=1), IWAE bound (``eval_k``), NLL and its standard error, active units
    (DRAW: the mean KL of each step, ``kl_per_step``, and no variances).

    Args: ``x: [M, *event]`` binary test images; ``key``; ``eval_k`` >= 1; ``condition``
      ``[M]`` labels of a conditional model (the bounds are then on log p(x|c)), or None.
    Returns: ``(metrics, variances)``: a dict of floats and ints (nats per image) and the
      ``[latent_dim]`` variances of the posterior means behind ``active_units``.
    """
    k1, k2 = jax.random.split(key)
    elbo = evaluate.log_likelihood(model, params, x, k1, num_samples=1, progress=False,
                                   condition=condition)
    iwae = evaluate.log_likelihood(model, params, x, k2, num_samples=eval_k, progress=progress,
                                   condition=condition)
    metrics = {"test_elbo": float(np.mean(elbo)), f"test_iwae_k{eval_k}": float(np.mean(iwae)),
               "nll": float(-np.mean(iwae)), "nll_stderr": float(np.std(iwae) / np.sqrt(len(iwae))),
               "eval_k": eval_k}
    if isinstance(model, draw.Draw):            # z: [T, D]; its KL step by step instead
        step_kl = draw_tools.mean_step_kl(model, params, x, jax.random.fold_in(key, 2))
        return {**metrics, "kl_per_step": [round(float(v), 4) for v in step_kl],
                "num_test": int(x.shape[0])}, None
    active, variances = evaluate.active_units(model, params, x, key=jax.random.fold_in(key, 2),
                                              condition=condition)
    return {**metrics, "active_units": int(active), "num_test": int(x.shape[0])}, \
        np.asarray(variances)


def data_dtype(config) -> str:
    """The ``dtype`` to load images with: 8-bit integers unless the likelihood is Bernoulli."""
    return "float32" if presets.data_kind(config) == "binary" else "uint8"


def train_preprocess(config):
    """The train step's ``preprocess`` for ``config.likelihood``'s data (None: as loaded)."""
    return {"binary": data.dynamic_binarization, "continuous": data.dynamic_dequantization,
            "integer": None, "tokens": None}[presets.data_kind(config)]


def evaluation_images(config, images, seed: int):
    """Test images as the likelihood sees them, with the protocol stated.

    Args: ``config``; ``images: [N, *event]`` loaded with :func:`data_dtype`; ``seed``.
    Returns: ``(x, statement)``: binarized with a fixed draw (Bernoulli), dequantized with
      a fixed draw (continuous heads) or the 8-bit integers (discretized heads).
    """
    kind = presets.data_kind(config)
    if kind == "tokens":
        return np.asarray(images), "token ids, words outside the vocabulary as <unk>"
    if kind == "binary":
        return data.binarize_fixed(images, seed=seed), f"binarized, fixed seed {seed}"
    if kind == "continuous":
        return data.dequantize_fixed(images, seed=seed), \
            f"8-bit, dequantized to [0, 1] as (x + u) / 256, fixed seed {seed}"
    return np.asarray(images), "8-bit integers 0..255"


def data_metrics(config, event_shape, nll: float) -> dict:
    """Bits per dimension of ``nll`` (nats per example) for ``config.likelihood``'s data.

    Continuous heads on dequantized data report ``nll_8bit`` = nll + D ln 256, an upper
    bound on the 8-bit data's NLL (see :mod:`jaxvae.data.dequantize`), and its bits/dim.
    """
    from jaxvae import likelihoods

    num_dims = math.prod(event_shape)
    if presets.data_kind(config) == "continuous":
        levels = data.dequantize.LEVELS
        return {"nll_8bit": nll + num_dims * math.log(levels),
                "bits_per_dim": likelihoods.bits_per_dim(nll, num_dims, levels=levels)}
    return {"bits_per_dim": likelihoods.bits_per_dim(nll, num_dims)}


def classification_error(model, params, x, y, batch_size: int = 1000) -> float:
    """Error rate of the posterior-mean network (weights = their means, no noise).

    Args: a :class:`jaxvae.models.BayesianMLP`; ``x: [M, *event]``; ``y: [M]`` labels.
    """
    mean_model = model.clone(estimator="mean")
    predict = jax.jit(lambda p, xb: jnp.argmax(mean_model.apply(p, xb), -1))
    wrong = sum(int(np.sum(np.asarray(predict(params, x[i:i + batch_size])) != y[i:i + batch_size]))
                for i in range(0, len(x), batch_size))
    return wrong / len(x)


def _mean_rate(model, valid):
    """``rate(params, key)``: the mean closed-form KL(q(z|x) || p(z)) over ``valid``."""
    def kl(params, x, key):
        q, prior, _ = terms.model_terms(model, params, x)
        return objectives.kl_divergence(q, prior)

    return jax.jit(lambda params, key: jnp.mean(terms.map_batch(kl, params, valid, key)))


def training_loss(config, model):
    """The loss ``config`` trains a density model with (objective, k, estimator, β, ...)."""
    options = {}
    if config.objective == "elbo" and config.estimator is None:
        options = {"beta": beta_schedule(config), "analytic_kl": config.analytic_kl,
                   "free_bits": config.free_bits}
    return losses.make_loss(model, config.objective, config.k, estimator=config.estimator,
                            **options)


def evaluation_set(config, preset, test_set):
    """``(test_x, test_y, statement)``: the evaluated images (:func:`evaluation_images` with
    ``config.seed``, the first ``eval_limit``), their labels for a conditional model."""
    test_x, statement = evaluation_images(config, test_set.images, config.seed)
    test_y = test_set.labels if preset.conditional else None
    if config.eval_limit:
        test_x = test_x[:config.eval_limit]
        test_y = None if test_y is None else test_y[:config.eval_limit]
    return test_x, test_y, statement


def evaluate_density(config, model, params, evaluated, key_eval, event_shape, progress,
                     where: str, timing: dict):
    """The final metrics of a density run: ``(metrics, variances)`` (see
    :func:`density_metrics`), with bits per dimension, the test-data statement and
    ``timing``; non-finite values raise :class:`NonFiniteResultError` naming ``where``."""
    test_x, test_y, statement = evaluated
    start = time.time()
    metrics, variances = density_metrics(model, params, test_x, key_eval, config.eval_k,
                                         progress, test_y)
    metrics.update(data_metrics(config, event_shape, metrics["nll"]), test_data=statement)
    return _finite({**metrics, **timing, "eval_seconds": round(time.time() - start, 1)},
                   where), variances


def _density_parts(config, model, test_x, key_eval, test_y=None):
    loss_fn = training_loss(config, model)
    valid = jnp.asarray(test_x[:1000])
    if test_y is not None:                      # a conditional model: batches are (x, c)
        valid = (valid, jnp.asarray(test_y[:1000]))
    elbo_fn = jax.jit(losses.make_objective(model, "elbo", 1))
    eval_fn = lambda s: {"eval_elbo": jnp.mean(elbo_fn(s.params, valid, key_eval))}
    if presets.data_kind(config) == "tokens" and model.latent_shape[0] > 0:
        rate_fn, elbo_only = _mean_rate(model, valid), eval_fn     # watch the KL collapse
        eval_fn = lambda s: {**elbo_only(s), "eval_kl": rate_fn(s.params, key_eval)}
    return loss_fn, eval_fn


def run_training(config, preset, train_set, test_set, workdir, resume, progress, pictures,
                 data_info=None):
    """Builds, trains and evaluates; returns :class:`jaxvae.Results` (``workdir`` may be None).

    ``data_info``: a text preset's vocabulary size (see :class:`jaxvae.presets.Preset`).
    """
    x = train_set.images
    if preset.text:
        model = preset.build(config, x.shape[1:], data_info)
    else:
        model = preset.build(config, x.shape[1:], x.mean(axis=0) if preset.task == "density"
                             and presets.data_kind(config) == "binary" else None)
    key_init, key_train, key_eval = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    tx, num_steps = make_optimizer(config, x.shape[0])
    params = init_params(model, config, x.shape[1:], key_init)
    state = train.create_train_state(params, tx, key_train)
    batch_size = config.effective_batch_size
    if preset.task == "classification":
        loss_fn = bayesian.classification_loss(model, x.shape[0])
        train_data, preprocess, eval_fn, mesh = (x, train_set.labels), None, None, None
    else:
        evaluated = evaluation_set(config, preset, test_set)
        test_x, test_y, _ = evaluated
        loss_fn, eval_fn = _density_parts(config, model, test_x, key_eval, test_y)
        train_data = (x, train_set.labels) if preset.conditional else x
        preprocess = train_preprocess(config)
        mesh = train.data_mesh() if jax.device_count() > 1 and \
            batch_size % jax.device_count() == 0 else None
    step = train.make_train_step(loss_fn, tx, preprocess=preprocess, mesh=mesh)
    if progress:
        print(f"training {config.model} with {config.estimator or config.objective} "
              f"(k={config.k}) on {train_set.name} [{config.split}, {x.shape[0]} examples]"
              + (f"; run directory {workdir}" if workdir else ""), flush=True)
    start = time.time()
    state = train.fit(state, step, train_data, batch_size=batch_size, num_epochs=config.epochs,
                      num_steps=num_steps, seed=config.seed, eval_fn=eval_fn, workdir=workdir,
                      resume=resume, mesh=mesh, progress=progress)
    jax.block_until_ready(state.params)
    if jax.process_count() > 1:     # a host copy: each process evaluates on its own
        state = state._replace(params=jax.device_get(state.params))
    timing = {"steps": int(state.step), "passes": round(int(state.step) * batch_size / len(x), 2),
              "train_seconds": round(time.time() - start, 1)}
    where = f"the run in {workdir}" if workdir else "the trained model"
    variances = None
    if preset.task == "density" and not preset.text:
        metrics, variances = evaluate_density(config, model, state.params, evaluated, key_eval,
                                              x.shape[1:], progress, where, timing)
    else:
        start = time.time()
        if preset.task == "classification":
            metrics = {"test_error": classification_error(model, state.params, test_set.images,
                                                          test_set.labels)}
        else:
            metrics = sentences.text_metrics(model, state.params, test_x, key_eval,
                                             config.eval_k, progress)
        metrics = _finite({**metrics, **timing, "eval_seconds": round(time.time() - start, 1)},
                          where)
    if pictures and workdir and preset.task == "density":
        _pictures(model, state.params, test_x, config.seed, workdir, test_y)
    return Results(config, metrics, model, state.params, workdir, variances)


def _pictures(model, params, test_x, seed: int, workdir: str, test_y=None) -> None:
    pkey = jax.random.PRNGKey(seed + 1)
    if test_y is not None:                      # a conditional model: one row per label
        plots.save_conditional_samples(model, params, pkey, os.path.join(workdir, "samples.png"),
                                       model.condition_dim)
        return
    plots.save_samples(model, params, pkey, os.path.join(workdir, "samples.png"))
    if isinstance(model, draw.Draw):            # the canvas over time instead of z-space plots
        canvases, _ = draw_tools.prior_canvases(model, params, pkey, 8)
        draw_tools.save_canvas_steps(canvases, os.path.join(workdir, "canvas.png"))
        return
    plots.save_reconstructions(model, params, test_x[:32],
                               os.path.join(workdir, "reconstructions.png"),
                               key=jax.random.fold_in(pkey, 1))
    plots.save_interpolation(model, params, test_x[0], test_x[1],
                             os.path.join(workdir, "interpolation.png"),
                             key=jax.random.fold_in(pkey, 2))
