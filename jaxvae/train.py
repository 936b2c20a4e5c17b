"""Training: a train state, one jitted step, and a short ``fit`` loop around it.

* :class:`TrainState` — params, optax state, step, PRNG key (a NamedTuple pytree).
* :func:`make_train_step` — ``(state, batch) -> (state, metrics)``, one ``jax.jit``; a
  batch is a pytree (``x``, ``(x, y)``, a dict), ``preprocess(key, batch)`` runs inside
  the step (dynamic binarization, masks); with a :class:`jax.sharding.Mesh` every leaf of
  the batch is split over devices (data parallel).
* :func:`fit` — epochs of shuffled minibatches with a progress bar, periodic
  evaluation, metrics as JSONL and resumable orbax checkpoints.

Randomness: step t uses ``fold_in(state.key, t)``, and the batch order of epoch e is
drawn from ``(seed, e)``; a run resumed from any checkpoint therefore reproduces the
uninterrupted run exactly.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxvae import data, distributed, rundir
from jaxvae.checkpoints import Checkpointer, CheckpointError, is_finite_tree

Array = jax.Array

__all__ = ["TrainState", "create_train_state", "make_train_step", "step_function", "data_mesh",
           "shard_batch", "fit", "open_checkpointer", "start_metrics_log", "step_bar",
           "Checkpointer", "CheckpointError", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss or its gradient stopped being finite; training was stopped at that step."""


class TrainState(NamedTuple):
    """Everything a training run carries between steps (a pytree, checkpointed whole).

    Attributes:
      params: the model's parameters.
      opt_state: the optax optimizer state.
      step: ``int32`` scalar, the number of updates applied.
      key: PRNG key of the run; step t uses ``fold_in(key, t)``.
    """

    params: Any
    opt_state: Any
    step: Array     # int32 scalar: number of updates applied
    key: Array      # PRNG key; step t uses fold_in(key, t)


def create_train_state(params, tx: optax.GradientTransformation, key: Array) -> TrainState:
    """A fresh :class:`TrainState` at step 0.

    It holds copies of ``params`` and ``key``: the train step donates the state's buffers,
    and the caller's arrays must stay valid.

    Args: ``params`` (e.g. ``model.init_params(key)``), ``tx`` the optax optimizer, ``key``.
    Returns: :class:`TrainState` with ``step = 0`` and ``opt_state = tx.init(params)``.
    """
    params, key = jax.tree_util.tree_map(jnp.array, (params, key))
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), key)


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"batch"`` over ``devices`` (default: all devices, all hosts).

    Args: ``devices``, a sequence of jax devices or None. Returns: a ``jax.sharding.Mesh``.
    """
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("batch",))


def shard_batch(batch, mesh: Mesh):
    """Places a host batch split along its leading axis over ``mesh``'s ``"batch"`` axis.

    ``batch`` is an array ``[B, ...]`` or a pytree of them (``(x, y)``, a dict) sharing the
    leading axis B; every leaf is sharded the same way and the structure is kept.
    Multi-host: each process passes its own slice; the global batch is their concatenation.

    Args: ``batch``, leaves ``[B, ...]`` with B * processes divisible by the devices; ``mesh``.
    Returns: the batch as global ``jax.Array`` leaves ``[B * processes, ...]``, sharded.
    """
    leaves, treedef, rows = distributed.batch_leaves(batch)
    num = mesh.devices.size
    size = rows * jax.process_count()
    if size % num:
        raise ValueError(f"batch size {size} must be divisible "
                         f"by the number of devices ({num}) for data parallelism")
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.tree_util.tree_unflatten(
        treedef, [jax.make_array_from_process_local_data(sharding, leaf) for leaf in leaves])


def step_function(loss_fn: Callable, tx: optax.GradientTransformation, *,
                  preprocess: Callable | None = None) -> Callable:
    """The unjitted step behind :func:`make_train_step`, for callers that compose it
    (``lax.scan`` over steps, ``vmap`` over runs: :mod:`jaxvae.runs`).

    Returns: ``step(state, batch, *loss_args) -> (state, metrics)``; ``loss_args`` (e.g.
    per-run hyperparameters) are passed to ``loss_fn`` after the key and the step.
    """

    def step(state: TrainState, batch, *loss_args):
        key = jax.random.fold_in(state.key, state.step)
        key_data, key_loss = jax.random.split(key)
        if preprocess is not None:
            batch = preprocess(key_data, batch)
        extra = (state.step,) if getattr(loss_fn, "takes_step", False) else ()
        (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, key_loss, *extra, *loss_args)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(u)) for u in jax.tree_util.tree_leaves(updates)]))
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params, opt_state, state.step + 1, state.key)
        return new_state, {"loss": loss, "finite": finite, **info}

    return step


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, *,
                    preprocess: Callable | None = None, mesh: Mesh | None = None,
                    donate: bool = True):
    """One optimizer step as a single jitted function.

    Step t draws ``key = fold_in(state.key, t)`` and splits it into ``(key_data,
    key_loss)``: ``preprocess`` gets ``key_data``, the loss ``key_loss``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, info)`` (e.g. :func:`jaxvae.make_loss`,
        whose batch is ``x: [B, *event]``); with ``loss_fn.takes_step`` true it is called
        as ``loss_fn(params, batch, key, step)`` (an annealed β).
      tx: the optax optimizer.
      preprocess: ``preprocess(key, batch) -> batch``, applied inside the step before the
        loss, e.g. :func:`jaxvae.data.dynamic_binarization` (a fresh Bernoulli draw per
        step; Burda et al. 2015), word-dropout masks or augmentation. Default: none.
      mesh: if given, every leaf of the batch is sharded along its leading axis over the
        mesh's ``"batch"`` axis and the state is replicated; gradients are averaged by
        XLA's collectives. Pass batches through :func:`shard_batch`.
      donate: reuse the old state's buffers for the new state.

    Returns:
      ``step(state, batch) -> (state, metrics)``, ``batch`` a pytree of arrays with leading
      axis B (``x``, ``(x, y)``, a dict), ``metrics`` a dict of scalars: ``loss``,
      ``finite`` (False when the loss or the update is not finite; :func:`fit` stops
      there and never saves what follows) and everything in ``info``.
    """

    step = step_function(loss_fn, tx, preprocess=preprocess)
    donate_argnums = (0,) if donate else ()
    if mesh is None:
        return jax.jit(step, donate_argnums=donate_argnums)
    replicated = NamedSharding(mesh, PartitionSpec())
    # one sharding as a pytree prefix: it applies to every leaf of the batch
    batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(step, in_shardings=(replicated, batch_sharding),
                   out_shardings=(replicated, replicated), donate_argnums=donate_argnums)


# --- the loop ---------------------------------------------------------------------------------

def open_checkpointer(workdir: str, resume: bool, overwrite: bool) -> Checkpointer:
    """The :class:`Checkpointer` of ``workdir/checkpoints`` for a run that starts or resumes.

    ``overwrite`` (without ``resume``) deletes the old checkpoints first (process 0; the
    others wait for it in the Checkpointer's barrier). Raises :class:`CheckpointError` when
    the directory holds checkpoints and neither ``resume`` nor ``overwrite`` is given.

    Returns: the open Checkpointer (the caller closes it).
    """
    os.makedirs(workdir, exist_ok=True)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if overwrite and not resume and os.path.isdir(ckpt_dir) and jax.process_index() == 0:
        shutil.rmtree(ckpt_dir)
    checkpointer = Checkpointer(ckpt_dir)
    if checkpointer.latest_step() is not None and not resume:
        checkpointer.close()
        raise CheckpointError(f"{workdir} already holds checkpoints; pass resume=True to "
                              "continue that run or overwrite=True to start afresh")
    return checkpointer


def start_metrics_log(path: str | None, keep_until_step: int | None) -> None:
    """Starts the metrics log ``path`` (None: no log): on resume, keeps the records up to
    ``keep_until_step``, the restored step (a torn last line is dropped); with None,
    removes an old log."""
    if path is None or not os.path.exists(path):
        return
    if keep_until_step is None:
        os.remove(path)
        return
    kept = [r for r in rundir.read_jsonl(path) if r.get("step", 0) <= keep_until_step]
    rundir.atomic_write(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))


def step_bar(total: int, initial: int, enabled: bool, desc: str):
    """A tqdm bar over ``total`` steps from ``initial`` (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc,
                dynamic_ncols=True, leave=True)


def _check_finite(step: int, metrics: dict, checkpointer) -> None:
    if bool(metrics["finite"]):
        return
    last = checkpointer.latest_step() if checkpointer is not None else None
    kept = f"; the last good checkpoint (step {last}) is kept in {checkpointer.directory}" \
        if last is not None else "; no checkpoint was written"
    raise TrainingDivergedError(
        f"training diverged: the loss or its gradient is not finite at step {step} "
        f"(loss {float(metrics['loss']):.4g}); stopped there{kept}")


def fit(state: TrainState, train_step: Callable, train_data: Any, *, batch_size: int,
        num_epochs: int, num_steps: int | None = None, seed: int = 0,
        eval_fn: Callable[[TrainState], dict] | None = None,
        eval_every: int = 1, workdir: str | None = None, resume: bool = False,
        overwrite: bool = False, checkpoint_every: int | None = None, mesh: Mesh | None = None,
        progress: bool = True) -> TrainState:
    """Trains for ``num_epochs`` passes over ``train_data``.

    Training stops with :class:`TrainingDivergedError` at the first step whose loss or
    update is not finite (checked one step behind, so the device never waits); nothing
    after it is saved, and the checkpoints before it are kept.

    Args:
      state: the initial :class:`TrainState` (also the structure to restore into).
      train_step: from :func:`make_train_step`.
      train_data: ``[N, *event]`` training data (host numpy), or a pytree of such arrays with
        a common leading axis N (``(x, y)``, a dict); batches of the same structure are
        gathered per step.
      batch_size, num_epochs, seed: epoch e visits a permutation drawn from (seed, e).
      num_steps: stop after this many steps in all (possibly mid-epoch); default
        ``num_epochs`` full epochs.
      eval_fn: ``state -> dict`` of scalars, run every ``eval_every`` epochs and at the end.
      workdir: if given, ``metrics.jsonl`` and ``checkpoints/`` are written there. With
        several processes it must be one directory that all of them reach (a shared file
        system): they write each checkpoint together (orbax), and process 0 alone writes
        ``metrics.jsonl`` and shows the progress bar.
      resume: continue from the latest checkpoint in ``workdir`` (same parameters as an
        uninterrupted run: batches and keys depend only on (seed, epoch, step)).
      overwrite: delete existing checkpoints in ``workdir`` and start afresh. Without
        ``resume`` or ``overwrite``, existing checkpoints raise :class:`CheckpointError`.
      checkpoint_every: steps between checkpoints (default: once per epoch).
      mesh: shard every batch over this mesh (the step must be made with the same mesh).
        Required with several processes (:mod:`jaxvae.distributed`), which all call ``fit``
        alike: each feeds its own rows of every batch, so the global batch is the one a
        single process would use.
      progress: show a tqdm bar with the running bound.

    Returns:
      the final state.
    """
    steps_per_epoch = data.num_batches(train_data, batch_size)
    total_steps = steps_per_epoch * num_epochs if num_steps is None else num_steps
    num_epochs = -(-total_steps // steps_per_epoch)
    checkpoint_every = checkpoint_every or steps_per_epoch
    if not is_finite_tree(state.params):
        raise ValueError("the initial parameters hold NaN or infinite values")
    if mesh is None and jax.process_count() > 1:
        raise ValueError(f"mesh: {jax.process_count()} processes train one model over a mesh "
                         "that spans them (train.data_mesh()); got None")
    if batch_size % jax.process_count():
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of "
                         f"processes ({jax.process_count()}), each feeding its own rows")
    checkpointer = None if workdir is None else open_checkpointer(workdir, resume, overwrite)
    try:
        if checkpointer is not None and checkpointer.latest_step() is not None:
            state = checkpointer.restore(state)
        return _loop(state, train_step, train_data, batch_size, steps_per_epoch, total_steps,
                     num_epochs, seed, eval_fn, eval_every, workdir, resume, checkpoint_every,
                     checkpointer, mesh, progress)
    finally:
        if checkpointer is not None:
            checkpointer.close()


def _loop(state, train_step, train_data, batch_size, steps_per_epoch, total_steps, num_epochs,
          seed, eval_fn, eval_every, workdir, resume, checkpoint_every, checkpointer, mesh,
          progress):
    start = int(state.step)
    lead = jax.process_index() == 0         # several processes: only process 0 reports
    progress = progress and lead
    log_path = os.path.join(workdir, "metrics.jsonl") if workdir and lead else None
    start_metrics_log(log_path, start if resume else None)
    if mesh is not None:        # each process feeds its own rows (all of them when alone)
        put = lambda b: shard_batch(distributed.process_rows(b), mesh)
    else:
        put = lambda b: jax.tree_util.tree_map(jnp.asarray, b)

    bar = step_bar(total_steps, start, progress, "train")
    running, t0, pending = None, time.time(), None
    try:
        for epoch in range(start // steps_per_epoch, num_epochs):
            first = int(state.step) - epoch * steps_per_epoch   # > 0 when resuming mid-epoch
            epoch_iter = data.batches(train_data, batch_size, seed=seed, epoch=epoch)
            last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            if first >= last:   # resumed at the very end of the run
                continue
            for i, batch in enumerate(itertools.islice(epoch_iter, first, last), start=first):
                state, metrics = train_step(state, put(batch))
                step = epoch * steps_per_epoch + i + 1
                if pending is not None:      # one step behind: the device keeps working
                    _check_finite(*pending, checkpointer)
                pending = (step, metrics)
                if step % 20 == 0 or i == last - 1:
                    _check_finite(step, metrics, checkpointer)
                    bound = float(metrics["bound"] if "bound" in metrics else -metrics["loss"])
                    running = bound if running is None else 0.9 * running + 0.1 * bound
                    bar.set_postfix(epoch=epoch + 1, bound=f"{running:.2f}")
                bar.update(1)
                if checkpointer is not None and step % checkpoint_every == 0:
                    _check_finite(step, metrics, checkpointer)
                    checkpointer.save(state)
            record = {"step": int(state.step), "epoch": epoch + 1, "train_bound": running,
                      "seconds": round(time.time() - t0, 3)}
            if eval_fn is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs):
                record.update({k: float(v) for k, v in eval_fn(state).items()})
                if progress:
                    bar.write("epoch {}: {}".format(epoch + 1, ", ".join(
                        f"{k} {v:.3f}" for k, v in record.items() if k.startswith("eval"))))
            if log_path:
                rundir.append_jsonl(log_path, record)
    finally:
        bar.close()
    if pending is not None:
        _check_finite(*pending, checkpointer)
    if checkpointer is not None:
        checkpointer.save(state)
    return state
