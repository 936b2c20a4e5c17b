"""Many configs as few programs: ``train_runs(configs, workdir) -> [Results]``.

Configs that differ only in ``seed``, ``objective`` and ``beta`` (and ``lr`` under the
constant-Adam protocol) share every shape, so they train together as one group of
:mod:`jaxvae.runs`: one jitted program per group, ``steps_per_call`` steps per dispatch.
Each run is trained with the keys, batch order and loss of a lone
:func:`jaxvae.train_and_evaluate` run (per-run objective and β through
:func:`jaxvae.make_run_loss`, per-run learning rate through ``optax.inject_hyperparams``),
then evaluated exactly as that function evaluates it, and its directory
(``workdir/run-<i>``, i the config's position) is a run directory like any other
(``python -m jaxvae eval``, :func:`jaxvae.restore_run`).

    >>> import jaxvae
    >>> configs = [jaxvae.Config(objective=o, k=5, seed=s, steps=10, eval_k=10)
    ...            for o in ("elbo", "iwae") for s in (0, 1)]          # one group of 4
    >>> results = jaxvae.train_runs(configs, progress=False)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time

import jax

from jaxvae import losses, presets, run_steps, rundir, runs
from jaxvae.config import Config, ConfigError
from jaxvae.experiment import check_data, load_images, open_run_dir
from jaxvae.run_steps import Results

__all__ = ["train_runs", "group_configs", "GROUP_VARYING"]

#: the fields that may differ between the runs of one group
GROUP_VARYING = ("seed", "objective", "beta", "lr")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}


def _group_key(config: Config) -> Config:
    """``config`` with the fields a group may vary set to their defaults."""
    varying = {"seed"}
    if config.estimator is None and not config.analytic_kl and config.free_bits is None \
            and config.annealing == "none":
        varying |= {"objective", "beta"}          # make_run_loss takes them as data
    if config.protocol == "adam":
        varying.add("lr")                         # through optax.inject_hyperparams
    return dataclasses.replace(config, **{name: _DEFAULTS[name] for name in varying})


def group_configs(configs) -> list[list[int]]:
    """The positions of ``configs`` that train together, groups in order of first appearance.

    Two configs share a group when they differ only in :data:`GROUP_VARYING`; objective and
    β vary within a group only with the plain gradient, the Monte Carlo KL, no free bits
    and no annealing; ``lr`` only under ``protocol="adam"``.
    """
    groups: dict = {}
    for i, config in enumerate(configs):
        groups.setdefault(_group_key(config), []).append(i)
    return list(groups.values())


def _load(config: Config, cache: dict):
    key = (config.data, config.split, config.eval_split, run_steps.data_dtype(config))
    if key not in cache:
        cache[key] = load_images(config)
    return cache[key]


def train_runs(configs, workdir: str | None = None, *, resume: bool = False,
               overwrite: bool = False, progress: bool = True, steps_per_call: int = 100,
               run_axis: str = "vmap") -> list[Results]:
    """Trains and evaluates ``configs``, each group (:func:`group_configs`) as one program.

    Args:
      configs: :class:`jaxvae.Config` s of image density models (validated here).
      workdir: a parent directory; run i writes ``workdir/run-<i>`` (``config.json``,
        ``metrics.jsonl``, ``checkpoints/``, ``results.json``). None trains in memory.
      resume, overwrite: as in :func:`jaxvae.train_and_evaluate`, for every run.
      progress: progress bars; steps_per_call: steps per dispatch (:func:`jaxvae.runs.fit_runs`).
      run_axis: ``"vmap"`` or ``"map"`` (:func:`jaxvae.runs.make_runs_step`).

    Returns:
      one :class:`jaxvae.Results` per config, in order; the metrics are those of
      ``train_and_evaluate`` (``train_seconds`` is the group's, with ``group_size``).
      Runs use one device: a data mesh over several devices is ``train_and_evaluate``'s.
    """
    configs = [c.validate().resolved() for c in configs]
    if not configs:
        raise ConfigError("train_runs needs at least one config")
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other")
    if (resume or overwrite) and workdir is None:
        raise ConfigError("resume and overwrite need a run directory")
    for c in configs:
        preset = presets.get_preset(c.model)
        if preset.task != "density" or preset.text:
            raise ConfigError(f"train_runs trains image density models; model {c.model!r} "
                              "trains with train_and_evaluate")
    out: list = [None] * len(configs)
    cache: dict = {}
    for group in group_configs(configs):
        members = [configs[i] for i in group]
        dirs = [os.path.join(workdir, f"run-{i}") for i in group] if workdir else None
        for i, results in zip(group, _train_group(members, dirs, cache, resume, overwrite,
                                                  progress, steps_per_call, run_axis)):
            out[i] = results
    return out


def _train_group(configs, dirs, cache, resume, overwrite, progress, steps_per_call, run_axis):
    first = configs[0]
    preset = presets.get_preset(first.model)
    train_set, test_set = _load(first, cache)
    check_data(first, preset, train_set, test_set)
    x = train_set.images
    binary = presets.data_kind(first) == "binary"
    model = preset.build(first, x.shape[1:], x.mean(axis=0) if binary else None)
    inject_lr = len({c.lr for c in configs}) > 1
    tx, num_steps = run_steps.make_optimizer(first, x.shape[0], inject_lr)
    hyper = {"learning_rate": [c.lr for c in configs]} if inject_lr else {}
    if len({(c.objective, c.beta) for c in configs}) == 1:
        loss_fn, hparams = run_steps.training_loss(first, model), {}
    else:
        loss_fn = losses.make_run_loss(model, first.k)
        hparams = {"iwae": [c.objective == "iwae" for c in configs],
                   "beta": [float(c.beta) for c in configs]}
    keys = [jax.random.split(jax.random.PRNGKey(c.seed), 3) for c in configs]
    states = runs.init_runs([run_steps.init_params(model, c, x.shape[1:], k[0])
                             for c, k in zip(configs, keys)], tx, [k[1] for k in keys], hyper)
    step = runs.make_runs_step(loss_fn, tx, preprocess=run_steps.train_preprocess(first),
                               run_axis=run_axis)
    train_data = (x, train_set.labels) if preset.conditional else x
    batch_size = first.effective_batch_size
    if progress:
        print(f"training {len(configs)} runs of {first.model} (k={first.k}) as one program "
              f"on {train_set.name} [{first.split}, {x.shape[0]} examples]", flush=True)
    with contextlib.ExitStack() as stack:
        if dirs:
            info = {"event_shape": list(x.shape[1:]), "num_train": int(x.shape[0]),
                    **({"inject_lr": True} if inject_lr else {})}
            for workdir, config in zip(dirs, configs):
                open_run_dir(stack, workdir, config, resume, overwrite, info)
        start = time.time()
        states = runs.fit_runs(states, step, train_data, batch_size=batch_size,
                               num_steps=num_steps, seeds=[c.seed for c in configs],
                               hparams=hparams, steps_per_call=steps_per_call,
                               eval_every=max(1, x.shape[0] // batch_size), workdirs=dirs,
                               resume=resume, progress=progress)
        jax.block_until_ready(states.params)
        timing = {"steps": num_steps, "passes": round(num_steps * batch_size / len(x), 2),
                  "train_seconds": round(time.time() - start, 1), "group_size": len(configs)}
        results = []
        for r, config in enumerate(configs):
            params = runs.run_slice(states.params, r)
            where = f"the run in {dirs[r]}" if dirs else f"run {r} of the group"
            metrics, variances = run_steps.evaluate_density(
                config, model, params, run_steps.evaluation_set(config, preset, test_set),
                keys[r][2], x.shape[1:], progress, where, timing)
            if dirs:
                rundir.write_json(os.path.join(dirs[r], "results.json"), metrics)
            results.append(Results(config, metrics, model, params, dirs and dirs[r], variances))
    return results
