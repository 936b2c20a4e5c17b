"""Test NLL of a flow-posterior VAE against the number of flows (Rezende & Mohamed, 2015).

Trains the DLGM+NF setting of the NF paper on MNIST (40 latents, one tanh layer of 400
units on each side, the encoder emitting K planar flows per x) for K in {0, 2, 10, 40,
80}, plus IAF (Kingma et al., 2016), all with the ELBO and the same number of steps, and
reports the test NLL (IWAE bound, k = 5000) and the test ELBO beside the paper's trend.

    python benchmarks/nf_table.py --data npz:../shared/data/mnist.npz --steps 6000
    python benchmarks/nf_table.py --quick          # < 60 s, embedded data, 3 small runs

Each finished model is stored in OUT/runs.jsonl; re-running the same command skips it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

from jaxvae import data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine as machine_name  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "flow_vae", os.path.join(_ROOT, "examples", "flow_vae.py"))
flow_vae = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flow_vae)

# Rezende & Mohamed (2015), Table 2 (MNIST): upper bounds on -log p(x) in nats, i.e. the
# negative ELBO; only the end points quoted here.
PAPER = {("diagonal", 0): "≤ 89.9", ("planar", 80): "≤ 85.1"}
DEFAULT_CONFIGS = "planar:0,planar:2,planar:10,planar:40,planar:80,iaf:4"


def parse_configs(text: str):
    """``"planar:0,iaf:4"`` -> [("planar", 0), ("iaf", 4)]; raises ValueError."""
    configs = []
    for item in text.split(","):
        flow, _, k = item.partition(":")
        if flow not in flow_vae.jaxvae.flows.FLOWS or not k.isdigit():
            raise ValueError(f"bad config {item!r}: expected FLOW:K with FLOW in "
                             f"{list(flow_vae.jaxvae.flows.FLOWS)} and K >= 0")
        configs.append((flow, int(k)))
    return configs


def markdown(records, args, machine) -> str:
    lines = [f"| posterior | K | test NLL, IWAE k={args.eval_k} (ours) | −ELBO (ours) "
             "| paper (−ELBO) | active units | passes | train s | eval s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(records, key=lambda r: (r["flow"] == "iaf", r["num_flows"])):
        paper = PAPER.get((r["flow"], r["num_flows"]), "–")
        lines.append(f"| {r['flow']} | {r['num_flows']} | {r['nll']:.2f} ± {r['stderr']:.2f} "
                     f"| {-r['elbo']:.2f} | {paper} | {r['active_units']} | {r['passes']} "
                     f"| {r['train_seconds']} | {r['eval_seconds']} |")
    n_test = records[0]["num_test"] if records else 0
    lines += ["", f"Test NLL: IWAE bound with k={args.eval_k} on the first {n_test} test "
              f"images (fixed binarization, seed {args.seed}); ± is the standard error over "
              f"images. −ELBO: one sample per image on the same images. Training: "
              f"{args.data} [{args.split}], {args.steps} Adam steps (lr {args.lr}, cosine "
              f"decay to lr/10), batch {args.batch_size}, dynamic binarization, ELBO with one "
              f"sample; the paper trains for 500k updates. Machine: {machine}.",
              "", "Command: `python " + " ".join(a for a in sys.argv if a != "--table-only")
              + "`"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="default npz:../shared/data/mnist.npz (embedded with --quick)")
    parser.add_argument("--split", default=None, help="default train+valid (train with --quick)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="FLOW:K,... to train")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--test-limit", type=int, default=1000, help="first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/nf_table")
    parser.add_argument("--json", default=None, help="also write all records to this path")
    parser.add_argument("--quick", action="store_true", help="< 60 s: embedded data, 3 runs")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.data = args.data or "embedded"
        args.split = args.split or "train"
        args.steps, args.eval_k, args.test_limit = 150, min(args.eval_k, 100), 200
        args.configs, args.no_progress = "planar:0,planar:2,iaf:2", True
        args.out = args.out + "/quick"
    args.data = args.data or "npz:../shared/data/mnist.npz"
    args.split = args.split or "train+valid"
    try:
        configs = parse_configs(args.configs)
    except ValueError as err:
        parser.error(str(err))

    train_x = data.load(args.data, args.split).images
    test_x = data.binarize_fixed(data.load(args.data, "test").images, seed=args.seed)
    test_x = test_x[:args.test_limit]
    os.makedirs(args.out, exist_ok=True)
    store = os.path.join(args.out, "runs.jsonl")
    setting = {"data": args.data, "split": args.split, "steps": args.steps, "lr": args.lr,
               "eval_k": args.eval_k, "num_test": int(len(test_x)),
               "batch_size": args.batch_size, "seed": args.seed}
    done = []
    if os.path.exists(store):
        done = [r for r in map(json.loads, open(store)) if r["setting"] == setting]
    machine = machine_name()
    print(f"{machine}; train {train_x.shape[0]} images, test {test_x.shape[0]}", flush=True)

    def finished(flow, k):
        return any((r["flow"], r["num_flows"]) == (flow if k else "diagonal", k) for r in done)

    for flow, k in configs:
        if args.table_only or finished(flow, k):
            continue
        print(f"-- {flow} K={k}", flush=True)
        record = flow_vae.train_and_evaluate(
            flow, k, train_x, test_x, steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, eval_k=args.eval_k, seed=args.seed, progress=not args.no_progress)
        record.update(setting=setting, num_test=int(len(test_x)), machine=machine)
        print(json.dumps(record), flush=True)
        with open(store, "a") as f:
            f.write(json.dumps(record) + "\n")
        done.append(record)
    table = markdown(done, args, machine)
    missing = [f"{flow} K={k}" for flow, k in configs if not finished(flow, k)]
    if missing:
        table += "\n\nNot run within this budget: " + ", ".join(missing) + "."
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(done, f, indent=2)
    print(table)


if __name__ == "__main__":
    main()
