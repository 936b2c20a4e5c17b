"""Normalizing flows (jaxvae.flows): log-determinants against autodiff Jacobians, inverses,
normalization of 2-D densities. Flow posteriors are in test_flow_encoder.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae import flows
from jaxvae.models import MADE, NICEShift
from jaxvae.models.mlp import diag_gaussian

D = 4


def _random_params(module, key, *args, scale=0.5, dtype=jnp.float64):
    """Random normal values (times ``scale``) for every parameter of a Flax ``module``."""
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [scale * jax.random.normal(k, a.shape, dtype) for k, a in zip(keys, leaves)])


def _made(key, reverse=False, hidden=(7, 6), dim=D, scale=0.5, gate_offset=0.0,
          dtype=jnp.float64):
    """A random MADE with a context, as a conditioner z: [..., dim] -> (mu, s)."""
    kp, kc = jax.random.split(key)
    made = MADE(hidden, reverse=reverse)
    context = jax.random.normal(kc, (3,), dtype)
    params = _random_params(made, kp, jnp.zeros(dim, dtype), context, scale=scale, dtype=dtype)
    out = params["params"]["out"]
    out["bias"] = out["bias"].at[dim:].add(gate_offset)       # s biases: open the gates
    return lambda z: made.apply(params, z, context)


def _planar(key, wu=None, dtype=jnp.float64):
    ku, kw, kb = jax.random.split(key, 3)
    u = jax.random.normal(ku, (D,), dtype)
    w = jax.random.normal(kw, (D,), dtype)
    if wu is not None:          # put w^T u at a chosen value (the constraint edge)
        u = u + (wu - w @ u) * w / (w @ w)
    return flows.Planar(u, w, jax.random.normal(kb, (), dtype))


def _radial(key, beta_raw=0.3, dtype=jnp.float64):
    k1, k2 = jax.random.split(key)
    return flows.Radial(jax.random.normal(k1, (D,), dtype),
                        jax.random.normal(k2, (), dtype), jnp.asarray(beta_raw, dtype))


def _iaf(key, reverse=False, hidden=(7, 6)):
    return flows.IAF(_made(key, reverse, hidden), reverse=reverse)


def _iaf_function(key, reverse=False):
    """IAF around a plain function of arrays: mu = tanh(z A), s = z B + c with A, B
    strictly triangular in the flow's order (mu_i, s_i see z_j, j < i; j > i reversed)."""
    ka, kb, kc = jax.random.split(key, 3)
    strict = np.triu(np.ones((D, D)), 1) if not reverse else np.tril(np.ones((D, D)), -1)
    a = jax.random.normal(ka, (D, D), jnp.float64) * strict
    b = 0.5 * jax.random.normal(kb, (D, D), jnp.float64) * strict
    c = jax.random.normal(kc, (D,), jnp.float64)
    return flows.IAF(lambda z: (jnp.tanh(z @ a), z @ b + c), reverse=reverse)


def _shift_function(key, dim=D, hidden=5, scale=0.5, dtype=jnp.float64):
    """A NICE shift t(m) = relu(m W_1 + b_1) W_2 + b_2 closing over random arrays."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    w1 = scale * jax.random.normal(k1, (dim, hidden), dtype)
    b1 = scale * jax.random.normal(k2, (hidden,), dtype)
    w2 = scale * jax.random.normal(k3, (hidden, dim), dtype)
    b2 = scale * jax.random.normal(k4, (dim,), dtype)
    return lambda m: jax.nn.relu(m @ w1 + b1) @ w2 + b2


def _nice(key, first=True):
    """NICE coupling with a random :class:`NICEShift` (one hidden layer of 5) and context."""
    kp, kc = jax.random.split(key)
    mask = (np.arange(D) < D // 2) == first
    shift, context = NICEShift((5,)), jax.random.normal(kc, (3,), jnp.float64)
    params = _random_params(shift, kp, jnp.zeros(D, jnp.float64), context)
    return flows.nice_coupling(lambda m: shift.apply(params, m, context), mask)


def _check_log_det(bijector, z, tol=1e-9):
    y, log_det = bijector.forward_and_log_det(z)
    sign, ref = jnp.linalg.slogdet(jax.jacfwd(bijector.forward)(z))
    assert y.shape == z.shape and log_det.shape == ()
    assert sign != 0
    np.testing.assert_allclose(log_det, ref, rtol=tol, atol=tol)
    return log_det


@pytest.mark.parametrize("make", [_planar, _radial, _iaf, lambda k: _iaf(k, reverse=True),
                                  _iaf_function, lambda k: _iaf_function(k, reverse=True),
                                  _nice, lambda k: _nice(k, first=False),
                                  lambda k: flows.nice_coupling(_shift_function(k),
                                                                np.arange(D) % 2 == 0)],
                         ids=["planar", "radial", "iaf", "iaf-reversed", "iaf-function",
                              "iaf-function-reversed", "nice", "nice-other", "nice-function"])
def test_log_det_matches_jacobian(make):
    @jax.jit
    def log_dets(key):
        kb, kz = jax.random.split(key)
        f, z = make(kb), 2.0 * jax.random.normal(kz, (D,), jnp.float64)
        sign, ref = jnp.linalg.slogdet(jax.jacfwd(f.forward)(z))
        return f.forward_log_det_jacobian(z), ref, sign

    with jax.enable_x64(True):
        for seed in range(5):
            log_det, ref, sign = log_dets(jax.random.PRNGKey(seed))
            assert sign != 0 and log_det.dtype == jnp.float64
            np.testing.assert_allclose(log_det, ref, rtol=1e-9, atol=1e-9)


def test_planar_log_det_at_the_invertibility_edge():
    """w^T u very negative sends w^T u^ towards -1: at the hinge point (w^T z + b = 0)
    the Jacobian determinant 1 + w^T u^ = softplus(w^T u) becomes tiny but stays > 0.
    (At w^T u = -30 the determinant is 1e-13 and slogdet of the autodiff Jacobian itself
    loses digits to cancellation, so there it is compared with the closed form only.)"""
    with jax.enable_x64(True):
        f = _planar(jax.random.PRNGKey(3), wu=-30.0)
        z = jax.random.normal(jax.random.PRNGKey(4), (D,), jnp.float64)
        z = z - (f.w @ z + f.b) * f.w / (f.w @ f.w)
        np.testing.assert_allclose(f.forward_log_det_jacobian(z),
                                   np.log(np.log1p(np.exp(-30.0))), rtol=1e-12)
        for wu in (-5.0, -15.0):
            f = _planar(jax.random.PRNGKey(3), wu=wu)
            u_hat, softplus_wu = f.constrained()
            assert f.w @ u_hat > -1.0
            z = jax.random.normal(jax.random.PRNGKey(4), (D,), jnp.float64)
            z = z - (f.w @ z + f.b) * f.w / (f.w @ f.w)            # on the hinge
            log_det = _check_log_det(f, z, tol=1e-7)
            np.testing.assert_allclose(log_det, jnp.log(softplus_wu), rtol=1e-12)
            _check_log_det(f, z + 0.01 * f.w)


def test_radial_log_det_at_the_constraint_edge_and_centre():
    """beta -> -alpha (beta_raw very negative) and z next to the centre z0."""
    with jax.enable_x64(True):
        for beta_raw in (-10.0, -25.0, 2.0):
            f = _radial(jax.random.PRNGKey(5), beta_raw=beta_raw)
            alpha, beta, _ = f.constrained()
            assert beta > -alpha
            for offset in (1.0, 1e-3, 1e-7):
                direction = jax.random.normal(jax.random.PRNGKey(6), (D,), jnp.float64)
                _check_log_det(f, f.z0 + offset * direction)
        # exactly at the centre the map is smooth: J = (1 + beta / alpha) I
        f = _radial(jax.random.PRNGKey(7))
        alpha, beta, _ = f.constrained()
        _, log_det = f.forward_and_log_det(f.z0)
        np.testing.assert_allclose(log_det, D * jnp.log1p(beta / alpha), rtol=1e-9)
        assert np.all(np.isfinite(jax.jacfwd(f.forward)(f.z0)))


@pytest.mark.parametrize("make", [_iaf, lambda k: _iaf(k, reverse=True), _iaf_function,
                                  lambda k: _iaf_function(k, reverse=True), _nice],
                         ids=["iaf", "iaf-reversed", "iaf-function", "iaf-function-reversed",
                              "nice"])
def test_inverse_round_trip(make):
    with jax.enable_x64(True):
        f = make(jax.random.PRNGKey(8))
        z = 2.0 * jax.random.normal(jax.random.PRNGKey(9), (6, D), jnp.float64)   # batched
        y, fwd = f.forward_and_log_det(z)
        x, inv = f.inverse_and_log_det(y)
        assert fwd.shape == (6,)
        np.testing.assert_allclose(x, z, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(inv, -fwd, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("reverse", [False, True])
def test_iaf_jacobian_is_triangular(reverse):
    with jax.enable_x64(True):
        f = _iaf(jax.random.PRNGKey(10), reverse=reverse)
        z = jax.random.normal(jax.random.PRNGKey(11), (D,), jnp.float64)
        jac = jax.jacfwd(f.forward)(z)
        strict = np.triu(np.ones((D, D)), 1) if not reverse else np.tril(np.ones((D, D)), -1)
        assert np.all(jac[strict.astype(bool)] == 0.0)             # exactly, by the masks
        assert np.all(np.abs(jac[~strict.astype(bool)]) > 0)       # and not trivially diagonal
        np.testing.assert_allclose(f.forward_log_det_jacobian(z),
                                   jnp.sum(jnp.log(jnp.abs(jnp.diag(jac)))), rtol=1e-12)


def test_made_masks_are_autoregressive():
    masks = flows.made_masks(5, [8, 8])
    conn = masks[0] @ masks[1] @ masks[2]       # paths from input i to output j
    assert np.all(conn[np.tril_indices(5)] == 0)               # output j sees inputs < j only
    assert np.all(conn[np.triu_indices(5, 1)] > 0)


def test_planar_and_radial_have_no_inverse():
    for f in (_planar(jax.random.PRNGKey(0)), _radial(jax.random.PRNGKey(0))):
        with pytest.raises(NotImplementedError, match="no closed-form inverse"):
            f.inverse(jnp.zeros(D))
    q = flows.flow(diag_gaussian(jnp.zeros(D), jnp.ones(D)), [_planar(jax.random.PRNGKey(0))])
    with pytest.raises(NotImplementedError, match="sample_and_log_prob"):
        q.log_prob(jnp.zeros(D))


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="u must have shape"):
        flows.Planar(jnp.zeros(3), jnp.ones(4), 0.0)
    with pytest.raises(ValueError, match="b must be a scalar"):
        flows.Planar(jnp.zeros(4), jnp.ones(4), jnp.zeros(2))
    with pytest.raises(ValueError, match="alpha_raw must be a scalar"):
        flows.Radial(jnp.zeros(2), jnp.zeros(2), 0.0)
    with pytest.raises(ValueError, match="leading axis K"):
        flows.Stacked(flows.Planar, (jnp.zeros((3, 2)), jnp.ones((2, 2)), jnp.zeros(3)))
    with pytest.raises(TypeError, match="conditioner must be a callable"):
        flows.IAF({"kernels": []})
    with pytest.raises(ValueError, match=r"conditioner must return \(mu, s\) of the shape"):
        flows.IAF(lambda z: (z, z[:-1])).forward(jnp.zeros(3))
    with pytest.raises(TypeError, match="mask must be booleans"):
        flows.nice_coupling(lambda m: m, np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="mask must have shape"):
        flows.nice_coupling(lambda m: m, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="dim must be >= 1"):
        flows.made_masks(0, [4])


def test_stacked_equals_the_unrolled_chain():
    with jax.enable_x64(True):
        steps = [_planar(k) for k in jax.random.split(jax.random.PRNGKey(12), 5)]
        stacked = flows.Stacked(flows.Planar, tuple(jnp.stack([getattr(f, a) for f in steps])
                                                    for a in ("u", "w", "b")))
        chain = flows.flow(diag_gaussian(jnp.zeros(D), jnp.ones(D)), steps).bijector
        z = jax.random.normal(jax.random.PRNGKey(13), (3, D), jnp.float64)
        for got, want in zip(stacked.forward_and_log_det(z), chain.forward_and_log_det(z)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        _check_log_det(stacked, z[0])
        with pytest.raises(NotImplementedError, match="no closed-form inverse"):
            stacked.inverse(z)


def test_stacked_casts_its_parameters_to_the_input_dtype():
    with jax.enable_x64(True):
        steps = [_planar(k) for k in jax.random.split(jax.random.PRNGKey(14), 3)]   # float64
        params = tuple(jnp.stack([getattr(f, a) for f in steps]) for a in ("u", "w", "b"))
        z = jax.random.normal(jax.random.PRNGKey(15), (D,), jnp.float32)
        y, log_det = flows.Stacked(flows.Planar, params).forward_and_log_det(z)
        assert y.dtype == jnp.float32
        y32, log_det32 = flows.Stacked(
            flows.Planar, tuple(a.astype(jnp.float32) for a in params)).forward_and_log_det(z)
        np.testing.assert_array_equal(y, y32)
        np.testing.assert_array_equal(log_det, log_det32)


# ------------------------------------------------------------------ 2-D densities

def _grid(lim, n):
    c = np.linspace(-lim, lim, n)
    return np.stack(np.meshgrid(c, c, indexing="ij"), -1), (c[1] - c[0]) ** 2


def _chain_2d(kind, key):
    keys = jax.random.split(key, 4)
    if kind == "planar":
        return [flows.Planar(2 * jax.random.normal(k, (2,)), jax.random.normal(k + 1, (2,)),
                             jax.random.normal(k + 2, ())) for k in keys]
    return [flows.Radial(jax.random.normal(k, (2,)), jax.random.normal(k + 1, ()),
                         jax.random.normal(k + 2, ()) + 1.0) for k in keys]


@pytest.mark.parametrize("kind", ["planar", "radial"])
def test_forward_only_flow_density_normalizes(kind):
    """Planar/radial flows have no inverse, so map a fine grid of base points forward:
    sum_cells q_K(f(centre)) * area(f(cell)) must be 1, with the image areas measured
    geometrically (shoelace formula), independently of the log-determinant."""
    q = flows.flow(diag_gaussian(jnp.array([0.3, -0.2]), jnp.array([0.8, 1.2])),
                   _chain_2d(kind, jax.random.PRNGKey(1)))
    corners, _ = _grid(6.0, 401)                          # base-space cell corners
    centres = 0.25 * (corners[:-1, :-1] + corners[1:, :-1] + corners[1:, 1:] + corners[:-1, 1:])
    fwd = jax.jit(jax.vmap(jax.vmap(q.bijector.forward_and_log_det)))
    img, _ = fwd(jnp.asarray(corners, jnp.float32))
    img = np.asarray(img, np.float64)
    quad = [img[:-1, :-1], img[1:, :-1], img[1:, 1:], img[:-1, 1:]]
    area = 0.5 * np.abs(sum(a[..., 0] * b[..., 1] - b[..., 0] * a[..., 1]
                            for a, b in zip(quad, quad[1:] + quad[:1])))
    y, log_det = fwd(jnp.asarray(centres, jnp.float32))
    log_q = q.distribution.log_prob(jnp.asarray(centres, jnp.float32)) - log_det
    total = np.sum(np.exp(np.asarray(log_q, np.float64)) * area)
    assert abs(total - 1.0) < 2e-3, total
    # the same quadrature gives E[z_K]; compare with sampling
    mean_grid = np.sum(np.exp(np.asarray(log_q, np.float64))[..., None] * area[..., None]
                       * np.asarray(y, np.float64), axis=(0, 1))
    z = q.sample(seed=jax.random.PRNGKey(2), sample_shape=(200_000,))
    stderr = np.std(z, axis=0) / np.sqrt(z.shape[0])
    assert np.all(np.abs(np.mean(z, axis=0) - mean_grid) < 4 * stderr + 2e-3)


@pytest.mark.parametrize("kind", ["iaf", "nice"])
def test_invertible_flow_density_normalizes(kind):
    """With an inverse, log q is available everywhere: integrate it on a grid in z_K space
    and compare box probabilities with the fraction of samples in the box."""
    key = jax.random.PRNGKey(3)
    if kind == "iaf":       # gates open at the start (+1.5), as FlowEncoder initializes them
        steps = [flows.IAF(_made(k, i % 2 == 1, (8,), dim=2, scale=0.3, gate_offset=1.5,
                                 dtype=jnp.float32), reverse=i % 2 == 1)
                 for i, k in enumerate(jax.random.split(key, 3))]
    else:
        steps = [flows.nice_coupling(_shift_function(k, dim=2, hidden=8, dtype=jnp.float32),
                                     np.array([i % 2 == 0, i % 2 == 1]))
                 for i, k in enumerate(jax.random.split(key, 3))]
    q = flows.flow(diag_gaussian(jnp.zeros(2), jnp.ones(2)), steps)
    points, cell = _grid(7.0, 400)      # an even count: no grid point on the box edges
    log_q = jax.jit(q.log_prob)(jnp.asarray(points.reshape(-1, 2), jnp.float32))
    dens = np.exp(np.asarray(log_q, np.float64)).reshape(points.shape[:2])
    assert abs(dens.sum() * cell - 1.0) < 2e-3
    z = np.asarray(q.sample(seed=jax.random.PRNGKey(4), sample_shape=(100_000,)))
    box = (points[..., 0] > 0) & (points[..., 1] > 0)
    p_grid = dens[box].sum() * cell
    p_mc = np.mean((z[:, 0] > 0) & (z[:, 1] > 0))
    assert abs(p_grid - p_mc) < 4 * np.sqrt(p_mc * (1 - p_mc) / len(z)) + 2e-3
