"""Reproduce Table 1 of Burda, Grosse & Salakhutdinov (2015) on MNIST: VAE vs IWAE.

Trains VAE (k-sample ELBO) and IWAE (k-sample bound) for k in {1, 5, 50}, with one and two
stochastic layers, under the paper's protocol (Adam eps=1e-4, 8 stages of 3^i passes at
1e-3 * 10^(-i/7), batch 20, dynamic binarization, output bias = logit of the training
mean), shrunk by --passes-scale; evaluates the test log-likelihood with the IWAE bound at
k=5000 and the active units, and writes a markdown table beside the paper's numbers.

    python benchmarks/iwae_table.py --data npz:../shared/data/mnist.npz --passes-scale 0.002
    python benchmarks/iwae_table.py --quick          # < 60 s, embedded data, 4 small runs

Each finished model is stored in OUT/runs.jsonl; re-running the same command skips them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

import jaxvae
from jaxvae import data, evaluate, schedules, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine as machine_name  # noqa: E402

# Table 1 of Burda et al. (2015): test NLL (nats) and active units, MNIST.
PAPER = {
    (1, "vae", 1): (86.76, 19), (1, "vae", 5): (86.47, 20), (1, "vae", 50): (86.35, 20),
    (1, "iwae", 1): (86.76, 19), (1, "iwae", 5): (85.54, 22), (1, "iwae", 50): (84.78, 25),
    (2, "vae", 1): (85.33, "16+5"), (2, "vae", 5): (85.01, "17+5"), (2, "vae", 50): (84.78, "17+5"),
    (2, "iwae", 1): (85.33, "16+5"), (2, "iwae", 5): (83.89, "21+5"),
    (2, "iwae", 50): (82.90, "26+7"),
}


def _model(layers: int, train_mean):
    bias = jaxvae.mean_logit_init(train_mean)
    if layers == 1:
        return jaxvae.iwae_mlp(output_bias_init=bias)
    return jaxvae.iwae_two_layer(output_bias_init=bias)


def _active_units(layers: int, variances: np.ndarray) -> str | int:
    active = variances > 0.01
    if layers == 1:
        return int(active.sum())
    return f"{int(active[:100].sum())}+{int(active[100:].sum())}"


def run_one(layers, objective, k, train_x, test_x, args):
    """Trains one model and evaluates it; returns a result record."""
    model = _model(layers, train_x.mean(axis=0))
    loss_fn = jaxvae.make_loss(model, "elbo" if objective == "vae" else "iwae", k)
    steps_per_pass = len(train_x) // args.batch_size
    protocol = schedules.iwae_paper_optimizer(steps_per_pass, args.passes_scale)
    num_steps = args.steps or protocol.num_steps
    key_init, key_train, key_eval = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    state = train.create_train_state(model.init_params(key_init), protocol.tx, key_train)
    step = train.make_train_step(loss_fn, protocol.tx, preprocess=data.dynamic_binarization)
    start = time.time()
    state = train.fit(state, step, train_x, batch_size=args.batch_size, num_epochs=1,
                      num_steps=num_steps, seed=args.seed, progress=not args.no_progress)
    jax.block_until_ready(state.params)
    train_seconds = time.time() - start
    start = time.time()
    ll = evaluate.log_likelihood(model, state.params, test_x, key_eval, args.eval_k,
                                 progress=not args.no_progress)
    eval_seconds = time.time() - start
    _, variances = evaluate.active_units(model, state.params, test_x, key=jax.random.key(0))
    return {"layers": layers, "objective": objective, "k": k,
            "nll": float(-np.mean(ll)), "stderr": float(np.std(ll) / np.sqrt(len(ll))),
            "active_units": _active_units(layers, variances), "steps": int(num_steps),
            "passes": round(num_steps * args.batch_size / len(train_x), 2),
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1)}


def markdown(records, args, machine) -> str:
    lines = [
        "| layers | objective | k | test NLL (ours) | paper | active units (ours) | paper "
        "| passes | train s | eval s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(records, key=lambda r: (r["layers"], r["objective"] != "vae", r["k"])):
        nll, au = PAPER.get((r["layers"], r["objective"], r["k"]), ("–", "–"))
        lines.append(
            f"| {r['layers']} | {r['objective'].upper()} | {r['k']} | "
            f"{r['nll']:.2f} ± {r['stderr']:.2f} | {nll} | {r['active_units']} | {au} | "
            f"{r['passes']} | {r['train_seconds']} | {r['eval_seconds']} |")
    n_test = records[0]["num_test"] if records else 0
    lines += ["", f"Test NLL: IWAE bound with k={args.eval_k} on {n_test} test images "
              f"(fixed binarization, seed {args.seed}); ± is the standard error over images. "
              f"Training: {args.data} [{args.split}], the paper's protocol "
              + (f"cut to {args.steps} steps" if args.steps else
                 f"scaled by --passes-scale {args.passes_scale}")
              + f" (the paper: 3280 passes; ours in the passes column), batch "
              f"{args.batch_size}, dynamic binarization. Machine: {machine}.",
              "", "Command: `python "
              + " ".join(a for a in sys.argv if a != "--table-only") + "`"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="default npz:../shared/data/mnist.npz (embedded with --quick)")
    parser.add_argument("--split", default=None, help="default train+valid (train with --quick)")
    parser.add_argument("--passes-scale", type=float, default=0.002)
    parser.add_argument("--steps", type=int, default=None, help="override the step count")
    parser.add_argument("--batch-size", type=int, default=schedules.IWAE_PAPER_BATCH_SIZE)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--test-limit", type=int, default=None, help="first N test images")
    parser.add_argument("--layers", default="1,2")
    parser.add_argument("--ks", default="1,5,50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/iwae_table")
    parser.add_argument("--json", default=None, help="also write all records to this path")
    parser.add_argument("--quick", action="store_true", help="< 60 s: embedded data, 4 runs")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.data = args.data or "embedded"
        args.split = args.split or "train"
        args.steps, args.eval_k = args.steps or 100, min(args.eval_k, 100)
        args.test_limit = args.test_limit or 200
        args.ks, args.no_progress = "1,5", True
        args.out = args.out + "-quick"
    args.data = args.data or "npz:../shared/data/mnist.npz"
    args.split = args.split or "train+valid"

    train_x = data.load(args.data, args.split).images
    test_x = data.binarize_fixed(data.load(args.data, "test").images, seed=args.seed)
    if args.test_limit:
        test_x = test_x[:args.test_limit]
    os.makedirs(args.out, exist_ok=True)
    store = os.path.join(args.out, "runs.jsonl")
    setting = {"data": args.data, "split": args.split, "passes_scale": args.passes_scale,
               "steps": args.steps, "eval_k": args.eval_k, "num_test": int(len(test_x)),
               "batch_size": args.batch_size, "seed": args.seed}
    done = []
    if os.path.exists(store):
        done = [r for r in map(json.loads, open(store)) if r["setting"] == setting]
    machine = machine_name()
    print(f"{machine}; train {train_x.shape[0]} images, test {test_x.shape[0]}", flush=True)
    layers = [int(v) for v in args.layers.split(",")]
    ks = [int(v) for v in args.ks.split(",")]
    # k = 1: the VAE and IWAE objectives coincide, so one run serves both rows.
    plan = [(n, obj, k) for n in layers for k in ks for obj in ("vae", "iwae")
            if not (k == 1 and obj == "iwae")]
    for n, obj, k in plan:
        if args.table_only or any(
                (r["layers"], r["objective"], r["k"]) == (n, obj, k) for r in done):
            continue
        print(f"-- {n} layer(s), {obj.upper()}, k={k}", flush=True)
        record = run_one(n, obj, k, train_x, test_x, args)
        record.update(setting=setting, num_test=int(len(test_x)), machine=machine)
        print(json.dumps(record), flush=True)
        with open(store, "a") as f:
            f.write(json.dumps(record) + "\n")
        done.append(record)
    records = list(done)
    for r in done:   # the k = 1 row of IWAE is the k = 1 VAE run
        if r["k"] == 1 and r["objective"] == "vae":
            records.append(dict(r, objective="iwae"))
    missing = [f"{n}-layer {obj.upper()} k={k}" for n, obj, k in plan if not any(
        (r["layers"], r["objective"], r["k"]) == (n, obj, k) for r in done)]
    table = markdown(records, args, machine)
    if missing:
        table += "\n\nNot run within this budget: " + ", ".join(missing) + "."
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    print(table)


if __name__ == "__main__":
    main()
