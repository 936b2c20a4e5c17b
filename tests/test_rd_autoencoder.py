"""The rate–distortion autoencoder: bin masses by hand, rates, one training step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvae
from jaxvae.models import rd_autoencoder as rd

SHAPE = (8, 8)


def sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t))


def phi(t):
    return 0.5 * math.erfc(-t / math.sqrt(2.0))


def small_model(**kwargs):
    return rd.RDAutoencoder(SHAPE, latent_dim=4, hidden=16, channels=(4,), **kwargs)


@pytest.fixture(scope="module")
def model_and_params():
    """The small model (logistic prior) and its initial parameters, initialized once."""
    model = small_model()
    return model, jax.jit(model.init_params)(jax.random.PRNGKey(0))


def tiny_batch(n=6):
    return jax.random.uniform(jax.random.PRNGKey(3), (n, *SHAPE))


def with_prior(params, loc, log_scale):
    inner = dict(params["params"], prior_loc=jnp.asarray(loc, jnp.float32),
                 prior_log_scale=jnp.asarray(log_scale, jnp.float32))
    return {"params": inner}


def test_log_bin_mass_by_hand():
    # logistic: P = sigmoid((y + Δ/2 - μ)/s) - sigmoid((y - Δ/2 - μ)/s)
    y, mu, s = 0.3, 0.1, 2.0
    expected = math.log(sigmoid((y + 0.5 - mu) / s) - sigmoid((y - 0.5 - mu) / s))
    got = rd.log_bin_mass(jnp.float32(y), mu, s)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # Gaussian with a bin width of 0.5
    expected = math.log(phi((y + 0.25 - mu) / s) - phi((y - 0.25 - mu) / s))
    got = rd.log_bin_mass(jnp.float32(y), mu, s, width=0.5, prior="gaussian")
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_log_bin_mass_is_accurate_far_in_the_tails():
    # logistic, 40 scales out: log sigmoid(40.5) + log sigmoid(-39.5) + log(1 - e^-1)
    expected = math.log(sigmoid(40.5)) - math.log1p(math.exp(39.5)) + math.log(1 - math.exp(-1))
    for y in (40.0, -40.0):                                   # symmetric
        assert float(rd.log_bin_mass(jnp.float32(y), 0.0, 1.0)) == pytest.approx(expected,
                                                                                 rel=1e-5)
    # Gaussian, 20 scales out: the mass is ~1e-89, far below float32's range
    p = 0.5 * (math.erfc(19.5 / math.sqrt(2)) - math.erfc(20.5 / math.sqrt(2)))
    for y in (20.0, -20.0):
        got = float(rd.log_bin_mass(jnp.float32(y), 0.0, 1.0, prior="gaussian"))
        assert got == pytest.approx(math.log(p), rel=1e-4)
    grads = jax.grad(lambda v: rd.log_bin_mass(v, 0.0, 1.0, prior="gaussian").sum())(
        jnp.array([-30.0, 0.0, 30.0]))
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("prior", rd.PRIORS)
def test_bin_masses_sum_to_one(prior):
    # Kraft: the masses of all bins form a distribution, so the code is decodable
    centres = jnp.arange(-200, 201, dtype=jnp.float32) * 0.5
    mass = jnp.exp(rd.log_bin_mass(centres, 0.7, 3.0, width=0.5, prior=prior))
    assert float(jnp.sum(mass)) == pytest.approx(1.0, abs=1e-5)


def test_rate_of_a_known_code_equals_the_hand_computation(model_and_params):
    model, params = model_and_params
    params = with_prior(params, [0.0, 0.5, -1.0, 0.0],
                        np.log([1.0, 2.0, 0.5, 1.0]))
    code = jnp.array([0.0, 1.0, -2.0, 3.0])
    log_p = model.apply(params, code, method="log_bin_mass")
    mus, scales = (0.0, 0.5, -1.0, 0.0), (1.0, 2.0, 0.5, 1.0)
    bits = sum(-math.log2(sigmoid((c + 0.5 - m) / s) - sigmoid((c - 0.5 - m) / s))
               for c, m, s in zip(code.tolist(), mus, scales))
    assert float(-jnp.sum(log_p) / math.log(2)) == pytest.approx(bits, rel=1e-5)
    # the first dimension alone: P(0) = sigmoid(1/2) - sigmoid(-1/2) = tanh(1/4)
    assert float(log_p[0]) == pytest.approx(math.log(math.tanh(0.25)), rel=1e-6)


def test_quantize_rounds_to_the_grid():
    y = jnp.array([-1.6, -0.4, 0.2, 0.74, 2.51])
    np.testing.assert_allclose(rd.quantize(y), [-2.0, -0.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(rd.quantize(y, 0.5), [-1.5, -0.5, 0.0, 0.5, 2.5])


@pytest.mark.parametrize("prior", rd.PRIORS)
def test_quantized_rate_is_nonnegative_and_finite(model_and_params, prior):
    model, params = model_and_params
    model = model.clone(prior=prior)           # the same parameters, the other prior
    m = rd.rate_distortion_metrics(model, params, np.asarray(tiny_batch()), batch_size=4)
    assert m["num"] == 6
    assert math.isfinite(m["rate"]) and m["rate"] >= 0.0
    assert m["rate_bits"] == pytest.approx(m["rate"] / math.log(2), rel=1e-6)
    assert m["bits_per_dim"] == pytest.approx(m["rate_bits"] / 64, rel=1e-6)
    assert math.isfinite(m["mse"]) and m["mse"] >= 0.0
    assert m["distortion"] == pytest.approx(64 * m["mse"], rel=1e-6)
    # the rate of the codes themselves, recomputed
    y_hat = rd.quantize(model.apply(params, tiny_batch(), method="encode"))
    rate = -jnp.sum(model.apply(params, y_hat, method="log_bin_mass"), -1)
    assert m["rate"] == pytest.approx(float(jnp.mean(rate)), rel=1e-5)


def test_one_training_step_decreases_the_loss(model_and_params):
    model, params = model_and_params
    loss_fn = rd.rate_distortion_loss(model, lam=100.0)
    x, key = tiny_batch(), jax.random.PRNGKey(7)
    before, info = loss_fn(params, x, key)
    assert set(info) == {"rate", "rate_bits", "distortion", "mse", "bound"}
    assert float(before) == pytest.approx(float(info["rate"] + 50.0 * info["distortion"]),
                                          rel=1e-5)
    tx = optax.adam(1e-3)
    state = jaxvae.create_train_state(params, tx, jax.random.PRNGKey(1))
    state, metrics = jaxvae.make_train_step(loss_fn, tx)(state, x)
    assert bool(metrics["finite"]) and int(state.step) == 1
    after, _ = loss_fn(state.params, x, key)
    assert float(after) < float(before)


def test_decode_and_sample_shapes(model_and_params):
    model, params = model_and_params
    assert model.apply(params, jnp.zeros((3, 4)), method="decode").shape == (3, *SHAPE)
    assert model.apply(params, tiny_batch(2), method="encode").shape == (2, 4)
    images = rd.sample(model, params, jax.random.PRNGKey(2), 5)
    assert images.shape == (5, *SHAPE) and bool(jnp.all(jnp.isfinite(images)))
    loc, scale = model.apply(params, method="prior_params")
    np.testing.assert_allclose(scale, 2.0, rtol=1e-6)
    np.testing.assert_allclose(loc, 0.0)


def test_bad_settings_are_clear_errors(model_and_params):
    with pytest.raises(ValueError, match="unknown prior"):
        rd.log_bin_mass(jnp.zeros(2), 0.0, 1.0, prior="cauchy")
    with pytest.raises(ValueError, match="bin width"):
        rd.log_bin_mass(jnp.zeros(2), 0.0, 1.0, width=0.0)
    with pytest.raises(ValueError, match="unknown prior"):
        small_model(prior="laplace").init_params(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"lam"):
        rd.rate_distortion_loss(small_model(), lam=0.0)
    model, params = model_and_params
    with pytest.raises(ValueError, match=r"expects images of shape \(8, 8\)"):
        model.apply(params, jnp.zeros((2, 7, 7)), method="encode")
    with pytest.raises(ValueError, match=r"num must be"):
        rd.sample(model, params, jax.random.PRNGKey(0), 0)
