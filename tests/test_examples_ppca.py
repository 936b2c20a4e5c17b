"""examples/em_vs_vae.py runs in its --quick mode: EM reaches the closed-form ML value."""

import json

import pytest
from example_scripts import load

pytestmark = pytest.mark.usefixtures("fast_compilation")


def table_rows(text):
    """{first cell: other cells} for each markdown table row of ``text``."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return {row[0]: row[1:] for row in rows}


def test_em_vs_vae_quick(capsys, tmp_path):
    out_png, out_json = tmp_path / "figure.png", tmp_path / "results.json"
    load("em_vs_vae").main(["--quick", "--out", str(out_png), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert out_png.stat().st_size > 0 and f"wrote {out_png}" in out
    rows = table_rows(out)
    assert {"ML (closed form)", "EM", "VAE", "VAE ELBO"} <= set(rows), out
    ml, em = float(rows["ML (closed form)"][0]), float(rows["EM"][0])
    assert abs(em - ml) < 0.01 and rows["EM"][2] == "200"

    result = json.loads(out_json.read_text())
    ml, final = result["ml_log_px"], result["final"]
    assert ml - 0.01 < final["EM log p(x)"] <= ml + 1e-6
    assert final["VAE log p(x)"] <= ml + 1e-6                # nothing beats the ML solution
    assert final["VAE ELBO"] <= final["VAE log p(x)"] + 1e-9  # the ELBO is a lower bound
    em = result["curves"]["EM log p(x)"]
    assert len(em) == 201 and all(b >= a - 1e-9 * abs(a) for a, b in zip(em, em[1:]))
