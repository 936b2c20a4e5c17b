"""Gradient estimators as surrogate objectives.

:meth:`Estimator.surrogate` returns, for one example, a scalar whose *value* is the objective
(ELBO_k or IWAE_k, nats) and whose ``jax.grad`` is the gradient estimator: swapping
estimators changes the gradients, never the logged numbers. Parameters come split into
inference phi (q(z|x)) and generative theta (p(z), p(x|z)) as :class:`jaxvae.ParamGroups`,
each applied alone (:func:`jaxvae.bind`): a parameter in the wrong group is an error, not a
wrong gradient. :func:`jaxvae.make_loss` (``estimator=...``) splits ordinary parameters.

Notation: k = num_samples, w_i = p(x, z_i) / q(z_i|x), w~_i = w_i / sum_j w_j. ``Reparam``,
``ScoreFunction``, ``STL`` are unbiased for grad ELBO_k, ``IWAE``, ``DReG`` for grad IWAE_k;
``RWS``, ``WakeSleep`` follow other objectives for phi (values IWAE_k, ELBO_k). Flow
posteriors, even planar and radial ones (no inverse), work with all but the sleep phase of
``WakeSleep`` (see :func:`jaxvae.posterior_views.log_q_views`). Example::

    groups = jaxvae.split_params(model, model.init_params(key))
    surrogate = jaxvae.make_estimator(model, "dreg", num_samples=50)
    grads = jax.grad(lambda g: jnp.mean(surrogate(g, x, key)))(groups)   # ParamGroups
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxvae import _checks, objectives, terms
from jaxvae.posterior_views import EstimatorTerms, dream, estimator_terms, log_q_views
from jaxvae.terms import ParamGroups
from jaxvae.types import Array, PRNGKey

__all__ = ["Estimator", "Reparam", "ScoreFunction", "STL", "IWAE", "DReG", "RWS", "WakeSleep",
           "get_estimator", "make_estimator", "ESTIMATORS"]

_stop = jax.lax.stop_gradient


def _tree_stop(tree):
    return jax.tree_util.tree_map(_stop, tree)


def _value_with_grad(value: Array, surrogate: Array) -> Array:
    """A scalar equal to ``value`` whose gradient is the gradient of ``surrogate``."""
    return _stop(value) + surrogate - _stop(surrogate)


def _log_joint(t: EstimatorTerms, z: Array) -> Array:
    """log p(x, z_i) = log p(x|z_i) + log p(z_i), ``[k]``."""
    log_px_z, log_pz = objectives.log_joint(t.prior, t.log_likelihood, z)
    return log_px_z + log_pz


def _scale_path(z, scale: Array):
    """Equal to z; the gradient flowing back into z is multiplied by ``scale[i]`` per sample."""
    def one(a):
        s = jnp.reshape(scale, scale.shape + (1,) * (a.ndim - 1))
        return _stop(a) + s * (a - _stop(a))
    return jax.tree_util.tree_map(one, z)


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Base class: ``surrogate(key, t, k)`` for one example; ``objective`` names the value."""

    name: ClassVar[str]
    objective: ClassVar[str]   # "elbo" or "iwae": what the surrogate's value is

    def check(self, num_samples: int) -> None:
        """Raises ValueError for settings that cannot work with ``num_samples``; else None."""

    def surrogate(self, key: PRNGKey, t: EstimatorTerms, num_samples: int) -> Array:
        """Surrogate for one example: its value is the objective, its gradient the estimator.

        Args: ``key`` (PRNG key of z_1..z_k ~ q(z|x)), ``t`` from :func:`estimator_terms`,
          ``num_samples`` k >= 1.
        Returns: a scalar, ELBO_k or IWAE_k (as ``objective`` says) in nats.
        """
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Reparam(Estimator):
    """Pathwise (reparameterized) gradient of ELBO_k; MC KL, or the closed form with
    ``analytic_kl=True``. References: Kingma & Welling (2014); Rezende et al. (2014)."""

    analytic_kl: bool = False
    name: ClassVar[str] = "reparam"
    objective: ClassVar[str] = "elbo"

    def surrogate(self, key, t, num_samples):
        """ELBO_k (nats) with its pathwise gradient; see :meth:`Estimator.surrogate`."""
        return objectives.elbo(key, t.q, t.prior, t.log_likelihood, num_samples,
                               analytic_kl=self.analytic_kl)


@dataclasses.dataclass(frozen=True)
class ScoreFunction(Estimator):
    """REINFORCE for phi: (1/k) sum_i (f_i - b_i) grad log q(z_i|x), f = log w, z not
    differentiated; theta gets the pathwise gradient of ELBO_k. ``baseline`` b: None, a
    number or array broadcastable to [k], or ``"leave_one_out"`` (k >= 2).
    References: Williams (1992); Paisley, Blei & Jordan (2012); Mnih & Gregor (2014)."""

    baseline: Any = None
    name: ClassVar[str] = "score_function"
    objective: ClassVar[str] = "elbo"

    def check(self, num_samples):
        """Raises ValueError for an unknown baseline, or leave-one-out with k < 2."""
        if isinstance(self.baseline, str):
            if self.baseline != "leave_one_out":
                raise ValueError("baseline must be None, a number or 'leave_one_out', "
                                 f"got {self.baseline!r}")
            if num_samples < 2:
                raise ValueError("the leave-one-out baseline needs num_samples >= 2")

    def surrogate(self, key, t, num_samples):
        """ELBO_k (nats) with the score-function gradient for phi; see the class docstring."""
        d = log_q_views(t, key, num_samples)
        z = _tree_stop(d.z)
        log_q = d.fixed_log_q()
        f = _log_joint(t, z) - log_q               # log w_i; theta-gradient is pathwise
        if self.baseline is None:
            b = 0.0
        elif isinstance(self.baseline, str):       # "leave_one_out"
            b = (jnp.sum(f) - f) / (num_samples - 1)
        else:
            b = self.baseline
        score = log_q - _stop(log_q)               # value 0, gradient grad log q
        return jnp.mean(f + _stop(f - b) * score)


@dataclasses.dataclass(frozen=True)
class STL(Estimator):
    """"Sticking the landing": the pathwise gradient of ELBO_k with log q evaluated at
    stopped phi (the score term dropped). References: Roeder, Wu & Duvenaud (2017)."""

    name: ClassVar[str] = "stl"
    objective: ClassVar[str] = "elbo"

    def surrogate(self, key, t, num_samples):
        """ELBO_k (nats) with the STL gradient (path derivative only) for phi."""
        d = log_q_views(t, key, num_samples)
        return jnp.mean(_log_joint(t, d.z) - d.path_log_q(d.z))


@dataclasses.dataclass(frozen=True)
class IWAE(Estimator):
    """Pathwise gradient of IWAE_k = log (1/k) sum_i w_i.
    References: Burda, Grosse & Salakhutdinov (2016)."""

    name: ClassVar[str] = "iwae"
    objective: ClassVar[str] = "iwae"

    def surrogate(self, key, t, num_samples):
        """IWAE_k (nats) with its pathwise gradient; see :meth:`Estimator.surrogate`."""
        return objectives.iwae_bound(key, t.q, t.prior, t.log_likelihood, num_samples)


@dataclasses.dataclass(frozen=True)
class DReG(Estimator):
    """Doubly reparameterized gradient of IWAE_k for phi:
    sum_i w~_i^2 d log w_i / d z_i  d z_i / d phi (log q with stopped phi); the IWAE
    gradient sum_i w~_i grad log w_i for theta.
    References: Tucker, Lawson, Gu & Maddison (2019), eq. (7)."""

    name: ClassVar[str] = "dreg"
    objective: ClassVar[str] = "iwae"

    def surrogate(self, key, t, num_samples):
        """IWAE_k (nats) with the DReG gradient for phi and the IWAE gradient for theta."""
        d = log_q_views(t, key, num_samples)

        def log_w(z):
            return _log_joint(t, z) - d.path_log_q(z)

        values = _stop(log_w(_tree_stop(d.z)))
        w = jax.nn.softmax(values)
        # sum_i w_i log w_i(theta, z'_i), where z'_i passes w_i times the gradient on to z_i:
        # theta gets sum_i w_i grad log w_i, phi gets sum_i w_i^2 d log w_i/dz_i dz_i/dphi.
        surrogate = jnp.sum(w * log_w(_scale_path(d.z, w)))
        return _value_with_grad(objectives.log_mean_exp(values), surrogate)


@dataclasses.dataclass(frozen=True)
class RWS(Estimator):
    """Reweighted wake-sleep: wake-phi sum_i w~_i grad log q(z_i|x) and wake-theta
    sum_i w~_i grad log p(x, z_i), z not differentiated. The phi step descends
    KL(p(z|x) || q(z|x)) by self-normalized importance sampling; the value is IWAE_k.
    References: Bornschein & Bengio (2015), Sec. 3."""

    name: ClassVar[str] = "rws"
    objective: ClassVar[str] = "iwae"

    def surrogate(self, key, t, num_samples):
        """IWAE_k (nats) with the wake-phi and wake-theta gradients of RWS."""
        d = log_q_views(t, key, num_samples)
        z = _tree_stop(d.z)
        log_q = d.fixed_log_q()
        log_joint = _log_joint(t, z)
        log_w = log_joint - log_q
        w = _stop(jax.nn.softmax(log_w))
        surrogate = jnp.sum(w * (log_joint + log_q))       # wake-theta + wake-phi
        return _value_with_grad(objectives.log_mean_exp(log_w), surrogate)


@dataclasses.dataclass(frozen=True)
class WakeSleep(Estimator):
    """The wake-sleep algorithm of the Helmholtz machine.

    Wake (theta): (1/k) sum_i grad_theta log p(x, z_i), z_i ~ q(z|x) not differentiated.
    Sleep (phi): (1/k) sum_j grad_phi log q(z_j|x_j) on dreams (z_j, x_j) ~ p(z) p(x|z)
    (see :func:`dream`; the wake samples use ``key`` as :func:`jaxvae.elbo` does, the dreams
    ``fold_in(key, 1)``). The sleep phase descends KL(p(z|x) || q(z|x)) averaged over the
    model's own data, not a bound; the value is ELBO_k on the wake samples. It needs log q
    at the dreamed z, so a planar or radial flow posterior (no inverse) is refused.
    References: Hinton, Dayan, Frey & Neal (1995), The wake-sleep algorithm for
    unsupervised neural networks; Dayan, Hinton, Neal & Zemel (1995), The Helmholtz machine.
    """

    name: ClassVar[str] = "wake_sleep"
    objective: ClassVar[str] = "elbo"

    def surrogate(self, key, t, num_samples):
        """ELBO_k (nats) on the wake samples; wake gradient for theta, sleep for phi."""
        z, log_q = t.q.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
        log_px_z, log_pz = objectives.log_joint(t.prior, t.log_likelihood, _tree_stop(z))
        z_dream, x_dream = dream(jax.random.fold_in(key, 1), t.model, num_samples)
        log_q_dream = jax.vmap(lambda zj, xj: t.model.posterior(xj).log_prob(zj))(
            z_dream, x_dream)
        wake_sleep = jnp.mean(log_px_z + log_pz) + jnp.mean(log_q_dream)
        elbo = jnp.mean(log_px_z) - jnp.mean(log_q - log_pz)      # as jaxvae.elbo computes it
        return _value_with_grad(elbo, wake_sleep)


_REGISTRY = {cls.name: cls for cls in (Reparam, ScoreFunction, STL, IWAE, DReG, RWS, WakeSleep)}
#: names of the gradient estimators (for the CLI and configs)
ESTIMATORS = tuple(_REGISTRY)


def get_estimator(estimator: str | Estimator, **options) -> Estimator:
    """An :class:`Estimator` from its name and options (or the object itself).

    Args: a name in :data:`ESTIMATORS` with the estimator's fields as ``**options``, or an
      :class:`Estimator` (no options). Returns: it; ValueError for unknown names or options.
    """
    if isinstance(estimator, Estimator):
        if options:
            raise ValueError(f"options {sorted(options)} given with an Estimator object")
        return estimator
    if estimator not in _REGISTRY:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {list(ESTIMATORS)}")
    cls = _REGISTRY[estimator]
    allowed = {f.name for f in dataclasses.fields(cls)}
    extra = set(options) - allowed
    if extra:
        raise ValueError(f"estimator {estimator!r} takes no option(s) {sorted(extra)}; "
                         f"allowed: {sorted(allowed)}")
    return cls(**options)


def make_estimator(model, estimator: str | Estimator, num_samples: int = 1, **options):
    """Per-example surrogate objective over a batch.

    Args:
      model: implements :class:`jaxvae.types.Model`.
      estimator: one of :data:`ESTIMATORS` or an :class:`Estimator`.
      num_samples: k >= 1 samples per example.
      **options: the estimator's fields (``analytic_kl`` for ``reparam``, ``baseline`` for
        ``score_function``).

    Returns:
      ``surrogate(groups: ParamGroups, batch, key) -> [B]``: the objective's value per
      example (ELBO_k or IWAE_k, nats); ``jax.grad`` of its batch mean is the estimator,
      with the structure of ``groups``. ``batch`` is ``x: [B, *event]``, ``(x, condition)``
      or ``{"x": ..., "condition": ...}``. A model's training-time noise (word dropout,
      :func:`jaxvae.terms.training_rngs`) is on: these are training gradients.
    """
    est = get_estimator(estimator, **options)
    k = _checks.num_samples(num_samples)
    est.check(k)

    def per_example(groups, x, key, *condition):
        key, rngs = terms.training_rngs(model, key)    # a gradient is a training step's
        t = estimator_terms(model, groups, x, condition=condition[0] if condition else None,
                            rngs=rngs)
        return est.surrogate(key, t, k)

    def surrogate(groups: ParamGroups, batch, key: PRNGKey) -> Array:
        terms.check_groups(groups)
        return terms.map_examples(model, per_example, groups, batch, key,
                                  data_params=terms.merge_params(groups))

    surrogate.estimator = est
    return surrogate
