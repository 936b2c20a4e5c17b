"""The k-sample log-likelihood over a device mesh and over a run axis equals the plain one."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvae
from jaxvae import evaluate, evaluate_runs, placement, train

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def runs():
    """Three runs of one small model (different initializations), stacked, and 7 images."""
    model = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=3, hidden=(16,))
    plist = [model.init_params(jax.random.PRNGKey(i)) for i in range(3)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *plist)
    x = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (7, 12)) > 0.5, np.float32)
    return model, plist, stacked, x


def one_by_one(model, plist, x, keys, **kw):
    return np.stack([evaluate.log_likelihood(model, p, x, k, 10, sample_chunk=4, **kw)
                     for p, k in zip(plist, keys)])


@pytest.mark.parametrize("run_axis", ["map", "vmap"])
def test_each_run_equals_its_own_evaluation(runs, run_axis):
    model, plist, stacked, x = runs
    key = jax.random.PRNGKey(5)
    got = evaluate_runs.log_likelihood_runs(model, stacked, x, key, 10, sample_chunk=4,
                                            batch_size=3, run_axis=run_axis)
    assert got.shape == (3, 7) and got.dtype == np.float32
    # one key: every run uses it (common random numbers)
    np.testing.assert_allclose(got, one_by_one(model, plist, x, [key] * 3), rtol=1e-5)
    # R keys: run r uses key r, raw [R, 2] or typed [R]
    typed = jax.random.split(jax.random.key(5), 3)
    for keys in (jax.random.split(key, 3),) + ((typed,) if run_axis == "map" else ()):
        got = evaluate_runs.log_likelihood_runs(model, stacked, x, keys, 10, sample_chunk=4,
                                                batch_size=4, run_axis=run_axis)
        np.testing.assert_allclose(got, one_by_one(model, plist, x, keys), rtol=1e-5)


def test_runs_compile_once_and_default_to_map_on_cpu(runs):
    model, _, stacked, x = runs
    assert evaluate_runs.default_run_axis() == "map"       # the tests run on CPU
    fn = evaluate_runs.make_log_likelihood_runs_fn(model, 10, sample_chunk=4)
    assert evaluate_runs.make_log_likelihood_runs_fn(model, 10, sample_chunk=4) is fn
    evaluate_runs.log_likelihood_runs(model, stacked, x, KEY, 10, sample_chunk=4, batch_size=3)
    assert fn._cache_size() == 1      # batches of 3 and the padded last batch share one compile


def test_bad_input_is_named(runs):
    model, plist, stacked, x = runs
    with pytest.raises(ValueError, match="leading run axis"):
        evaluate_runs.log_likelihood_runs(model, plist[0], x, KEY, 10)
    with pytest.raises(ValueError, match="2 per-run keys but params hold 3 runs"):
        evaluate_runs.log_likelihood_runs(model, stacked, x, jax.random.split(KEY, 2), 10)
    with pytest.raises(ValueError, match="key must be one PRNG key or one per run"):
        evaluate_runs.log_likelihood_runs(model, stacked, x, jnp.zeros((3, 2, 2), jnp.uint32),
                                          10)
    with pytest.raises(ValueError, match="run_axis must be one of"):
        evaluate_runs.log_likelihood_runs(model, stacked, x, KEY, 10, run_axis="pmap")
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        evaluate_runs.log_likelihood_runs(model, stacked, x, KEY, 0)
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh with a 'batch'"):
        evaluate.log_likelihood(model, plist[0], x, KEY, 10, mesh="cpu")
    with pytest.raises(ValueError, match="mesh must be"):
        placement.mesh_batch_size(4, jax.sharding.Mesh(np.asarray(jax.devices()), ("data",)))


def test_one_device_mesh_changes_nothing(runs):
    model, plist, stacked, x = runs
    mesh = train.data_mesh(jax.devices()[:1])
    want = evaluate.log_likelihood(model, plist[0], x, KEY, 10, sample_chunk=4, batch_size=3)
    got = evaluate.log_likelihood(model, plist[0], x, KEY, 10, sample_chunk=4, batch_size=3,
                                  mesh=mesh)
    np.testing.assert_array_equal(got, want)
    assert placement.mesh_batch_size(5, mesh) == 5


SHARDED_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, jax.numpy as jnp, numpy as np, jaxvae
    from jaxvae import evaluate, evaluate_runs, placement, train
    assert jax.device_count() == 2, jax.devices()
    mesh = train.data_mesh()
    assert placement.mesh_batch_size(3, mesh) == 4
    model = jaxvae.iwae_mlp(event_shape=(12,), latent_dim=3, hidden=(16,))
    plist = [model.init_params(jax.random.PRNGKey(i)) for i in range(3)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *plist)
    x = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (7, 12)) > 0.5, np.float32)
    key = jax.random.PRNGKey(5)
    kw = dict(num_samples=10, sample_chunk=4, batch_size=3)
    (placed,) = placement.place_examples(mesh, x[:4])
    assert len(placed.sharding.device_set) == 2
    one = evaluate.log_likelihood(model, plist[0], x, key, **kw)
    two = evaluate.log_likelihood(model, plist[0], x, key, mesh=mesh, **kw)
    np.testing.assert_allclose(two, one, rtol=1e-6)
    keys = jax.random.split(key, 3)
    shared = np.stack([evaluate.log_likelihood(model, p, x, key, **kw) for p in plist])
    per_run = np.stack([evaluate.log_likelihood(model, p, x, k, **kw)
                        for p, k in zip(plist, keys)])
    for run_axis, k, want in (("map", key, shared), ("map", keys, per_run),
                              ("vmap", keys, per_run)):
        got = evaluate_runs.log_likelihood_runs(model, stacked, x, k, run_axis=run_axis,
                                                mesh=mesh, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    print("SHARDED-EVAL-OK")
""")


def test_two_device_mesh_equals_one_device():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED-EVAL-OK" in result.stdout
