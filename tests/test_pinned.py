"""Values and gradients of every objective and estimator, pinned before a restructuring.

tests/data/pinned_values.npz was written by scripts/pin_values.py at commit da3325f,
before the model contract, the estimator objects and the flow/model split: parameters,
data, per-example values and gradients for six small models (MLP, two stochastic layers,
planar, radial, IAF and NICE flows), four objectives and seven estimator settings on fixed
keys. Here the current code recomputes each from the saved parameters and must agree to
float32 rounding. IAF/NICE parameters are stored in the old layout and mapped by
tests/flow_param_map.py.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pinned_cases import ESTIMATORS, KEY, MODELS, OBJECTIVES, K

import jaxvae

PINNED = np.load(__file__.replace("test_pinned.py", "data/pinned_values.npz"))


def saved_tree(prefix: str) -> dict:
    """The nested dict saved under ``prefix`` (keys like ``prefix['params']['encoder']``)."""
    tree = {}
    for name in PINNED.files:
        if not name.startswith(prefix + "["):
            continue
        node, keys = tree, re.findall(r"\['([^']*)'\]", name[len(prefix):])
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = jnp.asarray(PINNED[name])
    return tree


def to_current_layout(name, model, tree):
    if name in ("iaf", "nice"):
        from flow_param_map import old_to_new
        return old_to_new(model, tree)
    return tree


def assert_trees_close(got, want):
    got_leaves, got_def = jax.tree_util.tree_flatten(got)
    want_leaves, want_def = jax.tree_util.tree_flatten(want)
    assert got_def == want_def
    for a, b in zip(got_leaves, want_leaves):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def assert_pinned(name, model, entry, value, grads, rtol):
    """``value`` (the loss, or per-example surrogates) and ``grads`` against the pinned ones."""
    np.testing.assert_allclose(value, PINNED[f"{name}/{entry}/value"], rtol=rtol)
    want = saved_tree(f"{name}/{entry}/grad")
    assert_trees_close(grads, to_current_layout(name, model, want))


@pytest.fixture(scope="module", params=list(MODELS))
def pinned(request):
    name = request.param
    model = MODELS[name]()
    params = to_current_layout(name, model, saved_tree(f"{name}/params"))
    return name, model, params, jnp.asarray(PINNED[f"{name}/x"])


def test_parameters_have_the_current_structure(pinned):
    name, model, params, _ = pinned
    fresh = model.init_params(jax.random.key(0))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(fresh)


def compute(model, params, x, analytic: bool):
    """Values and gradients of every pinned objective and estimator, in one jitted program."""
    out = {}
    for obj_name, (objective, options) in OBJECTIVES.items():
        if options.get("analytic_kl") and not analytic:
            continue
        loss = jaxvae.make_loss(model, objective, K, **options)
        out["objective", obj_name] = jax.value_and_grad(lambda p: loss(p, x, KEY)[0])(params)
    groups = jaxvae.split_params(model, params)
    for est_name, (estimator, options) in ESTIMATORS.items():
        surrogate = jaxvae.make_estimator(model, estimator, K, **options)
        values, grads = jax.value_and_grad(
            lambda g: (jnp.mean(surrogate(g, x, KEY)), surrogate(g, x, KEY)), has_aux=True)(groups)
        out["estimator", est_name] = values[1], jaxvae.merge_params(grads)
    loss = jaxvae.make_loss(model, None, K, estimator="dreg")
    out["make_loss", "dreg"] = jax.grad(lambda p: loss(p, x, KEY)[0])(params)
    return out


@pytest.fixture(scope="module")
def results(pinned):
    name, model, params, x = pinned
    analytic = f"{name}/objective/elbo_analytic/value" in PINNED
    return jax.jit(lambda p: compute(model, p, x, analytic))(params)


def test_objectives_are_unchanged(pinned, results):
    name, model, _, _ = pinned
    for obj_name in OBJECTIVES:
        if f"{name}/objective/{obj_name}/value" not in PINNED:
            continue
        assert_pinned(name, model, f"objective/{obj_name}", *results["objective", obj_name],
                      rtol=1e-6)


def test_estimators_are_unchanged(pinned, results):
    name, model, _, _ = pinned
    for est_name in ESTIMATORS:
        assert_pinned(name, model, f"estimator/{est_name}", *results["estimator", est_name],
                      rtol=1e-5)


def test_make_loss_with_an_estimator_matches_the_pinned_gradient(pinned, results):
    """The training factory splits ordinary params itself: same gradient as on groups."""
    name, model, _, _ = pinned
    grads = results["make_loss", "dreg"]
    want = saved_tree(f"{name}/estimator/dreg/grad")
    assert_trees_close(jax.tree_util.tree_map(jnp.negative, grads),
                       to_current_layout(name, model, want))
