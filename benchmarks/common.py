"""The benchmark harness: common flags, the machine, a resumable results store, tables.

Run the scripts from the repository root (``python benchmarks/iwae_table.py ...``).

* :func:`add_common_flags` adds the flags every script shares (``--data``, ``--seed``,
  ``--eval-k``, ``--steps``, ``--out``, ``--json``, ``--quick``, ``--no-progress``), each
  script choosing which and their defaults; :func:`resolve_common` fills in the
  ``--quick`` defaults (embedded data, ``OUT/quick``).
* :func:`machine` is the one-line machine description of every results table.
* :class:`ResultsStore` is an append-only JSONL file of finished settings: a table script
  skips the settings already in it and lists the missing ones, so an interrupted or
  budget-limited run continues where it stopped.
* :func:`markdown_table`, :func:`write_table`, :func:`write_json` and :func:`write_results`
  write tables and standard JSON (no NaN) atomically.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from jaxvae import rundir

#: the full MNIST file the published tables use (see docs/results.md)
DEFAULT_DATA = "npz:../shared/data/mnist.npz"
COMMON_FLAGS = ("data", "seed", "eval_k", "steps", "out", "json", "quick", "no_progress")


# --------------------------------------------------------------------------------- flags

def add_common_flags(parser: argparse.ArgumentParser, *flags: str,
                     defaults: dict | None = None, helps: dict | None = None):
    """Adds the shared flags ``flags`` (names from :data:`COMMON_FLAGS`, in order).

    Args:
      parser: the script's parser.
      flags: e.g. ``"data", "seed", "out", "json", "quick", "no_progress"``.
      defaults: per-flag defaults by name (``out`` has none of its own: give it).
      helps: per-flag help texts replacing the standard ones.
    Returns: ``parser``.
    """
    defaults, helps = dict(defaults or {}), dict(helps or {})
    unknown = set(flags) - set(COMMON_FLAGS)
    if unknown:
        raise ValueError(f"unknown common flag(s) {sorted(unknown)}; expected {COMMON_FLAGS}")
    standard = {
        "data": dict(default=None,
                     help=f"data set name (default {DEFAULT_DATA}; embedded with --quick)"),
        "seed": dict(type=int, default=0, help="seed of initialization, batches and noise"),
        "eval_k": dict(type=int, default=5000, help="samples of the test IWAE bound"),
        "steps": dict(type=int, default=None, help="optimizer steps"),
        "out": dict(default=None, help="output directory (default: the script's folder "
                    "under benchmarks/results/, its quick/ subfolder with --quick)"),
        "json": dict(default=None, help="also write the results as JSON to this path"),
        "quick": dict(action="store_true", help="< 60 s: embedded data, a small run"),
        "no_progress": dict(action="store_true", help="no progress bars"),
    }
    for name in flags:
        options = dict(standard[name])
        if name in defaults:
            options["default"] = defaults.pop(name)
        if name in helps:
            options["help"] = helps.pop(name)
        parser.add_argument("--" + name.replace("_", "-"), **options)
    if defaults or helps:
        raise ValueError(f"defaults or helps for flags not added: {sorted({*defaults, *helps})}")
    return parser


def resolve_common(args: argparse.Namespace, default_out: str | None = None):
    """Fills the ``--quick``-dependent defaults in place and returns ``args``.

    ``--data``: ``embedded`` with ``--quick``, else :data:`DEFAULT_DATA`; ``--out`` (when
    ``default_out`` is given and the flag was not): ``default_out``, or ``default_out/quick``
    with ``--quick`` so that a quick run never touches the committed results.
    """
    quick = getattr(args, "quick", False)
    if hasattr(args, "data") and not args.data:
        args.data = "embedded" if quick else DEFAULT_DATA
    if default_out is not None and hasattr(args, "out") and args.out is None:
        args.out = os.path.join(default_out, "quick") if quick else default_out
    return args


def command_line(script: str, argv: Sequence[str] | None = None, drop=()) -> str:
    """``python SCRIPT ARGS`` as typed (``argv`` default ``sys.argv[1:]``), minus ``drop``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", script] + [a for a in argv if a not in drop])


# ------------------------------------------------------------------------------ machine

@functools.cache
def machine() -> str:
    """CPU model, core count, jax version and backend, for every results table."""
    import jax

    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on "
            f"{jax.devices()[0].platform}")


def loadavg() -> list:
    """The 1, 5 and 15-minute load averages (rounded), or [] where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def summary(values) -> dict:
    """Median, min, max, count and the values themselves of repeated measurements."""
    vals = sorted(float(v) for v in values)
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals),
            "values": [float(v) for v in values]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def draw_chunk(num_draws: int, cap: int) -> int:
    """Largest divisor of ``num_draws`` that is <= ``cap`` (at least 1): vmapping draws in
    equal chunks compiles ``jaxvae.gradient_stats``' function once."""
    cap = max(1, min(cap, num_draws))
    return max(c for c in range(1, cap + 1) if num_draws % c == 0)


# ------------------------------------------------------------------------ standard JSON

def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None (tuples become lists), so
    that it is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:   # numpy scalars
        return json_safe(value.item())
    return value


def _setting_dict(setting: Any) -> Any:
    return setting.to_dict() if hasattr(setting, "to_dict") else setting


def _key(setting: Any) -> str:
    try:
        return json.dumps(_setting_dict(setting), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"a setting must be a finite JSON value: {err}") from err


# -------------------------------------------------------------------------- results store

class ResultsStore:
    """An append-only JSONL file of finished runs, one record per line.

    Each record is a JSON object with a ``"setting"`` (a JSON object, e.g. a
    ``jaxvae.Config``'s ``to_dict()``) that names what ran; the rest is its results. A
    table script asks :meth:`missing` for the settings of its plan that are not finished,
    runs them one by one and :meth:`add` s each record as soon as it is done, so a rerun of
    the same command skips what is finished.

    Records are written as standard JSON (NaN or infinity is a ValueError), one line in
    one ``write`` on an append-mode file, then fsynced. A torn last line (the process was
    killed mid-write) is ignored on reading and cut off before the next append; a damaged
    line elsewhere is an error naming the file and the line.
    """

    def __init__(self, path: str):
        self.path = path
        self._records: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            last = number == len(lines)       # no newline after it: possibly torn
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or "setting" not in record:
                    raise ValueError("not a record with a setting")
            except ValueError as err:
                if last:
                    log(f"{self.path}: ignoring a torn last line ({len(raw)} bytes)")
                    continue
                raise ValueError(f"{self.path}, line {number}: damaged record ({err}); "
                                 "remove the line to continue") from None
            self._records[_key(record["setting"])] = record

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[dict]:
        """All finished records (the last one of each setting), in file order."""
        return list(self._records.values())

    def done(self, setting) -> bool:
        """Whether ``setting`` (a dict or a Config) has a finished record."""
        return _key(setting) in self._records

    def get(self, setting, default=None) -> dict | None:
        """The record of ``setting``, or ``default``."""
        return self._records.get(_key(setting), default)

    def missing(self, plan: Iterable) -> list:
        """The settings of ``plan`` without a finished record, in plan order."""
        return [s for s in plan if not self.done(s)]

    def add(self, record: dict) -> dict:
        """Appends ``record`` (which must hold a ``"setting"``) and returns it."""
        if not isinstance(record, dict) or "setting" not in record:
            raise ValueError("a results record is a dict with a 'setting'")
        record = dict(record, setting=_setting_dict(record["setting"]))
        try:
            line = json.dumps(record, allow_nan=False) + "\n"
        except ValueError as err:
            raise ValueError(f"refusing a non-finite results record for {self.path}: "
                             f"{err}") from err
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._cut_torn_tail()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._records[_key(record["setting"])] = record
        return record

    def _cut_torn_tail(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                json.loads(data[start:])
                f.write(b"\n")                  # a whole record without its newline
            except ValueError:
                f.truncate(start)                # a torn record: cut it off


# -------------------------------------------------------------------------------- tables

def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: ``| h1 | h2 |``, ``| --- | --- |``, then one line per row."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def atomic_write(path: str, text: str) -> str:
    """Writes ``text`` to ``path`` atomically (:func:`jaxvae.rundir.atomic_write`)."""
    return rundir.atomic_write(path, text)


def write_json(path: str, value: Any) -> str:
    """``value`` as standard JSON (NaN and infinity become null), written atomically."""
    return atomic_write(path, json.dumps(json_safe(value), indent=1, allow_nan=False) + "\n")


def write_table(out: str, table: str, results: Any = None) -> None:
    """OUT/table.md and, if given, OUT/results.json, each written atomically."""
    atomic_write(os.path.join(out, "table.md"), table if table.endswith("\n") else table + "\n")
    if results is not None:
        write_json(os.path.join(out, "results.json"), results)


def save_figure(fig, path: str) -> str:
    """Writes a matplotlib figure to ``path`` atomically (temporary file, then rename)."""
    return rundir.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_results(out: str, table: str, res: dict, headline: dict, json_path: str | None):
    """OUT/table.md and OUT/results.json, the table and the headline on stdout, and the
    headline as JSON at ``json_path`` if given (all standard JSON, written atomically)."""
    write_table(out, table, res)
    print(table)
    for key, value in headline.items():
        print(f"{key}: {value:.4g}")
    if json_path:
        write_json(json_path, headline)
        print(f"wrote {json_path}")
