"""Many runs in one program: R vectorised runs with fused steps equal R lone runs."""

import json
import os

import jax
import numpy as np
import optax
import pytest

import jaxvae
from jaxvae import data, runs, train

N, B, K = 40, 10, 3          # 4 steps per epoch: 6 steps cross an epoch boundary
MODEL = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=2, hidden=(6,))
SEEDS = [0, 1, 2]
pytestmark = pytest.mark.usefixtures("fast_compilation")     # short runs: compile time rules
# run r: (objective, beta, learning rate)
SETTINGS = [("elbo", 1.0, 1e-2), ("iwae", 1.0, 3e-2), ("elbo", 0.5, 1e-2)]


def train_x():
    return np.asarray(jax.random.uniform(jax.random.PRNGKey(7), (N, 12)), np.float32)


def lone_run(r, num_steps):
    """Run r alone, step by step, through make_train_step and fit."""
    objective, beta, lr = SETTINGS[r]
    options = {"beta": beta} if objective == "elbo" else {}
    loss_fn = jaxvae.make_loss(MODEL, objective, K, **options)
    tx = optax.adam(lr)
    state = train.create_train_state(MODEL.init_params(jax.random.PRNGKey(10 + r)), tx,
                                     jax.random.PRNGKey(20 + r))
    step = train.make_train_step(loss_fn, tx, preprocess=data.dynamic_binarization)
    return train.fit(state, step, train_x(), batch_size=B, num_epochs=2, num_steps=num_steps,
                     seed=SEEDS[r], progress=False)


def group(run_axis, num_steps, steps_per_call=4, **kwargs):
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
    states = runs.init_runs([MODEL.init_params(jax.random.PRNGKey(10 + r)) for r in range(3)],
                            tx, [jax.random.PRNGKey(20 + r) for r in range(3)],
                            hyperparams={"learning_rate": [s[2] for s in SETTINGS]})
    hparams = {"iwae": np.array([s[0] == "iwae" for s in SETTINGS]),
               "beta": np.array([s[1] for s in SETTINGS], np.float32)}
    step = runs.make_runs_step(jaxvae.make_run_loss(MODEL, K), tx,
                               preprocess=data.dynamic_binarization, run_axis=run_axis)
    return runs.fit_runs(states, step, train_x(), batch_size=B, num_steps=num_steps, seeds=SEEDS,
                         hparams=hparams, steps_per_call=steps_per_call, progress=False,
                         **kwargs)


@pytest.fixture(scope="module")
def lone():
    return [lone_run(r, 6) for r in range(3)]


@pytest.mark.parametrize("run_axis", runs.RUN_AXES)
def test_vectorised_runs_with_fused_steps_equal_lone_runs(lone, run_axis):
    states = group(run_axis, 6)            # calls of 4 and 2 steps
    assert np.asarray(states.step).tolist() == [6, 6, 6]
    for r in range(3):
        got = runs.run_slice(states, r)
        for a, b in zip(jax.tree_util.tree_leaves(got.params),
                        jax.tree_util.tree_leaves(lone[r].params)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    # the runs really differ (different seeds, objectives, learning rates)
    first = [jax.tree_util.tree_leaves(runs.run_slice(states, r).params)[0] for r in range(3)]
    assert not np.allclose(first[0], first[2])


def test_a_training_set_too_large_for_the_device_is_sent_per_call(lone, monkeypatch):
    monkeypatch.setattr(runs, "_fits", lambda *args: False)
    states = group("map", 6)
    for r in range(3):
        np.testing.assert_allclose(jax.tree_util.tree_leaves(runs.run_slice(states, r).params)[0],
                                   jax.tree_util.tree_leaves(lone[r].params)[0],
                                   rtol=2e-5, atol=2e-6)


def test_batch_indices_follow_the_order_of_data_batches():
    x = np.arange(N)
    idx = runs.batch_indices(N, B, [3, 5], start=2, count=5)      # steps 2..6, two epochs
    for r, seed in enumerate([3, 5]):
        lone = [b for e in range(2) for b in data.batches(x, B, seed=seed, epoch=e)][2:7]
        np.testing.assert_array_equal(idx[:, r], np.stack(lone))


def test_run_directories_hold_per_run_metrics_and_checkpoints_and_resume(tmp_path, lone):
    dirs = [str(tmp_path / f"run{r}") for r in range(3)]
    evals = lambda s: {"eval_step": np.asarray(s.step) * 1.0}
    group("map", 4, steps_per_call=3, workdirs=dirs, eval_fn=evals, eval_every=2)
    records = [json.loads(line) for line in open(os.path.join(dirs[1], "metrics.jsonl"))]
    assert [r["step"] for r in records] == [2, 4] and records[-1]["eval_step"] == 4.0
    with pytest.raises(jaxvae.CheckpointError, match="resume=True"):
        group("map", 6, workdirs=dirs)
    resumed = group("map", 6, workdirs=dirs, resume=True)
    records = [json.loads(line) for line in open(os.path.join(dirs[1], "metrics.jsonl"))]
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in range(3):                   # a resumed group continues as the lone run did
        np.testing.assert_allclose(jax.tree_util.tree_leaves(runs.run_slice(resumed, r).params)[0],
                                   jax.tree_util.tree_leaves(lone[r].params)[0],
                                   rtol=2e-5, atol=2e-6)
    # each run's checkpoint is a lone run's TrainState
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
    like = train.create_train_state(MODEL.init_params(jax.random.PRNGKey(0)), tx,
                                    jax.random.PRNGKey(0))
    ckpt = train.Checkpointer(os.path.join(dirs[2], "checkpoints"))
    try:
        state = ckpt.restore(like)
    finally:
        ckpt.close()
    assert int(state.step) == 6
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-2)


def test_a_diverging_run_is_named():
    tx = optax.adam(1e-3)
    states = runs.init_runs([MODEL.init_params(jax.random.PRNGKey(r)) for r in range(2)], tx,
                            [jax.random.PRNGKey(r) for r in range(2)])
    nan_in_run_1 = lambda p, x, k, h: (h["scale"] * jaxvae.make_loss(MODEL, "elbo")(p, x, k)[0],
                                       {})
    step = runs.make_runs_step(nan_in_run_1, tx, run_axis="vmap")
    with pytest.raises(jaxvae.TrainingDivergedError, match=r"run\(s\) \[1\]"):
        runs.fit_runs(states, step, train_x(), batch_size=B, num_steps=2, seeds=[0, 1],
                      hparams={"scale": np.array([1.0, np.nan], np.float32)}, progress=False)


def test_bad_arguments_raise_clear_errors():
    tx = optax.adam(1e-3)
    params = [MODEL.init_params(jax.random.PRNGKey(0))]
    with pytest.raises(ValueError, match="inject_hyperparams"):
        runs.init_runs(params, tx, [jax.random.PRNGKey(0)], hyperparams={"learning_rate": [1.0]})
    with pytest.raises(ValueError, match="one value per run"):
        runs.init_runs(params, optax.inject_hyperparams(optax.adam)(learning_rate=1.0),
                       [jax.random.PRNGKey(0)], hyperparams={"learning_rate": [1.0, 2.0]})
    with pytest.raises(ValueError, match="keys"):
        runs.init_runs(params, tx, [])
    with pytest.raises(ValueError, match="run_axis"):
        runs.make_runs_step(jaxvae.make_loss(MODEL, "elbo"), tx, run_axis="pmap")


def tiny_config(**kw):
    settings = dict(model="iwae", hidden=(8,), latent_dim=2, k=2, steps=3, batch_size=10,
                    eval_k=3, eval_limit=6)
    return jaxvae.Config(**{**settings, **kw})


def test_train_runs_equals_train_and_evaluate_per_config(tmp_path):
    configs = [tiny_config(objective="elbo", seed=0), tiny_config(objective="iwae", seed=1),
               tiny_config(objective="elbo", seed=1, beta=0.5, lr=3e-3),
               tiny_config(objective="iwae", k=3)]                 # another shape: own group
    assert jaxvae.experiment_runs.group_configs(configs) == [[0, 1, 2], [3]]
    grouped = jaxvae.train_runs(configs, str(tmp_path), progress=False, steps_per_call=2)
    assert grouped[3].metrics["steps"] == 3 and grouped[3].metrics["group_size"] == 1
    for config, got in zip(configs[:3], grouped):
        alone = jaxvae.train_and_evaluate(config, progress=False, pictures=False)
        for key in ("nll", "test_elbo", "active_units", "steps"):
            assert got.metrics[key] == pytest.approx(alone.metrics[key], rel=1e-4, abs=1e-4), key
    assert grouped[0].metrics["group_size"] == 3
    _, _, params, _ = jaxvae.restore_run(str(tmp_path / "run-2"))   # an ordinary run directory
    for a, b in zip(jax.tree_util.tree_leaves(params),
                    jax.tree_util.tree_leaves(grouped[2].params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(jaxvae.ConfigError, match="already holds a run"):
        jaxvae.train_runs(configs[:1], str(tmp_path), progress=False)
    with pytest.raises(jaxvae.ConfigError, match="density"):
        jaxvae.train_runs([jaxvae.Config(model="bayesian-mlp", objective="elbo")], progress=False)
