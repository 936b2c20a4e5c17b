"""DRAW on binarized MNIST, with and without attention, at a stated budget.

Every row is one ``jaxvae.Config(model="draw", ...)`` run by ``jaxvae.train_and_evaluate``
with the same LSTM width, latent size, number of glimpses, optimizer, batch, steps, seed
and evaluation; only the read and write differ (the whole image and a dense write, or the
paper's 2x2 read and 5x5 write attention grids). Each run directory is kept under
OUT/runs/ (``examples/draw.py --run DIR`` draws its figures).

Test NLL: the IWAE bound with ``--eval-k`` samples (5000) on the first ``--test-limit``
test images (a fixed binarization), ± the standard error over images, beside the ELBO
(k=1) on the same images and the KL summed over the steps. Gregor et al. (2015) report
<= 87.40 nats without and <= 80.97 with attention (T=64, on the fixed binarization of
Larochelle & Murray, after training to convergence).

    python benchmarks/draw_table.py --draw-steps 32 --steps 1000 --test-limit 100
    python benchmarks/draw_table.py --quick          # < 2 min, embedded data, tiny runs

Finished rows are stored in OUT/runs.jsonl; re-running the same command skips them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax

import jaxvae

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

DEFAULT_OUT = os.path.join("benchmarks", "results", "draw_table")
#: (name, attention grid sizes) of each row
ROWS = [("no attention", None), ("attention", (2, 5))]
#: the paper's bounds (Gregor et al., 2015, Table 2), T = 64
PAPER = {"no attention": "<= 87.40", "attention": "<= 80.97"}


def make_config(row, args) -> jaxvae.Config:
    """The Config of one row: the same budget and evaluation for both reads."""
    _, attention = row
    return jaxvae.Config(
        model="draw", attention=attention, draw_steps=args.draw_steps,
        latent_dim=args.latent_dim, hidden=(args.hidden,), objective="elbo", k=1, lr=args.lr,
        batch_size=args.batch_size, steps=args.steps, seed=args.seed, data=args.data,
        split="train", eval_k=args.eval_k, eval_limit=args.test_limit)


def run_dir(args, row) -> str:
    return os.path.join(args.out, "runs", row[0].replace(" ", "-"))


def run_one(row, config: jaxvae.Config, args) -> dict:
    results = jaxvae.train_and_evaluate(config, run_dir(args, row), overwrite=True,
                                        progress=not args.no_progress)
    m = results.metrics
    num_params = sum(p.size for p in jax.tree_util.tree_leaves(results.params))
    return {"setting": config.to_dict(), "model": row[0], "nll": m["nll"],
            "stderr": m["nll_stderr"], "elbo": m["test_elbo"], "kl": sum(m["kl_per_step"]),
            "kl_per_step": m["kl_per_step"], "num_params": int(num_params),
            "steps": m["steps"], "passes": m["passes"], "train_seconds": m["train_seconds"],
            "eval_seconds": m["eval_seconds"], "num_test": m["num_test"],
            "run_dir": run_dir(args, row), "machine": machine()}


def markdown(records, args, missing) -> str:
    rows = [[r["model"], f"{r['nll']:.2f} ± {r['stderr']:.2f}", f"{-r['elbo']:.2f}",
             f"{r['kl']:.2f}", PAPER[r["model"]], f"{r['num_params']:,}", r["passes"],
             r["train_seconds"], r["eval_seconds"]] for r in records]
    table = markdown_table(["DRAW", f"test NLL, IWAE k={args.eval_k} (nats)",
                            "-ELBO (nats)", "KL (nats)", "paper (T=64, converged)",
                            "parameters", "passes", "train s", "eval s"], rows)
    n_test = records[0]["num_test"] if records else 0
    lines = [table, "",
             f"Budget (every row): T = {args.draw_steps} glimpses, LSTM {args.hidden}, "
             f"z_t of {args.latent_dim}; {args.steps} Adam steps at lr {args.lr}, batch "
             f"{args.batch_size}, the ELBO with one z per image, seed {args.seed}, data "
             f"{args.data} (training split, dynamic binarization). Test: the first {n_test} "
             "test images, a fixed binarization; ± is the standard error over images; the "
             f"ELBO and KL on one z per image. Machine: {machine()}.", "",
             "Command: `" + command_line("benchmarks/draw_table.py", args.argv,
                                         drop=("--table-only",)) + "`"]
    if missing:
        lines += ["", "Not run within this budget: " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="npz:../shared/data/mnist.npz")
    parser.add_argument("--draw-steps", type=int, default=32, help="glimpses T")
    parser.add_argument("--hidden", type=int, default=256, help="LSTM width")
    parser.add_argument("--latent-dim", type=int, default=100, help="size of each z_t")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    add_common_flags(parser, "steps", "eval_k", "seed", "out", "json", "quick",
                     "no_progress", helps={"steps": "training steps of every row",
                                           "quick": "< 2 min: embedded data, tiny runs"})
    parser.add_argument("--test-limit", type=int, default=100, help="first N test images")
    parser.add_argument("--rows", default=None,
                        help="comma-separated row numbers (0-based) to run; default all")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.data, args.draw_steps, args.hidden, args.latent_dim = "embedded", 4, 32, 8
        args.steps, args.eval_k, args.test_limit = args.steps or 20, min(args.eval_k, 10), 20
        args.no_progress = True
    resolve_common(args, DEFAULT_OUT)
    args.steps = args.steps or 1000
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    try:
        plan = [(row, make_config(row, args).validate()) for row in rows]
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))

    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else [(r, c) for r, c in plan if not store.done(c)]
    log(f"{machine()}; {len(plan) - len(todo)} of {len(plan)} runs finished in {store.path}")
    for row, config in todo:
        print(f"-- DRAW, {row[0]}", flush=True)
        record = store.add(run_one(row, config, args))
        print(json.dumps({k: record[k] for k in ("model", "nll", "stderr", "elbo", "kl",
                                                 "train_seconds")}), flush=True)
    records = [store.get(c) for _, c in plan if store.done(c)]
    missing = [row[0] for row, c in plan if not store.done(c)]
    table = markdown(records, args, missing)
    write_table(args.out, table)
    if args.json:
        write_json(args.json, records)
    print(table)


if __name__ == "__main__":
    main()
