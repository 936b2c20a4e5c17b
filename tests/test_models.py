import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import likelihoods

KEY = jax.random.PRNGKey(0)


def shapes(params):
    return jax.tree_util.tree_map(lambda a: a.shape, params)["params"]


def test_iwae_preset_architecture():
    model = jaxvae.iwae_mlp()
    s = shapes(model.init_params(KEY))
    assert s["encoder"]["MLP_0"]["Dense_0"]["kernel"] == (784, 200)
    assert s["encoder"]["MLP_0"]["Dense_1"]["kernel"] == (200, 200)
    assert s["encoder"]["loc"]["kernel"] == (200, 50)
    assert s["decoder"]["MLP_0"]["Dense_0"]["kernel"] == (50, 200)
    assert s["decoder"]["out"]["kernel"] == (200, 784)
    n = sum(a.size for a in jax.tree_util.tree_leaves(model.init_params(KEY)))
    # 784*200+200 + 200*200+200 + 2*(200*50+50) | 50*200+200 + 200*200+200 + 200*784+784
    assert n == (157000 + 40200 + 20100) + (10200 + 40200 + 157584)


def test_kingma_welling_preset():
    s = shapes(jaxvae.kingma_welling_mlp(latent_dim=10).init_params(KEY))
    assert s["encoder"]["MLP_0"]["Dense_0"]["kernel"] == (784, 500)
    assert s["decoder"]["out"]["kernel"] == (500, 784)
    assert s["encoder"]["loc"]["kernel"] == (500, 10)


@pytest.mark.parametrize("scale", ["exp", "softplus"])
def test_encoder_gives_positive_scales_and_batches(scale):
    enc = jaxvae.GaussianEncoder((16,), 3, scale=scale, event_ndims=2)
    x = jax.random.normal(KEY, (5, 4, 4)) * 30
    params = enc.init(KEY, x[0])
    q = enc.apply(params, x)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    assert bool(jnp.all(q.stddev() > 0))
    q0 = enc.apply(params, x[0])
    np.testing.assert_allclose(q0.mean(), q.mean()[0], rtol=1e-5, atol=1e-6)


def test_decoder_heads_shape_the_output():
    for head, event in [(likelihoods.Bernoulli(), (6, 2)),
                        (likelihoods.LearnedGaussian(), (3,)),
                        (likelihoods.Categorical(5), (4,))]:
        dec = jaxvae.MLPDecoder((8,), event, head)
        params = dec.init(KEY, jnp.zeros(2))
        dist = dec.apply(params, jnp.ones(2))
        assert dist.event_shape == event
        batched = dec.apply(params, jnp.ones((7, 2)))
        assert batched.batch_shape == (7,) and batched.event_shape == event


def test_model_terms_equal_manual_composition():
    model = jaxvae.iwae_mlp(event_shape=(10,), latent_dim=2, hidden=(8,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(KEY, (10,)) > 0.5).astype(jnp.float32)
    q, prior, ll = jaxvae.model_terms(model, params, x)
    z = jnp.array([0.3, -1.0])
    logits = model.apply(params, z, method="likelihood").distribution.logits
    np.testing.assert_allclose(ll(z), jnp.sum(x * logits - jax.nn.softplus(logits)), rtol=1e-5)
    np.testing.assert_allclose(prior.log_prob(z), -0.5 * jnp.sum(z ** 2) - np.log(2 * np.pi),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"x has shape \(11,\).*\(10,\)"):
        jaxvae.model_terms(model, params, jnp.zeros(11))


def test_stop_gradient_on_the_posterior_stops_every_path():
    """STL/DReG evaluate log q with stopped parameters: tree_map(stop_gradient, q) must
    leave no gradient path to the encoder (MultivariateNormalDiag would leak one)."""
    enc = jaxvae.GaussianEncoder((8,), 3)
    params = enc.init(KEY, jnp.ones(4))
    z = jnp.array([0.5, -1.0, 2.0])

    def log_q(p, stop):
        q = enc.apply(p, jnp.ones(4))
        q = jax.tree_util.tree_map(jax.lax.stop_gradient, q) if stop else q
        return q.log_prob(z)

    live = jax.grad(log_q)(params, False)
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(live)) > 0
    stopped = jax.grad(log_q)(params, True)
    assert all(float(jnp.abs(g).sum()) == 0 for g in jax.tree_util.tree_leaves(stopped))
