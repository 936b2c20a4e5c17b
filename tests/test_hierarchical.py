import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_two_layer(event_shape=(12,), z1_dim=4, z2_dim=2, hidden1=(16,),
                                  hidden2=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (5, 12)) > 0.5).astype(jnp.float32)
    return model, params, x


def test_paper_architecture():
    model = jaxvae.iwae_two_layer()
    params = model.init_params(KEY)
    s = jax.tree_util.tree_map(lambda a: a.shape, params)
    assert s["q_z1"]["params"]["MLP_0"]["Dense_0"]["kernel"] == (784, 200)
    assert s["q_z1"]["params"]["loc"]["kernel"] == (200, 100)
    assert s["q_z2"]["params"]["MLP_0"]["Dense_0"]["kernel"] == (100, 100)
    assert s["q_z2"]["params"]["loc"]["kernel"] == (100, 50)
    assert s["p_z1"]["params"]["MLP_0"]["Dense_0"]["kernel"] == (50, 100)
    assert s["p_z1"]["params"]["loc"]["kernel"] == (100, 100)
    assert s["decoder"]["params"]["MLP_0"]["Dense_0"]["kernel"] == (100, 200)
    assert s["decoder"]["params"]["out"]["kernel"] == (200, 784)
    assert model.latent_dim == 150


def test_log_weights_include_both_layers(small):
    model, params, x = small
    q, prior, ll = jaxvae.model_terms(model, params, x[0])
    log_w = jaxvae.log_weights(KEY, q, prior, ll, 3)
    z = q.sample(seed=KEY, sample_shape=(3,))
    z1, z2 = z[:, :4], z[:, 4:]
    # every factor by hand from the four networks
    q1 = model.q_z1.apply(params["q_z1"], x[0])
    q2 = model.q_z2.apply(params["q_z2"], z1)
    p1 = model.p_z1.apply(params["p_z1"], z2)
    logits = model.decoder.apply(params["decoder"], z1).distribution.logits
    log_px = jnp.sum(x[0] * logits - jax.nn.softplus(logits), axis=-1)
    log_pz2 = -0.5 * jnp.sum(z2 ** 2, axis=-1) - np.log(2 * np.pi)
    expected = log_px + p1.log_prob(z1) + log_pz2 - q1.log_prob(z1) - q2.log_prob(z2)
    np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-4)


def test_chain_sample_log_prob_consistent_and_normalized():
    model = jaxvae.iwae_two_layer(event_shape=(3,), z1_dim=1, z2_dim=1, hidden1=(4,),
                                  hidden2=(4,))
    params = model.init_params(KEY)
    q = model.posterior(params, jnp.array([1.0, 0.0, 1.0]))
    z, log_q = q.sample_and_log_prob(seed=KEY, sample_shape=(50,))
    np.testing.assert_allclose(q.log_prob(z), log_q, rtol=1e-5)
    for dist in (q, model.prior(params)):
        grid = jnp.linspace(-9, 9, 601)
        za, zb = jnp.meshgrid(grid, grid, indexing="ij")
        density = jnp.exp(dist.log_prob(jnp.stack([za.ravel(), zb.ravel()], -1)))
        total = float(jnp.sum(density) * (grid[1] - grid[0]) ** 2)
        assert abs(total - 1.0) < 2e-3, total


def test_iwae_k1_is_elbo_and_bound_rises(small):
    model, params, x = small
    key = jax.random.PRNGKey(4)
    np.testing.assert_allclose(jaxvae.make_objective(model, "iwae", 1)(params, x, key),
                               jaxvae.make_objective(model, "elbo", 1)(params, x, key), rtol=1e-6)
    keys = jax.random.split(key, 200)
    means = [float(jnp.mean(jax.vmap(lambda k: jax.jit(jaxvae.make_objective(
        model, "iwae", n))(params, x, k))(keys))) for n in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means


def test_stop_gradient_reaches_the_conditional_network(small):
    model, params, x = small

    def log_q(p, stop):
        q = model.posterior(p, x[0])
        if stop:
            q = jax.tree_util.tree_map(jax.lax.stop_gradient, q)
        return q.log_prob(jnp.ones(6))

    grads = jax.grad(log_q)(params, False)
    assert float(jnp.abs(grads["q_z2"]["params"]["loc"]["kernel"]).sum()) > 0
    stopped = jax.grad(log_q)(params, True)
    assert all(float(jnp.abs(g).sum()) == 0 for g in jax.tree_util.tree_leaves(stopped))


def test_training_through_both_layers(small):
    model, _, _ = small
    import optax
    data = (jax.random.uniform(jax.random.PRNGKey(2), (64, 12)) > 0.7).astype(jnp.float32)
    params = model.init_params(KEY)
    loss_fn = jaxvae.make_loss(model, "iwae", 5)
    tx = optax.adam(1e-2)
    state = jaxvae.create_train_state(params, tx, KEY)
    step = jaxvae.make_train_step(loss_fn, tx)
    bound = jax.jit(jaxvae.make_objective(model, "iwae", 20))
    before = float(jnp.mean(bound(state.params, data, KEY)))
    for _ in range(150):
        state, _ = step(state, data)
    after = float(jnp.mean(bound(state.params, data, KEY)))
    # starts near 12 log 2 = 8.3 nats; the pixels are 30 % on, entropy <= 12 H(0.3) = 7.3
    assert after > before + 1.0, (before, after)


def test_unknown_method(small):
    model, params, _ = small
    with pytest.raises(ValueError, match="unknown method 'encode'"):
        model.apply(params, jnp.zeros(12), method="encode")
