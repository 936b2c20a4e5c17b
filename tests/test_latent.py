import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import latent

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(4, 4), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (5, 4, 4)) > 0.5).astype(jnp.float32)
    return model, params, x


def decode_one(model, params, z):
    """Bernoulli probabilities sigmoid(logits) of p(x|z) for one z, by hand."""
    return jax.nn.sigmoid(model.apply(params, z, method="likelihood").distribution.logits)


def posterior_mean(model, params, x_i):
    return model.apply(params, x_i, method="posterior").mean()


def test_lerp_endpoints_and_midpoint():
    z0, z1 = jnp.array([1.0, 2.0]), jnp.array([3.0, -2.0])
    path = latent.lerp(z0, z1, 5)
    assert path.shape == (5, 2)
    np.testing.assert_allclose(path[0], z0)
    np.testing.assert_allclose(path[-1], z1)
    np.testing.assert_allclose(path[2], [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(path[1], [1.5, 1.0], atol=1e-6)


def test_slerp_follows_the_great_circle():
    z0, z1 = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    path = latent.slerp(z0, z1, 3)
    np.testing.assert_allclose(path[1], [np.sqrt(0.5), np.sqrt(0.5), 0.0], atol=1e-6)
    # Random equal-norm endpoints: endpoints kept, norm constant, equal angular steps.
    u = jax.random.normal(KEY, (2, 6))
    z0, z1 = 3.0 * u / jnp.linalg.norm(u, axis=1, keepdims=True)
    path = np.asarray(latent.slerp(z0, z1, 7), np.float64)
    assert path.shape == (7, 6)
    np.testing.assert_allclose(path[0], z0, atol=1e-5)
    np.testing.assert_allclose(path[-1], z1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0, rtol=1e-5)
    theta = np.arccos(np.dot(z0, z1) / 9.0)
    steps = np.arccos(np.clip(np.sum(path[1:] * path[:-1], axis=1) / 9.0, -1, 1))
    np.testing.assert_allclose(steps, theta / 6, rtol=1e-3)


def test_slerp_falls_back_to_lerp_when_the_arc_is_undefined():
    z0 = jnp.array([1.0, -2.0, 0.5])
    for z1 in (2.0 * z0, -z0, jnp.zeros(3), z0 + 1e-9):
        got = latent.slerp(z0, z1, 4)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, latent.lerp(z0, z1, 4), atol=1e-6)
    # The same under jit (no Python branching on values).
    np.testing.assert_allclose(jax.jit(latent.slerp, static_argnums=2)(z0, -z0, 4),
                               latent.lerp(z0, -z0, 4), atol=1e-6)


def test_sample_prior_decodes_prior_draws(small):
    model, params, _ = small
    images = latent.sample_prior(model, params, KEY, 6)
    assert images.shape == (6, 4, 4)
    z = model.prior().sample(seed=KEY, sample_shape=(6,))
    expected = jnp.stack([decode_one(model, params, z_i) for z_i in z])
    np.testing.assert_allclose(images, expected, rtol=1e-5)
    assert np.all((images > 0) & (images < 1))


def test_reconstruct_mean_and_sample(small):
    model, params, x = small
    recon = latent.reconstruct(model, params, x)
    assert recon.shape == x.shape
    expected = jnp.stack([decode_one(model, params, posterior_mean(model, params, x_i))
                          for x_i in x])
    np.testing.assert_allclose(recon, expected, rtol=1e-5)
    sampled = latent.reconstruct(model, params, x, KEY)
    np.testing.assert_allclose(sampled, latent.reconstruct(model, params, x, KEY))
    keys = jax.random.split(KEY, x.shape[0])
    z = [model.apply(params, x_i, method="posterior").sample(seed=k) for x_i, k in zip(x, keys)]
    np.testing.assert_allclose(sampled, jnp.stack([decode_one(model, params, z_i) for z_i in z]),
                               rtol=1e-5)
    assert not np.allclose(sampled, recon)


def test_interpolate_runs_between_the_reconstructions(small):
    model, params, x = small
    recon = latent.reconstruct(model, params, x[:2])
    for method in ("slerp", "lerp"):
        images = latent.interpolate(model, params, x[0], x[1], 6, method=method)
        assert images.shape == (6, 4, 4)
        np.testing.assert_allclose(images[0], recon[0], rtol=1e-5)
        np.testing.assert_allclose(images[-1], recon[1], rtol=1e-5)
    z0, z1 = posterior_mean(model, params, x[0]), posterior_mean(model, params, x[1])
    mid = latent.interpolate(model, params, x[0], x[1], 3, method="lerp")[1]
    np.testing.assert_allclose(mid, decode_one(model, params, (z0 + z1) / 2), rtol=1e-5)


def test_traverse_sets_only_the_chosen_dimension(small):
    model, params, x = small
    values = jnp.array([-2.0, 0.0, 3.0])
    images = latent.traverse(model, params, x[2], 1, values)
    assert images.shape == (3, 4, 4)
    z = posterior_mean(model, params, x[2])
    for image, v in zip(images, values):
        np.testing.assert_allclose(image, decode_one(model, params, z.at[1].set(v)), rtol=1e-5)
    # The traversal through the posterior mean's own value reproduces the reconstruction.
    same = latent.traverse(model, params, x[2], 0, [z[0]])
    np.testing.assert_allclose(same[0], latent.reconstruct(model, params, x[2:3])[0], rtol=1e-5)


def test_attribute_vector_on_a_linear_encoder():
    """Encoder mean = x @ K (no hidden layer, zero bias): the attribute vector is
    (mean(x_with) - mean(x_without)) @ K, worked out by hand."""
    model = jaxvae.iwae_mlp(event_shape=(4,), latent_dim=2, hidden=())
    params = model.init_params(KEY)
    kernel = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [2.0, -1.0]])
    params["params"]["encoder"]["loc"] = {"kernel": kernel, "bias": jnp.zeros(2)}
    x_with = jnp.array([[1.0, 0, 0, 1], [1, 1, 0, 1]])             # mean [1, 1/2, 0, 1]
    x_without = jnp.array([[0.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]])  # [0, 1/3, 2/3, 0]
    # difference [1, 1/6, -2/3, 1] @ K = [1 + 2, 1/6 - 1]
    np.testing.assert_allclose(latent.attribute_vector(model, params, x_with, x_without),
                               [3.0, -5.0 / 6.0], rtol=1e-6)


def test_bad_input_is_named(small):
    model, params, x = small
    for bad in (2, -1, 1.0, True):
        with pytest.raises(ValueError, match=r"dim must be an int in \[0, 2\)"):
            latent.traverse(model, params, x[0], bad, [0.0, 1.0])
    with pytest.raises(ValueError, match="values must be a non-empty vector"):
        latent.traverse(model, params, x[0], 0, [])
    with pytest.raises(ValueError, match=r"x must be one example of shape \(4, 4\), got \(16,\)"):
        latent.traverse(model, params, x[0].reshape(16), 0, [1.0])
    for fn in (latent.lerp, latent.slerp):
        with pytest.raises(ValueError, match="num must be >= 2, got 1"):
            fn(jnp.zeros(2), jnp.ones(2), 1)
        with pytest.raises(ValueError, match=r"same shape \[latent_dim\], got \(2,\) and \(3,\)"):
            fn(jnp.zeros(2), jnp.ones(3), 4)
    with pytest.raises(ValueError, match="num must be >= 2, got 1"):
        latent.interpolate(model, params, x[0], x[1], 1)
    with pytest.raises(ValueError, match="unknown interpolation method 'cubic'"):
        latent.interpolate(model, params, x[0], x[1], 4, method="cubic")
    with pytest.raises(ValueError, match="num must be >= 1, got 0"):
        latent.sample_prior(model, params, KEY, 0)
    with pytest.raises(ValueError, match="contains 1 NaN"):
        latent.reconstruct(model, params, x.at[0, 1, 1].set(jnp.nan))
    with pytest.raises(ValueError, match=r"x_without must have shape \[batch, \*\(4, 4\)\]"):
        latent.attribute_vector(model, params, x, x[:, 0])
    with pytest.raises(ValueError, match=r"z must have shape \[num, 2\], got \(3,\)"):
        latent.decode(model, params, jnp.zeros(3))
