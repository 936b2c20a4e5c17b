"""The k-sample test log-likelihood of R runs of one model in one program: ``[R, N]``.

A sweep (seeds, objectives, β) ends with R parameter sets of the same model; rather than R
calls of :func:`jaxvae.log_likelihood`, :func:`log_likelihood_runs` evaluates them together:
``params`` carries a leading run axis R on every leaf (``jaxvae.runs.stack_runs``, i.e.
``jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params_list)``), and each jitted call
takes one batch of examples through every run. Run r's row equals
``jaxvae.log_likelihood(model, params_r, x, key_r)`` (same samples, same chunks; up to
float rounding), so the runs can be compared with common random numbers.

Layouts of the run axis inside the program (``run_axis``, the names of
:data:`jaxvae.runs.RUN_AXES`): ``"map"`` (``jax.lax.map`` over the runs, each the plain
chunked evaluator) and ``"vmap"`` (``jax.vmap`` over the runs, batching their matrix
products). ``"map"`` is the default on CPU, measured faster there (XLA:CPU's batched matrix
products trail its plain ones; benchmarks/eval_floor.py times both); ``"vmap"`` on
accelerators, where one small model alone leaves the device idle.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxvae import _checks, placement, terms
from jaxvae._cache import CompileCache
from jaxvae.evaluate import (
    condition_rows,
    example_batches,
    make_log_likelihood_fn,
    progress_bar,
)
from jaxvae.runs import RUN_AXES, num_runs, run_slice

__all__ = ["log_likelihood_runs", "make_log_likelihood_runs_fn", "default_run_axis"]

_RUN_FNS = CompileCache()


def default_run_axis() -> str:
    """The run-axis layout for the current backend (see the module docstring).

    Returns: ``"map"`` on CPU, ``"vmap"`` on accelerators.
    """
    return "map" if jax.default_backend() == "cpu" else "vmap"


def make_log_likelihood_runs_fn(model, num_samples: int = 5000, *, sample_chunk: int = 100,
                                conditional: bool = False, per_run_keys: bool = False,
                                run_axis: str | None = None):
    """Jitted chunked IWAE estimate of log p(x) of one batch under R runs' parameters.

    Run r computes exactly the function of :func:`jaxvae.evaluate.make_log_likelihood_fn`
    (same arguments) at ``params[r]``; the k samples of example i under run r are drawn
    from its key ``keys[i]`` (shared by the runs) or ``keys[r, i]`` (``per_run_keys``).

    Args:
      model, num_samples, sample_chunk, conditional: as for ``make_log_likelihood_fn``.
      per_run_keys: the keys carry the run axis, ``[R, B]``, instead of ``[B]``.
      run_axis: ``"map"`` or ``"vmap"`` (:data:`RUN_AXES`); default :func:`default_run_axis`.

    Returns:
      ``fn(params: [R, ...] leaves, x: [B, *event], keys: [B] or [R, B][, c: [B, ...]])
      -> [R, B]`` estimates in nats.
    """
    run_axis = default_run_axis() if run_axis is None else run_axis
    if run_axis not in RUN_AXES:
        raise ValueError(f"run_axis must be one of {RUN_AXES}, got {run_axis!r}")
    one = make_log_likelihood_fn(model, num_samples, sample_chunk=sample_chunk,
                                 conditional=conditional, jit=False)
    cache_key = (model, num_samples, sample_chunk, bool(conditional), bool(per_run_keys),
                 run_axis)
    return _RUN_FNS.get(cache_key, lambda: _build(one, bool(per_run_keys), run_axis))


def _build(one, per_run_keys: bool, run_axis: str):
    def fn(params, x, keys, *condition):
        def run(p, k):
            return one(p, x, k, *condition)

        if run_axis == "vmap":
            return jax.vmap(run, in_axes=(0, 0 if per_run_keys else None))(params, keys)
        if per_run_keys:
            return jax.lax.map(lambda pk: run(*pk), (params, keys))
        return jax.lax.map(lambda p: run(p, keys), params)

    return jax.jit(fn)


def _run_keys(key, runs: int):
    """``(keys, per_run)``: ``key`` itself for one shared key, else checked ``[R]`` keys."""
    key = key if isinstance(key, jax.Array) else jax.numpy.asarray(key)
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    per_run = key.ndim == (1 if typed else 2)
    if key.ndim != (0 if typed else 1) and not per_run:
        raise ValueError("key must be one PRNG key or one per run ([R] typed keys or raw "
                         f"[R, 2]); got shape {key.shape}")
    if per_run and key.shape[0] != runs:
        raise ValueError(f"key holds {key.shape[0]} per-run keys but params hold {runs} runs")
    return key, per_run


def log_likelihood_runs(model, params, x, key, num_samples: int = 5000, *,
                        sample_chunk: int = 100, batch_size: int = 100,
                        progress: bool = False, condition=None, mesh=None,
                        run_axis: str | None = None) -> np.ndarray:
    """IWAE estimates of log p(x) per example under each of R runs' parameters, in nats.

    L_k^(r)(x) = log (1/k) sum_{j=1}^k p_r(x, z_j) / q_r(z_j|x),  z_j ~ q_r(z|x),

    with ``params`` the R runs' parameters stacked on a leading axis (see the module
    docstring). Key rule: with one ``key``, every run uses it, and row r equals
    ``jaxvae.log_likelihood(model, params_r, x, key, ...)``; with R keys (``[R]`` typed or
    raw ``[R, 2]``), row r equals ``jaxvae.log_likelihood(model, params_r, x, key[r], ...)``
    (up to float rounding, for any ``batch_size``, ``run_axis`` and ``mesh``).

    Args:
      model: a VAE as in :func:`jaxvae.model_terms`, the same for every run.
      params: its parameters with a leading run axis R on every leaf.
      x: ``[N, *model.event_shape]`` data, shared by the runs.
      key: a PRNG key, or R of them.
      num_samples, sample_chunk, batch_size, progress, condition, mesh: as in
        :func:`jaxvae.log_likelihood` (a batch of ``batch_size`` examples goes through all
        R runs per call; the mesh splits the examples, the runs stay whole on each device).
      run_axis: ``"map"`` or ``"vmap"`` (:data:`RUN_AXES`); default :func:`default_run_axis`.

    Returns:
      ``[R, N]`` float32 numpy array of log-likelihood estimates in nats.
    """
    num_samples = _checks.num_samples(num_samples)
    sample_chunk = _checks.integer(sample_chunk, "sample_chunk")
    batch_size = _checks.integer(batch_size, "batch_size")
    _checks.batch(x, model.event_shape)
    x = np.asarray(x)
    n, runs = x.shape[0], num_runs(params)
    key, per_run = _run_keys(key, runs)
    extra = condition_rows(condition, n)
    terms.check_data(model, run_slice(params, 0), x, condition)
    batch_size = placement.mesh_batch_size(min(batch_size, n), mesh)
    fn = make_log_likelihood_runs_fn(model, num_samples, sample_chunk=sample_chunk,
                                     conditional=condition is not None,
                                     per_run_keys=per_run, run_axis=run_axis)
    keys = jax.vmap(lambda k: jax.random.split(k, n))(key) if per_run \
        else jax.random.split(key, n)
    params = placement.replicate(params, mesh)
    out = np.empty((runs, n), dtype=np.float32)
    batches = progress_bar(example_batches(n, batch_size), math.ceil(n / batch_size),
                           progress, f"log p(x), {runs} runs, k={num_samples}")
    start = 0
    for idx, real in batches:
        (xb, *cb), (kb,) = (placement.place_examples(mesh, x[idx], *(c[idx] for c in extra)),
                            placement.place_examples(mesh, keys[:, idx] if per_run
                                                     else keys[idx], axis=int(per_run)))
        out[:, start:start + real] = placement.to_host(fn(params, xb, kb, *cb))[:, :real]
        start += real
    return out
