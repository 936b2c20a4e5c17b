"""Several processes (hosts) training one model: a thin layer over ``jax.distributed``.

* :func:`initialize` — joins this process to the others (``jax.distributed.initialize``,
  which detects SLURM, TPU pods, Open MPI, ... when its arguments are None), with
  cross-process collectives on CPU (gloo), so two local CPU processes can stand in for
  two hosts in tests.
* :func:`process_rows` — the rows of a global batch ``[B, ...]`` that this process feeds
  to :func:`jaxvae.train.shard_batch`.

Every process runs the same program on the same data with the same keys; the mesh of
:func:`jaxvae.train.data_mesh` then spans the devices of all processes, and the global
batch is the concatenation of the processes' rows, in process order.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["initialize", "process_rows", "batch_leaves"]


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids=None) -> tuple[int, int]:
    """Joins this process to a multi-process (multi-host) JAX program.

    Call it once, before anything touches jax devices. With every argument None,
    ``jax.distributed.initialize`` detects the cluster (SLURM, TPU pod slices, Open MPI,
    ...). Collectives between CPU processes use gloo: the option
    ``jax_cpu_collectives_implementation`` is set to ``"gloo"`` unless one is already
    chosen (jax 0.10.2 defaults to gloo; ``"mpi"`` set by the user is kept). The option
    only concerns the CPU backend, so it is harmless on GPUs and TPUs.

    Args:
      coordinator_address: ``"host:port"`` of process 0's coordinator, or None (detected).
      num_processes: the number of processes P, or None (detected).
      process_id: this process's index in ``0..P-1``, or None (detected).
      local_device_ids: the local devices this process drives, or None: those in
        ``JAX_LOCAL_DEVICE_IDS``, else detected (SLURM: GPU ``SLURM_LOCALID``), else all.

    Returns:
      ``(process_index, process_count)`` after joining.
    """
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None \
            and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in 0..{num_processes - 1}, got {process_id}")
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   local_device_ids=local_device_ids)
    except ValueError as err:
        if coordinator_address is not None or "should be defined" not in str(err):
            raise
        raise ValueError("coordinator_address: no cluster was detected (SLURM, TPU pod, Open "
                         "MPI, ...); pass coordinator_address, num_processes and process_id"
                         ) from err
    return jax.process_index(), jax.process_count()


def batch_leaves(batch):
    """``(leaves, treedef, B)`` of a host batch whose leaves share their leading axis B.

    Args: ``batch``, an array ``[B, ...]`` or a pytree of them (``(x, y)``, a dict).
    Returns: the leaves as numpy arrays, the tree structure and B; ValueError otherwise.
    """
    leaves, treedef = jax.tree_util.tree_flatten(batch)
    leaves = [np.asarray(leaf) for leaf in leaves]
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError("batch: every leaf must be an array [B, ...] with the same B, "
                         f"got shapes {[leaf.shape for leaf in leaves]}")
    return leaves, treedef, sizes.pop()


def process_rows(batch):
    """The rows of a global host batch that this process feeds: ``[p*B/P : (p+1)*B/P]``.

    Every process holds the same global batch; process p of P keeps its contiguous
    slice, and :func:`jaxvae.train.shard_batch` of the slices rebuilds the global batch.
    With one process every row is kept.

    Args:
      batch: an array ``[B, ...]`` or a pytree of them (``(x, y)``, a dict) sharing B,
        with B divisible by ``jax.process_count()``.

    Returns:
      the same structure with leaves ``[B / P, ...]`` (numpy arrays).
    """
    leaves, treedef, size = batch_leaves(batch)
    count = jax.process_count()
    if size % count:
        raise ValueError(f"batch: its size {size} must be divisible by the number of "
                         f"processes ({count})")
    if count == 1:
        return jax.tree_util.tree_unflatten(treedef, leaves)
    rows = slice(jax.process_index() * size // count, (jax.process_index() + 1) * size // count)
    return jax.tree_util.tree_unflatten(treedef, [leaf[rows] for leaf in leaves])
