import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvae

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=3, hidden=(16,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (6, 12)) > 0.5).astype(jnp.float32)
    return model, params, x


def toy_data(key, n=256, dim=16, prototypes=4, flip=0.05):
    """Binary vectors: noisy copies of a few random prototypes (a mixture of Bernoullis)."""
    k1, k2, k3 = jax.random.split(key, 3)
    protos = jax.random.bernoulli(k1, 0.5, (prototypes, dim))
    idx = jax.random.randint(k2, (n,), 0, prototypes)
    noise = jax.random.bernoulli(k3, flip, (n, dim))
    return jnp.logical_xor(protos[idx], noise).astype(jnp.float32)


def test_objective_matches_per_example_functions(small):
    model, params, x = small
    key = jax.random.PRNGKey(5)
    keys = jax.random.split(key, x.shape[0])
    for name, fn in [("elbo", jaxvae.elbo), ("iwae", jaxvae.iwae_bound)]:
        got = jax.jit(jaxvae.make_objective(model, name, 4))(params, x, key)
        expected = [fn(k, *jaxvae.model_terms(model, params, xi), 4) for xi, k in zip(x, keys)]
        np.testing.assert_allclose(got, jnp.stack(expected), rtol=1e-5)


def test_iwae_k1_equals_elbo_at_model_level(small):
    model, params, x = small
    key = jax.random.PRNGKey(9)
    np.testing.assert_allclose(jaxvae.make_objective(model, "iwae", 1)(params, x, key),
                               jaxvae.make_objective(model, "elbo", 1)(params, x, key), rtol=1e-6)


def test_loss_is_negative_mean_bound(small):
    model, params, x = small
    loss, info = jaxvae.make_loss(model, "elbo", 2, analytic_kl=True, beta=0.5)(params, x, KEY)
    bound = jaxvae.make_objective(model, "elbo", 2, analytic_kl=True, beta=0.5)(params, x, KEY)
    np.testing.assert_allclose(loss, -jnp.mean(bound), rtol=1e-6)
    np.testing.assert_allclose(info["bound"], jnp.mean(bound), rtol=1e-6)


def test_bad_input_is_named(small):
    model, params, x = small
    with pytest.raises(ValueError, match="contains 1 NaN"):
        jaxvae.make_objective(model)(params, x.at[2, 3].set(jnp.nan), KEY)
    with pytest.raises(ValueError, match=r"shape \[batch, \*\(12,\)\], got \(6, 13\)"):
        jaxvae.make_objective(model)(params, jnp.zeros((6, 13)), KEY)
    with pytest.raises(ValueError, match="non-empty batch"):
        jaxvae.make_objective(model)(params, jnp.zeros((0, 12)), KEY)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        jaxvae.make_objective(model, "iwae", 0)
    with pytest.raises(ValueError, match="unknown objective 'vi'"):
        jaxvae.make_loss(model, "vi")
    with pytest.raises(ValueError, match="IWAE bound takes no options"):
        jaxvae.make_loss(model, "iwae", 5, beta=0.5)


@pytest.mark.parametrize("objective,k", [("elbo", 1), ("iwae", 5)])
def test_training_improves_the_bound(objective, k):
    """A few hundred Adam steps on a toy mixture of Bernoullis raise the test bound.

    At initialization the bound is about -16 * log 2 - KL = -11.1 nats; the data are 4
    prototypes with 5 % flips, whose entropy is 16 * H(0.05) + log 4 = 4.6 nats, so a
    trained model must get far closer. We require an improvement of at least 4 nats."""
    data = toy_data(jax.random.PRNGKey(0))
    train, test = data[:192], data[192:]
    model = jaxvae.iwae_mlp(event_shape=(16,), latent_dim=2, hidden=(32,))
    params = model.init_params(KEY)
    loss_fn = jaxvae.make_loss(model, objective, k)
    bound_fn = jax.jit(jaxvae.make_objective(model, "iwae", 50))
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, key):
        key_batch, key_loss = jax.random.split(key)
        batch = train[jax.random.choice(key_batch, train.shape[0], (32,), replace=False)]
        grads, _ = jax.grad(loss_fn, has_aux=True)(params, batch, key_loss)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    before = float(jnp.mean(bound_fn(params, test, KEY)))
    for i in range(300):
        params, opt_state = step(params, opt_state, jax.random.fold_in(KEY, i))
    after = float(jnp.mean(bound_fn(params, test, KEY)))
    assert np.isfinite(after)
    assert after - before > 4.0, (before, after)
