"""Evaluation of a trained model: test log-likelihood, active units, KL per dimension.

* :func:`log_likelihood` — the IWAE bound with thousands of importance samples
  (k = 5000 is the standard test-NLL protocol of Burda et al., 2015), computed in
  chunks so that memory does not grow with k.
* :func:`active_units` — Burda et al. (2015), Sec. 5.2: the number of latent units whose
  posterior mean varies across the data.
* :func:`kl_per_dimension` — the average analytic KL(q(z_u|x) || p(z_u)) of each unit.

All functions take a model in the sense of :func:`jaxvae.model_terms` (``posterior``,
``likelihood``, ``prior``, ``event_shape``; e.g. :func:`jaxvae.iwae_mlp`), its params
and a dataset ``x: [N, *event_shape]``; they loop over batches of examples in Python
(padding the last batch so that each jitted function compiles once) and return numpy.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks, latent, objectives, placement, terms
from jaxvae._cache import CompileCache

Array = jax.Array

__all__ = ["log_likelihood", "make_log_likelihood_fn", "condition_log_likelihoods",
           "active_units", "kl_per_dimension", "example_batches", "condition_rows",
           "progress_bar"]


def _chunk_sizes(num_samples: int, sample_chunk: int) -> tuple[int, int, int]:
    """(chunk, number of full chunks, remainder) with chunk * full + remainder = k."""
    chunk = min(sample_chunk, num_samples)
    return chunk, num_samples // chunk, num_samples % chunk


def example_batches(num_examples: int, batch_size: int):
    """Index arrays of length ``batch_size`` covering 0..N-1; the last one is padded by
    repeating example N-1 (so a jitted function sees one batch shape).

    Yields: ``(indices: int [batch_size], number of real examples)``.
    """
    for start in range(0, num_examples, batch_size):
        idx = np.minimum(np.arange(start, start + batch_size), num_examples - 1)
        yield idx, min(batch_size, num_examples - start)


def progress_bar(iterable, total: int, enabled: bool, desc: str):
    """``iterable`` with a tqdm bar of ``total`` items (itself when not ``enabled``)."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="batch")


def condition_rows(condition, n: int) -> tuple:
    """``()`` without a condition, else ``(condition,)`` as numpy with one row per example."""
    if condition is None:
        return ()
    condition = np.asarray(condition)
    if condition.shape[:1] != (n,):
        raise ValueError(f"condition must have one row per example, [{n}, ...], got shape "
                         f"{condition.shape}")
    return (condition,)


_LL_FNS = CompileCache()


def make_log_likelihood_fn(model, num_samples: int = 5000, *, sample_chunk: int = 100,
                           conditional: bool = False, jit: bool = True):
    """Jitted chunked IWAE estimate of log p(x) for a batch with one key per example.

    For example i with key ``key_i`` the returned function computes

        log p(x_i) ~= L_k = logsumexp_{j=1..k} log w_ij - log k,
        log w_ij = log p(x_i|z_ij) + log p(z_ij) - log q(z_ij|x_i),  z_ij ~ q(z|x_i),

    drawing the k samples in ``c = ceil(k / sample_chunk)`` chunks: chunk j (0-based)
    is ``objectives.log_weights(jax.random.fold_in(key_i, j), q, prior, log_lik, m_j)``
    with m_j = min(sample_chunk, k) for the ``k // sample_chunk`` full chunks and
    ``k % sample_chunk`` for a final remainder chunk. The full chunks run in a
    ``jax.lax.scan`` that carries the running logsumexp (``jnp.logaddexp``, which shifts
    by the max), so the result equals the one-shot ``log_mean_exp`` of the concatenated
    log-weights up to float rounding; with ``sample_chunk >= k`` it is exactly
    ``objectives.iwae_bound(jax.random.fold_in(key_i, 0), q, prior, log_lik, k)``.

    Peak memory: O(B * sample_chunk * (latent_dim + data_dim + decoder width)) floats
    for the samples and decoder activations of one chunk, independent of k.

    Args:
      model: a VAE as in :func:`jaxvae.model_terms`.
      num_samples: k >= 1 importance samples per example.
      sample_chunk: samples drawn at once per example (>= 1).
      conditional: the function takes a fourth argument, the conditions ``c: [B, ...]``,
        and estimates log p(x|c) with q(z|x, c), p(z|c), p(x|z, c).
      jit: False gives the same function un-jitted, to compose inside the caller's own
        ``jax.jit`` (e.g. over a run axis, :func:`jaxvae.evaluate_runs.log_likelihood_runs`).

    Returns:
      ``fn(params, x: [B, *event], keys: [B] (or raw [B, 2])[, c]) -> [B]`` log p(x)
      (or log p(x|c)) estimates in nats (B is the batch the caller passes; each distinct B
      compiles once).

    References:
      Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, eq. (8).
    """
    num_samples = _checks.num_samples(num_samples)
    sample_chunk = _checks.integer(sample_chunk, "sample_chunk")
    sizes = _chunk_sizes(num_samples, sample_chunk)
    return _LL_FNS.get((model, num_samples, sizes[0], bool(conditional), bool(jit)),
                       lambda: _build_log_likelihood_fn(model, num_samples, *sizes,
                                                        conditional=bool(conditional), jit=jit))


def _build_log_likelihood_fn(model, num_samples: int, chunk: int, num_full: int,
                             remainder: int, conditional: bool, jit: bool):

    def per_example(params, x, key, *condition):
        q, prior, log_lik = terms.model_terms(model, params, x,
                                              condition=condition[0] if condition else None)

        def body(carry, _):
            j, lse = carry
            log_w = objectives.log_weights(jax.random.fold_in(key, j), q, prior, log_lik, chunk)
            return (j + 1, jnp.logaddexp(lse, jax.nn.logsumexp(log_w))), None

        # No scanned-over inputs: the loop's buffers do not depend on the number of chunks.
        init = (jnp.asarray(0, jnp.uint32), jnp.asarray(-jnp.inf, jnp.float32))
        (_, lse), _ = jax.lax.scan(body, init, None, length=num_full)
        if remainder:
            log_w = objectives.log_weights(jax.random.fold_in(key, num_full), q, prior,
                                           log_lik, remainder)
            lse = jnp.logaddexp(lse, jax.nn.logsumexp(log_w))
        return lse - math.log(num_samples)

    in_axes = (None, 0, 0, 0) if conditional else (None, 0, 0)
    fn = jax.vmap(per_example, in_axes=in_axes)
    return jax.jit(fn) if jit else fn


def log_likelihood(model, params, x, key: Array, num_samples: int = 5000, *,
                   sample_chunk: int = 100, batch_size: int = 100,
                   progress: bool = False, condition=None, mesh=None) -> np.ndarray:
    """IWAE estimate of log p(x) per example, in nats (the test-NLL protocol, k = 5000).

    L_k(x) = log (1/k) sum_{j=1}^k p(x, z_j) / q(z_j|x),  z_j ~ q(z|x),

    a stochastic lower bound with E[L_k] <= log p(x), rising to log p(x) as k grows. The
    test NLL of a dataset is ``-log_likelihood(...).mean()``.

    Randomness: ``key`` is split into one key per example, ``jax.random.split(key, N)``,
    and example i uses chunk keys ``jax.random.fold_in(keys[i], j)`` (see
    :func:`make_log_likelihood_fn`), so the result does not depend on ``batch_size``
    and is reproducible from ``key`` alone.

    Memory: examples go through one jitted function in batches of ``batch_size`` (the
    last batch padded, the padding dropped), and the k samples of each example are drawn
    ``sample_chunk`` at a time inside a ``lax.scan``; peak memory is
    O(batch_size * sample_chunk * (latent_dim + data_dim)) floats (times the decoder's
    hidden widths over data_dim for wide decoders), independent of k.

    Args:
      model: a VAE as in :func:`jaxvae.model_terms` (e.g. :func:`jaxvae.iwae_mlp`).
      params: its parameters.
      x: ``[N, *model.event_shape]`` data (e.g. a fixed binarization of the test set).
      key: PRNG key.
      num_samples: k >= 1 importance samples per example.
      sample_chunk: samples drawn at once per example (>= 1; k need not be a multiple).
      batch_size: examples evaluated at once (>= 1).
      progress: show a tqdm progress bar over example batches.
      condition: for a conditional model, the conditions ``c: [N, ...]`` (integer labels
        ``[N]`` or code vectors ``[N, condition_dim]``); the estimate is then of log p(x|c).
      mesh: a ``jax.sharding.Mesh`` with a ``"batch"`` axis (:func:`jaxvae.train.data_mesh`)
        to split each batch over its devices (:mod:`jaxvae.placement`; ``batch_size`` is
        rounded up to a multiple of them), or None; the result is the same either way.

    Returns:
      ``[N]`` numpy array of log-likelihood estimates in nats.

    References:
      Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, Sec. 5.
    """
    num_samples = _checks.num_samples(num_samples)
    sample_chunk = _checks.integer(sample_chunk, "sample_chunk")
    batch_size = _checks.integer(batch_size, "batch_size")
    _checks.batch(x, model.event_shape)
    x = np.asarray(x)
    n = x.shape[0]
    extra = condition_rows(condition, n)
    terms.check_data(model, params, x, condition)
    batch_size = placement.mesh_batch_size(min(batch_size, n), mesh)
    fn = make_log_likelihood_fn(model, num_samples, sample_chunk=sample_chunk,
                                conditional=condition is not None)
    keys, params = jax.random.split(key, n), placement.replicate(params, mesh)
    out = np.empty(n, dtype=np.float32)
    batches = progress_bar(example_batches(n, batch_size), math.ceil(n / batch_size), progress,
                        f"log p(x), k={num_samples}")
    start = 0
    for idx, real in batches:
        values = fn(params, *placement.place_examples(mesh, x[idx], keys[idx],
                                                      *(c[idx] for c in extra)))
        out[start:start + real] = placement.to_host(values)[:real]
        start += real
    return out


def condition_log_likelihoods(model, params, x, key: Array, num_classes: int,
                              num_samples: int = 5000, **kwargs) -> np.ndarray:
    """log p(x|c) for every label c of a conditional model, in nats: ``[N, num_classes]``.

    With a label prior p(c) these give the model's own marginal and class posterior:
    log p(x) = logsumexp_c [log p(x|c) + log p(c)] and p(c|x) = p(x|c) p(c) / p(x). Each
    entry is the IWAE estimate of :func:`log_likelihood` with the same ``key`` for every
    label (common random numbers), so differences between labels carry less noise.

    Args: ``model`` (a conditional model taking integer labels, e.g.
      :func:`jaxvae.models.conditional_mlp`), ``params``, ``x: [N, *event]``, ``key``,
      ``num_classes`` >= 1, ``num_samples`` (k); ``**kwargs`` as for :func:`log_likelihood`.
    Returns: float32 ``[N, num_classes]`` numpy array.
    """
    num_classes = _checks.integer(num_classes, "num_classes", 1)
    n = np.shape(x)[0]
    return np.stack([log_likelihood(model, params, x, key, num_samples,
                                    condition=np.full(n, c, np.int32), **kwargs)
                     for c in range(num_classes)], axis=1)


_STAT_FNS = CompileCache()


def _posterior_stat_fn(model, stat, conditional: bool):
    """Jitted ``fn(params, x: [B, *event], keys: [B][, c: [B, ...]]) -> [B, ...]`` applying
    ``stat(q, prior, key)``, built once per (model, stat) when the model is hashable."""

    def build():
        def per_example(params, x, key, *condition):
            q, prior, _ = terms.model_terms(model, params, x,
                                            condition=condition[0] if condition else None)
            return stat(q, prior, key)
        return jax.jit(jax.vmap(per_example, in_axes=(None, 0, 0) + (0,) * conditional))

    return _STAT_FNS.get((model, stat, conditional), build)


def _map_batches(stat, model, params, x, batch_size: int, key, condition=None) -> np.ndarray:
    batch_size = _checks.integer(batch_size, "batch_size")
    n = x.shape[0]
    batch_size = min(batch_size, n)
    extra = condition_rows(condition, n)
    fn = _posterior_stat_fn(model, stat, bool(extra))
    # without a key the statistic is deterministic (closed-form means, KLs); the keys passed
    # then are placeholders that no statistic reads
    keys = jax.random.split(jax.random.key(0) if key is None else key, n)
    parts = [np.asarray(fn(params, jnp.asarray(x[idx]), keys[idx],
                           *(jnp.asarray(c[idx]) for c in extra)))[:real]
             for idx, real in example_batches(n, batch_size)]
    return np.concatenate(parts, axis=0)


def _posterior_mean(q, prior, key):
    """E_q[z] (see :func:`jaxvae.latent.posterior_mean`; a Monte Carlo mean adds about
    Var_q[z_u] / 1000 to A_u)."""
    del prior
    return latent.posterior_mean(q, key)


def _closed_form_mean(q, prior, key):
    del prior, key
    return latent.posterior_mean(q)


def active_units(model, params, x, threshold: float = 0.01, batch_size: int = 500,
                 key: Array | None = None, condition=None) -> tuple[int, np.ndarray]:
    """Number of active latent units.

    Unit u is active if  A_u = Var_x( E_{q(z|x)}[z_u] ) > threshold  (0.01 in the paper),
    i.e. its posterior mean ``q.mean()`` varies across the data. The variance is the
    population variance over the N examples. Posteriors without a closed-form mean (the
    two-stochastic-layer model, flows) use a Monte Carlo mean of 1000 draws with ``key``
    (split into one key per example), and raise ValueError without one.

    Args:
      model: a VAE with a vector latent ``z: [latent_dim]`` (see :func:`jaxvae.model_terms`).
      params: its parameters.
      x: ``[N, *model.event_shape]``.
      threshold: activity threshold, >= 0.
      batch_size: examples per jitted call.
      key: PRNG key for Monte Carlo posterior means; None for closed-form means only.
      condition: ``[N, ...]`` conditions of a conditional model (q(z|x, c)), or None.

    Returns:
      ``(num_active, variances)``: an int and a ``[latent_dim]`` float64 numpy array of A_u.

    References:
      Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders, Sec. 5.2.
    """
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    _checks.batch(x, model.event_shape)
    x = np.asarray(x)
    stat = _closed_form_mean if key is None else _posterior_mean
    means = _map_batches(stat, model, params, x, batch_size, key, condition)
    if means.ndim != 2:
        raise ValueError(f"active_units needs a vector latent z: [latent_dim], got posterior "
                         f"means of shape {means.shape[1:]}")
    variances = np.var(means.astype(np.float64), axis=0)
    return int(np.sum(variances > threshold)), variances


def _kl_per_dim(q, prior, key):
    del key
    return objectives.kl_per_unit(q, prior)


def kl_per_dimension(model, params, x, batch_size: int = 500, condition=None) -> np.ndarray:
    """Average analytic KL of each latent unit: KL_u = mean_x KL(q(z_u|x) || p(z_u)).

    KL(q(z_u|x) || p(z_u)) = log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2

    for a diagonal Gaussian q(z|x) = N(m_q(x), diag s_q(x)^2) and a diagonal Gaussian
    prior (N(0, I) for :class:`jaxvae.VAE`); other distributions raise ``TypeError``.
    ``KL_u`` sums over u to the mean of :func:`jaxvae.kl_divergence` (the rate, in nats);
    units with KL_u near 0 are collapsed onto the prior.

    Args:
      model: a VAE with diagonal Gaussian q(z|x) and p(z) over ``[latent_dim]``.
      params: its parameters.
      x: ``[N, *model.event_shape]``.
      batch_size: examples per jitted call.
      condition: ``[N, ...]`` conditions of a conditional model, or None.

    Returns:
      ``[latent_dim]`` float64 numpy array, nats.

    References:
      Kingma & Welling (2014), Auto-Encoding Variational Bayes, Appendix B (the Gaussian KL).
    """
    _checks.batch(x, model.event_shape)
    x = np.asarray(x)
    kl = _map_batches(_kl_per_dim, model, params, x, batch_size, None, condition)
    return np.mean(kl.astype(np.float64), axis=0)
