"""A tour of one VAE's latent space: traversals, attribute vectors, analogies, copies.

One VAE (784-500-16-500-784, tanh, Bernoulli pixels; :func:`jaxvae.kingma_welling_mlp`)
is trained on the ELBO, and then:

(a) OUT/traversal.png: the 6 latent units with the largest KL (:func:`jaxvae.kl_per_dimension`,
    the units that carry the most information) are set in turn to -3 ... 3 (9 values) in
    the posterior mean of one test image, the other units kept
    (:func:`jaxvae.latent.traversal_grid`). Units with KL near 0 are unused: the decoder
    ignores them.
(b) OUT/attributes.png: attribute vectors (White, 2016), each the difference of the mean
    codes of two groups of training images (:func:`jaxvae.latent.attribute_vector`):
    ``thickness``, the top minus the bottom 20 % by measured stroke thickness
    (:func:`jaxvae.image_metrics.stroke_thickness`, in pixels); ``slant``, the top minus the
    bottom 20 % by measured slant (:func:`jaxvae.image_metrics.slant`, columns per row,
    positive leaning right "/"); ``7 - 1``, the images of digit 7 minus those of digit 1.
    Each is added with :func:`jaxvae.latent.edit` at amounts -2 ... 2 to a few test images
    (rows). The check, printed: the measured attribute of the decoded images at amounts
    -2, 0 (the reconstruction) and +2, averaged over ``--measure`` test images; it should
    change monotonically, in the direction of the vector. For ``7 - 1`` the measure is the
    share of decoded images whose nearest class mean (of the training images, in pixels)
    is a 7.
(c) OUT/analogies.png: "a is to b as ? is to c", decode(z_a - z_b + z_c)
    (:func:`jaxvae.latent.analogy`), e.g. a thick 3 minus a thin 3 plus a thin 5 should
    give a thick 5. a, b, c are test images chosen by their measured attributes: a at the
    0.95 (or 0.05) quantile of its digit; b from the opposite 10 % of the same digit (for
    slant, the 10 % most upright), the one closest to a in the other attribute; c from the
    same tail of the other digit, closest to b in the other attribute. The printed table
    gives the attribute of a, b, c's reconstruction and the result: the result should move
    from c's value by about a - b. One pair of images carries more than the attribute (its
    two writers differ in other ways as well), so single analogies are noisy: some
    triples transfer the attribute and keep c's digit, others change the digit.
(d) OUT/neighbours.png and a printed :func:`jaxvae.latent.copy_check` of 64 prior samples
    (decoder means) against the training images, with test images as the reference:
    a ratio (samples' median nearest-training distance / test images') well below 1
    would mean copied training images; about 1 or above (blurrier than data) is the usual.
    The figure shows 8 samples above their nearest training images.

    python examples/latent_lab.py                  # 4000 steps, docs/images/latent/
    python examples/latent_lab.py --latent-dim 32 --json /tmp/latent_lab.json
    python examples/latent_lab.py --quick --out /tmp/latent_lab      # ~20 s smoke run
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

QUICK = {"steps": 20, "hidden": 64, "test_limit": 200, "train_limit": 2000, "measure": 4}
FULL = {"steps": 4000, "hidden": 500, "test_limit": None, "train_limit": None, "measure": 200}
TRAVERSED_UNITS, TRAVERSAL = 6, np.linspace(-3.0, 3.0, 9)
AMOUNTS = np.linspace(-2.0, 2.0, 5)
EDIT_ROWS = (1, 3, 4, 7, 9)            # the digits of the edited test images
CLASS_PAIR = (7, 1)                    # the class attribute: digit 7 minus digit 1
#: analogies a - b + c: (measure, digit of a and b, digit of c, the tail a is from)
ANALOGIES = (("thickness", 3, 5, "high"), ("thickness", 2, 7, "high"),
             ("thickness", 0, 6, "low"), ("slant", 8, 3, "high"), ("slant", 9, 4, "low"))
MEASURES = {"thickness": image_metrics.stroke_thickness, "slant": image_metrics.slant}
WORDS = {("thickness", "high"): "thick", ("thickness", "low"): "thin",
         ("slant", "high"): "slanted /", ("slant", "low"): "slanted \\",
         ("slant", "upright"): "upright"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded", help="data set (default: embedded MNIST)")
    parser.add_argument("--steps", type=int, default=None, help="default 4000 (20 with --quick)")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=None, help="hidden width (default 500)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--measure", type=int, default=None,
                        help="test images whose edits are measured (default 200)")
    parser.add_argument("--image", type=int, default=0, help="test image of the traversal")
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
    for flag, low in (("steps", 1), ("latent_dim", TRAVERSED_UNITS), ("hidden", 1),
                      ("batch_size", 1), ("measure", 1), ("test_limit", 64),
                      ("train_limit", 100)):
        if getattr(args, flag) is not None and getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be >= {low}")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be finite and > 0")
    try:
        train = jaxvae.data.load(args.data, "train")
        test = jaxvae.data.load(args.data, "test")
    except jaxvae.DataError as err:
        parser.error(str(err))
    if train.labels is None or test.labels is None or tuple(train.images.shape[1:]) != (28, 28):
        parser.error(f"--data {args.data}: this example needs labelled 28x28 digit images")
    if not all(np.any(train.labels[:args.train_limit] == c) for c in CLASS_PAIR):
        parser.error(f"the training images hold no {CLASS_PAIR[0]} or no {CLASS_PAIR[1]}: "
                     "raise --train-limit")
    if not 0 <= args.image < len(test.images[:args.test_limit]):
        parser.error(f"--image must be a test image index below "
                     f"{len(test.images[:args.test_limit])}")
    limit = args.train_limit
    return (args, (train.images[:limit], np.asarray(train.labels[:limit])),
            (test.images[:args.test_limit], np.asarray(test.labels[:args.test_limit])))


def train(model, params, images, args):
    """Adam on the ELBO with dynamic binarization; the final parameters."""
    tx = optax.adam(args.lr)
    step = jaxvae.make_train_step(jaxvae.make_weighted_elbo_loss(model, 1.0, 1.0), tx,
                                  preprocess=jaxvae.data.dynamic_binarization)
    state = jaxvae.create_train_state(params, tx, jax.random.PRNGKey(args.seed))
    state = jaxvae.fit(state, step, images, batch_size=args.batch_size, num_epochs=1,
                       num_steps=args.steps, seed=args.seed, progress=not args.no_progress)
    return state.params


def of_digit(labels, digit: int) -> np.ndarray:
    """Indices of the images of ``digit`` (of all images if there is none)."""
    index = np.flatnonzero(labels == digit)
    return index if len(index) else np.arange(len(labels))


def tail(values, index, kind: str, share: float = 0.1) -> np.ndarray:
    """The members of ``index`` in one tail of ``values``: the top (``"high"``) or bottom
    (``"low"``) ``share``, or the ``share`` closest to 0 (``"upright"``)."""
    v = np.abs(values[index]) if kind == "upright" else values[index]
    if kind == "high":
        return index[v >= np.quantile(v, 1 - share)]
    return index[v <= np.quantile(v, share)]


def closest(candidates, values, target) -> int:
    """The candidate index whose value is closest to ``target``."""
    return int(candidates[np.argmin(np.abs(values[candidates] - target))])


def analogy_triples(test_grey, labels):
    """(a, b, c, word for a, word for b and c) per entry of :data:`ANALOGIES`, a, b, c test
    indices: a at the 0.95 (0.05) quantile of its digit's attribute; b from the opposite
    10 % of the same digit (for slant, the 10 % most upright), the one closest to a in the
    other attribute; c from the same tail of the other digit, closest to b in the other
    attribute. So a and b differ mainly in the attribute, and c has b's side of it."""
    values = {name: np.asarray(fn(test_grey)) for name, fn in MEASURES.items()}
    triples = []
    for measure, digit, other_digit, side in ANALOGIES:
        v, other = values[measure], values["slant" if measure == "thickness" else "thickness"]
        own = of_digit(labels, digit)
        a = closest(own, v, np.quantile(v[own], 0.95 if side == "high" else 0.05))
        opposite = "upright" if measure == "slant" else ("low" if side == "high" else "high")
        b = closest(tail(v, own, opposite), other, other[a])
        c = closest(tail(v, of_digit(labels, other_digit), opposite), other, other[b])
        triples.append((a, b, c, WORDS[measure, side], WORDS[measure, opposite]))
    return triples


def nearest_class(images, class_means) -> np.ndarray:
    """The class whose mean image is closest (RMS over pixels) to each image: ``[N]``."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    means = np.asarray(class_means, np.float64).reshape(len(class_means), -1)
    d2 = (flat ** 2).sum(1)[:, None] + (means ** 2).sum(1)[None] - 2 * flat @ means.T
    return np.argmin(d2, axis=1)


def figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def show(ax, images, ncols: int, title: str | None = None) -> int:
    """A grid of images in [0, 1] on ``ax``; returns the cell size in pixels (side + gap)."""
    images = np.clip(np.asarray(images), 0, 1)
    ax.imshow(plots.image_grid(images, ncols), cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return images.shape[1] + 1


def label_axes(ax, cell: int, rows=None, columns=None, fontsize: int = 8) -> None:
    """Row and column labels at the centres of the grid's cells."""
    if rows is not None:
        ax.set_yticks([cell * (i + 0.5) for i in range(len(rows))], rows, fontsize=fontsize)
    if columns is not None:
        ax.set_xticks([cell * (i + 0.5) for i in range(len(columns))], columns,
                      fontsize=fontsize)


def save(fig, plt, path: str) -> str:
    fig.savefig(path, dpi=100, bbox_inches="tight")   # room for long row labels
    plt.close(fig)
    return path


def main(argv=None):
    start = time.perf_counter()
    args, (train_grey, train_labels), (test_grey, test_labels) = parse_args(argv)
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    os.makedirs(args.out, exist_ok=True)
    x_train = jaxvae.binarize_fixed(train_grey, seed=args.seed)
    x_test = jaxvae.binarize_fixed(test_grey, seed=args.seed + 1)
    model = jaxvae.kingma_welling_mlp(event_shape=(28, 28), latent_dim=args.latent_dim,
                                      hidden=args.hidden,
                                      output_bias_init=jaxvae.mean_logit_init(train_grey.mean(0)))
    params = train(model, model.init_params(jax.random.PRNGKey(args.seed)), train_grey, args)
    loss = jaxvae.make_weighted_elbo_loss(model, 1.0, 1.0, num_samples=10)
    info = jax.jit(loss)(params, jnp.asarray(x_test), jax.random.PRNGKey(args.seed + 2))[1]
    result = {"test_elbo": float(info["elbo"]), "test_kl": float(info["kl"])}
    print(f"VAE 784-{args.hidden}-{args.latent_dim} tanh, {args.steps} steps of Adam (batch "
          f"{args.batch_size}, lr {args.lr:g}): test ELBO {result['test_elbo']:.2f} nats, KL "
          f"{result['test_kl']:.2f} nats ({len(x_test)} test images)")
    plt = figure()

    # (a) traversals of the most informative units
    kl = jaxvae.kl_per_dimension(model, params, x_test)
    units = [int(u) for u in np.argsort(-kl)[:TRAVERSED_UNITS]]
    grid = np.asarray(latent.traversal_grid(model, params, x_test[args.image], units,
                                            TRAVERSAL))
    result["traversal"] = {"units": units, "kl": [float(kl[u]) for u in units],
                           "values": TRAVERSAL.tolist(), "cells": list(grid.shape[:2]),
                           "kl_per_unit": kl.tolist(),
                           "active_units": int(np.sum(kl > 0.01))}
    print(f"(a) KL per unit (nats), largest first: "
          f"{', '.join(f'{u}: {kl[u]:.2f}' for u in np.argsort(-kl))}; "
          f"{result['traversal']['active_units']} units above 0.01")
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    cell = show(ax, grid.reshape(-1, 28, 28), len(TRAVERSAL),
                f"test image {args.image} (digit {test_labels[args.image]}): one unit set to "
                f"-3 ... 3, others at E_q[z|x]")
    label_axes(ax, cell, [f"unit {u}, KL {kl[u]:.2f}" for u in units],
               [f"{v:g}" for v in TRAVERSAL])
    wrote = [save(fig, plt, os.path.join(args.out, "traversal.png"))]

    # (b) attribute vectors, applied with edit and measured on the decoded images
    class_means = np.stack([train_grey[train_labels == c].mean(0) if np.any(train_labels == c)
                            else np.zeros((28, 28)) for c in range(10)])
    with_class, without_class = (train_labels == c for c in CLASS_PAIR)
    class_name = f"{CLASS_PAIR[0]} - {CLASS_PAIR[1]}"
    on_train = {name: np.asarray(fn(train_grey)) for name, fn in MEASURES.items()}
    on_train[class_name] = nearest_class(train_grey, class_means) == CLASS_PAIR[0]
    groups = {name: latent.attribute_groups(on_train[name], 0.2, 0.8) for name in MEASURES}
    groups[class_name] = (jnp.asarray(with_class), jnp.asarray(without_class))
    measure = {"thickness": lambda im: float(np.mean(image_metrics.stroke_thickness(im))),
               "slant": lambda im: float(np.mean(image_metrics.slant(im))),
               class_name:
                   lambda im: float(np.mean(nearest_class(im, class_means) == CLASS_PAIR[0]))}
    units_of = {"thickness": "pixels", "slant": "columns per row",
                class_name: f"share nearest to the mean {CLASS_PAIR[0]}"}
    rows = [int(np.flatnonzero(test_labels == d)[0]) if np.any(test_labels == d) else k
            for k, d in enumerate(EDIT_ROWS)]
    measured_at = np.array([0, len(AMOUNTS) // 2, len(AMOUNTS) - 1])      # -2, 0, +2
    result["edits"] = {}
    fig, axes = plt.subplots(1, len(groups), figsize=(12, 3.9))
    print(f"(b) measured attribute of the decoded images at amounts "
          f"{', '.join(f'{AMOUNTS[i]:+g}' for i in measured_at)} ({args.measure} test images)")
    print("| attribute vector | measure | at -2 | at 0 | at +2 | monotone | "
          "groups' own values (with, without) |\n" + "| --- " * 7 + "|")
    for ax, (name, (high, low)) in zip(axes, groups.items()):
        direction = latent.attribute_vector(model, params, x_train[np.asarray(high)],
                                            x_train[np.asarray(low)])
        edited = np.stack([np.asarray(latent.edit(model, params, x_test[i], direction,
                                                  AMOUNTS[measured_at]))
                           for i in range(args.measure)])
        values = [measure[name](edited[:, j]) for j in range(len(measured_at))]
        own = [float(np.mean(on_train[name][np.asarray(g)])) for g in (high, low)]
        monotone = bool(values[0] < values[1] < values[2])
        result["edits"][name] = {"measure": units_of[name], "amounts": AMOUNTS[
            measured_at].tolist(), "values": values, "monotone": monotone,
            "groups": own, "direction_norm": float(jnp.linalg.norm(direction))}
        print(f"| {name} | {units_of[name]} | {values[0]:.3f} | {values[1]:.3f} | "
              f"{values[2]:.3f} | {'yes' if monotone else 'no'} | {own[0]:.3f}, {own[1]:.3f} |")
        shown = np.concatenate([np.asarray(latent.edit(model, params, x_test[i], direction,
                                                       AMOUNTS)) for i in rows])
        cell = show(ax, shown, len(AMOUNTS), f"{name}: {values[0]:.2f} / {values[1]:.2f} / "
                    f"{values[2]:.2f} at -2 / 0 / +2")
        label_axes(ax, cell, None, [f"{a:+g}" for a in AMOUNTS])
        ax.set_xlabel("amount of the attribute vector", fontsize=8)
    fig.suptitle("decode(E_q[z|x] + t a), a = mean code with the attribute - mean code "
                 "without (thickness, slant: top vs bottom 20 % of training images); rows: "
                 f"test digits {', '.join(str(test_labels[i]) for i in rows)}", fontsize=9)
    wrote.append(save(fig, plt, os.path.join(args.out, "attributes.png")))

    # (c) analogies a - b + c on test images chosen by their measured attributes
    triples = analogy_triples(test_grey, test_labels)
    a, b, c = (x_test[[t[i] for t in triples]] for i in range(3))
    made = np.asarray(latent.analogy(model, params, a, b, c))
    recon_c = np.asarray(latent.reconstruct(model, params, c))
    result["analogies"] = []
    print("\n(c) analogies a - b + c, measured attribute\n| analogy | measure | a | b | "
          "c (reconstructed) | a - b + c |\n" + "| --- " * 6 + "|")
    for k, ((m, d, dc, _), (i_a, i_b, _, word_a, word_b)) in enumerate(zip(ANALOGIES,
                                                                             triples)):
        fn = MEASURES[m]
        r = {"analogy": f"{word_a} {d} - {word_b} {d} + {word_b} {dc}", "measure": m,
             "a": float(fn(test_grey[[i_a]])[0]), "b": float(fn(test_grey[[i_b]])[0]),
             "c_reconstructed": float(fn(recon_c[k:k + 1])[0]),
             "result": float(fn(made[k:k + 1])[0])}
        result["analogies"].append(r)
        print(f"| {r['analogy']} | {m} | {r['a']:.3f} | {r['b']:.3f} | "
              f"{r['c_reconstructed']:.3f} | {r['result']:.3f} |")
    fig, ax = plt.subplots(figsize=(7.0, 1.0 + 0.8 * len(ANALOGIES)))
    shown = np.stack([test_grey[[t[i] for t in triples]] for i in range(3)]
                     + [recon_c, made], axis=1)
    cell = show(ax, shown.reshape(-1, 28, 28), 5)
    label_axes(ax, cell, [r["analogy"] for r in result["analogies"]],
               ["a", "b", "c", "c recon.", "a - b + c"], fontsize=8)
    ax.set_title("decode(z_a - z_b + z_c), z = E_q[z|x]", fontsize=9)
    wrote.append(save(fig, plt, os.path.join(args.out, "analogies.png")))

    # (d) are prior samples copies of training images?
    samples = np.asarray(latent.sample_prior(model, params, jax.random.PRNGKey(args.seed + 5),
                                             64))
    check = latent.copy_check(samples, train_grey, test_grey[:max(64, min(500, len(test_grey)))])
    result["copy_check"] = check
    print("\n(d) 64 prior samples (decoder means) against the training images, test images "
          "as reference (RMS pixel distance to the nearest training image)\n"
          "| samples' median | test images' median | ratio | samples' min | test min | "
          "samples closer than any test image |\n" + "| --- " * 6 + "|")
    print(f"| {check['samples_median']:.4f} | {check['reference_median']:.4f} | "
          f"{check['ratio']:.3f} | {check['samples_min']:.4f} | {check['reference_min']:.4f} "
          f"| {check['closer_than_reference']:.3f} |")
    index, distance = latent.nearest_neighbours(samples[:8], train_grey)
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    cell = show(ax, np.concatenate([samples[:8], train_grey[index]]), 8,
                f"prior samples (top) and their nearest training images (bottom); "
                f"ratio {check['ratio']:.2f}")
    label_axes(ax, cell, ["sample", "nearest"], [f"d {d:.3f}" for d in distance])
    wrote.append(save(fig, plt, os.path.join(args.out, "neighbours.png")))
    print(f"wrote {', '.join(wrote)}")

    seconds = round(time.perf_counter() - start, 1)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result, "seconds": seconds}, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {seconds} s")
    return result


if __name__ == "__main__":
    main()
