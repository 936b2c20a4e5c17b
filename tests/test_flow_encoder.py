"""Flow posteriors (jaxvae.models.flow): FlowEncoder's parameter layout and initial values,
the MADE / NICE conditioner networks, x64, and flow posteriors in the objectives,
estimators and evaluator."""

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
from jaxvae.models import MADE, FlowEncoder, NICEShift
from jaxvae.models.mlp import VAE, MLPDecoder, diag_gaussian

D = 4

EVENT = (6,)


def _flow_vae(kind, num_flows=2, latent=3):
    enc = FlowEncoder((16,), latent, flow=kind, num_flows=num_flows, flow_hidden=12,
                      context_dim=5)
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
        loss = jaxvae.make_loss(model, None, 2, estimator=name)
        (value, info), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(groups, x, key)
        assert np.isfinite(value)
        flat, _ = jax.flatten_util.ravel_pytree(g)
        assert np.all(np.isfinite(flat)) and np.any(flat != 0), name
    with pytest.raises(TypeError, match="closed-form KL"):
        jaxvae.make_objective(model, "elbo", 1, analytic_kl=True)(params, x, key)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="unknown flow"):
        FlowEncoder((8,), 2, flow="maf").init(jax.random.PRNGKey(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="num_flows"):
        FlowEncoder((8,), 2, num_flows=-1).init(jax.random.PRNGKey(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        FlowEncoder((8,), 1, flow="nice").init(jax.random.PRNGKey(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="flow_layers must be >= 1"):
        FlowEncoder((8,), 2, flow="iaf", flow_layers=0).init(jax.random.PRNGKey(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="hidden must list at least one"):
        MADE(()).init(jax.random.PRNGKey(0), jnp.zeros(3))


def test_conditioner_networks_start_as_documented():
    """NICEShift's last layer is zero: the coupling starts at the identity exactly; MADE's
    output bias is (mu 0, s gate_bias); MADE's (mu, s) Jacobians are strictly triangular."""
    z, context = jax.random.normal(jax.random.PRNGKey(1), (D,)), jnp.ones(3)
    shift = NICEShift((6, 5))
    params = shift.init(jax.random.PRNGKey(2), z, context)
    assert set(params["params"]) == {"hidden_0", "hidden_1", "context", "out"}
    coupling = flows.nice_coupling(lambda m: shift.apply(params, m, context),
                                   np.arange(D) < 2)
    y, log_det = coupling.forward_and_log_det(z)
    np.testing.assert_array_equal(y, z)
    assert log_det == 0.0
    for reverse in (False, True):
        made = MADE((8, 8), reverse=reverse, gate_bias=2.5)
        params = made.init(jax.random.PRNGKey(3), z, context)
        np.testing.assert_array_equal(params["params"]["out"]["bias"],
                                      np.r_[np.zeros(D), np.full(D, 2.5)])
        jac_mu, jac_s = jax.jacfwd(made.apply, argnums=1)(params, z, context)
        allowed = np.tril(np.ones((D, D)), -1) if not reverse else np.triu(np.ones((D, D)), 1)
        for jac in (jac_mu, jac_s):                     # jac[i, j] = d out_i / d z_j
            assert np.all(jac[allowed == 0] == 0.0)
            assert np.all(jac[allowed == 1] != 0.0)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def test_flow_encoder_parameter_layout():
    """Planar/radial keep the Gaussian encoder's layout (the head's layers at
    encoder/loc, encoder/raw_scale: saved parameters stay loadable); with K = 0 the
    FlowEncoder *is* the GaussianEncoder, values included; IAF/NICE steps are submodules."""
    key, x = jax.random.PRNGKey(0), jnp.zeros(EVENT)
    gauss = VAE(jaxvae.GaussianEncoder((16,), 3), MLPDecoder((16,), EVENT)).init(key, x)
    assert set(gauss["params"]["encoder"]) == {"MLP_0", "loc", "raw_scale"}
    plain = _flow_vae("planar", num_flows=0).init_params(key)
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(gauss)):
        np.testing.assert_array_equal(a, b)
    assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(gauss)
    enc = _flow_vae("planar").init_params(key)["params"]["encoder"]
    assert _shapes(enc) == {**_shapes(gauss["params"]["encoder"]),
                            "planar": {"kernel": (16, 14), "bias": (14,)}}
    enc = _flow_vae("radial").init_params(key)["params"]["encoder"]
    assert _shapes(enc)["radial"] == {"kernel": (16, 10), "bias": (10,)}
    enc = _flow_vae("iaf").init_params(key)["params"]["encoder"]
    assert set(enc) == {"MLP_0", "loc", "raw_scale", "context", "iaf_0", "iaf_1"}
    assert _shapes(enc["iaf_1"]) == {"hidden_0": {"kernel": (3, 12), "bias": (12,)},
                                     "context": {"kernel": (5, 12)},
                                     "out": {"kernel": (12, 6), "bias": (6,)}}
    enc = _flow_vae("nice").init_params(key)["params"]["encoder"]
    assert _shapes(enc["nice_0"]) == {"hidden_0": {"kernel": (3, 12), "bias": (12,)},
                                      "context": {"kernel": (5, 12)},
                                      "out": {"kernel": (12, 3), "bias": (3,)}}


@pytest.mark.parametrize("kind", flows.FLOWS)
def test_flow_vae_under_x64(kind):
    """With jax_enable_x64 on, parameters are still created in float32 (a float64 planar
    bias once broke the lax.scan carry of Stacked) and the loss evaluates and differentiates."""
    with jax.enable_x64(True):
        model = jaxvae.flow_vae(event_shape=EVENT, latent_dim=3, hidden=(5,), flow=kind,
                                num_flows=2, flow_hidden=4, context_dim=2)
        params = model.init_params(jax.random.PRNGKey(0))
        assert {a.dtype for a in jax.tree_util.tree_leaves(params)} == {np.dtype(np.float32)}
        loss = jaxvae.make_loss(model, "iwae", 3)
        (value, _), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
            params, _data(), jax.random.PRNGKey(7))
        assert np.isfinite(value)
        flat, _ = jax.flatten_util.ravel_pytree(grads)
        assert np.all(np.isfinite(flat)) and np.any(flat != 0)


def test_flow_posterior_in_the_evaluator_and_latent_tools():
    model = _flow_vae("planar")
    params = model.init_params(jax.random.PRNGKey(0))
    x = _data(5)
    ll = jaxvae.log_likelihood(model, params, x, num_samples=40, key=jax.random.PRNGKey(2),
                               batch_size=2, sample_chunk=16)
    bound = jaxvae.make_objective(model, "iwae", 40)(params, x, jax.random.PRNGKey(3))
    assert ll.shape == (5,) and np.all(np.abs(ll - bound) < 2.0)
    n_active, variances = jaxvae.active_units(model, params, x, batch_size=5,
                                              key=jax.random.PRNGKey(4))
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
        loss = jaxvae.make_loss(model, None, 4, estimator="reparam")
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
    gap_iaf = train(FlowEncoder((32,), 2, flow="iaf", num_flows=2, flow_hidden=16,
                                context_dim=8))
    assert gap_diag > mean_field_kl - 0.05, (gap_diag, mean_field_kl)
    assert gap_iaf < mean_field_kl - 0.3, (gap_iaf, mean_field_kl)
