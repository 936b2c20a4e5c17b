"""Planar and radial flows fitted to the four 2-D energies of Rezende & Mohamed (2015), Fig. 3.

A free flow (N(0, I) through K planar or radial maps) is fitted to each p ∝ exp(-U) of
Table 1, plus a soft wall on |z1| > 4, by the annealed reverse KL (jaxvae.energies has the
equations); each fit is reported as KL(q || p) in nats with its standard error. The figure
has one row per energy: exp(-U)/Z, then each flow's density as a normalised histogram of
--hist-samples samples on (-4, 4)^2 (needs matplotlib: pip install -e '.[plots]').

    python examples/flow_density.py --json benchmarks/results/flow_density/results.json
    python examples/flow_density.py --quick --out /tmp/flow_density_quick.png   # < 1 min
"""

import argparse
import importlib.util
import json
import os
import time

import jax
import numpy as np

from jaxvae import energies as en

# flag, type, default, lowest value (floats: exclusive), help
FLAGS = [("steps", int, None, 1, "steps per fit (default 40000; 200 with --quick)"),
         ("batch", int, 256, 1, None),
         ("lr", float, 5e-3, 0, "peak Adam learning rate, cosine-decayed to 5%% of it"),
         ("anneal", int, None, 0, "steps of beta from 0.01 to 1 (0: none; default: the "
          "paper's 10000, at most a quarter of --steps)"),
         ("flows", None, None, None, "default planar:2,planar:8,planar:32,radial:8,radial:32 "
          "(planar:2,radial:2 with --quick)"),
         ("energies", str, "U1,U2,U3,U4", None, None), ("seed", int, 0, None, None),
         ("eval-samples", int, 10000, 2, None),
         ("hist-samples", int, None, 1, "default 500000 (--eval-samples with --quick: one "
          "compiled sampler)"), ("bins", int, None, 1, "default 100 (50 with --quick)"),
         ("out", str, "docs/images/flow_density.png", None, None),
         ("json", str, None, None, "write the KL table here")]


def flow_list(text: str) -> list[tuple[str, int]]:
    """'planar:2,radial:8' -> [('planar', 2), ('radial', 8)]."""
    items = [item.partition(":") for item in text.split(",")]
    if any(kind not in en.FREE_FLOWS or not k.isdigit() or int(k) < 1 for kind, _, k in items):
        raise argparse.ArgumentTypeError(f"expected items like planar:8,radial:32, got {text!r}")
    return [(kind, int(k)) for kind, _, k in items]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, kind, default, _, help in FLAGS:
        parser.add_argument(f"--{flag}", type=kind or flow_list, default=default, help=help)
    parser.add_argument("--quick", action="store_true",
                        help="200 steps, planar and radial K = 2 only, histograms of "
                             "--eval-samples samples in 50 x 50 bins")
    args = parser.parse_args(argv)
    for flag, kind, _, low, _ in FLAGS:
        value = getattr(args, flag.replace("-", "_"))
        if low is not None and value is not None and not (
                value >= low if kind is int else np.isfinite(value) and value > low):
            parser.error(f"--{flag} must be {'>=' if kind is int else 'finite and >'} {low}")
    args.energies = args.energies.split(",")
    if unknown := [e for e in args.energies if e not in en.ENERGIES]:
        parser.error(f"unknown energies {unknown}; expected some of {list(en.ENERGIES)}")
    args.steps = args.steps or (200 if args.quick else 40000)
    args.flows = args.flows or flow_list("planar:2,radial:2" if args.quick else
                                         "planar:2,planar:8,planar:32,radial:8,radial:32")
    args.anneal = min(10000, args.steps // 4) if args.anneal is None else args.anneal
    args.hist_samples = args.hist_samples or (args.eval_samples if args.quick else 500_000)
    args.bins = args.bins or (50 if args.quick else 100)
    return args


def save_figure(panels: dict, columns: list, path: str, title: str) -> str:
    """``panels[energy] = [[bins, bins] image per column]`` -> a PNG grid at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), len(columns), squeeze=False,
                             figsize=(1.9 * len(columns), 1.9 * len(panels) + 0.5))
    for ax, image in zip(axes.flat, [image for images in panels.values() for image in images]):
        ax.imshow(image, origin="lower", cmap="viridis", interpolation="nearest",
                  extent=(-en.WINDOW, en.WINDOW) * 2)
        ax.set(xticks=[], yticks=[])
    for ax, column in zip(axes[0], columns):
        ax.set_title(column, fontsize=9)
    for ax, name in zip(axes[:, 0], panels):
        ax.set_ylabel(name, fontsize=10)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    args, start, rows = parse_args(argv), time.perf_counter(), []
    log_z = {name: en.log_normalizer(name) for name in args.energies}
    panels = {name: [en.density_grid(name, args.bins, log_z[name])] for name in args.energies}
    print("| energy | flow | K | KL(q||p) nats | stderr | steps | seconds |\n" + "| --- " * 7 + "|")
    for e, name in enumerate(args.energies):
        key_eval, key_hist = jax.random.split(jax.random.PRNGKey(args.seed + 1000 + e))
        for kind, k in args.flows:
            params, info = en.fit_flow(jax.random.PRNGKey(args.seed), name, kind, k,
                                       steps=args.steps, batch=args.batch, lr=args.lr,
                                       anneal=args.anneal, progress=True)
            kl, stderr = en.kl_estimate(key_eval, params, name, log_z[name], args.eval_samples)
            panels[name].append(en.histogram_density(key_hist, params, args.hist_samples,
                                                     args.bins))
            rows.append({"energy": name, "flow": kind, "K": k, "kl_nats": kl, "stderr": stderr,
                         "steps": args.steps, "seconds": round(info["seconds"], 2)})
            print(f"| {name} | {kind} | {k} | {kl:.3f} | {stderr:.3f} | {args.steps} | "
                  f"{info['seconds']:.1f} |", flush=True)
    if len(args.energies) < len(en.ENERGIES) or not importlib.util.find_spec("matplotlib"):
        print("no figure: it needs all four energies and matplotlib")
    else:
        title = (f"Rezende & Mohamed (2015), Fig. 3: flows fitted by reverse KL ({args.steps} "
                 f"steps, base N(0, I)) to p ∝ exp(-U) on (-4, 4)^2\nflow densities: normalised "
                 f"histograms of {args.hist_samples:,} samples; each panel on its own colour scale")
        columns = ["true exp(-U)/Z"] + [f"{kind} K={k}" for kind, k in args.flows]
        print(f"wrote {save_figure(panels, columns, args.out, title)}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        result = {"args": vars(args), "log_z": log_z,
                  "wall": f"0.5 ((|z1| - {en.WINDOW})_+ / {en.WALL_SCALE})^2",
                  "log_z_grid": f"midpoint rule on [-{en.GRID_HALF}, {en.GRID_HALF}]^2, "
                                f"spacing {en.GRID_STEP}", "rows": rows,
                  "seconds": "wall time of each fit; compilation is included for the first "
                             "energy only (the energies share one per flow shape)",
                  "total_seconds": round(time.perf_counter() - start, 1)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
