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
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxvae

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
sys.path.insert(0, TESTS)
from pinned_cases import ESTIMATORS, KEY, MODELS, OBJECTIVES, K  # noqa: E402

OUT = os.path.join(TESTS, "data", "pinned_values.npz")



def flat(prefix: str, tree) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def data_for(model):
    x = jax.random.bernoulli(jax.random.key(1), 0.4, (4, *model.event_shape))
    return x.astype(jnp.float32)


def main():
    out = {}
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
            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(params, x, KEY)
            out[f"{name}/objective/{obj_name}/value"] = np.asarray(value)
            out.update(flat(f"{name}/objective/{obj_name}/grad", grads))
        groups = jaxvae.split_params(model, params)
        for est_name, (estimator, options) in ESTIMATORS.items():
            surrogate = jaxvae.make_estimator(model, estimator, K, **options)
            values = surrogate(groups, x, KEY)
            grads = jax.grad(lambda g: jnp.mean(surrogate(g, x, KEY)))(groups)
            out[f"{name}/estimator/{est_name}/value"] = np.asarray(values)
            out.update(flat(f"{name}/estimator/{est_name}/grad", jaxvae.merge_params(grads)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {len(out)} arrays to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
