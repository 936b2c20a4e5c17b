"""Every preset, and a model written without jaxvae in mind, through the model contract."""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae

KEY = jax.random.key(0)
PRESETS = {
    "iwae_mlp": lambda: jaxvae.iwae_mlp(event_shape=(3, 4), latent_dim=2, hidden=(5,)),
    "kingma_welling_mlp": lambda: jaxvae.kingma_welling_mlp(event_shape=(12,), latent_dim=2,
                                                            hidden=5),
    "iwae_two_layer": lambda: jaxvae.iwae_two_layer(event_shape=(12,), z1_dim=3, z2_dim=2,
                                                    hidden1=(5,), hidden2=(4,)),
    "flow_vae_planar": lambda: jaxvae.flow_vae(event_shape=(12,), latent_dim=2, hidden=(5,),
                                               flow="planar", num_flows=2),
    "flow_vae_iaf": lambda: jaxvae.flow_vae(event_shape=(12,), latent_dim=2, hidden=(5,),
                                            flow="iaf", num_flows=1, flow_hidden=4,
                                            context_dim=2),
    "linear_gaussian": lambda: jaxvae.LinearGaussianVAE(data_dim=12, latent_dim=2),
    "sentence_vae": lambda: jaxvae.sentence_vae(9, max_length=3, embed_dim=4, hidden=5,
                                                latent_dim=2, word_keep=0.5),
}


class OwnVAE(nn.Module):
    """A VAE written as a plain Flax module; the contract's methods are all it adds."""

    latent_dim: int = 2
    event_shape = (12,)
    inference_networks = ("encoder", "encoder_scale")

    def setup(self):
        self.encoder = nn.Dense(self.latent_dim)
        self.encoder_scale = nn.Dense(self.latent_dim)
        self.decoder = nn.Dense(12)

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def posterior(self, x):
        return distrax.Independent(distrax.Normal(
            self.encoder(x), jax.nn.softplus(self.encoder_scale(x)) + 1e-3), 1)

    def prior(self):
        zeros = jnp.zeros(self.latent_dim)
        return distrax.Independent(distrax.Normal(zeros, zeros + 1.0), 1)

    def likelihood(self, z):
        return distrax.Independent(distrax.Bernoulli(logits=self.decoder(z)), 1)

    def __call__(self, x):
        return self.likelihood(self.posterior(x).mean())

    def init_params(self, key):
        return self.init(key, jnp.zeros(self.event_shape))


ALL = {**PRESETS, "own_flax_module": OwnVAE}


@pytest.fixture(scope="module", params=list(ALL))
def model_and_params(request):
    model = ALL[request.param]()
    return model, model.init_params(KEY)


def data(model, n=3):
    if isinstance(model, jaxvae.SentenceVAE):    # <bos> w1 w2 <eos> <pad>, words 4..V-1
        words = jax.random.randint(jax.random.key(1), (n, 2), 4, model.vocab_size)
        rows = jnp.concatenate([jnp.full((n, 1), 2), words, jnp.full((n, 1), 3),
                                jnp.zeros((n, model.event_shape[0] - 4), int)], axis=1)
        return rows.astype(jnp.int32)
    x = jax.random.bernoulli(jax.random.key(1), 0.5, (n, *model.event_shape))
    return x.astype(jnp.float32)


def test_implements_the_protocol(model_and_params):
    model, params = model_and_params
    assert isinstance(model, jaxvae.Model)
    assert len(model.latent_shape) == 1 and model.latent_shape[0] > 0
    groups = jaxvae.split_params(model, params)
    assert jaxvae.merge_params(groups) == jax.tree_util.tree_map(lambda a: a, params)


def test_model_terms_have_the_declared_shapes(model_and_params):
    model, params = model_and_params
    x = data(model)[0]
    q, prior, log_likelihood = jaxvae.model_terms(model, params, x)
    assert tuple(q.event_shape) == tuple(model.latent_shape) == tuple(prior.event_shape)
    assert q.batch_shape == () and prior.batch_shape == ()
    samples = jaxvae.sample_terms(KEY, q, prior, log_likelihood, 4)
    assert samples.z.shape == (4, *model.latent_shape)
    for a in (samples.log_likelihood, samples.log_prior, samples.log_q):
        assert a.shape == (4,) and bool(jnp.all(jnp.isfinite(a)))
    bound = jaxvae.bind(model, params)
    assert tuple(bound.likelihood(samples.z[0]).event_shape) == tuple(model.event_shape)
    with pytest.raises(ValueError, match="shape"):
        jaxvae.model_terms(model, params, x[:-1])


def test_losses_and_estimators_run_on_ordinary_params(model_and_params):
    model, params = model_and_params
    x = data(model)
    value, info = jax.jit(jaxvae.make_loss(model, "iwae", 2))(params, x, KEY)
    assert np.isfinite(float(value)) and np.isclose(value, -info["bound"])
    loss = jaxvae.make_loss(model, None, 2, estimator="stl")
    grads = jax.jit(jax.grad(lambda p: loss(p, x, KEY)[0]))(params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_iwae_with_one_sample_is_the_elbo(model_and_params):
    model, params = model_and_params
    x = data(model)
    both = jax.jit(lambda p: (jaxvae.make_objective(model, "iwae", 1)(p, x, KEY),
                              jaxvae.make_objective(model, "elbo", 1)(p, x, KEY)))
    np.testing.assert_allclose(*both(params), rtol=1e-5)


def test_a_batch_may_be_a_dict():
    model = PRESETS["iwae_mlp"]()
    params, x = model.init_params(KEY), data(model)
    bound = jaxvae.make_objective(model, "iwae", 2)
    np.testing.assert_allclose(bound(params, {"x": x}, KEY), bound(params, x, KEY))
    with pytest.raises(ValueError, match="'x' entry"):
        bound(params, {"images": x}, KEY)
