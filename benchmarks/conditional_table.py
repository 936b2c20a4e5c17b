"""What the label is worth: a conditional VAE's log p(x|c) against the same VAE's log p(x).

Two runs of ``jaxvae.train_and_evaluate`` with the same optimizer, batch, steps, seed and
evaluation; only the model differs: ``kingma-welling`` (784-500-20 tanh, p(x)) and ``cvae``
(the same network with the one-hot label concatenated to the encoder's and the decoder's
input, p(x|c)). Both test bounds are IWAE estimates with ``--eval-k`` samples on the same
fixed binarization of the first ``--test-limit`` test images.

What to expect. For exact models, E[log p(x|c) - log p(x)] = I(X; C) <= H(C) = log 10
= 2.303 nats on MNIST, since the label is a function of the image for almost every
digit. The two trained models are not exact, so the measured difference also holds the
difference of their fitting errors. The conditional model gives its own marginal,
log p_cvae(x) = logsumexp_c log p(x|c) - log 10 (uniform label prior), and within that one
model the identity log p(x|c) - log p_cvae(x) = log 10 + log p_cvae(c|x) holds exactly, so
the model is also a classifier, argmax_c p(x|c); its accuracy and cross-entropy are in the
table (with ``--class-k`` samples per label).

    python benchmarks/conditional_table.py --steps 5000 --test-limit 1000
    python benchmarks/conditional_table.py --quick          # < 2 min, embedded data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import jax
import numpy as np

import jaxvae
from jaxvae import run_steps

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

DEFAULT_OUT = os.path.join("benchmarks", "results", "conditional_table")
MODELS = ("kingma-welling", "cvae")


def make_config(model: str, args) -> jaxvae.Config:
    """One row's Config: the same budget and evaluation for both models."""
    return jaxvae.Config(model=model, objective="elbo", k=1, lr=args.lr,
                         batch_size=args.batch_size, steps=args.steps, seed=args.seed,
                         data=args.data, split="train", eval_k=args.eval_k,
                         eval_limit=args.test_limit)


def label_scores(results, config, class_k: int) -> dict:
    """The conditional model's own marginal and its accuracy as a classifier."""
    test = jaxvae.load(config.data, config.eval_split, dtype=run_steps.data_dtype(config))
    x, _ = run_steps.evaluation_images(config, test.images, config.seed)
    x, y = x[:config.eval_limit], test.labels[:config.eval_limit]
    table = jaxvae.condition_log_likelihoods(results.model, results.params, x,
                                             jax.random.PRNGKey(config.seed + 7), 10,
                                             num_samples=class_k)
    log_px = jax.nn.logsumexp(table, axis=1) - math.log(10)
    log_post = table - log_px[:, None] - math.log(10)              # log p(c|x)
    own = table[np.arange(len(y)), y]
    return {"class_k": class_k, "marginal": float(np.mean(log_px)),
            "own_label": float(np.mean(own)),
            "accuracy": float(np.mean(np.argmax(table, axis=1) == y)),
            "cross_entropy": float(-np.mean(log_post[np.arange(len(y)), y]))}


def run_one(config: jaxvae.Config, args) -> dict:
    results = jaxvae.train_and_evaluate(config, progress=not args.no_progress, pictures=False)
    m = results.metrics
    record = {"setting": config.to_dict(), "model": config.model,
              "log_p": -m["nll"], "stderr": m["nll_stderr"], "test_elbo": m["test_elbo"],
              "active_units": m["active_units"], "steps": m["steps"], "passes": m["passes"],
              "train_seconds": m["train_seconds"], "num_test": m["num_test"],
              "machine": machine()}
    if config.model == "cvae":
        record["labels"] = label_scores(results, config, args.class_k)
    return record


def markdown(records, args) -> str:
    by_model = {r["model"]: r for r in records}
    rows = [[r["model"], "log p(x|c)" if r["model"] == "cvae" else "log p(x)",
             f"{r['log_p']:.2f} ± {r['stderr']:.2f}", f"{r['test_elbo']:.2f}",
             r["active_units"], r["passes"], r["train_seconds"]] for r in records]
    lines = [markdown_table(["model", "bound on", f"test IWAE k={args.eval_k} (nats)",
                             "test ELBO", "active units", "passes", "train s"], rows), ""]
    if set(MODELS) <= set(by_model):
        c, u = by_model["cvae"], by_model["kingma-welling"]
        lab = c["labels"]
        diff = c["log_p"] - u["log_p"]
        lines += [
            f"- log p(x|c) - log p(x) = **{diff:.2f} nats** (two models; the information "
            f"bound is log 10 = {math.log(10):.3f}).",
            f"- The conditional model's own marginal, logsumexp_c log p(x|c) - log 10 "
            f"(k={lab['class_k']} per label): {lab['marginal']:.2f} nats, against "
            f"{lab['own_label']:.2f} at the true label (same k): a difference of "
            f"{lab['own_label'] - lab['marginal']:.2f} = log 10 - cross-entropy "
            f"({lab['cross_entropy']:.3f} nats).",
            f"- As a classifier, argmax_c p(x|c): accuracy {100 * lab['accuracy']:.1f} %.",
            f"- The two-model difference splits into the label's information within the "
            f"conditional model ({lab['own_label'] - lab['marginal']:.2f}, at most log 10) + "
            f"how much better its own marginal fits than the unconditional model "
            f"({lab['marginal'] - u['log_p']:.2f}) + the estimates' k ({c['log_p']:.2f} at "
            f"k={args.eval_k} vs {lab['own_label']:.2f} at k={lab['class_k']}: "
            f"{c['log_p'] - lab['own_label']:.2f}).", ""]
    n_test = records[0]["num_test"] if records else 0
    lines += [f"Budget (both rows): {args.steps} Adam steps at lr {args.lr}, batch "
              f"{args.batch_size}, ELBO (k=1), seed {args.seed}, data {args.data} [train]. "
              f"Test: the first {n_test} test images, binarized with a fixed draw (seed "
              f"{args.seed}); ± is the standard error over images. Machine: {machine()}.", "",
              "Command: `" + command_line("benchmarks/conditional_table.py", args.argv,
                                          drop=("--table-only",)) + "`"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--class-k", type=int, default=1000,
                        help="IWAE samples per label for the label scores")
    add_common_flags(parser, "data", "steps", "eval_k", "seed", "out", "json", "quick",
                     "no_progress", helps={"quick": "< 2 min: embedded data, tiny runs"})
    parser.add_argument("--test-limit", type=int, default=1000, help="first N test images")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.steps, args.eval_k, args.test_limit = args.steps or 30, min(args.eval_k, 10), 50
        args.class_k, args.no_progress = min(args.class_k, 5), True
    resolve_common(args, DEFAULT_OUT)
    args.steps = args.steps or 5000
    try:
        plan = [make_config(m, args).validate() for m in MODELS]
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))
    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else store.missing(plan)
    log(f"{machine()}; {len(plan) - len(todo)} of {len(plan)} runs finished in {store.path}")
    for config in todo:
        print(f"-- {config.model}", flush=True)
        record = store.add(run_one(config, args))
        print(json.dumps({k: record[k] for k in ("model", "log_p", "stderr", "train_seconds")}),
              flush=True)
    records = [store.get(c) for c in plan if store.done(c)]
    table = markdown(records, args)
    write_table(args.out, table)
    if args.json:
        write_json(args.json, records)
    print(table)


if __name__ == "__main__":
    main()
