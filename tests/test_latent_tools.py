"""The latent-space tools against by-hand computations: conditional codes, analogies, edits,
traversal grids, path smoothness, pixel attributes and nearest training neighbours."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import image_metrics, latent

KEY = jax.random.PRNGKey(0)
LABELS = jnp.array([0, 2, 1, 2, 0])


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(4, 4), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (5, 4, 4)) > 0.5).astype(jnp.float32)
    return model, params, x


@pytest.fixture(scope="module")
def cond():
    model = jaxvae.conditional_mlp((4, 4), 3, 2, (8,))
    params = model.init_params(jax.random.PRNGKey(2))
    x = (jax.random.uniform(jax.random.PRNGKey(3), (5, 4, 4)) > 0.5).astype(jnp.float32)
    return model, params, x


def mean_by_hand(model, params, x, c=None):
    """E_q[z|x_i (, c_i)] for each row, one model.apply at a time."""
    rows = [(x_i,) if c is None else (x_i, c[i]) for i, x_i in enumerate(x)]
    return jnp.stack([model.apply(params, *r, method="posterior").mean() for r in rows])


def decode_by_hand(model, params, z, c=None):
    def one(z_i, c_i):
        args = (z_i,) if c_i is None else (z_i, c_i)
        return jax.nn.sigmoid(model.apply(params, *args, method="likelihood").distribution.logits)
    return jnp.stack([one(z_i, None if c is None else c[i]) for i, z_i in enumerate(z)])


def test_conditional_encode_and_decode_match_the_model(cond):
    model, params, x = cond
    z = latent.encode(model, params, x, condition=LABELS)
    assert z.shape == (5, 2)
    np.testing.assert_allclose(z, mean_by_hand(model, params, x, LABELS), rtol=1e-5, atol=1e-6)
    one_hot = jax.nn.one_hot(LABELS, 3)
    np.testing.assert_allclose(latent.encode(model, params, x, condition=one_hot), z, atol=1e-6)
    np.testing.assert_allclose(latent.encode_mean(model, params, x, condition=LABELS), z)
    images = latent.decode(model, params, z, condition=LABELS)
    np.testing.assert_allclose(images, decode_by_hand(model, params, z, LABELS), rtol=1e-5)
    recon = latent.reconstruct(model, params, x, condition=one_hot)
    np.testing.assert_allclose(recon, images, rtol=1e-5, atol=1e-6)
    # The condition reaches the decoder.
    other = latent.decode(model, params, z, condition=(LABELS + 1) % 3)
    assert np.max(np.abs(np.asarray(other) - np.asarray(images))) > 1e-3


def test_conditional_prior_samples_and_interpolation(cond):
    model, params, x = cond
    images = latent.sample_prior(model, params, KEY, 5, condition=LABELS)
    keys = jax.random.split(KEY, 5)
    z = jnp.stack([model.apply(params, c, method="prior").sample(seed=k)
                   for c, k in zip(LABELS, keys)])
    np.testing.assert_allclose(images, decode_by_hand(model, params, z, LABELS), rtol=1e-5)
    path = latent.interpolate(model, params, x[0], x[1], 4, condition=jnp.array(1))
    recon = latent.reconstruct(model, params, x[:2], condition=jnp.array([1, 1]))
    np.testing.assert_allclose(path[0], recon[0], rtol=1e-5)
    np.testing.assert_allclose(path[-1], recon[1], rtol=1e-5)


def test_unconditional_encode_matches_the_model(small):
    model, params, x = small
    np.testing.assert_allclose(latent.encode(model, params, x), mean_by_hand(model, params, x),
                               rtol=1e-5, atol=1e-6)


def test_sampled_codes_have_the_posterior_mean(small):
    model, params, x = small
    n = 1000
    many = jnp.broadcast_to(x[0], (n, 4, 4))
    draws = latent.encode(model, params, many, KEY, sample=True)
    q = model.apply(params, x[0], method="posterior")
    stderr = q.stddev() / np.sqrt(n)
    assert np.all(np.abs(np.mean(draws, axis=0) - q.mean()) < 4 * stderr)
    np.testing.assert_allclose(np.std(draws, axis=0), q.stddev(), rtol=0.1)
    np.testing.assert_allclose(latent.encode(model, params, x[:2], KEY, sample=True),
                               latent.encode(model, params, x[:2], KEY, sample=True))


def test_analogy(small, cond):
    model, params, x = small
    z = latent.encode(model, params, x)
    single = latent.analogy(model, params, x[0], x[0], x[1])
    np.testing.assert_allclose(single, latent.decode(model, params, z[1:2])[0], rtol=1e-5)
    batch = latent.analogy(model, params, x[:2], x[2:4], x[3:5])
    assert batch.shape == (2, 4, 4)
    np.testing.assert_allclose(batch, decode_by_hand(model, params, z[:2] - z[2:4] + z[3:5]),
                               rtol=1e-5)
    model, params, x = cond
    got = latent.analogy(model, params, x[:3], x[:3], x[2:], condition=LABELS[:3])
    z_c = latent.encode(model, params, x[2:], condition=LABELS[:3])
    np.testing.assert_allclose(got, latent.decode(model, params, z_c, LABELS[:3]), rtol=1e-5)


def test_edit_moves_along_the_direction(small, cond):
    model, params, x = small
    direction = jnp.array([1.5, -0.5])
    images = latent.edit(model, params, x[1], direction, [0.0, 2.0])
    assert images.shape == (2, 4, 4)
    np.testing.assert_allclose(images[0], latent.reconstruct(model, params, x[1:2])[0],
                               rtol=1e-5)
    z = latent.encode(model, params, x[1:2])[0]
    np.testing.assert_allclose(images[1], decode_by_hand(model, params, [z + 2 * direction])[0],
                               rtol=1e-5)
    model, params, x = cond
    edited = latent.edit(model, params, x[0], direction, [0.0], condition=jnp.array(2))
    recon = latent.reconstruct(model, params, x[:1], condition=jnp.array([2]))
    np.testing.assert_allclose(edited, recon, rtol=1e-5)


def test_traversal_grid_rows_are_traversals(small, cond):
    model, params, x = small
    values = [-1.0, 0.5, 2.0]
    grid = latent.traversal_grid(model, params, x[0], [1, 0], values)
    assert grid.shape == (2, 3, 4, 4)
    for row, dim in zip(grid, (1, 0)):
        np.testing.assert_allclose(row, latent.traverse(model, params, x[0], dim, values),
                                   rtol=1e-6)
    model, params, x = cond
    grid = latent.traversal_grid(model, params, x[0], range(2), values, condition=jnp.array(1))
    np.testing.assert_allclose(grid[1], latent.traverse(model, params, x[0], 1, values,
                                                        condition=jnp.array(1)), rtol=1e-6)


def test_path_smoothness_closed_forms():
    x0 = np.zeros((3, 4))
    x1 = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    t = np.linspace(0.0, 1.0, 6)[:, None, None]
    ramp = latent.path_smoothness((1 - t) * x0 + t * x1)
    direct = np.mean(np.abs(x1 - x0))
    assert ramp["ratio"] == pytest.approx(1.0, abs=1e-12)
    assert ramp["total_variation"] == pytest.approx(direct)
    assert ramp["direct_distance"] == pytest.approx(direct)
    assert ramp["largest_step_share"] == pytest.approx(1 / 5)
    jump = latent.path_smoothness(np.stack([x0, x0, x0, x1, x1]))
    assert jump["largest_step_share"] == pytest.approx(1.0)
    assert jump["ratio"] == pytest.approx(1.0)
    detour = latent.path_smoothness(np.stack([x0, x1, x0 + 0.5 * (x1 - x0)]))
    assert detour["ratio"] == pytest.approx(3.0)         # out 1, back 1/2, net 1/2
    back = latent.path_smoothness(np.stack([x0, x1, x0]))
    assert back["ratio"] == float("inf")
    flat = latent.path_smoothness(np.stack([x1, x1]))
    assert flat["ratio"] == 1.0 and flat["largest_step_share"] == 0.0


def bar(width, length=20, size=28):
    image = np.zeros((size, size), np.float32)
    image[4:4 + length, 10:10 + width] = 1.0
    return image


def line(shear, size=28, rows=range(4, 24)):
    """An anti-aliased one-pixel line whose ink-weighted column at height y = size-1-i is
    12 + shear * (y - y_mid): exactly a line sheared by ``shear``."""
    image = np.zeros((size, size), np.float32)
    mid = size - 1 - (rows.start + rows.stop - 1) / 2
    for i in rows:
        col = 12 + shear * ((size - 1 - i) - mid)
        j = int(np.floor(col))
        image[i, j], image[i, j + 1] = 1 - (col - j), col - j
    return image


def test_stroke_thickness_of_bars():
    bars = [bar(2, 20, 100), bar(4, 20, 100), bar(2, 90, 100), bar(4, 90, 100)]
    got = image_metrics.stroke_thickness(np.stack([*bars, np.zeros((100, 100))]))
    # ink w L over half the total variation 2 (L + w): w L / (L + w) -> w for L >> w
    expected = [2 * 20 / 22, 4 * 20 / 24, 2 * 90 / 92, 4 * 90 / 94, 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got[2:4], [2.0, 4.0], rtol=0.05)
    # a channel axis, and a block at the border (the padding counts as background)
    edge = np.zeros((1, 6, 6, 1), np.float32)
    edge[0, :, :3] = 1.0
    np.testing.assert_allclose(image_metrics.stroke_thickness(edge), [18 / 9])


def test_slant_of_sheared_lines():
    # a width-3 bar sheared by whole pixels, s = 1/2: near s; mirrored, near -s
    sheared = np.zeros((28, 28), np.float32)
    for i in range(4, 24):
        shift = int(round(0.5 * ((27 - i) - 13.5)))
        sheared[i, 12 + shift:15 + shift] = 1.0
    images = np.stack([bar(3), line(0.0), line(0.3), line(-0.5), np.zeros((28, 28)),
                       sheared, sheared[:, ::-1]])
    got = image_metrics.slant(images)
    np.testing.assert_allclose(got[:5], [0.0, 0.0, 0.3, -0.5, 0.0], atol=1e-5)
    np.testing.assert_allclose(got[5:], [0.5, -0.5], atol=0.03)


def test_attribute_groups_and_conditional_attribute_vector(cond):
    high, low = latent.attribute_groups(np.arange(10.0))
    assert int(np.sum(high)) == 2 and int(np.sum(low)) == 2
    assert np.all(np.asarray(high)[8:]) and np.all(np.asarray(low)[:2])
    high, low = latent.attribute_groups(np.arange(10.0), 0.5, 0.9)
    assert int(np.sum(low)) == 5 and int(np.sum(high)) == 1
    model, params, x = cond
    a = latent.attribute_vector(model, params, x[:2], x[2:], condition_with=LABELS[:2],
                                condition_without=LABELS[2:])
    z = mean_by_hand(model, params, x, LABELS)
    np.testing.assert_allclose(a, z[:2].mean(0) - z[2:].mean(0), rtol=1e-5, atol=1e-6)


def test_nearest_neighbours_against_brute_force():
    rng = np.random.default_rng(0)
    train = rng.uniform(size=(23, 3, 4))
    samples = rng.uniform(size=(6, 3, 4))
    samples[2] = train[17]
    index, distance = latent.nearest_neighbours(samples, train, batch_size=5)
    brute = np.sqrt(np.mean((samples[:, None] - train[None]) ** 2, axis=(2, 3)))
    np.testing.assert_array_equal(index, np.argmin(brute, axis=1))
    np.testing.assert_allclose(distance, np.min(brute, axis=1), rtol=1e-10)
    assert index[2] == 17 and distance[2] == 0.0
    same = latent.nearest_neighbours(samples, train, batch_size=1000)
    np.testing.assert_array_equal(same[0], index)


def test_copy_check():
    rng = np.random.default_rng(1)
    train, test = rng.uniform(size=(40, 16)), rng.uniform(size=(10, 16))
    copies = latent.copy_check(train[:8], train, test, batch_size=7)
    assert copies["samples_median"] == 0.0 and copies["ratio"] == 0.0
    assert copies["closer_than_reference"] == 1.0 and copies["reference_median"] > 0
    fresh = latent.copy_check(rng.uniform(size=(10, 16)), train, test)
    assert 0.6 < fresh["ratio"] < 1.6 and fresh["samples_min"] > 0


def test_bad_input_is_named(small, cond):
    model, params, x = small
    with pytest.raises(ValueError, match=r"condition must hold one condition per row.*\(3,\)"):
        latent.encode(*cond[:2], cond[2], condition=LABELS[:3])
    with pytest.raises(ValueError, match="condition of shape \\[5\\] must be integer labels"):
        latent.decode(*cond[:2], jnp.zeros((5, 2)), condition=jnp.zeros(5))
    with pytest.raises(ValueError, match="condition must be one condition"):
        latent.edit(*cond[:2], cond[2][0], jnp.ones(2), [1.0], condition=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="condition_without must hold one condition per row"):
        latent.attribute_vector(*cond, cond[2], condition_with=LABELS,
                                condition_without=LABELS[:2])
    with pytest.raises(ValueError, match="both condition_with and condition_without"):
        latent.attribute_vector(*cond, cond[2], condition_with=LABELS)
    with pytest.raises(ValueError, match="key is required with sample=True"):
        latent.encode(model, params, x, sample=True)
    with pytest.raises(ValueError, match=r"direction must have shape \[2\], got \(3,\)"):
        latent.edit(model, params, x[0], jnp.ones(3), [1.0])
    with pytest.raises(ValueError, match="amounts must be a non-empty vector"):
        latent.edit(model, params, x[0], jnp.ones(2), [])
    with pytest.raises(ValueError, match="dims must be a non-empty sequence"):
        latent.traversal_grid(model, params, x[0], [], [1.0])
    with pytest.raises(ValueError, match=r"dims must be an int in \[0, 2\), got 5"):
        latent.traversal_grid(model, params, x[0], [0, 5], [1.0])
    with pytest.raises(ValueError, match="same number of examples, got 3 and b: 2"):
        latent.analogy(model, params, x[:3], x[:2], x[:3])
    with pytest.raises(ValueError, match=r"c must have shape \[batch, \*\(4, 4\)\]"):
        latent.analogy(model, params, x[:2], x[:2], x[:2, 0])
    with pytest.raises(ValueError, match="images must be a path .* T >= 2"):
        latent.path_smoothness(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="low_quantile < high_quantile"):
        latent.attribute_groups(np.arange(4.0), 0.8, 0.2)
    with pytest.raises(ValueError, match="values must be a non-empty vector"):
        latent.attribute_groups(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="samples and train must have the same image shape"):
        latent.nearest_neighbours(np.zeros((2, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        latent.nearest_neighbours(np.zeros((2, 4)), np.zeros((3, 4)), batch_size=0)
    with pytest.raises(ValueError, match="samples and reference must have the same"):
        latent.copy_check(np.zeros((2, 4)), np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"images must be a batch \[N, H, W\]"):
        image_metrics.slant(np.zeros((4, 4)))
