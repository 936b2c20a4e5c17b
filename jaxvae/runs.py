"""Many runs as one program: R training runs that share shapes, N steps per dispatch.

A sweep (seeds, learning rates, β, VAE against IWAE at the same k) trains as one jitted
function over a *group state*: a :class:`jaxvae.TrainState` whose every leaf has a leading
run axis R. Per-run hyperparameters are data, never recompilation:

* the learning rate (or any optax hyperparameter) through ``optax.inject_hyperparams``:
  :func:`init_runs` writes each run's value into its optimizer state;
* the loss's own hyperparameters (β, the objective: :func:`jaxvae.make_run_loss`) as a
  dict of ``[R]`` arrays passed to every step;
* the seed through each run's PRNG key and its batch order.

:func:`make_runs_step` scans N optimizer steps per call over a training set that stays
on the device (batches are gathered there by index), and :func:`fit_runs` drives it with a
progress bar, evaluation, per-run metrics and per-run checkpoints at the call boundaries.
Run r follows exactly the steps of a lone :func:`jaxvae.fit` with the same loss, optimizer,
key and seed (tested): step t uses ``fold_in(key_r, t)`` and the batches of epoch e are the
permutation drawn from ``(seed_r, e)``.

Two ways to lay the run axis out in the program (``run_axis``), equal in results:
``"vmap"`` (the default) batches every run's matrix products into one, and ``"map"`` loops
over the runs inside the program, each run a plain ``lax.scan`` over its N steps. On a
GPU the batched layout is where the speed is (a small model alone leaves the device
idle); on a 2-core CPU it measured as fast as the loop or faster for the IWAE paper's MLP
(docs/scaling.md), while the loop is the better layout for evaluation-sized products
(:mod:`jaxvae.evaluate_runs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxvae import data, rundir
from jaxvae.checkpoints import CheckpointError, is_finite_tree
from jaxvae.train import (
    TrainingDivergedError,
    TrainState,
    open_checkpointer,
    start_metrics_log,
    step_bar,
    step_function,
)

__all__ = ["stack_runs", "run_slice", "num_runs", "init_runs", "set_hyperparams", "batch_indices",
           "make_runs_step", "fit_runs", "RUN_AXES"]

#: layouts of the run axis: a batched program or a loop over the runs inside it
RUN_AXES = ("vmap", "map")
_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def stack_runs(trees: Sequence):
    """Stacks R pytrees of the same structure into one with a leading run axis ``[R, ...]``."""
    trees = list(trees)
    if not trees:
        raise ValueError("stack_runs needs at least one run")
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def run_slice(tree, r: int):
    """Run ``r`` of a stacked pytree (every leaf indexed ``[r]``): e.g. one run's state."""
    return jax.tree_util.tree_map(lambda leaf: leaf[r], tree)


def num_runs(params) -> int:
    """The number of runs in stacked parameters.

    Args: ``params``, a pytree whose every leaf is ``[R, ...]``.
    Returns: R (an int); ValueError when the leaves disagree or one is a scalar.
    """
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None
             for leaf in jax.tree_util.tree_leaves(params)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("params must carry a leading run axis R on every leaf (e.g. "
                         f"stack_runs(params_list)); got leading sizes {sizes}")
    return sizes.pop()


def set_hyperparams(opt_state, values: dict):
    """``opt_state`` with ``values`` written into every ``optax.inject_hyperparams`` state.

    Args: ``opt_state`` of one run; ``values``: name -> scalar (e.g. ``learning_rate``).
    Returns: the new optimizer state. Raises ValueError when a name is in no injected state.
    """
    found = set()

    def write(node):
        if not isinstance(node, _INJECTED):
            return node
        hyper = dict(node.hyperparams)
        for name, value in values.items():
            if name in hyper:
                hyper[name] = jnp.asarray(value, jnp.result_type(hyper[name]))
                found.add(name)
        return node._replace(hyperparams=hyper)

    new = jax.tree_util.tree_map(write, opt_state, is_leaf=lambda n: isinstance(n, _INJECTED))
    missing = set(values) - found
    if missing:
        raise ValueError(f"hyperparameters {sorted(missing)} are in no optax.inject_hyperparams "
                         "state of the optimizer; build it with optax.inject_hyperparams(...)")
    return new


def init_runs(params: Sequence, tx: optax.GradientTransformation, keys,
              hyperparams: dict | None = None) -> TrainState:
    """The group state of R runs at step 0.

    Args:
      params: R initial parameter pytrees of one structure (e.g. ``model.init_params(k_r)``).
      tx: the optimizer every run uses; per-run values of its hyperparameters need
        ``optax.inject_hyperparams``.
      keys: R PRNG keys, ``[R, 2]`` or a sequence; run r's step t uses ``fold_in(keys[r], t)``.
      hyperparams: name -> R values (e.g. ``{"learning_rate": [1e-3, 3e-4]}``).
    Returns: a :class:`jaxvae.TrainState` whose leaves have a leading axis R.
    """
    params = list(params)
    keys = [jnp.asarray(k) for k in keys]
    hyperparams = {name: np.asarray(v) for name, v in (hyperparams or {}).items()}
    if len(keys) != len(params):
        raise ValueError(f"{len(params)} runs need {len(params)} keys, got {len(keys)}")
    for name, values in hyperparams.items():
        if values.shape != (len(params),):
            raise ValueError(f"hyperparameter {name!r} needs one value per run, shape "
                             f"[{len(params)}], got {values.shape}")
    states = []
    for r, p in enumerate(params):
        opt_state = tx.init(p)
        if hyperparams:
            opt_state = set_hyperparams(opt_state, {n: v[r] for n, v in hyperparams.items()})
        states.append(TrainState(p, opt_state, jnp.zeros((), jnp.int32), keys[r]))
    return stack_runs(states)


def batch_indices(num_examples: int, batch_size: int, seeds: Sequence[int], start: int,
                  count: int) -> np.ndarray:
    """The example rows of R runs for ``count`` steps from step ``start`` on.

    Run r's epoch e visits the permutation ``np.random.default_rng((seeds[r], e))``, in
    full batches (the order of :func:`jaxvae.data.batches`).

    Returns: ``int32 [count, R, batch_size]``.
    """
    per_epoch = data.num_batches(num_examples, batch_size)
    out = np.empty((count, len(seeds), batch_size), np.int32)
    for r, seed in enumerate(seeds):
        for j, t in enumerate(range(start, start + count)):
            epoch, i = divmod(t, per_epoch)
            if j == 0 or i == 0:
                order = np.random.default_rng((seed, epoch)).permutation(num_examples)
            out[j, r] = order[i * batch_size:(i + 1) * batch_size]
    return out


def make_runs_step(loss_fn: Callable, tx: optax.GradientTransformation, *,
                   preprocess: Callable | None = None, run_axis: str = "vmap"):
    """N optimizer steps of R runs as one jitted call.

    Each run's step is :func:`jaxvae.train.step_function` (the step of
    :func:`jaxvae.make_train_step`): key ``fold_in(state.key, step)``, ``preprocess`` on the
    batch, the loss and its gradient, the optax update.

    Args:
      loss_fn: ``loss_fn(params, batch, key[, step], hparams) -> (loss, info)`` when runs
        have loss hyperparameters (e.g. :func:`jaxvae.make_run_loss`), else the ordinary
        ``loss_fn(params, batch, key)``.
      tx: the optimizer (see :func:`init_runs`); preprocess: as in ``make_train_step``.
      run_axis: ``"vmap"`` (runs batched) or ``"map"`` (a loop over runs inside the
        program), :data:`RUN_AXES`; the results are the same.

    Returns:
      ``step(states, train_data, indices, hparams) -> (states, metrics)``: ``states`` the
      group state (donated), ``train_data`` the resident training set (a pytree of
      ``[N, ...]`` arrays), ``indices: int32 [steps, R, B]`` (:func:`batch_indices`),
      ``hparams`` a dict of ``[R]`` arrays (``{}`` for none); ``metrics`` a dict of
      ``[steps, R]`` arrays (``loss``, ``finite``, the loss's info).
    """
    if run_axis not in RUN_AXES:
        raise ValueError(f"run_axis must be one of {RUN_AXES}, got {run_axis!r}")
    one_step = step_function(loss_fn, tx, preprocess=preprocess)

    def run_steps(state, train_data, rows, hparams):
        """One run's steps: ``rows [steps, B]``."""
        def body(s, r):
            batch = jax.tree_util.tree_map(lambda leaf: leaf[r], train_data)
            return one_step(s, batch, *((hparams,) if hparams else ()))
        return jax.lax.scan(body, state, rows)

    def step(states, train_data, indices, hparams):
        rows = jnp.swapaxes(indices, 0, 1)                        # [R, steps, B]
        if run_axis == "vmap":
            states, metrics = jax.vmap(run_steps, in_axes=(0, None, 0, 0))(
                states, train_data, rows, hparams)
        else:
            states, metrics = jax.lax.map(lambda a: run_steps(a[0], train_data, *a[1:]),
                                          (states, rows, hparams))
        return states, jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

    return jax.jit(step, donate_argnums=(0,))


def _check_runs(step: int, metrics: dict, workdirs) -> None:
    finite = np.asarray(metrics["finite"]).all(axis=0)
    if finite.all():
        return
    bad = [int(r) for r in np.flatnonzero(~finite)]
    where = "; the last good checkpoints are kept in their run directories" if workdirs else ""
    raise TrainingDivergedError(f"training diverged: run(s) {bad} have a non-finite loss or "
                                f"gradient in the steps up to {step}; stopped there{where}")


def _checkpointers(workdirs, resume: bool, overwrite: bool):
    if workdirs is None:
        return None
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    out = []
    try:
        for workdir in workdirs:
            out.append(open_checkpointer(workdir, resume, overwrite))
    except CheckpointError:
        for ckpt in out:
            ckpt.close()
        raise
    return out


def _restore(states, checkpointers):
    restored = [ckpt.restore(run_slice(states, r)) if ckpt.latest_step() is not None else None
                for r, ckpt in enumerate(checkpointers)]
    steps = {None if s is None else int(s.step) for s in restored}
    if len(steps) != 1:
        raise CheckpointError(f"the runs' checkpoints are at different steps "
                              f"{sorted(steps, key=str)}; resume them one by one")
    return states if None in steps else stack_runs(restored)


def fit_runs(states: TrainState, runs_step: Callable, train_data, *, batch_size: int,
             num_steps: int, seeds: Sequence[int], hparams: dict | None = None,
             steps_per_call: int = 100, eval_fn: Callable | None = None,
             eval_every: int | None = None, workdirs: Sequence[str] | None = None,
             resume: bool = False, overwrite: bool = False, progress: bool = True) -> TrainState:
    """Trains R runs for ``num_steps`` steps, ``steps_per_call`` steps per dispatch.

    Args:
      states: the group state (:func:`init_runs`); runs_step: from :func:`make_runs_step`.
      train_data: the training set (a pytree of host ``[N, ...]`` arrays), placed on the
        device once when it takes at most a quarter of the device's memory; otherwise each
        call sends its own rows.
      batch_size, num_steps, seeds: B, the steps of every run, and the R seeds of the batch
        orders (:func:`batch_indices`).
      hparams: name -> ``[R]`` loss hyperparameters (see :func:`make_runs_step`).
      steps_per_call: steps per dispatch (calls stop early at evaluations and the end).
      eval_fn: ``states -> dict of [R] arrays``, every ``eval_every`` steps and at the end.
      workdirs: R run directories: each gets ``metrics.jsonl`` (one record per evaluation,
        per run) and ``checkpoints/`` with that run's own state (restorable as a lone run's
        :class:`jaxvae.TrainState`), written at the evaluation boundaries and the end.
      resume, overwrite: continue from the runs' checkpoints (all at one step) or delete them.
      progress: a tqdm bar with the runs' median running bound.
    Returns: the final group state. Raises :class:`jaxvae.TrainingDivergedError` naming the
      runs whose loss or update stopped being finite (nothing after it is saved).
    """
    runs = num_runs(states)
    if len(seeds) != runs:
        raise ValueError(f"{len(seeds)} seeds for a group of {runs} runs")
    if workdirs is not None and len(workdirs) != runs:
        raise ValueError(f"{runs} runs need {runs} workdirs, got {len(workdirs)}")
    if steps_per_call < 1 or num_steps < 0:
        raise ValueError(f"steps_per_call must be >= 1 and num_steps >= 0, got "
                         f"{steps_per_call}, {num_steps}")
    if not is_finite_tree(states.params):
        raise ValueError("the initial parameters hold NaN or infinite values")
    hparams = {n: jnp.asarray(v) for n, v in (hparams or {}).items()}
    eval_every = eval_every or num_steps or 1
    checkpointers = _checkpointers(workdirs, resume, overwrite)
    try:
        if checkpointers is not None and resume:
            states = _restore(states, checkpointers)
        return _loop(states, runs_step, train_data, batch_size, num_steps, list(seeds), hparams,
                     steps_per_call, eval_fn, eval_every, workdirs, checkpointers, resume,
                     progress)
    finally:
        for ckpt in checkpointers or ():
            ckpt.close()


def _loop(states, runs_step, train_data, batch_size, num_steps, seeds, hparams, steps_per_call,
          eval_fn, eval_every, workdirs, checkpointers, resume, progress):
    n = jax.tree_util.tree_leaves(train_data)[0].shape[0]
    data.num_batches(train_data, batch_size)        # checks the data and the batch size
    resident = jax.tree_util.tree_map(jnp.asarray, train_data) if _fits(train_data) else None
    step = int(np.asarray(states.step)[0])
    logs = [os.path.join(w, "metrics.jsonl") for w in workdirs or ()]
    for path in logs:       # a resumed run keeps the records up to its checkpoint
        start_metrics_log(path, step if resume else None)
    bar = step_bar(num_steps, step, progress, f"train {len(seeds)} runs")
    t0, bounds = time.time(), None
    try:
        while step < num_steps:
            count = min(steps_per_call, num_steps - step, eval_every - step % eval_every)
            idx = batch_indices(n, batch_size, seeds, step, count)
            if resident is None:        # too large for the device: send this call's rows
                rows = jax.tree_util.tree_map(lambda leaf: leaf[idx.reshape(-1)], train_data)
                idx = np.arange(idx.size, dtype=np.int32).reshape(idx.shape)
            states, metrics = runs_step(states, rows if resident is None else resident,
                                        jnp.asarray(idx), hparams)
            step += count
            _check_runs(step, metrics, workdirs)
            last = metrics["bound"] if "bound" in metrics else -metrics["loss"]
            bounds = np.asarray(last).mean(axis=0)
            bar.set_postfix(bound=f"{np.median(bounds):.2f}")
            bar.update(count)
            if step % eval_every == 0 or step == num_steps:
                _record(states, step, bounds, eval_fn, logs, checkpointers, time.time() - t0)
    finally:
        bar.close()
    return states


def _fits(train_data, fraction: float = 0.25) -> bool:
    """Whether the training set takes at most ``fraction`` of the device's memory (devices
    that do not report it, such as the CPU, hold it in host memory: True)."""
    size = sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(train_data))
    stats = jax.devices()[0].memory_stats() or {}
    return size <= fraction * stats.get("bytes_limit", float("inf"))


def _record(states, step, bounds, eval_fn, logs, checkpointers, seconds) -> None:
    """Per-run metrics records and checkpoints at an evaluation boundary."""
    values = {k: np.asarray(v) for k, v in (eval_fn(states) if eval_fn else {}).items()}
    for r, path in enumerate(logs):
        record = {"step": step, "train_bound": float(bounds[r]), "seconds": round(seconds, 3),
                  **{k: float(v[r]) for k, v in values.items()}}
        rundir.append_jsonl(path, record)
    for r, ckpt in enumerate(checkpointers or ()):
        ckpt.save(run_slice(states, r))
