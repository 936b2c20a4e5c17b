"""Run directories: files written atomically and safely, one writer at a time.

What a run directory guarantees (see docs/design.md, "Run directories"):

* atomic: every JSON file is written to a fresh temporary file created exclusively
  (``O_EXCL``) inside the directory and renamed over the target, so a reader sees the old
  or the new file, never half of one, and a symbolic link planted under a temporary or
  target name is replaced, never written through; ``metrics.jsonl`` is appended with
  ``O_NOFOLLOW``;
* standard JSON: NaN and infinity are refused (:class:`RunDirError`), never written;
* locked: :class:`RunLock` holds an exclusive ``flock`` on ``RUN_DIR/.lock`` while a run
  trains, so a second writer is refused instead of interleaving with the first.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

__all__ = ["RunDirError", "RunLock", "atomic_write", "write_json", "read_json", "append_jsonl",
           "read_jsonl", "check_writable", "RUN_FILES"]

#: the names jaxvae writes in a run directory (``--overwrite`` removes exactly these)
RUN_FILES = ("config.json", "metrics.jsonl", "results.json", "checkpoints", "samples.png",
             "reconstructions.png", "interpolation.png", "eval-*.json", "samples-seed*.png",
             "vocab.json", "decodes.txt", "samples-seed*.txt", "canvas.png")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (locked, unreadable, not writable)."""


def _dumps(obj, indent=None) -> str:
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as err:
        bad = [k for k, v in obj.items() if isinstance(v, float) and not math.isfinite(v)] \
            if isinstance(obj, dict) else []
        raise RunDirError(f"refusing to write non-finite values as JSON"
                          f"{' (' + ', '.join(bad) + ')' if bad else ''}") from err


def atomic_write(path: str, data) -> str:
    """Writes ``data`` to ``path`` atomically; returns ``path``.

    ``data`` is text, bytes, or a function that writes into a binary file object (a
    PNG encoder). It goes to a fresh temporary file created exclusively (``O_EXCL``) in
    the same directory, is synced, gets the usual file mode, and is renamed over
    ``path``; a symbolic link at ``path`` is replaced, not followed.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)    # mkstemp makes files private; use the usual mode
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path: str, obj, indent: int = 2) -> str:
    """Writes ``obj`` as standard JSON at ``path`` atomically (:func:`atomic_write`).

    Raises :class:`RunDirError` for NaN or infinite values. Returns ``path``.
    """
    return atomic_write(path, _dumps(obj, indent) + "\n")


def read_json(path: str, what: str = "file") -> dict:
    """The JSON object at ``path``; :class:`RunDirError` naming the file if it is unreadable."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"cannot read {what} {path}: {err}") from err
    if not isinstance(obj, dict):
        raise RunDirError(f"{what} {path} does not hold a JSON object")
    return obj


def append_jsonl(path: str, record: dict) -> None:
    """Appends ``record`` as one line of standard JSON; never follows a symbolic link."""
    line = _dumps(record) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        raise RunDirError(f"cannot append to {path}: {err}") from err
    with os.fdopen(fd, "a") as f:
        f.write(line)


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSON-lines file; a torn last line (a write cut short) is dropped.

    Raises :class:`RunDirError` naming the file and line for a damaged line elsewhere.
    """
    with open(path) as f:
        lines = [ln for ln in f.read().split("\n") if ln.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break    # the last write was interrupted; the line before it is complete
            raise RunDirError(f"{path}, line {i + 1}, is not valid JSON ({err})") from err
    return records


def check_writable(directory: str) -> None:
    """Raises :class:`RunDirError` unless a file can be created in ``directory`` (tested by
    creating and removing one, which also catches read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=directory)
        os.close(fd)
        os.remove(tmp)
    except OSError as err:
        raise RunDirError(f"cannot write in {directory}: {err.strerror or err}") from err


class RunLock:
    """An exclusive, non-blocking lock on a run directory (``flock`` of ``DIR/.lock``).

    Use as a context manager; :class:`RunDirError` if another process holds it. The lock is
    released when the block ends or the process dies (the kernel drops ``flock`` locks).
    """

    def __init__(self, directory: str):
        self.path = os.path.join(directory, ".lock")
        self._fd = None

    def __enter__(self) -> RunLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            raise RunDirError(f"{os.path.dirname(self.path)} is in use by another jaxvae "
                              "process (it holds the run's lock)") from err
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
