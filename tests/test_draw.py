"""DRAW (Gregor et al., 2015) under the model contract: the sequential posterior, the
bounds, the per-step KLs, one compiled program for any T, and the estimators' refusal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae.models import draw

KEY = jax.random.key(0)
SHAPE = (6, 7)          # H != W, so a transposed image would show


def tiny(attention, steps=3):
    return draw.draw(SHAPE, steps=steps, latent_dim=3, hidden=8, attention=attention,
                     read_size=2, write_size=3)


@pytest.fixture(scope="module", params=[False, True], ids=["whole-image", "attention"])
def model_and_params(request, fast_compilation):
    model = tiny(request.param)
    return model, model.init_params(KEY)


def images(n=4, seed=1):
    return jax.random.bernoulli(jax.random.key(seed), 0.4, (n, *SHAPE)).astype(jnp.float32)


def test_the_model_implements_the_contract(model_and_params):
    model, params = model_and_params
    assert isinstance(model, jaxvae.Model)
    assert model.event_shape == SHAPE and model.latent_shape == (3, 3)
    q, prior, log_likelihood = jaxvae.model_terms(model, params, images()[0])
    assert tuple(q.event_shape) == tuple(prior.event_shape) == (3, 3) and q.batch_shape == ()
    samples = jaxvae.sample_terms(KEY, q, prior, log_likelihood, 5)
    assert samples.z.shape == (5, 3, 3)
    for a in (samples.log_likelihood, samples.log_prior, samples.log_q):
        assert a.shape == (5,) and bool(jnp.all(jnp.isfinite(a)))
    assert set(params["params"]) == {"encoder", "decoder"}


def test_teacher_forcing_gives_the_density_of_the_sampled_path(model_and_params):
    """log_prob(z) reruns the recurrence on a given z: at the z that sampling drew it equals
    the log q that sampling reported, and it is the sum of the steps' Gaussians."""
    model, params = model_and_params
    q = jaxvae.bind(model, params).posterior(images()[0])
    z, log_q = q.sample_and_log_prob(seed=KEY, sample_shape=(4,))
    np.testing.assert_allclose(jax.vmap(q.log_prob)(z), log_q, rtol=1e-5, atol=1e-4)
    path = q.run(z[0], given=True)
    per_step = jax.scipy.stats.norm.logpdf(z[0], path.loc, path.scale).sum(-1)
    np.testing.assert_allclose(per_step.sum(), log_q[0], rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        q.log_prob(z[0, :2])


def test_the_steps_kls_sum_to_the_total_kl(model_and_params):
    """Per step, log q(z_t|h_t) - log p(z_t) sums to log q(z|x) - log p(z); the closed-form
    per-step KLs (the paper's L^z) average to the same KL as the Monte Carlo estimate."""
    model, params = model_and_params
    bound = jaxvae.bind(model, params)
    q, prior = bound.posterior(images()[1]), bound.prior()
    paths = jax.vmap(q.path)(jax.random.split(KEY, 4000))
    log_q_t = jax.scipy.stats.norm.logpdf(paths.z, paths.loc, paths.scale).sum(-1)
    log_p_t = jax.scipy.stats.norm.logpdf(paths.z).sum(-1)
    total = jax.vmap(q.log_prob)(paths.z[:50]) - prior.log_prob(paths.z[:50])
    np.testing.assert_allclose((log_q_t - log_p_t)[:50].sum(-1), total, rtol=1e-4, atol=1e-4)
    closed = jax.vmap(jaxvae.draw_tools.step_kl)(paths)                       # [n, T]
    assert closed.shape == (4000, 3) and bool(jnp.all(closed >= 0))
    mc, rb = (log_q_t - log_p_t).sum(-1), closed.sum(-1)
    stderr = float(jnp.std(mc - rb) / np.sqrt(4000))
    assert abs(float(jnp.mean(mc - rb))) < 4 * stderr + 1e-6, (mc.mean(), rb.mean(), stderr)


def test_iwae_with_one_sample_is_the_elbo_and_the_bound_rises_with_k(model_and_params):
    model, params = model_and_params
    x = images(8)
    both = jax.jit(lambda p, key: (jaxvae.make_objective(model, "iwae", 1)(p, x, key),
                                   jaxvae.make_objective(model, "elbo", 1)(p, x, key)))
    iwae, elbo = both(params, KEY)
    np.testing.assert_allclose(iwae, elbo, rtol=1e-5)
    k20 = jax.jit(jaxvae.make_objective(model, "iwae", 20))(params, x, KEY)
    assert float(jnp.mean(k20)) > float(jnp.mean(elbo))


def test_the_likelihood_decodes_the_canvas_the_posterior_drew(model_and_params):
    """p(x|z) reruns the decoder alone over z; its logits are the posterior's last canvas."""
    model, params = model_and_params
    q = jaxvae.bind(model, params).posterior(images()[2])
    path = q.path(KEY, trace=True)
    assert path.canvas.shape == (3, *SHAPE) and path.read.shape == path.write.shape == (3, 5)
    logits = jaxvae.bind(model, params).likelihood(path.z).distribution.logits
    np.testing.assert_allclose(logits, path.canvas[-1], rtol=1e-5, atol=1e-5)
    canvases, writes = model.apply(params, path.z, method="canvases")
    np.testing.assert_allclose(canvases, path.canvas, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(writes, path.write, rtol=1e-5, atol=1e-5)


def test_gradients_reach_both_networks_and_a_step_down_lowers_the_loss(model_and_params):
    model, params = model_and_params
    x = images(16, seed=3)
    loss = jax.jit(lambda p: jaxvae.make_loss(model, "elbo", 1)(p, x, KEY)[0])
    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    for name in ("encoder", "decoder"):
        leaves = jax.tree_util.tree_leaves(grads["params"][name])
        assert any(float(jnp.abs(g).max()) > 0 for g in leaves), name
    norm2 = sum(float(jnp.sum(g * g)) for g in jax.tree_util.tree_leaves(grads))
    eps = 1e-3 / np.sqrt(norm2)
    stepped = jax.tree_util.tree_map(lambda p, g: p - eps * g, params, grads)
    # first order: the loss falls by about eps |g|^2 on the same key
    np.testing.assert_allclose(float(value - loss(stepped)), eps * norm2, rtol=0.05)


def test_prior_samples_have_the_datas_shape_and_range(model_and_params):
    model, params = model_and_params
    samples = jaxvae.latent.sample_prior(model, params, KEY, 5)
    assert samples.shape == (5, *SHAPE)
    assert bool(jnp.all((samples >= 0) & (samples <= 1)))
    canvases, _ = jaxvae.draw_tools.prior_canvases(model, params, KEY, 5)
    assert canvases.shape == (5, 3, *SHAPE)


def test_the_chunked_evaluator_runs_on_the_sequence_latent(model_and_params):
    model, params = model_and_params
    x = images(3)
    ll = jaxvae.evaluate.log_likelihood(model, params, x, KEY, num_samples=12,
                                        sample_chunk=4, progress=False)
    elbo = jaxvae.evaluate.log_likelihood(model, params, x, KEY, num_samples=1,
                                          progress=False)
    assert ll.shape == (3,) and bool(np.all(np.isfinite(ll)))
    assert float(np.mean(ll)) > float(np.mean(elbo)) - 1.0


def test_the_program_does_not_grow_with_the_number_of_steps():
    """Encoder and decoder run in lax.scan: the lowered training gradient for T = 2 and
    T = 40 has the same size (an unrolled loop would grow twentyfold)."""
    sizes = []
    for steps in (2, 40):
        model = tiny(True, steps)
        params = jax.eval_shape(model.init_params, KEY)
        x = jax.ShapeDtypeStruct((2, *SHAPE), jnp.float32)
        loss = jaxvae.make_loss(model, "iwae", 2)
        text = jax.jit(jax.grad(lambda p, x: loss(p, x, KEY)[0])).lower(params, x).as_text()
        sizes.append(len(text))
    assert sizes[1] < 1.05 * sizes[0], sizes


def test_estimators_that_split_the_parameters_refuse_draw(model_and_params):
    model, params = model_and_params
    with pytest.raises(ValueError, match="generative networks.*do not apply"):
        jaxvae.split_params(model, params)
    loss = jaxvae.make_loss(model, None, 2, estimator="dreg")
    with pytest.raises(ValueError, match="STL, DReG"):
        loss(params, images(), KEY)
    with pytest.raises(jaxvae.ConfigError, match="no estimator"):
        jaxvae.Config(model="draw", objective="elbo", estimator="stl").validate()


def test_bad_settings_are_refused():
    for bad, match in ((dict(image_shape=(28, 28, 3)), "grey images"),
                       (dict(steps=0), "steps"), (dict(latent_dim=1.5), "latent_dim"),
                       (dict(attention=True, write_size=40), "do not fit")):
        with pytest.raises(ValueError, match=match):
            draw.draw(**bad)
    with pytest.raises(jaxvae.ConfigError, match="two grid sizes"):
        jaxvae.Config(model="draw", attention=(2,)).validate()
    with pytest.raises(jaxvae.ConfigError, match="takes no draw_steps"):
        jaxvae.Config(model="iwae", draw_steps=4).validate()


def test_the_bounds_score_the_canvas_the_sampling_run_drew(model_and_params):
    """sample_terms takes log p(x|z) from the posterior's own run when the log-likelihood is
    the model's: the same draws, values and gradients as decoding z a second time."""
    model, params = model_and_params
    x = images()[3]

    def terms(p, fused):
        q, prior, log_lik = jaxvae.model_terms(model, p, x)
        ll = log_lik if fused else (lambda z: log_lik(z))    # a caller's own function
        t = jaxvae.sample_terms(KEY, q, prior, ll, 3)
        return jnp.sum(t.log_w), t

    (a, ta), ga = jax.value_and_grad(terms, has_aux=True)(params, True)
    (b, tb), gb = jax.value_and_grad(terms, has_aux=True)(params, False)
    for u, v in zip(ta, tb):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    for u, v in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    tempered = jaxvae.sample_terms(KEY, *jaxvae.model_terms(model, params, x)[:2],
                                   lambda z: 0.5 * jaxvae.model_terms(model, params, x)[2](z),
                                   3)
    np.testing.assert_allclose(tempered.log_likelihood, 0.5 * ta.log_likelihood, rtol=1e-5)
    scans = [str(jax.make_jaxpr(lambda p: terms(p, fused)[0])(params)).count("scan[")
             for fused in (True, False)]
    assert scans[0] < scans[1], scans           # the fused path decodes once
