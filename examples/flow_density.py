"""Planar and radial flows fitted to the four 2-D energies of Rezende & Mohamed (2015).

Reproduces Figure 3 of "Variational Inference with Normalizing Flows": a flow
q_K(z) = N(0, I) pushed through K planar (or radial) maps is fitted to each unnormalized
density p(z) ∝ exp(-U(z)) of the paper's Table 1 by minimizing the reverse KL

    KL(q || p) = E_q[log q(z) + U(z)] + log Z,    Z = ∫ exp(-U(z)) dz,

estimated with a minibatch of flow samples (only the forward pass is needed, the planar
and radial maps have no inverse). The flow parameters are free (not amortized), the base
is the fixed standard normal N(0, I). The energy is annealed as in the paper's
experiments, E_q[log q + beta_t U] with beta_t = min(1, 0.01 + t / 10000), and optimised
with Adam (cosine-decayed learning rate), 40k updates of 256 samples each. Every fit is
reported with the exact-ish KL in nats: E_q[log q + U] over --eval-samples flow samples
(with its Monte Carlo standard error) plus log Z by grid quadrature.

U2-U4 do not confine z1 (exp(-U) is not integrable over the plane; the paper only shows
the window (-4, 4)^2), so every energy gets the soft wall 0.5 ((|z1| - 4)_+ / 0.25)^2,
which is zero inside the window: the KL is then to a proper density (U1 is confined by
its ring anyway; the wall changes its Z by a negligible amount). log Z is a midpoint
sum over [-7, 7]^2 with spacing 0.01.

The figure has one row per energy: the true density exp(-U)/Z, then each flow's density
as a normalised 2-D histogram of --hist-samples flow samples, all on (-4, 4)^2 (each panel
on its own colour scale).

    python examples/flow_density.py --json benchmarks/results/flow_density/results.json
    python examples/flow_density.py --quick --out /tmp/flow_density_quick.png   # < 1 min

The first command (20 fits) takes about 4 minutes on 2 CPU cores.

(needs matplotlib: pip install -e '.[plots]').
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import jaxvae
from jaxvae import flows

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


def u1(z):
    """Ring with two lobes. ``z: [..., 2] -> [...]``."""
    z1 = z[..., 0]
    ring = 0.5 * ((jnp.linalg.norm(z, axis=-1) - 2) / 0.4) ** 2
    lobes = jnp.logaddexp(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)
    return ring - lobes


def u2(z):
    """Sine ridge. ``z: [..., 2] -> [...]``."""
    return 0.5 * ((z[..., 1] - _w1(z[..., 0])) / 0.4) ** 2


def u3(z):
    """Sine ridge and a second ridge bent by w2. ``z: [..., 2] -> [...]``."""
    z1, z2 = z[..., 0], z[..., 1]
    d = z2 - _w1(z1)
    return -jnp.logaddexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z1)) / 0.35) ** 2)


def u4(z):
    """Sine ridge and a second ridge shifted by w3. ``z: [..., 2] -> [...]``."""
    z1, z2 = z[..., 0], z[..., 1]
    d = z2 - _w1(z1)
    return -jnp.logaddexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z1)) / 0.35) ** 2)


ENERGIES = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def wall(z):
    """0.5 ((|z1| - 4)_+ / 0.25)^2: zero inside the window. ``z: [..., 2] -> [...]``."""
    return 0.5 * (jax.nn.relu(jnp.abs(z[..., 0]) - WINDOW) / WALL_SCALE) ** 2


def target_energy(name: str):
    """The fitted energy: Table 1's U plus the :func:`wall` (``[..., 2] -> [...]``)."""
    energy = ENERGIES[name]
    return lambda z: energy(z) + wall(z)


def grid(half: float, step: float):
    """Cell midpoints of [-half, half]^2: ``(centres [n], points [n, n, 2])`` with
    ``points[i, j] = (centres[j], centres[i])`` (z1 along columns, as in an image)."""
    n = int(round(2 * half / step))
    centres = -half + step * (np.arange(n) + 0.5)
    z1, z2 = np.meshgrid(centres, centres)
    return centres, np.stack([z1, z2], axis=-1)


def log_normalizer(energy, half: float = GRID_HALF, step: float = GRID_STEP) -> float:
    """log ∫ exp(-energy(z)) dz by the midpoint rule on [-half, half]^2 (in float64 numpy
    after a float32 energy, through a log-sum-exp)."""
    _, points = grid(half, step)
    neg = -np.asarray(jax.jit(energy)(jnp.asarray(points, jnp.float32)), np.float64)
    top = neg.max()
    return float(top + np.log(np.sum(np.exp(neg - top))) + 2 * np.log(step))


# ---------------------------------------------------------------- flows

def init_params(key, kind: str, k: int) -> dict:
    """Free flow parameters near the identity map.

    planar: ``{"u": [K, 2] = 0, "w": [K, 2] ~ N(0, 1), "b": [K] = 0}``;
    radial: ``{"z0": [K, 2] ~ N(0, 1), "alpha_raw": [K] = 0, "beta_raw": [K] = 0}``
    (beta = softplus(beta_raw) - softplus(alpha_raw) = 0: the identity).
    """
    if kind == "planar":
        return {"u": jnp.zeros((k, 2)), "w": jax.random.normal(key, (k, 2)),
                "b": jnp.zeros((k,))}
    if kind == "radial":
        return {"z0": jax.random.normal(key, (k, 2)), "alpha_raw": jnp.zeros((k,)),
                "beta_raw": jnp.zeros((k,))}
    raise ValueError(f"unknown flow {kind!r}; expected 'planar' or 'radial'")


def make_flow(params: dict):
    """N(0, I) pushed through the K maps in ``params`` (see :func:`init_params`)."""
    base = jaxvae.diag_gaussian(jnp.zeros(2), jnp.ones(2))
    if "u" in params:
        maps = [flows.Planar(u, w, b) for u, w, b in zip(params["u"], params["w"], params["b"])]
    else:
        maps = [flows.Radial(z0, a, b) for z0, a, b in
                zip(params["z0"], params["alpha_raw"], params["beta_raw"])]
    return flows.flow(base, maps)


def sample(params: dict, key, n: int):
    """``n`` flow samples and their log q: ``([n, 2], [n])``."""
    return make_flow(params).sample_and_log_prob(seed=key, sample_shape=(n,))


sample_jit = jax.jit(sample, static_argnums=2)


TARGETS = tuple(target_energy(name) for name in ENERGIES)


@functools.cache
def make_trainer(steps: int, lr: float, batch: int, anneal: int, chunk: int):
    """(tx, run): Adam with a cosine decay from ``lr`` over ``steps``, and a jitted
    ``run(params, opt_state, key, t0, energy_index) -> (params, opt_state, loss)`` taking
    ``chunk`` steps t0..t0+chunk-1 on E_q[log q + beta_t U] (a ``batch`` of samples per
    step, beta_t = min(1, 0.01 + t / anneal), 1 if ``anneal == 0``); steps t >= ``steps``
    of a last, partial chunk change nothing.

    The energy is picked by index inside the jitted function, so the four energies share
    one compilation per flow shape."""
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))

    def loss(params, key, beta, energy_index):
        z, log_q = sample(params, key, batch)
        u = jax.lax.switch(energy_index, TARGETS, z)
        return jnp.mean(log_q + beta * u)

    def one_step(carry, t):
        params, opt_state, key, energy_index = carry
        beta = 1.0 if anneal == 0 else jnp.minimum(1.0, 0.01 + t / anneal)
        value, grads = jax.value_and_grad(loss)(params, jax.random.fold_in(key, t), beta,
                                                energy_index)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        # the last chunk may run past ``steps``: those steps leave the state unchanged
        keep = lambda new, old: jnp.where(t < steps, new, old)
        params = jax.tree_util.tree_map(keep, new_params, params)
        opt_state = jax.tree_util.tree_map(keep, new_opt_state, opt_state)
        return (params, opt_state, key, energy_index), value

    @jax.jit
    def run(params, opt_state, key, t0, energy_index):
        (params, opt_state, _, _), values = jax.lax.scan(
            one_step, (params, opt_state, key, energy_index), t0 + jnp.arange(chunk))
        return params, opt_state, values[-1]

    return tx, run


def fit(name: str, kind: str, k: int, *, steps: int, batch: int, lr: float, anneal: int,
        seed: int, chunk: int = 250) -> tuple[dict, float]:
    """Fits a K-map flow to energy ``name`` (U1..U4, with the wall); returns (params,
    seconds, including compilation the first time a flow shape is seen)."""
    start = time.perf_counter()
    key_init, key_train = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(key_init, kind, k)
    energy_index = list(ENERGIES).index(name)
    chunk = min(chunk, steps)
    tx, run = make_trainer(steps, lr, batch, anneal, chunk)
    opt_state = tx.init(params)
    bar = tqdm(total=steps, desc=f"{name} {kind} K={k}", leave=False)
    for t0 in range(0, steps, chunk):
        params, opt_state, value = run(params, opt_state, key_train, t0, energy_index)
        bar.update(min(chunk, steps - t0))
        bar.set_postfix(loss=f"{float(value):.3f}")
    bar.close()
    jax.block_until_ready(params)
    return params, time.perf_counter() - start


def kl_estimate(params: dict, energy, log_z: float, key, n: int) -> tuple[float, float]:
    """KL(q || p) in nats from ``n`` flow samples: (mean, Monte Carlo standard error)."""
    z, log_q = sample_jit(params, key, n)
    terms = np.asarray(log_q + energy(z), np.float64) + log_z
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(n))


def histogram_density(params: dict, key, n: int, bins: int) -> np.ndarray:
    """q on the (-4, 4)^2 window as a normalised histogram of ``n`` samples:
    ``[bins, bins]`` (rows = z2, columns = z1), counts / (n * cell area)."""
    z, _ = sample_jit(params, key, n)
    z = np.asarray(z)
    edges = np.linspace(-WINDOW, WINDOW, bins + 1)
    counts, _, _ = np.histogram2d(z[:, 1], z[:, 0], bins=[edges, edges])
    return counts / (n * (edges[1] - edges[0]) ** 2)


# ---------------------------------------------------------------- figure

def true_density(energy, log_z: float, bins: int) -> np.ndarray:
    """exp(-U)/Z at the ``[bins, bins]`` cell midpoints of the window (rows = z2)."""
    _, points = grid(WINDOW, 2 * WINDOW / bins)
    return np.exp(-np.asarray(energy(jnp.asarray(points, jnp.float32)), np.float64) - log_z)


def save_figure(panels: dict, columns: list[str], path: str, title: str) -> str:
    """``panels[(energy, column)] = [bins, bins]`` images -> a PNG grid at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(ENERGIES)
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(1.9 * len(columns), 1.9 * len(rows) + 0.5))
    for i, name in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(panels[(name, column)], origin="lower", cmap="viridis",
                      extent=(-WINDOW, WINDOW, -WINDOW, WINDOW), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(column, fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=10)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- main

def _number(text: str, kind, low, inclusive: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not (value >= low if inclusive else value > low) \
            or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 1, True, "an integer >= 1")


def nonnegative_int(text: str) -> int:
    return _number(text, int, 0, True, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, False, "a finite number > 0")


def flow_list(text: str) -> list[tuple[str, int]]:
    """'planar:2,radial:8' -> [('planar', 2), ('radial', 8)]."""
    out = []
    for item in text.split(","):
        kind, _, k = item.partition(":")
        if kind not in ("planar", "radial") or not k.isdigit() or int(k) < 1:
            raise argparse.ArgumentTypeError(
                f"expected items like planar:8 or radial:32, got {item!r}")
        out.append((kind, int(k)))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="training steps per fit (default 40000; 400 with --quick)")
    parser.add_argument("--batch", type=positive_int, default=256)
    parser.add_argument("--lr", type=positive_float, default=5e-3,
                        help="peak Adam learning rate (cosine decay to 5%% of it)")
    parser.add_argument("--anneal", type=nonnegative_int, default=None,
                        help="steps over which beta goes from 0.01 to 1 (0: no annealing; "
                             "default: the paper's 10000, at most a quarter of --steps)")
    parser.add_argument("--flows", type=flow_list, default=None,
                        help="default planar:2,planar:8,planar:32,radial:8,radial:32 "
                             "(planar:2,planar:8 with --quick)")
    parser.add_argument("--energies", default="U1,U2,U3,U4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=positive_int, default=10000)
    parser.add_argument("--hist-samples", type=positive_int, default=500_000)
    parser.add_argument("--bins", type=positive_int, default=100)
    parser.add_argument("--out", default="docs/images/flow_density.png")
    parser.add_argument("--json", default=None, help="write the KL table here")
    parser.add_argument("--quick", action="store_true",
                        help="400 steps, planar K = 2 and 8 only, 100k histogram samples")
    args = parser.parse_args(argv)
    energies = args.energies.split(",")
    unknown = [e for e in energies if e not in ENERGIES]
    if unknown:
        parser.error(f"unknown energies {unknown}; expected some of {list(ENERGIES)}")
    args.energies = energies
    if args.steps is None:
        args.steps = 400 if args.quick else 40000
    if args.flows is None:
        args.flows = flow_list("planar:2,planar:8" if args.quick else
                               "planar:2,planar:8,planar:32,radial:8,radial:32")
    if args.anneal is None:
        args.anneal = min(10000, args.steps // 4)
    if args.quick:
        args.hist_samples = min(args.hist_samples, 100_000)
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    columns = ["true exp(-U)/Z"] + [f"{kind} K={k}" for kind, k in args.flows]
    panels, rows, log_zs = {}, [], {}
    print("| energy | flow | K | KL(q||p) nats | stderr | steps | seconds |\n"
          "| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for e, name in enumerate(args.energies):
        energy = target_energy(name)
        log_zs[name] = log_normalizer(energy)
        panels[(name, columns[0])] = true_density(energy, log_zs[name], args.bins)
        for kind, k in args.flows:
            params, seconds = fit(name, kind, k, steps=args.steps, batch=args.batch,
                                  lr=args.lr, anneal=args.anneal, seed=args.seed)
            key_eval, key_hist = jax.random.split(jax.random.PRNGKey(args.seed + 1000 + e))
            kl, stderr = kl_estimate(params, energy, log_zs[name], key_eval,
                                     args.eval_samples)
            panels[(name, f"{kind} K={k}")] = histogram_density(params, key_hist,
                                                                args.hist_samples, args.bins)
            rows.append({"energy": name, "flow": kind, "K": k, "kl_nats": kl,
                         "stderr": stderr, "steps": args.steps, "seconds": round(seconds, 2)})
            print(f"| {name} | {kind} | {k} | {kl:.3f} | {stderr:.3f} | {args.steps} | "
                  f"{seconds:.1f} |", flush=True)
    if len(args.energies) == len(ENERGIES):
        title = (f"Rezende & Mohamed (2015), Fig. 3: flows fitted by reverse KL "
                 f"({args.steps} steps, base N(0, I)) to p ∝ exp(-U) on (-4, 4)^2\n"
                 f"flow densities: normalised histograms of {args.hist_samples:,} samples; "
                 f"each panel on its own colour scale")
        print(f"wrote {save_figure(panels, columns, args.out, title)}")
    else:
        print("no figure: it needs all four energies")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        result = {"args": dict(vars(args)),
                  "log_z": log_zs,
                  "wall": f"0.5 ((|z1| - {WINDOW})_+ / {WALL_SCALE})^2",
                  "log_z_grid": f"midpoint rule on [-{GRID_HALF}, {GRID_HALF}]^2, "
                                f"spacing {GRID_STEP}",
                  "rows": rows,
                  "seconds": "wall time of each fit; compilation is included for the "
                             "first energy only (the energies share one per flow shape)",
                  "total_seconds": round(time.perf_counter() - start, 1)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
