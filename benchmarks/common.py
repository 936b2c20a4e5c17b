"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import json
import os
import platform
import sys

import jax


def machine() -> str:
    """CPU model, core count, jax version and backend, for every results table."""
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on "
            f"{jax.devices()[0].platform}")


def draw_chunk(num_draws: int, cap: int) -> int:
    """Largest divisor of ``num_draws`` that is <= ``cap`` (at least 1): vmapping draws in
    equal chunks compiles ``jaxvae.gradient_stats``' function once."""
    cap = max(1, min(cap, num_draws))
    return max(c for c in range(1, cap + 1) if num_draws % c == 0)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def save_figure(fig, path: str) -> str:
    """Writes a matplotlib figure to ``path`` atomically (temporary file, then rename)."""
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
    return path


def write_results(out: str, table: str, res: dict, headline: dict, json_path: str | None):
    """OUT/table.md and OUT/results.json, the table and the headline on stdout, and the
    headline as JSON at ``json_path`` if given."""
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(table)
    for key, value in headline.items():
        print(f"{key}: {value:.4g}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(headline, f, indent=1)
        print(f"wrote {json_path}")
