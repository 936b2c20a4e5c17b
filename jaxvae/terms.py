"""The adapter between a model and the objectives: the only caller of ``model.apply``.

A model (see :class:`jaxvae.types.Model`) is reached through :func:`bind`, which fixes its
parameters (and optionally a condition and flax ``rngs``) and returns the three
distributions as plain functions; :func:`model_terms` gives the ``(q, prior,
log_likelihood)`` triple for one example that every objective in :mod:`jaxvae.objectives`
takes. Parameters may be split into :class:`ParamGroups` (inference phi, generative theta):
then q is computed from phi alone and p from theta alone, so a parameter in the wrong group
is an error at trace time, never a silently wrong gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import distrax
import flax
import jax
import jax.numpy as jnp

from jaxvae import _checks, likelihoods
from jaxvae.types import Array, Params, PRNGKey

__all__ = ["ParamGroups", "split_params", "merge_params", "Bound", "bind", "model_terms",
           "batched", "map_batch", "map_examples", "batch_parts", "check_batch", "check_data",
           "check_groups", "training_rngs"]


class ParamGroups(NamedTuple):
    """Parameters split by network into inference phi and generative theta.

    ``inference`` (phi) for q(z|x) and ``generative`` (theta) for p(z), p(x|z). Each field is
    a parameter tree that the model's ``apply`` accepts on its own. Gradients of a surrogate
    have the same structure.
    """

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


def split_params(model, params: Params, inference=None) -> ParamGroups:
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
      ``params``. Raises ValueError for names that ``params`` does not have, and for a
      model whose posterior reads generative networks (``model.shared_networks``, DRAW).
    """
    shared = tuple(getattr(model, "shared_networks", ()))
    if shared:
        raise ValueError(
            f"{type(model).__name__}'s q(z|x) reads its generative networks {list(shared)}, so "
            "its parameters do not split into inference and generative groups: the "
            "estimators that treat them apart (STL, DReG, score function, RWS) do not apply; "
            "train it with the ELBO or IWAE bound and the plain reparameterized gradient "
            "(jaxvae.make_loss)")
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


def merge_params(groups: ParamGroups) -> Params:
    """Inverse of :func:`split_params`: one parameter tree for ``model.apply``.

    Args: ``groups``, a :class:`ParamGroups` of two containers of the same format.
    Returns: the merged Flax variables ``{"params": {...}}`` or plain dict of sub-networks.
    """
    check_groups(groups)
    a, b = groups
    if set(a) == {"params"} and set(b) == {"params"}:
        return {"params": {**a["params"], **b["params"]}}
    return {**a, **b}


def check_groups(groups) -> None:
    """Raises TypeError unless ``groups`` is a :class:`ParamGroups`; returns None."""
    if not isinstance(groups, ParamGroups):
        raise TypeError(
            "estimators take ParamGroups(inference, generative), made with "
            f"jaxvae.split_params(model, params); got {type(groups).__name__}")


class Bound(NamedTuple):
    """A model with fixed parameters: the three distributions as functions.

    ``posterior(x) -> q(z|x)``, ``prior() -> p(z)``, ``likelihood(z) -> p(x|z)`` for one
    example ``x: [*event_shape]`` and one latent ``z: [*latent_shape]``.
    """

    posterior: Callable[[Array], distrax.Distribution]
    prior: Callable[[], distrax.Distribution]
    likelihood: Callable[[Array], distrax.Distribution]


def _applier(model, params, group: str | None, condition, rngs):
    extra = () if condition is None else (condition,)
    kwargs = {} if rngs is None else {"rngs": rngs}

    def apply(method: str, *args):
        try:
            return model.apply(params, *args, *extra, method=method, **kwargs)
        except (flax.errors.FlaxError, KeyError) as e:
            if group is None:
                raise
            raise ValueError(
                f"model.{method} needs parameters that are not in the {group} group; check "
                f"the inference networks given to split_params ({type(e).__name__}: {e})"
            ) from e

    return apply


def bind(model, params: Params | ParamGroups, *, condition: Array | None = None,
         rngs: Any = None) -> Bound:
    """Fixes ``params`` (and ``condition``, ``rngs``) of ``model``.

    Args:
      model: implements :class:`jaxvae.types.Model`.
      params: the model's parameters, or :class:`ParamGroups`: then the posterior is
        applied with ``params.inference`` alone and the prior and likelihood with
        ``params.generative`` alone.
      condition: a label or code for a conditional model, passed to all three methods;
        None for an unconditional model (then nothing is passed).
      rngs: flax rngs for a model with a stochastic part (word dropout).

    Returns:
      :class:`Bound`: ``posterior(x: [*event_shape])``, ``prior()``, ``likelihood(z:
      [*latent_shape])``, each returning a distrax distribution for one example.
    """
    if isinstance(params, ParamGroups):
        q_apply = _applier(model, params.inference, "inference", condition, rngs)
        p_apply = _applier(model, params.generative, "generative", condition, rngs)
    else:
        q_apply = p_apply = _applier(model, params, None, condition, rngs)
    return Bound(posterior=lambda x: q_apply("posterior", x),
                 prior=lambda: p_apply("prior"),
                 likelihood=lambda z: p_apply("likelihood", z))


def model_terms(model, params: Params | ParamGroups, x: Array, *,
                condition: Array | None = None, rngs: Any = None):
    """``(q, prior, log_likelihood)`` for one example ``x: [*model.event_shape]``.

    q = q(z|x) from the encoder; prior = p(z) (it may have learned parameters, as in the
    two-stochastic-layer model); ``log_likelihood(z) = log p(x|z)`` (nats) evaluates the
    decoder at one ``z: [*latent_shape]``.

    Args: ``model``, ``params``, ``condition``, ``rngs`` as in :func:`bind`; one ``x``.

    Returns: ``(q, prior, log_likelihood)``: q and prior over ``[*latent_shape]`` with batch
      shape ``()``, and ``log_likelihood: z -> scalar`` (nats).
    """
    _checks.single_example(x, model.event_shape)
    m = bind(model, params, condition=condition, rngs=rngs)

    def log_likelihood(z: Array) -> Array:
        return m.likelihood(z).log_prob(x)

    q = m.posterior(x)
    log_likelihood.posterior = q    # lets a posterior that decodes as it samples score x
    return q, m.prior(), log_likelihood


def training_rngs(model, key: PRNGKey) -> tuple[PRNGKey, dict | None]:
    """Splits the flax rngs of a model's training-time noise (word dropout) off ``key``.

    A model names the rng streams it draws from in training in ``rng_streams`` (e.g.
    ``("word_dropout",)``); a model without any gets ``key`` back unchanged, so its
    results do not depend on whether the caller asked for training noise.

    Args: ``model``; ``key``, one example's key.
    Returns: ``(key, rngs)``: the key left for z, and ``{stream: key}`` or None.
    """
    streams = tuple(getattr(model, "rng_streams", ()))
    if not streams:
        return key, None
    keys = jax.random.split(key, len(streams) + 1)
    return keys[0], dict(zip(streams, keys[1:]))


def batch_parts(batch) -> tuple[Array, Array | None]:
    """Splits a batch into ``(x, condition)``.

    Args: ``batch``, an array ``x: [B, *event]``, a tuple ``(x, condition)`` or a dict with
      ``"x"`` and optionally ``"condition"``.
    Returns: ``(x, condition)``; condition is None when absent.
    """
    if isinstance(batch, Mapping):
        if "x" not in batch:
            raise ValueError(f"a dict batch needs an 'x' entry, got keys {sorted(batch)}")
        return batch["x"], batch.get("condition")
    if isinstance(batch, tuple):
        if len(batch) != 2:
            raise ValueError(f"a tuple batch must be (x, condition), got {len(batch)} parts")
        return batch
    return batch, None


def check_batch(x, event_shape=None, name: str = "x") -> None:
    """Raises ValueError for a batch ``x: [batch, *event_shape]`` of wrong shape or values.

    Shape, NaN and inf are checked; values only on concrete arrays (not under jit).

    Args: ``x``; ``event_shape`` (None: any); ``name`` for the error message. Returns None.
    """
    _checks.batch(x, event_shape, name)


def check_data(model, params, x, condition=None) -> None:
    """Raises ValueError when concrete data ``x: [B, *event]`` leaves the range the model's
    likelihood head states (e.g. Bernoulli: [0, 1]); traced data are not checked.

    The head's distribution is built once, at z = 0 (one decoder pass, eagerly).
    """
    if isinstance(x, jax.core.Tracer) or not hasattr(model, "latent_shape"):
        return
    condition = None if condition is None else condition[0]
    dist = bind(model, params, condition=condition).likelihood(jnp.zeros(model.latent_shape))
    likelihoods.check_support(dist, x)


def map_batch(per_example: Callable, params, x: Array, key: PRNGKey, *extra):
    """``per_example(params, x_i, key_i, *extra_i)`` vmapped over the batch.

    One key per example (``jax.random.split(key, B)``); params are shared.

    Args: ``per_example``; ``params``; ``x: [B, *event]``; ``key``; ``extra`` arrays ``[B, ...]``.
    Returns: the stacked per-example outputs, ``[B, ...]``.
    """
    keys = jax.random.split(key, x.shape[0])
    in_axes = (None, 0, 0) + (0,) * len(extra)
    return jax.vmap(per_example, in_axes=in_axes)(params, x, keys, *extra)


def map_examples(model, per_example: Callable, params, batch, key: PRNGKey, *,
                 data_params=None):
    """A batch through ``per_example`` after the checks every bound makes.

    Splits ``batch`` (:func:`batch_parts`), checks the images' shape and values
    (:func:`check_batch`) and the likelihood's data range (:func:`check_data`, with
    ``data_params`` when ``params`` is not what ``model.apply`` takes, e.g. ParamGroups),
    then :func:`map_batch`.

    Args: ``model``; ``per_example(params, x_i, key_i[, c_i])``; ``params``; ``batch`` as in
      :func:`batch_parts`; ``key``; ``data_params`` or None.
    Returns: the stacked per-example outputs, ``[B, ...]``.
    """
    x, condition = batch_parts(batch)
    check_batch(x, model.event_shape)
    check_data(model, params if data_params is None else data_params, x, condition)
    extra = () if condition is None else (condition,)
    return map_batch(per_example, params, x, key, *extra)


def batched(per_example: Callable[[Any, Array, Array], Array]):
    """Vectorizes ``per_example(params, x, key)`` over a batch.

    Args: ``per_example(params, x: [*event], key) -> [...]``, e.g. a bound in nats.

    Returns: ``f(params, x: [batch, *event], key) -> [batch, ...]``: the key is split into
    one key per example and the function is ``jax.vmap``-ed over (x, key); params are shared.
    """

    def fn(params, x: Array, key: Array):
        check_batch(x)
        return map_batch(per_example, params, x, key)

    return fn

