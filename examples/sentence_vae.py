"""Posterior collapse in a sentence VAE, and the two fixes of Bowman et al. (2016).

A sentence VAE (:func:`jaxvae.sentence_vae`: LSTM encoder, Gaussian z, LSTM decoder whose
initial state is a linear map of z) is trained on the embedded WordNet example sentences
(``jaxvae.data.load_text("wordnet")``) in four settings, from the same initial parameters,
with the same batches, optimizer and number of steps:

* ``plain ELBO``: the ELBO with its closed-form KL, beta = 1 from the first step;
* ``KL annealing``: beta rises linearly from 0 to 1 over ``--anneal-steps`` steps
  (:func:`jaxvae.linear_annealing`);
* ``annealing + word dropout``: the same, and the decoder sees each previous word with
  probability ``--word-keep`` (0.75) in training (the rest become ``<unk>``);
* ``free bits``: the plain ELBO with a floor of ``--free-bits`` nats under each latent
  unit's minibatch-averaged KL (Kingma et al., 2016; :func:`jaxvae.make_free_bits_loss`).

The KL(q(z|x) || p(z)) averaged over a fixed batch of ``--valid-size`` validation sentences
is logged every ``--log-every`` steps: with the plain ELBO an LSTM decoder learns to model
the sentences without z and the KL collapses to near 0 early on; annealing lets the encoder
put information into z before the KL is paid in full, and word dropout makes the decoder
need it (whether z stays in use after beta reaches 1 depends on the budget: the committed
results and docs/gallery.md say what this run measured). Figure:
OUT/sentence_kl_collapse.png (KL against the step, log scale, and beta below).

After training, on the first ``--test-limit`` test sentences
(:func:`jaxvae.sentences.text_metrics`): the test KL, the NLL per sentence (IWAE bound with
``--eval-k`` samples), the perplexity over words and ``<eos>``, the mutual information
I_q(x; z) and the active units (printed as a markdown table). And as text
(OUT/sentence_vae.md), for each setting: three test sentences with the greedy decode from
the posterior mean and from three draws z ~ q(z|x), homotopies (five points on the line
between the posterior means of two test sentences, Bowman et al., section 5.2), and greedy
decodes of z ~ p(z) with the number of distinct decodes among ``--prior-draws`` draws. A
collapsed model decodes every z to one or a few sentences.

Default budget: 800 Adam steps per setting (lr 1e-3, batch 64: 1.18 passes over the 43,400
training sentences), annealing over the first 400, the KL logged every 25 steps on 512
validation sentences; hidden 128, embeddings 128, 16 latent units, a vocabulary of the
3,093 words seen at least 10 times (3,097 tokens with the specials), sentences cut to 15
words; the evaluation uses 500 test sentences and k = 100. The committed run took 1962 s
(33 minutes; 358-426 s of training and 48-131 s of evaluation per setting) on 2 CPU cores
shared with other work; the wall time is printed and stored in the JSON. ``--replot``
redraws the figure and the text from the stored results.

    python examples/sentence_vae.py     # figure in docs/images/, text and JSON in
                                        # benchmarks/results/sentence_vae/
    python examples/sentence_vae.py --quick --out /tmp/sentence_vae      # ~30 s smoke run:
        # the plain ELBO and annealing + word dropout only, a tiny model, 20 steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxvae
from jaxvae import data, latent, sentences
from jaxvae.experiment import load_sentences

QUICK = {"steps": 20, "hidden": 16, "embed_dim": 16, "latent_dim": 4, "min_count": 40,
         "max_length": 8, "log_every": 10, "test_limit": 40, "eval_k": 4, "valid_size": 64,
         "train_limit": 3000, "prior_draws": 10}
FULL = {"steps": 800, "hidden": 128, "embed_dim": 128, "latent_dim": 16, "min_count": 10,
        "max_length": 15, "log_every": 25, "test_limit": 500, "eval_k": 100,
        "valid_size": 512, "train_limit": None, "prior_draws": 100}
FIGURE = "sentence_kl_collapse.png"
DEFAULT_FIGURE_DIR = os.path.join("docs", "images")
DEFAULT_TEXT_DIR = os.path.join("benchmarks", "results", "sentence_vae")
SHOWN, PAIRS, PRIOR_SHOWN = 3, 2, 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="steps per setting (800)")
    parser.add_argument("--anneal-steps", type=int, default=None,
                        help="steps of the linear KL annealing (default: half of --steps)")
    parser.add_argument("--word-keep", type=float, default=0.75,
                        help="word-dropout keep rate of the third setting")
    parser.add_argument("--free-bits", type=float, default=0.25,
                        help="free bits per latent unit (nats) of the fourth setting")
    parser.add_argument("--latent-dim", type=int, default=None, help="latent units (16)")
    parser.add_argument("--hidden", type=int, default=None, help="LSTM width (128)")
    parser.add_argument("--embed-dim", type=int, default=None, help="embedding width (128)")
    parser.add_argument("--min-count", type=int, default=None,
                        help="vocabulary: words seen at least this often (10)")
    parser.add_argument("--max-length", type=int, default=None, help="words per sentence (15)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--log-every", type=int, default=None, help="steps between KL logs")
    parser.add_argument("--valid-size", type=int, default=None,
                        help="validation sentences of the logged KL (512)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="first N test sentences of the evaluation (500)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training sentences (default all)")
    parser.add_argument("--eval-k", type=int, default=None, help="IWAE samples of the NLL")
    parser.add_argument("--prior-draws", type=int, default=None,
                        help="z ~ p(z) draws counted for distinct decodes (100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="one folder for the figure, the text and the JSON (default: "
                             f"{DEFAULT_FIGURE_DIR}/ and {DEFAULT_TEXT_DIR}/; a new temporary "
                             "folder with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run, about 30 s")
    parser.add_argument("--replot", action="store_true",
                        help="redraw the figure and the text from the results.json of a "
                             "finished run (in --out or the default folders), train nothing")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.anneal_steps is None:
        args.anneal_steps = max(1, args.steps // 2)
    for flag, low in (("steps", 1), ("anneal_steps", 1), ("latent_dim", 1), ("hidden", 1),
                      ("embed_dim", 1), ("min_count", 1), ("max_length", 1),
                      ("batch_size", 1), ("log_every", 1), ("valid_size", 2),
                      ("test_limit", 2 * PAIRS + SHOWN), ("eval_k", 1), ("prior_draws", 1)):
        if getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be >= {low}")
    if not 0.0 <= args.word_keep <= 1.0:
        parser.error(f"--word-keep must be a probability in [0, 1], got {args.word_keep}")
    if not (np.isfinite(args.free_bits) and args.free_bits >= 0):
        parser.error("--free-bits must be finite and >= 0")
    if not (np.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be finite and > 0")
    if args.train_limit is not None and args.train_limit < args.batch_size:
        parser.error("--train-limit must be >= --batch-size")
    return args


def settings(args) -> dict:
    """Name -> (annealed, word_keep, free_bits) of the four runs (two with --quick)."""
    every = {"plain ELBO": (False, 1.0, None),
             "KL annealing": (True, 1.0, None),
             f"annealing + word dropout (keep {args.word_keep:g})": (True, args.word_keep,
                                                                     None),
             f"free bits ({args.free_bits:g} nats/unit)": (False, 1.0, args.free_bits)}
    if args.quick:      # compilation dominates a smoke run: the first and the last
        return {k: v for i, (k, v) in enumerate(every.items()) if i in (0, 2)}
    return every


def machine() -> str:
    """CPU model, core count, jax version and backend."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"


def load_data(args):
    """Training and test id rows, the fixed validation batch and the vocabulary."""
    config = jaxvae.Config(model="sentence-vae", objective="elbo", k=1,
                           min_count=args.min_count, max_length=args.max_length,
                           data="wordnet")
    train, test, vocab, cut = load_sentences(config.resolved())
    valid = data.load_text("wordnet", "valid").sentences[:args.valid_size]
    valid_ids = data.encode_batch(valid, vocab, args.max_length)[0]
    return (train.images[:args.train_limit], test.images, valid_ids, vocab, cut)


def rate_fn(model, valid):
    """``rate(params)``: the mean closed-form KL(q(z|x) || p(z)) over the validation batch."""
    def rate(params):
        def one(x):
            bound = jaxvae.bind(model, params)
            return jaxvae.kl_divergence(bound.posterior(x), bound.prior())
        return jnp.mean(jax.vmap(one)(valid))
    return jax.jit(rate)


def train_one(loss, beta, rate, params, x, args, name):
    """Adam on ``loss`` for ``args.steps`` steps, logging ``rate(params)`` (the validation
    KL) every ``args.log_every`` steps; returns ``(params, curve, seconds)``."""
    tx = optax.adam(args.lr)
    step = jaxvae.make_train_step(loss, tx)
    state = jaxvae.create_train_state(params, tx, jax.random.PRNGKey(args.seed + 1))
    curve, t, epoch, bound = [], 0, 0, None
    start = time.perf_counter()

    def record():
        curve.append({"step": t, "kl": float(rate(state.params)), "beta": float(beta(t)),
                      "train_bound": bound, "seconds": round(time.perf_counter() - start, 1)})
        if not args.no_progress:
            print(f"  {name}: step {t}, KL {curve[-1]['kl']:.3f}, beta {curve[-1]['beta']:.3f}"
                  + (f", train bound {bound:.2f}" if bound is not None else ""), flush=True)

    while t < args.steps:
        for batch in data.batches(x, args.batch_size, seed=args.seed, epoch=epoch):
            if t % args.log_every == 0:
                record()
            state, metrics = step(state, jnp.asarray(batch))
            t += 1
            if t % args.log_every == 0 or t == args.steps:
                if not bool(metrics["finite"]):
                    raise jaxvae.TrainingDivergedError(f"{name}: non-finite loss at step {t}")
                bound = float(metrics["bound"])
            if t == args.steps:
                break
        epoch += 1
    record()
    return state.params, curve, round(time.perf_counter() - start, 1)


def pick_sentences(vocab, ids, num: int) -> np.ndarray:
    """Indices of the first ``num`` test rows of 4..10 words without ``<unk>`` (readable
    examples); the first rows if there are too few."""
    lengths = np.sum(ids[:, 1:] != 0, axis=1) - 1
    good = np.flatnonzero((lengths >= 4) & (lengths <= 10) & ~np.any(ids == vocab.unk_id, 1))
    return good[:num] if len(good) >= num else np.arange(num)


def decodes(model, params, vocab, test_ids, chosen, z_prior, key) -> dict:
    """Greedy decodes (one batch, one compilation): from the posterior mean and three
    z ~ q(z|x) of the shown test sentences, of homotopies between pairs (the line between
    two posterior means, as :func:`jaxvae.sentences.homotopy`), and of z ~ p(z)."""
    x = test_ids[chosen]
    mean = latent.encode_mean(model, params, x)
    drawn = latent.encode(model, params, np.repeat(x[:SHOWN], 3, axis=0), key, sample=True)
    paths = [latent.lerp(mean[SHOWN + 2 * p], mean[SHOWN + 2 * p + 1], 5) for p in range(PAIRS)]
    codes = jnp.concatenate([mean[:SHOWN], drawn, *paths, z_prior])
    text = sentences.to_text(vocab, sentences.decode(model, params, codes))
    greedy, text = text[:SHOWN], text[SHOWN:]
    samples, text = text[:3 * SHOWN], text[3 * SHOWN:]
    homotopies = [text[5 * p:5 * p + 5] for p in range(PAIRS)]
    prior = text[5 * PAIRS:]
    shown = [{"input": s, "mean": greedy[i], "samples": samples[3 * i:3 * i + 3]}
             for i, s in enumerate(sentences.to_text(vocab, x[:SHOWN]))]
    return {"test": shown, "homotopies": homotopies, "pairs": homotopy_pairs(vocab, x),
            "prior": prior[:PRIOR_SHOWN], "prior_distinct": len(set(prior)),
            "prior_draws": len(prior)}


def homotopy_pairs(vocab, x) -> list:
    """The test sentences at the ends of each homotopy; ``x`` the chosen rows."""
    text = sentences.to_text(vocab, x)
    return [[text[SHOWN + 2 * p], text[SHOWN + 2 * p + 1]] for p in range(PAIRS)]


def save_figure(results: dict, args, path: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    for i, (name, r) in enumerate(results.items()):
        steps = [c["step"] for c in r["curve"]]
        line, = top.plot(steps, [max(c["kl"], 1e-3) for c in r["curve"]], marker=".",
                         label=name)
        bottom.plot(steps, [c["beta"] for c in r["curve"]], color=line.get_color(),
                    linestyle=("-", "--", ":", "-.")[i % 4])
    top.set_yscale("log")
    top.set_ylabel("KL(q(z|x) || p(z)), nats (log scale)")
    top.set_title(f"sentence VAE on WordNet sentences: KL on {args.valid_size} validation "
                  f"sentences\n(LSTM {args.hidden}, {args.latent_dim}-d z, batch "
                  f"{args.batch_size}, {args.steps} steps per setting)", fontsize=10)
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("KL weight beta")
    bottom.set_xlabel("training step")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table(results: dict, args) -> str:
    lines = [f"| setting | KL, valid batch (nats) | test KL | test NLL (k={args.eval_k}) | "
             "PPL | test ELBO | MI (nats) | active units | distinct prior decodes |",
             "|" + " --- |" * 9]
    for name, r in results.items():
        m, d = r["metrics"], r["decodes"]
        lines.append(f"| {name} | {r['curve'][-1]['kl']:.3f} | {m['kl']:.3f} | "
                     f"{m['nll']:.2f} ± {m['nll_stderr']:.2f} | {m['ppl']:.1f} | "
                     f"{m['elbo']:.2f} | {m['mutual_information']:.3f} | "
                     f"{m['active_units']} / {args.latent_dim} | "
                     f"{d['prior_distinct']} / {d['prior_draws']} |")
    return "\n".join(lines)


def budget(args, num_train: int, vocab_size: int, cut: int) -> str:
    return (f"Budget per setting: {args.steps} Adam steps (lr {args.lr:g}, batch "
            f"{args.batch_size}; {args.steps * args.batch_size / num_train:.2f} passes over "
            f"{num_train} training sentences); LSTM width {args.hidden}, embeddings "
            f"{args.embed_dim}, {args.latent_dim}-d z; vocabulary of {vocab_size} tokens "
            f"(words seen >= {args.min_count} times, and the 4 specials); sentences cut to "
            f"{args.max_length} words ({cut} training sentences were cut); linear annealing "
            f"over {args.anneal_steps} steps; seed {args.seed}. Evaluation: the first "
            f"{args.test_limit} test sentences; NLL per sentence by importance sampling; "
            f"PPL over words and <eos>. Machine: {machine()}.")


def markdown(results: dict, args, header: str, seconds: float) -> str:
    out = ["# Sentence VAE decodes", "", header, "", table(results, args), "",
           f"Wall time of the whole run: {seconds:.0f} s.", ""]
    for name, r in results.items():
        d = r["decodes"]
        out += [f"## {name}", "", f"Training: {r['train_seconds']:.0f} s.", "",
                "Greedy decodes of test sentences, from the posterior mean and from three "
                "z ~ q(z|x):", ""]
        for s in d["test"]:
            out += [f"- input: *{s['input']}*", f"  - mean: {s['mean']}",
                    *(f"  - z ~ q: {t}" for t in s["samples"])]
        out += ["", "Homotopies (greedy decodes of five evenly spaced points between the "
                "posterior means of two test sentences):", ""]
        for h, ends in zip(d["homotopies"], d["pairs"]):
            out += [f"from *{ends[0]}* to *{ends[1]}*:", "", "```", *h, "```", ""]
        out += [f"Greedy decodes of z ~ p(z) ({d['prior_distinct']} distinct among "
                f"{d['prior_draws']} draws; the first {len(d['prior'])}):", "",
                *(f"- {s}" for s in d["prior"]), ""]
    return "\n".join(out)


def write_outputs(results: dict, args, header: str, seconds: float, stored: dict,
                  figure_dir: str, text_dir: str) -> list[str]:
    """The figure, the text and (``stored`` given) the JSON; returns their paths."""
    os.makedirs(figure_dir, exist_ok=True)
    os.makedirs(text_dir, exist_ok=True)
    wrote = [save_figure(results, args, os.path.join(figure_dir, FIGURE))]
    text_path = os.path.join(text_dir, "sentence_vae.md")
    with open(text_path, "w") as f:
        f.write(markdown(results, args, header, seconds))
    wrote.append(text_path)
    if stored is not None:
        json_path = os.path.join(text_dir, "results.json")
        with open(json_path, "w") as f:
            json.dump(stored, f, indent=1)
        wrote.append(json_path)
    return wrote


def replot(figure_dir: str, text_dir: str) -> dict:
    """The figure and the text again from ``text_dir``/results.json (no training)."""
    with open(os.path.join(text_dir, "results.json")) as f:
        stored = json.load(f)
    args = argparse.Namespace(**stored["args"])
    results = stored["settings"]
    if any("pairs" not in r["decodes"] for r in results.values()):
        # written before the homotopies' ends were stored: they follow from the data
        _, test_ids, _, vocab, _ = load_data(args)
        test_ids = test_ids[:args.test_limit]
        ends = homotopy_pairs(vocab, test_ids[pick_sentences(vocab, test_ids,
                                                             SHOWN + 2 * PAIRS)])
        for r in results.values():
            r["decodes"]["pairs"] = ends
    print(table(results, args))
    wrote = write_outputs(results, args, stored["budget"], stored["seconds"], None,
                          figure_dir, text_dir)
    print(f"wrote {', '.join(wrote)}")
    return results


def main(argv=None):
    start = time.perf_counter()
    args = parse_args(argv)
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    if args.out is None and args.quick:
        args.out = tempfile.mkdtemp(prefix="sentence_vae_")
    figure_dir = args.out or DEFAULT_FIGURE_DIR
    text_dir = args.out or DEFAULT_TEXT_DIR
    if args.replot:
        return replot(figure_dir, text_dir)
    x, test_ids, valid, vocab, cut = load_data(args)
    test_ids = test_ids[:args.test_limit]
    chosen = pick_sentences(vocab, test_ids, SHOWN + 2 * PAIRS)
    key = jax.random.PRNGKey(args.seed + 2)
    z_prior = jax.random.normal(jax.random.fold_in(key, 1), (args.prior_draws, args.latent_dim))
    # evaluation sees no word dropout: one model (and one set of compilations) for every
    # setting's evaluation and decodes
    eval_model = jaxvae.sentence_vae(len(vocab), args.max_length, args.embed_dim, args.hidden,
                                     args.latent_dim)
    init = jax.jit(eval_model.init_params)(jax.random.PRNGKey(args.seed))
    rate = rate_fn(eval_model, jnp.asarray(valid))
    header = budget(args, len(x), len(vocab), cut)
    print(header, flush=True)
    results = {}
    for name, (annealed, word_keep, free_bits) in settings(args).items():
        model = jaxvae.sentence_vae(len(vocab), args.max_length, args.embed_dim, args.hidden,
                                    args.latent_dim, word_keep)
        beta = (lambda t: jaxvae.linear_annealing(t, args.anneal_steps)) if annealed else \
            (lambda t: 1.0)
        options = {"free_bits": free_bits} if free_bits is not None else {"analytic_kl": True}
        if annealed:
            options["beta"] = beta
        loss = jaxvae.make_loss(model, "elbo", 1, **options)
        print(f"-- {name}", flush=True)
        params, curve, seconds = train_one(loss, beta, rate, init, x, args, name)
        t0 = time.perf_counter()
        metrics = sentences.text_metrics(eval_model, params, test_ids, key, args.eval_k)
        results[name] = {"annealed": annealed, "word_keep": word_keep, "free_bits": free_bits,
                         "curve": curve, "train_seconds": seconds,
                         "metrics": metrics,
                         "decodes": decodes(eval_model, params, vocab, test_ids, chosen, z_prior,
                                            jax.random.fold_in(key, 2)),
                         "eval_seconds": round(time.perf_counter() - t0, 1)}
        print(f"   KL {metrics['kl']:.3f}, NLL {metrics['nll']:.2f}, PPL {metrics['ppl']:.1f}, "
              f"MI {metrics['mutual_information']:.3f}, {metrics['active_units']} active units; "
              f"train {seconds:.0f} s, evaluation {results[name]['eval_seconds']:.0f} s",
              flush=True)
    seconds = round(time.perf_counter() - start, 1)
    print(table(results, args))
    stored = {"args": vars(args), "budget": header, "machine": machine(),
              "vocab_size": len(vocab), "num_train": len(x), "seconds": seconds,
              "settings": results}
    wrote = write_outputs(results, args, header, seconds, stored, figure_dir, text_dir)
    print(f"wrote {', '.join(wrote)}")
    print(f"total {seconds} s")
    return results


if __name__ == "__main__":
    main()
