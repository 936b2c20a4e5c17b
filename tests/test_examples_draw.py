"""examples/draw.py runs in its --quick mode and writes every figure of a DRAW run.

The example is imported by path and run once: it trains a tiny DRAW with attention (T = 4
steps, 20 training steps on the embedded data) into a temporary run directory and draws
its figures; the assertions check the files, their sizes (which follow from T, the 28 x 28
images and the layouts the example documents) and the per-step KLs it reports.
"""

import importlib.util

import pytest
from example_scripts import load
from PIL import Image

pytestmark = pytest.mark.usefixtures("fast_compilation")

CELL = 28 + 1                 # a 28 x 28 image and its 1-pixel gap


def size(path):
    with Image.open(path) as image:
        return image.size     # (width, height)


def test_draw_quick(tmp_path, capsys):
    result = load("draw").main(["--quick", "--no-progress", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    figures = tmp_path / "quick"
    assert result["out"] == str(figures) and result["steps"] == 4 and result["attention"]
    # 8 drawings x 4 steps (canvas_steps(4, 8) = all four), the test digits in a 5th column
    assert size(figures / "canvas_prior.png") == (4 * CELL - 1, 8 * CELL - 1)
    assert size(figures / "canvas_test.png") == (5 * CELL - 1, 8 * CELL - 1)
    assert size(figures / "samples.png") == (8 * CELL - 1, 8 * CELL - 1)
    # 4 digits, each as itself and as the canvas: 8 rows of 4 steps, enlarged 4 times
    assert size(figures / "glimpses.png") == (4 * (4 * 28 + 1) - 1, 8 * (4 * 28 + 1) - 1)
    for name in ("canvas_prior.gif", "canvas_test.gif"):
        with Image.open(figures / name) as gif:     # 8 canvases in 2 rows of 4, twice as large
            assert gif.size == (2 * (4 * CELL - 1), 2 * (2 * CELL - 1))
            assert 1 <= gif.n_frames <= 4 and gif.info["loop"] == 0
    kl = result["kl_per_step"]
    assert len(kl) == 4 and all(v >= 0 for v in kl) and result["num_kl_images"] == 256
    assert "KL per step over 256 test digits (nats): " in out and f"sum {sum(kl):.2f}" in out
    written = {p.rsplit("/", 1)[-1] for p in result["files"]}
    if importlib.util.find_spec("matplotlib"):
        assert (figures / "kl_per_step.png").stat().st_size > 0
        assert "kl_per_step.png" in written
    assert written >= {"canvas_prior.png", "canvas_prior.gif", "canvas_test.png",
                       "canvas_test.gif", "glimpses.png", "samples.png"}
    assert all(f"wrote {p}" in out for p in result["files"])


def test_draw_needs_a_run(capsys, tmp_path):
    with pytest.raises(SystemExit):
        load("draw").main([])
    assert "give --run DIR, or --quick" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load("draw").main(["--run", str(tmp_path)])
    assert "not a run directory" in capsys.readouterr().err
