"""One entry point for an experiment: ``train_and_evaluate(config, workdir) -> Results``.

The command line, the examples and the benchmark tables all run through it:

1. ``config.validate()``, then the data are loaded and checked against the config (batch
   size, image shapes, labels, a memory estimate) — all before anything is written;
2. the run directory is locked (:class:`jaxvae.rundir.RunLock`), ``config.json`` written
   atomically, and a resumed run must agree with it in every setting but the length of
   training and the evaluation;
3. :func:`jaxvae.fit` trains (stopping at the first non-finite step, never saving a
   non-finite state), then the final evaluation runs and ``results.json`` is written;
   non-finite results are an error, never a file.

    >>> import jaxvae
    >>> config = jaxvae.Config(objective="elbo", k=1, steps=2, batch_size=50, eval_k=2,
    ...                        eval_limit=20)
    >>> results = jaxvae.train_and_evaluate(config, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import shutil
import time

import numpy as np

from jaxvae import presets, run_steps, rundir, sentences
from jaxvae.config import EVALUATION_FIELDS, TRAINING_LENGTH, Config, ConfigError
from jaxvae.run_steps import NonFiniteResultError, Results

__all__ = ["Results", "train_and_evaluate", "restore_run", "NonFiniteResultError",
           "estimate_training_bytes", "load_sentences", "check_data", "read_run_config",
           "prepare_run_dir", "open_run_dir", "load_images"]


def estimate_training_bytes(config: Config, event_size: int) -> int:
    """A rough upper estimate of the activations of one training step, in bytes.

    k * B samples each carry the data, the hidden layers (forward and backward) and the
    latent code in float32; ``hidden`` defaults to 1000 units when the preset's is unknown.
    """
    hidden = sum(config.hidden) if config.hidden else 1000
    latent = config.latent_dim or 100
    per_sample = 3 * event_size + 4 * 2 * hidden + 8 * latent
    return 4 * config.k * config.effective_batch_size * per_sample


def _memory_bytes() -> int | None:
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
        if stats and stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    except Exception:  # not every backend reports memory
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_sentences(config: Config):
    """The sentence data of a text preset: ``(train, test, vocab, cut)``.

    ``train`` and ``test`` are :class:`jaxvae.data.Dataset` s whose ``images`` are id rows
    ``int32 [N, max_length + 2]`` (:func:`jaxvae.data.encode_batch`); the vocabulary is
    built from the training split; ``cut`` counts the training sentences longer than
    ``max_length`` words, which are cut to their first ``max_length`` words (and still end
    with ``<eos>``). Test words outside the vocabulary become ``<unk>``.
    """
    from jaxvae import data

    def sentences(split: str) -> list[str]:
        parts = ("train", "valid") if split == "train+valid" else (split,)
        return [s for part in parts for s in data.load_text(config.data, part).sentences]

    # tokenized once: the vocabulary, the count of cut sentences and the rows read the tokens
    train, test = ([data.tokenize(s) for s in sentences(split)]
                   for split in (config.split, config.eval_split))
    vocab = data.Vocabulary.build(train, min_count=presets.text_option(config, "min_count"),
                                  max_size=config.vocab_size)
    max_length = presets.text_option(config, "max_length")
    cut = sum(len(tokens) > max_length for tokens in train)
    rows = [data.encode_batch(part, vocab, max_length)[0] for part in (train, test)]
    train_set, test_set = (data.Dataset(r, None, config.data) for r in rows)
    return train_set, test_set, vocab, cut


def check_data(config: Config, preset, train, test, data_info=None) -> None:
    """Every data-dependent check, before anything is written."""
    n = train.images.shape[0]
    if config.effective_batch_size > n:
        raise ConfigError(f"batch_size {config.effective_batch_size} is larger than the "
                          f"{n} training examples of {config.data} [{config.split}]")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise ConfigError(f"training images have shape {train.images.shape[1:]} but "
                          f"{config.eval_split} images {test.images.shape[1:]}")
    needs_labels = preset.task == "classification" or preset.conditional
    if needs_labels and (train.labels is None or test.labels is None):
        raise ConfigError(f"model {config.model!r} needs labels; {config.data} has none")
    if preset.conditional:
        classes = presets.num_classes(config)
        for part in (train, test):
            if part.labels.size and not 0 <= part.labels.min() <= part.labels.max() < classes:
                raise ConfigError(f"model {config.model!r} models {classes} classes (labels "
                                  f"0..{classes - 1}); {config.data} has labels "
                                  f"{part.labels.min()}..{part.labels.max()}: set num_classes",
                                  "num_classes")
    if preset.task == "density":
        try:        # e.g. an image shape the conv decoder cannot produce
            preset.build(config, train.images.shape[1:], data_info)
        except ValueError as err:
            raise ConfigError(f"model {config.model!r} on {config.data} images of shape "
                              f"{train.images.shape[1:]}: {err}") from err
    need, have = estimate_training_bytes(config, int(np.prod(train.images.shape[1:]))), \
        _memory_bytes()
    if have is not None and need > 0.8 * have:
        raise ConfigError(f"k={config.k} with batch {config.effective_batch_size} needs about "
                          f"{need / 2**30:.1f} GiB per step, more than this device's "
                          f"{have / 2**30:.1f} GiB; lower k or batch_size")


def _can_plot(event_shape) -> bool:
    return len(event_shape) == 2 or (len(event_shape) == 3 and event_shape[-1] in (1, 3))


def _clear_run(workdir: str) -> None:
    for pattern in rundir.RUN_FILES:
        for path in glob.glob(os.path.join(glob.escape(workdir), pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def prepare_run_dir(workdir: str, config: Config, resume: bool, overwrite: bool) -> None:
    """Checks the run directory against ``resume``/``overwrite`` (under the lock)."""
    config_path = os.path.join(workdir, "config.json")
    has_run = os.path.exists(config_path) or os.path.isdir(os.path.join(workdir, "checkpoints"))
    if resume and not has_run:
        raise ConfigError(f"resume: {workdir} holds no run to continue")
    if has_run and not (resume or overwrite):
        raise ConfigError(f"{workdir} already holds a run; resume it (--resume, resume=True) "
                          "or replace it (--overwrite, overwrite=True)")
    if resume:
        old = read_run_config(workdir)[0]
        changed = old.differences(config, ignore=TRAINING_LENGTH + EVALUATION_FIELDS)
        if changed:
            name = changed[0]
            raise ConfigError(
                f"resume: {name} was {getattr(old, name)!r} in {config_path}, not "
                f"{getattr(config, name)!r}; a resumed run keeps its settings (only "
                f"{', '.join(TRAINING_LENGTH)} and the evaluation may change)")
    if overwrite:
        _clear_run(workdir)


def read_run_config(workdir: str) -> tuple[Config, dict]:
    """``(config, info)`` from ``workdir/config.json``; ``info`` holds ``event_shape`` and
    ``num_train``. Raises ConfigError naming the file for a missing or damaged one."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{workdir} is not a jaxvae run directory (no config.json)")
    stored = rundir.read_json(path, "run config")
    info = {k: v for k, v in stored.items() if k != "config"}
    # fields added after a run may have been written take their defaults (the old behaviour)
    fields = {f.name for f in dataclasses.fields(Config)} - {
        "decoder", "channels", "likelihood", "likelihood_scale", "num_classes", "max_length",
        "min_count", "vocab_size", "embed_dim", "word_keep", "free_bits",
        "draw_steps", "attention"}
    values = stored.get("config")
    if not isinstance(values, dict) or fields - set(values) or "event_shape" not in info:
        missing = sorted(fields - set(values)) if isinstance(values, dict) else ["config"]
        raise ConfigError(f"{path} is not a complete jaxvae config (missing "
                          f"{', '.join(missing or ['event_shape'])})")
    return Config.from_dict(values, path).validate(), info


def restore_run(workdir: str):
    """The model and parameters of a trained run directory.

    Args: ``workdir``, a directory written by :func:`train_and_evaluate`.
    Returns: ``(config, model, params, info)``, ``info`` holding ``event_shape`` and
      ``num_train``. Raises ConfigError or :class:`jaxvae.CheckpointError` naming the file
      that is missing, damaged or non-finite.
    """
    import jax

    from jaxvae import checkpoints, train

    config, info = read_run_config(workdir)
    model = presets.get_preset(config.model).build(config, tuple(info["event_shape"]),
                                                   info.get("vocab_size"))
    tx, _ = run_steps.make_optimizer(config, info["num_train"], info.get("inject_lr", False))
    like = train.create_train_state(run_steps.init_params(model, config, info["event_shape"],
                                          jax.random.PRNGKey(0)), tx, jax.random.PRNGKey(0))
    checkpointer = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        state = checkpointer.restore(like)
    finally:
        checkpointer.close()
    return config, model, state.params, info


def open_run_dir(stack: contextlib.ExitStack, workdir: str, config: Config, resume: bool,
                 overwrite: bool, info: dict) -> None:
    """Locks ``workdir`` for as long as ``stack`` is open, checks it against ``resume`` and
    ``overwrite`` (:func:`prepare_run_dir`) and writes ``config.json`` (the config and
    ``info``: ``event_shape``, ``num_train``, ...), before any training.

    Returns: None; ConfigError or :class:`jaxvae.rundir.RunDirError` for an unusable one.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"{workdir} exists and is not a directory")
    os.makedirs(workdir, exist_ok=True)
    rundir.check_writable(workdir)
    stack.enter_context(rundir.RunLock(workdir))
    prepare_run_dir(workdir, config, resume, overwrite)
    rundir.write_json(os.path.join(workdir, "config.json"), {"config": config.to_dict(), **info})


def load_images(config: Config):
    """``(train, test)`` :class:`jaxvae.data.Dataset` s of an image config: ``config.split``
    and ``config.eval_split`` of ``config.data``, in the dtype its likelihood reads."""
    from jaxvae import data

    dtype = run_steps.data_dtype(config)
    return (data.load(config.data, config.split, dtype=dtype),
            data.load(config.data, config.eval_split, dtype=dtype))


@contextlib.contextmanager
def _run_directory(workdir, config, resume, overwrite, train_set, vocab, lead: bool):
    """Holds the run directory while training: process 0 locks, checks and starts it
    (``config.json``, ``vocab.json``); with several processes the others wait for that."""
    import jax

    with contextlib.ExitStack() as stack:
        if lead:
            info = {"event_shape": list(train_set.images.shape[1:]),
                    "num_train": int(train_set.images.shape[0])}
            if vocab is not None:
                info["vocab_size"] = len(vocab)
            open_run_dir(stack, workdir, config, resume, overwrite, info)
            if vocab is not None:
                rundir.write_json(os.path.join(workdir, "vocab.json"), vocab.to_json())
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jaxvae: run directory ready")
        yield


def train_and_evaluate(config: Config, workdir: str | None = None, *, resume: bool = False,
                       overwrite: bool = False, progress: bool = True,
                       pictures: bool = True) -> Results:
    """Trains the model ``config`` describes, evaluates it, and returns :class:`Results`.

    Args:
      config: a :class:`jaxvae.Config` (validated here).
      workdir: the run directory (``config.json``, ``metrics.jsonl``, ``checkpoints/``,
        ``results.json``, pictures); None trains in memory and writes nothing.
      resume: continue the run in ``workdir``; every setting but the length of training
        and the evaluation must equal the stored one.
      overwrite: replace the run in ``workdir`` (only the files jaxvae writes are removed).
      progress: progress bars; pictures: write sample, reconstruction and interpolation
        grids (grey-scale and RGB images).

    Returns:
      :class:`Results`. Raises ConfigError (bad settings or data, before anything is
      written), :class:`jaxvae.TrainingDivergedError`, :class:`NonFiniteResultError`.
    """
    config = config.validate().resolved()
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other")
    if (resume or overwrite) and workdir is None:
        raise ConfigError("resume and overwrite need a run directory")
    import jax

    lead = jax.process_index() == 0     # several processes: process 0 owns the run directory
    progress = progress and lead
    preset = presets.get_preset(config.model)
    vocab = None
    if preset.text:
        train_set, test_set, vocab, cut = load_sentences(config)
        if progress:
            print(f"{config.data}: {train_set.num_examples} training sentences, vocabulary of "
                  f"{len(vocab)} words; {cut} sentences longer than max_length were cut",
                  flush=True)
    else:
        train_set, test_set = load_images(config)
    data_info = None if vocab is None else len(vocab)
    check_data(config, preset, train_set, test_set, data_info)
    if workdir is None:
        return run_steps.run_training(config, preset, train_set, test_set, None, False,
                                      progress, False, data_info)
    with _run_directory(workdir, config, resume, overwrite, train_set, vocab, lead):
        start = time.time()
        results = run_steps.run_training(config, preset, train_set, test_set, workdir, resume,
                                         progress, pictures and lead and
                                         _can_plot(train_set.images.shape[1:]), data_info)
        if not lead:
            return results
        if vocab is not None and pictures:
            sentences.write_decodes(results, vocab, test_set.images,
                                    os.path.join(workdir, "decodes.txt"))
        rundir.write_json(os.path.join(workdir, "results.json"),
                          {**results.metrics, "wall_seconds": round(time.time() - start, 1)})
    return results
