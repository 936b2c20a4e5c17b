"""Convolutional VAEs: the layer plan, the three up-sampling decoders, the contract.

Shapes are tiny (8 x 8 and 16 x 16 images, a few channels) so that compilation dominates;
the image sizes of real data (28 x 28, 32 x 32 x 3, 64 x 64 x 3) are checked through the
plan and one initialization each.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import likelihoods
from jaxvae.models import conv

KEY = jax.random.PRNGKey(0)
# compilation dominates these tiny shapes; the numbers checked do not depend on XLA's passes
pytestmark = pytest.mark.usefixtures("fast_compilation")


def _init(model):
    return jax.jit(model.init_params)(KEY)     # one compilation instead of many eager ops


def _small(event_shape=(8, 8), decoder="transposed", head=likelihoods.Bernoulli()):
    return conv.conv_vae(event_shape, latent_dim=3, decoder=decoder, hidden=16,
                         channels=(4, 6), levels=2, head=head)


def test_depth_to_space_matches_the_formula_index_by_index():
    # The seed's reshape, as a loop: the 4C channels at low-resolution pixel (i, j) are
    # divided among the four pixels (2i + a, 2j + b), C each, in row-major block order.
    h, w, c = 3, 2, 5
    x = np.arange(h * w * 4 * c, dtype=np.float32).reshape(h, w, 4 * c)
    expected = np.zeros((2 * h, 2 * w, c), np.float32)
    for i in range(h):
        for j in range(w):
            for a in range(2):
                for b in range(2):
                    for ch in range(c):
                        expected[2 * i + a, 2 * j + b, ch] = x[i, j, (2 * a + b) * c + ch]
    np.testing.assert_array_equal(np.asarray(conv.depth_to_space(jnp.asarray(x))), expected)
    # with leading batch axes, each image is rearranged on its own
    batch = np.stack([x, -x])
    out = np.asarray(conv.depth_to_space(jnp.asarray(batch)))
    np.testing.assert_array_equal(out[1], -expected)


def test_depth_to_space_block_3_and_bad_depth():
    x = np.arange(2 * 2 * 18, dtype=np.float32).reshape(2, 2, 18)
    out = np.asarray(conv.depth_to_space(jnp.asarray(x), block=3))
    assert out.shape == (6, 6, 2)
    assert out[3 * 1 + 2, 3 * 0 + 1, 1] == x[1, 0, (3 * 2 + 1) * 2 + 1]
    with pytest.raises(ValueError, match="7 channels cannot be split into 2x2"):
        conv.depth_to_space(jnp.zeros((2, 2, 7)))


def test_unpool_places_each_value_top_left_of_a_zero_block():
    x = np.arange(1, 1 + 2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    out = np.asarray(conv.unpool(jnp.asarray(x)))
    expected = np.zeros((4, 6, 2), np.float32)
    for i in range(2):
        for j in range(3):
            expected[2 * i, 2 * j] = x[i, j]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape, levels, base, widths", [
    ((28, 28), 2, (7, 7), (32, 64)),
    ((28, 28, 1), 2, (7, 7), (32, 64)),
    ((32, 32, 3), 3, (4, 4), (32, 64, 128)),
    ((64, 64, 3), 4, (4, 4), (32, 64, 128, 256)),
    ((48, 80, 3), 3, (6, 10), (32, 64, 128)),
])
def test_layer_plan_follows_the_event_shape(shape, levels, base, widths):
    plan = conv.layer_plan(shape)
    assert (plan.levels, plan.base, plan.widths) == (levels, base, widths)
    assert plan.channels == (shape[2] if len(shape) == 3 else 1)


@pytest.mark.parametrize("shape, kwargs, message", [
    ((27, 27), {}, r"cannot tile an image of shape \(27, 27\).*H = 26 or 28"),
    ((30, 30), {"levels": 2}, r"divisible by 2\^2 = 4; e.g. H = 28 or 32"),
    ((784,), {}, r"\(H, W\) or \(H, W, C\)"),
    ((28, 28), {"channels": (8,)}, r"channels must give 2 positive widths"),
])
def test_layer_plan_errors_name_the_shape(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv.layer_plan(shape, **kwargs)
    with pytest.raises(ValueError, match=message):
        conv.conv_vae(shape, **kwargs)


def test_unknown_decoder():
    with pytest.raises(ValueError, match="unknown decoder 'deconv'"):
        conv.conv_vae((8, 8), decoder="deconv")


@pytest.mark.parametrize("decoder, shape", [("transposed", (8, 8)), ("transposed", (8, 8, 3)),
                                            ("depth-to-space", (8, 8, 3)), ("unpool", (8, 8))])
def test_each_decoder_produces_the_event_shape(decoder, shape):
    model = _small(shape, decoder)
    params = _init(model)
    q, prior, log_lik = jaxvae.model_terms(model, params, jnp.full(shape, 0.5))
    z = q.sample(seed=KEY)
    dist = jaxvae.bind(model, params).likelihood(z)
    assert dist.event_shape == shape and z.shape == (3,)
    assert np.isfinite(float(log_lik(z))) and np.isfinite(float(prior.log_prob(z)))


def test_decoders_up_sample_with_their_own_layers():
    # parameter shapes by tracing alone: the last up-sampling step (6 -> 4 channels)
    kernels = {}
    for decoder in conv.DECODERS:
        shapes = jax.eval_shape(_small(decoder=decoder).init_params, KEY)["params"]["decoder"]
        kernels[decoder] = [leaf.shape for path, leaf in
                            jax.tree_util.tree_flatten_with_path(shapes)[0]
                            if "Upsample_1" in jax.tree_util.keystr(path)
                            and "kernel" in jax.tree_util.keystr(path)][0]
    assert kernels == {"transposed": (4, 4, 6, 4), "depth-to-space": (3, 3, 6, 16),
                       "unpool": (3, 3, 6, 4)}


def test_batched_encoder_equals_one_example_at_a_time():
    model = _small((8, 8, 3))
    params = _init(model)
    x = jax.random.uniform(KEY, (4, 8, 8, 3))
    batched = model.apply(params, x, method="posterior")
    single = jax.vmap(lambda xi: model.apply(params, xi, method="posterior").distribution.loc)(x)
    np.testing.assert_allclose(np.asarray(batched.distribution.loc), np.asarray(single),
                               rtol=1e-5, atol=1e-6)


def test_channel_mismatch_between_data_and_model_is_named():
    model = _small((8, 8, 3))
    params = _init(model)
    with pytest.raises(ValueError, match=r"expects images of shape \(8, 8, 3\).*got shape "
                                          r"\(8, 8, 1\).*differ in their channels"):
        model.apply(params, jnp.zeros((8, 8, 1)), method="posterior")
    with pytest.raises(ValueError, match=r"\(8, 8, 3\).*\(2, 8, 8, 1\)"):
        jaxvae.make_objective(model, "elbo", 1)(params, jnp.zeros((2, 8, 8, 1)), KEY)


def test_objectives_estimators_and_evaluator_run_unchanged():
    model = _small()
    params = _init(model)
    x = (jax.random.uniform(KEY, (2, 8, 8)) > 0.5).astype(jnp.float32)
    # IWAE with k=1 is the ELBO with the Monte Carlo KL: same key, same value
    elbo = jaxvae.make_objective(model, "elbo", 1)(params, x, KEY)
    iwae1 = jaxvae.make_objective(model, "iwae", 1)(params, x, KEY)
    np.testing.assert_allclose(np.asarray(elbo), np.asarray(iwae1), rtol=1e-6)
    # the bound rises with k (in expectation; here over 8 images and a fixed key)
    x8 = (jax.random.uniform(jax.random.PRNGKey(1), (8, 8, 8)) > 0.5).astype(jnp.float32)
    b1 = jaxvae.make_objective(model, "iwae", 1)(params, x8, KEY)
    b50 = jaxvae.make_objective(model, "iwae", 20)(params, x8, KEY)
    assert float(jnp.mean(b50)) > float(jnp.mean(b1))
    # DReG splits the parameters by the encoder name and gives finite gradients
    loss = jaxvae.make_loss(model, "iwae", 4, estimator="dreg")
    grads = jax.jit(jax.grad(lambda p: loss(p, x, KEY)[0]))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    ll = jaxvae.evaluate.log_likelihood(model, params, x, KEY, num_samples=10, sample_chunk=5,
                                        progress=False)
    assert ll.shape == (2,) and np.all(ll <= 0)


def test_preset_and_config():
    config = jaxvae.Config(model="conv", decoder="unpool", latent_dim=4, hidden=(16,),
                           channels=(4, 8)).validate()
    model = jaxvae.presets.get_preset("conv").build(config, (16, 16), None)
    assert model.decoder.decoder == "unpool" and model.latent_dim == 4
    with pytest.raises(jaxvae.ConfigError, match="takes no decoder"):
        jaxvae.Config(model="iwae", decoder="unpool").validate()
    with pytest.raises(jaxvae.ConfigError, match="unknown decoder"):
        jaxvae.Config(model="conv", decoder="deconv").validate()


def test_data_type_and_head_must_agree_before_training():
    x8 = np.full((2, 8, 8), 200, np.uint8)
    logistic = _small(head=likelihoods.DiscretizedLogistic())
    params = _init(logistic)
    bound = jaxvae.make_objective(logistic, "elbo", 1)
    assert np.all(np.isfinite(np.asarray(bound(params, x8, KEY))))
    with pytest.raises(ValueError, match="8-bit integers.*dtype float"):
        bound(params, x8 / 255.0, KEY)
    gaussian = _small(head=likelihoods.Gaussian(0.1))
    with pytest.raises(ValueError, match="uint8"):
        jaxvae.make_objective(gaussian, "elbo", 1)(_init(gaussian), x8, KEY)
