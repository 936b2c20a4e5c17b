"""Normalizing flows as distrax bijectors (no neural networks here: see
:mod:`jaxvae.models.flow` for the amortized flow posterior and its conditioner networks).

A flow pushes a base sample z_0 ~ q_0(z|x) through invertible maps f_1..f_K:

    z_K = f_K(...f_1(z_0)),   log q_K(z_K) = log q_0(z_0) - sum_k log|det df_k/dz_{k-1}|.

Bijectors (each acts on events ``z: [..., D]``, ``event_ndims_in = 1``; parameters are
plain arrays for *one* example, so an encoder can emit them per x):

* :class:`Planar` — f(z) = z + u^ h(w^T z + b), h = tanh (Rezende & Mohamed, 2015),
  with u^ = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a), so that
  w^T u^ > -1 and f is invertible for every raw u. log|det| = log|1 + h'(.) w^T u^|.
* :class:`Radial` — f(z) = z + beta h(alpha, r) (z - z0), h = 1 / (alpha + r),
  r = |z - z0|, with alpha = softplus(raw) > 0 and beta = -alpha + softplus(raw) > -alpha.
* :class:`Stacked` — K steps of one type with stacked parameters, run by ``lax.scan``.
* :class:`IAF` — inverse autoregressive flow (Kingma et al., 2016) with the gated update
  y = sigma*z + (1 - sigma)*mu, sigma = sigmoid(s), log|det| = sum log sigma, around any
  autoregressive ``conditioner(z) -> (mu, s)`` (e.g. a MADE, Germain et al., 2015, whose
  masks :func:`made_masks` builds).
* :func:`nice_coupling` — NICE additive coupling (Dinh et al., 2014) on
  ``distrax.MaskedCoupling``: y = m*z + (1-m)*(z + t(m*z)), log|det| = 0.

Conditioners are plain callables of z, as in ``distrax.MaskedCoupling``: a function that
closes over arrays, or the pure function of a Flax module (see :mod:`jaxvae.models.flow`).

Planar and radial flows have no closed-form inverse: their ``inverse`` raises
``NotImplementedError``. A flow posterior only needs the forward pass
(``sample_and_log_prob``); the estimators that need log q at a given z get it from the
base sample (see :mod:`jaxvae.estimators`).

References: Rezende & Mohamed (2015), Variational inference with normalizing flows;
Kingma et al. (2016), Improved variational inference with inverse autoregressive flow;
Germain et al. (2015), MADE: masked autoencoder for distribution estimation;
Dinh et al. (2014), NICE: non-linear independent components estimation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from jaxvae import _checks

Array = jax.Array
Conditioner = Callable[[Array], tuple[Array, Array]]

__all__ = ["Planar", "Radial", "Stacked", "IAF", "nice_coupling", "made_masks", "flow",
           "FLOWS"]

#: flow names understood by :class:`jaxvae.models.FlowEncoder` and the CLI
FLOWS = ("planar", "radial", "nice", "iaf")


def _scalar(value, name: str) -> Array:
    value = jnp.asarray(value)
    if value.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {value.shape}")
    return value


def _callable(value, name: str):
    if not callable(value):
        raise TypeError(f"{name} must be a callable of z: [..., D], got {value!r}")
    return value


class Planar(distrax.Bijector):
    """Planar flow f(z) = z + u^ tanh(w^T z + b), invertible by construction.

    Args:
      u, w: ``[D]``; ``u`` is the raw (unconstrained) vector, mapped to u^ with
        w^T u^ = m(w^T u) = -1 + softplus(w^T u) > -1. ``w`` must be non-zero.
      b: scalar.

    References: Rezende & Mohamed (2015), planar flow and its invertibility condition.
    """

    def __init__(self, u: Array, w: Array, b: Array):
        super().__init__(event_ndims_in=1)
        self.w = _checks.vector(w, "w")
        self.u = _checks.vector(u, "u", self.w.shape[0])
        self.b = _scalar(b, "b")

    def constrained(self):
        """Returns: (u^: ``[D]``, softplus(w^T u)), with w^T u^ = softplus(w^T u) - 1 > -1."""
        wu = jnp.dot(self.w, self.u)
        softplus_wu = jax.nn.softplus(wu)
        u_hat = self.u + (softplus_wu - 1.0 - wu) * self.w / jnp.dot(self.w, self.w)
        return u_hat, softplus_wu

    def forward_and_log_det(self, z: Array):
        """Args: z: ``[..., D]``. Returns: (y: ``[..., D]``, log|det dy/dz|: ``[...]``)."""
        self._check_forward_input_shape(z)
        u_hat, softplus_wu = self.constrained()
        t = jnp.tanh(z @ self.w + self.b)                    # [...]
        y = z + u_hat * t[..., None]
        # 1 + h'(a) w^T u^ = t^2 + (1 - t^2) softplus(w^T u): a sum of positive terms,
        # accurate even where w^T u^ is close to -1.
        t2 = jnp.square(t)
        log_det = jnp.log(t2 + (1.0 - t2) * softplus_wu)
        return y, log_det

    def inverse_and_log_det(self, y: Array):
        """Not available: raises NotImplementedError (no closed-form inverse)."""
        raise NotImplementedError(
            "the planar flow has no closed-form inverse; use sample_and_log_prob (it only "
            "needs the forward pass) instead of log_prob at an arbitrary z")


class Radial(distrax.Bijector):
    """Radial flow f(z) = z + beta (z - z0) / (alpha + |z - z0|), invertible by construction.

    Args:
      z0: ``[D]`` centre.
      alpha_raw, beta_raw: scalars; alpha = softplus(alpha_raw) > 0 and
        beta = -alpha + softplus(beta_raw) > -alpha.

    References: Rezende & Mohamed (2015), radial flow and its invertibility condition.
    """

    def __init__(self, z0: Array, alpha_raw: Array, beta_raw: Array):
        super().__init__(event_ndims_in=1)
        self.z0 = _checks.vector(z0, "z0")
        self.alpha_raw = _scalar(alpha_raw, "alpha_raw")
        self.beta_raw = _scalar(beta_raw, "beta_raw")

    def constrained(self):
        """Returns: scalars (alpha, beta, softplus(beta_raw)), beta = softplus(beta_raw) - alpha."""
        alpha = jax.nn.softplus(self.alpha_raw)
        sp = jax.nn.softplus(self.beta_raw)
        return alpha, sp - alpha, sp

    def forward_and_log_det(self, z: Array):
        """Args: z: ``[..., D]``. Returns: (y: ``[..., D]``, log|det dy/dz|: ``[...]``)."""
        self._check_forward_input_shape(z)
        alpha, beta, sp = self.constrained()
        diff = z - self.z0
        sq = jnp.sum(jnp.square(diff), axis=-1)
        nonzero = sq > 0
        r = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)   # |z - z0|, smooth at 0
        y = z + (beta / (alpha + r))[..., None] * diff
        dim = z.shape[-1]
        # 1 + beta h = (r + sp) / (alpha + r);
        # 1 + beta h + beta h' r = (r (2 alpha + r) + alpha sp) / (alpha + r)^2;
        # both written as ratios of positive terms.
        log_det = ((dim - 1) * (jnp.log(r + sp) - jnp.log(alpha + r))
                   + jnp.log(r * (2 * alpha + r) + alpha * sp) - 2 * jnp.log(alpha + r))
        return y, log_det

    def inverse_and_log_det(self, y: Array):
        """Not available: raises NotImplementedError (no closed-form inverse)."""
        raise NotImplementedError(
            "the radial flow has no closed-form inverse; use sample_and_log_prob (it only "
            "needs the forward pass) instead of log_prob at an arbitrary z")


class Stacked(distrax.Bijector):
    """K steps of one bijector type with stacked parameters, applied by ``jax.lax.scan``.

    The same map as ``flow(base, [make(*p_1), ..., make(*p_K)])``, but compiled once
    whatever K (an unrolled chain of 80 planar steps takes minutes to compile on a CPU).

    Args:
      make: bijector constructor, e.g. :class:`Planar`.
      params: tuple of arrays with a leading axis K; step k is ``make(*(a[k] for a in params))``.

    Floating parameters are cast to the dtype of the input z, so that the scanned z keeps
    its dtype (float32 samples stay float32 under ``jax_enable_x64``).
    """

    def __init__(self, make: Callable[..., distrax.Bijector], params: Sequence[Array]):
        super().__init__(event_ndims_in=1)
        self.make = _callable(make, "make")
        self.params = tuple(jnp.asarray(a) for a in params)
        lengths = {a.shape[0] if a.ndim else None for a in self.params}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(f"params must share a leading axis K, got shapes "
                             f"{[a.shape for a in self.params]}")

    def _params_like(self, z: Array):
        return tuple(a.astype(z.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
                     for a in self.params)

    def forward_and_log_det(self, z: Array):
        """Args: z: ``[..., D]``. Returns: (f_K(...f_1(z)), sum_k log|det|: ``[...]``)."""
        self._check_forward_input_shape(z)

        def step(z, p):
            return self.make(*p).forward_and_log_det(z)

        y, log_dets = jax.lax.scan(step, z, self._params_like(z))
        return y, jnp.sum(log_dets, axis=0)

    def inverse_and_log_det(self, y: Array):
        """Args: y: ``[..., D]``. Returns: (z, sum_k log|det dz/dy|: ``[...]``), steps K..1."""
        self._check_inverse_input_shape(y)

        def step(y, p):
            return self.make(*p).inverse_and_log_det(y)

        z, log_dets = jax.lax.scan(step, y, self._params_like(y), reverse=True)
        return z, jnp.sum(log_dets, axis=0)


# ---------------------------------------------------------------- MADE and IAF

def made_masks(dim: int, hidden: Sequence[int], reverse: bool = False) -> list:
    """Connectivity masks of a MADE network over ``dim`` inputs (Germain et al., 2015).

    Input i gets degree d(i) (1..dim, or dim..1 with ``reverse``); hidden unit j of every
    layer gets (j mod max(dim - 1, 1)) + 1; a weight is kept where the receiving degree is
    >= the sending one, and an output only sees hidden units of strictly lower degree, so
    output i depends on the inputs of degree < d(i) only.

    Args: ``dim`` D >= 1, ``hidden`` widths h_1..h_L (each >= 1), ``reverse`` the order D..1.

    Returns: a list of float32 numpy masks ``[dim, h_1], [h_1, h_2], ..., [h_L, dim]``.

    References: Germain et al. (2015), MADE.
    """
    dim = _checks.integer(dim, "dim", 1)
    hidden = [_checks.integer(width, "hidden width", 1) for width in hidden]
    degrees_in = np.arange(1, dim + 1)
    if reverse:
        degrees_in = degrees_in[::-1]
    degrees = [degrees_in]
    for width in hidden:
        degrees.append(np.arange(width) % max(dim - 1, 1) + 1)
    masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((degrees_in[None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks


class IAF(distrax.Bijector):
    """Inverse autoregressive flow step with the gated update of Kingma et al. (2016).

    (mu, s) = conditioner(z);  sigma = sigmoid(s);  y = sigma * z + (1 - sigma) * mu;
    log|det dy/dz| = sum_i log sigma_i.

    Args:
      conditioner: ``z: [..., D] -> (mu, s)``, each ``[..., D]``, and *autoregressive in
        the flow's variable order*: (mu_i, s_i) may depend on z_j for j < i only (j > i
        with ``reverse``), so that dy/dz is triangular and the log-determinant above is
        exact. A MADE with ``made_masks(D, hidden, reverse)`` qualifies (see
        :class:`jaxvae.models.MADE`). A conditioner that breaks the order gives a wrong
        log-determinant and inverse, silently; tests check it with ``jax.jacfwd``.
      reverse: the variable order is D..1 instead of 1..D (alternate it between steps).

    The inverse takes D sequential passes of the conditioner (variable i is solved once
    all variables before it in the order are); it divides by sigma, so far out in the tails
    of a sharply gated flow it can overflow (log_prob then gives NaN where the true density
    underflows anyway).

    References: Kingma et al. (2016), IAF; Germain et al. (2015), MADE.
    """

    def __init__(self, conditioner: Conditioner, reverse: bool = False):
        super().__init__(event_ndims_in=1)
        self.conditioner = _callable(conditioner, "conditioner")
        self.reverse = bool(reverse)

    def _gate(self, z: Array):
        mu, s = self.conditioner(z)
        if mu.shape != z.shape or s.shape != z.shape:
            raise ValueError(f"conditioner must return (mu, s) of the shape of z {z.shape}, "
                             f"got {mu.shape} and {s.shape}")
        return mu, jax.nn.sigmoid(s), jax.nn.log_sigmoid(s)

    def forward_and_log_det(self, z: Array):
        """Args: z: ``[..., D]``. Returns: (y: ``[..., D]``, sum_i log sigma_i: ``[...]``)."""
        self._check_forward_input_shape(z)
        mu, sigma, log_sigma = self._gate(z)
        return sigma * z + (1.0 - sigma) * mu, jnp.sum(log_sigma, axis=-1)

    def inverse_and_log_det(self, y: Array):
        """Args: y: ``[..., D]``. Returns: (z, -sum log sigma(z)), by D conditioner passes."""
        self._check_inverse_input_shape(y)
        dim = y.shape[-1]
        degrees = jnp.arange(dim, 0, -1) if self.reverse else jnp.arange(1, dim + 1)

        def step(i, z):
            # mu and sigma of the variable of degree i + 1 depend on degrees <= i only, all
            # already solved; the unsolved ones stay at 0 (finite), never at a wild iterate.
            mu, sigma, _ = self._gate(z)
            solved = (y - (1.0 - sigma) * mu) / sigma
            return jnp.where(degrees == i + 1, solved, z).astype(z.dtype)

        z = jax.lax.fori_loop(0, dim, step, jnp.zeros_like(y))
        _, _, log_sigma = self._gate(z)
        return z, -jnp.sum(log_sigma, axis=-1)


# ---------------------------------------------------------------- NICE

def nice_coupling(conditioner: Callable[[Array], Array], mask) -> distrax.Bijector:
    """NICE additive coupling layer (Dinh et al., 2014) as a ``distrax.MaskedCoupling``.

    y = z where ``mask`` is True, y = z + t(mask * z) elsewhere; log|det| = 0, and the
    inverse subtracts the same shift.

    Args:
      conditioner: the shift t, ``masked_z: [..., D] -> [..., D]`` (its entries where
        ``mask`` is True are ignored).
      mask: ``[D]`` booleans, the variables passed through unchanged.

    Returns:
      a ``distrax.MaskedCoupling`` bijector on ``[..., D]`` (volume preserving).

    References: Dinh et al. (2014), NICE, additive coupling layer.
    """
    mask = _checks.vector(mask, "mask")
    if mask.dtype != jnp.bool_:
        raise TypeError(f"mask must be booleans, got dtype {mask.dtype}")
    return distrax.MaskedCoupling(mask=mask, conditioner=_callable(conditioner, "conditioner"),
                                  bijector=distrax.Shift)


# ---------------------------------------------------------------- composition

def flow(base: distrax.Distribution, bijectors: Sequence[distrax.Bijector]) -> distrax.Distribution:
    """``base`` pushed through ``bijectors`` applied in list order (f_1 first).

    log q_K(z_K) = log q_0(z_0) - sum_k log|det df_k/dz_{k-1}| (nats).

    Args: ``base`` q_0 over ``[D]``; ``bijectors`` f_1..f_K on ``[..., D]``.
    Returns: ``base`` itself for an empty list, else a ``distrax.Transformed`` over ``[D]``.

    References: Rezende & Mohamed (2015), Variational inference with normalizing flows.
    """
    bijectors = list(bijectors)
    if not bijectors:
        return base
    return distrax.Transformed(base, distrax.Chain(bijectors[::-1]))
