"""The PyTorch conv VAE of the conv throughput benchmark computes jaxvae's function.

Skipped where torch is not installed (it is a benchmark extra: ``pip install -e '.[bench]'``).
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxvae  # noqa: E402
from benchmarks.peers import torch_conv  # noqa: E402
from jaxvae.models import conv  # noqa: E402


def test_depth_to_space_and_unpool_orders_match_jaxvae():
    x = np.arange(2 * 3 * 3 * 8, dtype=np.float32).reshape(2, 3, 3, 8)        # NHWC
    want = np.asarray(conv.depth_to_space(jnp.asarray(x)))                    # [2, 6, 6, 2]
    got = torch_conv.depth_to_space(torch.from_numpy(x).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)
    want = np.asarray(conv.unpool(jnp.asarray(x)))
    got = torch_conv.unpool(torch.from_numpy(x).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)


@pytest.mark.parametrize("decoder", conv.DECODERS)
def test_torch_conv_vae_has_jaxvae_loss(decoder):
    model = conv.conv_vae((8, 8), decoder=decoder, levels=2, channels=(4, 8), hidden=16,
                          latent_dim=3)
    # random values of the right shapes (compiling init_params would take longer than the test)
    shapes = jax.eval_shape(model.init_params, jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32), shapes)
    x = (np.random.default_rng(0).random((3, 8, 8)) < 0.3).astype(np.float32)
    k, key = 2, jax.random.PRNGKey(1)
    loss, _ = jax.jit(jaxvae.make_loss(model, "iwae", k))(params, jnp.asarray(x), key)

    def eps_of(xi, ki):       # the noise the loss drew: one key per example, k samples
        q = jaxvae.bind(model, params).posterior(xi)
        return (q.sample(seed=ki, sample_shape=(k,)) - q.distribution.loc) / q.distribution.scale

    eps = jax.jit(jax.vmap(eps_of))(jnp.asarray(x), jax.random.split(key, x.shape[0]))
    tm = torch_conv.from_jaxvae(params, decoder)
    got = tm.loss(torch.from_numpy(x), torch.from_numpy(np.asarray(eps)))
    assert got.item() == pytest.approx(float(loss), rel=1e-5)
