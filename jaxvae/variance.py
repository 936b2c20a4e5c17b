"""Variance, signal-to-noise ratio and minibatch covariance of gradient estimators.

Everything works on an estimator given as a gradient function
``grad_fn(params, x, key) -> grads`` (a pytree, e.g. ``jax.grad`` of the batch mean of
a :func:`jaxvae.make_estimator` surrogate, see :func:`estimator_grad`) at fixed params
and data: only the key varies between draws, so the spread is the estimator's own noise.

* :func:`gradient_stats`: M independent draws (keys from ``jax.random.split``), vmapped
  in chunks and merged with Chan's parallel update, so memory is O(chunk x params),
  not O(M x params). Per parameter: mean, variance (ddof = 1), and the signal-to-noise
  ratio SNR = |E[g]| / std[g] (Rainforth et al., 2018).
* :func:`summarize`: one row per parameter group (``ParamGroups`` fields, or the
  top-level keys of a dict).
* :func:`minibatch_covariance`: the SGVB analysis of Kingma, Salimans & Welling (2015),
  Var[L_M] = N^2 (Var[L_i] / M + (M - 1) / M * Cov[L_i, L_j]), with both terms measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks
from jaxvae._cache import CompileCache
from jaxvae.terms import ParamGroups

Array = jax.Array

__all__ = ["GradientStats", "estimator_grad", "gradient_stats", "snr", "summarize",
           "MinibatchCovariance", "minibatch_covariance"]


class GradientStats(NamedTuple):
    """Per-parameter moments of M draws of a gradient estimator (pytrees like params)."""

    mean: Any
    variance: Any        # unbiased (ddof = 1)
    num_draws: int


def estimator_grad(surrogate: Callable) -> Callable:
    """``grad_fn(params, x, key)``: the gradient of ``mean(surrogate(params, x, key))``.

    ``surrogate`` maps ``(params, x: [batch, *event], key)`` to per-example values
    ``[batch]`` (as :func:`jaxvae.make_estimator` and :func:`jaxvae.make_objective` do).
    The gradient is of the objective (ascent direction), averaged over the batch.

    Args: ``surrogate(params, x, key) -> [batch]`` (nats).
    Returns: ``grad_fn(params, x, key) -> grads``, a pytree like ``params``.
    """
    return jax.grad(lambda params, x, key: jnp.mean(surrogate(params, x, key)))


def _check_draws(num_draws, name="num_draws", minimum=2) -> int:
    return _checks.integer(num_draws, name, minimum, type_error=ValueError)


# Compiled moment functions, at most 32 (least recently used evicted).
_MOMENTS = CompileCache()


def _moments_fn(grad_fn):
    """Jitted ``(params, x, keys) -> (mean, sum of squared deviations)`` over the keys,
    cached per ``grad_fn`` so that new params or data reuse the compilation."""

    def build():
        @jax.jit
        def moments(params, x, keys):
            g = jax.vmap(grad_fn, in_axes=(None, None, 0))(params, x, keys)
            mean = jax.tree_util.tree_map(lambda a: jnp.mean(a, axis=0), g)
            m2 = jax.tree_util.tree_map(lambda a, m: jnp.sum((a - m) ** 2, axis=0), g, mean)
            return mean, m2
        return moments

    return _MOMENTS.get(grad_fn, build)


def gradient_stats(grad_fn: Callable, params, x: Array, key: Array, num_draws: int = 1000,
                   *, chunk: int = 64) -> GradientStats:
    """Mean and variance over ``num_draws`` independent draws of ``grad_fn(params, x, key_m)``.

    Args:
      grad_fn: ``(params, x, key) -> grads`` pytree (see :func:`estimator_grad`).
      params: parameters (any pytree, e.g. :class:`jaxvae.ParamGroups`).
      x: the data, passed unchanged to every draw (e.g. ``[batch, *event]``).
      key: PRNG key; draw m uses ``jax.random.split(key, num_draws)[m]``.
      num_draws: M >= 2.
      chunk: draws vmapped at once (memory: chunk x number of parameters floats).

    Returns:
      :class:`GradientStats` with float64 numpy leaves.
    """
    num_draws = _check_draws(num_draws)
    chunk = _check_draws(chunk, "chunk", 1)
    keys = jax.random.split(key, num_draws)

    moments = _moments_fn(grad_fn)

    n, mean, m2 = 0, None, None
    for start in range(0, num_draws, chunk):
        c_keys = keys[start:start + chunk]
        c_n = c_keys.shape[0]
        c_mean, c_m2 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                              moments(params, x, c_keys))
        if mean is None:
            n, mean, m2 = c_n, c_mean, c_m2
            continue
        total = n + c_n

        def merge_m2(m2_a, m2_b, mean_a, mean_b):
            return m2_a + m2_b + (mean_b - mean_a) ** 2 * n * c_n / total

        m2 = jax.tree_util.tree_map(merge_m2, m2, c_m2, mean, c_mean)
        mean = jax.tree_util.tree_map(lambda a, b: a + (b - a) * c_n / total, mean, c_mean)
        n = total
    variance = jax.tree_util.tree_map(lambda m: m / (n - 1), m2)
    return GradientStats(mean, variance, n)


def snr(stats: GradientStats):
    """Per-parameter |E[g]| / std[g]; NaN where the estimator is deterministic (std = 0).

    Args: ``stats`` from :func:`gradient_stats`.
    Returns: a pytree like ``stats.mean`` of float64 numpy SNRs (dimensionless).

    References: Rainforth et al. (2018), Tighter Variational Bounds are Not Necessarily Better.
    """
    def one(mean, var):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.abs(mean) / np.sqrt(var)
        return np.where(var > 0, out, np.nan)
    return jax.tree_util.tree_map(one, stats.mean, stats.variance)


def _groups(tree) -> dict:
    if isinstance(tree, ParamGroups):
        return {"inference": tree.inference, "generative": tree.generative}
    if isinstance(tree, dict) and set(tree) == {"params"}:
        tree = tree["params"]
    if isinstance(tree, dict):
        return dict(tree)
    return {"all": tree}


def _flat(tree) -> np.ndarray:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return np.zeros(0)
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in leaves])


def summarize(stats: GradientStats, groups: Callable | None = None) -> dict:
    """One summary per parameter group.

    Groups: the fields of :class:`jaxvae.ParamGroups` (``inference``, ``generative``),
    else the top-level entries of a dict of sub-networks; or ``groups(tree) -> dict`` of
    your own. Per group (P parameters, M draws):

    * ``mean_snr`` / ``median_snr``: mean / median over parameters of |E g_p| / std g_p
      (parameters with zero variance left out);
    * ``total_variance``: sum_p Var[g_p] (the trace of the covariance);
    * ``mean_norm_sq``: ||mean of the draws||^2;
    * ``norm_snr``: ||E g|| / sqrt(tr Cov g), with ||E g||^2 estimated without the
      tr Cov / M bias of the squared sample mean (clipped at 0), so that it is not
      floored at ~1/sqrt(M) when the true signal is smaller;
    * ``num_params``, ``num_draws``.

    Args: ``stats`` from :func:`gradient_stats`; ``groups`` (None: the default split).
    Returns: ``{group name: {statistic: float or int}}`` with the entries above.

    References: Rainforth et al. (2018) (the per-parameter SNR).
    """
    split = groups or _groups
    means, variances = split(stats.mean), split(stats.variance)
    if set(means) != set(variances):
        raise ValueError("groups() must return the same keys for the mean and the variance")
    out = {}
    for name in means:
        mean, var = _flat(means[name]), _flat(variances[name])
        ok = var > 0
        ratio = np.abs(mean[ok]) / np.sqrt(var[ok])
        total = float(np.sum(var))
        norm_sq = float(np.sum(mean ** 2))
        signal = max(norm_sq - total / stats.num_draws, 0.0)
        out[name] = {
            "num_params": int(mean.size),
            "num_draws": stats.num_draws,
            "mean_snr": float(np.mean(ratio)) if ratio.size else math.nan,
            "median_snr": float(np.median(ratio)) if ratio.size else math.nan,
            "total_variance": total,
            "mean_norm_sq": norm_sq,
            "norm_snr": math.sqrt(signal / total) if total > 0 else math.nan,
        }
    return out


class MinibatchCovariance(NamedTuple):
    """Terms of Var[L_M] = N^2 (Var[L_i] / M + (M - 1) / M Cov[L_i, L_j]) per parameter.

    ``var_term`` = N^2 Var[L_i] / M, ``cov_term`` = N^2 (M - 1) / M Cov[L_i, L_j] (i != j
    in one minibatch), ``total`` = their sum = Var[(N / M) sum_{i in batch} L_i], all
    pytrees like the per-example values; plus ``var_per_example`` = Var[L_i] and
    ``cov_pairs`` = Cov[L_i, L_j] themselves.
    """

    var_term: Any
    cov_term: Any
    total: Any
    var_per_example: Any
    cov_pairs: Any
    batch_size: int
    num_data: int
    num_draws: int


def minibatch_covariance(per_example_fn: Callable, params, data: Array, key: Array, *,
                         batch_size: int, num_draws: int = 200) -> MinibatchCovariance:
    """Measures both terms of the minibatch estimator's variance.

    Each draw picks a minibatch of M = ``batch_size`` examples from the N in ``data``
    (uniformly, without replacement) and a fresh key, and calls
    ``per_example_fn(params, x_batch: [M, *event], key) -> values`` (a pytree whose leaves
    have leading axis M: the per-example estimates L_i, e.g. per-example gradients). The
    key is shared by the minibatch, so an estimator that shares noise across examples
    (one weight sample per minibatch) shows it as covariance.

    With S1 = sum_i L_i and S2 = sum_i L_i^2 per draw and averages over draws:
    Var[L_i] = <S2>/M - (<S1>/M)^2, Cov[L_i, L_j] = <S1^2 - S2>/(M(M-1)) - (<S1>/M)^2.

    Args:
      per_example_fn: ``(params, x_batch: [M, *event], key) -> values`` with leaves ``[M, ...]``.
      params: passed unchanged to every draw.
      data: ``[N, *event]``, N >= M.
      key: PRNG key; ``split(key, num_draws + 1)``, the first key for a pilot mean.
      batch_size: M >= 2.
      num_draws: minibatches drawn, >= 2.

    Returns:
      :class:`MinibatchCovariance` with float64 numpy leaves (units of L_i squared).

    References: Kingma, Salimans & Welling (2015), Variational Dropout and the Local
      Reparameterization Trick (the variance of the SGVB estimator).
    """
    data = jnp.asarray(data)
    n = data.shape[0]
    m = _check_draws(batch_size, "batch_size", 2)
    if m > n:
        raise ValueError(f"batch_size {m} is larger than the data ({n} examples)")
    num_draws = _check_draws(num_draws)

    def sample(params, data, key):
        k_idx, k_fn = jax.random.split(key)
        idx = jax.random.permutation(k_idx, n)[:m]
        return per_example_fn(params, data[idx], k_fn)

    probe = jax.eval_shape(sample, params, data, key)
    for leaf in jax.tree_util.tree_leaves(probe):
        if leaf.ndim == 0 or leaf.shape[0] != m:
            raise ValueError(f"per_example_fn must return leaves with leading axis "
                             f"batch_size={m}, got shape {leaf.shape}")
    keys = jax.random.split(key, num_draws + 1)
    # Moments about a pilot mean (one extra draw): variances and covariances do not change
    # under the shift, and the float32 sums do not cancel catastrophically.
    first = jax.jit(sample)(params, data, keys[0])
    shift = jax.tree_util.tree_map(lambda a: jnp.mean(a, axis=0), first)

    @jax.jit
    def accumulate(params, data, shift, keys):
        def draw(carry, key):
            values = jax.tree_util.tree_map(jnp.subtract, sample(params, data, key), shift)
            s1 = jax.tree_util.tree_map(lambda a: jnp.sum(a, axis=0), values)
            s2 = jax.tree_util.tree_map(lambda a: jnp.sum(a ** 2, axis=0), values)
            pair = jax.tree_util.tree_map(lambda a, b: a ** 2 - b, s1, s2)
            return jax.tree_util.tree_map(jnp.add, carry, (s1, s2, pair)), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, shift)
        return jax.lax.scan(draw, (zeros, zeros, zeros), keys)[0]

    s1, s2, pair = accumulate(params, data, shift, keys[1:])
    f64 = lambda t: jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64) / num_draws, t)
    s1, s2, pair = f64(s1), f64(s2), f64(pair)
    mean = jax.tree_util.tree_map(lambda a: a / m, s1)
    var = jax.tree_util.tree_map(lambda b, mu: b / m - mu ** 2, s2, mean)
    cov = jax.tree_util.tree_map(lambda p, mu: p / (m * (m - 1)) - mu ** 2, pair, mean)
    var_term = jax.tree_util.tree_map(lambda v: n ** 2 * v / m, var)
    cov_term = jax.tree_util.tree_map(lambda c: n ** 2 * (m - 1) / m * c, cov)
    total = jax.tree_util.tree_map(np.add, var_term, cov_term)
    return MinibatchCovariance(var_term, cov_term, total, var, cov, m, n, num_draws)
