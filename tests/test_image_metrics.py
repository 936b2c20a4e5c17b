"""Sharpness measures against closed forms derived by hand (see each docstring)."""

import jax
import numpy as np
import pytest

from jaxvae import image_metrics as im

H, W = 10, 12


def checkerboard(a=1.0, h=H, w=W):
    i, j = np.indices((h, w))
    return a * ((i + j) % 2).astype(np.float32)


def ramp(a=0.1, b=0.02, c=0.05, h=H, w=W):
    i, j = np.indices((h, w))
    return (a + b * i + c * j).astype(np.float32)


def box_blur(x):
    """3 x 3 mean filter with edge padding, per image of [N, H, W]."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return sum(p[:, di:di + x.shape[1], dj:dj + x.shape[2]]
               for di in range(3) for dj in range(3)) / 9.0


@pytest.mark.parametrize("fn", list(im.MEASURES.values()), ids=list(im.MEASURES))
def test_constant_images_score_zero(fn):
    x = np.stack([np.zeros((H, W)), np.full((H, W), 0.37), np.ones((H, W))]).astype(np.float32)
    np.testing.assert_allclose(fn(x), np.zeros(3), atol=1e-7)


def test_laplacian_of_checkerboard_and_ramp():
    lap = np.asarray(im.laplacian(checkerboard(0.5)[None]))
    assert lap.shape == (1, 1, H - 2, W - 2)
    i, j = np.indices((H - 2, W - 2)) + 1                    # interior coordinates
    expected = np.where((i + j) % 2 == 1, -4 * 0.5, 4 * 0.5)   # -4a on the a's, +4a on 0s
    np.testing.assert_allclose(lap[0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(im.laplacian(ramp()[None]), 0.0, atol=1e-6)


def test_laplacian_variance_closed_forms():
    # (H-2)(W-2) = 80 interior pixels, half a's: Var = E[L^2] = 16 a^2
    for a in (1.0, 0.5, 0.2):
        np.testing.assert_allclose(im.laplacian_variance(checkerboard(a)[None]), [16 * a * a],
                                   rtol=1e-5)
    np.testing.assert_allclose(im.laplacian_variance(ramp()[None]), [0.0], atol=1e-10)
    # one bright interior pixel of value v in an otherwise black S x S interior:
    # L = -4v there, +v at its 4 neighbours; mean 0, Var = (16 + 4) v^2 / S^2
    x = np.zeros((1, 7, 7), np.float32)
    x[0, 3, 3] = 0.8
    var = (16 + 4) * 0.64 / 25
    np.testing.assert_allclose(im.laplacian_variance(x), [var], rtol=1e-5)


def test_gradient_energy_closed_forms():
    for b, c in ((0.02, 0.05), (0.0, 0.1), (-0.03, 0.0)):
        np.testing.assert_allclose(im.gradient_energy(ramp(0.2, b, c)[None]), [b * b + c * c],
                                   rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(im.gradient_energy(checkerboard(0.5)[None]), [2 * 0.25], rtol=1e-6)
    # a vertical step edge of height s in column W/2: one horizontal difference per row
    x = np.zeros((1, H, W), np.float32)
    x[0, :, W // 2:] = 0.6
    np.testing.assert_allclose(im.gradient_energy(x), [0.36 / (W - 1)], rtol=1e-5)


def test_high_frequency_fraction_closed_forms():
    np.testing.assert_allclose(im.high_frequency_fraction(checkerboard(0.7)[None]), [1.0],
                               rtol=1e-5)
    j = np.arange(16)[None, :].repeat(8, 0)
    low = 0.5 + 0.3 * np.cos(2 * np.pi * 2 * j / 16)        # 2/16 = 0.125 cycles/pixel
    high = 0.5 + 0.3 * np.cos(2 * np.pi * 6 * j / 16)       # 6/16 = 0.375
    values = im.high_frequency_fraction(np.stack([low, high]).astype(np.float32))
    np.testing.assert_allclose(values, [0.0, 1.0], atol=1e-5)
    # equal power at both: half the non-DC power is above the cutoff
    both = (0.5 + 0.2 * np.cos(2 * np.pi * 2 * j / 16)
            + 0.2 * np.cos(2 * np.pi * 6 * j / 16)).astype(np.float32)
    np.testing.assert_allclose(im.high_frequency_fraction(both[None]), [0.5], atol=1e-5)
    # the cutoff moves the boundary: 0.125 cycles/pixel is above a cutoff of 0.1
    np.testing.assert_allclose(im.high_frequency_fraction(low[None].astype(np.float32), 0.1),
                               [1.0], atol=1e-5)


def test_blurring_lowers_every_measure():
    x = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16)))
    blurred = box_blur(x)
    for name, fn in im.MEASURES.items():
        sharp, soft = np.asarray(fn(x)), np.asarray(fn(blurred))
        assert np.all(soft < sharp), (name, sharp, soft)


def test_channels_are_averaged_and_shapes():
    a, b = checkerboard(1.0), ramp()
    x = np.stack([a, b], axis=-1)[None]                       # [1, H, W, 2]
    np.testing.assert_allclose(im.laplacian_variance(x), [(16 + 0) / 2], rtol=1e-5)
    np.testing.assert_allclose(im.gradient_energy(x), [(2 + 0.02 ** 2 + 0.05 ** 2) / 2],
                               rtol=1e-5)
    # [N, H, W] and [N, H, W, 1] agree; one value per image
    batch = np.stack([a, b])
    for fn in im.MEASURES.values():
        v3, v4 = fn(batch), fn(batch[..., None])
        assert v3.shape == (2,)
        np.testing.assert_allclose(v3, v4, rtol=1e-6)
    # jit-able
    np.testing.assert_allclose(jax.jit(im.gradient_energy)(batch), im.gradient_energy(batch))


def test_sharpness_summary_clips_and_reports_stderr():
    x = np.stack([checkerboard(1.0), checkerboard(1.0)])
    out = im.sharpness(2.0 * x - 0.5)          # clipped back to the 0/1 checkerboard
    assert out["laplacian_variance"] == pytest.approx(16.0, rel=1e-5)
    assert out["gradient_energy"] == pytest.approx(2.0, rel=1e-5)
    assert out["high_frequency_fraction"] == pytest.approx(1.0, rel=1e-5)
    assert out["laplacian_variance_stderr"] == pytest.approx(0.0, abs=1e-6)
    assert im.sharpness(2.0 * x, clip=False)["gradient_energy"] == pytest.approx(8.0, rel=1e-5)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"add a leading batch axis"):
        im.gradient_energy(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"\[N, H, W\] or \[N, H, W, C\]"):
        im.gradient_energy(np.zeros((2, 8, 8, 1, 1)))
    with pytest.raises(ValueError, match=r"at least 3 x 3"):
        im.laplacian_variance(np.zeros((1, 2, 8)))
    with pytest.raises(ValueError, match="cutoff"):
        im.high_frequency_fraction(np.zeros((1, 8, 8)), cutoff=0.8)
