"""EM against a VAE trained on the ELBO, on probabilistic PCA where log p(x) is exact.

The data: N = 500 points in D = 10 dimensions from a random PPCA model with d = 3 latent
dimensions and fixed noise sigma = 0.5 (W_true and b_true with N(0, 1) entries, x = W_true z
+ b_true + sigma eps, z and eps standard normal; all drawn from --seed). From the same random
start (W0, b0 with N(0, 1) entries) we run (a) EM (jaxvae.models.ppca_em: exact posterior
E-step, closed-form M-step) and (b) jaxvae.models.LinearGaussianVAE with the same decoder and
sigma, its linear diagonal-Gaussian encoder and decoder trained jointly by full-batch Adam
on the ELBO (one reparameterized sample, analytic KL), for the same number of steps; and
(c) the closed-form maximum-likelihood solution with sigma fixed (Tipping & Bishop, 1999).
After every step the exact log p(x) per example of both decoders is recorded, and the VAE's
exact ELBO, log p(x) - KL(q(z|x) || p(z|x)). EM never decreases log p(x) and converges to
the ML value; the VAE's diagonal posterior can be exact only when W has orthogonal columns,
which the ELBO's global optimum has (Lucas, Tucker, Grosse & Norouzi, 2019, Don't Blame the
ELBO!), so it approaches ML as well, more slowly. The figure (matplotlib) shows log p(x) and
the gap to ML against the step, on log scales.

    python examples/em_vs_vae.py              # 5000 steps: docs/images/latent/em_vs_vae.png
    python examples/em_vs_vae.py --json /tmp/em_vs_vae.json   # and every curve as JSON
    python examples/em_vs_vae.py --quick --out /tmp/em_vs_vae_quick.png     # < 15 s
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxvae
from jaxvae.models import (
    LinearGaussianVAE,
    ppca_em,
    ppca_log_likelihood,
    ppca_maximum_likelihood,
)

DATA_DIM, LATENT_DIM, SIGMA, NUM_POINTS = 10, 3, 0.5, 500


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None,
                        help="EM iterations = Adam steps (default 5000; 200 with --quick)")
    parser.add_argument("--lr", type=float, default=0.03,
                        help="peak Adam learning rate, cosine-decayed to 1%% of it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/images/latent/em_vs_vae.png")
    parser.add_argument("--json", default=None, help="write the numbers here")
    parser.add_argument("--quick", action="store_true", help="200 steps")
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (200 if args.quick else 5000)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be finite and > 0")
    return args


def make_data(seed: int):
    """The data ``x: [N, D]`` and a random start ``(W0: [D, d], b0: [D])``, float64."""
    rng = np.random.default_rng(seed)
    W_true, b_true = rng.normal(size=(DATA_DIM, LATENT_DIM)), rng.normal(size=DATA_DIM)
    z = rng.normal(size=(NUM_POINTS, LATENT_DIM))
    x = z @ W_true.T + b_true + SIGMA * rng.normal(size=(NUM_POINTS, DATA_DIM))
    return x, rng.normal(size=(DATA_DIM, LATENT_DIM)), rng.normal(size=DATA_DIM)


def train_vae(x, W0, b0, steps: int, lr: float, seed: int):
    """Adam on the ELBO from decoder (W0, b0); returns the parameters after every step,
    stacked along a leading axis ``[steps + 1, ...]`` (step 0 is the start)."""
    model = LinearGaussianVAE(DATA_DIM, LATENT_DIM, SIGMA)
    rng = np.random.default_rng(seed + 1)      # the encoder as model.init_params draws it
    encoder = {"A": 0.3 * rng.normal(size=(LATENT_DIM, DATA_DIM)),
               "c": 0.3 * rng.normal(size=LATENT_DIM),
               "log_scale": 0.3 * rng.normal(size=LATENT_DIM)}
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), {"params": {
        "encoder": encoder, "decoder": {"W": W0, "b": b0}}})
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))
    loss = jaxvae.make_loss(model, "elbo", 1, analytic_kl=True)
    step = jaxvae.make_train_step(loss, tx)
    state = jaxvae.create_train_state(params, tx, jax.random.key(seed))
    batch = jnp.asarray(x, jnp.float32)
    trajectory = [jax.device_get(state.params)]
    for _ in range(steps):
        state, _ = step(state, batch)
        trajectory.append(jax.device_get(state.params))
    return model, jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trajectory)


def vae_curves(model, trajectory, x):
    """Exact log p(x) and ELBO per example (nats, float64) at every stored step."""

    def at(params):
        dec = params["params"]["decoder"]
        log_px = ppca_log_likelihood(dec["W"], dec["b"], SIGMA, x)
        kl = jax.vmap(model.kl_to_posterior, (None, 0))(params, x)
        return log_px, log_px - jnp.mean(kl)

    with jax.enable_x64(True):
        trajectory = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), trajectory)
        log_px, elbo = jax.jit(jax.vmap(at))(trajectory)
        return np.asarray(log_px), np.asarray(elbo)


def save_figure(curves: dict, ml: float, path: str, title: str) -> str:
    """``curves[label] = [steps + 1]`` log p(x) values -> two panels: values and gap to ML."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"EM log p(x)": "C0-", "VAE log p(x)": "C1-", "VAE ELBO": "C1--"}
    for label, values in curves.items():
        steps = np.arange(1, len(values) + 1)
        left.plot(steps, values, styles[label], label=label)
        right.plot(steps, np.maximum(ml - values, 1e-12), styles[label], label=label)
    left.axhline(ml, color="k", lw=0.8, ls=":", label="ML (closed form)")
    low = min(curves["EM log p(x)"][0], curves["VAE log p(x)"][0])   # the ELBO starts lower
    left.set(xscale="log", ylim=(low - 0.1 * (ml - low) - 0.05, ml + 0.05 * (ml - low) + 0.02),
             xlabel="step + 1 (EM iterations, Adam steps)", ylabel="nats per example")
    right.set(xscale="log", yscale="log", xlabel="step + 1",
              ylabel="ML log p(x) - value (nats per example)")
    right.set_title("gap to ML (gaps below 1e-12, i.e. float64 rounding, drawn at 1e-12)",
                    fontsize=9)
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    args, start = parse_args(argv), time.perf_counter()
    x, W0, b0 = make_data(args.seed)
    with jax.enable_x64(True):
        W_ml, b_ml = ppca_maximum_likelihood(x, LATENT_DIM, SIGMA)
        ml = float(ppca_log_likelihood(W_ml, b_ml, SIGMA, x))
        em = np.asarray(ppca_em(W0, b0, SIGMA, x, args.steps)[2])
    model, trajectory = train_vae(x, W0, b0, args.steps, args.lr, args.seed)
    vae_log_px, vae_elbo = vae_curves(model, trajectory, x)
    curves = {"EM log p(x)": em, "VAE log p(x)": vae_log_px, "VAE ELBO": vae_elbo}
    print("| method | final log p(x) | gap to ML (nats) | steps |\n" + "| --- " * 4 + "|")
    print(f"| ML (closed form) | {ml:.6f} | 0 | - |")
    for label, values in curves.items():
        print(f"| {label.replace(' log p(x)', '')} | {values[-1]:.6f} | {ml - values[-1]:.2e} "
              f"| {args.steps} |")
    title = (f"PPCA, D={DATA_DIM}, d={LATENT_DIM}, sigma={SIGMA} fixed, N={NUM_POINTS}: "
             f"EM vs a linear VAE (Adam, lr {args.lr:g}, ELBO with 1 sample + analytic KL), "
             f"same start")
    print(f"wrote {save_figure(curves, ml, args.out, title)}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        result = {"args": vars(args), "ml_log_px": ml, "units": "nats per example",
                  "final": {label: float(values[-1]) for label, values in curves.items()},
                  "curves": {label: values.tolist() for label, values in curves.items()},
                  "seconds": round(time.perf_counter() - start, 1)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
