"""jaxvae.energies: the Table 1 energies of Rezende & Mohamed (2015), the wall, the
quadrature log Z and the KL estimate against hand-computed values; the stacked free flows
against jax.jacfwd; a short fit that lowers the KL."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae import energies as en
from jaxvae import flows


def _at(fn, z1, z2):
    return float(fn(jnp.array([z1, z2], jnp.float32)))


def test_u1_by_hand():
    # z = (0, 1): |z| = 1 -> 0.5 (1 / 0.4)^2 = 3.125; both lobes exp(-0.5 (2 / 0.6)^2)
    lobe = -0.5 * (2 / 0.6) ** 2
    assert _at(en.u1, 0.0, 1.0) == pytest.approx(3.125 - lobe - math.log(2), rel=1e-5)
    # z = (2, 0): on the ring, in one lobe
    assert _at(en.u1, 2.0, 0.0) == pytest.approx(-math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)),
                                                 abs=1e-6)


def test_u2_by_hand():
    # w1(1) = sin(pi / 2) = 1
    assert _at(en.u2, 1.0, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert _at(en.u2, 1.0, 0.0) == pytest.approx(0.5 * (1 / 0.4) ** 2, rel=1e-5)
    assert _at(en.u2, 0.0, 0.4) == pytest.approx(0.5, rel=1e-5)        # w1(0) = 0


def test_u3_by_hand():
    # z1 = 1: w1 = 1, w2 = 3; z2 = -0.5 sits half-way between the two ridges (d = -1.5)
    half = 0.5 * (1.5 / 0.35) ** 2
    assert _at(en.u3, 1.0, -0.5) == pytest.approx(half - math.log(2), rel=1e-5)
    # on the lower ridge z2 = w1 - w2 = -2
    assert _at(en.u3, 1.0, -2.0) == pytest.approx(0.0, abs=1e-6)


def test_u4_by_hand():
    # z1 = 1: w1 = 1, w3 = 3 sigmoid(0) = 1.5; z2 = 1 is on the upper ridge
    other = -0.5 * (1.5 / 0.35) ** 2
    assert _at(en.u4, 1.0, 1.0) == pytest.approx(-math.log1p(math.exp(other)), abs=1e-6)
    # z2 = w1 - w3 = -0.5 on the lower ridge; the upper one is 1.5 / 0.4 sd away
    other = -0.5 * (1.5 / 0.4) ** 2
    assert _at(en.u4, 1.0, -0.5) == pytest.approx(-math.log1p(math.exp(other)), abs=1e-6)


def test_energies_finite_far_out_and_batched():
    z = jnp.array([[100.0, -100.0], [-60.0, 80.0], [0.0, 0.0]])
    for name, energy in en.ENERGIES.items():
        u = energy(z)
        assert u.shape == (3,), name
        assert np.all(np.isfinite(np.asarray(u))), name
    # 100 sd from the ridges the log-sum-exp stays exact: at z1 = 100, w2 ~ 0 and the two
    # ridges of U3 coincide, U3 = 0.5 (d / 0.35)^2 - log 2 with d = z2 - w1(100) = -100
    assert float(en.u3(z[0])) == pytest.approx(0.5 * (100 / 0.35) ** 2 - math.log(2), rel=1e-6)


def test_wall():
    assert _at(en.wall, 3.9, 100.0) == 0.0
    assert _at(en.wall, -5.0, 0.0) == pytest.approx(0.5 * (1 / 0.25) ** 2)
    # on U2's ridge z2 = w1(5) = sin(2 pi 5 / 4), one wall width outside: only the wall
    w1 = math.sin(2 * math.pi * 5.0 / 4)
    assert _at(en.target_energy("U2"), 5.0, w1) == pytest.approx(8.0, rel=1e-5)


@pytest.mark.parametrize("loc,scale", [((0.0, 0.0), (1.0, 1.0)), ((0.5, -1.0), (0.7, 0.3))])
def test_log_normalizer_of_a_gaussian(loc, scale):
    loc, scale = np.asarray(loc), np.asarray(scale)
    energy = lambda z: 0.5 * jnp.sum(jnp.square((z - loc) / scale), axis=-1)
    exact = math.log(2 * math.pi) + float(np.sum(np.log(scale)))
    assert en.log_normalizer(energy, half=7.0, step=0.02) == pytest.approx(exact, abs=1e-5)


N = 20000           # one compilation of the sampler for every radial K = 2 flow below


def test_kl_of_the_identity_flow_to_its_own_base_is_zero():
    # radial maps start at beta = 0, i.e. the identity: q = N(0, I) = p exactly
    params = en.init_flow(jax.random.PRNGKey(0), "radial", 2)
    energy = lambda z: 0.5 * jnp.sum(jnp.square(z), axis=-1)
    kl, stderr = en.kl_estimate(jax.random.PRNGKey(1), params, energy, math.log(2 * math.pi), N)
    assert abs(kl) < 1e-5 and stderr < 1e-5
    density = en.histogram_density(jax.random.PRNGKey(2), params, N, bins=8)
    cell = (2 * en.WINDOW / 8) ** 2
    assert density.shape == (8, 8)
    assert np.sum(density) * cell == pytest.approx(math.erf(4 / math.sqrt(2)) ** 2, abs=1e-3)


def test_density_grid_is_the_normalised_gaussian():
    energy = lambda z: 0.5 * jnp.sum(jnp.square(z), axis=-1)
    density = en.density_grid(energy, bins=4, log_z=math.log(2 * math.pi))
    assert density.shape == (4, 4)                  # cell midpoints at +-1, +-3
    assert density[1, 2] == pytest.approx(math.exp(-1.0) / (2 * math.pi), rel=1e-6)
    assert density[0, 3] == pytest.approx(math.exp(-9.0) / (2 * math.pi), rel=1e-5)


def _random_params(flow, key, k=3):
    keys = jax.random.split(key, 3)
    if flow == "planar":
        return {"u": jax.random.normal(keys[0], (k, 2)), "w": jax.random.normal(keys[1], (k, 2)),
                "b": jax.random.normal(keys[2], (k,))}
    return {"z0": jax.random.normal(keys[0], (k, 2)),
            "alpha_raw": jax.random.normal(keys[1], (k,)),
            "beta_raw": jax.random.normal(keys[2], (k,))}


@pytest.mark.parametrize("flow", ["planar", "radial"])
def test_stacked_free_flow_log_det_against_jacfwd(flow):
    params = _random_params(flow, jax.random.PRNGKey(3))
    z = 1.5 * jax.random.normal(jax.random.PRNGKey(4), (5, 2))

    @jax.jit
    def check(params, z):
        bijector = en.free_bijector(params)
        y, log_det = bijector.forward_and_log_det(z)
        jac = jax.vmap(jax.jacfwd(bijector.forward))(z)                 # [5, 2, 2]
        # the same maps one by one, step 1 first (the example's former loop)
        make, names = en.FREE_FLOWS[flow]
        steps = [make(*(params[n][i] for n in names)) for i in range(3)]
        y_chain = flows.flow(en.free_flow(params).distribution, steps).bijector.forward(z)
        return y, log_det, jnp.linalg.slogdet(jac)[1], y_chain

    y, log_det, expected, y_chain = check(params, z)
    assert log_det.shape == (5,)
    np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, y_chain, rtol=1e-5, atol=1e-6)


def test_a_short_fit_lowers_the_kl_on_u1():
    # the callable target compiles one branch instead of the four named energies (faster);
    # the fit and the KL are the same as for the name "U1"
    energy = en.target_energy("U1")
    log_z = en.log_normalizer("U1", step=0.02)
    key = jax.random.PRNGKey(5)
    start = en.init_flow(jax.random.split(key)[0], "radial", 2)     # fit_flow's own init
    kl_start, _ = en.kl_estimate(jax.random.PRNGKey(6), start, "U1", log_z, N)
    params, info = en.fit_flow(key, energy, "radial", 2, steps=200, batch=64, lr=2e-2,
                               anneal=0, chunk=200)
    kl_end, stderr = en.kl_estimate(jax.random.PRNGKey(6), params, "U1", log_z, N)
    assert set(params) == set(start) and params["z0"].shape == (2, 2)
    assert info["losses"].shape == (1,) and info["seconds"] > 0
    assert kl_end < kl_start - 1.0 and stderr < 0.05, (kl_start, kl_end)


def test_bad_arguments_raise_naming_the_allowed_values():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"'U9'.*U1"):
        en.target_energy("U9")
    with pytest.raises(ValueError, match=r"'U9'.*U1"):
        en.fit_flow(key, "U9", steps=10)
    with pytest.raises(ValueError, match=r"'iaf'.*planar.*radial"):
        en.fit_flow(key, "U1", "iaf", steps=10)
    with pytest.raises(ValueError, match=r"'iaf'.*planar.*radial"):
        en.init_flow(key, "iaf", 2)
    for bad in [{"steps": 0}, {"steps": 10, "batch": 0}, {"steps": 10, "lr": 0.0},
                {"steps": 10, "lr": float("nan")}, {"steps": 10, "anneal": -1},
                {"steps": 10, "chunk": 0}]:
        with pytest.raises(ValueError, match=next(iter(bad.keys() - {"steps"}), "steps")):
            en.fit_flow(key, "U1", **bad)
    with pytest.raises(ValueError, match="num_flows"):
        en.init_flow(key, "planar", 0)
    with pytest.raises(ValueError, match="keys"):
        en.free_bijector({"u": jnp.zeros((2, 2))})
    with pytest.raises(ValueError, match="num_samples"):
        en.kl_estimate(key, en.init_flow(key, "planar", 1), "U1", 0.0, 1)
