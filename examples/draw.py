"""Figures of a trained DRAW run (Gregor et al., 2015): the canvas over time, the glimpses,
samples and the KL of each step.

Reads a run directory written by ``python -m jaxvae train --model draw [--attention]`` and
writes into OUT/NAME (NAME: the run directory's name; ``quick`` for ``--quick``):

* ``canvas_prior.png``: 8 drawings of the generative model, z ~ p(z), one per row, the
  canvas sigmoid(c_t) after 8 steps spread evenly over the T steps (the last column is the
  final canvas); ``canvas_prior.gif``: the same 8 drawings animated over all T steps.
* ``canvas_test.png``: q(z|x) drawing 8 test digits (the run's test split, binarized with
  the fixed draw of its seed, as in its evaluation): 8 steps, then the digit itself in the
  last column; ``canvas_test.gif``: the same drawings animated.
* ``glimpses.png`` (runs with attention only): 4 of those test digits, two rows each, at 8
  steps: the digit, then the canvas after the step; on both the read glimpse of the step
  in green and the write glimpse in red (the extent of each N x N grid of filter centres,
  :func:`jaxvae.draw_tools.glimpse_box`).
* ``samples.png``: 64 prior samples, the last canvas sigmoid(c_T) (the mean of p(x|z)).
* ``kl_per_step.png``: KL(q(z_t | x, z_<t) || N(0, I)) of each step, averaged over the
  first 256 test digits (:func:`jaxvae.draw_tools.mean_step_kl`; also printed). Their
  sum estimates the KL term of the ELBO: where the model spends its information.

    python -m jaxvae train --model draw --attention --objective elbo -k 1 \\
        --out runs/draw-attention          # the paper's MNIST model: T = 64, 2x2 / 5x5
    python examples/draw.py --run runs/draw-attention     # docs/images/draw/draw-attention/
    python examples/draw.py --quick --out /tmp/draw       # trains a tiny run first; ~60 s
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time

import jax
import numpy as np

import jaxvae
from jaxvae import draw_tools, plots
from jaxvae.models import draw

DEFAULT_OUT = os.path.join("docs", "images", "draw")
SHOWN, GLIMPSED, SAMPLES, KL_IMAGES, COLUMNS = 8, 4, 64, 256, 8
QUICK_CONFIG = dict(model="draw", attention=(2, 5), draw_steps=4, latent_dim=8, hidden=(32,),
                    steps=20, eval_k=5, eval_limit=20, objective="elbo", k=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="a run directory of --model draw")
    parser.add_argument("--out", default=None,
                        help=f"parent folder of the figures (default {DEFAULT_OUT}; with "
                             "--quick a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawings")
    parser.add_argument("--quick", action="store_true",
                        help="train a tiny run (20 steps, T = 4) and draw its figures")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if (args.run is None) == (not args.quick):
        parser.error("give --run DIR, or --quick (which trains its own run)")
    if args.run is not None and not os.path.isfile(os.path.join(args.run, "config.json")):
        parser.error(f"--run {args.run}: not a run directory (no config.json)")
    return args, parser


def quick_run(workdir: str, args) -> str:
    """Trains the tiny run of ``--quick`` into ``workdir/quick``; returns its path."""
    run = os.path.join(workdir, "quick")
    config = jaxvae.Config(**QUICK_CONFIG, seed=args.seed)
    jaxvae.train_and_evaluate(config, run, progress=not args.no_progress, pictures=False)
    return run


def save_kl_figure(kl: np.ndarray, path: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.12 * len(kl) + 2), 3))
    ax.bar(np.arange(1, len(kl) + 1), kl, color="tab:blue")
    ax.set_xlabel("step t")
    ax.set_ylabel("KL(q(z_t) || N(0, I)), nats")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def load_run(run: str):
    """``(model, params, x)``: the run's DRAW model and parameters, and its first 256 test
    images binarized with the fixed draw of the run's seed (as its evaluation does)."""
    config, model, params, _ = jaxvae.restore_run(run)
    if not isinstance(model, draw.Draw):
        raise jaxvae.ConfigError(f"{run} is a run of --model {config.model}, not draw")
    test = jaxvae.data.load(config.data, "test")
    return model, params, jaxvae.data.binarize_fixed(test.images[:KL_IMAGES], seed=config.seed)


def figures(model, params, x, run: str, out: str, seed: int) -> dict:
    """Every figure of the module docstring for the run in ``run``, written into ``out``."""
    height, width = model.event_shape
    steps = draw_tools.canvas_steps(model.steps, COLUMNS)
    key = jax.random.PRNGKey(seed)
    wrote = []

    def save(name, fn, *fn_args, **kwargs):
        wrote.append(fn(*fn_args, os.path.join(out, name), **kwargs))

    prior, _ = draw_tools.prior_canvases(model, params, jax.random.fold_in(key, 0), SAMPLES)
    prior = np.asarray(prior)
    save("canvas_prior.png", draw_tools.save_canvas_steps, prior[:SHOWN], columns=COLUMNS)
    save("canvas_prior.gif", draw_tools.save_canvas_gif, prior[:SHOWN], ncols=SHOWN // 2)
    save("samples.png", plots.save_grid, prior[:, -1], ncols=8)

    trace = draw_tools.posterior_trace(model, params, x[:SHOWN], jax.random.fold_in(key, 1))
    canvas = np.asarray(trace.canvas)
    cells = np.concatenate([canvas[:, steps], x[:SHOWN, None]], axis=1)
    save("canvas_test.png", plots.save_grid, cells.reshape(-1, height, width),
         ncols=len(steps) + 1)
    save("canvas_test.gif", draw_tools.save_canvas_gif, canvas, ncols=SHOWN // 2)
    if model.read_size:
        n = min(GLIMPSED, len(x))
        digits = np.broadcast_to(x[:n, None], canvas[:n].shape)
        pictures = np.stack([digits, canvas[:n]], axis=1).reshape(2 * n, *canvas.shape[1:])
        reads, writes = (np.repeat(np.asarray(g[:n]), 2, axis=0)
                         for g in (trace.read, trace.write))
        save("glimpses.png", draw_tools.save_glimpses, pictures, reads, writes,
             model.read_size, model.write_size, steps=steps)
    else:
        print("no glimpses.png: the run reads and writes without attention")

    kl = draw_tools.mean_step_kl(model, params, x, jax.random.fold_in(key, 2))
    print(f"KL per step over {len(x)} test digits (nats): "
          + " ".join(f"{v:.2f}" for v in kl) + f"; sum {kl.sum():.2f}")
    if importlib.util.find_spec("matplotlib"):
        title = (f"{os.path.basename(os.path.normpath(run))}: T = {model.steps}, "
                 f"sum {kl.sum():.3g} nats over {len(x)} test digits")
        save("kl_per_step.png", save_kl_figure, kl, title=title)
    else:
        print("no kl_per_step.png: it needs matplotlib (pip install -e '.[plots]')")
    return {"files": wrote, "kl_per_step": [float(v) for v in kl], "steps": model.steps,
            "attention": bool(model.read_size), "num_kl_images": len(x)}


def main(argv=None):
    start = time.perf_counter()
    args, parser = parse_args(argv)
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    parent = args.out or (tempfile.mkdtemp(prefix="draw_") if args.quick else DEFAULT_OUT)
    with tempfile.TemporaryDirectory(prefix="draw_run_") as workdir:
        run = quick_run(workdir, args) if args.quick else args.run
        out = os.path.join(parent, os.path.basename(os.path.normpath(run)))
        try:
            model, params, x = load_run(run)
        except (jaxvae.ConfigError, jaxvae.CheckpointError, jaxvae.DataError) as err:
            parser.error(str(err))
        result = figures(model, params, x, run, out, args.seed)
    for path in result["files"]:
        print(f"wrote {path}")
    print(f"{time.perf_counter() - start:.1f} s")
    return {**result, "out": out}


if __name__ == "__main__":
    main()
