"""Normalizing flows: log-determinants, inverses, normalization, flow posteriors in the
objectives, estimators and evaluator."""

import distrax
import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvae
from jaxvae import flows
from jaxvae.models.mlp import MLPDecoder, VAE, diag_gaussian

D = 4


def _rand_net(key, sizes, context_dim=3, scale=0.5, dtype=jnp.float64):
    keys = jax.random.split(key, 2 * len(sizes) + 1)
    kernels = [scale * jax.random.normal(keys[i], (a, b), dtype)
               for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    biases = [scale * jax.random.normal(keys[len(sizes) + i], (b,), dtype)
              for i, b in enumerate(sizes[1:])]
    ctx = scale * jax.random.normal(keys[-1], (context_dim, sizes[1]), dtype)
    return {"kernels": kernels, "biases": biases, "context_kernel": ctx}


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
    kp, kc = jax.random.split(key)
    params = _rand_net(kp, [D, *hidden, 2 * D])
    return flows.IAF(params, jax.random.normal(kc, (3,), jnp.float64), reverse=reverse)


def _nice(key, first=True):
    kp, kc = jax.random.split(key)
    mask = (np.arange(D) < D // 2) == first
    return flows.nice_coupling(_rand_net(kp, [D, 5, D]), mask,
                               jax.random.normal(kc, (3,), jnp.float64))


def _check_log_det(bijector, z, tol=1e-9):
    y, log_det = bijector.forward_and_log_det(z)
    sign, ref = jnp.linalg.slogdet(jax.jacfwd(bijector.forward)(z))
    assert y.shape == z.shape and log_det.shape == ()
    assert sign != 0
    np.testing.assert_allclose(log_det, ref, rtol=tol, atol=tol)
    return log_det


@pytest.mark.parametrize("make", [_planar, _radial, _iaf, lambda k: _iaf(k, reverse=True),
                                  _nice, lambda k: _nice(k, first=False)],
                         ids=["planar", "radial", "iaf", "iaf-reversed", "nice", "nice-other"])
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


@pytest.mark.parametrize("make", [_iaf, lambda k: _iaf(k, reverse=True), _nice])
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
    with pytest.raises(ValueError, match="unknown flow"):
        flows.FlowEncoder((8,), 2, flow="maf").init(jax.random.PRNGKey(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="num_flows"):
        flows.FlowEncoder((8,), 2, num_flows=-1).init(jax.random.PRNGKey(0), jnp.zeros(3))


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
    if kind == "iaf":
        nets = [_rand_net(k, [2, 8, 4], scale=0.3, dtype=jnp.float32)
                for k in jax.random.split(key, 3)]
        for net in nets:      # gates open at the start, as FlowEncoder initializes them
            net["biases"][-1] = net["biases"][-1].at[2:].add(1.5)
        steps = [flows.IAF(net, jnp.ones(3), reverse=i % 2) for i, net in enumerate(nets)]
    else:
        steps = [flows.nice_coupling(_rand_net(k, [2, 8, 2], scale=0.5, dtype=jnp.float32),
                                     np.array([i % 2 == 0, i % 2 == 1]), jnp.ones(3))
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


# ------------------------------------------------------------------ flow posteriors

EVENT = (6,)


def _flow_vae(kind, num_flows=2, latent=3):
    enc = flows.FlowEncoder((16,), latent, flow=kind, num_flows=num_flows,
                            flow_hidden=12, context_dim=5)
    return VAE(enc, MLPDecoder((16,), EVENT))


def _data(n=4):
    return (jax.random.uniform(jax.random.PRNGKey(20), (n, *EVENT)) > 0.5).astype(jnp.float32)


class _Opaque(distrax.Distribution):
    """Hides that a distribution is a ``distrax.Transformed``, so that the estimators
    take their generic route (log q at any z through the flow's inverse)."""

    def __init__(self, dist):
        self.dist = dist

    def _sample_n(self, key, n):
        return self.dist.sample(seed=key, sample_shape=(n,))

    def _sample_n_and_log_prob(self, key, n):
        return self.dist.sample_and_log_prob(seed=key, sample_shape=(n,))

    def log_prob(self, value):
        return self.dist.log_prob(value)

    @property
    def event_shape(self):
        return self.dist.event_shape

    @property
    def batch_shape(self):
        return self.dist.batch_shape


class _OpaqueEncoder(nn.Module):
    inner: nn.Module

    @nn.compact
    def __call__(self, x):
        return _Opaque(self.inner(x))

    @property
    def latent_dim(self):
        return self.inner.latent_dim


@pytest.mark.parametrize("estimator", ["dreg", "score_function",
                                       pytest.param("stl", marks=pytest.mark.slow),
                                       pytest.param("rws", marks=pytest.mark.slow)])
def test_flow_estimators_match_the_inverse_route(estimator):
    """For an invertible flow (IAF) the Jacobian-based path and fixed-z views of log q
    give the same gradients as evaluating log q through the inverse."""
    model = _flow_vae("iaf")
    params = model.init_params(jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(        # move away from the near-identity init
        lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(p.size), p.shape), params)
    opaque = VAE(_OpaqueEncoder(model.encoder), model.decoder)
    opaque_params = {"params": {"encoder": {"inner": params["params"]["encoder"]},
                                "decoder": params["params"]["decoder"]}}
    x, key = _data(), jax.random.PRNGKey(1)

    def grads(m, p):
        surrogate = jaxvae.make_estimator(m, estimator, num_samples=3)
        groups = jaxvae.split_params(m, p)
        return jax.jit(jax.value_and_grad(lambda g: jnp.mean(surrogate(g, x, key))))(groups)

    (v1, g1), (v2, g2) = grads(model, params), grads(opaque, opaque_params)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    g2 = g2._replace(inference={"params": {"encoder": g2.inference["params"]["encoder"]["inner"]}})
    flat1, _ = jax.flatten_util.ravel_pytree(g1)
    flat2, _ = jax.flatten_util.ravel_pytree(g2)
    assert np.max(np.abs(flat1)) > 1e-2
    np.testing.assert_allclose(flat1, flat2, rtol=2e-3, atol=2e-4 * np.max(np.abs(flat1)))


# The default run spreads the estimators over the flows (the forward-only planar flow gets
# both views of log q); the slow run takes every pair.
_DEFAULT_ESTIMATORS = {"planar": ("dreg", "score_function"), "radial": ("stl",),
                       "nice": ("rws",), "iaf": ("reparam", "iwae")}


@pytest.mark.parametrize("kind", flows.FLOWS)
@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["some", "every"])
def test_flow_posterior_in_every_objective_and_estimator(kind, every):
    model = _flow_vae(kind)
    params = model.init_params(jax.random.PRNGKey(0))
    x, key = _data(), jax.random.PRNGKey(1)
    q = model.apply(params, x[0], method="posterior")
    assert isinstance(q, distrax.Transformed) and q.event_shape == (3,)
    elbo1 = jaxvae.make_objective(model, "elbo", 1)(params, x, key)
    iwae1 = jaxvae.make_objective(model, "iwae", 1)(params, x, key)
    np.testing.assert_allclose(elbo1, iwae1, rtol=1e-5)            # IWAE_1 == ELBO
    groups = jaxvae.split_params(model, params)
    for name in jaxvae.ESTIMATORS if every else _DEFAULT_ESTIMATORS[kind]:
        loss = jaxvae.make_estimator_loss(model, name, num_samples=2)
        (value, info), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(groups, x, key)
        assert np.isfinite(value)
        flat, _ = jax.flatten_util.ravel_pytree(g)
        assert np.all(np.isfinite(flat)) and np.any(flat != 0), name
    with pytest.raises(TypeError, match="closed-form KL"):
        jaxvae.make_objective(model, "elbo", 1, analytic_kl=True)(params, x, key)


def test_flow_posterior_in_the_evaluator_and_latent_tools():
    model = _flow_vae("planar")
    params = model.init_params(jax.random.PRNGKey(0))
    x = _data(5)
    ll = jaxvae.log_likelihood(model, params, x, num_samples=40, key=jax.random.PRNGKey(2),
                               batch_size=2, sample_chunk=16)
    bound = jaxvae.make_objective(model, "iwae", 40)(params, x, jax.random.PRNGKey(3))
    assert ll.shape == (5,) and np.all(np.abs(ll - bound) < 2.0)
    n_active, variances = jaxvae.active_units(model, params, x, batch_size=5)
    assert variances.shape == (3,)
    with pytest.raises(TypeError, match="diagonal Gaussian"):
        jaxvae.kl_per_dimension(model, params, x)


def _fixed_decoder_vae(encoder, oracle):
    class Decoder(nn.Module):
        @nn.compact
        def __call__(self, z):
            W = self.param("W", lambda *_: oracle.W, oracle.W.shape)
            b = self.param("b", lambda *_: oracle.b, oracle.b.shape)
            mean = W @ z + b
            return diag_gaussian(mean, jnp.full_like(mean, oracle.sigma))

    class Model(VAE):
        @property
        def event_shape(self):
            return (oracle.W.shape[0],)

    return Model(encoder, Decoder())


def test_flow_posterior_beats_the_diagonal_gaussian():
    """Linear-Gaussian model with a correlated posterior (latent 2, fixed decoder). A
    diagonal q can at best reach the mean-field KL to p(z|x); IAF posteriors, trained
    with the same budget, get past that limit by a stated margin of 0.3 nats (measured:
    diagonal 0.57, IAF 0.02, mean-field limit 0.54 nats)."""
    from oracles import LinearGaussian
    oracle = LinearGaussian(jnp.array([[1.0, 0.9], [0.8, 1.1], [0.5, -0.2]]),
                            jnp.array([0.2, -0.1, 0.3]), 0.3)
    xs = jax.vmap(oracle.sample_x)(jax.random.split(jax.random.PRNGKey(0), 64))
    log_px = jax.vmap(oracle.log_marginal)(xs)
    precision = jnp.eye(2) + oracle.W.T @ oracle.W / oracle.sigma ** 2
    mean_field_kl = 0.5 * (jnp.sum(jnp.log(jnp.diag(precision)))
                           - jnp.linalg.slogdet(precision)[1])          # best diagonal q
    assert mean_field_kl > 0.5

    def train(encoder):
        model = _fixed_decoder_vae(encoder, oracle)
        params = model.init_params(jax.random.PRNGKey(1))
        groups = jaxvae.split_params(model, params)
        loss = jaxvae.make_estimator_loss(model, "reparam", num_samples=4)
        tx = optax.adam(3e-3)

        @jax.jit
        def run(groups, key):
            def step(carry, key):
                phi, opt = carry
                g = jax.grad(lambda p: loss(groups._replace(inference=p), xs, key)[0])(phi)
                upd, opt = tx.update(g, opt)
                return (optax.apply_updates(phi, upd), opt), None
            (phi, _), _ = jax.lax.scan(step, (groups.inference, tx.init(groups.inference)),
                                       jax.random.split(key, 600))
            params = jaxvae.merge_params(groups._replace(inference=phi))
            elbo = jaxvae.make_objective(model, "elbo", 200)(params, xs, jax.random.PRNGKey(9))
            return jnp.mean(log_px - elbo)          # mean KL(q || p(z|x)), MC over 200 draws
        return float(run(groups, jax.random.PRNGKey(2)))

    gap_diag = train(jaxvae.GaussianEncoder((32,), 2))
    gap_iaf = train(flows.FlowEncoder((32,), 2, flow="iaf", num_flows=2, flow_hidden=16,
                                      context_dim=8))
    assert gap_diag > mean_field_kl - 0.05, (gap_diag, mean_field_kl)
    assert gap_iaf < mean_field_kl - 0.3, (gap_iaf, mean_field_kl)
