"""benchmarks/sentence_table.py in its --quick mode: two rows (the RNN language model with
the normal decoder, the sentence VAE with the inputless one), a tiny model, 20 steps."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import sentence_table  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compilation")


def test_sentence_table_quick(tmp_path, capsys):
    results = sentence_table.main(["--quick", "--out", str(tmp_path)])
    records = results["records"]
    assert [(r["model"], r["word_keep"]) for r in records] == [("rnn-lm", 1.0),
                                                             ("sentence-vae", 0.0)]
    lm, vae = records
    # the language model's bound is log p(x): no KL, and the ELBO is the NLL
    assert lm["kl"] == 0.0 and lm["eval_k"] == 1
    assert -lm["elbo"] == pytest.approx(lm["nll"], rel=1e-4)
    assert vae["eval_k"] == 4 and vae["kl"] >= 0 and vae["setting"]["annealing"] == "linear"
    assert vae["nll"] <= -vae["elbo"] + 0.5        # IWAE k=4 above the ELBO, up to noise
    for r in records:
        assert r["steps"] == 20 and r["num_sentences"] == 40 and 1 < r["ppl"] < 1e4
    table = (tmp_path / "table.md").read_text()
    assert "| RNN LM | normal (keep 1) |" in table and "| VAE | inputless (keep 0) |" in table
    assert "not comparable" in table and "Command: `python benchmarks/sentence_table.py" in table
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["machine"] and stored["command"].startswith("python benchmarks/sentence_table")
    assert len(stored["records"]) == 2
    # a rerun trains nothing: every row is in OUT/runs.jsonl
    capsys.readouterr()
    again = sentence_table.main(["--quick", "--out", str(tmp_path)])
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("-- ")]
    assert again["records"] == records
