"""The many-runs benchmark's quick mode: its group programs train the runs it times in turn."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import many_runs  # noqa: E402


def test_quick_mode_reports_equal_runs_and_consistent_ratios(tmp_path, fast_compilation):
    out = tmp_path / "out"
    assert many_runs.main(["--quick", "--out", str(out), "--json", str(tmp_path / "h.json")]) == 0
    headline = json.loads((tmp_path / "h.json").read_text())
    assert headline["max_param_diff"] < 1e-4          # the group equals the runs in turn
    record = json.loads((out / "results.json").read_text())["records"][0]
    med = record["median_seconds"]
    for name in many_runs.CONTENDERS:
        assert np.isclose(record["speedup_vs_turn_step"][name], med["turn-step"] / med[name])
        assert record["run_steps_per_s"][name] > 0
    assert record["step_flops"] > 1e6                 # XLA's count of one training step
    assert "9,840,000 sequential steps" in (out / "table.md").read_text()
