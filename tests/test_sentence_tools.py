"""Decoding, homotopies, text metrics, the mutual-information estimate, and sentence models
through Config / the command line."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import cli, data, information, sentences
from jaxvae.config import ConfigError

CORPUS = ["the cat sat on the mat", "a dog ran home", "the dog sat", "a cat ran to the mat",
          "the mat was red", "a red dog sat on a cat"] * 10


@pytest.fixture(scope="module")
def small():
    vocab = data.Vocabulary.build(CORPUS)
    ids = data.encode_batch(CORPUS[:6], vocab, 7)[0]
    model = jaxvae.sentence_vae(len(vocab), max_length=7, embed_dim=8, hidden=16, latent_dim=3)
    return vocab, ids, model, model.init_params(jax.random.PRNGKey(0))


def test_mutual_information_of_the_exact_posterior():
    """Data from a linear-Gaussian model and its exact posterior: I(x; z) = H(z) - H(z|x)
    = -1/2 sum_d log S_d, S the posterior variances."""
    model = jaxvae.LinearGaussianVAE(data_dim=5, latent_dim=2, sigma=0.7)
    params = model.exact_params(jax.random.PRNGKey(0), scales=(0.5, 1.5))
    x = jax.vmap(lambda k: model.sample_x(params, k))(jax.random.split(jax.random.PRNGKey(1),
                                                                        3000))
    _, cov = model.exact_posterior(params, x[0])
    exact = -0.5 * float(jnp.sum(jnp.log(jnp.diag(cov))))
    estimate = information.mutual_information(model, params, np.asarray(x),
                                              jax.random.PRNGKey(2), num_draws=3)
    assert abs(estimate - exact) < 0.05, (estimate, exact)
    with pytest.raises(ValueError, match="at least 2"):
        information.mutual_information(model, params, np.asarray(x[:1]), jax.random.PRNGKey(0))


def test_decode_and_homotopy(small):
    vocab, ids, model, params = small
    z = latent_means = jaxvae.latent.encode_mean(model, params, ids[:2])
    greedy = sentences.decode(model, params, z)
    beam1 = sentences.decode(model, params, z, "beam", beam_size=1)
    np.testing.assert_array_equal(greedy, beam1)
    path = sentences.homotopy(model, params, ids[0], ids[1], 4)
    assert path.shape == (4, 9)
    np.testing.assert_array_equal(path[[0, -1]], greedy)      # the ends are the two means
    drawn = sentences.decode(model, params, latent_means, "sample", key=jax.random.PRNGKey(1))
    assert drawn.shape == (2, 9) and (drawn[:, 0] == data.Vocabulary.build([]).bos_id).all()
    unk = data.Vocabulary.build([]).unk_id
    for method, key in (("greedy", None), ("beam", None), ("sample", jax.random.PRNGKey(2))):
        rows = sentences.decode(model, params, jnp.tile(z, (8, 1)), method, key=key,
                                allow_unk=False)
        assert not (rows == unk).any()
    with pytest.raises(ValueError, match="key"):
        sentences.decode(model, params, z, "sample")
    with pytest.raises(ValueError, match="decoding method"):
        sentences.decode(model, params, z, "nucleus")
    with pytest.raises(ValueError, match="codes"):
        sentences.decode(model, params, z[:, :2])


def test_to_text_and_word_counts(small):
    vocab, ids, _, _ = small
    assert sentences.to_text(vocab, ids[:2]) == ["the cat sat on the mat", "a dog ran home"]
    assert sentences.count_words(ids[:2]) == 6 + 1 + 4 + 1          # words and <eos>
    unknown = data.encode_batch(["the zebra sat"], vocab, 7)[0]
    assert sentences.to_text(vocab, unknown) == ["the <unk> sat"]


def test_text_metrics_of_the_language_model(small):
    vocab, ids, _, _ = small
    lm = jaxvae.rnn_lm(len(vocab), max_length=7, embed_dim=8, hidden=16)
    params = lm.init_params(jax.random.PRNGKey(3))
    metrics = sentences.text_metrics(lm, params, ids, jax.random.PRNGKey(4), eval_k=3)
    exact = jax.vmap(jaxvae.bind(lm, params).likelihood(jnp.zeros(0)).log_prob)(ids)
    np.testing.assert_allclose(metrics["nll"], -float(jnp.mean(exact)), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], float(jnp.mean(exact)), rtol=1e-5)
    words = sentences.count_words(ids)
    np.testing.assert_allclose(metrics["ppl"], math.exp(-float(jnp.sum(exact)) / words),
                               rtol=1e-4)
    assert metrics["kl"] == 0.0 and metrics["active_units"] == 0


def _config(tmp_path, **changes):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    values = dict(model="sentence-vae", data=f"text:{corpus}", objective="elbo", k=1,
                  steps=3, batch_size=8, eval_k=2, eval_limit=4, hidden=(8,), embed_dim=4,
                  latent_dim=2, max_length=5, min_count=1, word_keep=0.5,
                  annealing="linear", annealing_steps=2, free_bits=0.1)
    values.update(changes)
    return jaxvae.Config(**values)


def test_sentence_vae_run_directory(tmp_path, fast_compilation):
    run = tmp_path / "run"
    results = jaxvae.train_and_evaluate(_config(tmp_path), str(run), progress=False)
    assert {"nll", "kl", "ppl", "mutual_information", "active_units"} <= set(results.metrics)
    vocab = data.Vocabulary.from_json(json.loads((run / "vocab.json").read_text()))
    assert len(vocab) == results.model.vocab_size
    assert results.model.max_length == 5
    decodes = (run / "decodes.txt").read_text()
    assert "INPUT  the cat sat on the\n" in decodes and "HOMOTOPY" in decodes   # cut to 5
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_kl" in r for r in records)
    config, model, params, info = jaxvae.restore_run(str(run))
    assert info["vocab_size"] == len(vocab) and model == results.model
    # image commands refuse a sentence model with one line
    assert cli.main(["sample", str(run)]) == 2


def test_rnn_lm_from_the_command_line(tmp_path, capsys, fast_compilation):
    config = _config(tmp_path)
    out = tmp_path / "lm"
    argv = ["train", "--model", "rnn-lm", "--data", config.data, "--objective", "elbo", "-k",
            "1", "--steps", "2", "--batch-size", "8", "--eval-k", "2", "--eval-limit", "4",
            "--hidden", "8", "--embed-dim", "4", "--max-length", "5", "--min-count", "1",
            "--word-keep", "0", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "KL 0.00" in printed


IMAGE_MODEL = dict(model="iwae", word_keep=None, max_length=None, min_count=None,
                   embed_dim=None, hidden=None, latent_dim=None)


@pytest.mark.parametrize("changes, field", [
    (dict(data="embedded", **IMAGE_MODEL), None),
    (dict(data="wordnet", **IMAGE_MODEL), "data"),
    ({**IMAGE_MODEL, "data": "embedded", "max_length": 4}, "max_length"),
    (dict(data="npz:/x.npz"), "data"),
    (dict(likelihood="gaussian"), "likelihood"),
    (dict(word_keep=1.5), "word_keep"),
    (dict(objective="iwae", annealing="none", annealing_steps=None), "free_bits"),
    (dict(estimator="stl"), "free_bits"),
    (dict(max_length=0), "max_length"),
])
def test_config_checks(tmp_path, changes, field):
    config = _config(tmp_path, **changes)
    if field is None:       # the image model with the image data is fine
        config.validate()
        return
    with pytest.raises(ConfigError) as err:
        config.validate()
    assert field in str(err.value) or err.value.field == field


def test_bad_corpus_fails_before_anything_is_written(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    run = tmp_path / "run"
    with pytest.raises(ValueError):
        jaxvae.train_and_evaluate(_config(tmp_path, data=f"text:{empty}"), str(run),
                                  progress=False)
    assert not run.exists() or not os.listdir(run)
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        jaxvae.train_and_evaluate(_config(tmp_path, data=f"text:{binary}"), None,
                                  progress=False)
