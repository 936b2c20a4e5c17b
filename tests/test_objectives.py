import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import LinearGaussian

import jaxvae

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def model():
    return LinearGaussian.random(jax.random.PRNGKey(42))


@pytest.fixture(scope="module")
def x(model):
    return model.sample_x(jax.random.PRNGKey(7))


def wrong_posterior(model, x):
    """A diagonal Gaussian that is deliberately off the exact posterior."""
    exact = model.posterior(x)
    scale = jnp.sqrt(jnp.diag(exact.covariance()))
    return distrax.MultivariateNormalDiag(exact.mean() + 0.5 * scale, 1.5 * scale)


# --- closed-form KL ---------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 4, 16])
def test_gaussian_kl_matches_monte_carlo(dim):
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(dim), 4)
    q = distrax.MultivariateNormalDiag(jax.random.normal(k1, (dim,)),
                                       jnp.exp(0.3 * jax.random.normal(k2, (dim,))))
    p = distrax.MultivariateNormalDiag(0.5 * jax.random.normal(k3, (dim,)),
                                       jnp.exp(0.3 * jax.random.normal(k4, (dim,))))
    z, log_q = q.sample_and_log_prob(seed=KEY, sample_shape=(400_000,))
    samples = log_q - p.log_prob(z)
    mc, stderr = jnp.mean(samples), jnp.std(samples) / jnp.sqrt(samples.shape[0])
    exact = jaxvae.kl_divergence(q, p)
    assert abs(exact - mc) < 4 * stderr + 1e-4
    # and against distrax's own implementation
    np.testing.assert_allclose(exact, q.kl_divergence(p), rtol=1e-5, atol=1e-6)


def test_gaussian_kl_to_standard_normal_formula():
    mu, sigma = jnp.array([0.0, 1.0, -2.0]), jnp.array([1.0, 0.5, 2.0])
    expected = 0.5 * jnp.sum(mu ** 2 + sigma ** 2 - 1 - 2 * jnp.log(sigma))
    # [B] + [B, 1] must never silently broadcast inside our own array code.
    with jax.numpy_rank_promotion("raise"):
        np.testing.assert_allclose(jaxvae.gaussian_kl(mu, sigma), expected, rtol=1e-6)
        assert jaxvae.gaussian_kl(jnp.zeros(3), jnp.ones(3)) == 0.0
        batch = jaxvae.gaussian_kl(jnp.stack([mu, mu]), jnp.stack([sigma, sigma]))
    assert batch.shape == (2,)


def test_kl_independent_normal_equals_mvn_diag():
    loc, scale = jnp.array([0.3, -1.0]), jnp.array([0.5, 2.0])
    q1 = distrax.MultivariateNormalDiag(loc, scale)
    q2 = distrax.Independent(distrax.Normal(loc, scale), 1)
    prior = distrax.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))
    np.testing.assert_allclose(jaxvae.kl_divergence(q1, prior), jaxvae.kl_divergence(q2, prior))


# --- linear-Gaussian oracle ---------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_exact_posterior_gives_exact_log_marginal(model, x, seed):
    q, prior, ll = model.posterior(x), model.prior(), model.log_likelihood_fn(x)
    key = jax.random.PRNGKey(seed)
    log_px = model.log_marginal(x)
    log_w = jaxvae.log_weights(key, q, prior, ll, num_samples=64)
    np.testing.assert_allclose(log_w, jnp.full(64, log_px), rtol=1e-5, atol=2e-4)
    for bound in (jaxvae.elbo(key, q, prior, ll, 7), jaxvae.iwae_bound(key, q, prior, ll, 7)):
        np.testing.assert_allclose(bound, log_px, rtol=1e-5, atol=2e-4)


def test_iwae_rises_with_k_towards_log_marginal(model, x):
    q, prior, ll = wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x)
    log_px = float(model.log_marginal(x))
    keys = jax.random.split(KEY, 2000)
    means, stderrs = [], []
    for k in (1, 5, 50, 500):
        values = jax.jit(jax.vmap(lambda key: jaxvae.iwae_bound(key, q, prior, ll, k)))(keys)
        means.append(float(jnp.mean(values)))
        stderrs.append(float(jnp.std(values) / jnp.sqrt(len(keys))))
    gaps = [log_px - m for m in means]
    assert all(g > 0 for g in gaps), gaps          # a lower bound for every k
    for (m0, s0), (m1, s1) in zip(zip(means, stderrs), zip(means[1:], stderrs[1:])):
        assert m1 - m0 > 3 * np.hypot(s0, s1), (means, stderrs)
    assert gaps[0] > 0.3                          # q is really wrong ...
    assert gaps[-1] < 0.05 * gaps[0]               # ... yet IWAE_500 closes 95 % of the gap


def test_elbo_expectation_is_log_marginal_minus_kl_to_posterior(model, x):
    q, prior, ll = wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x)
    # ELBO = log p(x) - KL(q || p(z|x)); the KL between Gaussians is closed form.
    exact = model.posterior(x)
    q_full = distrax.MultivariateNormalFullCovariance(q.mean(), jnp.diag(q.variance()))
    expected = model.log_marginal(x) - q_full.kl_divergence(exact)
    values = jax.vmap(lambda key: jaxvae.elbo(key, q, prior, ll, 10))(jax.random.split(KEY, 4000))
    stderr = jnp.std(values) / jnp.sqrt(values.shape[0])
    assert abs(jnp.mean(values) - expected) < 4 * stderr
    # analytic KL: the same expectation
    values_a = jax.vmap(lambda key: jaxvae.elbo(key, q, prior, ll, 10, analytic_kl=True))(
        jax.random.split(KEY, 4000))
    assert abs(jnp.mean(values_a) - expected) < 4 * jnp.std(values_a) / jnp.sqrt(4000)


# --- identities ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_iwae_k1_equals_mc_elbo(model, x, seed):
    q, prior, ll = wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x)
    key = jax.random.PRNGKey(seed)
    np.testing.assert_allclose(jaxvae.iwae_bound(key, q, prior, ll, 1),
                               jaxvae.elbo(key, q, prior, ll, 1), rtol=1e-6)


def test_log_weights_decompose(model, x):
    q, prior, ll = wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x)
    log_w = jaxvae.log_weights(KEY, q, prior, ll, 6)
    z = q.sample(seed=KEY, sample_shape=(6,))
    expected = jnp.array([ll(zi) + prior.log_prob(zi) - q.log_prob(zi) for zi in z])
    np.testing.assert_allclose(log_w, expected, rtol=1e-5)


def test_beta_weights_the_kl(model, x):
    q, prior, ll = wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x)
    e1 = jaxvae.elbo(KEY, q, prior, ll, 3, analytic_kl=True, beta=1.0)
    e0 = jaxvae.elbo(KEY, q, prior, ll, 3, analytic_kl=True, beta=0.0)
    e2 = jaxvae.elbo(KEY, q, prior, ll, 3, analytic_kl=True, beta=2.0)
    kl = jaxvae.kl_divergence(q, prior)
    np.testing.assert_allclose(e0 - e1, kl, rtol=1e-5)
    np.testing.assert_allclose(e1 - e2, kl, rtol=1e-5)


def test_log_mean_exp_is_stable():
    log_w = jnp.array([-1000.0, -1000.0 + jnp.log(3.0)])
    with jax.numpy_rank_promotion("raise"):
        np.testing.assert_allclose(jaxvae.log_mean_exp(log_w), -1000.0 + jnp.log(2.0), rtol=1e-7)
        assert jaxvae.log_mean_exp(jnp.zeros((5, 3)), axis=0).shape == (3,)


def test_linear_annealing():
    assert float(jaxvae.linear_annealing(0, 100)) == 0.0
    assert float(jaxvae.linear_annealing(50, 100)) == 0.5
    assert float(jaxvae.linear_annealing(1000, 100, start=0.2)) == 1.0
    with pytest.raises(ValueError, match="warmup_steps"):
        jaxvae.linear_annealing(1, 0)


# --- jit / vmap ---------------------------------------------------------------------------

@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_jit_and_vmap_agree_with_plain_loop(model, objective):
    fn = {"elbo": jaxvae.elbo, "iwae": jaxvae.iwae_bound}[objective]
    xs = jax.vmap(model.sample_x)(jax.random.split(KEY, 4))

    def per_example(x, key):
        return fn(key, wrong_posterior(model, x), model.prior(), model.log_likelihood_fn(x), 5)

    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    loop = jnp.stack([per_example(x, k) for x, k in zip(xs, keys)])
    jitted_loop = jnp.stack([jax.jit(per_example)(x, k) for x, k in zip(xs, keys)])
    vmapped = jax.vmap(per_example)(xs, keys)
    jit_vmapped = jax.jit(jax.vmap(per_example))(xs, keys)
    for other in (jitted_loop, vmapped, jit_vmapped):
        np.testing.assert_allclose(other, loop, rtol=1e-5)


# --- bad input ------------------------------------------------------------------------------

def test_bad_num_samples(model, x):
    q, prior, ll = model.posterior(x), model.prior(), model.log_likelihood_fn(x)
    for fn in (jaxvae.elbo, jaxvae.iwae_bound, jaxvae.log_weights):
        with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
            fn(KEY, q, prior, ll, 0)
    with pytest.raises(TypeError, match="num_samples must be a Python int"):
        jaxvae.iwae_bound(KEY, q, prior, ll, 2.5)


def test_event_shape_mismatch(model, x):
    q = distrax.MultivariateNormalDiag(jnp.zeros(4), jnp.ones(4))
    with pytest.raises(ValueError, match=r"event shape \(4,\) but the prior has \(3,\)"):
        jaxvae.iwae_bound(KEY, q, model.prior(), model.log_likelihood_fn(x), 2)


def test_batched_q_rejected(model, x):
    q = distrax.MultivariateNormalDiag(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="batch shape"):
        jaxvae.elbo(KEY, q, model.prior(), model.log_likelihood_fn(x), 2)


def test_non_scalar_log_likelihood(model, x):
    with pytest.raises(ValueError, match="must return a scalar"):
        jaxvae.elbo(KEY, model.posterior(x), model.prior(), lambda z: z, 2)


def test_analytic_kl_needs_closed_form(model, x):
    q = distrax.Transformed(model.prior(), distrax.Block(distrax.Tanh(), 1))
    with pytest.raises(TypeError, match="analytic_kl=False"):
        jaxvae.elbo(KEY, q, model.prior(), model.log_likelihood_fn(x), 2, analytic_kl=True)
