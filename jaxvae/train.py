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

from jaxvae import data

Array = jax.Array

__all__ = ["TrainState", "create_train_state", "make_train_step", "data_mesh", "shard_batch",
           "fit", "Checkpointer", "CheckpointError"]


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
    leaves, treedef = jax.tree_util.tree_flatten(batch)
    leaves = [np.asarray(leaf) for leaf in leaves]
    num = mesh.devices.size
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("every leaf of the batch must be an array [B, ...] with the same B, "
                         f"got shapes {[leaf.shape for leaf in leaves]}")
    size = sizes.pop() * jax.process_count()
    if size % num:
        raise ValueError(f"batch size {size} must be divisible "
                         f"by the number of devices ({num}) for data parallelism")
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.tree_util.tree_unflatten(
        treedef, [jax.make_array_from_process_local_data(sharding, leaf) for leaf in leaves])


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, *,
                    preprocess: Callable | None = None, mesh: Mesh | None = None,
                    donate: bool = True):
    """One optimizer step as a single jitted function.

    Step t draws ``key = fold_in(state.key, t)`` and splits it into ``(key_data,
    key_loss)``: ``preprocess`` gets ``key_data``, the loss ``key_loss``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, info)`` (e.g. :func:`jaxvae.make_loss`,
        whose batch is ``x: [B, *event]``).
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
      axis B (``x``, ``(x, y)``, a dict), ``metrics`` a dict of scalars: ``loss`` and
      everything in ``info``.
    """

    def step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        key_data, key_loss = jax.random.split(key)
        if preprocess is not None:
            batch = preprocess(key_data, batch)
        (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, key_loss)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params, opt_state, state.step + 1, state.key)
        return new_state, {"loss": loss, **info}

    donate_argnums = (0,) if donate else ()
    if mesh is None:
        return jax.jit(step, donate_argnums=donate_argnums)
    replicated = NamedSharding(mesh, PartitionSpec())
    # one sharding as a pytree prefix: it applies to every leaf of the batch
    batch_sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(step, in_shardings=(replicated, batch_sharding),
                   out_shardings=(replicated, replicated), donate_argnums=donate_argnums)


# --- checkpoints ------------------------------------------------------------------------------

class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used (corrupt, foreign, or already in use)."""


class Checkpointer:
    """Orbax checkpoints of a :class:`TrainState` under ``directory``.

    Orbax writes each step to a temporary directory and renames it when complete, so a
    run killed while saving leaves the previous checkpoint intact.

    Args:
      directory: created if missing; :class:`CheckpointError` if it cannot be used.
      max_to_keep: the newest checkpoints kept (older ones are deleted).
    """

    def __init__(self, directory: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # imported lazily: it is slow to import

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint path {self.directory} exists and is not a directory")
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as err:  # orbax raises several types for unreadable directories
            raise CheckpointError(
                f"cannot open checkpoint directory {self.directory}: {err}") from err

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def save(self, state: TrainState) -> None:
        """Saves ``state`` under its step (no-op if that step exists) and waits; returns None."""
        step = int(state.step)
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=self._ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def restore(self, like: TrainState, step: int | None = None) -> TrainState:
        """Restores the checkpoint at ``step`` (default latest) with the structure of ``like``.

        Args: ``like``, a :class:`TrainState` of the same model and optimizer; ``step``.
        Returns: the restored :class:`TrainState`; :class:`CheckpointError` if it is missing,
          corrupt or does not match ``like``.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        abstract = jax.tree_util.tree_map(self._ocp.utils.to_shape_dtype_struct, like)
        try:
            return self._manager.restore(step, args=self._ocp.args.StandardRestore(abstract))
        except Exception as err:  # orbax raises many types; report one readable error
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} does not match this model and "
                f"optimizer or is corrupt ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]})") from err

    def close(self) -> None:
        """Closes the orbax manager (finishes pending writes); returns None."""
        self._manager.close()


# --- the loop ---------------------------------------------------------------------------------

class _MetricsLog:
    """Appends one JSON object per line; on resume, drops records past the restored step."""

    def __init__(self, path: str | None, keep_until_step: int | None = None):
        self.path = path
        if path is None:
            return
        if keep_until_step is not None and os.path.exists(path):
            with open(path) as f:
                lines = [ln for ln in f if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= keep_until_step]
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(kept)
            os.replace(tmp, path)

    def write(self, record: dict) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc,
                dynamic_ncols=True, leave=True)


def fit(state: TrainState, train_step: Callable, train_data: Any, *, batch_size: int,
        num_epochs: int, num_steps: int | None = None, seed: int = 0,
        eval_fn: Callable[[TrainState], dict] | None = None,
        eval_every: int = 1, workdir: str | None = None, resume: bool = False,
        overwrite: bool = False, checkpoint_every: int | None = None, mesh: Mesh | None = None,
        progress: bool = True) -> TrainState:
    """Trains for ``num_epochs`` passes over ``train_data``.

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
      workdir: if given, ``metrics.jsonl`` and ``checkpoints/`` are written there.
      resume: continue from the latest checkpoint in ``workdir`` (same parameters as an
        uninterrupted run: batches and keys depend only on (seed, epoch, step)).
      overwrite: delete existing checkpoints in ``workdir`` and start afresh. Without
        ``resume`` or ``overwrite``, existing checkpoints raise :class:`CheckpointError`.
      checkpoint_every: steps between checkpoints (default: once per epoch).
      mesh: shard every batch over this mesh (the step must be made with the same mesh).
      progress: show a tqdm bar with the running bound.

    Returns:
      the final state.
    """
    steps_per_epoch = data.num_batches(train_data, batch_size)
    total_steps = steps_per_epoch * num_epochs if num_steps is None else num_steps
    num_epochs = -(-total_steps // steps_per_epoch)
    checkpoint_every = checkpoint_every or steps_per_epoch
    checkpointer = None
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        ckpt_dir = os.path.join(workdir, "checkpoints")
        if overwrite and not resume and os.path.isdir(ckpt_dir):
            shutil.rmtree(ckpt_dir)
        checkpointer = Checkpointer(ckpt_dir)
        if checkpointer.latest_step() is not None:
            if not resume:
                raise CheckpointError(
                    f"{workdir} already holds checkpoints; pass resume=True to continue "
                    "that run or overwrite=True to start afresh")
            state = checkpointer.restore(state)
    start = int(state.step)
    log = _MetricsLog(workdir and os.path.join(workdir, "metrics.jsonl"),
                      keep_until_step=start if resume else None)
    if not resume and log.path and os.path.exists(log.path):
        os.remove(log.path)
    put = (lambda b: shard_batch(b, mesh)) if mesh is not None else \
        (lambda b: jax.tree_util.tree_map(jnp.asarray, b))

    bar = _progress(total_steps, start, progress, "train")
    running, t0 = None, time.time()
    for epoch in range(start // steps_per_epoch, num_epochs):
        first = int(state.step) - epoch * steps_per_epoch     # > 0 when resuming mid-epoch
        epoch_iter = data.batches(train_data, batch_size, seed=seed, epoch=epoch)
        last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        if first >= last:   # resumed at the very end of the run
            continue
        for i, batch in enumerate(itertools.islice(epoch_iter, first, last), start=first):
            state, metrics = train_step(state, put(batch))
            step = epoch * steps_per_epoch + i + 1
            if step % 20 == 0 or i == last - 1:
                bound = float(metrics["bound"] if "bound" in metrics else -metrics["loss"])
                running = bound if running is None else 0.9 * running + 0.1 * bound
                bar.set_postfix(epoch=epoch + 1, bound=f"{running:.2f}")
            bar.update(1)
            if checkpointer is not None and step % checkpoint_every == 0:
                checkpointer.save(state)
        record = {"step": int(state.step), "epoch": epoch + 1, "train_bound": running,
                  "seconds": round(time.time() - t0, 3)}
        if eval_fn is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs):
            record.update({k: float(v) for k, v in eval_fn(state).items()})
            bar.write("epoch {}: {}".format(epoch + 1, ", ".join(
                f"{k} {v:.3f}" for k, v in record.items() if k.startswith("eval"))))
        log.write(record)
    bar.close()
    if checkpointer is not None:
        checkpointer.save(state)
        checkpointer.close()
    return state
