"""Sentence VAE against an RNN language model: NLL, KL and perplexity on WordNet sentences.

In the manner of Bowman et al. (2016, Table 2): the same LSTM decoder trained as a language
model (``rnn-lm``: no z) and as the decoder of a sentence VAE (``sentence-vae``: LSTM
encoder, Gaussian z, the decoder's initial state a linear map of z), each with the normal
decoder (``word_keep`` 1: it reads the previous word at every step) and the inputless
decoder (``word_keep`` 0: every input word is ``<unk>``, so the decoder knows only z and
the position). No row uses word dropout (examples/sentence_vae.py shows its effect). All
rows have the same decoder (embedding and LSTM width, vocabulary, sentence length) and the
same training budget (Adam, batch, steps, seed), and run through
``jaxvae.train_and_evaluate``.
The VAE rows train on the ELBO with the closed-form KL and a linear KL annealing from 0
to 1 over ``--anneal-steps`` steps (Bowman et al.'s fix for the collapse of the KL; see
examples/sentence_vae.py); the language model's bound is log p(x) itself.

Evaluation on the first ``--test-limit`` sentences of the WordNet test split
(:func:`jaxvae.sentences.text_metrics`): NLL per sentence, -log p(x), by importance sampling
with ``--eval-k`` samples for the VAE (an upper bound in expectation, tightening with k) and
exactly for the language model (its q and p(z) are over an empty vector, so one sample is
exact); the KL(q(z|x) || p(z)) (the rate); PPL = exp(total NLL / tokens) with the tokens
counting the words and each sentence's ``<eos>``; the mutual information I_q(x; z) and the
active units.

Default budget: 800 Adam steps per row (lr 1e-3, batch 64: 1.18 passes over the 43,400
training sentences; the VAE's annealing over the first 400), LSTM width 128, embeddings
128, 16 latent units, a vocabulary of 3,097 tokens (the words seen at least 10 times and
the 4 specials), sentences cut to 15 words, k = 100 on the first 1000 test sentences. The
committed run took about 31 minutes (1847 s of training and evaluation, 5-7.5 minutes of
training per row) on 2 CPU cores shared with other work; the train and evaluation seconds
of each row are in the table. Finished rows are kept in OUT/runs.jsonl and skipped by a
rerun; ``--table-only`` rewrites the table from them.

    python benchmarks/sentence_table.py
    python benchmarks/sentence_table.py --quick --out /tmp/sentence_table   # smoke run:
        # two rows (LM normal, VAE inputless), a tiny model, 20 steps, < 40 s
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jaxvae
from jaxvae.experiment import load_sentences

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    ResultsStore,
    add_common_flags,
    command_line,
    log,
    machine,
    markdown_table,
    resolve_common,
    write_table,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "sentence_table")
#: (model, word_keep) of the rows, in table order
ROWS = (("rnn-lm", 1.0), ("sentence-vae", 1.0), ("rnn-lm", 0.0), ("sentence-vae", 0.0))
#: --quick: the language model with the normal decoder, the VAE with the inputless one
QUICK_ROWS = (("rnn-lm", 1.0), ("sentence-vae", 0.0))
QUICK = {"steps": 20, "hidden": 16, "embed_dim": 16, "latent_dim": 4, "min_count": 40,
         "max_length": 8, "test_limit": 40, "eval_k": 4, "batch_size": 32}
FULL = {"steps": 800, "hidden": 128, "embed_dim": 128, "latent_dim": 16, "min_count": 10,
        "max_length": 15, "test_limit": 1000, "eval_k": 100, "batch_size": 64}


def make_config(model: str, word_keep: float, args) -> jaxvae.Config:
    """One row's Config: the same decoder, data and budget for every row."""
    common = dict(model=model, objective="elbo", k=1, hidden=(args.hidden,),
                  embed_dim=args.embed_dim, max_length=args.max_length,
                  min_count=args.min_count, word_keep=word_keep, lr=args.lr,
                  batch_size=args.batch_size, steps=args.steps, seed=args.seed,
                  data=args.data, split="train", eval_split="test",
                  eval_limit=args.test_limit)
    if model == "rnn-lm":               # log p(x) is exact: one "sample" suffices
        return jaxvae.Config(**common, eval_k=1)
    return jaxvae.Config(**common, latent_dim=args.latent_dim, analytic_kl=True,
                         annealing="linear", annealing_steps=args.anneal_steps,
                         eval_k=args.eval_k)


def decoder_name(word_keep: float) -> str:
    if word_keep == 1.0:
        return "normal (keep 1)"
    if word_keep == 0.0:
        return "inputless (keep 0)"
    return f"word dropout (keep {word_keep:g})"


def run_one(config: jaxvae.Config, args) -> dict:
    results = jaxvae.train_and_evaluate(config, progress=not args.no_progress, pictures=False)
    m = results.metrics
    keys = ("nll", "nll_stderr", "elbo", "kl", "kl_per_unit", "ppl", "mutual_information",
            "active_units", "eval_k", "words_per_sentence", "num_sentences", "steps",
            "passes", "train_seconds", "eval_seconds")
    return {"setting": config.to_dict(), "model": config.model,
            "word_keep": config.word_keep, **{k: m[k] for k in keys}, "machine": machine()}


def markdown(records, args, vocab_size: int, cut: int, num_train: int) -> str:
    rows = []
    for r in records:
        name = "VAE" if r["model"] == "sentence-vae" else "RNN LM"
        nll = f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}"
        rows.append([name, decoder_name(r["word_keep"]),
                     nll + ("" if r["model"] == "rnn-lm" else f" (k={r['eval_k']})"),
                     f"{r['kl']:.2f}", f"{r['ppl']:.1f}", f"{-r['elbo']:.2f}",
                     f"{r['mutual_information']:.2f}",
                     "–" if r["model"] == "rnn-lm" else f"{r['active_units']} / "
                     f"{args.latent_dim}", f"{r['train_seconds']:.0f} + {r['eval_seconds']:.0f}"])
    n_test = records[0]["num_sentences"] if records else 0
    words = records[0]["words_per_sentence"] if records else 0
    found = []
    by_row = {(r["model"], r["word_keep"]): r for r in records}
    for keep, label in ((1.0, "normal"), (0.0, "inputless")):
        vae, lm = by_row.get(("sentence-vae", keep)), by_row.get(("rnn-lm", keep))
        if vae and lm:
            found.append(f"with the {label} decoder, VAE - LM = {vae['nll'] - lm['nll']:+.2f} "
                         f"nats per sentence (PPL {vae['ppl']:.1f} against {lm['ppl']:.1f}) "
                         f"at a KL of {vae['kl']:.2f} nats")
    measured = []
    if found:
        kls = [r["kl"] for r in records if r["model"] == "sentence-vae"]
        measured = ["Measured here: " + "; ".join(found) + " (negative: the VAE fits better; "
                    "the ± in the table are over sentences, and the rows share the test "
                    "sentences, so they overstate the noise of a difference)." + (
                        f" The VAE's KL was at most {max(kls):.2f} nats in every row: at "
                        "this budget the code is nearly unused, so the differences in NLL "
                        "come from how the decoders were trained (an initial state read "
                        "from a noisy z, the annealed objective), not from information in z, "
                        "which the KL bounds." if
                        max(kls) < 1.0 else ""), ""]
    lines = [
        "# Sentence VAE vs RNN language model (WordNet example sentences)", "",
        markdown_table(["model", "decoder input in training", "NLL (nats / sentence)",
                        "KL (nats)", "PPL", "-ELBO", "MI (nats)", "active units",
                        "train + eval s"], rows), "",
        f"NLL: -log p(x) per test sentence, the IWAE estimate with k samples for the VAE "
        f"(exact for the language model), ± its standard error over sentences; KL: the mean "
        f"KL(q(z|x) || p(z)); PPL = exp(total NLL / tokens), {words:.2f} tokens per "
        f"sentence (words and <eos>); -ELBO: one-sample negative ELBO per sentence (equal "
        f"to the NLL for the language model up to rounding); MI: I_q(x; z), the encoder's "
        f"mutual information (at most log N); active units: posterior-mean variance > 0.01. "
        f"All on the first {n_test} sentences of the test split; words outside the "
        f"vocabulary are <unk>, as in training.", "",
        f"Budget, every row: {args.steps} Adam steps at lr {args.lr:g}, batch "
        f"{args.batch_size} ({args.steps * args.batch_size / num_train:.2f} passes over "
        f"{num_train} training sentences), seed {args.seed}; one LSTM layer of "
        f"{args.hidden} units, embeddings of {args.embed_dim}, vocabulary of {vocab_size} "
        f"tokens (words seen >= {args.min_count} times and 4 specials), sentences cut to "
        f"{args.max_length} words ({cut} training sentences were cut). VAE rows: "
        f"{args.latent_dim}-d z, ELBO with the closed-form KL, KL weight annealed linearly "
        f"from 0 to 1 over {args.anneal_steps} steps; word dropout only where the row says "
        f"so. Machine: {machine()}.", "",
        "What to compare. Bowman et al. (2016, Table 2) found that with the normal decoder "
        "the VAE's likelihood is about that of the language model (the decoder can lean on "
        "the previous words, and the KL it keeps is small), while with the inputless "
        "decoder the VAE is far better than the language model, which then knows only the "
        "position: the VAE's advantage shows where the decoder cannot lean on its input, "
        "and there the code carries much of the sentence (a large KL). Published "
        "reproductions on the Penn Treebank (Texar's VAE-LSTM: test PPL 105.5, NLL 102.1; "
        "timbmg/Sentence-VAE: NLL 104.0, KL 7.3) are on PTB with other vocabularies, "
        "models and budgets, not on this corpus, so they are not comparable with the "
        "numbers here.", "", *measured,
        "Command: `" + command_line("benchmarks/sentence_table.py", args.argv,
                                    drop=("--table-only",)) + "`"]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=None, help="LSTM width (128)")
    parser.add_argument("--embed-dim", type=int, default=None, help="embedding width (128)")
    parser.add_argument("--latent-dim", type=int, default=None, help="VAE latent units (16)")
    parser.add_argument("--min-count", type=int, default=None,
                        help="vocabulary: words seen at least this often (10)")
    parser.add_argument("--max-length", type=int, default=None, help="words per sentence (15)")
    parser.add_argument("--batch-size", type=int, default=None, help="(64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--anneal-steps", type=int, default=None,
                        help="steps of the linear KL annealing (default: half of --steps)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="first N test sentences (1000)")
    add_common_flags(parser, "data", "steps", "eval_k", "seed", "out", "json", "quick",
                     "no_progress", defaults={"data": "wordnet", "eval_k": None},
                     helps={"quick": "smoke run: a tiny model, 20 steps, two rows",
                            "eval_k": "importance samples of the VAE's NLL (100)",
                            "data": "sentences: wordnet (embedded) or text:PATH"})
    parser.add_argument("--table-only", action="store_true",
                        help="write the table from the finished runs in OUT, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.anneal_steps is None:
        args.anneal_steps = max(1, args.steps // 2)
    if args.quick:
        args.no_progress = True
    resolve_common(args, DEFAULT_OUT)
    try:
        plan = [make_config(m, w, args).validate() for m, w in
                (QUICK_ROWS if args.quick else ROWS)]
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))
    return args, plan


def main(argv=None):
    args, plan = parse_args(argv)
    if args.quick:
        import jax
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    train, _, vocab, cut = load_sentences(plan[0].resolved())
    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    todo = [] if args.table_only else store.missing(plan)
    log(f"{machine()}; {len(plan) - len(todo)} of {len(plan)} runs finished in {store.path}")
    for config in todo:
        print(f"-- {config.model}, word_keep {config.word_keep:g}", flush=True)
        record = store.add(run_one(config, args))
        print(json.dumps({k: record[k] for k in ("model", "word_keep", "nll", "kl", "ppl",
                                                 "train_seconds", "eval_seconds")}),
              flush=True)
    records = [store.get(c) for c in plan if store.done(c)]
    table = markdown(records, args, len(vocab), cut, train.num_examples)
    command = command_line("benchmarks/sentence_table.py", args.argv, drop=("--table-only",))
    results = {"machine": machine(), "command": command, "vocab_size": len(vocab),
               "num_train": train.num_examples, "cut_sentences": cut, "records": records}
    write_table(args.out, table, results)
    if args.json:
        from common import write_json
        write_json(args.json, results)
    print(table)
    return results


if __name__ == "__main__":
    main()
