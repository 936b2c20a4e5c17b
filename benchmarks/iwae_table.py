"""Reproduce Table 1 of Burda, Grosse & Salakhutdinov (2015) on MNIST: VAE vs IWAE.

Trains VAE (k-sample ELBO) and IWAE (k-sample bound) for k in {1, 5, 50}, with one and two
stochastic layers (the presets ``iwae`` and ``iwae-2layer``), under the paper's protocol
(``protocol="iwae-paper"``: Adam eps=1e-4, 8 stages of 3^i passes at 1e-3 * 10^(-i/7),
batch 20, dynamic binarization, output bias = logit of the training mean), shrunk by
--passes-scale; evaluates the test log-likelihood with the IWAE bound at k=5000 and the
active units, and writes a markdown table beside the paper's numbers. Each model is one
``jaxvae.Config``; the VAE and the IWAE of each (layers, k) train together as one program
(``jaxvae.train_runs``: the same runs as ``jaxvae.train_and_evaluate`` would train, see
tests/test_runs.py), or one by one with ``--in-turn``.

    python benchmarks/iwae_table.py --data npz:../shared/data/mnist.npz --passes-scale 0.002
    python benchmarks/iwae_table.py --quick          # < 60 s, embedded data, 6 small runs

Each finished model is stored in OUT/runs.jsonl; re-running the same command skips them,
and the table lists the ones not run yet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import jaxvae
from jaxvae import schedules

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    ResultsStore,
    add_common_flags,
    command_line,
    log,
    machine,
    markdown_table,
    resolve_common,
    write_json,
    write_table,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "iwae_table")
PRESET = {1: "iwae", 2: "iwae-2layer"}
# Table 1 of Burda et al. (2015): test NLL (nats) and active units, MNIST.
PAPER = {
    (1, "vae", 1): (86.76, 19), (1, "vae", 5): (86.47, 20), (1, "vae", 50): (86.35, 20),
    (1, "iwae", 1): (86.76, 19), (1, "iwae", 5): (85.54, 22), (1, "iwae", 50): (84.78, 25),
    (2, "vae", 1): (85.33, "16+5"), (2, "vae", 5): (85.01, "17+5"), (2, "vae", 50): (84.78, "17+5"),
    (2, "iwae", 1): (85.33, "16+5"), (2, "iwae", 5): (83.89, "21+5"),
    (2, "iwae", 50): (82.90, "26+7"),
}


def make_config(layers: int, objective: str, k: int, args) -> jaxvae.Config:
    """The Config of one cell: ``objective`` is ``"vae"`` (the k-sample ELBO) or ``"iwae"``."""
    return jaxvae.Config(
        model=PRESET[layers], objective="elbo" if objective == "vae" else "iwae", k=k,
        protocol="iwae-paper", passes_scale=args.passes_scale, steps=args.steps,
        batch_size=args.batch_size, seed=args.seed, data=args.data, split=args.split,
        eval_k=args.eval_k, eval_limit=args.test_limit)


def cell(config: jaxvae.Config) -> tuple[int, str, int]:
    """``(layers, "vae" | "iwae", k)`` of a Config made by :func:`make_config`."""
    layers = {v: n for n, v in PRESET.items()}[config.model]
    return layers, "vae" if config.objective == "elbo" else "iwae", config.k


def _two_layer_active_units(results: jaxvae.Results) -> str:
    """``"A1+A2"``: active units of z1 (100 units) and z2 (50), from the posterior-mean
    variances behind the run's ``active_units`` (so A1 + A2 equals it)."""
    active = np.asarray(results.posterior_variances) > 0.01
    return f"{int(active[:100].sum())}+{int(active[100:].sum())}"

def run_group(configs: list, progress: bool, in_turn: bool = False) -> list[dict]:
    """Trains and evaluates Configs that share shapes (VAE and IWAE at one k) as one
    program (``jaxvae.train_runs``; ``in_turn``: one ``train_and_evaluate`` each); returns
    their results records."""
    if in_turn:
        results = [jaxvae.train_and_evaluate(c, progress=progress, pictures=False)
                   for c in configs]
    else:
        results = jaxvae.train_runs(configs, progress=progress)
    return [record(c, r) for c, r in zip(configs, results)]


def record(config: jaxvae.Config, results: jaxvae.Results) -> dict:
    """The results record of one cell."""
    layers, objective, k = cell(config)
    m = results.metrics
    active = m["active_units"] if layers == 1 else _two_layer_active_units(results)
    return {"setting": config.to_dict(), "layers": layers, "objective": objective, "k": k,
            "nll": m["nll"], "stderr": m["nll_stderr"], "active_units": active,
            "steps": m["steps"], "passes": m["passes"], "train_seconds": m["train_seconds"],
            "group_size": m.get("group_size", 1),
            "eval_seconds": m["eval_seconds"], "num_test": m["num_test"],
            "metrics": m, "machine": machine()}


def markdown(records, args, missing) -> str:
    rows = []
    for r in sorted(records, key=lambda r: (r["layers"], r["objective"] != "vae", r["k"])):
        nll, au = PAPER.get((r["layers"], r["objective"], r["k"]), ("–", "–"))
        rows.append([r["layers"], r["objective"].upper(), r["k"],
                     f"{r['nll']:.2f} ± {r['stderr']:.2f}", nll, r["active_units"], au,
                     r["passes"], r["train_seconds"], r["eval_seconds"]])
    table = markdown_table(["layers", "objective", "k", "test NLL (ours)", "paper",
                            "active units (ours)", "paper", "passes", "train s", "eval s"], rows)
    n_test = records[0]["num_test"] if records else 0
    lines = [table, "", f"Test NLL: IWAE bound with k={args.eval_k} on {n_test} test images "
             f"(fixed binarization, seed {args.seed}); ± is the standard error over images. "
             f"Training: {args.data} [{args.split}], the paper's protocol "
             + (f"cut to {args.steps} steps" if args.steps else
                f"scaled by --passes-scale {args.passes_scale}")
             + f" (the paper: 3280 passes; ours in the passes column), batch "
             f"{args.batch_size}, dynamic binarization. Machine: {machine()}. "
             + ("Each model trained alone." if args.in_turn else
                "The VAE and IWAE of each (layers, k) trained as one program; train s is "
                "that program's."),
             "", "Command: `" + command_line("benchmarks/iwae_table.py", args.argv,
                                            drop=("--table-only",)) + "`"]
    if missing:
        lines += ["", "Not run within this budget: " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, "data")
    parser.add_argument("--split", default=None, help="default train+valid (train with --quick)")
    parser.add_argument("--passes-scale", type=float, default=0.002)
    add_common_flags(parser, "steps", "eval_k", helps={"steps": "override the step count"})
    parser.add_argument("--batch-size", type=int, default=schedules.IWAE_PAPER_BATCH_SIZE)
    parser.add_argument("--test-limit", type=int, default=None, help="first N test images")
    parser.add_argument("--layers", default="1,2")
    parser.add_argument("--ks", default="1,5,50")
    add_common_flags(parser, "seed", "out", "json", "quick", "no_progress",
                     helps={"json": "also write all records to this path",
                            "quick": "< 60 s: embedded data, 6 small runs"})
    parser.add_argument("--in-turn", action="store_true",
                        help="train each model alone (train_and_evaluate) instead of the VAE "
                             "and IWAE of each k as one program (train_runs)")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.split = args.split or "train"
        args.steps, args.eval_k = args.steps or 100, min(args.eval_k, 100)
        args.test_limit = args.test_limit or 200
        args.ks, args.no_progress = "1,5", True
    resolve_common(args, DEFAULT_OUT)
    args.split = args.split or "train+valid"
    try:
        layers = [int(v) for v in args.layers.split(",")]
        ks = [int(v) for v in args.ks.split(",")]
        if not set(layers) <= set(PRESET):
            raise ValueError("--layers takes 1 and/or 2")
        # k = 1: the VAE and IWAE objectives coincide, so one run serves both rows.
        plan = [make_config(n, obj, k, args) for n in layers for k in ks
                for obj in ("vae", "iwae") if not (k == 1 and obj == "iwae")]
        for config in plan:
            config.validate()
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))

    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else store.missing(plan)
    log(f"{machine()}; {len(plan) - len(store.missing(plan))} of {len(plan)} runs finished "
        f"in {store.path}")
    for group in jaxvae.experiment_runs.group_configs(todo):
        configs = [todo[i] for i in group]
        print("-- " + ", ".join(f"{n} layer(s) {obj.upper()} k={k}"
                                for n, obj, k in map(cell, configs)), flush=True)
        for rec in run_group(configs, not args.no_progress, args.in_turn):
            rec = store.add(rec)
            print(json.dumps({key: rec[key] for key in (
                "layers", "objective", "k", "nll", "stderr", "active_units", "steps", "passes",
                "train_seconds", "eval_seconds")}), flush=True)
    done = [store.get(c) for c in plan if store.done(c)]
    records = list(done)
    for r in done:   # the k = 1 row of IWAE is the k = 1 VAE run
        if r["k"] == 1 and r["objective"] == "vae":
            records.append(dict(r, objective="iwae"))
    missing = [f"{n}-layer {obj.upper()} k={k}"
               for n, obj, k in map(cell, store.missing(plan))]
    table = markdown(records, args, missing)
    write_table(args.out, table)
    if args.json:
        write_json(args.json, records)
    print(table)


if __name__ == "__main__":
    main()
