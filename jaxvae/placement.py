"""Placing evaluation batches on a device mesh: examples split, parameters replicated.

The evaluators (:func:`jaxvae.log_likelihood`, :func:`jaxvae.evaluate_runs.
log_likelihood_runs`) take an optional ``mesh``, a :class:`jax.sharding.Mesh` with a
``"batch"`` axis (:func:`jaxvae.train.data_mesh`). With one, each batch of examples is split
along its example axis over the mesh's devices and the parameters are copied to every
device; the jitted function then runs data-parallel (XLA partitions the vmap over examples),
so each device evaluates ``batch_size / devices`` examples. Every process of a multi-process
program passes the same host arrays; results come back whole on every process.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["check_mesh", "mesh_batch_size", "place_examples", "replicate", "to_host"]


def check_mesh(mesh) -> None:
    """Raises ValueError unless ``mesh`` is None or a ``jax.sharding.Mesh`` with a
    ``"batch"`` axis.

    Args: ``mesh``. Returns: None.
    """
    if mesh is not None and not (isinstance(mesh, Mesh) and "batch" in mesh.axis_names):
        raise ValueError("mesh must be a jax.sharding.Mesh with a 'batch' axis "
                         f"(e.g. jaxvae.train.data_mesh()), got {mesh!r}")


def mesh_batch_size(batch_size: int, mesh: Mesh | None) -> int:
    """``batch_size`` rounded up to a multiple of the size of ``mesh``'s ``"batch"`` axis.

    Args: ``batch_size`` >= 1; ``mesh`` or None (then ``batch_size`` is returned as is).
    Returns: the batch size every evaluation call uses (the last batch is padded).
    """
    check_mesh(mesh)
    if mesh is None:
        return batch_size
    devices = mesh.shape["batch"]
    return -(-batch_size // devices) * devices


def place_examples(mesh: Mesh | None, *arrays, axis: int = 0) -> tuple:
    """Host arrays as jax arrays split along their example axis over ``mesh``.

    Args:
      mesh: a mesh with a ``"batch"`` axis, or None (plain arrays on the default device).
      arrays: numpy or jax arrays (typed PRNG keys included) whose axis ``axis`` has the
        same length, a multiple of the ``"batch"`` axis size.
      axis: the example axis (1 for per-run keys ``[R, B]``).

    Returns: a tuple of ``jax.Array`` s, each sharded ``PartitionSpec(None * axis, "batch")``.
    """
    if mesh is None:
        return tuple(jnp.asarray(a) for a in arrays)
    check_mesh(mesh)
    sharding = NamedSharding(mesh, PartitionSpec(*(None,) * axis, "batch"))
    if all(d.process_index == jax.process_index() for d in mesh.devices.flat):
        return tuple(jax.device_put(a, sharding) for a in arrays)
    return tuple(jax.make_array_from_callback(a.shape, sharding, lambda i, a=a: a[i])
                 for a in arrays)


def replicate(tree, mesh: Mesh | None):
    """Every leaf of ``tree`` (e.g. the parameters) copied to all devices of ``mesh``.

    Args: ``tree`` a pytree of arrays; ``mesh`` or None.
    Returns: the tree, replicated (``PartitionSpec()``), or ``tree`` itself for None.
    """
    if mesh is None:
        return tree
    check_mesh(mesh)
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def to_host(values) -> np.ndarray:
    """A jax array, sharded over devices or processes, as one whole numpy array.

    Args: ``values``, a ``jax.Array`` (or anything ``np.asarray`` takes).
    Returns: the whole array as numpy, on every process.
    """
    if getattr(values, "is_fully_addressable", True):
        return np.asarray(values)
    return np.asarray(multihost_utils.process_allgather(values, tiled=True))
