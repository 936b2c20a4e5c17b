"""Checkpoints of a train state that are atomic, finite and verified.

:class:`Checkpointer` wraps an orbax ``CheckpointManager`` with four guarantees:

* atomic: each step is written to a temporary directory and renamed when complete
  (orbax), synchronously, with Ctrl-C deferred until the write has finished, so an
  interrupted run keeps every earlier checkpoint and never leaves a background writer;
* finite: a state with a NaN or infinite leaf is never saved (:class:`CheckpointError`),
  so rotating old checkpoints out can never leave only non-finite ones;
* verified: each step stores the SHA-256 of its leaves beside them, and a restore whose
  bytes do not match it, or that is not finite, is an error naming the checkpoint
  (orbax keeps no checksum of the array data itself);
* quiet: orbax's many exception types become one :class:`CheckpointError` line.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import signal
import sys
import threading
import time
import warnings

import jax
import numpy as np

__all__ = ["Checkpointer", "CheckpointError", "tree_digest", "is_finite_tree",
           "defer_interrupts"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, foreign, non-finite) or a directory in use."""


def _raw(leaf):
    """The key data of a typed PRNG key array (``jax.random.key``); other leaves as they are."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return jax.random.key_data(leaf)
    return leaf


def tree_digest(tree) -> str:
    """SHA-256 (hex) of a pytree's leaves: their shapes, dtypes and bytes, in tree order.

    Args: ``tree``, a pytree of arrays. Returns: the hex digest (64 characters).
    """
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf = np.asarray(jax.device_get(_raw(leaf)))
        h.update(f"{leaf.shape}{leaf.dtype}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def is_finite_tree(tree) -> bool:
    """True when every floating-point leaf of ``tree`` is finite (integer leaves always are)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf = np.asarray(jax.device_get(_raw(leaf)))
        if np.issubdtype(leaf.dtype, np.inexact) and not np.all(np.isfinite(leaf)):
            return False
    return True


@contextlib.contextmanager
def defer_interrupts():
    """Holds back SIGINT (Ctrl-C) until the block ends, then raises KeyboardInterrupt.

    Used around checkpoint writes: the write completes, then the interrupt takes effect.
    Outside the main thread (where signal handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _quiet_orbax():
    """Silences orbax's log records and the tracebacks its background tasks print.

    A failed read leaves tensorstore futures whose event loop orbax has already closed;
    they print "Event loop is closed" tracebacks to ``sys.stderr`` while the failure
    unwinds. Failures surface as one :class:`CheckpointError` instead, so ``sys.stderr``
    is sent to /dev/null during the call and, after a failure, for a moment longer.
    """
    loggers = [logging.getLogger(name) for name in ("absl", "orbax", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    stderr, devnull = sys.stderr, open(os.devnull, "w")
    sys.stderr = devnull
    try:
        yield
    except BaseException:
        time.sleep(0.3)       # let the failed operation's background tasks finish,
        with warnings.catch_warnings():   # and collect them now, while quiet ("never
            warnings.simplefilter("ignore")   # awaited" and "never retrieved" reports)
            gc.collect()
        raise
    finally:
        sys.stderr = stderr
        devnull.close()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"


class Checkpointer:
    """Orbax checkpoints of a pytree (a :class:`jaxvae.TrainState`) under ``directory``.

    Args:
      directory: created if missing; :class:`CheckpointError` if it cannot be used.
      max_to_keep: the newest checkpoints kept (older ones are deleted). Only finite
        states are saved, so the newest kept checkpoint is always usable.
    """

    def __init__(self, directory: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # imported lazily: it is slow to import

        self._ocp = ocp
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint path {self.directory} exists and is not a directory")
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        try:
            with _quiet_orbax():
                self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as err:  # orbax raises several types for unreadable directories
            raise CheckpointError(
                f"cannot open checkpoint directory {self.directory}: {_first_line(err)}") from err

    def path(self, step: int) -> str:
        """The directory of checkpoint ``step``."""
        return os.path.join(self.directory, str(step))

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The steps of all complete checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, state) -> None:
        """Saves ``state`` under ``int(state.step)`` (no-op if that step exists).

        The write is synchronous and Ctrl-C waits for it. Raises :class:`CheckpointError`
        for a non-finite state (nothing is written) or a failed write (disk full, ...).
        """
        step = int(state.step)
        if step in self._manager.all_steps():
            return
        if not is_finite_tree(state):
            raise CheckpointError(f"refusing to save step {step}: the state is not finite")
        args = self._ocp.args
        item = args.Composite(state=args.StandardSave(state),
                              digest=args.JsonSave({"sha256": tree_digest(state)}))
        try:
            with defer_interrupts(), _quiet_orbax():
                self._manager.save(step, args=item)
                self._manager.wait_until_finished()
        except KeyboardInterrupt:
            raise
        except Exception as err:
            raise CheckpointError(
                f"could not write checkpoint {self.path(step)}: {_first_line(err)}") from err

    def restore(self, like, step: int | None = None):
        """Restores checkpoint ``step`` (default: the latest) with the structure of ``like``.

        Args: ``like``, a state of the same model and optimizer; ``step``.
        Returns: the restored state. Raises :class:`CheckpointError`, naming the checkpoint,
          if it is missing, does not match ``like``, fails its checksum or is not finite.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        where = self.path(step)
        abstract = jax.tree_util.tree_map(self._ocp.utils.to_shape_dtype_struct, like)
        args = self._ocp.args
        legacy = not os.path.isdir(os.path.join(where, "state"))
        try:
            with _quiet_orbax():
                if legacy:   # written before checksums: one unnamed item, no digest
                    state, digest = self._manager.restore(
                        step, args=args.StandardRestore(abstract)), None
                else:
                    out = self._manager.restore(step, args=args.Composite(
                        state=args.StandardRestore(abstract), digest=args.JsonRestore()))
                    state, digest = out["state"], out["digest"]["sha256"]
        except Exception as err:  # orbax raises many types; report one readable error
            raise CheckpointError(
                f"checkpoint {where} does not match this model and optimizer or is "
                f"corrupt ({_first_line(err)})") from err
        if digest is not None and tree_digest(state) != digest:
            raise CheckpointError(f"checkpoint {where} is corrupt: its data does not match "
                                  "the checksum written with it")
        if not is_finite_tree(state):
            raise CheckpointError(f"checkpoint {where} holds NaN or infinite values")
        return state

    def close(self) -> None:
        """Closes the orbax manager; returns None."""
        with _quiet_orbax():
            self._manager.close()
