"""Gradient estimators: values, exact identities, unbiasedness and bad input.

The reference model is the linear-Gaussian VAE of tests/oracles.py, whose exact posterior
is available in closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from oracles import LinearGaussian, LinearGaussianVAE, flat_draws, perturb

import jaxvae
from jaxvae import estimators, objectives

MODEL = LinearGaussianVAE()
ELBO_ESTIMATORS = ("reparam", "score_function", "stl")
IWAE_ESTIMATORS = ("iwae", "dreg", "rws")


@pytest.fixture(scope="module")
def exact():
    params = MODEL.exact_params(jax.random.key(0))
    x = jax.vmap(lambda k: MODEL.sample_x(params, k))(jax.random.split(jax.random.key(1), 3))
    return jaxvae.split_params(MODEL, params), x


@pytest.fixture(scope="module")
def off(exact):
    """q away from the exact posterior (encoder perturbed), decoder unchanged."""
    groups, x = exact
    phi = perturb(groups.inference, jax.random.key(2), 0.3)
    return jaxvae.ParamGroups(phi, groups.generative), x


def grads(name, groups, x, key, k=3, **options):
    surrogate = jaxvae.make_estimator(MODEL, name, k, **options)
    return jax.grad(lambda g: jnp.mean(surrogate(g, x, key)))(groups)


def grad_draws(name, groups, x, keys, k=3, **options):
    """[M, P] matrices of inference and generative gradients, one row per key."""
    g = jax.jit(jax.vmap(lambda key: grads(name, groups, x, key, k, **options)))(keys)
    return flat_draws(g.inference), flat_draws(g.generative)


def test_exact_params_give_the_exact_posterior(exact):
    groups, x = exact
    params = jaxvae.merge_params(groups)
    dec = params["params"]["decoder"]
    oracle = LinearGaussian(dec["W"], dec["b"], MODEL.sigma)
    for xi in x:
        q = MODEL.apply(params, xi, method="posterior")
        p = oracle.posterior(xi)
        np.testing.assert_allclose(q.mean(), p.mean(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(jnp.diag(q.variance()), p.covariance(), atol=1e-5)
        np.testing.assert_allclose(MODEL.log_marginal(params, xi), oracle.log_marginal(xi),
                                   rtol=1e-5)
        assert abs(float(MODEL.kl_to_posterior(params, xi))) < 1e-5
    # KL(q || p(z|x)) = log p(x) - ELBO, the ELBO in closed form for a Gaussian likelihood
    off = perturb(params, jax.random.key(3), 0.2)
    off["params"]["decoder"] = params["params"]["decoder"]
    elbo = jaxvae.make_objective(MODEL, "elbo", 20000)(off, x, jax.random.key(4))
    gap = jax.vmap(lambda xi: MODEL.log_marginal(off, xi) - MODEL.kl_to_posterior(off, xi))(x)
    np.testing.assert_allclose(elbo, gap, rtol=0, atol=0.05)
    assert float(jnp.min(jax.vmap(lambda xi: MODEL.kl_to_posterior(off, xi))(x))) > 1.0


def test_split_and_merge_round_trip():
    params = MODEL.init_params(jax.random.key(0))
    groups = jaxvae.split_params(MODEL, params)
    assert set(groups.inference["params"]) == {"encoder"}
    assert set(groups.generative["params"]) == {"decoder"}
    merged = jaxvae.merge_params(groups)
    assert jax.tree_util.tree_structure(merged) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(merged), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_split_hierarchical_model():
    model = jaxvae.iwae_two_layer(event_shape=(4, 4), z1_dim=3, z2_dim=2, hidden1=(8,),
                                  hidden2=(6,))
    groups = jaxvae.split_params(model, model.init_params(jax.random.key(0)))
    assert set(groups.inference) == {"q_z1", "q_z2"}
    assert set(groups.generative) == {"p_z1", "decoder"}
    x = (jax.random.uniform(jax.random.key(1), (2, 4, 4)) < 0.5).astype(jnp.float32)
    for name in ("stl", "dreg"):   # the two that rebuild q with stopped parameters
        surrogate = jaxvae.make_estimator(model, name, 4)
        g = jax.jit(jax.grad(lambda p: jnp.mean(surrogate(p, x, jax.random.key(2)))))(groups)
        leaves = jax.tree_util.tree_leaves(g)
        assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)
        assert float(jnp.max(jnp.abs(flat_draws(jax.tree_util.tree_map(
            lambda v: v[None], g.inference))))) > 0


@pytest.mark.parametrize("name", jaxvae.ESTIMATORS)
def test_value_is_the_objective(off, name):
    """Same key, same samples: the surrogate's value is ELBO_k or IWAE_k exactly."""
    groups, x = off
    key = jax.random.key(3)
    objective = estimators.get_estimator(name).objective
    expected = jaxvae.make_objective(MODEL, objective, 4)(jaxvae.merge_params(groups), x, key)
    value = jaxvae.make_estimator(MODEL, name, 4)(groups, x, key)
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-5)


def test_analytic_kl_option_value(off):
    groups, x = off
    key = jax.random.key(4)
    expected = jaxvae.make_objective(MODEL, "elbo", 2, analytic_kl=True)(
        jaxvae.merge_params(groups), x, key)
    value = jaxvae.make_estimator(MODEL, "reparam", 2, analytic_kl=True)(groups, x, key)
    np.testing.assert_allclose(value, expected, rtol=1e-6)


@pytest.mark.parametrize("name,k", [("stl", 1), ("stl", 4), ("dreg", 1), ("dreg", 5)])
def test_inference_gradient_vanishes_at_exact_posterior(exact, name, k):
    """q = p(z|x): every log-weight equals log p(x) for every z, so the pathwise STL and
    DReG inference gradients are zero for every key, while the plain ones are not."""
    groups, x = exact
    reference = "reparam" if name == "stl" else "iwae"
    keys = jax.random.split(jax.random.key(5), 20)
    g, _ = grad_draws(name, groups, x, keys, k)
    g_ref, _ = grad_draws(reference, groups, x, keys, k)
    assert np.max(np.abs(g)) < 2e-5
    assert np.min(np.max(np.abs(g_ref), axis=1)) > 0.05


@pytest.mark.parametrize("name,reference", [("stl", "reparam"), ("score_function", "reparam"),
                                            ("dreg", "iwae"), ("rws", "iwae")])
def test_generative_gradient_is_the_standard_one(off, name, reference):
    """The estimators only change the inference gradient: theta's is identical per key."""
    groups, x = off
    keys = jax.random.split(jax.random.key(6), 8)
    _, g = grad_draws(name, groups, x, keys, 4)
    _, g_ref = grad_draws(reference, groups, x, keys, 4)
    np.testing.assert_allclose(g, g_ref, rtol=2e-5, atol=2e-5)


def paired_z(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-parameter z-scores of mean(a - b), a and b from the same keys (paired draws)."""
    d = a - b
    return d.mean(0) / (d.std(0, ddof=1) / np.sqrt(d.shape[0]))


# Inference gradients, 4000 paired draws: every |z| of the difference of means must be
# below 4.5 (a z-test per parameter, 21 parameters; tolerance from the measured standard
# error of each difference, not a guessed absolute one).
UNBIASED = [("dreg", "iwae", {}), ("stl", "reparam", {}), ("score_function", "reparam", {}),
            ("score_function", "reparam", {"baseline": "leave_one_out"}),
            ("score_function", "reparam", {"baseline": -8.0})]


@pytest.mark.parametrize("name,reference,options", UNBIASED)
def test_unbiased_against_the_pathwise_gradient(off, name, reference, options):
    groups, x = off
    keys = jax.random.split(jax.random.key(7), 4000)
    g, _ = grad_draws(name, groups, x, keys, 3, **options)
    g_ref, _ = grad_draws(reference, groups, x, keys, 3)
    z = paired_z(g, g_ref)
    assert np.max(np.abs(z)) < 4.5, z
    # The test has power: the reference itself is far from zero in these units.
    assert np.max(np.abs(g_ref.mean(0) / (g_ref.std(0) / np.sqrt(len(keys))))) > 20


def test_unbiasedness_check_detects_a_biased_estimator(off):
    """IWAE with the STL trick (log q with stopped phi, no squared weights) is biased for
    the IWAE gradient (Tucker et al., 2018); the same z-test must reject it."""
    groups, x = off
    k = 3

    def iwae_stl(g, x, key):
        def one(x, key):
            q = MODEL.apply(g.inference, x, method="posterior")
            q_stop = MODEL.apply(jax.lax.stop_gradient(g.inference), x, method="posterior")
            prior = MODEL.apply(g.generative, method="prior")
            lik = lambda z: MODEL.apply(g.generative, z, method="likelihood").log_prob(x)
            z = q.sample(seed=key, sample_shape=(k,))
            return objectives.log_mean_exp(jax.vmap(lik)(z) + prior.log_prob(z)
                                           - q_stop.log_prob(z))
        return jax.vmap(one)(x, jax.random.split(key, x.shape[0]))

    keys = jax.random.split(jax.random.key(7), 4000)
    biased = jax.jit(jax.vmap(lambda key: jax.grad(
        lambda g: jnp.mean(iwae_stl(g, x, key)))(groups).inference))(keys)
    g_ref, _ = grad_draws("iwae", groups, x, keys, k)
    assert np.max(np.abs(paired_z(flat_draws(biased), g_ref))) > 8


def test_rws_wake_phi_is_the_self_normalized_gradient(off):
    """Wake-phi = sum_i w~_i grad log q(z_i|x): check against a direct computation."""
    groups, x = off
    key = jax.random.key(8)
    k = 4
    g = jax.jit(grads, static_argnums=(0, 4))("rws", groups, x[:1], key, k).inference
    q_fn = lambda phi, z: MODEL.apply(phi, x[0], method="posterior").log_prob(z)
    ex_key = jax.random.split(key, 1)[0]
    q = MODEL.apply(groups.inference, x[0], method="posterior")
    z = q.sample(seed=ex_key, sample_shape=(k,))
    dec = groups.generative["params"]["decoder"]
    oracle = LinearGaussian(dec["W"], dec["b"], MODEL.sigma)
    log_joint = jax.vmap(oracle.log_likelihood_fn(x[0]))(z) + oracle.prior().log_prob(z)
    w = jax.nn.softmax(log_joint - q.log_prob(z))
    per_sample = jax.vmap(jax.grad(q_fn), in_axes=(None, 0))(groups.inference, z)
    expected = jax.tree_util.tree_map(lambda a: jnp.tensordot(w, a, 1), per_sample)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_estimator_loss_trains(off):
    groups, x = off
    loss = jaxvae.make_loss(MODEL, "iwae", 5, estimator="dreg")
    value, info = loss(groups, x, jax.random.key(9))
    assert np.isclose(value, -info["bound"])
    state = jaxvae.create_train_state(groups, optax.adam(1e-2), jax.random.key(0))
    step = jaxvae.make_train_step(loss, optax.adam(1e-2))
    state, metrics = step(state, x)
    assert isinstance(state.params, jaxvae.ParamGroups)
    assert np.isfinite(float(metrics["loss"]))


# ---------------------------------------------------------------------------- errors

def test_unknown_estimator_and_options():
    with pytest.raises(ValueError, match="unknown estimator 'drgе'|unknown estimator"):
        jaxvae.make_estimator(MODEL, "drgе")
    with pytest.raises(ValueError, match="takes no option"):
        jaxvae.make_estimator(MODEL, "dreg", 5, baseline="leave_one_out")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        jaxvae.make_estimator(MODEL, "score_function", 1, baseline="leave_one_out")
    with pytest.raises(ValueError, match="baseline must be"):
        jaxvae.make_estimator(MODEL, "score_function", 3, baseline="mean")
    with pytest.raises(ValueError, match=">= 1"):
        jaxvae.make_estimator(MODEL, "iwae", 0)


def test_parameter_groups_must_match(exact):
    groups, x = exact
    params = jaxvae.merge_params(groups)
    surrogate = jaxvae.make_estimator(MODEL, "dreg", 2)
    with pytest.raises(TypeError, match="ParamGroups"):
        surrogate(params, x, jax.random.key(0))
    with pytest.raises(ValueError, match="not found"):
        jaxvae.split_params(MODEL, params, inference=("enc",))
    # The decoder named as the inference network: q(z|x) cannot be built from it alone.
    wrong = jaxvae.split_params(MODEL, params, inference=("decoder",))
    with pytest.raises(ValueError, match="not in the inference group"):
        surrogate(wrong, x, jax.random.key(0))
    # Both networks in one group: the generative side has nothing to run on.
    both = jaxvae.ParamGroups(params, {"params": {}})
    with pytest.raises(ValueError, match="not in the generative group"):
        surrogate(both, x, jax.random.key(0))
    with pytest.raises(ValueError, match="shape"):
        surrogate(groups, x[:, :3], jax.random.key(0))


def test_split_needs_declared_inference_networks():
    class Bare:
        event_shape = (2,)
    with pytest.raises(ValueError, match="inference_networks"):
        jaxvae.split_params(Bare(), {"params": {"enc": {}, "dec": {}}})
    groups = jaxvae.split_params(Bare(), {"params": {"enc": {}, "dec": {}}}, inference="enc")
    assert set(groups.inference["params"]) == {"enc"}
    assert estimators.ESTIMATORS == jaxvae.ESTIMATORS


# ---------------------------------------------------------------------------- wake-sleep

def test_wake_sleep_gradients_are_the_wake_and_sleep_phases(off):
    """phi: grad of mean log q(z_j|x_j) on the dreams (z_j, x_j) ~ p(z) p(x|z); theta: grad of
    mean log p(x, z_i) at z_i ~ q(z|x) held fixed; value: the Monte Carlo ELBO_k."""
    groups, x = off
    k, key = 4, jax.random.key(11)
    g = grads("wake_sleep", groups, x, key, k)
    keys = jax.random.split(key, x.shape[0])

    def sleep(phi):
        def one(key_i):
            model = jaxvae.bind(MODEL, jaxvae.ParamGroups(phi, groups.generative))
            z, xd = estimators.dream(jax.random.fold_in(key_i, 1), model, k)
            return jnp.mean(jax.vmap(lambda zj, xj: model.posterior(xj).log_prob(zj))(z, xd))
        return jnp.mean(jax.vmap(one)(keys))

    def wake(theta):
        def one(x_i, key_i):
            q, prior, log_lik = jaxvae.model_terms(MODEL, jaxvae.ParamGroups(
                groups.inference, theta), x_i)
            z = jax.lax.stop_gradient(q.sample(seed=key_i, sample_shape=(k,)))
            return jnp.mean(jax.vmap(log_lik)(z) + prior.log_prob(z))
        return jnp.mean(jax.vmap(one)(x, keys))

    expected = jaxvae.ParamGroups(jax.grad(sleep)(groups.inference),
                                  jax.grad(wake)(groups.generative))
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.max(jnp.abs(a))) for a in jax.tree_util.tree_leaves(g.inference)) > 0
    value = jaxvae.make_estimator(MODEL, "wake_sleep", k)(groups, x, key)
    elbo = jaxvae.make_objective(MODEL, "elbo", k)(jaxvae.merge_params(groups), x, key)
    np.testing.assert_allclose(value, elbo, rtol=1e-6)


def test_wake_sleep_dreams_come_from_the_model(exact):
    """Dreams are draws of p(z) p(x|z): for the linear-Gaussian model their x has the
    exact marginal's mean b and covariance W W^T + sigma^2 I."""
    groups, _ = exact
    model = jaxvae.bind(MODEL, groups)
    z, xd = estimators.dream(jax.random.key(5), model, 20000)
    dec = groups.generative["params"]["decoder"]
    assert z.shape == (20000, MODEL.latent_dim) and xd.shape == (20000, MODEL.data_dim)
    np.testing.assert_allclose(jnp.mean(xd, 0), dec["b"], atol=0.06)
    cov = dec["W"] @ dec["W"].T + MODEL.sigma ** 2 * jnp.eye(MODEL.data_dim)
    np.testing.assert_allclose(jnp.cov(xd.T), cov, atol=0.12)


def test_estimator_objects_and_names():
    est = jaxvae.ScoreFunction(baseline="leave_one_out")
    assert est.name == "score_function" and est.objective == "elbo"
    assert estimators.get_estimator("score_function", baseline="leave_one_out") == est
    assert jaxvae.make_estimator(MODEL, est, 3).estimator is est
    with pytest.raises(ValueError, match="not of objective='iwae'"):
        jaxvae.make_loss(MODEL, "iwae", 3, estimator="stl")
    assert {e for e in jaxvae.ESTIMATORS} >= {"wake_sleep", "dreg", "rws"}
