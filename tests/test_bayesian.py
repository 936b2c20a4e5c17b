"""Bayesian layers: the local reparameterization trick, variational dropout, weight KL."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae.models import bayesian


def layer_params(key, n_in=6, n_out=4):
    k1, k2, k3 = jax.random.split(key, 3)
    mean = jax.random.normal(k1, (n_in, n_out))
    var = jnp.exp(jax.random.normal(k2, (n_in, n_out)) - 1.0)
    x = jax.random.normal(k3, (3, n_in))
    return x, mean, var


@pytest.mark.parametrize("estimator", ["local", "separate", "shared"])
def test_preactivation_mean_and_variance(estimator):
    """b = x W, W ~ N(mean, var): E[b] = x mean and Var[b] = x^2 var for every estimator
    (checked against the closed form with tolerances from the Monte Carlo error)."""
    x, mean, var = layer_params(jax.random.key(0))
    n = 20000
    keys = jax.random.split(jax.random.key(1), n)
    draw = jax.vmap(lambda k: bayesian.sample_preactivations(x, mean, var, estimator, k))
    b = jax.jit(draw)(keys)
    b = np.asarray(b, np.float64)
    mu, v = np.asarray(x @ mean), np.asarray((x * x) @ var)
    z_mean = (b.mean(0) - mu) / np.sqrt(v / n)
    assert np.max(np.abs(z_mean)) < 4.5
    # Var of a Gaussian sample variance: 2 v^2 / (n - 1)
    z_var = (b.var(0, ddof=1) - v) / (v * np.sqrt(2.0 / (n - 1)))
    assert np.max(np.abs(z_var)) < 4.5


def test_noise_structure_across_the_minibatch():
    """Same input row twice: shared weights give identical outputs, local and separate give
    independent ones (correlation ~ 0 over many draws)."""
    x, mean, var = layer_params(jax.random.key(0))
    x = jnp.stack([x[0], x[0]])
    keys = jax.random.split(jax.random.key(2), 4000)
    for estimator, expect in [("shared", 1.0), ("local", 0.0), ("separate", 0.0)]:
        b = jax.vmap(lambda k: bayesian.sample_preactivations(x, mean, var, estimator, k))(keys)
        corr = [np.corrcoef(b[:, 0, j], b[:, 1, j])[0, 1] for j in range(b.shape[-1])]
        np.testing.assert_allclose(corr, expect, atol=0.08)
    np.testing.assert_allclose(bayesian.sample_preactivations(x, mean, var, "mean", None), x @ mean)


def small_classifier(estimator, layer="dropout"):
    return bayesian.BayesianMLP(hidden=(16,), num_classes=3, layer=layer, estimator=estimator)


def init(model, shape=(8, 5)):
    return model.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, jnp.zeros(shape))


@pytest.mark.parametrize("layer", ["dropout", "gaussian"])
def test_estimators_share_the_expected_gradient(layer):
    """The three estimators have the same distribution per example, hence the same expected
    minibatch gradient: unpaired z-test per parameter with the measured standard errors."""
    x = jax.random.normal(jax.random.key(3), (8, 5))
    y = jnp.arange(8) % 3
    params = init(small_classifier("local", layer))
    if layer == "gaussian":   # make the weight noise matter
        params = jax.tree_util.tree_map_with_path(
            lambda p, v: jnp.full_like(v, -1.0) if "log_sigma" in jax.tree_util.keystr(p) else v,
            params)
    stats = {}
    for estimator in ("local", "separate", "shared"):
        loss = bayesian.classification_loss(small_classifier(estimator, layer), 100)
        grad_fn = lambda p, data, key: jax.grad(lambda q: loss(q, data, key)[0])(p)
        stats[estimator] = jaxvae.gradient_stats(grad_fn, params, (x, y), jax.random.key(4), 2000,
                                                 chunk=1000)
    flat = jaxvae.variance._flat
    for a, b in [("separate", "local"), ("shared", "local")]:
        diff = flat(stats[a].mean) - flat(stats[b].mean)
        se = np.sqrt((flat(stats[a].variance) + flat(stats[b].variance)) / 2000)
        ok = se > 0
        assert np.max(np.abs(diff[ok] / se[ok])) < 4.5


def test_minibatch_covariance_vanishes_for_local_and_separate():
    """Identical examples in a minibatch: their per-example losses are correlated only
    through shared weight noise. Cov[L_i, L_j] ~ 0 for local and separate, > 0 for shared."""
    row = jax.random.normal(jax.random.key(5), (5,))
    data = jnp.tile(row, (16, 1))
    params = init(small_classifier("local", "gaussian"))
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.full_like(v, -0.5) if "log_sigma" in jax.tree_util.keystr(p) else v,
        params)
    out = {}
    for estimator in ("local", "separate", "shared"):
        model = small_classifier(estimator, "gaussian")

        def per_example(p, xb, key, model=model):
            logits = model.apply(p, xb, rngs={"noise": key})
            return jax.nn.log_softmax(logits)[:, 0]
        r = jaxvae.minibatch_covariance(per_example, params, data, jax.random.key(6),
                                        batch_size=8, num_draws=2000)
        out[estimator] = (float(r.cov_pairs), float(r.var_per_example))
    for estimator in ("local", "separate"):
        cov, var = out[estimator]
        assert abs(cov) < 0.1 * var          # correlation below 0.1 (sampling error ~0.02)
    cov, var = out["shared"]
    assert cov > 0.5 * var


def test_local_reparameterization_in_the_layer_matches_shared_sampling_moments():
    model_local = bayesian.BayesianDense(4, "local", init_log_sigma=-0.5)
    model_shared = bayesian.BayesianDense(4, "shared", init_log_sigma=-0.5)
    x = jax.random.normal(jax.random.key(7), (2, 6))
    params = model_local.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, x)
    keys = jax.random.split(jax.random.key(8), 10000)
    run = lambda m: jax.vmap(lambda k: m.apply(params, x, rngs={"noise": k}))(keys)
    a, b = np.asarray(run(model_local)), np.asarray(run(model_shared))
    se = np.sqrt(a.var(0) / len(keys) + b.var(0) / len(keys))
    assert np.max(np.abs(a.mean(0) - b.mean(0)) / se) < 4.5
    np.testing.assert_allclose(a.var(0), b.var(0), rtol=0.1)


def test_gaussian_weight_kl_closed_form():
    model = bayesian.BayesianDense(3, "mean")
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    p = params["params"]
    sigma = jnp.exp(p["kernel_log_sigma"])
    expected = jaxvae.gaussian_kl(p["kernel_mean"].ravel(), sigma.ravel(), 0.0, 2.0)
    np.testing.assert_allclose(bayesian.gaussian_weight_kl(params, 2.0), expected, rtol=1e-5)
    # and against Monte Carlo for one weight
    mu, s = p["kernel_mean"][0, 0], sigma[0, 0]
    w = mu + s * jax.random.normal(jax.random.key(1), (200000,))
    mc = jnp.mean(jax.scipy.stats.norm.logpdf(w, mu, s) - jax.scipy.stats.norm.logpdf(w, 0, 2.0))
    one = jaxvae.gaussian_kl(mu[None], s[None], 0.0, 2.0)
    assert abs(float(mc - one)) < 0.05


def test_dropout_alpha_is_bounded_and_kl_decreases_in_alpha():
    raw = jnp.linspace(-10, 10, 101)
    la = bayesian.log_alpha(raw)
    assert float(jnp.max(la)) <= 0.0
    model = bayesian.VariationalDropoutDense(2, "mean", init_log_alpha=-1.0)
    params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
    np.testing.assert_allclose(bayesian.log_alpha(params["params"]["log_alpha_raw"]), -1.0,
                               rtol=1e-5)
    # more noise (larger alpha) is closer to the log-uniform prior: the KL falls with alpha
    kls = [float(bayesian.dropout_kl({"l": {"kernel": jnp.ones(1), "log_alpha_raw":
                                            jnp.full(1, r)}})) for r in (-6.0, -2.0, 0.0, 2.0)]
    assert all(a > b for a, b in zip(kls, kls[1:]))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown weight estimator"):
        bayesian.BayesianDense(3, "lokal").init(jax.random.key(0), jnp.zeros((1, 2)))
    layer = bayesian.BayesianDense(3, "mean")
    params = layer.init(jax.random.key(0), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="width 2, got width 5"):
        layer.apply(params, jnp.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"\[batch, in\]"):
        layer.apply(params, jnp.zeros((2,)))
    with pytest.raises(ValueError, match="init_log_alpha"):
        bayesian.VariationalDropoutDense(3, init_log_alpha=0.5).init(jax.random.key(0),
                                                                   jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown layer"):
        init(bayesian.BayesianMLP(layer="bernoulli"))
    with pytest.raises(ValueError, match="num_data"):
        bayesian.classification_loss(small_classifier("local"), 0)


def test_classification_loss_trains_through_the_library_step():
    """loss(params, (x, y), key) is the loss of make_train_step: the step's metrics are the
    loss at the step's key, and a few steps fit a separable toy problem."""
    import optax

    x = jax.random.normal(jax.random.key(9), (30, 5))
    y = (x[:, 0] > 0).astype(jnp.int32)
    model = small_classifier("local")
    loss = bayesian.classification_loss(model, 30)
    tx = optax.adam(3e-2)
    state = jaxvae.create_train_state(init(model), tx, jax.random.key(2))
    _, key_loss = jax.random.split(jax.random.fold_in(state.key, 0))
    expected, _ = loss(state.params, (x, y), key_loss)
    step = jaxvae.make_train_step(loss, tx)
    state, metrics = step(state, (x, y))
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
    for _ in range(60):
        state, metrics = step(state, (x, y))
    assert float(metrics["accuracy"]) > 0.9
