"""The IWAE as NumPyro users write it: ``SVI`` with ``RenyiELBO(alpha=0, num_particles=k)``.

Model: z ~ N(0, I) (plate over the batch), x ~ Bernoulli(logits=decoder(z)).to_event(1);
guide: z ~ N(mu(x), sigma(x)) from the encoder. Encoder and decoder are flax (linen)
modules registered with ``numpyro.contrib.module.flax_module``. ``svi.update`` is timed
under ``jax.jit``, as ``svi.run`` does internally.

RenyiELBO computes the alpha = 0 bound separately for every index of a plate that
encloses all sample sites (here the batch), i.e. logsumexp over the k particles per
example, and returns the *sum* over the batch: ``loss / B`` is jaxvae's loss (a mean).
Adam is invariant to that constant gradient scale (up to its epsilon).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.contrib.module import flax_module
from numpyro.infer import SVI, RenyiELBO

LATENT = 50


class Encoder(nn.Module):
    hidden: tuple = (200, 200)
    latent: int = LATENT

    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(self.hidden[0], name="Dense_0")(x))
        h = jnp.tanh(nn.Dense(self.hidden[1], name="Dense_1")(h))
        loc = nn.Dense(self.latent, name="loc")(h)
        scale = jnp.exp(0.5 * nn.Dense(self.latent, name="raw_scale")(h))
        return loc, scale


class Decoder(nn.Module):
    hidden: tuple = (200, 200)
    data_dim: int = 784

    @nn.compact
    def __call__(self, z):
        h = jnp.tanh(nn.Dense(self.hidden[1], name="Dense_0")(z))
        h = jnp.tanh(nn.Dense(self.hidden[0], name="Dense_1")(h))
        return nn.Dense(self.data_dim, name="out")(h)


def model(x):
    decoder = flax_module("decoder", Decoder(), input_shape=(1, LATENT))
    with numpyro.plate("batch", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
        numpyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)


def guide(x):
    encoder = flax_module("encoder", Encoder(), input_shape=(1, x.shape[-1]))
    loc, scale = encoder(x)
    with numpyro.plate("batch", x.shape[0]):
        numpyro.sample("z", dist.Normal(loc, scale).to_event(1))


def params_from_jaxvae(params) -> dict:
    """numpyro ``init_params`` (``{"encoder$params", "decoder$params"}``) from jaxvae's."""
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    return {
        "encoder$params": {"Dense_0": enc["MLP_0"]["Dense_0"], "Dense_1": enc["MLP_0"]["Dense_1"],
                           "loc": enc["loc"], "raw_scale": enc["raw_scale"]},
        "decoder$params": {"Dense_0": dec["MLP_0"]["Dense_0"], "Dense_1": dec["MLP_0"]["Dense_1"],
                           "out": dec["out"]},
    }


def make_svi(k: int, lr: float = 1e-3) -> SVI:
    return SVI(model, guide, optax.adam(lr), RenyiELBO(alpha=0.0, num_particles=k))


def init_state(svi: SVI, key, x, params=None):
    """``x: [B, D]`` flattened binary images; ``params``: jaxvae params to start from."""
    init_params = None if params is None else params_from_jaxvae(params)
    return svi.init(key, x, init_params=init_params)


def make_update(svi: SVI):
    """``update(svi_state, x) -> (svi_state, loss)`` with loss summed over the batch."""
    return jax.jit(svi.update)


def loss_fn(svi: SVI, params, x, key):
    """RenyiELBO loss divided by the batch size (comparable with jaxvae's mean loss)."""
    return svi.loss.loss(key, params_from_jaxvae(params), svi.model, svi.guide, x) / x.shape[0]
