import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import LinearGaussian

import jaxvae
from jaxvae import evaluate, objectives

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def small():
    model = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=3, hidden=(16,))
    params = model.init_params(KEY)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (7, 12)) > 0.5).astype(jnp.float32)
    return model, params, x


class LinearGaussianVAE(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, sigma^2 I) with W, b as params, and
    q(z|x) = the exact posterior N(m, S) with its covariance scaled by ``inflation``
    (inflation = 1: every log-weight equals log p(x))."""

    data_dim: int
    latent_dim: int
    sigma: float
    inflation: float = 1.0

    def setup(self):
        self.W = self.param("W", nn.initializers.normal(1.0), (self.data_dim, self.latent_dim))
        self.b = self.param("b", nn.initializers.normal(1.0), (self.data_dim,))

    @property
    def event_shape(self):
        return (self.data_dim,)

    def prior(self):
        return distrax.MultivariateNormalDiag(jnp.zeros(self.latent_dim),
                                              jnp.ones(self.latent_dim))

    def _oracle(self):
        return LinearGaussian(self.W, self.b, self.sigma)

    def posterior(self, x):
        exact = self._oracle().posterior(x)
        return distrax.MultivariateNormalFullCovariance(
            exact.mean(), self.inflation * exact.covariance())

    def likelihood(self, z):
        return distrax.MultivariateNormalDiag(self.W @ z + self.b,
                                              jnp.full(self.data_dim, self.sigma))

    def __call__(self, x):
        return self.posterior(x)


@pytest.fixture(scope="module")
def linear_gaussian():
    oracle = LinearGaussian.random(jax.random.PRNGKey(3), data_dim=5, latent_dim=2, sigma=0.7)
    params = {"params": {"W": oracle.W, "b": oracle.b}}
    x = jax.jit(jax.vmap(oracle.sample_x))(jax.random.split(jax.random.PRNGKey(4), 64))
    exact = np.asarray(jax.jit(jax.vmap(oracle.log_marginal))(x))
    return params, x, exact


def direct_estimate(model, params, x, key, k, chunk):
    """The documented key scheme, computed in one shot: no scan, no running logsumexp."""
    sizes = [chunk] * (k // chunk) + ([k % chunk] if k % chunk else [])

    def per_example(x_i, key_i):
        q, prior, ll = jaxvae.model_terms(model, params, x_i)
        log_w = jnp.concatenate([objectives.log_weights(jax.random.fold_in(key_i, j), q, prior,
                                                        ll, m) for j, m in enumerate(sizes)])
        assert log_w.shape == (k,)
        return objectives.log_mean_exp(log_w)

    return np.asarray(jax.jit(jax.vmap(per_example))(x, jax.random.split(key, x.shape[0])))


@pytest.mark.parametrize("k,chunk", [(10, 4), (12, 4), (6, 100)])
def test_chunked_estimate_equals_direct_iwae(small, k, chunk):
    model, params, x = small
    key = jax.random.PRNGKey(7)
    got = evaluate.log_likelihood(model, params, x, key, k, sample_chunk=chunk, batch_size=4)
    assert got.shape == (7,) and got.dtype == np.float32
    np.testing.assert_allclose(got, direct_estimate(model, params, x, key, k, min(chunk, k)),
                               rtol=1e-5)
    if chunk >= k:  # a single chunk is exactly objectives.iwae_bound with key fold_in(key_i, 0)
        bound = jax.jit(jax.vmap(lambda x_i, k_i: jaxvae.iwae_bound(
            jax.random.fold_in(k_i, 0), *jaxvae.model_terms(model, params, x_i), k)))
        np.testing.assert_allclose(got, bound(x, jax.random.split(key, x.shape[0])), rtol=1e-6)


def test_exact_posterior_gives_exact_log_marginal(linear_gaussian):
    """With q = p(z|x) every log-weight is log p(x): the estimate is exact for any k."""
    params, x, exact = linear_gaussian
    model = LinearGaussianVAE(5, 2, 0.7)
    got = evaluate.log_likelihood(model, params, x[:10], KEY, 23, sample_chunk=5, batch_size=4)
    np.testing.assert_allclose(got, exact[:10], rtol=1e-5, atol=1e-4)


def test_estimate_rises_with_k_towards_log_marginal(linear_gaussian):
    """q with a 4x inflated covariance: E[L_k] increases with k and stays <= log p(x)."""
    params, x, exact = linear_gaussian
    model = LinearGaussianVAE(5, 2, 0.7, inflation=4.0)
    gaps = {}
    for k in (1, 10, 100):
        est = evaluate.log_likelihood(model, params, x, jax.random.PRNGKey(k), k,
                                      sample_chunk=25, batch_size=64)
        gap = exact - est   # >= 0 in expectation
        gaps[k] = (gap.mean(), gap.std() / math.sqrt(len(gap)))
    (g1, s1), (g10, s10), (g100, s100) = gaps[1], gaps[10], gaps[100]
    # KL(N(m, 4S) || N(m, S)) = d/2 (4 - 1 - log 4) = 1.614 nats is the k=1 gap exactly.
    np.testing.assert_allclose(g1, 2 / 2 * (4 - 1 - math.log(4)), atol=4 * s1)
    assert g1 > g10 + 3 * s10 > 0
    assert g10 > g100 > -3 * s100
    assert g100 < 0.05


def test_estimate_on_mlp_is_at_least_the_elbo(small):
    model, params, _ = small
    x = (jax.random.uniform(jax.random.PRNGKey(2), (64, 12)) > 0.5).astype(jnp.float32)
    # Sharpen the decoder so that the ELBO is visibly loose.
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: 8.0 * p if "decoder" in jax.tree_util.keystr(path) else p, params)
    l1 = evaluate.log_likelihood(model, params, x, jax.random.PRNGKey(11), 1, batch_size=64)
    l100 = evaluate.log_likelihood(model, params, x, jax.random.PRNGKey(12), 100,
                                   sample_chunk=50, batch_size=64)
    elbo = jax.jit(jaxvae.make_objective(model, "elbo", 1, analytic_kl=True))(params, x, KEY)
    se = np.std(l1 - l100) / 8.0
    assert l100.mean() > l1.mean() + 3 * se
    assert l100.mean() > float(jnp.mean(elbo))
    assert np.all(np.isfinite(l100))


def test_result_is_independent_of_batch_size_and_compiles_once(small):
    model, params, x = small
    key = jax.random.PRNGKey(5)
    fn = evaluate.make_log_likelihood_fn(model, 10, sample_chunk=4)
    assert evaluate.make_log_likelihood_fn(model, 10, sample_chunk=4) is fn
    before = fn._cache_size()      # another test file may have used an equal model
    by_4 = evaluate.log_likelihood(model, params, x, key, 10, sample_chunk=4, batch_size=4)
    # batches of 4 and the padded last batch share one compile
    assert fn._cache_size() <= before + 1
    by_7 = evaluate.log_likelihood(model, params, x, key, 10, sample_chunk=4, batch_size=7)
    by_100 = evaluate.log_likelihood(model, params, x, key, 10, sample_chunk=4, batch_size=100)
    np.testing.assert_allclose(by_4, by_7, rtol=1e-6)
    np.testing.assert_allclose(by_100, by_7, rtol=1e-6)
    assert by_4.shape == (7,)


def test_memory_does_not_grow_with_k():
    """XLA's buffer assignment for a batch of 8 at k=500 and k=5000 (chunks of 100) needs
    exactly the same temporary memory; drawing 5000 samples at once needs far more."""
    model = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=3, hidden=(16,))
    params = model.init_params(KEY)
    x = jnp.zeros((8, 12))
    keys = jax.random.split(KEY, 8)

    def temp_bytes(k, chunk):
        fn = evaluate.make_log_likelihood_fn(model, k, sample_chunk=chunk)
        return fn.lower(params, x, keys).compile().memory_analysis().temp_size_in_bytes

    small_k, big_k, one_shot = temp_bytes(500, 100), temp_bytes(5000, 100), temp_bytes(5000, 5000)
    assert small_k == big_k
    # One chunk of 5000 holds at least the [8, 5000, 12] logits in float32.
    assert one_shot >= 8 * 5000 * 12 * 4 > 10 * big_k


def test_progress_bar_runs(small, capsys):
    model, params, x = small
    got = evaluate.log_likelihood(model, params, x, KEY, 6, sample_chunk=100, batch_size=4,
                                  progress=True)
    assert got.shape == (7,)
    assert "k=6" in capsys.readouterr().err


def test_active_units_counts_dimensions_the_encoder_uses():
    model = jaxvae.iwae_mlp(event_shape=(6,), latent_dim=4, hidden=())
    params = model.init_params(KEY)
    kernel = np.array(jax.random.normal(KEY, (6, 4)))
    kernel[:, [1, 3]] = 0.0
    kernel[:, 2] *= 0.01          # varies, but Var < 0.01: inactive
    bias = np.array([0.3, -1.0, 0.5, 2.0], np.float32)
    params = jax.tree_util.tree_map(lambda p: p, params)
    params["params"]["encoder"]["loc"] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(1), 0.5, (50, 6)), np.float32)
    num, variances = evaluate.active_units(model, params, x, batch_size=16)
    expected = np.var(x.astype(np.float64) @ kernel + bias, axis=0)
    np.testing.assert_allclose(variances, expected, rtol=1e-5, atol=1e-12)
    assert variances[1] == 0.0 and variances[3] == 0.0
    assert 0 < variances[2] < 0.01 < variances[0]
    assert num == 1 and isinstance(num, int)
    assert evaluate.active_units(model, params, x, threshold=0.0)[0] == 2


def test_kl_per_dimension_sums_to_the_mean_kl(small):
    model, params, x = small
    per_dim = evaluate.kl_per_dimension(model, params, x, batch_size=3)
    assert per_dim.shape == (3,) and np.all(per_dim >= 0)
    kl = jax.jit(jax.vmap(
        lambda x_i: jaxvae.kl_divergence(*jaxvae.model_terms(model, params, x_i)[:2])))(x)
    np.testing.assert_allclose(per_dim.sum(), float(jnp.mean(kl)), rtol=1e-5)
    def moments(x_i):
        q = model.apply(params, x_i, method="posterior")
        return q.mean(), q.stddev()

    mean, std = (np.asarray(a, np.float64) for a in jax.vmap(moments)(x))
    manual = np.mean(0.5 * (std ** 2 + mean ** 2 - 1.0) - np.log(std), axis=0)
    np.testing.assert_allclose(per_dim, manual, rtol=1e-5)


def test_kl_per_dimension_needs_diagonal_gaussians(linear_gaussian):
    params, x, _ = linear_gaussian
    with pytest.raises(TypeError, match="diagonal Gaussian.*MultivariateNormalFullCovariance"):
        evaluate.kl_per_dimension(LinearGaussianVAE(5, 2, 0.7), params, x[:4])


def test_bad_input_is_named(small):
    model, params, x = small
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        evaluate.log_likelihood(model, params, x, KEY, 0)
    with pytest.raises(TypeError, match="num_samples must be a Python int"):
        evaluate.log_likelihood(model, params, x, KEY, 10.0)
    with pytest.raises(ValueError, match="sample_chunk must be >= 1, got 0"):
        evaluate.log_likelihood(model, params, x, KEY, 10, sample_chunk=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got -1"):
        evaluate.log_likelihood(model, params, x, KEY, 10, batch_size=-1)
    with pytest.raises(ValueError, match="contains 1 NaN"):
        evaluate.log_likelihood(model, params, x.at[1, 2].set(jnp.nan), KEY, 10)
    with pytest.raises(ValueError, match=r"shape \[batch, \*\(12,\)\], got \(7, 4, 3\)"):
        evaluate.log_likelihood(model, params, x.reshape(7, 4, 3), KEY, 10)
    with pytest.raises(ValueError, match=r"shape \[batch, \*\(12,\)\], got \(12,\)"):
        evaluate.active_units(model, params, x[0])
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        evaluate.active_units(model, params, x, threshold=-1.0)
    with pytest.raises(ValueError, match="contains 1 NaN"):
        evaluate.kl_per_dimension(model, params, x.at[0, 0].set(jnp.inf))
