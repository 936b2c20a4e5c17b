"""Conv VAEs against the MLP VAE at an equal budget: MNIST (binarized) and Fashion-MNIST (8-bit).

Every row is one ``jaxvae.Config`` run by ``jaxvae.train_and_evaluate`` with the same
optimizer, batch, number of steps, seed and evaluation; only the model (and on
Fashion-MNIST the likelihood) differs:

* MNIST, dynamically binarized, Bernoulli likelihood: the ``iwae`` MLP preset
  (784-200-200-50) and the ``conv`` preset with each of its three decoders;
* Fashion-MNIST, the 8-bit levels under a discretized logistic likelihood (nats and bits
  per dimension), MLP and conv.

Test NLL: the IWAE bound with ``--eval-k`` samples (5000) on the first ``--test-limit``
test images (fixed binarization for MNIST), ± the standard error over images.

    python benchmarks/conv_table.py --steps 1000 --test-limit 100 --rows 0,1,4,5
    python benchmarks/conv_table.py --quick          # < 2 min, embedded data, tiny runs

Finished rows are stored in OUT/runs.jsonl; re-running the same command skips them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

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

DEFAULT_OUT = os.path.join("benchmarks", "results", "conv_table")
#: (data flag, model, decoder, likelihood) of each row
ROWS = [("mnist", "iwae", None, "bernoulli"),
        ("mnist", "conv", "depth-to-space", "bernoulli"),
        ("mnist", "conv", "transposed", "bernoulli"),
        ("mnist", "conv", "unpool", "bernoulli"),
        ("fashion", "iwae", None, "logistic"),
        ("fashion", "conv", "depth-to-space", "logistic")]


def make_config(row, args) -> jaxvae.Config:
    """The Config of one row: the same budget and evaluation for every model."""
    data, model, decoder, likelihood = row
    return jaxvae.Config(
        model=model, decoder=decoder, likelihood=likelihood, objective=args.objective,
        channels=args.channels if model == "conv" else None,
        k=args.k, lr=args.lr, batch_size=args.batch_size, steps=args.steps, seed=args.seed,
        data=getattr(args, data), split="train", eval_k=args.eval_k,
        eval_limit=args.test_limit)


def describe(config: jaxvae.Config) -> str:
    if config.model == "conv":
        return f"conv, {config.decoder} decoder"
    return "MLP (iwae preset)"


def run_one(config: jaxvae.Config, progress: bool) -> dict:
    results = jaxvae.train_and_evaluate(config, progress=progress, pictures=False)
    m = results.metrics
    num_params = sum(p.size for p in jax_leaves(results.params))
    return {"setting": config.to_dict(), "model": describe(config), "data": config.data,
            "likelihood": config.likelihood, "nll": m["nll"], "stderr": m["nll_stderr"],
            "bits_per_dim": m["bits_per_dim"], "test_data": m["test_data"],
            "active_units": m["active_units"], "num_params": int(num_params),
            "steps": m["steps"], "passes": m["passes"], "train_seconds": m["train_seconds"],
            "eval_seconds": m["eval_seconds"], "num_test": m["num_test"], "machine": machine()}


def jax_leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def markdown(records, args, missing) -> str:
    rows = [[r["data"], r["model"], r["likelihood"], f"{r['nll']:.2f} ± {r['stderr']:.2f}",
             f"{r['bits_per_dim']:.4f}", r["active_units"], f"{r['num_params']:,}",
             r["passes"], r["train_seconds"], r["eval_seconds"]] for r in records]
    table = markdown_table(["data", "model", "likelihood", "test NLL (nats)", "bits/dim",
                            "active units", "parameters", "passes", "train s", "eval s"], rows)
    n_test = records[0]["num_test"] if records else 0
    lines = [table, "",
             f"Conv rows: channels {args.channels}, dense 256, 32 latents. "
             f"Budget (every row): {args.steps} Adam steps at lr {args.lr}, batch "
             f"{args.batch_size}, objective {args.objective} (k={args.k}), seed {args.seed}, "
             f"the training split. Test NLL: IWAE bound with k={args.eval_k} on the first "
             f"{n_test} test images; ± is the standard error over images. MNIST: dynamic "
             "binarization for training, a fixed binarization (the seed) for the test set; "
             "Fashion-MNIST: the 8-bit levels 0..255 under a discretized logistic, bits/dim "
             f"= NLL / (784 ln 2). Machine: {machine()}.", "",
             "Command: `" + command_line("benchmarks/conv_table.py", args.argv,
                                         drop=("--table-only",)) + "`"]
    if missing:
        lines += ["", "Not run within this budget: " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default="npz:../shared/data/mnist.npz",
                        help="MNIST data name (binarized, Bernoulli rows)")
    parser.add_argument("--fashion", default="fashion-mnist",
                        help="Fashion-MNIST data name (8-bit, discretized logistic rows)")
    parser.add_argument("--channels", type=lambda t: tuple(int(c) for c in t.split(",")),
                        default=(16, 32), help="conv channels per level (28x28: two levels)")
    parser.add_argument("--objective", default="elbo")
    parser.add_argument("-k", type=int, default=1, help="samples in the training objective")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    add_common_flags(parser, "steps", "eval_k", "seed", "out", "json", "quick",
                     "no_progress", helps={"steps": "training steps of every row",
                                           "quick": "< 2 min: embedded data, tiny runs"})
    parser.add_argument("--test-limit", type=int, default=500, help="first N test images")
    parser.add_argument("--rows", default=None,
                        help="comma-separated row numbers (0-based) to run; default all")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.mnist = args.fashion = "embedded"
        args.steps, args.eval_k, args.test_limit = args.steps or 30, min(args.eval_k, 20), 50
        args.no_progress = True
    resolve_common(args, DEFAULT_OUT)
    args.steps = args.steps or 3000
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    try:
        plan = [make_config(row, args).validate() for row in rows]
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))

    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else store.missing(plan)
    log(f"{machine()}; {len(plan) - len(todo)} of {len(plan)} runs finished in {store.path}")
    for config in todo:
        print(f"-- {config.data}: {describe(config)}, {config.likelihood}", flush=True)
        record = store.add(run_one(config, progress=not args.no_progress))
        print(json.dumps({k: record[k] for k in ("model", "data", "nll", "stderr",
                                                 "bits_per_dim", "train_seconds")}), flush=True)
    records = [store.get(c) for c in plan if store.done(c)]
    missing = [f"{c.data} {describe(c)}" for c in store.missing(plan)]
    table = markdown(records, args, missing)
    write_table(args.out, table)
    if args.json:
        write_json(args.json, records)
    print(table)


if __name__ == "__main__":
    main()
