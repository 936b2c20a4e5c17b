"""An autoencoder, a denoising autoencoder and a VAE on the same networks: what the KL buys.

One architecture (784-500-16-500-784, tanh, Bernoulli pixels; :func:`jaxvae.kingma_welling_mlp`
with ``latent_dim=16``) trained three ways from the same initial parameters, with the same
batches, optimizer and number of steps (training images dynamically binarized):

* ``AE``: :func:`jaxvae.make_autoencoder_loss`, -log p(x | z = mu(x)) with mu(x) the
  encoder's mean (its scale gets no gradient and is never used);
* ``denoising AE``: the same with masking noise, -log p(x | z = mu(x~)), each input pixel
  zeroed with probability ``--mask`` (0.5) and the clean x as the target;
* ``VAE``: the ELBO, :func:`jaxvae.make_weighted_elbo_loss` with weights (1, 1).

Printed (two markdown tables; nats per image, on the test images binarized once with a
fixed seed):

* ``reconstruction`` -log p(x | z = E_q[z|x]): the same measure for all three, the
  decoder's Bernoulli cross-entropy at the code of x (lower is better). The AE optimizes
  exactly this; the VAE pays for its noisy codes and its KL with a higher value. The
  denoising AE learns to encode inputs with a share ``--mask`` of their pixels zeroed and is
  tested, like the others, on clean inputs, which carry more ink than any it was trained
  on; its error on clean images can be well above the plain AE's (its reconstructions in
  the interpolation figure are bolder than the inputs).
* ``spread`` of the codes: the standard deviation of the posterior means along each latent
  axis, as the mean over the axes and the largest. The KL pulls the VAE's codes towards
  N(0, I) (spread near 1; units left unused, which carry no information, near 0); nothing
  fixes the scale of an AE's codes, which is what its samples from N(0, I) show.
* ``interpolation``: for ``--pairs`` random pairs of test images, the ``--path`` points
  of the straight line (:func:`jaxvae.lerp`) between their codes are decoded, and
  :func:`jaxvae.latent.path_smoothness` measures the path: ``ratio`` = the total change
  along the path / the change between its ends (1 = every pixel moves monotonically, no
  detour through unrelated images; larger = a detour) and ``largest step share`` = the
  largest single step / the total (1/(T-1) = 0.111 for ten evenly changing points; near 1
  = a sudden jump). Means over the pairs.
* samples: an AE has no prior. Its stand-in is a full-covariance Gaussian fitted to the
  codes of the training images (numpy mean and covariance, drawn with a Cholesky factor);
  codes drawn from N(0, I) instead show why it is needed. The VAE is sampled from its
  prior N(0, I) (and, for comparison, from the Gaussian fitted to its codes). Each image
  is the decoder mean. :func:`jaxvae.latent.copy_check` gives each sample's distance (RMS
  over pixels) to its nearest training image, and the same for held-out test images:
  ``ratio`` = samples' median / test images' median. About 1: the samples lie as close to
  the training images as new digits do; well above 1: off the data (blurred blends or
  noise); well below 1: copies of training images. An RMS distance is lenient with faint,
  blurred images (a grey blur is moderately close to many digits), so ``sharpness``, the
  samples' mean gradient energy (:func:`jaxvae.image_metrics.gradient_energy`) divided by
  the test images', is printed beside it: decoder means are blurrier than data (below 1),
  and codes where the decoder has seen no training code decode to faint blurs (far below).
  Read the two together, and look at the figure.

Figures: OUT/ae_vs_vae_samples.png (rows: models; columns: the Gaussian fitted to the
training codes, then N(0, I)) and OUT/ae_vs_vae_interpolations.png (the first three test
pairs interpolated by each model).

    python examples/ae_vs_vae.py                   # 2000 steps each, docs/images/latent/
    python examples/ae_vs_vae.py --mask 0.25 --json /tmp/ae_vs_vae.json
    python examples/ae_vs_vae.py --quick --out /tmp/ae_vs_vae       # ~20 s smoke run
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
from jaxvae import image_metrics, latent, plots

QUICK = {"steps": 20, "hidden": 64, "test_limit": 200, "train_limit": 2000, "samples": 32,
         "pairs": 6}
FULL = {"steps": 2000, "hidden": 500, "test_limit": None, "train_limit": None, "samples": 200,
        "pairs": 20}
MODELS = ("AE", "denoising AE", "VAE")
SHOWN_PAIRS = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded", help="data set (default: embedded MNIST)")
    parser.add_argument("--steps", type=int, default=None, help="default 2000 (20 with --quick)")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=None, help="hidden width (default 500)")
    parser.add_argument("--mask", type=float, default=0.5,
                        help="masking probability of the denoising AE")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--samples", type=int, default=None, help="samples per set (200)")
    parser.add_argument("--pairs", type=int, default=None, help="interpolated pairs (20)")
    parser.add_argument("--path", type=int, default=10, help="points per interpolation")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="first N test images (default all)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training images (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/images/latent", help="folder for the figures")
    parser.add_argument("--json", default=None, help="write the printed numbers here")
    parser.add_argument("--quick", action="store_true", help="smoke run, about 20 s")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for flag, low in (("steps", 1), ("latent_dim", 1), ("hidden", 1), ("batch_size", 1),
                      ("samples", 1), ("pairs", SHOWN_PAIRS), ("path", 2)):
        if getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be >= {low}")
    for flag in ("test_limit", "train_limit"):
        if getattr(args, flag) is not None and getattr(args, flag) < 2 * args.pairs:
            parser.error(f"--{flag.replace('_', '-')} must be >= 2 * --pairs")
    if not 0.0 <= args.mask < 1.0:
        parser.error(f"--mask must be a probability in [0, 1), got {args.mask}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be finite and > 0")
    try:
        train = jaxvae.data.load(args.data, "train")
        test = jaxvae.data.load(args.data, "test")
    except jaxvae.DataError as err:
        parser.error(str(err))
    if tuple(train.images.shape[1:]) != tuple(test.images.shape[1:]):
        parser.error(f"--data {args.data}: train and test images differ in shape")
    labels = None if test.labels is None else np.asarray(test.labels[:args.test_limit])
    return args, train.images[:args.train_limit], test.images[:args.test_limit], labels


def train(model, loss, params, images, args, progress: bool):
    """Adam on ``loss`` with dynamic binarization; the final parameters."""
    tx = optax.adam(args.lr)
    step = jaxvae.make_train_step(loss, tx, preprocess=jaxvae.data.dynamic_binarization)
    state = jaxvae.create_train_state(params, tx, jax.random.PRNGKey(args.seed))
    state = jaxvae.fit(state, step, images, batch_size=args.batch_size, num_epochs=1,
                       num_steps=args.steps, seed=args.seed, progress=progress)
    return state.params


def fitted_gaussian(codes, eps):
    """Draws mu + L eps of the full-covariance Gaussian fitted to ``codes: [N, d]``;
    ``eps: [S, d]`` standard normal. Returns float32 ``[S, d]``."""
    codes = np.asarray(codes, np.float64)
    mean, cov = codes.mean(0), np.cov(codes, rowvar=False).reshape(codes.shape[1], -1)
    jitter = 1e-6 * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    chol = np.linalg.cholesky(cov + jitter * np.eye(cov.shape[0]))
    return jnp.asarray(mean + np.asarray(eps, np.float64) @ chol.T, jnp.float32)


def show(ax, images, ncols: int, title: str) -> None:
    """A grid of images in [0, 1] on ``ax``."""
    ax.imshow(plots.image_grid(np.clip(np.asarray(images), 0, 1), ncols), cmap="gray",
              vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def save_samples_figure(sets: dict, path: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(MODELS), 2, figsize=(11, 10))
    for (model, source), s in sets.items():
        column = 0 if source.startswith("Gaussian fitted") else 1
        show(axes[MODELS.index(model), column], s["images"][:32], 8,
             f"{model}, z ~ {source}: NN ratio {s['ratio']:.2f}, sharpness "
             f"{s['sharpness']:.2f}")
    import textwrap

    fig.suptitle(textwrap.fill(title, 130), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_paths_figure(paths: dict, pair_labels, path: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(SHOWN_PAIRS, 1, figsize=(8, 2.3 * SHOWN_PAIRS))
    for p, ax in enumerate(axes):
        rows = np.concatenate([paths[m][p] for m in MODELS])
        show(ax, rows, paths[MODELS[0]].shape[1],
             f"test pair {p + 1}: digit {pair_labels[p][0]} -> {pair_labels[p][1]}")
        height = rows.shape[1] + 1
        ax.set_yticks([height * (i + 0.5) for i in range(len(MODELS))], MODELS, fontsize=8)
    import textwrap

    fig.suptitle(textwrap.fill(title, 130), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    start = time.perf_counter()
    args, train_grey, test_grey, test_labels = parse_args(argv)
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    event = tuple(train_grey.shape[1:])
    x_train = jaxvae.binarize_fixed(train_grey, seed=args.seed)
    x_test = jaxvae.binarize_fixed(test_grey, seed=args.seed + 1)
    model = jaxvae.kingma_welling_mlp(event_shape=event, latent_dim=args.latent_dim,
                                      hidden=args.hidden,
                                      output_bias_init=jaxvae.mean_logit_init(train_grey.mean(0)))
    init = model.init_params(jax.random.PRNGKey(args.seed))
    losses = {"AE": jaxvae.make_autoencoder_loss(model),
              "denoising AE": jaxvae.make_autoencoder_loss(model, "mask", args.mask),
              "VAE": jaxvae.make_weighted_elbo_loss(model, 1.0, 1.0)}
    reconstruction = jax.jit(jaxvae.make_autoencoder_loss(model))
    elbo = jax.jit(jaxvae.make_weighted_elbo_loss(model, 1.0, 1.0, num_samples=10))

    rng = np.random.default_rng(args.seed)
    pairs = rng.choice(len(x_test), size=(args.pairs, 2), replace=False)
    key_fit, key_prior = jax.random.split(jax.random.PRNGKey(args.seed + 3))
    eps = jax.random.normal(key_fit, (args.samples, args.latent_dim))
    key = jax.random.PRNGKey(args.seed + 4)
    reference = test_grey[:max(args.samples, 500)]
    test_sharpness = float(np.mean(image_metrics.gradient_energy(reference)))
    models, sets, paths = {}, {}, {}
    for name in MODELS:
        params = train(model, losses[name], init, train_grey, args, not args.no_progress)
        codes_test = np.asarray(latent.encode(model, params, x_test))
        spread = np.std(codes_test, axis=0)
        r = {"reconstruction": float(reconstruction(params, jnp.asarray(x_test), key)[0]),
             "spread_mean": float(np.mean(spread)), "spread_max": float(np.max(spread))}
        if name == "VAE":
            info = elbo(params, jnp.asarray(x_test), key)[1]
            r.update(elbo=float(info["elbo"]), kl=float(info["kl"]))
        z0, z1 = codes_test[pairs[:, 0]], codes_test[pairs[:, 1]]
        z_path = jnp.concatenate([jaxvae.lerp(a, b, args.path) for a, b in zip(z0, z1)])
        decoded = np.asarray(latent.decode(model, params, z_path)).reshape(
            args.pairs, args.path, *event)
        smooth = [latent.path_smoothness(p) for p in decoded]
        r["path_ratio"] = float(np.mean([s["ratio"] for s in smooth]))
        r["largest_step_share"] = float(np.mean([s["largest_step_share"] for s in smooth]))
        models[name], paths[name] = r, decoded[:SHOWN_PAIRS]

        codes_train = latent.encode(model, params, x_train)
        z_sets = {"Gaussian fitted to training codes": fitted_gaussian(codes_train, eps),
                  "N(0, I)" + (" (its prior)" if name == "VAE" else ""):
                      jax.random.normal(key_prior, (args.samples, args.latent_dim))}
        for source, z in z_sets.items():
            images = np.asarray(latent.decode(model, params, z))
            check = latent.copy_check(images, train_grey, reference)
            sharpness = float(np.mean(image_metrics.gradient_energy(images))) / test_sharpness
            sets[(name, source)] = {**check, "sharpness": sharpness, "images": images}

    print(f"{int(np.prod(event))}-{args.hidden}-{args.latent_dim} tanh MLPs, {args.steps} "
          f"steps of Adam each (batch {args.batch_size}, lr {args.lr:g}), same start and batches; "
          f"{len(x_test)} test images; denoising: mask {args.mask:g}")
    print("| model | reconstruction -log p(x|z=mean) | spread of the codes (mean, max) | "
          f"path ratio ({args.pairs} pairs) | largest step share |\n" + "| --- " * 5 + "|")
    for name, r in models.items():
        extra = f" (ELBO {r['elbo']:.2f}, KL {r['kl']:.2f})" if name == "VAE" else ""
        print(f"| {name} | {r['reconstruction']:.2f}{extra} | {r['spread_mean']:.3f}, "
              f"{r['spread_max']:.3f} | {r['path_ratio']:.3f} | "
              f"{r['largest_step_share']:.3f} |")
    print()
    print("| model | z drawn from | samples' median NN distance | test images' median NN "
          "distance | ratio | sharpness (samples / test) |\n" + "| --- " * 6 + "|")
    for (name, source), s in sets.items():
        print(f"| {name} | {source} | {s['samples_median']:.4f} | {s['reference_median']:.4f} "
              f"| {s['ratio']:.3f} | {s['sharpness']:.3f} |")

    os.makedirs(args.out, exist_ok=True)
    title = (f"decoder means of {args.latent_dim}-d codes ({args.steps} steps); NN ratio = "
             f"median distance to the nearest training image, samples / test images; "
             f"sharpness = gradient energy, samples / test images")
    wrote = [save_samples_figure(sets, os.path.join(args.out, "ae_vs_vae_samples.png"), title)]
    labels = ([(int(test_labels[i]), int(test_labels[j])) for i, j in pairs] if test_labels
              is not None else [("?", "?")] * args.pairs)
    title = (f"decoded straight lines between the codes of two test images, {args.path} "
             f"points; rows: {', '.join(MODELS)}")
    wrote.append(save_paths_figure(paths, labels, os.path.join(
        args.out, "ae_vs_vae_interpolations.png"), title))
    print(f"wrote {' and '.join(wrote)}")
    seconds = round(time.perf_counter() - start, 1)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        samples = [{"model": name, "z": source,
                    **{k: v for k, v in s.items() if k != "images"}}
                   for (name, source), s in sets.items()]
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "units": "nats per test image; RMS pixel distances",
                       "models": models, "samples": samples, "seconds": seconds}, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {seconds} s")
    return models, sets


if __name__ == "__main__":
    main()
