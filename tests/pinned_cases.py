"""The settings pinned by scripts/pin_values.py and checked by tests/test_pinned.py: six
small models, four objectives and seven estimator settings on fixed keys."""

import jax

import jaxvae

K = 3
KEY = jax.random.key(7)
MODELS = {
    "mlp": lambda: jaxvae.iwae_mlp(event_shape=(2, 3), latent_dim=3, hidden=(5,)),
    "two_layer": lambda: jaxvae.iwae_two_layer(event_shape=(6,), z1_dim=3, z2_dim=2,
                                               hidden1=(5,), hidden2=(4,)),
    "planar": lambda: jaxvae.flow_vae(event_shape=(6,), latent_dim=3, hidden=(5,),
                                      flow="planar", num_flows=2),
    "radial": lambda: jaxvae.flow_vae(event_shape=(6,), latent_dim=3, hidden=(5,),
                                      flow="radial", num_flows=2),
    "iaf": lambda: jaxvae.flow_vae(event_shape=(6,), latent_dim=3, hidden=(5,), flow="iaf",
                                   num_flows=2, flow_hidden=4, context_dim=2),
    "nice": lambda: jaxvae.flow_vae(event_shape=(6,), latent_dim=3, hidden=(5,), flow="nice",
                                    num_flows=2, flow_hidden=4, context_dim=2),
}
OBJECTIVES = {"elbo": ("elbo", {}), "elbo_analytic": ("elbo", {"analytic_kl": True}),
              "elbo_beta": ("elbo", {"beta": 0.5}), "iwae": ("iwae", {})}
ESTIMATORS = {"reparam": ("reparam", {}), "score_function": ("score_function", {}),
              "score_function_loo": ("score_function", {"baseline": "leave_one_out"}),
              "stl": ("stl", {}), "iwae": ("iwae", {}), "dreg": ("dreg", {}), "rws": ("rws", {})}
