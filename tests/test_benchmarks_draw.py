"""The PyTorch DRAW of the DRAW throughput benchmark computes jaxvae's function.

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
from benchmarks import draw_throughput  # noqa: E402
from benchmarks.peers import torch_draw  # noqa: E402

# not square, so that a swap of rows and columns (H, W; g_Y, g_X) cannot pass
IMAGE_SHAPE = (10, 12)


def _params(model):
    # random values of the right shapes (compiling init_params would take longer than the
    # test); the learned first canvas is random too, so that it is checked
    shapes = jax.eval_shape(model.init_params, jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32), shapes)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, *IMAGE_SHAPE)) < 0.3).astype(np.float32)


@pytest.mark.parametrize("attention", [False, True])
def test_self_check_passes(attention, fast_compilation):
    """The benchmark's self-check: the same log q(z|x), log p(x|z), log-weight and loss,
    and the same gradients leaf by leaf, at the same weights, batch and latents.

    XLA's optimizations are off here, as compiling the check's nine recurrences dominates
    the test; the benchmark runs the same check under the default compiler before it
    times anything."""
    # two steps: the second reads the first's canvas and decoder state (XLA's compile
    # time grows with T here)
    model = draw_throughput.build_model(attention, steps=2, hidden=8, latent=4,
                                        image_shape=IMAGE_SHAPE)
    params = _params(model)
    check = draw_throughput.self_check("attention" if attention else "plain", params, model,
                                       _images(5), seed=0)
    assert check["ok"], check
    assert check["value_max_rel_err"] < 1e-5
    assert max(check["grad_max_rel_err"], check["loss_grad_max_rel_err"]) < 1e-4
    names = set(torch_draw.trainable(torch_draw.from_jaxvae(params, attention, IMAGE_SHAPE)))
    assert set(check["grad_rel_err"]) == set(check["loss_grad_rel_err"]) == names
    assert set(torch_draw.torch_layout(params)) == names
    assert ("read_attention.weight" in names) == attention


def test_from_jaxvae_refuses_the_wrong_attention():
    model = draw_throughput.build_model(False, steps=2, hidden=4, latent=2,
                                        image_shape=IMAGE_SHAPE)
    with pytest.raises(ValueError, match="attention"):
        torch_draw.from_jaxvae(_params(model), True, IMAGE_SHAPE)
    with pytest.raises(ValueError, match="reads"):
        torch_draw.from_jaxvae(_params(model), False, (12, 12))


def test_step_flops_counts_the_second_decoder_pass():
    model = draw_throughput.build_model(True, steps=3, hidden=8, latent=4,
                                        image_shape=IMAGE_SHAPE)
    once = draw_throughput.step_flops(_params(model), batch=5, steps=3,
                                      image_shape=IMAGE_SHAPE, passes=1)
    twice = draw_throughput.step_flops(_params(model), batch=5, steps=3,
                                       image_shape=IMAGE_SHAPE, passes=2)
    layers = once["per_layer_forward"]
    assert layers["decoder/lstm"] == 2 * (4 + 8) * 4 * 8 * 5 * 3
    assert layers["encoder/read_filters"] == 2 * (2 * 2 * 10 * 12 + 2 * 2 * 2 * 12) * 5 * 3
    assert once["total"] == once["jaxvae_total"] == 3 * once["forward"]
    decoder = sum(v for n, v in layers.items() if n.startswith("decoder/"))
    assert twice["jaxvae_forward"] == once["forward"] + decoder
    assert draw_throughput.decoder_passes(model) in (1, 2)
