"""The self-check before timing: the contenders compute the same loss and gradient."""

from __future__ import annotations

from .config import LATENT, LR


def _loc_scale(q):
    """(loc, scale) of a diagonal Gaussian: MultivariateNormalDiag or Independent(Normal)."""
    if hasattr(q, "scale_diag"):
        return q.loc, q.scale_diag
    inner = getattr(q, "distribution", None)
    if inner is not None and hasattr(inner, "loc") and hasattr(inner, "scale"):
        return inner.loc, inner.scale
    raise TypeError(f"cannot read loc and scale of a {type(q).__name__} posterior")


def _eps_candidates(model, params, x, key, k):
    """The noise jaxvae's loss uses for ``key``, under the sampling conventions we know:
    the current one (one key per example from ``split(key, B)``, then distrax's
    ``q.sample(seed=key_i, sample_shape=(k,))``), and one ``normal(key, (B, k, L))``."""
    import jax

    import jaxvae

    def per_example(xi, ki):
        q = jaxvae.bind(model, params).posterior(xi)
        z = q.sample(seed=ki, sample_shape=(k,))
        loc, scale = _loc_scale(q)
        return (z - loc) / scale

    def per_example_convention(key):
        return jax.vmap(per_example)(x, jax.random.split(key, x.shape[0]))

    yield "split(key, B) + distrax sample per example", jax.jit(per_example_convention)(key)
    yield "one normal(key, (B, k, L))", jax.random.normal(key, (x.shape[0], k, LATENT))


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def _flat_grads_jaxvae_layout(tree_hw):
    """Concatenates hand-written-layout grads (dict of {"w","b"}) in a fixed order."""
    import numpy as np

    names = ("enc1", "enc2", "loc", "raw_scale", "dec1", "dec2", "out")
    return np.concatenate([np.ravel(np.asarray(tree_hw[n][p])) for n in names for p in ("w", "b")])


def self_check(params0, x_np, have_torch: bool, have_numpyro: bool, tol: float = 1e-3,
               ks=(1, 5), numpyro_keys: int = 16) -> dict:
    """Asserts that the contenders compute the same loss (and gradient) at identical
    weights and noise; returns the numbers."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxvae
    from benchmarks.peers import jax_handwritten as hw

    model = jaxvae.iwae_mlp()
    x = jnp.asarray(x_np)
    out = {"tolerance": tol}
    for k in ks:
        key = jax.random.PRNGKey(1234 + k)
        loss_fn = jaxvae.make_loss(model, "iwae", k)
        (l_jv, _), g_jv = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params0, x, key)
        hw_params = hw.from_jaxvae(params0)
        hw_vg = jax.jit(jax.value_and_grad(hw.loss_fn))
        matched = None
        for convention, eps in _eps_candidates(model, params0, x, key, k):
            l_hw, g_hw = hw_vg(hw_params, x, eps)
            if abs(float(l_hw) - float(l_jv)) <= tol * abs(float(l_jv)):
                matched = convention
                break
        if matched is None:
            raise AssertionError(
                f"self-check failed (k={k}): the hand-written loss does not reproduce jaxvae's "
                f"loss {float(l_jv):.6f} under any known noise convention (last: "
                f"{float(l_hw):.6f}); did jaxvae change how it draws the noise?")
        g_rel = _rel(_flat_grads_jaxvae_layout(hw.from_jaxvae(g_jv)),
                     _flat_grads_jaxvae_layout(g_hw))
        rec = {"jaxvae": float(l_jv), "jax_handwritten": float(l_hw),
               "noise_convention": matched, "grad_rel_diff_handwritten": g_rel}
        assert g_rel < tol, \
            f"self-check failed (k={k}): gradient rel. diff {g_rel:.2e} (hand-written)"
        if have_torch:
            import torch

            from benchmarks.peers import torch_iwae

            tm = torch_iwae.from_jaxvae(params0)
            xt = torch.from_numpy(np.asarray(x_np).reshape(x_np.shape[0], -1).copy())
            l_t = tm.loss(xt, torch.from_numpy(np.asarray(eps).copy()))
            l_t.backward()
            l_t = l_t.detach()
            g_t = {n: {"w": getattr(tm, n).weight.grad.numpy().T,
                       "b": getattr(tm, n).bias.grad.numpy()}
                   for n in ("enc1", "enc2", "loc", "raw_scale", "dec1", "dec2", "out")}
            rel_t = abs(float(l_t) - float(l_jv)) / abs(float(l_jv))
            g_rel_t = _rel(_flat_grads_jaxvae_layout(hw.from_jaxvae(g_jv)),
                           _flat_grads_jaxvae_layout(g_t))
            rec.update(torch=float(l_t), grad_rel_diff_torch=g_rel_t)
            assert rel_t < tol, (f"self-check failed (k={k}): torch loss {float(l_t):.6f} vs "
                                 f"jaxvae {float(l_jv):.6f}")
            assert g_rel_t < tol, \
                f"self-check failed (k={k}): gradient rel. diff {g_rel_t:.2e} (torch)"
        out[f"k={k}"] = rec
    if have_numpyro and numpyro_keys:
        # NumPyro's noise cannot be fed in; compare expectations over many keys instead.
        from benchmarks.peers import numpyro_iwae as npi

        k, reps = 5, numpyro_keys
        svi = npi.make_svi(k, LR)
        xf = x.reshape(x.shape[0], -1)
        np_loss = jax.jit(lambda key: npi.loss_fn(svi, params0, xf, key))
        jv_loss = jax.jit(lambda key: jaxvae.make_loss(model, "iwae", k)(params0, x, key)[0])
        keys = jax.random.split(jax.random.PRNGKey(99), reps)
        a = np.array([float(np_loss(kk)) for kk in keys])
        b = np.array([float(jv_loss(kk)) for kk in keys])
        rel = abs(a.mean() - b.mean()) / abs(b.mean())
        out["numpyro_expectation"] = {"k": k, "keys": reps, "numpyro_loss_over_B": float(a.mean()),
                                      "jaxvae_loss": float(b.mean()), "rel_diff": float(rel)}
        assert rel < 0.02, (f"self-check failed: NumPyro's RenyiELBO/B {a.mean():.3f} vs jaxvae "
                            f"{b.mean():.3f} (k={k}, mean of {reps} keys)")
    return out
