"""The 2-D target energies of Rezende & Mohamed (2015), Table 1, and free flows fitted to them.

Each energy U: ``[..., 2] -> [...]`` defines an unnormalized density p(z) ∝ exp(-U(z))::

    U1(z) = 0.5 ((|z| - 2) / 0.4)^2
            - log(exp(-0.5 ((z1 - 2) / 0.6)^2) + exp(-0.5 ((z1 + 2) / 0.6)^2)),
    U2(z) = 0.5 ((z2 - w1) / 0.4)^2,
    U3(z) = -log(exp(-0.5 ((z2 - w1) / 0.35)^2) + exp(-0.5 ((z2 - w1 + w2) / 0.35)^2)),
    U4(z) = -log(exp(-0.5 ((z2 - w1) / 0.4)^2) + exp(-0.5 ((z2 - w1 + w3) / 0.35)^2)),

w1 = sin(2 pi z1 / 4), w2 = 3 exp(-0.5 ((z1 - 1) / 0.6)^2), w3 = 3 sigmoid((z1 - 1) / 0.3).
U2-U4 do not confine z1, so the fitted target (:func:`target_energy`) adds the soft wall
0.5 ((|z1| - 4)_+ / 0.25)^2, zero inside the paper's window (-4, 4)^2. log Z = log ∫ exp(-U)
is a midpoint sum on [-7, 7]^2 with spacing 0.01 (:func:`log_normalizer`).

A *free* flow (not amortized) pushes the fixed base N(0, I) through K planar or radial maps
of :mod:`jaxvae.flows`, run by ``lax.scan`` (:class:`jaxvae.flows.Stacked`). :func:`fit_flow`
minimizes the annealed reverse KL over minibatches of flow samples (forward pass only),

    KL(q || p) = E_q[log q(z) + U(z)] + log Z,   minimized as E_q[log q + beta_t U],
    beta_t = min(1, 0.01 + t / anneal),

by Adam on a cosine-decayed learning rate. :func:`kl_estimate` gives the KL in nats and its
standard error; :func:`density_grid` and :func:`histogram_density` the true and the flow
density on the window (rows = z2, columns = z1, as an image).

References: Rezende & Mohamed (2015), Variational inference with normalizing flows, Table 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxvae import _checks, flows
from jaxvae._cache import CompileCache

Array = jax.Array
Energy = Callable[[Array], Array]

__all__ = ["u1", "u2", "u3", "u4", "ENERGIES", "FREE_FLOWS", "WINDOW", "WALL_SCALE",
           "GRID_HALF", "GRID_STEP", "wall", "target_energy", "grid", "log_normalizer",
           "init_flow", "free_bijector", "free_flow", "sample", "fit_flow", "kl_estimate",
           "density_grid", "histogram_density"]

WINDOW = 4.0          # the paper's pictures show (-4, 4)^2
WALL_SCALE = 0.25     # width of the soft wall on |z1| > WINDOW
GRID_HALF = 7.0       # log Z quadrature on [-GRID_HALF, GRID_HALF]^2
GRID_STEP = 0.01


# ---------------------------------------------------------------- energies (Table 1)

def _w1(z1):
    return jnp.sin(2 * jnp.pi * z1 / 4)


def _w2(z1):
    return 3 * jnp.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)


def _w3(z1):
    return 3 * jax.nn.sigmoid((z1 - 1) / 0.3)


def u1(z: Array) -> Array:
    """Ring with two lobes. Args: ``z: [..., 2]``. Returns: U1(z): ``[...]``."""
    z1 = z[..., 0]
    ring = 0.5 * ((jnp.linalg.norm(z, axis=-1) - 2) / 0.4) ** 2
    lobes = jnp.logaddexp(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)
    return ring - lobes


def u2(z: Array) -> Array:
    """Sine ridge. Args: ``z: [..., 2]``. Returns: U2(z): ``[...]``."""
    return 0.5 * ((z[..., 1] - _w1(z[..., 0])) / 0.4) ** 2


def u3(z: Array) -> Array:
    """Sine ridge and a second ridge bent by w2. Args: ``z: [..., 2]``. Returns: ``[...]``."""
    z1, z2 = z[..., 0], z[..., 1]
    d = z2 - _w1(z1)
    return -jnp.logaddexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z1)) / 0.35) ** 2)


def u4(z: Array) -> Array:
    """Sine ridge and a second ridge shifted by w3. Args: ``z: [..., 2]``. Returns: ``[...]``."""
    z1, z2 = z[..., 0], z[..., 1]
    d = z2 - _w1(z1)
    return -jnp.logaddexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z1)) / 0.35) ** 2)


#: Table 1's energies by name (without the wall)
ENERGIES = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def wall(z: Array) -> Array:
    """0.5 ((|z1| - 4)_+ / 0.25)^2, zero inside the window. Args: ``z: [..., 2]``.
    Returns: ``[...]``."""
    return 0.5 * (jax.nn.relu(jnp.abs(z[..., 0]) - WINDOW) / WALL_SCALE) ** 2


def target_energy(name: str) -> Energy:
    """The fitted energy: Table 1's U plus the :func:`wall`.

    Args: ``name`` one of ``ENERGIES`` (U1..U4). Returns: ``z: [..., 2] -> [...]``.
    """
    energy = ENERGIES[_name(name)]
    return lambda z: energy(z) + wall(z)


def _name(name) -> str:
    if not isinstance(name, str) or name not in ENERGIES:
        raise ValueError(f"unknown energy {name!r}; expected one of {list(ENERGIES)}")
    return name


_TARGETS = tuple(target_energy(name) for name in ENERGIES)


def _energy_fn(energy) -> Energy:
    """A name (U1..U4, with the wall) or a callable ``[..., 2] -> [...]``, as a callable."""
    if isinstance(energy, str):
        return target_energy(energy)
    if not callable(energy):
        raise TypeError(f"energy must be a name in {list(ENERGIES)} or a callable of "
                        f"z: [..., 2], got {energy!r}")
    return energy


def _positive(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def grid(half: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell midpoints of [-half, half]^2 (``n = round(2 half / step)`` cells a side).

    Returns: ``(centres [n], points [n, n, 2])`` with ``points[i, j] = (centres[j],
    centres[i])`` (z1 along columns, as in an image).
    """
    half, step = _positive(half, "half"), _positive(step, "step")
    n = int(round(2 * half / step))
    centres = -half + step * (np.arange(n) + 0.5)
    z1, z2 = np.meshgrid(centres, centres)
    return centres, np.stack([z1, z2], axis=-1)


def log_normalizer(energy, half: float = GRID_HALF, step: float = GRID_STEP) -> float:
    """log ∫ exp(-U(z)) dz by the midpoint rule on [-half, half]^2.

    The energy runs in float32; the log-sum-exp over cells in float64 numpy.

    Args: ``energy`` a name (U1..U4, with the wall) or ``z: [..., 2] -> [...]``;
      ``half``, ``step`` > 0. Returns: log Z as a Python float (nats).
    """
    _, points = grid(half, step)
    neg = -np.asarray(jax.jit(_energy_fn(energy))(jnp.asarray(points, jnp.float32)),
                      np.float64)
    top = neg.max()
    return float(top + np.log(np.sum(np.exp(neg - top))) + 2 * np.log(step))


# ---------------------------------------------------------------- free flows

#: free flow types and their parameter names, in the order their bijector takes them
FREE_FLOWS = {"planar": (flows.Planar, ("u", "w", "b")),
              "radial": (flows.Radial, ("z0", "alpha_raw", "beta_raw"))}


def init_flow(key: Array, flow: str, num_flows: int) -> dict:
    """Free flow parameters near the identity map, for K = ``num_flows`` steps.

    Returns: planar ``{"u": [K, 2] = 0, "w": [K, 2] ~ N(0, 1), "b": [K] = 0}``;
    radial ``{"z0": [K, 2] ~ N(0, 1), "alpha_raw": [K] = 0, "beta_raw": [K] = 0}``
    (beta = softplus(beta_raw) - softplus(alpha_raw) = 0: exactly the identity).
    """
    k = _checks.integer(num_flows, "num_flows", 1)
    if flow == "planar":
        return {"u": jnp.zeros((k, 2)), "w": jax.random.normal(key, (k, 2)),
                "b": jnp.zeros((k,))}
    if flow == "radial":
        return {"z0": jax.random.normal(key, (k, 2)), "alpha_raw": jnp.zeros((k,)),
                "beta_raw": jnp.zeros((k,))}
    raise ValueError(f"unknown flow {flow!r}; expected one of {list(FREE_FLOWS)}")


def free_bijector(params: dict) -> flows.Stacked:
    """The K maps of ``params`` (see :func:`init_flow`) as one :class:`flows.Stacked`.

    Returns: a bijector on ``[..., 2]`` applying step 1 first.
    """
    for make, names in FREE_FLOWS.values():
        if set(params) == set(names):
            return flows.Stacked(make, tuple(params[n] for n in names))
    want = {name: list(names) for name, (_, names) in FREE_FLOWS.items()}
    raise ValueError(f"params must have the keys of one flow of {want}, got {sorted(params)}")


def free_flow(params: dict) -> distrax.Distribution:
    """q_K: N(0, I) over ``[2]`` pushed through :func:`free_bijector` of ``params``.

    Returns: a ``distrax.Transformed`` over ``[2]`` (``sample_and_log_prob`` only).
    """
    base = distrax.Independent(distrax.Normal(jnp.zeros(2), jnp.ones(2)), 1)
    return flows.flow(base, [free_bijector(params)])


def sample(key: Array, params: dict, num_samples: int) -> tuple[Array, Array]:
    """Returns: ``num_samples`` n flow samples and their log q: ``(z [n, 2], log_q [n])``."""
    return free_flow(params).sample_and_log_prob(seed=key, sample_shape=(num_samples,))


_sample_jit = jax.jit(sample, static_argnames="num_samples")
_TRAINERS = CompileCache()


def _make_trainer(steps, lr, batch, anneal, chunk, branches):
    """(tx, jitted run(params, opt_state, key, t0, index) -> (params, opt_state, loss)):
    steps t0..t0+chunk-1 on ``branches[index]``; steps t >= ``steps`` change nothing."""
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))

    def loss(params, key, beta, index):
        z, log_q = sample(key, params, batch)
        return jnp.mean(log_q + beta * jax.lax.switch(index, branches, z))

    def one_step(carry, t):
        params, opt_state, key, index = carry
        beta = 1.0 if anneal == 0 else jnp.minimum(1.0, 0.01 + t / anneal)
        value, grads = jax.value_and_grad(loss)(params, jax.random.fold_in(key, t), beta,
                                                index)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jnp.where(t < steps, new, old)
        params = jax.tree_util.tree_map(keep, new_params, params)
        opt_state = jax.tree_util.tree_map(keep, new_opt_state, opt_state)
        return (params, opt_state, key, index), value

    @jax.jit
    def run(params, opt_state, key, t0, index):
        (params, opt_state, _, _), values = jax.lax.scan(
            one_step, (params, opt_state, key, index), t0 + jnp.arange(chunk))
        return params, opt_state, values[-1]

    return tx, run


def fit_flow(key: Array, energy, flow: str = "planar", num_flows: int = 8, *, steps: int,
             batch: int = 256, lr: float = 5e-3, anneal: int = 10000, chunk: int = 250,
             progress: bool = False) -> tuple[dict, dict]:
    """Fits a free K-step flow to p ∝ exp(-U) by the annealed reverse KL.

    Step t minimizes E_q[log q(z) + beta_t U(z)] over ``batch`` flow samples drawn with
    ``fold_in(key_train, t)``, beta_t = min(1, 0.01 + t / anneal) (1 if ``anneal == 0``),
    with Adam at a learning rate cosine-decayed from ``lr`` to 0.05 ``lr`` over ``steps``.
    ``key`` is split into (init, train) keys. The steps run ``chunk`` at a time inside one
    jitted ``lax.scan``; the four named energies share one compilation per setting (the
    energy is picked by index inside it), a callable energy is compiled on its own.

    Args:
      key: PRNG key.
      energy: a name in ``ENERGIES`` (the :func:`target_energy`, with the wall) or a
        callable ``z: [..., 2] -> [...]``.
      flow: ``"planar"`` or ``"radial"``; num_flows: K >= 1 steps.
      steps, batch, chunk: >= 1; lr: > 0; anneal: >= 0.
      progress: show a tqdm bar with the loss.

    Returns:
      ``(params, info)``: the fitted parameters (as :func:`init_flow`) and
      ``info = {"seconds": wall time (compilation included), "losses": [ceil(steps / chunk)]
      numpy array of the annealed loss at the last step of each chunk}``.
    """
    start = time.perf_counter()
    steps = _checks.integer(steps, "steps", 1)
    batch = _checks.integer(batch, "batch", 1)
    chunk = min(_checks.integer(chunk, "chunk", 1), steps)
    anneal = _checks.integer(anneal, "anneal", 0)
    lr = _positive(lr, "lr")
    if isinstance(energy, str):
        branches, index, label = _TARGETS, list(ENERGIES).index(_name(energy)), energy
    else:
        branches, index, label = (_energy_fn(energy),), 0, "U"
    key_init, key_train = jax.random.split(key)
    params = init_flow(key_init, flow, num_flows)
    settings = (steps, lr, batch, anneal, chunk, branches)
    tx, run = _TRAINERS.get(settings, lambda: _make_trainer(*settings))
    opt_state = tx.init(params)
    bar = tqdm(total=steps, desc=f"{label} {flow} K={num_flows}", leave=False,
               disable=not progress)
    losses = []
    for t0 in range(0, steps, chunk):
        params, opt_state, value = run(params, opt_state, key_train, t0, index)
        losses.append(value)
        bar.update(min(chunk, steps - t0))
        bar.set_postfix(loss=f"{float(value):.3f}")
    bar.close()
    jax.block_until_ready(params)
    return params, {"seconds": time.perf_counter() - start,
                    "losses": np.asarray(jnp.stack(losses), np.float64)}


def kl_estimate(key: Array, params: dict, energy, log_z: float | None = None,
                num_samples: int = 10000) -> tuple[float, float]:
    """KL(q || p) = E_q[log q + U] + log Z in nats, from n = ``num_samples`` flow samples.

    Args: ``key``; ``params`` of a free flow; ``energy`` a name (with the wall) or a
      callable; ``log_z`` (default: :func:`log_normalizer` of ``energy``); n >= 2.

    Returns: ``(mean, standard error)`` as Python floats (float64 numpy reduction).
    """
    n = _checks.integer(num_samples, "num_samples", 2)
    energy = _energy_fn(energy)
    log_z = log_normalizer(energy) if log_z is None else float(log_z)
    z, log_q = _sample_jit(key, params, num_samples=n)
    terms = np.asarray(log_q + energy(z), np.float64) + log_z
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(n))


def density_grid(energy, bins: int, log_z: float | None = None,
                 window: float = WINDOW) -> np.ndarray:
    """exp(-U) / Z at the cell midpoints of (-window, window)^2.

    Args: ``energy`` a name (with the wall) or a callable; ``bins`` >= 1 cells a side;
      ``log_z`` (default: :func:`log_normalizer`); ``window`` > 0.

    Returns: ``[bins, bins]`` float64 density (rows = z2, columns = z1).
    """
    bins = _checks.integer(bins, "bins", 1)
    energy = _energy_fn(energy)
    log_z = log_normalizer(energy) if log_z is None else float(log_z)
    window = _positive(window, "window")
    _, points = grid(window, 2 * window / bins)
    return np.exp(-np.asarray(energy(jnp.asarray(points, jnp.float32)), np.float64) - log_z)


def histogram_density(key: Array, params: dict, num_samples: int, bins: int,
                      window: float = WINDOW) -> np.ndarray:
    """q on (-window, window)^2 as a normalised histogram of n = ``num_samples`` samples.

    Returns: ``[bins, bins]`` (rows = z2, columns = z1), counts / (n * cell area); samples
    outside the window are dropped, so it sums to q(window) / cell area.
    """
    n = _checks.integer(num_samples, "num_samples", 1)
    bins = _checks.integer(bins, "bins", 1)
    window = _positive(window, "window")
    z, _ = _sample_jit(key, params, num_samples=n)
    z = np.asarray(z)
    edges = np.linspace(-window, window, bins + 1)
    counts, _, _ = np.histogram2d(z[:, 1], z[:, 0], bins=[edges, edges])
    return counts / (n * (edges[1] - edges[0]) ** 2)
