"""Variance of minibatch gradients under three weight-noise estimators (Kingma, Salimans &
Welling 2015, Table 1).

A variational-dropout classifier (784-1024-1024-10 ReLU, independent weight noise,
q(w) = N(theta, alpha theta^2)) is trained with the local reparameterization trick; after a
short and a longer training the gradient of the minibatch estimate of the full-data SGVB
bound, (N / M) sum_{n in batch} log p(y_n | x_n, W_n) - KL, with respect to the weight
means theta of the bottom and the top layer is drawn many times (a fresh minibatch and
fresh noise each time) under each estimator:

* local reparameterization (noise on the pre-activations, independent per example);
* separate weight samples per example;
* a single weight sample shared by the minibatch;
* no dropout noise (the posterior-mean network: the data-sampling variance alone).

Reported: the variance per weight averaged over the layer, beside the paper's numbers, and
the time per gradient of each estimator.

    python benchmarks/local_reparam_variance.py --data npz:../shared/data/mnist.npz
    python benchmarks/local_reparam_variance.py --quick          # < 60 s, embedded data

The paper's caption measures minibatches of 1000: separate samples and the local trick
have variance ~ 1/M, a shared sample adds a covariance term that does not fall with M, so
the gap between separate and shared shows at large M (docs/results.md):

    python benchmarks/local_reparam_variance.py --data npz:../shared/data/mnist.npz \
        --hidden 256,256 --epochs 1,3 --batch-size 1000 --draws 20 --timing-repeats 1 \
        --out benchmarks/results/local_reparam_variance/m1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxvae
from jaxvae import data
from jaxvae.models import bayesian

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    add_common_flags,
    command_line,
    draw_chunk,
    log,
    machine,
    markdown_table,
    resolve_common,
    save_figure,
    write_results,
)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "local_reparam_variance")
ESTIMATORS = [("local", "local reparameterization"), ("separate", "separate weight samples"),
              ("shared", "single weight sample"), ("mean", "no dropout noise")]
# Kingma et al. (2015), Table 1: (top layer 10 epochs, top 100, bottom 10, bottom 100).
PAPER = {"local": (7.8e3, 1.2e3, 1.9e2, 1.1e2), "separate": (1.4e4, 2.6e3, 4.3e2, 2.5e2),
         "shared": (4.9e4, 4.3e3, 8.5e2, 3.3e2), "mean": (2.8e3, 5.9e1, 1.3e2, 9.0e0)}


def minibatch_grad_fn(model, num_data: int, batch_size: int):
    """grad_fn(params, (x, y), key): gradient of the minibatch estimate of the full-data
    bound w.r.t. theta and the log-alpha parameter of the bottom and the top layer; the
    minibatch is drawn from key."""
    loss = bayesian.classification_loss(model, num_data)
    names = ("layer_0", f"layer_{len(model.hidden)}")

    def grad_fn(params, xy, key):
        x, y = xy
        k_idx, k_noise = jax.random.split(key)
        idx = jax.random.choice(k_idx, x.shape[0], (batch_size,), replace=False)
        g = jax.grad(lambda p: -num_data * loss(p, (x[idx], y[idx]), k_noise)[0])(params)
        return {f"{where}_{param}": g["params"][name][param]
                for where, name in zip(("bottom", "top"), names)
                for param in ("kernel", "log_alpha_raw")}

    return grad_fn


def make_config(args, steps: int) -> jaxvae.Config:
    """The classifier of the table: the ``bayesian-mlp`` preset with the local estimator,
    constant Adam 1e-3, ``steps`` steps in all."""
    return jaxvae.Config(model="bayesian-mlp", hidden=args.hidden, weight_noise="local",
                         objective="elbo", k=1, protocol="adam", lr=1e-3,
                         batch_size=args.batch_size, steps=steps, seed=args.seed,
                         data=args.data, split="train", eval_split="test")


def train_checkpoints(args, epochs, num_train):
    """Yields ``(epochs, results)`` after training to each of ``epochs`` (increasing): one
    run of ``jaxvae.train_and_evaluate`` in a temporary run directory, resumed with a
    longer ``steps`` for each further checkpoint."""
    steps_per_epoch = num_train // args.batch_size
    with tempfile.TemporaryDirectory(prefix="local_reparam_") as workdir:
        for i, e in enumerate(epochs):
            steps = max(1, int(round(e * steps_per_epoch)))
            log(f"training to {e:g} epochs ({steps} steps in all) ...")
            results = jaxvae.train_and_evaluate(make_config(args, steps), workdir, resume=i > 0,
                                                progress=not args.no_progress, pictures=False)
            yield e, results


def measure(params, x, y, args, label):
    rows = {}
    for estimator, _ in ESTIMATORS:
        model = bayesian.BayesianMLP(hidden=args.hidden, layer="dropout", estimator=estimator)
        grad_fn = minibatch_grad_fn(model, len(x), args.batch_size)
        chunk = draw_chunk(args.draws, 1 if estimator == "separate" else 10)
        start = time.perf_counter()
        stats = jaxvae.gradient_stats(grad_fn, params, (x, y), jax.random.PRNGKey(args.seed + 1),
                                      args.draws, chunk=chunk)
        seconds = time.perf_counter() - start
        # time per gradient, steady state: more draws through the same compiled function
        times = []
        for r in range(args.timing_repeats):
            t = time.perf_counter()
            jaxvae.gradient_stats(grad_fn, params, (x, y), jax.random.PRNGKey(r), 2 * chunk,
                                  chunk=chunk)
            times.append((time.perf_counter() - t) / (2 * chunk))
        rows[estimator] = {"top": float(np.mean(stats.variance["top_kernel"])),
                           "bottom": float(np.mean(stats.variance["bottom_kernel"])),
                           "top_log_alpha": float(np.mean(stats.variance["top_log_alpha_raw"])),
                           "bottom_log_alpha": float(np.mean(
                               stats.variance["bottom_log_alpha_raw"])),
                           "seconds_per_gradient": float(np.median(times)),
                           "measure_seconds": round(seconds, 1)}
        log(f"  [{label}] {estimator:8s}: top {rows[estimator]['top']:.3g}, bottom "
            f"{rows[estimator]['bottom']:.3g}, {rows[estimator]['seconds_per_gradient']:.3f} s "
            "per gradient")
    return rows


def markdown(res) -> str:
    a = res["args"]
    s, l = res["checkpoints"]
    columns = [f"{layer}, after {c['epochs']:g} ep." for layer in ("top", "bottom")
               for c in (s, l)]
    lines = [f"Variance of the minibatch gradient (M = {a['batch_size']}) of the full-data bound "
             "w.r.t. the weight means theta, averaged over the layer's weights; "
             f"{a['draws']} draws (fresh minibatch and noise each) per cell.", "",
             markdown_table(
                 ["estimator", *columns, "paper top 10 / 100 ep.", "paper bottom 10 / 100 ep.",
                  "s per gradient"],
                 ([label, *(f"{c['variance'][estimator][layer]:.3g}" for layer in ("top", "bottom")
                            for c in (s, l)),
                   "{:.2g} / {:.2g}".format(*PAPER[estimator][:2]),
                   "{:.2g} / {:.2g}".format(*PAPER[estimator][2:]),
                   f"{l['variance'][estimator]['seconds_per_gradient']:.4f}"]
                  for estimator, label in ESTIMATORS)),
             "", "The same for the gradient w.r.t. the (unconstrained) log-alpha parameters "
             "(log alpha = log sigmoid(raw)):", "",
             markdown_table(
                 ["estimator", *columns],
                 ([label, *(f"{c['variance'][estimator][layer]:.3g}"
                            for layer in ("top_log_alpha", "bottom_log_alpha") for c in (s, l))]
                  for estimator, label in ESTIMATORS[:3]))]
    lines += ["", f"Test error of the posterior-mean network: {100 * s['test_error']:.2f} % after "
              f"{s['epochs']:g} epochs, {100 * l['test_error']:.2f} % after {l['epochs']:g}.", "",
              f"Bottom layer, after {l['epochs']:g} epochs: local / shared variance "
              f"{res['local_over_shared_var']:.3f}, local / separate "
              f"{res['local_over_separate_var']:.3f}; a local gradient costs "
              f"{res['local_over_separate_time']:.3f} of a separate-samples gradient.", "",
              f"Model: {a['hidden']} ReLU variational-dropout classifier (alpha per weight, "
              f"init log alpha -2), Adam 1e-3, batch {a['batch_size']}, trained with the local "
              f"estimator on `{a['data']}` ({res['num_train']} training images). "
              f"Machine: {res['machine']}; wall time {res['wall_seconds']:.0f} s.", "",
              f"Command: `{res['command']}`"]
    return "\n".join(lines) + "\n"


def plot(out, res):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot (pip install -e '.[plots]')")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    width = 0.2
    for ax, layer in zip(axes, ("top", "bottom")):
        for i, (estimator, label) in enumerate(ESTIMATORS):
            values = [c["variance"][estimator][layer] for c in res["checkpoints"]]
            ax.bar(np.arange(len(values)) + (i - 1.5) * width, values, width, label=label)
        ax.set_yscale("log")
        ax.set_xticks(range(len(res["checkpoints"])),
                      [f"{c['epochs']:g} epochs" for c in res["checkpoints"]])
        ax.set_title(f"{layer} layer: variance of the gradient")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "variance.png")
    save_figure(fig, path)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, "data")
    parser.add_argument("--epochs", default=None, help="short,long (default 1,10; quick 0.2,1)")
    parser.add_argument("--hidden", default=None, help="default 1024,1024 (quick 64,64)")
    parser.add_argument("--draws", type=int, default=None, help="default 50 (quick 10)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timing-repeats", type=int, default=3,
                        help="timed repeats of 2 x chunk extra draws per estimator")
    add_common_flags(parser, "seed", "out", "json", "quick", "no_progress",
                     helps={"json": "also write the headline figures here",
                            "quick": "< 60 s: embedded data, small net"})
    args = parser.parse_args(argv)
    q = args.quick
    resolve_common(args, DEFAULT_OUT)
    epochs = [float(e) for e in (args.epochs or ("0.2,1" if q else "1,10")).split(",")]
    args.hidden = tuple(int(h) for h in (args.hidden or ("64,64" if q else "1024,1024"))
                        .split(","))
    args.draws = args.draws or (10 if q else 50)
    if len(epochs) != 2 or not 0 < epochs[0] < epochs[1] or args.draws < 2:
        parser.error("--epochs must be short,long with 0 < short < long; --draws >= 2")
    try:
        make_config(args, 1).validate()
    except jaxvae.ConfigError as err:
        parser.error(str(err))
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    train = data.load(args.data, "train")
    if train.labels is None:
        parser.error(f"{args.data} has no labels")
    x, y = jnp.asarray(train.images), jnp.asarray(train.labels)
    checkpoints = []
    for e, results in train_checkpoints(args, epochs, len(train.images)):
        err = results.metrics["test_error"]
        log(f"  test error {100 * err:.2f} % after {results.metrics['steps']} steps")
        checkpoints.append({"epochs": e, "test_error": err,
                            "variance": measure(results.params, x, y, args, f"{e:g} ep")})
    last = checkpoints[-1]["variance"]
    command = command_line("benchmarks/local_reparam_variance.py", argv)
    res = {"args": {k: v for k, v in vars(args).items()}, "checkpoints": checkpoints,
           "local_over_shared_var": last["local"]["bottom"] / last["shared"]["bottom"],
           "local_over_separate_var": last["local"]["bottom"] / last["separate"]["bottom"],
           "local_over_separate_time": (last["local"]["seconds_per_gradient"]
                                        / last["separate"]["seconds_per_gradient"]),
           "num_train": len(train.images), "machine": machine(),
           "wall_seconds": time.time() - start, "command": command}
    res["plot"] = plot(args.out, res)
    table = markdown(res)
    headline = {k: res[k] for k in ("local_over_shared_var", "local_over_separate_var")}
    write_results(args.out, table, res, headline, args.json)


if __name__ == "__main__":
    main()
