import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvae
from jaxvae import train

KEY = jax.random.PRNGKey(0)


def toy(n=64, dim=16):
    return np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (n, dim)), np.float32)


def setup(lr=3e-3):
    model = jaxvae.iwae_mlp(event_shape=(16,), latent_dim=2, hidden=(8,))
    tx = optax.adam(lr)
    loss_fn = jaxvae.make_loss(model, "iwae", 3)
    state = train.create_train_state(model.init_params(KEY), tx, jax.random.PRNGKey(1))
    return model, tx, loss_fn, state


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_train_step_is_compiled_once_and_matches_manual_update():
    model, tx, loss_fn, state = setup()
    step = train.make_train_step(loss_fn, tx, donate=False)
    batch = jnp.asarray(toy()[:8])
    new_state, metrics = step(state, batch)
    # the same update by hand, with the key schedule fold_in(key, step) -> split
    _, key_loss = jax.random.split(jax.random.fold_in(state.key, 0))
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key_loss)
    updates, _ = tx.update(grads, state.opt_state, state.params)
    expected = optax.apply_updates(state.params, updates)
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves(new_state.params), leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    assert int(new_state.step) == 1
    for _ in range(3):
        new_state, _ = step(new_state, batch + 0.0)
    assert step._cache_size() == 1   # no re-tracing from one step to the next


def test_dynamic_binarization_draws_fresh_bits():
    model, tx, _, state = setup()
    seen = []
    loss_fn = lambda p, x, k: (jnp.sum(x * 0.0) + 0.0 * sum(
        jnp.sum(l) for l in jax.tree_util.tree_leaves(p)), {"x": x})
    step = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization,
                                 donate=False)
    probs = jnp.full((4, 16), 0.3)
    for _ in range(2):
        state, metrics = step(state, probs)
        seen.append(np.asarray(metrics["x"]))
    assert set(np.unique(seen[0])) <= {0.0, 1.0}
    assert not np.array_equal(seen[0], seen[1])


def test_dynamic_binarization_step_matches_the_key_schedule():
    """preprocess gets key_data and the loss key_loss of split(fold_in(key, step)): the
    binarized batch is binarize_dynamic(key_data, batch), bit for bit."""
    model, tx, loss_fn, state = setup()
    step = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization,
                                 donate=False)
    batch = jnp.asarray(toy()[:8])
    new_state, metrics = step(state, batch)
    key_data, key_loss = jax.random.split(jax.random.fold_in(state.key, 0))
    x = jaxvae.data.binarize_dynamic(key_data, batch)
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, key_loss)
    updates, _ = tx.update(grads, state.opt_state, state.params)
    expected = optax.apply_updates(state.params, updates)
    for a, b in zip(jax.tree_util.tree_leaves(new_state.params),
                    jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)


def test_dynamic_binarization_leaves_labels_untouched():
    key = jax.random.PRNGKey(7)
    x, y = jnp.asarray(toy()[:8]), jnp.arange(8, dtype=jnp.int32)
    expected = np.asarray(jaxvae.data.binarize_dynamic(key, x))
    out = jaxvae.data.dynamic_binarization(key, x)
    np.testing.assert_array_equal(out, expected)
    bx, by = jaxvae.data.dynamic_binarization(key, (x, y))
    np.testing.assert_array_equal(bx, expected)
    assert by is y
    d = jaxvae.data.dynamic_binarization(key, {"x": x, "y": y})
    assert set(d) == {"x", "y"} and d["y"] is y
    np.testing.assert_array_equal(d["x"], expected)
    assert set(np.unique(expected)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="under 'x'"):
        jaxvae.data.dynamic_binarization(key, {"images": x})


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_pytree_batches_train_through_fit(kind):
    """(x, y) and dict batches: the loss sees the labels as given and the binarized images;
    fit batches every leaf with the same rows, so a loss that checks y against x passes."""
    model, tx, loss_fn, state = setup()
    x = toy()
    y = np.arange(len(x), dtype=np.int32)
    train_data = (x, y) if kind == "tuple" else {"x": x, "y": y}
    seen = []

    def loss(params, batch, key):
        xb, yb = batch if kind == "tuple" else (batch["x"], batch["y"])
        value, info = loss_fn(params, xb, key)
        return value, {**info, "y": yb, "x": xb}

    step = train.make_train_step(loss, tx, preprocess=jaxvae.data.dynamic_binarization)

    def recording_step(s, b):
        xb, yb = b if kind == "tuple" else (b["x"], b["y"])
        assert yb.dtype == jnp.int32
        # labels travel with their images: y[i] is the index of row x[i] in the data
        np.testing.assert_array_equal(np.asarray(xb), x[np.asarray(yb)])
        s, metrics = step(s, b)
        seen.append(metrics)
        return s, metrics

    final = train.fit(state, recording_step, train_data, batch_size=16, num_epochs=2, seed=0,
                      progress=False)
    assert int(final.step) == 8 and len(seen) == 8
    for m in seen:
        assert set(np.unique(np.asarray(m["x"]))) <= {0.0, 1.0}
        assert np.isfinite(float(m["loss"]))
    np.testing.assert_array_equal(np.sort(np.concatenate([m["y"] for m in seen[:4]])),
                                  np.arange(64))
    # the same data as an array trains to the same parameters (same batches, same keys)
    _, _, _, state2 = setup()
    step2 = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization)
    plain = train.fit(state2, step2, x, batch_size=16, num_epochs=2, seed=0, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(plain.params),
                    jax.tree_util.tree_leaves(final.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def run_fit(workdir, num_epochs=3, interrupt_after=None, resume=False, **kwargs):
    model, tx, loss_fn, state = setup()
    step = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization)
    calls = {"n": 0}

    def maybe_crashing_step(s, b):
        calls["n"] += 1
        if interrupt_after is not None and calls["n"] > interrupt_after:
            raise KeyboardInterrupt
        return step(s, b)

    return train.fit(state, maybe_crashing_step, toy(), batch_size=16, num_epochs=num_epochs,
                     seed=3, workdir=workdir, resume=resume, progress=False, **kwargs)


def test_resume_after_interruption_reaches_identical_parameters(tmp_path):
    reference = run_fit(str(tmp_path / "a"))
    # killed mid-way through epoch 2 (4 steps per epoch; checkpoints every 3 steps)
    with pytest.raises(KeyboardInterrupt):
        run_fit(str(tmp_path / "b"), interrupt_after=7, checkpoint_every=3)
    checkpointer = train.Checkpointer(str(tmp_path / "b" / "checkpoints"))
    assert checkpointer.latest_step() == 6
    checkpointer.close()
    resumed = run_fit(str(tmp_path / "b"), resume=True, checkpoint_every=3)
    assert int(resumed.step) == int(reference.step) == 12
    assert_trees_equal(resumed.params, reference.params)
    assert_trees_equal(resumed.opt_state, reference.opt_state)
    # metrics.jsonl: one record per epoch, none duplicated by the resume
    records = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [4, 8, 12]


def test_existing_checkpoints_are_never_silently_overwritten(tmp_path):
    run_fit(str(tmp_path), num_epochs=1)
    with pytest.raises(train.CheckpointError, match="already holds checkpoints"):
        run_fit(str(tmp_path), num_epochs=1)
    state = run_fit(str(tmp_path), num_epochs=1, overwrite=True)
    assert int(state.step) == 4


def test_foreign_or_corrupt_checkpoint_gives_one_error(tmp_path):
    run_fit(str(tmp_path), num_epochs=1)
    model = jaxvae.iwae_mlp(event_shape=(16,), latent_dim=3, hidden=(8,))   # other shapes
    tx = optax.adam(1e-3)
    like = train.create_train_state(model.init_params(KEY), tx, KEY)
    checkpointer = train.Checkpointer(str(tmp_path / "checkpoints"))
    with pytest.raises(train.CheckpointError, match="does not match this model"):
        checkpointer.restore(like)
    # corrupt: delete the array data of the checkpoint
    step_dir = tmp_path / "checkpoints" / "4"
    for root, _, files in os.walk(step_dir):
        for name in files:
            if name != "_CHECKPOINT_METADATA":
                os.remove(os.path.join(root, name))
    _, _, _, state = setup()
    with pytest.raises(train.CheckpointError):
        train.Checkpointer(str(tmp_path / "checkpoints")).restore(state)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(train.CheckpointError, match="not a directory"):
        train.Checkpointer(str(not_a_dir))


def test_batch_size_larger_than_data():
    with pytest.raises(ValueError, match=r"batch_size 100 is larger than the data set \(64"):
        model, tx, loss_fn, state = setup()
        train.fit(state, train.make_train_step(loss_fn, tx), toy(), batch_size=100,
                  num_epochs=1, progress=False)


SHARDED_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np, optax, jaxvae
    from jaxvae import train
    assert jax.device_count() == 4, jax.devices()
    model = jaxvae.iwae_mlp(event_shape=(16,), latent_dim=2, hidden=(8,))
    tx = optax.adam(1e-2)
    loss_fn = jaxvae.make_loss(model, "iwae", 5)
    init = lambda: train.create_train_state(model.init_params(jax.random.PRNGKey(0)), tx,
                                            jax.random.PRNGKey(1))
    data = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (6, 16, 16)))
    single, sharded = init(), init()
    step1 = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization)
    mesh = train.data_mesh()
    step4 = train.make_train_step(loss_fn, tx, preprocess=jaxvae.data.dynamic_binarization,
                                  mesh=mesh)
    for batch in data:
        single, m1 = step1(single, jnp.asarray(batch))
        sharded, m4 = step4(sharded, train.shard_batch(batch, mesh))
    assert len(train.shard_batch(data[0], mesh).sharding.device_set) == 4
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(single.params),
                    jax.tree_util.tree_leaves(sharded.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    try:
        train.shard_batch(data[0][:15], mesh)
    except ValueError as err:
        assert "divisible" in str(err)
    else:
        raise AssertionError("indivisible batch accepted")
    # a pytree batch: every leaf is sharded along its leading axis
    labels = np.arange(16, dtype=np.int32)
    xy_loss = lambda p, b, k: loss_fn(p, b[0], k)
    xy1 = train.make_train_step(xy_loss, tx, preprocess=jaxvae.data.dynamic_binarization)
    xy4 = train.make_train_step(xy_loss, tx, preprocess=jaxvae.data.dynamic_binarization,
                                mesh=mesh)
    placed = train.shard_batch((data[0], labels), mesh)
    assert isinstance(placed, tuple) and len(placed[1].sharding.device_set) == 4
    _, n1 = xy1(init(), (jnp.asarray(data[0]), jnp.asarray(labels)))
    _, n4 = xy4(init(), placed)
    np.testing.assert_allclose(n1["loss"], n4["loss"], rtol=1e-5)
    print("SHARDED-OK", float(m1["loss"]), float(m4["loss"]))
""")


def test_sharded_step_equals_single_device_step():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED-OK" in result.stdout
