"""Test NLL of a flow-posterior VAE against the number of flows (Rezende & Mohamed, 2015).

Trains the DLGM+NF setting of the NF paper on MNIST (the preset ``nf``: 40 latents, one
tanh layer of 400 units on each side, the encoder emitting K planar flows per x) for K in
{0, 2, 10, 40, 80}, plus IAF (Kingma et al., 2016), all with the one-sample ELBO, Adam
with a cosine decay (``protocol="cosine"``) and the same number of steps, and reports
the test NLL (IWAE bound, k = 5000) and the test ELBO beside the paper's trend. Each model
is one ``jaxvae.Config`` run by ``jaxvae.train_and_evaluate``.

    python benchmarks/nf_table.py --data npz:../shared/data/mnist.npz --steps 6000
    python benchmarks/nf_table.py --quick          # < 60 s, embedded data, 3 small runs

Each finished model is stored in OUT/runs.jsonl; re-running the same command skips it,
and the table lists the ones not run yet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jaxvae
from jaxvae import flows

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

DEFAULT_OUT = os.path.join("benchmarks", "results", "nf_table")
# Rezende & Mohamed (2015), Table 2 (MNIST): upper bounds on -log p(x) in nats, i.e. the
# negative ELBO; only the end points quoted here.
PAPER = {("diagonal", 0): "≤ 89.9", ("planar", 80): "≤ 85.1"}
DEFAULT_CONFIGS = "planar:0,planar:2,planar:10,planar:40,planar:80,iaf:4"


def parse_configs(text: str):
    """``"planar:0,iaf:4"`` -> [("planar", 0), ("iaf", 4)]; raises ValueError."""
    configs = []
    for item in text.split(","):
        flow, _, k = item.partition(":")
        if flow not in flows.FLOWS or not k.isdigit():
            raise ValueError(f"bad config {item!r}: expected FLOW:K with FLOW in "
                             f"{list(flows.FLOWS)} and K >= 0")
        configs.append((flow, int(k)))
    return configs


def make_config(flow: str, num_flows: int, args) -> jaxvae.Config:
    """The Config of one row: the ``nf`` preset, one-sample ELBO, cosine-decayed Adam
    (K = 0 is the diagonal Gaussian whatever the flow, so its flow is left unset)."""
    return jaxvae.Config(
        model="nf", flow=flow if num_flows else None, num_flows=num_flows, objective="elbo", k=1,
        protocol="cosine", lr=args.lr, steps=args.steps, batch_size=args.batch_size,
        seed=args.seed, data=args.data, split=args.split, eval_k=args.eval_k,
        eval_limit=args.test_limit)


def posterior(config: jaxvae.Config) -> str:
    return config.flow if config.num_flows else "diagonal"


def run_one(config: jaxvae.Config, progress: bool) -> dict:
    """Trains and evaluates one Config; returns its results record."""
    m = jaxvae.train_and_evaluate(config, progress=progress, pictures=False).metrics
    return {"setting": config.to_dict(), "flow": posterior(config),
            "num_flows": config.num_flows, "nll": m["nll"], "stderr": m["nll_stderr"],
            "elbo": m["test_elbo"], "active_units": m["active_units"], "steps": m["steps"],
            "passes": m["passes"], "train_seconds": m["train_seconds"],
            "eval_seconds": m["eval_seconds"], "num_test": m["num_test"], "metrics": m,
            "machine": machine()}


def markdown(records, args, missing) -> str:
    rows = [[r["flow"], r["num_flows"], f"{r['nll']:.2f} ± {r['stderr']:.2f}",
             f"{-r['elbo']:.2f}", PAPER.get((r["flow"], r["num_flows"]), "–"),
             r["active_units"], r["passes"], r["train_seconds"], r["eval_seconds"]]
            for r in sorted(records, key=lambda r: (r["flow"] == "iaf", r["num_flows"]))]
    table = markdown_table(["posterior", "K", f"test NLL, IWAE k={args.eval_k} (ours)",
                            "−ELBO (ours)", "paper (−ELBO)", "active units", "passes",
                            "train s", "eval s"], rows)
    n_test = records[0]["num_test"] if records else 0
    lines = [table, "", f"Test NLL: IWAE bound with k={args.eval_k} on the first {n_test} "
             f"test images (fixed binarization, seed {args.seed}); ± is the standard error "
             f"over images. −ELBO: one sample per image on the same images. Training: "
             f"{args.data} [{args.split}], {args.steps} Adam steps (lr {args.lr}, cosine "
             f"decay to lr/10), batch {args.batch_size}, dynamic binarization, ELBO with one "
             f"sample; the paper trains for 500k updates. Machine: {machine()}.",
             "", "Command: `" + command_line("benchmarks/nf_table.py", args.argv,
                                            drop=("--table-only",)) + "`"]
    if missing:
        lines += ["", "Not run within this budget: " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, "data")
    parser.add_argument("--split", default=None, help="default train+valid (train with --quick)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="FLOW:K,... to train")
    add_common_flags(parser, "steps", defaults={"steps": 6000})
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    add_common_flags(parser, "eval_k")
    parser.add_argument("--test-limit", type=int, default=1000, help="first N test images")
    add_common_flags(parser, "seed", "out", "json", "quick", "no_progress",
                     helps={"json": "also write all records to this path",
                            "quick": "< 60 s: embedded data, 3 small runs"})
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.split = args.split or "train"
        args.steps, args.eval_k, args.test_limit = 150, min(args.eval_k, 100), 200
        args.configs, args.no_progress = "planar:0,planar:2,iaf:2", True
    resolve_common(args, DEFAULT_OUT)
    args.split = args.split or "train+valid"
    try:
        plan = [make_config(flow, k, args).validate() for flow, k in parse_configs(args.configs)]
        plan = [c for i, c in enumerate(plan) if c not in plan[:i]]   # planar:0 = iaf:0
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))

    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else store.missing(plan)
    log(f"{machine()}; {len(plan) - len(store.missing(plan))} of {len(plan)} runs finished "
        f"in {store.path}")
    for config in todo:
        print(f"-- {posterior(config)} K={config.num_flows}", flush=True)
        record = store.add(run_one(config, progress=not args.no_progress))
        print(json.dumps({key: record[key] for key in (
            "flow", "num_flows", "nll", "stderr", "elbo", "active_units", "steps", "passes",
            "train_seconds", "eval_seconds")}), flush=True)
    done = [store.get(c) for c in plan if store.done(c)]
    missing = [f"{posterior(c)} K={c.num_flows}" for c in store.missing(plan)]
    table = markdown(done, args, missing)
    write_table(args.out, table)
    if args.json:
        write_json(args.json, done)
    print(table)


if __name__ == "__main__":
    main()
