"""DRAW's attention against the paper's formulas (Gregor et al., 2015, eqs. 19-26)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae.models import draw_attention as att


def test_glimpse_parameters_follow_the_paper():
    raw = jnp.array([0.5, -0.25, math.log(2.0), math.log(0.5), math.log(3.0)])
    g = att.glimpse_params(raw, height=20, width=28, size=5)
    np.testing.assert_allclose(g.g_x, 29 / 2 * 1.5, rtol=1e-6)       # (W + 1)/2 (g~ + 1)
    np.testing.assert_allclose(g.g_y, 21 / 2 * 0.75, rtol=1e-6)
    np.testing.assert_allclose(g.sigma2, 2.0, rtol=1e-6)
    np.testing.assert_allclose(g.delta, 27 / 4 * 0.5, rtol=1e-6)     # (max(H, W) - 1)/(N - 1)
    np.testing.assert_allclose(g.gamma, 3.0, rtol=1e-6)
    with pytest.raises(ValueError, match="5 numbers"):
        att.glimpse_params(jnp.zeros(4), 28, 28, 5)


def test_filter_rows_are_normalized_and_centred():
    size, height, width = 4, 30, 40
    raw = jnp.array([0.1, -0.2, 0.0, math.log(0.3), 0.0])     # sigma = 1, inside the image
    g = att.glimpse_params(raw, height, width, size)
    f_y, f_x = att.filterbank(g, size, height, width)
    assert f_y.shape == (size, height) and f_x.shape == (size, width)
    np.testing.assert_allclose(f_x.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(f_y.sum(-1), 1.0, rtol=1e-6)
    offsets = np.arange(1, size + 1) - size / 2 - 0.5
    for f, centre, pixels in ((f_x, g.g_x, width), (f_y, g.g_y, height)):
        mu = float(centre) + offsets * float(g.delta)
        centroid = f @ np.arange(1, pixels + 1)
        np.testing.assert_allclose(centroid, mu, atol=1e-4)
        spread = f @ np.arange(1, pixels + 1) ** 2 - centroid ** 2
        np.testing.assert_allclose(spread, 1.0, rtol=1e-3)                  # sigma^2


def test_filters_stay_normalized_far_outside_the_image():
    raw = jnp.array([40.0, -40.0, math.log(1e-3), 0.0, 0.0])
    f_y, f_x = att.filterbank(att.glimpse_params(raw, 28, 28, 3), 3, 28, 28)
    assert bool(jnp.all(jnp.isfinite(f_x))) and bool(jnp.all(jnp.isfinite(f_y)))
    np.testing.assert_allclose(f_x.sum(-1), 1.0, rtol=1e-6)


def test_stride_one_grid_of_image_size_is_the_identity():
    """N = H = W, stride 1, centred, narrow filters: filter i sits on pixel i, so the
    glimpse is the image itself and a written patch is the canvas update itself."""
    n = 6
    raw = jnp.array([0.0, 0.0, math.log(0.01), 0.0, 0.0])     # delta = 1, gamma = 1
    g = att.glimpse_params(raw, n, n, n)
    np.testing.assert_allclose(g.delta, 1.0, rtol=1e-6)
    f_y, f_x = att.filterbank(g, n, n, n)
    np.testing.assert_allclose(f_x, np.eye(n), atol=1e-12)
    x, x_hat = jax.random.uniform(jax.random.PRNGKey(0), (2, n, n))
    np.testing.assert_allclose(att.read(x, x_hat, raw, n),
                               np.concatenate([np.ravel(x), np.ravel(x_hat)]), atol=1e-6)
    np.testing.assert_allclose(att.write(x, raw, n, n), x, atol=1e-6)


def test_write_is_the_adjoint_of_read():
    """<read(x), w> = gamma <F_Y x F_X^T, w> = gamma <x, F_Y^T w F_X> = gamma^2 <x, write(w)>."""
    height, width, n = 7, 5, 3
    raw = jnp.array([0.2, -0.1, math.log(0.7), math.log(0.8), math.log(1.7)])
    kx, kw = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.uniform(kx, (height, width))
    w = jax.random.normal(kw, (n, n))
    glimpse = att.read(x, jnp.zeros_like(x), raw, n)
    assert glimpse.shape == (2 * n * n,)
    canvas = att.write(w, raw, height, width)
    assert canvas.shape == (height, width)
    gamma = 1.7
    np.testing.assert_allclose(jnp.vdot(glimpse[:n * n], w.ravel()),
                               gamma ** 2 * jnp.vdot(x, canvas), rtol=1e-5)
    with pytest.raises(ValueError, match="square"):
        att.write(jnp.zeros((2, 3)), raw, height, width)


def test_plain_read():
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(att.read_plain(x, -x), jnp.concatenate([x.ravel(),
                                                                          -x.ravel()]))


@pytest.mark.parametrize("size", [1, 2, 5])
def test_the_initial_grid_tiles_the_image(size):
    """tiling_init: centred, stride max(H, W)/N, sigma half the stride; writing 1 at one
    patch entry moves the canvas under its filter centre by about one logit."""
    height, width = 28, 24
    read = att.glimpse_params(att.tiling_init(size, height, width)(None, (5,)), height, width,
                              size)
    np.testing.assert_allclose([read.g_x, read.g_y], [(width + 1) / 2, (height + 1) / 2])
    np.testing.assert_allclose(read.delta, 28 / size, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(read.sigma2), 14 / size, rtol=1e-5)
    assert float(read.gamma) == pytest.approx(1.0)
    raw = att.tiling_init(size, height, width, write=True)(None, (5,))
    one = jnp.zeros((size, size)).at[size // 2, size // 2].set(1.0)
    peak = float(att.write(one, raw, height, width).max())
    # 1 / (2 pi sigma^2) is the peak of an untruncated filter pair; the image's edges cut
    # the wide filters of small N, and their normalization then raises the peak
    assert {1: 2.0 < peak < 2.6, 2: 1.3 < peak < 1.7, 5: 0.9 < peak < 1.1}[size], peak
    with pytest.raises(ValueError, match="5 outputs"):
        att.tiling_init(size, height, width)(None, (4,))
