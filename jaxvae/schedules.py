"""Optimization protocols from the papers, as optax optimizers.

:func:`iwae_paper_optimizer` — Burda, Grosse & Salakhutdinov (2015), Sec. 5: Adam with
beta1 = 0.9, beta2 = 0.999, eps = 1e-4, run in stages i = 0..7 of 3^i passes over the
data at learning rate 1e-3 * 10^(-i/7): 3280 passes in all, with batches of 20.
"""

from __future__ import annotations

from typing import NamedTuple

import optax

__all__ = ["Protocol", "iwae_paper_optimizer", "IWAE_PAPER_BATCH_SIZE"]

IWAE_PAPER_BATCH_SIZE = 20


class Protocol(NamedTuple):
    tx: optax.GradientTransformation
    num_steps: int                       # total optimizer steps
    stages: tuple                        # ((steps, learning_rate), ...) per stage


def iwae_paper_optimizer(steps_per_pass: int, passes_scale: float = 1.0,
                         num_stages: int = 8) -> Protocol:
    """Adam(0.9, 0.999, eps=1e-4) with the IWAE paper's staged learning rate.

    Stage i (i = 0..num_stages-1) lasts ``max(1, round(3^i * passes_scale * steps_per_pass))``
    steps at learning rate 1e-3 * 10^(-i/7). ``passes_scale = 1`` is the paper's 3280
    passes; smaller values shrink every stage by the same factor, keeping the shape of the
    schedule, for small budgets.

    Args:
      steps_per_pass: optimizer steps per pass over the training set (N // batch size).
      passes_scale: > 0, the fraction of the paper's passes.
      num_stages: 8 in the paper.
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
    return Protocol(tx, sum(steps for steps, _ in stages), stages)
