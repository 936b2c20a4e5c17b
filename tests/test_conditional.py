"""The conditional VAE: q(z|x, c), p(z|c), p(x|z, c) through the model contract.

The oracle is a conditional linear-Gaussian model, p(z) = N(0, I), p(x|z, c) = N(W z + V c
+ b, sigma^2 I): then p(x|c) = N(V c + b, W W^T + sigma^2 I) and p(z|x, c) = N(S W^T (x - V c
- b) / sigma^2, S), S = (I + W^T W / sigma^2)^-1, which a linear encoder of [x, c]
represents exactly when W has orthogonal columns. Every log-weight then equals log p(x|c).
"""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae.models import ConditionalVAE, diag_gaussian

KEY = jax.random.PRNGKey(0)
D, LATENT, C, SIGMA = 5, 2, 3, 0.6


class LinearEncoder(nn.Module):
    latent_dim: int

    @nn.compact
    def __call__(self, h):
        A = self.param("A", nn.initializers.normal(0.3), (self.latent_dim, h.shape[-1]))
        log_scale = self.param("log_scale", nn.initializers.zeros, (self.latent_dim,))
        return diag_gaussian(A @ h, jnp.exp(log_scale))


class LinearDecoder(nn.Module):
    event_shape: tuple

    @nn.compact
    def __call__(self, h):
        W = self.param("W", nn.initializers.normal(1.0), (self.event_shape[0], h.shape[-1]))
        b = self.param("b", nn.initializers.normal(1.0), self.event_shape)
        mean = h @ W.T + b
        return distrax.Independent(distrax.Normal(mean, SIGMA), 1)


def exact_model():
    """(model, params, W, V, b) with the encoder equal to the exact posterior."""
    model = ConditionalVAE(LinearEncoder(LATENT), LinearDecoder((D,)), C)
    q, _ = jnp.linalg.qr(jax.random.normal(KEY, (D, LATENT)))
    W = q * jnp.array([0.8, 1.7])
    V = jax.random.normal(jax.random.PRNGKey(1), (D, C))
    b = jax.random.normal(jax.random.PRNGKey(2), (D,))
    S = 1.0 / (1.0 + jnp.sum(W ** 2, axis=0) / SIGMA ** 2)          # diagonal covariance
    gain = S[:, None] * W.T / SIGMA ** 2                              # m = gain (x - V c - b)
    # the encoder sees [x, c, 1]? it sees [x, c]: fold b into the c part with a one-hot c
    A = jnp.concatenate([gain, -gain @ (V + b[:, None])], axis=1)     # one-hot c: sum c = 1
    params = {"params": {"encoder": {"A": A, "log_scale": 0.5 * jnp.log(S)},
                         "decoder": {"W": jnp.concatenate([W, V], axis=1), "b": b}}}
    return model, params, W, V, b


def exact_log_marginal(W, V, b, x, c_onehot):
    cov = W @ W.T + SIGMA ** 2 * jnp.eye(D)
    return distrax.MultivariateNormalFullCovariance(c_onehot @ V.T + b, cov).log_prob(x)


@pytest.fixture(scope="module")
def linear():
    model, params, W, V, b = exact_model()
    labels = np.array([0, 1, 2, 1, 0, 2])
    onehot = jax.nn.one_hot(labels, C)
    z = jax.random.normal(jax.random.PRNGKey(3), (len(labels), LATENT))
    x = z @ W.T + onehot @ V.T + b + SIGMA * jax.random.normal(jax.random.PRNGKey(4),
                                                                (len(labels), D))
    return model, params, np.asarray(x), labels, exact_log_marginal(W, V, b, x, onehot)


def test_exact_posterior_makes_every_bound_log_p_x_given_c(linear):
    model, params, x, labels, truth = linear
    for objective, k in (("elbo", 1), ("iwae", 4)):
        bound = jaxvae.make_objective(model, objective, k)(params, (x, labels), KEY)
        np.testing.assert_allclose(bound, truth, rtol=1e-5, atol=1e-4)
    estimate = jaxvae.log_likelihood(model, params, x, KEY, 3, condition=labels)
    np.testing.assert_allclose(estimate, truth, rtol=1e-5, atol=1e-4)


def test_a_label_and_its_one_hot_vector_are_the_same_condition(linear):
    model, params, x, labels, truth = linear
    onehot = np.asarray(jax.nn.one_hot(labels, C))
    np.testing.assert_allclose(jaxvae.log_likelihood(model, params, x, KEY, 3, condition=onehot),
                               truth, rtol=1e-5, atol=1e-4)


def test_every_label_is_scored_and_the_wrong_ones_are_worse(linear):
    model, params, x, labels, truth = linear
    table = jaxvae.condition_log_likelihoods(model, params, x, KEY, C, num_samples=2)
    assert table.shape == (len(labels), C)
    np.testing.assert_allclose(table[np.arange(len(labels)), labels], truth, rtol=1e-5,
                               atol=1e-4)
    model_, _, W, V, b = exact_model()
    for c in range(C):
        onehot = jax.nn.one_hot(np.full(len(labels), c), C)
        np.testing.assert_allclose(table[:, c], exact_log_marginal(W, V, b, x, onehot),
                                   rtol=1e-5, atol=1e-4)


@pytest.mark.usefixtures("fast_compilation")
def test_iwae_with_one_sample_is_the_elbo_and_estimators_take_the_condition():
    model = jaxvae.conditional_mlp((3, 3), C, 2, (8,), prior="learned")
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(5), (4, 3, 3)) > 0.5).astype(jnp.float32)
    batch = {"x": x, "condition": jnp.array([0, 2, 1, 1])}
    elbo = jaxvae.make_objective(model, "elbo", 1)(params, batch, KEY)
    np.testing.assert_allclose(jaxvae.make_objective(model, "iwae", 1)(params, batch, KEY),
                               elbo, rtol=1e-6)
    iwae5 = jaxvae.make_objective(model, "iwae", 5)(params, batch, KEY)
    for name in ("stl", "dreg", "score_function", "rws", "wake_sleep"):
        iwae = jaxvae.estimators.get_estimator(name).objective == "iwae"
        loss = jaxvae.make_loss(model, None, 5 if iwae else 1, estimator=name)
        value, grads = jax.jit(jax.value_and_grad(lambda p: loss(p, batch, KEY)[0]))(params)
        expected = -(iwae5 if iwae else elbo).mean()
        np.testing.assert_allclose(value, expected, rtol=1e-5)      # surrogate = objective
        assert "prior_net" in grads["params"]
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_the_condition_reaches_encoder_prior_and_decoder():
    model = jaxvae.conditional_mlp((3, 3), C, 2, (8,), prior="learned")
    params = model.init_params(KEY)
    x = jnp.ones((3, 3))
    z = jnp.array([0.3, -0.2])
    for method, args in (("posterior", (x,)), ("prior", ()), ("likelihood", (z,))):
        a = model.apply(params, *args, 0, method=method).mean()
        b = model.apply(params, *args, 2, method=method).mean()
        assert not np.allclose(a, b), method


def test_learned_prior_kl_matches_monte_carlo():
    model = jaxvae.conditional_mlp((3, 3), C, 2, (8,), prior="learned")
    params = model.init_params(KEY)
    params = jax.tree_util.tree_map(lambda p: p + 0.3, params)   # a prior away from N(0, I)
    q, prior, _ = jaxvae.model_terms(model, params, jnp.ones((3, 3)), condition=2)
    assert not np.allclose(prior.mean(), 0.0, atol=0.1)
    z, log_q = q.sample_and_log_prob(seed=KEY, sample_shape=(200000,))
    samples = log_q - prior.log_prob(z)
    stderr = float(jnp.std(samples)) / np.sqrt(samples.shape[0])
    np.testing.assert_allclose(jaxvae.kl_divergence(q, prior), jnp.mean(samples),
                               atol=5 * stderr)


def test_bad_conditions_are_named():
    model = jaxvae.conditional_mlp((3, 3), C, 2, (8,))
    params = model.init_params(KEY)
    x = jnp.zeros((2, 3, 3))
    bound = jaxvae.make_objective(model, "elbo", 1)
    with pytest.raises(ValueError, match="needs a condition"):
        bound(params, x, KEY)
    with pytest.raises(ValueError, match=r"vector \[3\]"):
        bound(params, (x, jnp.zeros((2, 4))), KEY)
    with pytest.raises(ValueError, match="integer label"):
        bound(params, (x, jnp.zeros(2)), KEY)
    with pytest.raises(ValueError, match="one row per example"):
        jaxvae.log_likelihood(model, params, x, KEY, 2, condition=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="prior must be one of"):
        jaxvae.conditional_mlp((3, 3), C, prior="mixture")
