"""Gradient variance, SNR and the minibatch covariance decomposition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import LinearGaussianVAE, flat_draws, perturb

import jaxvae
from jaxvae import variance

MODEL = LinearGaussianVAE()


@pytest.fixture(scope="module")
def setup():
    params = MODEL.exact_params(jax.random.key(0))
    x = jax.vmap(lambda k: MODEL.sample_x(params, k))(jax.random.split(jax.random.key(1), 2))
    groups = jaxvae.split_params(MODEL, params)
    return groups, x


_GRAD_FNS = {}


def grad_fn(name, k=2):
    """One gradient function per (estimator, k), so that its compilation is reused."""
    if (name, k) not in _GRAD_FNS:
        _GRAD_FNS[name, k] = jaxvae.estimator_grad(jaxvae.make_estimator(MODEL, name, k))
    return _GRAD_FNS[name, k]


def test_gradient_stats_match_direct_moments(setup):
    groups, x = setup
    off = jaxvae.ParamGroups(perturb(groups.inference, jax.random.key(2), 0.3), groups.generative)
    fn = grad_fn("iwae", 3)
    key = jax.random.key(3)
    stats = jaxvae.gradient_stats(fn, off, x, key, num_draws=50, chunk=16)   # 16+16+16+2
    draws = jax.vmap(fn, in_axes=(None, None, 0))(off, x, jax.random.split(key, 50))
    for part in ("inference", "generative"):
        d = flat_draws(getattr(draws, part))
        np.testing.assert_allclose(variance._flat(getattr(stats.mean, part)), d.mean(0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variance._flat(getattr(stats.variance, part)),
                                   d.var(0, ddof=1), rtol=1e-4, atol=1e-8)
    summary = jaxvae.summarize(stats)
    d = flat_draws(draws.inference)
    ratio = np.abs(d.mean(0)) / d.std(0, ddof=1)
    assert summary["inference"]["num_params"] == d.shape[1] == 21
    np.testing.assert_allclose(summary["inference"]["mean_snr"], ratio.mean(), rtol=1e-4)
    np.testing.assert_allclose(summary["inference"]["total_variance"], d.var(0, ddof=1).sum(),
                               rtol=1e-4)
    snr = variance.snr(stats)
    np.testing.assert_allclose(variance._flat(snr.inference), ratio, rtol=1e-4)


def test_norm_snr_removes_the_noise_floor():
    """Pure noise (E g = 0): per-parameter SNR is floored near sqrt(2 / (pi M)), the
    debiased norm SNR is not; with a real signal both see it."""
    def noise(params, x, key):
        return {"a": jax.random.normal(key, (200,)) + params}
    for signal, expect_zero in [(0.0, True), (0.5, False)]:
        stats = jaxvae.gradient_stats(noise, signal, None, jax.random.key(0), num_draws=400)
        s = jaxvae.summarize(stats)["a"]
        if expect_zero:
            assert 0.02 < s["mean_snr"] < 0.06          # the floor, about 0.04
            assert s["norm_snr"] < 0.02
        else:
            assert abs(s["mean_snr"] - 0.5) < 0.1
            assert abs(s["norm_snr"] - 0.5) < 0.05


def test_score_function_variance_is_orders_above_reparameterization(setup):
    groups, x = setup
    off = jaxvae.ParamGroups(perturb(groups.inference, jax.random.key(2), 0.3), groups.generative)
    key = jax.random.key(4)
    var = {name: jaxvae.summarize(jaxvae.gradient_stats(grad_fn(name, 1), off, x, key, 300))
           ["inference"]["total_variance"] for name in ("score_function", "reparam", "stl")}
    assert var["score_function"] > 10 * var["reparam"]
    assert var["stl"] < var["reparam"]


def test_stl_variance_vanishes_as_q_approaches_the_posterior(setup):
    """Var of the STL inference gradient shrinks like t^2 as phi = phi* + t * delta -> phi*;
    the plain reparameterized gradient's does not."""
    groups, x = setup
    delta = jax.tree_util.tree_map(lambda a: a - a, groups.inference)
    delta = perturb(delta, jax.random.key(5), 0.3)
    out = {}
    for t in (1.0, 0.1, 0.0):
        phi = jax.tree_util.tree_map(lambda a, d: a + t * d, groups.inference, delta)
        g = jaxvae.ParamGroups(phi, groups.generative)
        out[t] = {name: jaxvae.summarize(jaxvae.gradient_stats(
            grad_fn(name, 1), g, x, jax.random.key(6), 200))["inference"]["total_variance"]
            for name in ("stl", "reparam")}
    assert out[0.1]["stl"] < 0.05 * out[1.0]["stl"]
    assert out[0.0]["stl"] < 1e-9
    assert out[0.0]["reparam"] > 0.3 * out[1.0]["reparam"]


def test_minibatch_covariance_closed_form():
    """L_i = x_I + noise over minibatches of M drawn without replacement from N values:
    Var[L_i] = s^2 + sigma^2 and Cov[L_i, L_j] = c - s^2 / (N - 1), with c = sigma^2 for
    noise shared by the minibatch and c = 0 for independent noise (s^2: population
    variance of the data)."""
    data = jnp.linspace(-2.0, 2.0, 40)
    n, m, sigma = 40, 8, 0.5
    s2 = float(jnp.var(data))

    def shared(params, xb, key):
        return {"v": xb + sigma * jax.random.normal(key, ())}

    def independent(params, xb, key):
        return {"v": xb + sigma * jax.random.normal(key, xb.shape)}

    for fn, c in [(shared, sigma ** 2), (independent, 0.0)]:
        r = jaxvae.minibatch_covariance(fn, None, data, jax.random.key(0), batch_size=m,
                                        num_draws=20000)
        assert abs(float(r.var_per_example["v"]) - (s2 + sigma ** 2)) < 0.05 * (s2 + sigma ** 2)
        assert abs(float(r.cov_pairs["v"]) - (c - s2 / (n - 1))) < 0.02
        np.testing.assert_allclose(r.var_term["v"], n ** 2 * r.var_per_example["v"] / m)
        np.testing.assert_allclose(r.cov_term["v"], n ** 2 * (m - 1) / m * r.cov_pairs["v"])
        np.testing.assert_allclose(r.total["v"], r.var_term["v"] + r.cov_term["v"])


def test_bad_input():
    with pytest.raises(ValueError, match="num_draws"):
        jaxvae.gradient_stats(lambda p, x, k: p, 1.0, None, jax.random.key(0), num_draws=1)
    with pytest.raises(ValueError, match="larger than the data"):
        jaxvae.minibatch_covariance(lambda p, x, k: x, None, jnp.zeros(3), jax.random.key(0),
                                    batch_size=4)
    with pytest.raises(ValueError, match="leading axis"):
        jaxvae.minibatch_covariance(lambda p, x, k: jnp.sum(x), None, jnp.zeros(10),
                                    jax.random.key(0), batch_size=4)
