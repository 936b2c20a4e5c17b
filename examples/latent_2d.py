"""What each half of the ELBO does to a 2-D latent space: one network, three objectives.

The same MLP (784-500-2-500-784, tanh, Bernoulli pixels; :func:`jaxvae.kingma_welling_mlp`
with ``latent_dim=2``) is trained from the same initial parameters, with the same batches
and optimizer, on :func:`jaxvae.make_weighted_elbo_loss` with three weightings of
-(a E_q[log p(x|z)] - b KL(q(z|x) || p(z))):

* ``reconstruction only`` (a, b) = (1, 0): an autoencoder with noisy codes. Nothing ties
  q(z|x) to the prior, so the codes spread far outside N(0, I) and the posterior std
  shrinks towards 0 to make the noise harmless: classes in clusters or arms with empty
  space between them, where the decoder has seen no code.
* ``KL only`` (0, 1): every q(z|x) becomes the prior, KL -> 0: all posterior means at 0
  with std 1, the same code distribution for every image, so nothing tells the classes
  apart (the panel shows a single dot at the origin).
* ``both`` (1, 1): the ELBO. Classes still separate, packed into the region where
  N(0, I) has its mass, with posterior stds between the two extremes.

Writes OUT/latent_2d.png: one scatter panel per setting of the test images' posterior
means E_q[z|x], coloured by digit, with the circles of radius 1 and 2 of N(0, I) for scale
and the setting's test numbers in the title; and prints a markdown table:

* ``E_q log p(x|z)``: the reconstruction term, nats per image (higher is better);
* ``KL``: KL(q(z|x) || N(0, I)), nats per image;
* ``ELBO``: their difference, a lower bound on log p(x) whatever the training weights;
* ``spread of the codes``: the standard deviation of the posterior means along each axis
  (near 1 for codes that fill the prior; far above 1: the prior is ignored);
* ``mean posterior std``: the average standard deviation of q(z|x) over images and axes
  (1 = the prior's own, i.e. no information; near 0 = nearly deterministic codes).

All terms on the test images, binarized once with a fixed seed (training uses dynamic
binarization), with ``--eval-k`` draws of z per image for E_q log p(x|z).

    python examples/latent_2d.py                  # 2000 steps each, docs/images/latent/
    python examples/latent_2d.py --steps 5000 --json /tmp/latent_2d.json
    python examples/latent_2d.py --quick --out /tmp/latent_2d       # ~20 s smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxvae

#: the three weightings (a, b) of E_q log p(x|z) and KL
SETTINGS = {"reconstruction only": (1.0, 0.0), "KL only": (0.0, 1.0), "both": (1.0, 1.0)}
QUICK = {"steps": 20, "hidden": 64, "test_limit": 200, "eval_k": 2}
FULL = {"steps": 2000, "hidden": 500, "test_limit": None, "eval_k": 10}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded", help="data set (default: embedded MNIST)")
    parser.add_argument("--steps", type=int, default=None, help="default 2000 (20 with --quick)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden width (default 500)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--eval-k", type=int, default=None,
                        help="draws of z per test image for E_q log p(x|z) (default 10)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="first N test images (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/images/latent", help="folder for latent_2d.png")
    parser.add_argument("--json", default=None, help="write the printed numbers here")
    parser.add_argument("--quick", action="store_true", help="smoke run, about 20 s")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for flag in ("steps", "hidden", "batch_size", "eval_k"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.test_limit is not None and args.test_limit < 2:
        parser.error("--test-limit must be >= 2")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be finite and > 0")
    try:
        args.train = jaxvae.data.load(args.data, "train")
        args.test = jaxvae.data.load(args.data, "test")
    except jaxvae.DataError as err:
        parser.error(str(err))
    if tuple(args.train.images.shape[1:]) != (28, 28) or args.test.labels is None:
        parser.error(f"--data {args.data}: this example needs labelled 28x28 images, got "
                     f"{tuple(args.train.images.shape[1:])}"
                     f"{'' if args.test.labels is not None else ' without labels'}")
    return args


def train(model, loss, params, images, args, progress: bool):
    """Adam on ``loss`` with dynamic binarization; the final parameters."""
    tx = optax.adam(args.lr)
    step = jaxvae.make_train_step(loss, tx, preprocess=jaxvae.data.dynamic_binarization)
    state = jaxvae.create_train_state(params, tx, jax.random.PRNGKey(args.seed))
    state = jaxvae.fit(state, step, images, batch_size=args.batch_size, num_epochs=1,
                       num_steps=args.steps, seed=args.seed, progress=progress)
    return state.params


def posterior_moments(model, params, x):
    """Mean and standard deviation of q(z|x) for each row: ``[N, 2]`` each (numpy)."""

    def moments(p, images):
        bound = jaxvae.bind(model, p)
        return jax.vmap(lambda xi: (bound.posterior(xi).mean(),
                                    bound.posterior(xi).stddev()))(images)

    mean, std = jax.jit(moments)(params, jnp.asarray(x))
    return np.asarray(mean), np.asarray(std)


def evaluate(model, params, x, eval_k: int, seed: int) -> dict:
    """Test terms (nats per image) and the spread of the codes."""
    loss = jaxvae.make_weighted_elbo_loss(model, 1.0, 1.0, num_samples=eval_k)
    _, info = jax.jit(loss)(params, jnp.asarray(x), jax.random.PRNGKey(seed + 2))
    mean, std = posterior_moments(model, params, x)
    return {"reconstruction": float(info["reconstruction"]), "kl": float(info["kl"]),
            "elbo": float(info["elbo"]), "spread": np.std(mean, axis=0).tolist(),
            "posterior_std": float(np.mean(std)), "codes": mean}


def save_figure(results: dict, labels, path: str, title: str) -> str:
    """One scatter panel per setting; the panels whose codes have a similar scale share
    their axis limits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reach = {name: max(3.5, 1.05 * float(np.max(np.abs(r["codes"]))))
             for name, r in results.items()}
    smallest = min(reach.values())
    shared = max(v for v in reach.values() if v <= 2 * smallest)
    fig, axes = plt.subplots(1, len(results), figsize=(15, 5.4))
    circle = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, r) in zip(axes, results.items()):
        codes = r["codes"]
        for digit in range(10):
            pick = labels == digit
            ax.scatter(codes[pick, 0], codes[pick, 1], s=3, color=plt.cm.tab10(digit),
                       label=str(digit), alpha=0.7, linewidths=0)
        for radius in (1, 2):
            ax.plot(radius * np.cos(circle), radius * np.sin(circle), "k--", lw=0.8)
        lim = reach[name] if reach[name] > 2 * smallest else shared
        ax.text(0.02, 0.02, f"mean posterior std {r['posterior_std']:.3g}\nspread of the "
                f"means {r['spread'][0]:.2g}, {r['spread'][1]:.2g}", transform=ax.transAxes,
                fontsize=8, va="bottom")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="z1", ylabel="z2")
        a, b = SETTINGS[name]
        scale = "" if lim == shared else ", own axis scale"
        ax.set_title(f"{name} (a={a:g}, b={b:g}{scale})\nELBO {r['elbo']:.1f} = "
                     f"E log p(x|z) {r['reconstruction']:.1f} - KL {r['kl']:.2f} nats",
                     fontsize=10)
    axes[-1].legend(title="digit", markerscale=4, fontsize=8, loc="upper left",
                    bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    args, start = parse_args(argv), time.perf_counter()
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    images = args.train.images
    test_grey = args.test.images[:args.test_limit]
    labels = np.asarray(args.test.labels[:args.test_limit])
    x_test = jaxvae.binarize_fixed(test_grey, seed=args.seed)
    model = jaxvae.kingma_welling_mlp(event_shape=(28, 28), latent_dim=2, hidden=args.hidden,
                                      output_bias_init=jaxvae.mean_logit_init(images.mean(0)))
    init = model.init_params(jax.random.PRNGKey(args.seed))
    results = {}
    for name, (a, b) in SETTINGS.items():
        loss = jaxvae.make_weighted_elbo_loss(model, a, b)
        params = train(model, loss, init, images, args, not args.no_progress)
        results[name] = evaluate(model, params, x_test, args.eval_k, args.seed)

    print(f"2-D latent, 784-{args.hidden}-2 tanh MLP, {args.steps} steps of Adam "
          f"(batch {args.batch_size}, lr {args.lr:g}), {len(x_test)} test images, "
          f"E_q with {args.eval_k} draws")
    print("| setting | E_q log p(x|z) | KL | ELBO | spread of the codes (z1, z2) | "
          "mean posterior std |\n" + "| --- " * 6 + "|")
    for name, r in results.items():
        print(f"| {name} | {r['reconstruction']:.2f} | {r['kl']:.3f} | {r['elbo']:.2f} | "
              f"{r['spread'][0]:.3f}, {r['spread'][1]:.3f} | {r['posterior_std']:.4f} |")
    title = (f"test posterior means E_q[z|x] of {len(x_test)} images, one 784-{args.hidden}-2 "
             f"MLP trained {args.steps} steps on -(a E_q log p(x|z) - b KL); dashed: radius "
             f"1 and 2 of N(0, I)")
    path = save_figure(results, labels, os.path.join(args.out, "latent_2d.png"), title)
    print(f"wrote {path}")
    seconds = round(time.perf_counter() - start, 1)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        kept = {k: v for k, v in vars(args).items() if k not in ("train", "test")}
        summary = {name: {k: v for k, v in r.items() if k != "codes"}
                   for name, r in results.items()}
        with open(args.json, "w") as f:
            json.dump({"args": kept, "units": "nats per test image", "settings": summary,
                       "seconds": seconds}, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {seconds} s")
    return results


if __name__ == "__main__":
    main()
