"""Every script in examples/ runs in its --quick mode on the embedded data.

Each example is imported by path and its ``main(argv)`` called in this process (one JAX
start-up for all); the assertions read what it prints. An example added to examples/
without a test here fails ``test_every_example_is_tested``.
"""

import importlib.util
import json
import math
import os
import re

import numpy as np
import pytest
from example_scripts import EXAMPLES, load

TESTED = {"flow_vae.py", "variational_dropout.py", "flow_density.py", "blurry.py",
          "em_vs_vae.py", "chairs.py", "latent_2d.py", "ae_vs_vae.py", "latent_lab.py",
          "sentence_vae.py", "draw.py"}


pytestmark = pytest.mark.usefixtures("fast_compilation")


def table_rows(text, first_cell):
    """The cells of each markdown table row of ``text`` whose first cell is in ``first_cell``."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return [row for row in rows if row[0] in first_cell]


def test_every_example_is_tested():
    assert {f for f in os.listdir(EXAMPLES) if f.endswith(".py")} == TESTED


def test_flow_vae_quick(capsys):
    load("flow_vae").main(["--quick", "--no-progress"])
    out = capsys.readouterr().out
    match = re.search(r"planar K=2: test NLL ([\d.]+) ± ([\d.]+) nats \(IWAE k=10, 100 images\), "
                      r"ELBO (-[\d.]+), (\d+) active units, ([\d.]+) passes in ([\d.]+) s", out)
    assert match, out
    nll, stderr, elbo, active = (float(g) for g in match.groups()[:4])
    assert 50 < nll < 550 and 0 < stderr < 50 and 0 <= active <= 8
    assert -elbo >= nll - 5 * stderr      # the ELBO is the k=1 bound: below log p up to noise


def test_flow_vae_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit):
        load("flow_vae").main(["--quick", "--steps", "0"])
    assert "steps must be >= 1" in capsys.readouterr().err


def test_variational_dropout_quick(capsys):
    load("variational_dropout").main(["--quick", "--no-progress"])
    out = capsys.readouterr().out
    assert out.startswith("| estimator | test error | s / step | steps |\n"
                          "| --- | --- | --- | --- |\n")
    rows = table_rows(out, {"local", "shared"})
    assert [row[0] for row in rows] == ["local", "shared"], out
    for _, error, seconds, steps in rows:
        assert error.endswith(" %") and 0 <= float(error[:-2]) < 85    # chance is 90 %
        assert math.isfinite(float(seconds)) and float(seconds) > 0
        assert steps == "20"                 # 0.2 epochs of the 10k examples in batches of 100


def test_flow_density_quick(capsys, tmp_path):
    out_png, out_json = tmp_path / "figure.png", tmp_path / "results.json"
    load("flow_density").main(["--quick", "--out", str(out_png), "--json", str(out_json)])
    out = capsys.readouterr().out
    rows = table_rows(out, {"U1", "U2", "U3", "U4"})
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (u, flow, "2") for u in ("U1", "U2", "U3", "U4") for flow in ("planar", "radial")], out
    for row in rows:
        kl, stderr = float(row[3]), float(row[4])
        assert -3 * stderr - 0.05 < kl < 5 and stderr >= 0      # KL(q||p) >= 0 up to noise
    assert out_json.exists()
    if importlib.util.find_spec("matplotlib"):
        assert out_png.stat().st_size > 0 and f"wrote {out_png}" in out
    else:                                    # an optional extra: the fits still ran
        assert "no figure: it needs all four energies and matplotlib" in out
        assert not out_png.exists()


def test_blurry_quick(capsys, tmp_path):
    load("blurry").main(["--quick", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert (tmp_path / "samples.png").exists() and (tmp_path / "reconstructions.png").exists()
    rows = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:5]]
            for line in out.splitlines() if line.startswith("| ") and "---" not in line
            and "images" not in line}
    assert set(rows) == {"samples", "reconstructions", "test data"}, out
    # the data's own sharpness is positive; a VAE's decoder means are blurrier than it
    assert rows["test data"][1] > 0 and rows["reconstructions"][1] < rows["test data"][1]


def test_chairs_quick(capsys, tmp_path):
    results = load("chairs").main(["--quick", "--no-progress", "--out", str(tmp_path),
                                   "--identities", "20", "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert "20 identities x 18 viewpoints" in out and results["held_out"] == 40
    for name in ("chairs_transfer.png", "chairs_interpolation.png", "chairs_arithmetic.png"):
        assert (tmp_path / name).exists(), name
    errors = results["errors"]
    assert set(errors) == {"render", "reconstruction", "copy canonical view",
                           "copy nearest seen view"}
    assert all(0 < v < 1 for row in errors.values() for v in row.values())
    # a copy of the same pair is excluded: the nearest seen view is another viewpoint
    assert errors["copy nearest seen view"]["seen"] > 0.01
    assert len(results["arithmetic"]) == 4 and json.load(open(tmp_path / "c.json"))["steps"] == 40


def test_chairs_runs_on_smallnorb_under_mock_data(capsys, tmp_path):
    """The same example on TFDS smallnorb (for users with a network), 3 instances x the
    full azimuth x elevation grid at one lighting, from mock data."""
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    examples = [{"image": rng.integers(0, 256, (96, 96, 1), dtype=np.uint8),
                 "image2": np.zeros((96, 96, 1), np.uint8), "label_category": category,
                 "instance": 4, "label_azimuth": azimuth, "label_elevation": elevation,
                 "label_lighting": 0}
                for category in range(3) for azimuth in range(18) for elevation in range(9)]

    def as_data_source(self, split, decoders=None, deserialize_method=None):
        return examples

    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        results = load("chairs").main(["--quick", "--no-progress", "--data", "tfds:smallnorb",
                                       "--identities", "3", "--out", str(tmp_path)])
    assert "3 identities x 162 viewpoints from tfds:smallnorb; 6 pairs held out" in \
        capsys.readouterr().out
    assert (tmp_path / "chairs_transfer.png").exists()
    assert all(np.isfinite(v) for row in results["errors"].values() for v in row.values())
