"""Two local CPU processes joined by ``jaxvae.distributed.initialize`` train exactly what one
process trains: the processes feed their own rows of each batch, the mesh spans both
processes' devices, gradients are averaged by gloo's collectives, and a checkpoint written
by both is resumed by both. The worker is ``tests/multihost_worker.py``."""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxvae.distributed

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start(*args):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}   # one device each
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               JAX_DISABLE_MOST_OPTIMIZATIONS="1")   # compilation dominates these few steps
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs):
    """Waits for every process; returns their (returncode, stdout, stderr), killing them
    all if one runs past the timeout."""
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            results.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        results = [(None, *p.communicate()) for p in procs]
    return results


def report(names, results) -> str:
    return "\n".join(f"--- {name}: exit {rc}\n{out}\n{err[-4000:]}"
                     for name, (rc, out, err) in zip(names, results))


def test_two_processes_train_what_one_process_trains(tmp_path):
    port = free_port()
    procs = [start(tmp_path / f"process{i}.npz", tmp_path / "run2", f"localhost:{port}", 2, i)
             for i in range(2)]
    procs.append(start(tmp_path / "single.npz", tmp_path / "run1"))
    names = ["process 0 of 2", "process 1 of 2", "one process"]
    results = finish(procs)
    if any(rc != 0 for rc, _, _ in results[:2]) and results[2][0] == 0 and re.search(
            r"gloo.*(unavailable|not available|not supported|not built|no attribute)",
            results[0][2] + results[1][2], re.IGNORECASE):
        pytest.skip("CPU cross-process collectives are unavailable here:\n"
                    + report(names[:2], results[:2]))
    assert all(rc == 0 for rc, _, _ in results), report(names, results)
    assert "WORKER-OK 0 2 2" in results[0][1] and "WORKER-OK 1 2 2" in results[1][1]

    single = np.load(tmp_path / "single.npz")
    for i in range(2):
        multi = np.load(tmp_path / f"process{i}.npz")
        assert sorted(multi.files) == sorted(single.files)
        for name in multi.files:   # [0] initial, [1] 4 steps, [2] 2 steps + resumed 2 steps
            np.testing.assert_allclose(multi[name], single[name], rtol=1e-5, atol=1e-6,
                                       err_msg=f"process {i}: {name}")
    moved = [name for name in single.files if name.startswith("[1]")
             and np.max(np.abs(single[name] - single["[0]" + name[3:]])) > 1e-3]
    assert len(moved) == len(single.files) // 3, "training left some parameters unchanged"
    # only process 0 writes the metrics: one record per fit call (steps 2 and 4)
    lines = (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    assert sorted(os.listdir(tmp_path / "run2" / "checkpoints")) == ["2", "4"]


def test_process_rows(monkeypatch):
    batch = {"x": np.arange(12).reshape(6, 2), "y": np.arange(6)}
    assert np.array_equal(jaxvae.distributed.process_rows(batch)["y"], np.arange(6))
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    rows = jaxvae.distributed.process_rows(batch)
    assert np.array_equal(rows["y"], [2, 3]) and np.array_equal(rows["x"], [[4, 5], [6, 7]])
    with pytest.raises(ValueError, match=r"batch: its size 7 must be divisible by the "
                                         r"number of processes \(3\)"):
        jaxvae.distributed.process_rows(np.zeros((7, 2)))
    with pytest.raises(ValueError, match="same B"):
        jaxvae.distributed.process_rows((np.zeros((6, 2)), np.zeros(4)))


def test_initialize_checks_its_arguments(monkeypatch):
    with pytest.raises(ValueError, match="num_processes must be >= 1, got 0"):
        jaxvae.distributed.initialize("localhost:1", 0, 0)
    with pytest.raises(ValueError, match=r"process_id must be in 0..1, got 2"):
        jaxvae.distributed.initialize("localhost:1", 2, 2)

    def undetected(*args, **kwargs):   # what jax raises when it finds no cluster
        raise ValueError("coordinator_address should be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", undetected)
    with pytest.raises(ValueError, match="no cluster was detected"):
        jaxvae.distributed.initialize()
