"""Schedules: optimization protocols from the papers, and KL-annealing weights.

Optimization: :func:`iwae_paper_optimizer` — Burda, Grosse & Salakhutdinov (2015), Sec. 5: Adam with
beta1 = 0.9, beta2 = 0.999, eps = 1e-4, run in stages i = 0..7 of 3^i passes over the
data at learning rate 1e-3 * 10^(-i/7): 3280 passes in all, with batches of 20.

KL annealing (the weight beta(t) of the KL term in :func:`jaxvae.elbo`, a function of the
step that may be traced inside a jitted train step): :func:`linear_annealing`,
:func:`sigmoid_annealing` (Bowman et al., 2016) and :func:`cyclical_annealing` (Fu et al.,
2019).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxvae import _checks
from jaxvae.types import Array

__all__ = ["TrainingProtocol", "iwae_paper_optimizer", "IWAE_PAPER_BATCH_SIZE",
           "linear_annealing", "sigmoid_annealing", "cyclical_annealing"]

IWAE_PAPER_BATCH_SIZE = 20


class TrainingProtocol(NamedTuple):
    """An optimizer with the number of steps and the stages it was built for."""

    tx: optax.GradientTransformation
    num_steps: int                       # total optimizer steps
    stages: tuple                        # ((steps, learning_rate), ...) per stage


def iwae_paper_optimizer(steps_per_pass: int, passes_scale: float = 1.0,
                         num_stages: int = 8) -> TrainingProtocol:
    """Adam(0.9, 0.999, eps=1e-4) with the IWAE paper's staged learning rate.

    Stage i (i = 0..num_stages-1) lasts ``max(1, round(3^i * passes_scale * steps_per_pass))``
    steps at learning rate 1e-3 * 10^(-i/7). ``passes_scale = 1`` is the paper's 3280
    passes; smaller values shrink every stage by the same factor, keeping the shape of the
    schedule, for small budgets.

    Args:
      steps_per_pass: optimizer steps per pass over the training set (N // batch size).
      passes_scale: > 0, the fraction of the paper's passes.
      num_stages: 8 in the paper.

    Returns:
      :class:`TrainingProtocol` ``(tx, num_steps, stages)``, ``stages`` the
      ``(steps, learning_rate)`` of each stage; train with batches of 20
      (:data:`IWAE_PAPER_BATCH_SIZE`).

    References:
      Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, Sec. 5.
    """
    if steps_per_pass < 1:
        raise ValueError(f"steps_per_pass must be >= 1, got {steps_per_pass}")
    if not passes_scale > 0:
        raise ValueError(f"passes_scale must be positive, got {passes_scale}")
    stages = tuple((max(1, round(3 ** i * passes_scale * steps_per_pass)), 1e-3 * 10 ** (-i / 7))
                   for i in range(num_stages))
    boundaries, total = [], 0
    for steps, _ in stages[:-1]:
        total += steps
        boundaries.append(total)
    schedule = optax.join_schedules([optax.constant_schedule(lr) for _, lr in stages],
                                    boundaries)
    tx = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-4)
    return TrainingProtocol(tx, sum(steps for steps, _ in stages), stages)


def linear_annealing(step: Array | int, warmup_steps: int, start: float = 0.0,
                     end: float = 1.0) -> Array:
    """KL weight rising linearly from ``start`` to ``end`` over ``warmup_steps`` steps.

    beta(t) = start + (end - start) * min(t / warmup_steps, 1).

    Args: ``step`` (int or traced int scalar), ``warmup_steps`` >= 1, ``start`` and ``end``
      the weights before and after the warm-up.
    Returns: a float32 scalar, the KL weight beta.
    References: Bowman et al. (2016), Generating Sentences from a Continuous Space, Sec. 3.1.
    """
    if warmup_steps <= 0:
        raise ValueError(f"warmup_steps must be positive, got {warmup_steps}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
    return start + (end - start) * frac


def sigmoid_annealing(step: Array | int, midpoint: int, rate: float = 0.0025,
                      end: float = 1.0) -> Array:
    """Logistic KL weight: beta(t) = end / (1 + exp(-rate (t - midpoint))).

    Args: ``step`` (int or traced), ``midpoint`` >= 1 the step where beta = end / 2,
      ``rate`` > 0 the steepness per step, ``end`` the final weight.
    Returns: a float32 scalar in (0, end), the KL weight beta.
    References: Bowman et al. (2016), Generating Sentences from a Continuous Space, Fig. 2.
    """
    _checks.integer(midpoint, "midpoint", 1)
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    t = jnp.asarray(step, jnp.float32)
    return end * jax.nn.sigmoid(rate * (t - midpoint))


def cyclical_annealing(step: Array | int, cycle_steps: int, num_cycles: int = 4,
                       ramp_fraction: float = 0.5, end: float = 1.0) -> Array:
    """Cyclical KL weight: ``num_cycles`` linear ramps from 0 to ``end``, then ``end``.

    Within each of ``num_cycles`` cycles of ``cycle_steps`` steps, beta rises linearly from 0
    to ``end`` over the first ``ramp_fraction`` of the cycle and stays at ``end`` for the
    rest; after the last cycle it stays at ``end``.

    beta(t) = end * min(1, (t mod C) / (R C))  for t < num_cycles C, else end.

    Args: ``step`` (int or traced), ``cycle_steps`` C >= 1, ``num_cycles`` >= 1,
      ``ramp_fraction`` R in (0, 1], ``end`` the weight at the top of each ramp.
    Returns: a float32 scalar in [0, end], the KL weight beta.
    References: Fu et al. (2019), Cyclical Annealing Schedule: A Simple Approach to
      Mitigating KL Vanishing, eq. (6).
    """
    _checks.integer(cycle_steps, "cycle_steps", 1)
    _checks.integer(num_cycles, "num_cycles", 1)
    if not 0 < ramp_fraction <= 1:
        raise ValueError(f"ramp_fraction must be in (0, 1], got {ramp_fraction!r}")
    t = jnp.asarray(step, jnp.float32)
    in_cycle = jnp.mod(t, cycle_steps) / (ramp_fraction * cycle_steps)
    beta = end * jnp.clip(in_cycle, 0.0, 1.0)
    return jnp.where(t >= num_cycles * cycle_steps, end, beta)
