"""A minimal hand-written JAX IWAE train step: the "no library overhead" reference.

Plain dicts of weights, a hand-written tanh MLP, one ``jax.random.normal(key, (B, k, 50))``
per step for the reparameterized samples, closed-form Gaussian log-densities, the
Bernoulli log-likelihood as ``x * logits - softplus(logits)``, ``jax.nn.logsumexp``,
optax Adam and one ``jax.jit(..., donate_argnums=0)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

LATENT = 50
_ENC = ("enc1", "enc2")
_DEC = ("dec1", "dec2", "out")


def init_params(key, data_dim: int = 784, hidden=(200, 200), latent: int = LATENT) -> dict:
    """Glorot-uniform kernels, zero biases (the same scheme as jaxvae.iwae_mlp)."""
    init = jax.nn.initializers.glorot_uniform()
    shapes = {"enc1": (data_dim, hidden[0]), "enc2": (hidden[0], hidden[1]),
              "loc": (hidden[1], latent), "raw_scale": (hidden[1], latent),
              "dec1": (latent, hidden[1]), "dec2": (hidden[1], hidden[0]),
              "out": (hidden[0], data_dim)}
    keys = jax.random.split(key, len(shapes))
    return {name: {"w": init(k, shape, jnp.float32), "b": jnp.zeros(shape[1], jnp.float32)}
            for k, (name, shape) in zip(keys, shapes.items())}


def from_jaxvae(params) -> dict:
    """Converts ``jaxvae.iwae_mlp()`` parameters (flax tree) to this module's dicts."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    pick = lambda d: {"w": jnp.asarray(d["kernel"]), "b": jnp.asarray(d["bias"])}  # noqa: E731
    return {"enc1": pick(enc["MLP_0"]["Dense_0"]), "enc2": pick(enc["MLP_0"]["Dense_1"]),
            "loc": pick(enc["loc"]), "raw_scale": pick(enc["raw_scale"]),
            "dec1": pick(dec["MLP_0"]["Dense_0"]), "dec2": pick(dec["MLP_0"]["Dense_1"]),
            "out": pick(dec["out"])}


def _dense(p, h):
    return h @ p["w"] + p["b"]


def log_weights(params: dict, x, eps):
    """log w = log p(x|z) + log p(z) - log q(z|x).

    ``x: [B, D]``, ``eps: [B, k, L]`` -> ``[B, k]``."""
    h = jnp.tanh(_dense(params["enc2"], jnp.tanh(_dense(params["enc1"], x))))
    mu = _dense(params["loc"], h)
    log_var = _dense(params["raw_scale"], h)
    z = mu[:, None, :] + jnp.exp(0.5 * log_var)[:, None, :] * eps                    # [B, k, L]
    g = jnp.tanh(_dense(params["dec2"], jnp.tanh(_dense(params["dec1"], z))))
    logits = _dense(params["out"], g)                                                # [B, k, D]
    log_px = jnp.sum(x[:, None, :] * logits - jax.nn.softplus(logits), axis=-1)
    half_log_2pi = 0.5 * math.log(2 * math.pi) * eps.shape[-1]
    log_pz = -0.5 * jnp.sum(jnp.square(z), axis=-1) - half_log_2pi
    log_qz = (-0.5 * jnp.sum(jnp.square(eps), axis=-1)
              - 0.5 * jnp.sum(log_var, axis=-1)[:, None] - half_log_2pi)
    return log_px + log_pz - log_qz


def loss_fn(params: dict, x, eps):
    """-mean_batch(logsumexp_k log w - log k); ``x: [B, *event]``, ``eps: [B, k, L]``."""
    x = jnp.reshape(x, (x.shape[0], -1))
    k = eps.shape[1]
    return -jnp.mean(jax.nn.logsumexp(log_weights(params, x, eps), axis=1) - math.log(k))


def make_step(tx: optax.GradientTransformation, k: int, latent: int = LATENT):
    """``step((params, opt_state, key), x: [B, *event]) -> ((params, opt_state, key), loss)``."""

    def step(state, x):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        eps = jax.random.normal(sub, (x.shape[0], k, latent), jnp.float32)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, eps)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    return jax.jit(step, donate_argnums=0)


def init_state(params: dict, tx: optax.GradientTransformation, key):
    return (params, tx.init(params), key)
