"""What the gradient estimators see of a model: one example's terms with split parameters,
k samples of q(z|x) with three views of log q, and dreams from the generative model.

The views exist because a flow posterior without an inverse (planar, radial) cannot evaluate
log q at a new z; :func:`log_q_views` derives every view from the base sample instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

from jaxvae import _checks, terms
from jaxvae.terms import ParamGroups
from jaxvae.types import Array, PRNGKey

__all__ = ["EstimatorTerms", "estimator_terms", "LogQViews", "log_q_views", "dream"]

_stop = jax.lax.stop_gradient


def _tree_stop(tree):
    return jax.tree_util.tree_map(_stop, tree)


class EstimatorTerms(NamedTuple):
    """One example's model terms with the parameters split (built by :func:`estimator_terms`).

    ``q`` (live phi), ``q_stopped()`` (q(z|x) with stopped phi), ``prior`` and
    ``log_likelihood`` (theta), and ``model``: the bound model for other x (dreams).
    """

    q: distrax.Distribution
    q_stopped: Callable[[], distrax.Distribution]
    prior: distrax.Distribution
    log_likelihood: Callable[[Array], Array]
    model: terms.Bound


def estimator_terms(model, groups: ParamGroups, x: Array, *, condition=None,
                    rngs=None) -> EstimatorTerms:
    """:class:`EstimatorTerms` for one example ``x: [*event_shape]``.

    Args: ``model``, ``groups`` (:class:`ParamGroups`), ``x``, ``condition``, ``rngs`` as in
      :func:`jaxvae.bind`. Returns: the terms (``q`` over ``[*latent]``, batch shape ``()``).
    """
    q, prior, log_likelihood = terms.model_terms(model, groups, x, condition=condition,
                                                 rngs=rngs)
    _checks.same_event_shape(q, prior)
    stopped = ParamGroups(_tree_stop(groups.inference), groups.generative)

    def q_stopped():
        return terms.bind(model, stopped, condition=condition, rngs=rngs).posterior(x)

    bound = terms.bind(model, groups, condition=condition, rngs=rngs)
    return EstimatorTerms(q, q_stopped, prior, log_likelihood, bound)


class LogQViews(NamedTuple):
    """k samples of q(z|x) and three views of log q at them (all equal in value)."""

    z: Array                              # [k, *latent], reparameterized
    log_q: Array                          # [k], full gradient (through z and phi)
    path_log_q: Callable[[Array], Array]  # z' -> [k]; gradient through z' only (phi stopped)
    fixed_log_q: Callable[[], Array]      # () -> [k]; gradient in phi with z held fixed


def log_q_views(t: EstimatorTerms, key: PRNGKey, k: int) -> LogQViews:
    """Samples z_1..z_k ~ q(z|x) with the views of log q the estimators need.

    A flow posterior (``distrax.Transformed``) may have no inverse (planar, radial), so log q
    cannot be evaluated at a new z. Its views come from the base sample z_0 instead: with
    s = grad_z log q(z) at stopped phi, computed as J^{-T} grad_{z_0} log q(f(z_0)) with
    J = df/dz_0 (one Jacobian of the flow and one D x D solve per sample),
    path_log_q(z') = log q(z) + s . (z' - z) and fixed_log_q = log q(z(phi)) - s . z(phi),
    i.e. the total derivative minus the path derivative.

    Args: ``t`` from :func:`estimator_terms`, ``key`` a PRNG key, ``k`` >= 1 samples.
    Returns: :class:`LogQViews` with ``z: [k, *latent]`` and log q values ``[k]`` (nats).
    """
    q = t.q
    if not isinstance(q, distrax.Transformed):
        z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(k,))
        return LogQViews(z, log_q, lambda z_: t.q_stopped().log_prob(z_),
                         lambda: q.log_prob(_tree_stop(z)))
    z0, log_q0 = q.distribution.sample_and_log_prob(seed=key, sample_shape=(k,))
    z, log_det = jax.vmap(q.bijector.forward_and_log_det)(z0)
    log_q = log_q0 - log_det
    q_stop = t.q_stopped()

    def log_q_of_base(a):                       # log q(f(a)) at stopped phi, for one a: [D]
        _, ld = q_stop.bijector.forward_and_log_det(a)
        return q_stop.distribution.log_prob(a) - ld

    def score(a):
        jac = jax.jacfwd(q_stop.bijector.forward)(a)
        return jnp.linalg.solve(jac.T, jax.grad(log_q_of_base)(a))

    s = _stop(jax.vmap(score)(_stop(z0)))
    value = _stop(log_q)
    return LogQViews(
        z, log_q,
        path_log_q=lambda z_: value + jnp.sum(s * (z_ - _stop(z_)), axis=-1),
        fixed_log_q=lambda: log_q - jnp.sum(s * (z - _stop(z)), axis=-1))


def dream(key: PRNGKey, model: terms.Bound, num: int) -> tuple[Array, Array]:
    """Dreams (z_j, x_j) ~ p(z) p(x|z), j = 1..num, with stopped gradients.

    Args: ``key`` (``key_z, key_x = split(key)``; x_j is drawn with ``split(key_x, num)[j]``),
      ``model`` a :class:`jaxvae.terms.Bound`, ``num`` >= 1.
    Returns: ``(z: [num, *latent], x: [num, *event] float32)``.
    """
    key_z, key_x = jax.random.split(key)
    z = model.prior().sample(seed=key_z, sample_shape=(num,))
    x = jax.vmap(lambda zj, kj: model.likelihood(zj).sample(seed=kj))(
        z, jax.random.split(key_x, num))
    return _stop(z), _stop(x.astype(jnp.float32))
