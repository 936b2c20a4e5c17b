"""Probabilistic PCA with fixed sigma (jaxvae.models.ppca), checked in float64.

The closed-form maximum-likelihood solution is a stationary point and beats EM and random
parameters; EM never decreases log p(x) and reaches the ML value; the expected gradient of
the joint under the exact posterior equals the gradient of log p(x) (Fisher's identity),
exactly and by Monte Carlo; the per-example likelihood agrees with
LinearGaussianVAE.log_marginal.
"""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae.models import (
    LinearGaussianVAE,
    expected_joint_gradient,
    ppca_em,
    ppca_em_step,
    ppca_log_likelihood,
    ppca_maximum_likelihood,
)

D, d, SIGMA, N = 6, 2, 0.5, 300


def x64():
    return jax.enable_x64(True)


def problem(seed=0):
    """Data from a random PPCA model, and a random starting point: float64 numpy arrays."""
    rng = np.random.default_rng(seed)
    W_true, b_true = rng.normal(size=(D, d)), rng.normal(size=D)
    x = rng.normal(size=(N, d)) @ W_true.T + b_true + SIGMA * rng.normal(size=(N, D))
    return x, rng.normal(size=(D, d)), rng.normal(size=D)


def decoder_params(W, b):
    return {"params": {"decoder": {"W": jnp.asarray(W), "b": jnp.asarray(b)}}}


def gaussian(mean, scale):
    return distrax.Independent(distrax.Normal(mean, scale), 1)


def log_joint(W, b, x, z):
    """log p(x, z) = log N(x; W z + b, sigma^2 I) + log N(z; 0, I), written with distrax."""
    return (gaussian(W @ z + b, SIGMA * jnp.ones(D)).log_prob(x)
            + gaussian(jnp.zeros(d), jnp.ones(d)).log_prob(z))


def test_maximum_likelihood_is_stationary_and_best():
    x, W0, b0 = problem()
    with x64():
        W, b = ppca_maximum_likelihood(x, d, SIGMA)
        assert W.dtype == b.dtype == jnp.float64 and W.shape == (D, d) and b.shape == (D,)
        grad_W, grad_b = jax.jit(jax.grad(ppca_log_likelihood, argnums=(0, 1)))(W, b, SIGMA, x)
        np.testing.assert_allclose(grad_W, 0.0, atol=1e-9)
        np.testing.assert_allclose(grad_b, 0.0, atol=1e-9)
        best = ppca_log_likelihood(W, b, SIGMA, x)
        _, _, history = ppca_em(W0, b0, SIGMA, x, 300)
        assert best >= history[-1] - 1e-10
        rng = np.random.default_rng(1)
        for _ in range(5):
            assert best > ppca_log_likelihood(rng.normal(size=(D, d)), rng.normal(size=D),
                                              SIGMA, x)
        W_next, b_next = ppca_em_step(W, b, SIGMA, x)      # ML is a fixed point of EM
        np.testing.assert_allclose(W_next, W, atol=1e-8)
        np.testing.assert_allclose(b_next, b, atol=1e-8)


def test_small_eigenvalues_give_zero_columns():
    rng = np.random.default_rng(2)
    x = 0.1 * rng.normal(size=(200, 4))                    # every eigenvalue << sigma^2
    x[:, 0] *= 30.0                                        # but one
    with x64():
        W = np.asarray(ppca_maximum_likelihood(x, 2, SIGMA)[0])
    assert np.linalg.norm(W[:, 0]) > 1.0 and np.all(W[:, 1] == 0.0)


def test_em_is_monotone_and_converges_to_maximum_likelihood():
    x, W0, b0 = problem(seed=3)
    with x64():
        W_ml, b_ml = ppca_maximum_likelihood(x, d, SIGMA)
        best = float(ppca_log_likelihood(W_ml, b_ml, SIGMA, x))
        W, b, history = ppca_em(W0, b0, SIGMA, x, 300)
        history = np.asarray(history)
        assert history.shape == (301,) and history.dtype == np.float64
        np.testing.assert_allclose(history[0], ppca_log_likelihood(W0, b0, SIGMA, x))
        np.testing.assert_allclose(history[-1], ppca_log_likelihood(W, b, SIGMA, x))
        W, W_ml = np.asarray(W), np.asarray(W_ml)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert history[-1] > history[0] + 1.0
    assert abs(history[-1] - best) < 1e-4 and history[-1] <= best + 1e-9
    np.testing.assert_allclose(W @ W.T, W_ml @ W_ml.T, atol=1e-3)   # equal up to rotation


def test_m_step_maximizes_the_expected_complete_log_likelihood():
    """At (W_new, b_new), grad of Q(W, b) = sum_n E_p(z|x_n; W_old)[log p(x_n, z)] is 0."""
    x, W0, b0 = problem(seed=4)
    with x64():
        W_new, b_new = ppca_em_step(W0, b0, SIGMA, x)
        S = jnp.linalg.inv(jnp.eye(d) + W0.T @ W0 / SIGMA ** 2)
        m = (x - b0) @ W0 @ S / SIGMA ** 2

        def q_function(W, b):
            residual = x - b - m @ W.T
            return -0.5 * (jnp.sum(residual ** 2) + N * jnp.trace(W @ S @ W.T)) / SIGMA ** 2

        for grad in jax.grad(q_function, argnums=(0, 1))(W_new, b_new):
            np.testing.assert_allclose(grad, 0.0, atol=1e-8)


def test_log_likelihood_is_the_mean_log_marginal():
    x, W0, b0 = problem(seed=5)
    model = LinearGaussianVAE(D, d, SIGMA)
    with x64():
        params = decoder_params(W0, b0)
        per_example = jax.jit(jax.vmap(model.log_marginal, (None, 0)))(params, jnp.asarray(x))
        np.testing.assert_allclose(ppca_log_likelihood(W0, b0, SIGMA, x),
                                   jnp.mean(per_example), rtol=1e-12)


def test_eg_identity_exact():
    x, W0, b0 = problem(seed=6)
    model = LinearGaussianVAE(D, d, SIGMA)
    with x64():
        params = decoder_params(W0, b0)
        rows = jnp.asarray(x[:5])
        grads = jax.jit(jax.vmap(jax.grad(model.log_marginal), (None, 0)))(params, rows)
        grad_W, grad_b = jax.vmap(expected_joint_gradient, (None, None, None, 0))(
            W0, b0, SIGMA, rows)
        np.testing.assert_allclose(grad_W, grads["params"]["decoder"]["W"], atol=1e-8)
        np.testing.assert_allclose(grad_b, grads["params"]["decoder"]["b"], atol=1e-8)


def test_eg_identity_monte_carlo():
    """The mean of grad log p(x, z) over 20000 exact-posterior draws, within 5 stderr."""
    x, W0, b0 = problem(seed=7)
    model = LinearGaussianVAE(D, d, SIGMA)
    with x64():
        row, W, b = jnp.asarray(x[0]), jnp.asarray(W0), jnp.asarray(b0)
        m, S = model.exact_posterior(decoder_params(W, b), row)
        z = distrax.MultivariateNormalFullCovariance(m, S).sample(
            seed=jax.random.key(0), sample_shape=(20000,))
        grad_joint = jax.vmap(jax.grad(log_joint, argnums=(0, 1)), (None, None, None, 0))
        grads = jax.jit(grad_joint)(W, b, row, z)
        for sampled, exact in zip(grads, expected_joint_gradient(W, b, SIGMA, row)):
            sampled = np.asarray(sampled)
            mean = sampled.mean(axis=0)
            stderr = sampled.std(axis=0, ddof=1) / np.sqrt(len(sampled))
            assert np.all(np.abs(mean - exact) <= 5 * stderr + 1e-12), (mean, exact, stderr)


def test_float32_data_gives_float32_results():
    x, W0, b0 = problem()
    x32 = x.astype(np.float32)
    W, b = ppca_maximum_likelihood(x32, d, SIGMA)
    assert W.dtype == b.dtype == jnp.float32
    assert ppca_em_step(W0, b0, SIGMA, x32)[0].dtype == jnp.float32


@pytest.mark.parametrize("call", [
    lambda x: ppca_log_likelihood(np.zeros((D, d)), np.zeros(D), SIGMA, x),
    lambda x: ppca_maximum_likelihood(x, d, SIGMA),
    lambda x: ppca_em_step(np.zeros((D, d)), np.zeros(D), SIGMA, x),
    lambda x: ppca_em(np.zeros((D, d)), np.zeros(D), SIGMA, x, 2),
], ids=["log_likelihood", "maximum_likelihood", "em_step", "em"])
def test_x_must_be_two_dimensional(call):
    for bad in (np.zeros(D), np.zeros((2, 3, D))):
        with pytest.raises(ValueError, match=r"^x must be a 2-D array"):
            call(bad)


def test_bad_arguments_are_named():
    x = np.random.default_rng(0).normal(size=(20, D))
    for latent_dim in (0, D, D + 1):
        with pytest.raises(ValueError, match=r"^latent_dim must be"):
            ppca_maximum_likelihood(x, latent_dim, SIGMA)
    with pytest.raises(ValueError, match=r"^sigma must be"):
        ppca_maximum_likelihood(x, d, 0.0)
    with pytest.raises(ValueError, match=r"^W must have shape"):
        ppca_log_likelihood(np.zeros((D + 1, d)), np.zeros(D), SIGMA, x)
    with pytest.raises(ValueError, match=r"^b must have shape"):
        ppca_em_step(np.zeros((D, d)), np.zeros(D - 1), SIGMA, x)
    with pytest.raises(ValueError, match=r"^num_steps must be"):
        ppca_em(np.zeros((D, d)), np.zeros(D), SIGMA, x, -1)
    with pytest.raises(ValueError, match=r"^x must have shape \[D\]"):
        expected_joint_gradient(np.zeros((D, d)), np.zeros(D), SIGMA, x)
