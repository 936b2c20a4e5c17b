"""examples/sentence_vae.py runs in its --quick mode and reports consistent numbers.

The example is imported by path and run once (20 steps of a tiny sentence VAE on the
embedded WordNet sentences, two of its four settings); the assertions hold for any run
that is wired correctly, however short.
"""

import json
import math

import pytest
from example_scripts import load

pytestmark = pytest.mark.usefixtures("fast_compilation")


def test_sentence_vae_quick(tmp_path, capsys):
    results = load("sentence_vae").main(["--quick", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert list(results) == ["plain ELBO", "annealing + word dropout (keep 0.75)"]
    for name in ("sentence_kl_collapse.png", "sentence_vae.md", "results.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored["settings"]) == set(results) and stored["args"]["steps"] == 20
    for r in results.values():
        curve = r["curve"]
        assert [c["step"] for c in curve] == [0, 10, 20]          # --log-every 10
        assert all(c["kl"] >= 0 and math.isfinite(c["kl"]) for c in curve)
        # plain: beta = 1 throughout; annealed linearly over --anneal-steps = 10 steps
        want = [1.0, 1.0, 1.0] if not r["annealed"] else [0.0, 1.0, 1.0]
        assert [c["beta"] for c in curve] == pytest.approx(want)
        m = r["metrics"]
        assert m["num_sentences"] == 40 and m["eval_k"] == 4
        assert 0 < m["nll"] < 200 and m["kl"] >= 0 and 0 <= m["active_units"] <= 4
        # PPL over words and <eos>: exp(mean NLL / tokens per sentence)
        assert m["ppl"] == pytest.approx(math.exp(m["nll"] / m["words_per_sentence"]),
                                         rel=1e-6)
        d = r["decodes"]
        assert len(d["test"]) == 3 and all(len(s["samples"]) == 3 for s in d["test"])
        assert [len(h) for h in d["homotopies"]] == [5, 5]
        assert len(d["prior"]) == 5 and 1 <= d["prior_distinct"] <= d["prior_draws"] == 10
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3 and rows[0].startswith("| setting | KL, valid batch")
    text = (tmp_path / "sentence_vae.md").read_text()
    assert text.count("- input: ") == 6 and "Homotopies" in text and "Budget per setting" in text
    # --replot redraws the figure and the text from results.json, training nothing
    (tmp_path / "sentence_kl_collapse.png").unlink()
    (tmp_path / "sentence_vae.md").unlink()
    again = load("sentence_vae").main(["--replot", "--out", str(tmp_path)])
    assert set(again) == set(results)
    assert (tmp_path / "sentence_kl_collapse.png").stat().st_size > 0
    assert (tmp_path / "sentence_vae.md").read_text() == text
