import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxvae
from jaxvae import latent, plots

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(4, 4), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (5, 4, 4)) > 0.5).astype(jnp.float32)
    return model, params, x


def numbered_images(n=5, h=2, w=3):
    """Image i has pixel (r, c) = (i * h * w + r * w + c) / 255, so every pixel is unique."""
    return np.arange(n * h * w, dtype=np.float64).reshape(n, h, w) / 255.0


def test_grid_layout():
    images = numbered_images()
    grid = plots.image_grid(images, ncols=3)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1)   # 2 rows of height 2, 3 cols of width 3, 1-px gaps
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[3 * r:3 * r + 2, 4 * c:4 * c + 3],
                                      np.arange(6 * i, 6 * i + 6).reshape(2, 3))
    assert np.all(grid[2, :] == 255)          # horizontal gap
    assert np.all(grid[:, [3, 7]] == 255)     # vertical gaps
    assert np.all(grid[3:, 8:] == 255)        # the empty sixth cell
    assert grid[0, 1] == 1 and grid[3, 4] == 24 and grid[4, 6] == 29


def test_grid_quantizes_clips_and_reshapes():
    grid = plots.image_grid(np.array([[0.0, 0.5, 1.0, 1.5], [-1.0, 0.2, 0.998, 0.0]]), ncols=2,
                            pad_value=0.0)
    # [2, 4] are flat 2x2 images; round(255 v) after clipping to [0, 1]; black gap.
    np.testing.assert_array_equal(grid, [[0, 128, 0, 0, 51],
                                         [255, 255, 0, 254, 0]])
    assert plots.image_grid(np.zeros((3, 5, 5, 1))).shape == (2 * 6 - 1, 2 * 6 - 1)
    assert plots.image_grid(np.zeros((4, 2, 2)), ncols=10).shape == (2, 4 * 3 - 1)


def test_grid_errors():
    with pytest.raises(ValueError, match="length 10, which is not a perfect square"):
        plots.image_grid(np.zeros((3, 10)))
    for shape in [(3, 4, 4, 2), (3, 4, 4, 4), (3, 2, 4, 4, 3), (3,)]:
        with pytest.raises(ValueError, match=r"must have shape \[N, H, W\].*or \[N, H, W, 3\] "
                                             r"\(RGB\), got"):
            plots.image_grid(np.zeros(shape))
    with pytest.raises(ValueError, match="contains 1 NaN"):
        plots.image_grid(np.array([[[np.nan]]]))
    with pytest.raises(ValueError, match="ncols must be an int >= 1, got 0"):
        plots.image_grid(np.zeros((3, 2, 2)), ncols=0)
    with pytest.raises(ValueError, match="is empty"):
        plots.image_grid(np.zeros((0, 2, 2)))


def numbered_rgb_images(n=5, h=2, w=3):
    """Image i has pixel (r, c, k) = (i * h * w * 3 + (r * w + c) * 3 + k) / 255: all unique."""
    return np.arange(n * h * w * 3, dtype=np.float64).reshape(n, h, w, 3) / 255.0


def test_rgb_grid_layout():
    images = numbered_rgb_images()
    grid = plots.image_grid(images, ncols=3)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 3 - 1, 3 * 4 - 1, 3)
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[3 * r:3 * r + 2, 4 * c:4 * c + 3],
                                      np.arange(18 * i, 18 * i + 18).reshape(2, 3, 3))
    assert np.all(grid[2, :] == 255) and np.all(grid[:, [3, 7]] == 255)
    assert np.all(grid[3:, 8:] == 255)        # the empty sixth cell
    # Image 4 (row 1, column 1), pixel (1, 2): channels 72 + 15 + (0, 1, 2).
    np.testing.assert_array_equal(grid[4, 6], [87, 88, 89])


def test_rgb_grid_pad_colour():
    images = np.zeros((3, 2, 2, 3))
    red = plots.image_grid(images, ncols=2, pad_value=(1.0, 0.0, 0.2))
    assert red.shape == (5, 5, 3)
    gaps = np.ones((5, 5), bool)
    gaps[:2, :2] = gaps[:2, 3:] = gaps[3:, :2] = False
    np.testing.assert_array_equal(red[gaps], np.tile([255, 0, 51], (gaps.sum(), 1)))
    assert np.all(red[~gaps] == 0)
    grey = plots.image_grid(images, ncols=2, pad_value=0.5)    # a grey level works for RGB too
    assert np.all(grey[gaps] == 128) and np.all(grey[~gaps] == 0)
    with pytest.raises(ValueError, match=r"pad_value must be a number in \[0, 1\] for "
                                         r"grayscale images, got \(1, 0, 0\)"):
        plots.image_grid(np.zeros((3, 2, 2)), pad_value=(1, 0, 0))
    for bad in [(1, 0), "white", None]:
        with pytest.raises(ValueError, match=r"pad_value must be a number in \[0, 1\] or an "
                                             r"\(r, g, b\) triple for RGB images"):
            plots.image_grid(images, pad_value=bad)


def test_save_grid_writes_rgb_png(tmp_path):
    images = numbered_rgb_images()
    path = plots.save_grid(images, tmp_path / "rgb.png", ncols=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (11, 5)
        np.testing.assert_array_equal(np.asarray(img), plots.image_grid(images, ncols=3))
    # A single-channel axis is still grayscale.
    with Image.open(plots.save_grid(images[..., :1], tmp_path / "grey.png", ncols=3)) as img:
        assert img.mode == "L" and img.size == (11, 5)


def test_save_grid_writes_png_atomically(tmp_path, monkeypatch):
    images = numbered_images()
    path = tmp_path / "out" / "grid.png"
    assert plots.save_grid(images, path, ncols=3) == str(path)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "L" and img.size == (11, 5)
        np.testing.assert_array_equal(np.asarray(img), plots.image_grid(images, ncols=3))
    assert os.listdir(path.parent) == ["grid.png"]
    with open(tmp_path / "plain", "wb"):   # same permissions as an ordinary new file
        pass
    assert os.stat(path).st_mode == os.stat(tmp_path / "plain").st_mode
    # Overwrite in place; a failing write leaves the old file intact and no temp file.
    plots.save_grid(np.ones((1, 3, 3)), path)
    with Image.open(path) as img:
        assert img.size == (3, 3)

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", broken_save)
        with pytest.raises(OSError, match="disk full"):
            plots.save_grid(images, path)
    assert os.listdir(path.parent) == ["grid.png"]
    with Image.open(path) as img:
        assert img.size == (3, 3)


def read_png(path):
    with Image.open(path) as img:
        return np.asarray(img)


def test_save_samples_and_interpolation(small, tmp_path):
    model, params, x = small
    grid = read_png(plots.save_samples(model, params, KEY, tmp_path / "s.png", num=6, ncols=4))
    assert grid.shape == (2 * 5 - 1, 4 * 5 - 1)
    np.testing.assert_array_equal(grid, plots.image_grid(latent.sample_prior(model, params, KEY, 6),
                                                         ncols=4))
    row = read_png(plots.save_interpolation(model, params, x[0], x[1], tmp_path / "i.png", num=7))
    assert row.shape == (4, 7 * 5 - 1)
    recon = latent.reconstruct(model, params, x[:2])
    np.testing.assert_array_equal(row[:, :4], np.round(np.asarray(recon[0]) * 255))
    np.testing.assert_array_equal(row[:, -4:], np.round(np.asarray(recon[1]) * 255))


def test_save_reconstructions_pairs_rows(small, tmp_path):
    """5 inputs in rows of 3: input row, reconstruction row, input row, reconstruction row."""
    model, params, x = small
    grid = read_png(plots.save_reconstructions(model, params, x, tmp_path / "r.png", num=5,
                                               ncols=3))
    assert grid.shape == (4 * 5 - 1, 3 * 5 - 1)
    recon = np.round(np.asarray(latent.reconstruct(model, params, x)) * 255)
    for i in range(5):
        r, c = divmod(i, 3)
        top, left = 2 * r * 5, c * 5
        np.testing.assert_array_equal(grid[top:top + 4, left:left + 4], np.asarray(x[i]) * 255)
        np.testing.assert_array_equal(grid[top + 5:top + 9, left:left + 4], recon[i])
    assert np.all(grid[10:, 10:] == 255)   # empty cells of the last pair of rows


@pytest.fixture(scope="module")
def small_rgb():
    model = jaxvae.iwae_mlp(event_shape=(4, 4, 3), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 4, 4, 3))
    return model, params, x


def test_rgb_samples_reconstructions_and_interpolation(small_rgb, tmp_path):
    model, params, x = small_rgb
    grid = read_png(plots.save_samples(model, params, KEY, tmp_path / "s.png", num=6, ncols=4))
    assert grid.shape == (2 * 5 - 1, 4 * 5 - 1, 3)
    np.testing.assert_array_equal(grid, plots.image_grid(latent.sample_prior(model, params, KEY, 6),
                                                         ncols=4))
    grid = read_png(plots.save_reconstructions(model, params, x, tmp_path / "r.png", num=5,
                                               ncols=3))
    assert grid.shape == (4 * 5 - 1, 3 * 5 - 1, 3)
    recon = np.round(np.asarray(latent.reconstruct(model, params, x)) * 255)
    for i in range(5):
        r, c = divmod(i, 3)
        top, left = 2 * r * 5, c * 5
        np.testing.assert_array_equal(grid[top:top + 4, left:left + 4],
                                      np.round(np.asarray(x[i]) * 255))
        np.testing.assert_array_equal(grid[top + 5:top + 9, left:left + 4], recon[i])
    assert np.all(grid[10:, 10:] == 255)
    row = read_png(plots.save_interpolation(model, params, x[0], x[1], tmp_path / "i.png", num=3))
    assert row.shape == (4, 3 * 5 - 1, 3)
    np.testing.assert_array_equal(row[:, :4], recon[0])
