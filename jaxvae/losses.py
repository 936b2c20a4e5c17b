"""Model-level objectives and the training loss: pure functions of ``(params, batch, key)``.

:func:`make_objective` gives the per-example bound of a model over a batch;
:func:`make_loss` the loss for ``jax.grad`` and :func:`jaxvae.make_train_step`, with the
plain gradient of the bound or any gradient estimator of :mod:`jaxvae.estimators`. Both
close over the settings (objective, k, beta, ...) so that nothing needs ``static_argnums``.
A batch is ``x: [B, *event]``, a tuple ``(x, condition)`` or a dict with ``"x"`` and
``"condition"`` (see :func:`jaxvae.terms.batch_parts`).
"""

from __future__ import annotations

from jaxvae import _checks, estimators, objectives, terms
from jaxvae.terms import ParamGroups
from jaxvae.types import LossFn

__all__ = ["make_objective", "make_loss", "OBJECTIVES"]

_OBJECTIVES = {"elbo": objectives.elbo, "iwae": objectives.iwae_bound}
#: names of the objectives
OBJECTIVES = tuple(_OBJECTIVES)


def make_objective(model, objective: str = "iwae", num_samples: int = 1, **kwargs):
    """Per-example bound of ``model`` over a batch.

    Args:
      model: implements :class:`jaxvae.types.Model` (e.g. :func:`jaxvae.iwae_mlp`).
      objective: ``"elbo"`` or ``"iwae"``.
      num_samples: k >= 1 importance / Monte Carlo samples per example.
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
        q, prior, log_likelihood = terms.model_terms(
            model, params, x, condition=condition[0] if condition else None)
        return fn(key, q, prior, log_likelihood, num_samples, **kwargs)

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
      **options: the objective's options (``analytic_kl``, ``beta``), or the estimator's.
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
    if estimator is None:
        if objective is None:
            raise ValueError("objective=None needs an estimator")
        bound_fn = make_objective(model, objective, num_samples, **options)
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
