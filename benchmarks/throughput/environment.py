"""The machine, library versions, git state and load average recorded with each run.

The one-line machine string (CPU model, cores, jax version and backend) is
``benchmarks.common.machine()``, shared with the other benchmark scripts; the fields
below are the ones only this benchmark reports.
"""

from __future__ import annotations

import os
import platform
import subprocess

from .config import REPO


def machine_info() -> dict:
    import jax
    import numpy as np

    from benchmarks.common import machine

    info = {"machine": machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    info.update(jax=jax.__version__, numpy=np.__version__,
                jax_device=str(jax.devices()[0]), jax_backend=jax.default_backend())
    for mod in ("jaxlib", "flax", "optax", "distrax", "torch", "numpyro"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001 - report whatever went wrong
            info[mod] = f"unavailable ({type(err).__name__})"
    return info


def git_state() -> str:
    """``COMMIT`` or ``COMMIT+dirty`` of the repository (the library benchmarked), if known."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "jaxvae"], cwd=REPO,
                               text=True, capture_output=True, timeout=10).stdout.strip()
        note = "+dirty (uncommitted changes under jaxvae/)" if dirty else ""
        return (commit + note) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def loadavg() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []
