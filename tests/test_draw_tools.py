"""jaxvae.draw_tools on a tiny DRAW with attention (T = 3 steps, 28 x 28): the traced
recurrence against the model's own likelihood, the per-step KLs against the trace, and the
pictures (GIF frames, glimpse boxes by hand, the glimpse strip's layout and colours)."""

import jax
import numpy as np
import pytest
from PIL import Image

from jaxvae import draw_tools
from jaxvae.models import draw

T, N, D = 3, 4, 4
KEY = jax.random.PRNGKey(1)


@pytest.fixture(scope="module")
def tiny():
    model = draw.draw(steps=T, latent_dim=D, hidden=8, attention=True)
    params = model.init_params(jax.random.PRNGKey(0))
    x = (np.random.default_rng(0).random((N, 28, 28)) < 0.3).astype(np.float32)
    return model, params, x


@pytest.fixture(scope="module")
def trace(tiny):
    model, params, x = tiny
    return draw_tools.posterior_trace(model, params, x, KEY)


def test_posterior_trace_shapes(trace):
    assert trace.z.shape == trace.loc.shape == trace.scale.shape == (N, T, D)
    assert trace.canvas.shape == (N, T, 28, 28)
    assert trace.read.shape == trace.write.shape == (N, T, 5)
    assert np.all(np.asarray(trace.scale) > 0)
    canvas = np.asarray(trace.canvas)
    assert np.all((canvas > 0) & (canvas < 1))          # probabilities sigmoid(c_t)


def test_last_canvas_is_the_mean_of_the_likelihood(tiny, trace):
    """sigmoid(c_T) of the traced run is p(x|z)'s Bernoulli mean at the same z."""
    model, params, _ = tiny
    for i in range(N):
        likelihood = model.apply(params, trace.z[i], method="likelihood")
        logits = likelihood.distribution.logits
        assert logits.shape == (28, 28)
        np.testing.assert_allclose(np.asarray(trace.canvas[i, -1]),
                                   np.asarray(jax.nn.sigmoid(logits)), atol=1e-5)


def test_mean_step_kl_averages_the_traced_steps(tiny, trace):
    model, params, x = tiny
    kl = draw_tools.mean_step_kl(model, params, x, KEY, batch_size=3)   # batches of 3 and 1
    assert kl.shape == (T,) and np.all(np.isfinite(kl)) and np.all(kl >= 0)
    # the same key gives the same per-image keys, hence the same paths as the trace
    by_hand = np.mean(np.asarray(jax.vmap(draw_tools.step_kl)(trace)), axis=0)
    np.testing.assert_allclose(kl, by_hand, rtol=1e-5, atol=1e-6)


def test_prior_canvases(tiny):
    model, params, _ = tiny
    canvases, writes = draw_tools.prior_canvases(model, params, KEY, 5)
    canvases = np.asarray(canvases)
    assert canvases.shape == (5, T, 28, 28) and writes.shape == (5, T, 5)
    assert canvases.min() >= 0 and canvases.max() <= 1


def test_canvas_gif_has_one_frame_per_step(tmp_path):
    steps = 5
    canvases = np.broadcast_to(np.linspace(0, 1, steps)[None, :, None, None], (3, steps, 6, 7))
    path = draw_tools.save_canvas_gif(canvases, tmp_path / "c.gif", duration_ms=50, scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == steps and gif.info["loop"] == 0
        # 3 canvases in a 2 x 2 grid with 1-pixel gaps, enlarged twice: (width, height)
        assert gif.size == (2 * (2 * 8 - 1), 2 * (2 * 7 - 1))
        durations = []
        for t in range(steps):
            gif.seek(t)
            durations.append(gif.info["duration"])
        assert durations[:-1] == [50] * (steps - 1) and durations[-1] > 50    # held at the end
    with pytest.raises(ValueError, match=r"\[N, T, H, W\]"):
        draw_tools.save_canvas_gif(canvases[0], tmp_path / "bad.gif")


def test_glimpse_box_by_hand():
    # raw 0 on 28 x 28, N = 5: g = (28 + 1)/2 = 14.5 (1-based), i.e. 14 in 0-based pixel
    # units (the image's centre); delta = (28 - 1)/(5 - 1) = 6.75, so the filter centres are
    # 1, 7.75, ..., 28 (1-based) and the box g -+ 5/2 delta = 14 -+ 16.875
    box = draw_tools.glimpse_box(np.zeros(5), 5, 28, 28)
    np.testing.assert_allclose(box, (-2.875, -2.875, 30.875, 30.875), rtol=1e-6)
    assert all(isinstance(v, np.floating) for v in box)
    # 20 rows x 30 columns, N = 2: g_x = 31/2 (1 + 0.5) = 23.25, g_y = 21/2 (1 - 0.5) = 5.25;
    # delta = (30 - 1)/(2 - 1) * 0.5 = 14.5, half-width 2/2 delta = 14.5
    raw = np.array([0.5, -0.5, 0.0, np.log(0.5), 0.0])
    box = draw_tools.glimpse_box(raw, 2, 20, 30)
    np.testing.assert_allclose(box, (22.75 - 14.5, 4.75 - 14.5, 22.75 + 14.5, 4.75 + 14.5),
                               rtol=1e-6)
    batched = draw_tools.glimpse_box(np.stack([np.zeros(5), raw]), 2, 20, 30)
    assert [np.shape(v) for v in batched] == [(2,)] * 4
    np.testing.assert_allclose([v[1] for v in batched], box, rtol=1e-6)


def coloured(cell, colour):
    """(x0, y0, x1, y1) of the pixels of exactly ``colour`` in an RGB cell, or None."""
    ys, xs = np.nonzero(np.all(cell == colour, axis=-1))
    return None if not len(xs) else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_save_glimpses_layout_and_boxes(tmp_path, trace):
    scale, images = 4, np.zeros((2, 28, 28))
    read = np.array([0.0, 0.0, 0.0, np.log(0.2), 0.0])      # 5 x 1.35 pixels around the centre
    write = np.array([-0.5, 0.2, 0.0, np.log(0.3), 0.0])
    reads, writes = np.tile(read, (2, T, 1)), np.tile(write, (2, T, 1))
    path = draw_tools.save_glimpses(images, reads, writes, 5, 5, tmp_path / "g.png", scale=scale)
    cell_size = 28 * scale
    with Image.open(path) as png:
        # rows = images, columns = canvas_steps(T, 8) = all 3 steps, 1-pixel gaps
        assert png.mode == "RGB" and png.size == (3 * (cell_size + 1) - 1, 2 * (cell_size + 1) - 1)
        strip = np.asarray(png)
    for r in range(2):
        for c in range(3):
            top, left = r * (cell_size + 1), c * (cell_size + 1)
            cell = strip[top:top + cell_size, left:left + cell_size]
            for raw, colour in ((read, (0, 255, 0)), (write, (255, 0, 0))):
                want = np.array(draw_tools.glimpse_box(raw, 5, 28, 28)) * scale
                got = coloured(cell, colour)
                assert got is not None and np.all(np.abs(np.array(got) - want) <= 1), (got, want)


def test_save_glimpses_on_canvases(tmp_path, trace):
    """Pictures per step (the canvases), writes only, chosen steps."""
    path = draw_tools.save_glimpses(trace.canvas, None, trace.write, 2, 5, tmp_path / "c.png",
                                    steps=[0, 2], scale=2)
    with Image.open(path) as png:
        assert png.size == (2 * (56 + 1) - 1, N * (56 + 1) - 1)
    with pytest.raises(ValueError, match="reads or writes"):
        draw_tools.save_glimpses(trace.canvas, None, None, 2, 5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="T = 3"):
        draw_tools.save_glimpses(trace.canvas[:, :2], trace.read, None, 2, 5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="steps"):
        draw_tools.save_glimpses(trace.canvas, trace.read, None, 2, 5, tmp_path / "x.png",
                                 steps=[3])
