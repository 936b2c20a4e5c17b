"""examples/flow_density.py: the Table 1 energies of Rezende & Mohamed (2015), the wall,
the quadrature log Z and the KL estimate, checked against hand-computed values."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "flow_density.py")
_SPEC = importlib.util.spec_from_file_location("flow_density", _PATH)
fd = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fd)


def _at(fn, z1, z2):
    return float(fn(jnp.array([z1, z2], jnp.float32)))


def test_u1_by_hand():
    # z = (0, 1): |z| = 1 -> 0.5 (1 / 0.4)^2 = 3.125; both lobes exp(-0.5 (2 / 0.6)^2)
    lobe = -0.5 * (2 / 0.6) ** 2
    assert _at(fd.u1, 0.0, 1.0) == pytest.approx(3.125 - lobe - math.log(2), rel=1e-5)
    # z = (2, 0): on the ring, in one lobe
    assert _at(fd.u1, 2.0, 0.0) == pytest.approx(-math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)),
                                                 abs=1e-6)


def test_u2_by_hand():
    # w1(1) = sin(pi / 2) = 1
    assert _at(fd.u2, 1.0, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert _at(fd.u2, 1.0, 0.0) == pytest.approx(0.5 * (1 / 0.4) ** 2, rel=1e-5)
    assert _at(fd.u2, 0.0, 0.4) == pytest.approx(0.5, rel=1e-5)        # w1(0) = 0


def test_u3_by_hand():
    # z1 = 1: w1 = 1, w2 = 3; z2 = -0.5 sits half-way between the two ridges (d = -1.5)
    half = 0.5 * (1.5 / 0.35) ** 2
    assert _at(fd.u3, 1.0, -0.5) == pytest.approx(half - math.log(2), rel=1e-5)
    # on the lower ridge z2 = w1 - w2 = -2
    assert _at(fd.u3, 1.0, -2.0) == pytest.approx(0.0, abs=1e-6)


def test_u4_by_hand():
    # z1 = 1: w1 = 1, w3 = 3 sigmoid(0) = 1.5; z2 = 1 is on the upper ridge
    other = -0.5 * (1.5 / 0.35) ** 2
    assert _at(fd.u4, 1.0, 1.0) == pytest.approx(-math.log1p(math.exp(other)), abs=1e-6)
    # z2 = w1 - w3 = -0.5 on the lower ridge; the upper one is 1.5 / 0.4 sd away
    other = -0.5 * (1.5 / 0.4) ** 2
    assert _at(fd.u4, 1.0, -0.5) == pytest.approx(-math.log1p(math.exp(other)), abs=1e-6)


def test_energies_finite_far_out_and_batched():
    z = jnp.array([[100.0, -100.0], [-60.0, 80.0], [0.0, 0.0]])
    for name, energy in fd.ENERGIES.items():
        u = energy(z)
        assert u.shape == (3,), name
        assert np.all(np.isfinite(np.asarray(u))), name
    # 100 sd from the ridges the log-sum-exp stays exact: at z1 = 100, w2 ~ 0 and the two
    # ridges of U3 coincide, U3 = 0.5 (d / 0.35)^2 - log 2 with d = z2 - w1(100) = -100
    assert float(fd.u3(z[0])) == pytest.approx(0.5 * (100 / 0.35) ** 2 - math.log(2), rel=1e-6)


def test_wall():
    assert _at(fd.wall, 3.9, 100.0) == 0.0
    assert _at(fd.wall, -5.0, 0.0) == pytest.approx(0.5 * (1 / 0.25) ** 2)
    assert _at(fd.target_energy("U2"), 5.0, fd._w1(5.0)) == pytest.approx(8.0, rel=1e-5)


@pytest.mark.parametrize("loc,scale", [((0.0, 0.0), (1.0, 1.0)), ((0.5, -1.0), (0.7, 0.3))])
def test_log_normalizer_of_a_gaussian(loc, scale):
    loc, scale = np.asarray(loc), np.asarray(scale)
    energy = lambda z: 0.5 * jnp.sum(jnp.square((z - loc) / scale), axis=-1)
    exact = math.log(2 * math.pi) + float(np.sum(np.log(scale)))
    assert fd.log_normalizer(energy, half=7.0, step=0.02) == pytest.approx(exact, abs=1e-5)


def test_kl_of_the_identity_flow_to_its_own_base_is_zero():
    # radial maps start at beta = 0, i.e. the identity: q = N(0, I) = p exactly
    params = fd.init_params(jax.random.PRNGKey(0), "radial", 2)
    energy = lambda z: 0.5 * jnp.sum(jnp.square(z), axis=-1)
    n = 20000           # one compilation of the sampler for both calls
    kl, stderr = fd.kl_estimate(params, energy, math.log(2 * math.pi), jax.random.PRNGKey(1), n)
    assert abs(kl) < 1e-5 and stderr < 1e-5
    density = fd.histogram_density(params, jax.random.PRNGKey(2), n, bins=8)
    cell = (2 * fd.WINDOW / 8) ** 2
    assert density.shape == (8, 8)
    assert np.sum(density) * cell == pytest.approx(math.erf(4 / math.sqrt(2)) ** 2, abs=1e-3)
