import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae import likelihoods

KEY = jax.random.PRNGKey(0)


def test_bernoulli_log_prob_matches_formula_and_is_stable():
    logits = jnp.array([[-100.0, -3.0], [0.0, 100.0]])
    x = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    dist = likelihoods.Bernoulli()(logits)
    assert dist.event_shape == (2, 2)
    # log p = x * l - softplus(l), exact even where sigmoid(l) rounds to 0 or 1
    expected = jnp.sum(x * logits - jax.nn.softplus(logits))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-6)
    assert np.isclose(float(dist.log_prob(x)), -200.0 - np.log1p(np.exp(-3.0)) - np.log(2.0),
                      rtol=1e-6)


def test_fused_bernoulli_equals_distrax():
    logits = jax.random.normal(KEY, (3, 50)) * 8
    x = jax.random.uniform(jax.random.PRNGKey(1), (3, 50))      # [0, 1], not only binary
    import distrax
    ours = likelihoods.BernoulliLogits(logits, 1)
    reference = distrax.Independent(distrax.Bernoulli(logits=logits), 1)
    np.testing.assert_allclose(ours.log_prob(x), reference.log_prob(x), rtol=1e-5, atol=1e-4)
    grad = jax.grad(lambda l: likelihoods.BernoulliLogits(l, 1).log_prob(x).sum())(logits)
    np.testing.assert_allclose(grad, x - jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6)
    grad_x = jax.grad(lambda v: likelihoods.BernoulliLogits(logits, 1).log_prob(v).sum())(x)
    np.testing.assert_allclose(grad_x, logits, rtol=1e-6)
    # a [28, 28]-style event, broadcast against a batch of logits
    lg = jax.random.normal(KEY, (5, 4, 6))
    xi = (jax.random.uniform(KEY, (4, 6)) > 0.5).astype(jnp.float32)
    np.testing.assert_allclose(likelihoods.BernoulliLogits(lg, 2).log_prob(xi),
                               distrax.Independent(distrax.Bernoulli(logits=lg), 2).log_prob(xi),
                               rtol=1e-5)


def test_fixed_gaussian_is_l2_distortion():
    head = likelihoods.Gaussian(scale=0.5)
    mean = jax.random.normal(KEY, (4, 3))
    x = jnp.ones((4, 3))
    dist = head(mean)
    expected = -jnp.sum((x - mean) ** 2) / (2 * 0.25) - 12 * np.log(0.5 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="scale must be positive"):
        likelihoods.Gaussian(scale=0.0)


def test_learned_gaussian_uses_softplus_scale():
    head = likelihoods.LearnedGaussian()
    assert head.raw_shape((5,)) == (5, 2)
    raw = jnp.stack([jnp.zeros(5), jnp.linspace(-3, 3, 5)], axis=-1)
    dist = head(raw)
    scale = jax.nn.softplus(raw[:, 1])
    x = jnp.full(5, 0.3)
    expected = jnp.sum(-0.5 * (x / scale) ** 2 - jnp.log(scale) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-5)


def test_categorical_head():
    head = likelihoods.Categorical(num_classes=7)
    assert head.raw_shape((4,)) == (4, 7)
    logits = jax.random.normal(KEY, (4, 7))
    tokens = jnp.array([0, 6, 3, 3])
    dist = head(logits)
    assert dist.event_shape == (4,)
    expected = jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(4), tokens])
    np.testing.assert_allclose(dist.log_prob(tokens), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="num_classes"):
        likelihoods.Categorical(num_classes=1)


def test_get_head():
    assert likelihoods.get_head("gaussian", scale=2.0) == likelihoods.Gaussian(2.0)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        likelihoods.get_head("poisson")
