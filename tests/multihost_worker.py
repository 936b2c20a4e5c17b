"""One process of tests/test_multihost.py: trains a tiny IWAE and saves its parameters.

    python tests/multihost_worker.py OUT.npz WORKDIR                      # one process
    python tests/multihost_worker.py OUT.npz WORKDIR localhost:PORT 2 ID  # process ID of 2

Both ways train on the same data with the same keys and batch order; with two processes
the global batch of 8 is split over the processes' devices (4 rows each). The parameters
saved are the initial ones, those after 4 steps, and those after 2 steps, a checkpoint in
WORKDIR (shared by the processes) and 2 more steps resumed from it.
"""

import sys

import numpy as np


def main(out, workdir, coordinator=None, num_processes=None, process_id=None):
    import jaxvae.distributed

    if coordinator is not None:
        index, count = jaxvae.distributed.initialize(coordinator, int(num_processes),
                                                     int(process_id))
        assert (index, count) == (int(process_id), int(num_processes)), (index, count)
    import jax
    import optax

    import jaxvae
    from jaxvae import train

    rows = jaxvae.distributed.process_rows(np.arange(8))
    expected = np.arange(8).reshape(jax.process_count(), -1)[jax.process_index()]
    np.testing.assert_array_equal(rows, expected)

    model = jaxvae.iwae_mlp(event_shape=(28, 28), latent_dim=2, hidden=(16,))
    tx = optax.sgd(1e-2, momentum=0.9)   # Adam would amplify rounding where a gradient is ~0
    loss_fn = jaxvae.make_loss(model, "iwae", 3)
    params = model.init_params(jax.random.PRNGKey(0))
    x = np.random.default_rng(2).random((32, 28, 28), dtype=np.float32)   # grey levels
    mesh = train.data_mesh() if jax.process_count() > 1 else None
    step = train.make_train_step(loss_fn, tx, mesh=mesh,   # a Bernoulli draw inside the step
                                 preprocess=jaxvae.data.dynamic_binarization)
    fresh = lambda: train.create_train_state(params, tx, jax.random.PRNGKey(1))
    run = lambda steps, **kw: train.fit(fresh(), step, x, batch_size=8, num_epochs=1,
                                        num_steps=steps, seed=3, mesh=mesh, progress=False, **kw)
    state = run(4)
    assert int(state.step) == 4
    # interrupted after 2 steps (a checkpoint), then resumed from it in fresh calls
    assert int(run(2, workdir=workdir, overwrite=True, checkpoint_every=2).step) == 2
    resumed = run(4, workdir=workdir, resume=True)
    assert int(resumed.step) == 4
    flat = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in
            jax.tree_util.tree_leaves_with_path((params, state.params, resumed.params))}
    np.savez(out, **flat)
    print("WORKER-OK", jax.process_index(), jax.process_count(), jax.device_count())


if __name__ == "__main__":
    main(*sys.argv[1:])
