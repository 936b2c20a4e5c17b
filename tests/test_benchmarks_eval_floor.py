"""benchmarks/eval_floor.py --quick: its numbers are finite and consistent with each other."""

import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import eval_floor  # noqa: E402


def test_flop_count_of_the_iwae_model():
    fl = eval_floor.eval_flops(num_images=3, k=5000)
    assert fl["decoder_per_sample"] == 2 * (50 * 200 + 200 * 200 + 200 * 784) == 413_600
    assert fl["encoder_per_image"] == 2 * (784 * 200 + 200 * 200 + 2 * 200 * 50)
    assert fl["total"] == 3 * 5000 * 413_600 + 3 * fl["encoder_per_image"]


def test_quick_run_writes_consistent_json(tmp_path, capsys):
    path = tmp_path / "floor.json"
    out = tmp_path / "out"
    assert eval_floor.main(["--quick", "--no-progress", "--json", str(path),
                            "--out", str(out)]) == 0
    res = json.loads(path.read_text())
    assert json.loads((out / "results.json").read_text()) == res
    assert "ratio = time / floor" in (out / "table.md").read_text()
    assert res["quick"] and res["n"] == 8 and res["k"] == 100
    numbers = [res[name] for name in ("floor_s", "eval_s", "eval_cpu_s", "compile_s", "ratio",
                                      "matmul_gflops", "eval_gflops",
                                      "floor_plus_elementwise_s")]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers)
    assert res["floor_s"] > 0 and res["eval_s"] > 0 and res["matmul_gflops"] > 0
    assert res["flops"]["total"] == eval_floor.eval_flops(res["n"], res["k"])["total"]
    assert res["floor_s"] == pytest.approx(res["flops"]["total"] / (res["matmul_gflops"] * 1e9))
    assert res["ratio"] == pytest.approx(res["eval_s"] / res["floor_s"])
    parts = res["elementwise"]["parts"]
    assert set(parts) == {"bernoulli_log_prob", "tanh", "normal_draws"}
    assert res["elementwise"]["seconds"] == pytest.approx(sum(p["seconds"] for p in parts.values()))
    assert res["floor_plus_elementwise_s"] == pytest.approx(res["floor_s"]
                                                            + res["elementwise"]["seconds"])
    assert res["finite"] and math.isfinite(res["mean_log_likelihood"])
    assert "benchmarks/eval_floor.py --quick" in res["command"] and res["machine"]
    assert "ratio" in capsys.readouterr().out
