"""The PyTorch sentence VAE of the sentence throughput benchmark computes jaxvae's function.

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
from benchmarks import sentence_throughput  # noqa: E402
from benchmarks.peers import torch_sentence  # noqa: E402
from jaxvae.models.sentence import sentence_vae  # noqa: E402

VOCAB, MAX_LENGTH = 40, 6


def _rows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows ``<bos> w_1 .. w_k <eos> <pad> ..`` of lengths 0..MAX_LENGTH."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, MAX_LENGTH + 2), np.int32)
    for i in range(n):
        k = i % (MAX_LENGTH + 1)
        rows[i, 0], rows[i, k + 1] = 2, 3
        rows[i, 1:k + 1] = rng.choice(np.r_[1, 4:VOCAB], k)   # words and <unk>
    return rows


def _params(model):
    # random values of the right shapes (compiling init_params would take longer than the test)
    shapes = jax.eval_shape(model.init_params, jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32), shapes)


@pytest.mark.parametrize("word_keep", [1.0, 0.5])
def test_self_check_passes(word_keep):
    """The benchmark's self-check: the same loss and gradients, leaf by leaf, at the same
    weights, batch, noise and word-dropout draw."""
    model = sentence_vae(VOCAB, MAX_LENGTH, embed_dim=8, hidden=6, latent_dim=3,
                         word_keep=word_keep)
    check = sentence_throughput.self_check(f"keep{word_keep}", _params(model), model,
                                           _rows(9), seed=0)
    assert check["ok"], check
    assert check["loss_rel_err"] < 1e-5 and check["grad_max_rel_err"] < 1e-4
    assert set(check["grad_rel_err"]) == set(torch_sentence.trainable(
        torch_sentence.from_jaxvae(_params(model))))
    if word_keep < 1.0:
        assert 0 < check["words_dropped"] < check["words"]


def test_torch_word_dropout_keeps_bos_and_pad():
    model = torch_sentence.SentenceVAE(VOCAB, 4, 4, 2, word_keep=0.5)
    inputs = torch.from_numpy(np.asarray(_rows(200)[:, :-1], np.int64))
    torch.manual_seed(0)
    dropped = model.drop_words(inputs)
    special = (inputs == 2) | (inputs == 0)
    assert torch.equal(dropped[special], inputs[special])
    changed = dropped != inputs
    assert torch.all(dropped[changed] == 1)
    rate = changed.sum().item() / ((~special) & (inputs != 1)).sum().item()
    assert 0.4 < rate < 0.6


def test_step_flops_counts_the_output_layer():
    model = sentence_vae(VOCAB, MAX_LENGTH, embed_dim=8, hidden=6, latent_dim=3)
    flops = sentence_throughput.step_flops(_params(model), batch=5, length=MAX_LENGTH + 2)
    assert flops["per_layer_forward"]["decoder/out"] == 2 * 6 * VOCAB * 5 * (MAX_LENGTH + 1)
    assert flops["total"] == 3 * flops["forward"]
