"""The sentence VAE: its likelihood is a normalized autoregressive distribution, word
dropout, decoding, the RNN LM as the latent_dim=0 model, free bits."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import data
from jaxvae.models import sentence, token_sequence
from jaxvae.models.token_sequence import BOS, EOS, PAD, UNK

V = 6            # the four reserved ids and two words (4, 5)
OUTPUTS = (UNK, EOS, 4, 5)    # what the decoder may emit
TINY = dict(embed_dim=4, hidden=8)


def row(words, max_length):
    ids = [BOS, *words, EOS] if len(words) <= max_length else [BOS, *words]
    return np.array(ids + [PAD] * (max_length + 2 - len(ids)), np.int32)


@pytest.fixture(scope="module")
def tiny():
    model = sentence.sentence_vae(V, max_length=2, latent_dim=3, **TINY)
    params = model.init_params(jax.random.PRNGKey(0))
    # a stronger start than init: make the decoder's probabilities far from uniform
    params = jax.tree_util.tree_map(lambda a: 3.0 * a, params)
    return model, params


def test_reserved_ids_match_the_vocabulary():
    vocab = data.Vocabulary.build(["a b"])
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (PAD, UNK, BOS, EOS)


def test_likelihood_sums_to_one_over_every_sentence(tiny):
    """Sentences of 0..2 words (ending in <eos>) plus rows of 3 words without <eos> (the
    decoder ran past the row) are all the outcomes: their probabilities sum to 1."""
    model, params = tiny
    z = jnp.array([0.3, -1.0, 0.5])
    dist = jaxvae.bind(model, params).likelihood(z)
    words = [w for w in OUTPUTS if w != EOS]
    rows = [row(list(s), 2) for n in range(3) for s in itertools.product(words, repeat=n)]
    rows += [row(list(s), 2) for s in itertools.product(words, repeat=3)]
    total = jnp.sum(jnp.exp(jax.vmap(dist.log_prob)(jnp.stack(rows))))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_teacher_forcing_equals_step_by_step_decoding(tiny):
    model, params = tiny
    z = jnp.array([1.0, 0.2, -0.4])
    dist = jaxvae.bind(model, params).likelihood(z)
    x = row([4, 5], 2)
    carry = dist.decoder.apply(dist.variables, z, method="start")
    total = 0.0
    for t in range(1, 4):
        carry, logits = dist.decoder.apply(dist.variables, carry, x[t - 1], z, method="step")
        total += token_sequence.next_token_log_probs(logits)[x[t]]
    np.testing.assert_allclose(dist.log_prob(x), total, rtol=1e-5)


def test_padding_and_row_length_change_nothing(tiny):
    """The parameters do not depend on max_length: one sentence padded to 2 or to 7 words
    has the same q(z|x) and the same log p(x|z)."""
    model, params = tiny
    longer = model.clone(max_length=7)
    for m, x in ((model, row([4, 5], 2)), (longer, row([4, 5], 7))):
        q, _, log_lik = jaxvae.model_terms(m, params, x)
        if m is model:
            ref = (q.mean(), q.stddev(), log_lik(jnp.ones(3)))
        else:
            for a, b in zip(ref, (q.mean(), q.stddev(), log_lik(jnp.ones(3)))):
                np.testing.assert_allclose(a, b, rtol=1e-5)


def test_ancestral_samples_follow_the_probabilities(tiny):
    model, params = tiny
    dist = jaxvae.bind(model, params).likelihood(jnp.zeros(3))
    samples = np.asarray(dist.sample(seed=jax.random.PRNGKey(1), sample_shape=4000))
    assert (samples[:, 0] == BOS).all()
    rows, counts = np.unique(samples, axis=0, return_counts=True)
    probs = np.exp(np.asarray(jax.vmap(dist.log_prob)(jnp.asarray(rows))))
    assert probs.sum() <= 1.0 + 1e-5
    common = probs > 0.02
    # binomial standard errors; 5 sigma
    se = np.sqrt(probs * (1 - probs) / 4000)
    assert np.all(np.abs(counts[common] / 4000 - probs[common]) < 5 * se[common])


def test_greedy_and_beam_search(tiny):
    model, params = tiny
    z = jnp.array([0.5, 0.5, -2.0])

    @jax.jit
    def decodes(params):
        dist = jaxvae.bind(model, params).likelihood(z)
        return dist.greedy(), dist.beam_search(1), dist.beam_search(4), dist.beam_search(16)

    greedy, (ids1, _), (ids, score), (_, score16) = decodes(params)
    np.testing.assert_array_equal(greedy, ids1)
    # every possible row: sentences of 0..2 words and rows running past without <eos>
    words = [w for w in OUTPUTS if w != EOS]
    rows = [row(list(s), 2) for n in range(4) for s in itertools.product(words, repeat=n)]
    dist = jaxvae.bind(model, params).likelihood(z)
    log_p = jax.jit(jax.vmap(dist.log_prob))(jnp.stack([*rows, ids, greedy]))
    np.testing.assert_allclose(score, log_p[-2], rtol=1e-5)
    assert score >= log_p[-1] - 1e-5
    # width 16 keeps every prefix of 3 outputs over 2 steps: the exact best row
    np.testing.assert_allclose(score16, jnp.max(log_p[:-2]), rtol=1e-5)
    with pytest.raises(ValueError, match="beam_size"):
        dist.beam_search(0)


def test_word_dropout():
    key = jax.random.PRNGKey(0)
    inputs = jnp.array([BOS] + [7] * 2000 + [PAD] * 5)
    dropped = token_sequence.drop_words(key, inputs, 0.75)
    assert dropped[0] == BOS and (dropped[-5:] == PAD).all()
    assert abs(float(jnp.mean(dropped[1:-5] == UNK)) - 0.25) < 0.04
    np.testing.assert_array_equal(token_sequence.drop_words(None, inputs, 0.75), inputs)
    inputless = token_sequence.drop_words(None, inputs, 0.0)
    assert (inputless[1:-5] == UNK).all()


def test_inputless_decoder_never_reads_the_words():
    model = sentence.sentence_vae(V, max_length=3, latent_dim=2, word_keep=0.0, **TINY)
    params = model.init_params(jax.random.PRNGKey(1))
    dist = jaxvae.bind(model, params).likelihood(jnp.ones(2))
    a, b = row([4, 4, 5], 3), row([5, 5, 4], 3)
    np.testing.assert_allclose(dist.logits(a), dist.logits(b))


def test_training_noise_only_in_training():
    model = sentence.sentence_vae(V, max_length=4, latent_dim=2, word_keep=0.5, **TINY)
    params = model.init_params(jax.random.PRNGKey(2))
    x = np.stack([row([4, 5, 4, 5], 4)] * 3)
    key = jax.random.PRNGKey(3)
    loss = jax.jit(jaxvae.make_loss(model, "elbo", 1, analytic_kl=True))
    evaluation = jaxvae.make_objective(model, "elbo", 1, analytic_kl=True)
    with_dropout = [float(loss(params, x, jax.random.PRNGKey(s))[0]) for s in range(4)]
    assert len(set(with_dropout)) > 1
    # evaluation sees every word: the same as a model without word dropout
    plain = model.clone(word_keep=1.0)
    np.testing.assert_allclose(evaluation(params, x, key),
                               jaxvae.make_objective(plain, "elbo", 1, analytic_kl=True)(
                                   params, x, key), rtol=1e-6)
    assert model.rng_streams == ("word_dropout",) and plain.rng_streams == ()


def test_rnn_lm_bounds_are_exact():
    lm = sentence.rnn_lm(V, max_length=3, **TINY)
    params = lm.init_params(jax.random.PRNGKey(4))
    assert "encoder" not in params["params"] and lm.inference_networks == ()
    x = np.stack([row([4, 5], 3), row([5], 3)])
    key = jax.random.PRNGKey(5)
    exact = jax.vmap(lambda xi: jaxvae.bind(lm, params).likelihood(jnp.zeros(0)).log_prob(xi))(x)
    for objective, k in (("elbo", 1), ("iwae", 7)):
        np.testing.assert_allclose(jaxvae.make_objective(lm, objective, k)(params, x, key),
                                   exact, rtol=1e-6)


def test_free_bits_loss():
    model = sentence.sentence_vae(V, max_length=3, latent_dim=3, **TINY)
    params = model.init_params(jax.random.PRNGKey(6))
    x = np.stack([row([4, 5], 3), row([5, 5, 4], 3)])
    key = jax.random.PRNGKey(7)
    # free_bits = 0 is the ELBO with the closed-form KL, on the same draws
    elbo_loss = jaxvae.make_loss(model, "elbo", 1, analytic_kl=True)
    encoder_only = jaxvae.make_objective(model, "elbo", 1, analytic_kl=True, beta=0.0)
    grad_of = lambda f: jax.grad(lambda p: f(p)[0])(params)["params"]["encoder"]["head"]

    @jax.jit
    def run(params, lam):
        fb = jaxvae.make_loss(model, "elbo", 1, free_bits=lam)
        reconstruction_only = lambda p: (-encoder_only(p, x, key).mean(),)
        return (fb(params, x, key), elbo_loss(params, x, key)[0],
                jaxvae.make_loss(model, "elbo", 1, free_bits=0.0)(params, x, key)[1]["kl"],
                grad_of(lambda p: fb(p, x, key)), grad_of(reconstruction_only))

    (loss0, info0), elbo, kl, _, _ = run(params, 0.0)
    np.testing.assert_allclose(loss0, elbo, rtol=1e-6)
    np.testing.assert_allclose(-loss0, info0["bound"], rtol=1e-6)
    # a floor above every unit's KL: the loss no longer moves the encoder's KL
    lam = float(kl) + 1.0
    (loss, info), _, _, grad, ref = run(params, lam)
    np.testing.assert_allclose(loss, -(info["bound"] + info["kl"]) + 3 * lam, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="free_bits"):
        jaxvae.make_loss(model, "iwae", 5, free_bits=1.0)
    with pytest.raises(ValueError, match="free_bits"):
        jaxvae.make_free_bits_loss(model, -1.0)


def test_bad_settings_and_data():
    with pytest.raises(ValueError, match="word_keep"):
        sentence.sentence_vae(V, word_keep=1.5)
    with pytest.raises(ValueError, match="vocab_size"):
        sentence.sentence_vae(3)
    model = sentence.sentence_vae(V, max_length=2, latent_dim=2, **TINY)
    params = model.init_params(jax.random.PRNGKey(0))
    bound = jaxvae.make_objective(model, "elbo", 1)
    with pytest.raises(ValueError):
        bound(params, np.full((2, 4), 9, np.int32), jax.random.PRNGKey(0))   # id >= V
    with pytest.raises(ValueError):
        bound(params, np.zeros((2, 4), np.float32) + 0.5, jax.random.PRNGKey(0))
    with pytest.raises(ValueError):
        bound(params, np.zeros((2, 5), np.int32), jax.random.PRNGKey(0))     # wrong length


def test_the_program_does_not_grow_with_the_sentence_length():
    """Both LSTMs are scans: the lowered training loss of 5-word and 60-word rows has the
    same size (an unrolled loop would grow twelvefold)."""
    sizes = []
    for max_length in (5, 60):
        model = sentence.sentence_vae(V, max_length=max_length, latent_dim=2, **TINY)
        params = jax.eval_shape(model.init_params, jax.random.PRNGKey(0))
        x = jax.ShapeDtypeStruct((2, max_length + 2), jnp.int32)
        loss = jaxvae.make_loss(model, "elbo", 1, analytic_kl=True)
        text = jax.jit(jax.grad(lambda p, x: loss(p, x, jax.random.PRNGKey(0))[0])).lower(
            params, x).as_text()
        sizes.append(len(text))
    assert sizes[1] < 1.1 * sizes[0], sizes
