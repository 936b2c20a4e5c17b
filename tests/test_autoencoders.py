"""The autoencoder losses on a VAE's networks and the ELBO with its terms weighted apart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import autoencoders

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(3, 3), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (4, 3, 3)) > 0.5).astype(jnp.float32)
    return model, params, x


def by_hand(model, params, x_in, x):
    """-mean log p(x | z = E_q[z|x_in]), each network applied by hand."""
    z = jax.vmap(lambda e: model.apply(params, e, method="posterior").mean())(x_in)
    log_p = jax.vmap(lambda zi, xi: model.apply(params, zi, method="likelihood").log_prob(xi))
    return -jnp.mean(log_p(z, x))


def test_autoencoder_decodes_the_encoder_mean(small):
    model, params, x = small
    value, info = autoencoders.make_autoencoder_loss(model)(params, x, KEY)
    np.testing.assert_allclose(value, by_hand(model, params, x, x), rtol=1e-6)
    np.testing.assert_allclose(info["reconstruction"], -value)


def test_denoising_autoencoder_reconstructs_the_clean_input(small):
    model, params, x = small
    value, _ = autoencoders.make_autoencoder_loss(model, "mask", 0.5)(params, x, KEY)
    keys = jax.random.split(KEY, x.shape[0])
    x_in = jax.vmap(lambda k, xi: autoencoders.corrupt(k, xi, "mask", 0.5))(keys, x)
    assert not np.allclose(x_in, x)
    np.testing.assert_allclose(value, by_hand(model, params, x_in, x), rtol=1e-6)


def test_corruptions_have_their_stated_statistics():
    x = jnp.full((200, 50), 0.5)
    masked = autoencoders.corrupt(KEY, x, "mask", 0.3)
    assert set(np.unique(masked)) <= {0.0, 0.5}
    np.testing.assert_allclose(np.mean(masked == 0.0), 0.3, atol=0.02)
    noisy = autoencoders.corrupt(KEY, x, "gaussian", 0.1)
    assert 0.0 <= float(noisy.min()) and float(noisy.max()) <= 1.0
    np.testing.assert_allclose(np.std(noisy - x), 0.1, rtol=0.05)
    for kind, level in (("mask", 1.0), ("gaussian", 0.0), ("blur", 0.1)):
        with pytest.raises(ValueError):
            autoencoders.corrupt(KEY, x, kind, level)


def test_weights_one_one_are_the_elbo(small):
    model, params, x = small
    value, info = autoencoders.make_weighted_elbo_loss(model)(params, x, KEY)
    elbo = jaxvae.make_objective(model, "elbo", 1, analytic_kl=True)(params, x, KEY)
    np.testing.assert_allclose(value, -jnp.mean(elbo), rtol=1e-6)
    np.testing.assert_allclose(info["elbo"], jnp.mean(elbo), rtol=1e-6)
    beta = jaxvae.make_objective(model, "elbo", 1, analytic_kl=True, beta=3.0)(params, x, KEY)
    np.testing.assert_allclose(autoencoders.make_weighted_elbo_loss(model, 1.0, 3.0)(
        params, x, KEY)[0], -jnp.mean(beta), rtol=1e-6)


def test_kl_only_gives_the_decoder_no_gradient_and_reconstruction_only_no_kl(small):
    model, params, x = small
    kl_only = autoencoders.make_weighted_elbo_loss(model, 0.0, 1.0)
    value, info = kl_only(params, x, KEY)
    np.testing.assert_allclose(value, info["kl"], rtol=1e-6)
    grads = jax.grad(lambda p: kl_only(p, x, KEY)[0])(params)["params"]
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads["decoder"]))
    assert any(float(jnp.abs(g).max()) > 0.0 for g in jax.tree_util.tree_leaves(grads["encoder"]))
    value, info = autoencoders.make_weighted_elbo_loss(model, 1.0, 0.0)(params, x, KEY)
    np.testing.assert_allclose(value, -info["reconstruction"], rtol=1e-6)
    with pytest.raises(ValueError, match="not both 0"):
        autoencoders.make_weighted_elbo_loss(model, 0.0, 0.0)


def test_a_condition_is_passed_on():
    model = jaxvae.conditional_mlp((3, 3), 3, 2, (8,))
    params = model.init_params(KEY)
    x = jnp.ones((2, 3, 3))
    loss = autoencoders.make_autoencoder_loss(model)
    a = loss(params, (x, jnp.array([0, 0])), KEY)[0]
    b = loss(params, (x, jnp.array([1, 2])), KEY)[0]
    assert np.isfinite(a) and not np.isclose(a, b)


def test_gaussian_corruption_refuses_8bit_levels():
    model = jaxvae.iwae_mlp(event_shape=(3, 3), latent_dim=2, hidden=(8,),
                            head=jaxvae.likelihoods.DiscretizedLogistic())
    params = model.init_params(KEY)
    x = jnp.full((2, 3, 3), 128, jnp.uint8)
    assert np.isfinite(autoencoders.make_autoencoder_loss(model, "mask", 0.5)(params, x, KEY)[0])
    with pytest.raises(ValueError, match="integer"):
        autoencoders.make_autoencoder_loss(model, "gaussian", 0.1)(params, x, KEY)
