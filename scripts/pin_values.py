"""Writes tests/data/pinned_values.npz: values and gradients of every objective and
estimator on fixed parameters, data and keys, for tests/test_pinned.py.

The committed file was written by the code *before* the model-contract restructuring
(commit da3325f); the test recomputes everything with the current API and compares, so a
refactoring that changes a number fails. Rerun this script only on purpose, when a change
of numbers is intended and explained.

    python scripts/pin_values.py
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

import jaxvae

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "pinned_values.npz")

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
OBJECTIVES = {  # name -> (objective, options)
    "elbo": ("elbo", {}),
    "elbo_analytic": ("elbo", {"analytic_kl": True}),
    "elbo_beta": ("elbo", {"beta": 0.5}),
    "iwae": ("iwae", {}),
}
ESTIMATORS = {  # name -> (estimator, options)
    "reparam": ("reparam", {}),
    "score_function": ("score_function", {}),
    "score_function_loo": ("score_function", {"baseline": "leave_one_out"}),
    "stl": ("stl", {}),
    "iwae": ("iwae", {}),
    "dreg": ("dreg", {}),
    "rws": ("rws", {}),
}
K = 3


def flat(prefix: str, tree) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def data_for(model):
    x = jax.random.bernoulli(jax.random.key(1), 0.4, (4, *model.event_shape))
    return x.astype(jnp.float32)


def main():
    out = {}
    key = jax.random.key(7)
    for name, make in MODELS.items():
        model = make()
        params = model.init_params(jax.random.key(0))
        x = data_for(model)
        out.update(flat(f"{name}/params", params))
        out[f"{name}/x"] = np.asarray(x)
        for obj_name, (objective, options) in OBJECTIVES.items():
            if options.get("analytic_kl") and name != "mlp":
                continue
            loss = jaxvae.make_loss(model, objective, K, **options)
            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(params, x, key)
            out[f"{name}/objective/{obj_name}/value"] = np.asarray(value)
            out.update(flat(f"{name}/objective/{obj_name}/grad", grads))
        groups = jaxvae.split_params(model, params)
        for est_name, (estimator, options) in ESTIMATORS.items():
            surrogate = jaxvae.make_estimator(model, estimator, K, **options)
            values = surrogate(groups, x, key)
            grads = jax.grad(lambda g: jnp.mean(surrogate(g, x, key)))(groups)
            out[f"{name}/estimator/{est_name}/value"] = np.asarray(values)
            out.update(flat(f"{name}/estimator/{est_name}/grad", jaxvae.merge_params(grads)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {len(out)} arrays to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
