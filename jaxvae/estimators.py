"""Gradient estimators as surrogate objectives.

An estimator here is a *surrogate*: a function whose value is the objective (an ELBO or
an IWAE bound on log p(x), in nats per example) and whose ``jax.grad`` is the gradient
estimator. Swapping estimators never changes the logged numbers, only the gradients.

The estimators treat the inference network (the parameters phi of q(z|x)) and the
generative network (the parameters theta of p(z) and p(x|z)) differently, so they take
the parameters as a :class:`ParamGroups` pair, built once with :func:`split_params`.
Each group is evaluated *alone*: q(z|x) is computed from ``groups.inference`` only, p(z)
and p(x|z) from ``groups.generative`` only, so a parameter in the wrong group is an error
(raised while tracing), never a silently wrong gradient.

Estimators (``k = num_samples``; w_i = p(x, z_i) / q(z_i|x), w~_i = w_i / sum_j w_j):

==================  ==========  ===================================================
name                objective   gradient
==================  ==========  ===================================================
``reparam``         ELBO_k      pathwise (reparameterized) gradient; MC KL, or the
                                closed-form KL with ``analytic_kl=True``
``score_function``  ELBO_k      REINFORCE for phi: (f_i - b_i) grad log q(z_i|x) with
                                f = log w, z not differentiated; ``baseline`` b:
                                None, a number, or ``"leave_one_out"`` (k >= 2)
``stl``             ELBO_k      "sticking the landing" (Roeder et al., 2017): pathwise,
                                log q evaluated with stopped phi (no score term)
``iwae``            IWAE_k      pathwise gradient of the IWAE bound
``dreg``            IWAE_k      doubly reparameterized (Tucker et al., 2018) for phi:
                                sum_i w~_i^2 d log w_i / d z_i  d z_i / d phi
                                (log q with stopped phi); the IWAE gradient for theta
``rws``             IWAE_k      reweighted wake-sleep (Bornschein & Bengio, 2015):
                                wake-phi sum_i w~_i grad log q(z_i|x) and wake-theta
                                sum_i w~_i grad log p(x, z_i), z not differentiated
==================  ==========  ===================================================

``reparam``, ``score_function`` and ``stl`` are unbiased for the gradient of ELBO_k;
``iwae`` and ``dreg`` for the gradient of IWAE_k. Flow posteriors (``distrax.Transformed``,
e.g. from :class:`jaxvae.FlowEncoder`) work with every estimator, including planar and
radial flows that have no inverse (see :func:`_draw`). ``rws``'s wake-phi step is not a
gradient of the bound (it descends KL(p(z|x) || q(z|x)) estimated by self-normalized
importance sampling); its value is still IWAE_k.

Example::

    model = jaxvae.iwae_mlp()
    groups = jaxvae.split_params(model, model.init_params(key))
    surrogate = jaxvae.make_estimator(model, "dreg", num_samples=50)
    grads = jax.grad(lambda g: jnp.mean(surrogate(g, x, key)))(groups)   # ParamGroups
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import distrax
import flax
import jax
import jax.numpy as jnp

from jaxvae import losses
from jaxvae import objectives

Array = jax.Array

__all__ = ["ParamGroups", "split_params", "merge_params", "make_estimator",
           "make_estimator_loss", "ESTIMATORS"]


class ParamGroups(NamedTuple):
    """Parameters split by network: ``inference`` (phi, for q(z|x)) and ``generative``
    (theta, for p(z) and p(x|z)). Each field is a parameter tree that the model's
    ``apply`` accepts on its own. Gradients of a surrogate have the same structure."""

    inference: Any
    generative: Any


def _container(params):
    """(top-level dict holding the sub-networks, wrap: dict -> params for model.apply)."""
    if isinstance(params, ParamGroups):
        raise TypeError("params are already split into ParamGroups")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of sub-network parameters, got {type(params)}")
    if set(params) == {"params"} and isinstance(params["params"], Mapping):   # Flax variables
        return params["params"], lambda d: {"params": d}
    return params, lambda d: d


def split_params(model, params, inference=None) -> ParamGroups:
    """Splits ``params`` into the inference network and the generative network.

    Args:
      model: the model the parameters belong to (e.g. :func:`jaxvae.iwae_mlp`).
      params: its parameters, e.g. ``model.init_params(key)``: Flax variables
        ``{"params": {name: ...}}`` or a plain ``{name: ...}`` dict of sub-networks.
      inference: names of the sub-networks that make up q(z|x); default
        ``model.inference_networks`` (``("encoder",)`` for :class:`jaxvae.VAE`,
        ``("q_z1", "q_z2")`` for :class:`jaxvae.HierarchicalVAE`). Every other
        sub-network is generative.

    Returns:
      ``ParamGroups(inference, generative)``, each in the same container format as
      ``params``. Raises ValueError for names that ``params`` does not have.
    """
    if inference is None:
        inference = getattr(model, "inference_networks", None)
        if inference is None:
            raise ValueError(
                f"{type(model).__name__} does not declare inference_networks; pass "
                "inference=(names of the sub-networks of q(z|x)) to split_params")
    if isinstance(inference, str):
        inference = (inference,)
    inference = tuple(inference)
    nets, wrap = _container(params)
    unknown = [n for n in inference if n not in nets]
    if unknown or not inference:
        raise ValueError(f"inference networks {list(unknown or inference)} not found in the "
                         f"parameters; sub-networks present: {sorted(nets)}")
    phi = {n: v for n, v in nets.items() if n in inference}
    theta = {n: v for n, v in nets.items() if n not in inference}
    return ParamGroups(wrap(phi), wrap(theta))


def merge_params(groups: ParamGroups):
    """Inverse of :func:`split_params`: one parameter tree for ``model.apply``."""
    _check_groups(groups)
    a, b = groups
    if set(a) == {"params"} and set(b) == {"params"}:
        return {"params": {**a["params"], **b["params"]}}
    return {**a, **b}


def _check_groups(groups) -> None:
    if not isinstance(groups, ParamGroups):
        raise TypeError(
            "estimators take ParamGroups(inference, generative), made with "
            f"jaxvae.split_params(model, params); got {type(groups).__name__}")


def _apply(model, params, group: str, *args, method: str):
    try:
        return model.apply(params, *args, method=method)
    except (flax.errors.FlaxError, KeyError) as e:
        raise ValueError(
            f"model.{method} needs parameters that are not in the {group} group; check the "
            f"inference networks given to split_params ({type(e).__name__}: {e})") from e


class _Terms(NamedTuple):
    q: Any                                    # q(z|x), live phi
    q_stopped: Callable[[], Any]              # q(z|x) with stopped phi (built on demand)
    log_lik: Callable[[Array], Array]         # z: [k, *latent] -> log p(x|z): [k]
    prior: Any                                # p(z)


def _terms(model, groups: ParamGroups, x: Array) -> _Terms:
    losses._check_example(model, x)
    phi, theta = groups
    q = _apply(model, phi, "inference", x, method="posterior")
    prior = _apply(model, theta, "generative", method="prior")
    objectives._check_event_shapes(q, prior)

    def q_stopped():
        return _apply(model, jax.lax.stop_gradient(phi), "inference", x, method="posterior")

    def log_lik(z):
        one = lambda zi: _apply(model, theta, "generative", zi, method="likelihood").log_prob(x)
        return jax.vmap(one)(z)

    return _Terms(q, q_stopped, log_lik, prior)


def _tree_stop(z):
    return jax.tree_util.tree_map(jax.lax.stop_gradient, z)


def _value_with_grad(value: Array, surrogate: Array) -> Array:
    """A scalar equal to ``value`` whose gradient is the gradient of ``surrogate``."""
    return jax.lax.stop_gradient(value) + surrogate - jax.lax.stop_gradient(surrogate)


class _Draw(NamedTuple):
    """k samples of q(z|x) and three views of log q at them (all equal in value)."""

    z: Array                            # [k, *latent], reparameterized
    log_q: Array                        # [k], full gradient (through z and phi)
    path_log_q: Callable[[Array], Array]  # z' -> [k]; gradient through z' only (phi stopped)
    fixed_log_q: Callable[[], Array]    # () -> [k]; gradient in phi with z held fixed


def _draw(t: _Terms, key, k: int) -> _Draw:
    """Samples z_1..z_k ~ q(z|x) for the estimators.

    A flow posterior (``distrax.Transformed``) may have no inverse (planar, radial), so
    log q cannot be evaluated at a new z. Its views come from the base sample z_0 instead:
    with s = grad_z log q(z) at stopped phi, computed as J^{-T} grad_{z_0} log q(f(z_0)) with
    J = df/dz_0 (one Jacobian of the flow and one D x D solve per sample),
    path_log_q(z') = log q(z) + s . (z' - z) and fixed_log_q = log q(z(phi)) - s . z(phi),
    i.e. the total derivative minus the path derivative.
    """
    q = t.q
    if not isinstance(q, distrax.Transformed):
        z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(k,))
        return _Draw(z, log_q, lambda z_: t.q_stopped().log_prob(z_),
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

    s = jax.lax.stop_gradient(jax.vmap(score)(jax.lax.stop_gradient(z0)))
    value = jax.lax.stop_gradient(log_q)

    def path_log_q(z_):
        return value + jnp.sum(s * (z_ - jax.lax.stop_gradient(z_)), axis=-1)

    def fixed_log_q():
        return log_q - jnp.sum(s * (z - jax.lax.stop_gradient(z)), axis=-1)

    return _Draw(z, log_q, path_log_q, fixed_log_q)


def _reparam(key, t: _Terms, k: int, analytic_kl: bool = False) -> Array:
    z, log_q = t.q.sample_and_log_prob(seed=key, sample_shape=(k,))
    log_px = t.log_lik(z)
    if analytic_kl:
        return jnp.mean(log_px) - objectives.kl_divergence(t.q, t.prior)
    return jnp.mean(log_px + t.prior.log_prob(z) - log_q)


def _score_function(key, t: _Terms, k: int, baseline=None) -> Array:
    d = _draw(t, key, k)
    z = _tree_stop(d.z)
    log_q = d.fixed_log_q()
    f = t.log_lik(z) + t.prior.log_prob(z) - log_q          # log w_i; theta-gradient is pathwise
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str):   # "leave_one_out", checked in make_estimator
        b = (jnp.sum(f) - f) / (k - 1)
    else:
        b = baseline
    score = log_q - jax.lax.stop_gradient(log_q)       # value 0, gradient grad log q
    return jnp.mean(f + jax.lax.stop_gradient(f - b) * score)


def _stl(key, t: _Terms, k: int) -> Array:
    d = _draw(t, key, k)
    return jnp.mean(t.log_lik(d.z) + t.prior.log_prob(d.z) - d.path_log_q(d.z))


def _iwae(key, t: _Terms, k: int) -> Array:
    z, log_q = t.q.sample_and_log_prob(seed=key, sample_shape=(k,))
    return objectives.log_mean_exp(t.log_lik(z) + t.prior.log_prob(z) - log_q)


def _scale_path(z, scale: Array):
    """Equal to z; the gradient flowing back into z is multiplied by ``scale[i]`` per sample."""
    def one(a):
        s = jnp.reshape(scale, scale.shape + (1,) * (a.ndim - 1))
        return jax.lax.stop_gradient(a) + s * (a - jax.lax.stop_gradient(a))
    return jax.tree_util.tree_map(one, z)


def _dreg(key, t: _Terms, k: int) -> Array:
    d = _draw(t, key, k)

    def log_w(z):
        return t.log_lik(z) + t.prior.log_prob(z) - d.path_log_q(z)

    values = jax.lax.stop_gradient(log_w(_tree_stop(d.z)))
    w = jax.nn.softmax(values)
    # sum_i w_i log w_i(theta, z'_i), where z'_i passes w_i times the gradient on to z_i:
    # theta gets sum_i w_i grad log w_i (IWAE), phi gets sum_i w_i^2 d log w_i/dz_i dz_i/dphi.
    surrogate = jnp.sum(w * log_w(_scale_path(d.z, w)))
    return _value_with_grad(objectives.log_mean_exp(values), surrogate)


def _rws(key, t: _Terms, k: int) -> Array:
    d = _draw(t, key, k)
    z = _tree_stop(d.z)
    log_q = d.fixed_log_q()
    log_joint = t.log_lik(z) + t.prior.log_prob(z)
    log_w = log_joint - log_q
    w = jax.lax.stop_gradient(jax.nn.softmax(log_w))
    surrogate = jnp.sum(w * (log_joint + log_q))       # wake-theta + wake-phi
    return _value_with_grad(objectives.log_mean_exp(log_w), surrogate)


_ESTIMATORS = {"reparam": _reparam, "score_function": _score_function, "stl": _stl,
               "iwae": _iwae, "dreg": _dreg, "rws": _rws}
_OPTIONS = {"reparam": {"analytic_kl"}, "score_function": {"baseline"}}
ESTIMATORS = tuple(_ESTIMATORS)


def make_estimator(model, estimator: str, num_samples: int = 1, **options):
    """Per-example surrogate objective over a batch.

    Args:
      model: a model with ``posterior``, ``prior``, ``likelihood`` methods and
        ``event_shape`` (see :func:`jaxvae.model_terms`).
      estimator: one of :data:`ESTIMATORS` (see the module docstring).
      num_samples: k >= 1 samples per example.
      **options: ``analytic_kl`` (``reparam``); ``baseline`` (``score_function``:
        None, a number or array broadcastable to [k], or ``"leave_one_out"``).

    Returns:
      ``surrogate(groups: ParamGroups, x: [batch, *event], key) -> [batch]``: the
      objective's value per example (ELBO_k or IWAE_k, nats); ``jax.grad`` of its batch
      mean is the estimator, with the structure of ``groups``.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {list(ESTIMATORS)}")
    k = objectives._check_num_samples(num_samples)
    extra = set(options) - _OPTIONS.get(estimator, set())
    if extra:
        raise ValueError(f"estimator {estimator!r} takes no option(s) {sorted(extra)}; "
                         f"allowed: {sorted(_OPTIONS.get(estimator, set()))}")
    baseline = options.get("baseline")
    if isinstance(baseline, str):
        if baseline != "leave_one_out":
            raise ValueError(f"baseline must be None, a number or 'leave_one_out', got {baseline!r}")
        if k < 2:
            raise ValueError("the leave-one-out baseline needs num_samples >= 2")
    fn = _ESTIMATORS[estimator]
    event_shape = tuple(model.event_shape)

    def per_example(groups, x, key):
        return fn(key, _terms(model, groups, x), k, **options)

    def surrogate(groups: ParamGroups, x: Array, key: Array) -> Array:
        _check_groups(groups)
        losses.check_batch(x, event_shape)
        return losses._map_batch(per_example, groups, x, key)

    return surrogate


def make_estimator_loss(model, estimator: str, num_samples: int = 1, **options):
    """``loss(groups, x, key) -> (loss, {"bound": mean objective})`` for training with an
    estimator: loss = -mean_batch(surrogate). Use ``ParamGroups`` as the train state's
    params (``jaxvae.create_train_state(split_params(model, params), tx, key)``)."""
    surrogate = make_estimator(model, estimator, num_samples, **options)

    def loss(groups, x, key):
        bound = jnp.mean(surrogate(groups, x, key))
        return -bound, {"bound": bound}

    return loss
