"""Train-step throughput of jaxvae's sentence VAE against PyTorch, eager and compiled.

The model is ``jaxvae.models.sentence.sentence_vae`` at the ``sentence-vae`` preset's
defaults on the WordNet corpus: vocabulary 10052 (the train split's words seen at least 3
times, plus the four specials), rows of max_length + 2 = 22 ids, embedding 256, LSTM 256,
latent 16; batch 64, Adam 1e-3, the negative ELBO with one z per sentence and the
closed-form Gaussian KL (``jaxvae.make_loss(model, "elbo", 1, analytic_kl=True)``), in two
settings: word_keep = 1.0 and word_keep = 0.75 (word dropout drawn inside every step in
both frameworks). jaxvae is timed through its own train step (``jaxvae.make_train_step``);
PyTorch through the same step written plainly (:mod:`benchmarks.peers.torch_sentence`:
``nn.LSTM(batch_first=True)`` over the full padded rows, the encoder's state gathered at
each row's last real token, ``F.cross_entropy(ignore_index=<pad>)``, fresh ``torch.randn``
noise and ``torch.rand`` word dropout each step, ``loss.backward()``, ``Adam.step()``),
eager and under ``torch.compile`` (default mode), with ``--torch-threads`` threads (default:
the number of cores); eager also with one thread, which on a shared machine can be the
faster of the two (an OpenMP thread that waits for a descheduled sibling wastes its core).

1. Self-check, per setting: the same parameters, the same batch, the same noise eps and
   the same word-dropout draw (recovered from the key jaxvae's loss uses) give the same
   loss (relative error < 1e-4) and every gradient leaf the same values (relative L2
   error < 1e-3), in float32. Nothing is timed if it fails.
2. Timing, interleaved in one process: per setting every contender's first call (jax:
   trace + compile + run; torch.compile: compilation) is timed on its own, then R rounds
   of N steps each (N calibrated to ``--target`` seconds) in a rotating order; medians and
   [min, max] over the rounds, ratios paired per round.
3. The physical limit: the FLOPs of one step (the LSTMs over the full padded rows, the
   dense layers, forward x 3) and this CPU's sustained rate on a 2048^2 matmul
   (``jnp.dot`` and ``torch.mm``, timed in the same rounds) give an upper bound on steps
   per second.

    python benchmarks/sentence_throughput.py             # word_keep 1.0 and 0.75
    python benchmarks/sentence_throughput.py --quick     # < 1 min smoke test, no compile

Writes OUT/table.md and OUT/results.json (default benchmarks/results/sentence_throughput/,
``quick/`` below it with --quick).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.common import (  # noqa: E402
    ResultsStore,
    add_common_flags,
    command_line,
    log,
    machine,
    markdown_table,
    resolve_common,
    write_results,
)
from benchmarks.conv_throughput import (  # noqa: E402
    Runner,
    fmt_spread,
    jaxvae_step_runner,
    loadavg,
    make_matmul_jax,
    make_matmul_torch,
    rel_err,
    summary,
    time_runners,
    trainer_runner,
    xla_cost,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "sentence_throughput")
SETTINGS = {"keep1.0": 1.0, "keep0.75": 0.75}
MAX_LENGTH, MIN_COUNT, EMBED, HIDDEN, LATENT = 20, 3, 256, 256, 16
BATCH, CHECK_BATCH = 64, 16
LR = 1e-3
MATMUL_N = 2048
LOSS_TOL, GRAD_TOL = 1e-4, 1e-3
TARGET_RATIO = 2.0            # jaxvae / torch eager steps per second


# ------------------------------------------------------------------------------ the model

def load_rows(corpus: str, batch: int, seed: int):
    """``(ids [batch, MAX_LENGTH + 2] int32, vocabulary size, corpus lengths)``: ``batch``
    train sentences drawn without replacement (``seed``), encoded with the vocabulary of
    the train split's words seen at least ``MIN_COUNT`` times."""
    import jaxvae

    sentences = jaxvae.data.load_text(corpus, "train").sentences
    vocab = jaxvae.data.Vocabulary.build(sentences, min_count=MIN_COUNT)
    pick = np.random.default_rng(seed).choice(len(sentences), batch, replace=False)
    ids, _, _ = jaxvae.data.encode_batch([sentences[i] for i in pick], vocab, MAX_LENGTH)
    _, _, lengths = jaxvae.data.encode_batch(sentences, vocab, MAX_LENGTH)
    return ids, len(vocab), lengths - 2


def build_model(vocab_size: int, word_keep: float):
    from jaxvae.models.sentence import sentence_vae

    return sentence_vae(vocab_size, MAX_LENGTH, EMBED, HIDDEN, LATENT, word_keep)


def init_params(model, seed: int):
    import jax

    return jax.jit(model.init_params)(jax.random.PRNGKey(seed))


def jax_loss(model):
    import jaxvae

    return jaxvae.make_loss(model, "elbo", 1, analytic_kl=True)


# ----------------------------------------------------------------------------- self-check

def jaxvae_draws(model, params, x, key):
    """The noise jaxvae's loss draws for ``key``: ``(eps [B, latent], decoder inputs
    [B, L - 1])``. One key per example from ``split(key, B)``, split again by
    ``jaxvae.terms.training_rngs`` into z's key and the word-dropout stream; z is
    ``q.sample(seed=key_z, sample_shape=(1,))``, eps = (z - mu) / s, and the inputs are
    ``drop_words`` of ``x[:-1]`` with the key the likelihood made from its stream.
    Traceable: jit it (the self-check jits it with the loss's gradient)."""
    import jax

    import jaxvae
    from jaxvae.models.token_sequence import drop_words

    def per_example(xi, ki):
        ki, rngs = jaxvae.terms.training_rngs(model, ki)
        m = jaxvae.bind(model, params, rngs=rngs)
        q = m.posterior(xi)
        z = q.sample(seed=ki, sample_shape=(1,))
        eps = (z[0] - q.distribution.loc) / q.distribution.scale
        lik = m.likelihood(z[0])
        return eps, drop_words(lik.key, xi[:-1], lik.word_keep)

    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(per_example)(x, keys)


def self_check(setting: str, params, model, rows: np.ndarray, seed: int) -> dict:
    """jaxvae vs the torch model at identical weights, batch, noise eps and dropout draw,
    in float32 (the benchmarked precision). Passing needs the loss within ``LOSS_TOL`` and
    every gradient leaf within ``GRAD_TOL`` (relative L2). (The token likelihood computes
    its log-softmax in float32 by design, so a float64 run would not be an exact test.)"""
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks.peers import torch_sentence

    key = jax.random.PRNGKey(seed + 1000)
    x = jnp.asarray(rows)

    def loss_grads_draws(params, x, key):        # one compilation for all three
        value_and_grad = jax.value_and_grad(jax_loss(model), has_aux=True)
        return value_and_grad(params, x, key), jaxvae_draws(model, params, x, key)

    ((loss_j, _), grads_j), draws = jax.jit(loss_grads_draws)(params, x, key)
    eps, inputs = (np.asarray(a) for a in draws)
    tm = torch_sentence.from_jaxvae(params, model.word_keep)
    xt = torch.from_numpy(np.asarray(rows, np.int64))
    loss_t = tm.loss(xt, torch.from_numpy(eps.copy()),
                     torch.from_numpy(np.asarray(inputs, np.int64)))
    loss_t.backward()
    ref = torch_sentence.torch_layout(grads_j)
    grad_err = {name: rel_err(ref[name], p.grad.double().numpy())
                for name, p in torch_sentence.trainable(tm).items()}
    worst = max(grad_err, key=grad_err.get)
    lj, lt = float(loss_j), float(loss_t.detach())
    real = np.asarray(rows[:, 1:-1]) > 3                     # words among the inputs
    dropped = int(np.sum((np.asarray(inputs)[:, 1:] == 1) & real))
    rec = {"setting_name": setting, "word_keep": model.word_keep, "batch": int(rows.shape[0]),
           "loss_jaxvae": lj, "loss_torch": lt, "loss_rel_err": abs(lt - lj) / abs(lj),
           "grad_max_rel_err": grad_err[worst], "grad_worst_leaf": worst,
           "grad_rel_err": grad_err, "words_dropped": dropped, "words": int(real.sum())}
    rec["ok"] = rec["loss_rel_err"] < LOSS_TOL and rec["grad_max_rel_err"] < GRAD_TOL
    return rec


# -------------------------------------------------------------------------------- runners

def make_jaxvae(model, params0, rows):
    """jaxvae's own train step: ``make_train_step(make_loss(...), adam)``."""
    return jaxvae_step_runner(jax_loss(model), params0, rows, LR)


class TorchThreads(Runner):
    """A runner that sets ``torch.set_num_threads(threads)`` before it runs (the torch
    contenders of one process differ in their thread counts)."""

    def __init__(self, runner: Runner, threads: int):
        super().__init__(runner.step, runner.sync, runner.loss)
        self.threads = threads

    def _pin(self):
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def first(self) -> float:
        self._pin()
        return super().first()

    def run(self, n: int) -> float:
        self._pin()
        return super().run(n)


def make_torch(params0, word_keep: float, rows, compile: bool, threads: int):
    import torch

    from benchmarks.peers import torch_sentence

    torch.set_num_threads(threads)
    model = torch_sentence.from_jaxvae(params0, word_keep)
    trainer = torch_sentence.Trainer(model, lr=LR, compile=compile)
    x = torch.from_numpy(np.asarray(rows, np.int64))
    return TorchThreads(trainer_runner(trainer, x), threads)


# ----------------------------------------------------------------------------------- FLOPs

def step_flops(params, batch: int, length: int) -> dict:
    """Multiply-add FLOPs (2 per MAC) of one train step, from the parameter shapes.

    Rows of ``length`` ids. Forward: each LSTM step is one ``[E + H] x [4H]`` matmul per
    row (the encoder runs over all ``length`` ids of a row, the decoder over its ``length -
    1`` inputs, padding included, as both implementations compute them), and every dense
    layer (2 * n * p per row: the heads, the initial state, the output layer over ``length
    - 1`` positions).
    Backward: 2x forward everywhere (the embeddings are trained, so every LSTM input needs
    its gradient). Elementwise work (gates, log-softmax, Adam) and the embedding gathers
    and scatter-adds are not counted.
    """
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    e, h = np.shape(enc["lstm"]["ii"]["kernel"])
    lat = np.shape(enc["head"]["loc"]["kernel"])[1]
    vocab = np.shape(dec["out"]["kernel"])[1]
    cell = 2 * (e + h) * 4 * h
    layers = [("encoder/lstm", cell, batch * length),
              ("encoder/head", 2 * h * 2 * lat, batch),
              ("decoder/init_state", 2 * lat * 2 * h, batch),
              ("decoder/lstm", cell, batch * (length - 1)),
              ("decoder/out", 2 * h * vocab, batch * (length - 1))]
    forward = sum(f * r for _, f, r in layers)
    return {"forward": int(forward), "total": int(3 * forward),
            "per_layer_forward": {n: int(f * r) for n, f, r in layers}}


# ---------------------------------------------------------------------------------- timing

def time_setting(word_keep, model, params0, rows, names, repeats, target, threads,
                 rotate) -> dict:
    makers = {
        "jaxvae": lambda: make_jaxvae(model, params0, rows)[0],
        "torch_eager": lambda: make_torch(params0, word_keep, rows, False, threads),
        "torch_eager_1t": lambda: make_torch(params0, word_keep, rows, False, 1),
        "torch_compile": lambda: make_torch(params0, word_keep, rows, True, threads),
        "matmul_jax": make_matmul_jax,
        "matmul_torch": lambda: TorchThreads(make_matmul_torch(), threads),
    }
    timed = time_runners(makers, names, repeats, target, rotate)
    live = timed.pop("live")
    xla = {}
    if "jaxvae" in live:
        import jax.numpy as jnp

        _, step, box = make_jaxvae(model, params0, rows)
        xla = xla_cost(step, box["state"], jnp.asarray(rows))
    return {**timed, "xla_cost": xla}


def build_record(setting, word_keep, batch, tm, flops) -> dict:
    sec = tm["seconds"]
    rec = {"setting_name": setting, "word_keep": word_keep, "batch": batch,
           "first_call_s": tm["first_call_s"], "errors": tm["errors"],
           "steps_per_round": tm["steps_per_round"], "first_step_loss": tm["first_step_loss"],
           "flops": flops, "xla_cost": tm["xla_cost"], "steps_per_s": {}, "ratio": {}}
    for name, vals in sec.items():
        if not name.startswith("matmul"):
            rec["steps_per_s"][name] = summary([1.0 / v for v in vals])
    if "jaxvae" in sec:
        for peer in ("torch_compile", "torch_eager", "torch_eager_1t"):
            if peer in sec:   # jaxvae steps/s over the peer's, paired per round
                rec["ratio"][peer] = summary([p / j for p, j in zip(sec[peer], sec["jaxvae"])])
    mm = 2.0 * MATMUL_N ** 3
    for name in ("matmul_jax", "matmul_torch"):
        if name in sec:
            rec[f"{name}_gflops"] = summary([mm / t / 1e9 for t in sec[name]])
    if "matmul_jax" in sec:
        peak = max(rec["matmul_jax_gflops"]["median"],
                   rec.get("matmul_torch_gflops", {}).get("median", 0.0))
        rec["best_steps_per_s"] = peak * 1e9 / flops["total"]
        for name, s in rec["steps_per_s"].items():
            rec.setdefault("gflops", {})[name] = s["median"] * flops["total"] / 1e9
            rec.setdefault("fraction_of_matmul", {})[name] = \
                s["median"] * flops["total"] / (peak * 1e9)
    return rec


# ---------------------------------------------------------------------------------- report

def report(records, checks, meta, command) -> str:
    lines = ["# Sentence VAE train-step throughput: jaxvae vs PyTorch (CPU)", "",
             f"Batch {meta['batch']} {meta['data']} sentences ({meta['batch_source']}), "
             f"vocabulary {meta['vocab_size']}, rows of {MAX_LENGTH + 2} ids, embedding "
             f"{EMBED}, LSTM {HIDDEN}, latent {LATENT}; negative ELBO (one z, closed-form "
             f"KL), Adam {LR:g}; word dropout drawn inside the step. "
             f"Steps per second, median [min–max] over {meta['repeats']} interleaved rounds; "
             "ratios are jaxvae's steps/s over the peer's, paired per round "
             f"(target: jaxvae >= {TARGET_RATIO:g}x torch eager). torch runs with "
             f"{meta['torch_threads']} threads"
             + (", and eager also with 1 thread: on a shared machine an OpenMP thread that "
                "waits for a descheduled sibling wastes its core, so more threads can be "
                "slower." if any("torch_eager_1t" in r["steps_per_s"] for r in records)
                else "."), ""]
    header = ["setting", "jaxvae", "torch eager", "torch eager, 1 thread", "torch.compile",
              "jaxvae / eager", "jaxvae / eager 1 thread", "jaxvae / compile",
              "best possible", "jax first call (s)", "compile first call (s)"]
    rows = []
    for rec in records:
        sp = rec["steps_per_s"]
        cell = lambda n: fmt_spread(sp[n]) if n in sp else "–"
        ratio = lambda n: fmt_spread(rec["ratio"][n]) if n in rec["ratio"] else "–"
        rows.append([f"word_keep={rec['word_keep']:g}", cell("jaxvae"), cell("torch_eager"),
                     cell("torch_eager_1t"), cell("torch_compile"), ratio("torch_eager"),
                     ratio("torch_eager_1t"), ratio("torch_compile"),
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–",
                     f"{rec['first_call_s'].get('jaxvae', float('nan')):.1f}",
                     f"{rec['first_call_s']['torch_compile']:.1f}"
                     if "torch_compile" in rec["first_call_s"] else "–"])
    lines.append(markdown_table(header, rows))
    lines += ["", "## The physical limit", "",
              "FLOPs of one step: the LSTM cells over the full padded rows (encoder "
              f"{MAX_LENGTH + 2} steps, decoder {MAX_LENGTH + 1}) and the dense layers, 2 "
              "per multiply-add, backward = 2x forward. Best possible = the best sustained "
              "2048^2 matmul rate (jnp.dot or torch.mm, same rounds) / step FLOPs; an LSTM "
              "step is a small matmul and rarely reaches that rate, so it is an upper bound.",
              ""]
    header = ["setting", "GFLOP/step", "of which output layer", "XLA cost analysis GFLOP",
              "matmul GFLOP/s (jax / torch)", "jaxvae GFLOP/s", "torch eager GFLOP/s",
              "torch eager 1 thread GFLOP/s", "torch.compile GFLOP/s", "best steps/s"]
    rows = []
    for rec in records:
        g = rec.get("gflops", {})
        mj, mt = rec.get("matmul_jax_gflops"), rec.get("matmul_torch_gflops")
        out = rec["flops"]["per_layer_forward"]["decoder/out"] / rec["flops"]["forward"]
        rows.append([f"word_keep={rec['word_keep']:g}", f"{rec['flops']['total'] / 1e9:.2f}",
                     f"{out:.0%}",
                     f"{rec['xla_cost']['flops'] / 1e9:.2f}" if "flops" in rec["xla_cost"]
                     else "–",
                     (f"{mj['median']:.0f} / {mt['median']:.0f}" if mj and mt else "–"),
                     f"{g['jaxvae']:.1f}" if "jaxvae" in g else "–",
                     f"{g['torch_eager']:.1f}" if "torch_eager" in g else "–",
                     f"{g['torch_eager_1t']:.1f}" if "torch_eager_1t" in g else "–",
                     f"{g['torch_compile']:.1f}" if "torch_compile" in g else "–",
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–"])
    lines.append(markdown_table(header, rows))
    lines += ["", "## Self-check (same weights, batch, noise eps and word-dropout draw)", ""]
    rows = []
    for c in checks:
        rows.append([f"word_keep={c['word_keep']:g}", c["batch"],
                     f"{c['words_dropped']} of {c['words']}",
                     f"{c['loss_jaxvae']:.4f} / {c['loss_torch']:.4f}",
                     f"{c['loss_rel_err']:.1e}",
                     f"{c['grad_max_rel_err']:.1e} ({c['grad_worst_leaf']})",
                     "ok" if c["ok"] else "FAILED"])
    lines.append(markdown_table(["setting", "B", "words dropped", "f32 loss jaxvae / torch",
                                 "loss rel. err", "max grad rel. err (leaf)", ""], rows))
    lines += ["", f"Tolerances: loss {LOSS_TOL:g}, gradients {GRAD_TOL:g} (relative L2 per "
              "leaf; the torch LSTM's packed i, f, g, o blocks compared with jaxvae's "
              "concatenated kernels), float32. The word-dropout draw is the one jaxvae's "
              "loss makes, fed to the torch model as its decoder inputs.", "", "## Run", "",
              f"- command: `{command}`", f"- machine: {meta['machine']}",
              f"- torch {meta.get('torch', '?')}, threads {meta['torch_threads']}; "
              f"XLA_FLAGS={meta['xla_flags'] or '(none)'}",
              f"- rounds {meta['repeats']}, {meta['target_s']} s per measurement; "
              f"load average before {meta['load_before']}, after {meta['load_after']}; "
              f"wall {meta['wall_s']:.0f} s"]
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "data", "seed", "out", "json", "quick",
                     defaults={"data": "wordnet"},
                     helps={"data": "text corpus, a jaxvae.data.load_text name (default "
                                    "wordnet)"})
    parser.add_argument("--settings", default=None,
                        help="comma-separated subset of " + ",".join(SETTINGS)
                        + " (default both; quick: keep1.0)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds R (default 5, quick 2)")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds per measurement (default 2, quick 0.3)")
    parser.add_argument("--compile", dest="torch_compile", action="store_true", default=None,
                        help="include torch.compile in --quick mode too")
    parser.add_argument("--no-compile", dest="torch_compile", action="store_false",
                        help="skip torch.compile")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the number of cores)")
    parser.add_argument("--one-thread", dest="one_thread", action="store_true", default=None,
                        help="also time torch eager with 1 thread (default unless --quick)")
    parser.add_argument("--no-one-thread", dest="one_thread", action="store_false",
                        help="skip torch eager with 1 thread")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"batch size of the timed step (default {BATCH}, quick 8)")
    parser.add_argument("--check-batch", type=int, default=None,
                        help=f"sentences in the self-check (default {CHECK_BATCH}, quick 8)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard OUT/runs.jsonl (finished settings are skipped otherwise)")
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    resolve_common(args, DEFAULT_OUT)
    settings = args.settings or ("keep1.0" if args.quick else ",".join(SETTINGS))
    args.setting_list = [s.strip() for s in settings.split(",") if s.strip()]
    if set(args.setting_list) - set(SETTINGS):
        parser.error(f"--settings must be among {tuple(SETTINGS)}")
    args.batch = args.batch or (8 if args.quick else BATCH)
    args.check_batch = min(args.batch, args.check_batch or (8 if args.quick else CHECK_BATCH))
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.target = args.target or (0.3 if args.quick else 2.0)
    if args.torch_compile is None:
        args.torch_compile = not args.quick
    if args.one_thread is None:
        args.one_thread = not args.quick
    return args


def _setting_key(args, setting, threads) -> dict:
    """What one timing record depends on (the results store's key)."""
    return {"kind": "timing", "setting": setting, "word_keep": SETTINGS[setting],
            "batch": args.batch, "seed": args.seed, "data": args.data,
            "torch_compile": args.torch_compile, "one_thread": args.one_thread,
            "repeats": args.repeats, "target_s": args.target, "torch_threads": threads,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _check_key(args, setting) -> dict:
    return {"kind": "self_check", "setting": setting, "word_keep": SETTINGS[setting],
            "check_batch": args.check_batch, "seed": args.seed, "data": args.data}


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_before = loadavg()
    import torch

    threads = args.torch_threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    log(f"machine: {machine()}; torch {torch.__version__}, {threads} threads; "
        f"load {load_before}")
    store_path = os.path.join(args.out, "runs.jsonl")
    if args.fresh and os.path.exists(store_path):
        os.remove(store_path)
    store = ResultsStore(store_path)
    check_plan = [] if args.no_check else [_check_key(args, s) for s in args.setting_list]
    time_plan = [_setting_key(args, s, threads) for s in args.setting_list]
    todo_checks, todo_times = store.missing(check_plan), store.missing(time_plan)
    if len(store):
        log(f"{store_path}: {len(check_plan) + len(time_plan) - len(todo_checks) - len(todo_times)}"
            f" of {len(check_plan) + len(time_plan)} records already done (--fresh redoes them)")

    rows, vocab_size, corpus_lengths = load_rows(args.data, args.batch, args.seed)
    check_rows = rows[:args.check_batch]
    models, params = {}, {}

    def model_of(setting):
        if setting not in models:
            models[setting] = build_model(vocab_size, SETTINGS[setting])
            if "p" not in params:          # word_keep does not change the parameters
                params["p"] = init_params(models[setting], args.seed)
        return models[setting], params["p"]

    if todo_checks:
        log("self-check: same weights, batch, noise and word dropout ...")
    for key in todo_checks:
        model, p = model_of(key["setting"])
        c = self_check(key["setting"], p, model, check_rows, args.seed)
        log(f"  word_keep={c['word_keep']:g}: loss rel. err {c['loss_rel_err']:.1e}, max grad "
            f"rel. err {c['grad_max_rel_err']:.1e} ({c['grad_worst_leaf']}); "
            f"{c['words_dropped']} of {c['words']} words dropped"
            + ("" if c["ok"] else "  FAILED") + f"  [{time.perf_counter() - t_start:.0f} s]")
        if not c["ok"]:
            log("self-check FAILED: refusing to time (nothing is stored)")
            return 1
        store.add({"setting": key, **c})
    checks = [store.get(key) for key in check_plan]
    if any(not c["ok"] for c in checks):
        log("a stored self-check failed; refusing to time")
        return 1

    names = ["jaxvae", "torch_eager"] + (["torch_eager_1t"] if args.one_thread else []) \
        + (["torch_compile"] if args.torch_compile else []) + ["matmul_jax", "matmul_torch"]
    for i, key in enumerate(todo_times):
        setting = key["setting"]
        model, params0 = model_of(setting)
        log(f"timing word_keep={SETTINGS[setting]:g} ...")
        load0 = loadavg()
        tm = time_setting(SETTINGS[setting], model, params0, rows, names, args.repeats,
                          args.target, threads, rotate=i)
        rec = build_record(setting, SETTINGS[setting], args.batch, tm,
                           step_flops(params0, args.batch, MAX_LENGTH + 2))
        rec.update(load_before=load0, load_after=loadavg(), when=time.strftime("%Y-%m-%d %H:%M"))
        sp = rec["steps_per_s"]
        log("  steps/s: " + ", ".join(f"{n} {v['median']:.2f}" for n, v in sp.items())
            + f"; load {rec['load_after']}; at {time.perf_counter() - t_start:.0f} s")
        ref = tm["first_step_loss"].get("jaxvae")
        for name, value in tm["first_step_loss"].items():
            if ref is not None and abs(value - ref) > 0.05 * abs(ref):
                raise AssertionError(f"first-step loss of {name} ({value:.3f}) differs "
                                     f"from jaxvae's ({ref:.3f}) by more than 5%")
        store.add({"setting": key, **rec})
    records = [store.get(key) for key in time_plan]

    words = rows.astype(bool).sum(1) - 2
    meta = {"machine": machine(), "torch": torch.__version__, "torch_threads": threads,
            "repeats": args.repeats, "target_s": args.target, "quick": args.quick,
            "torch_compile": args.torch_compile, "data": args.data, "vocab_size": vocab_size,
            "batch": args.batch, "check_batch": args.check_batch,
            "batch_source": f"drawn from the train split with seed {args.seed}: median "
                            f"{np.median(words):g} words, 90th percentile "
                            f"{np.percentile(words, 90):g}, longest {words.max()} (the "
                            f"split: {np.median(corpus_lengths):g}, "
                            f"{np.percentile(corpus_lengths, 90):g}, "
                            f"{corpus_lengths.max()}); self-check: the first "
                            f"{args.check_batch}",
            "batch_words": words.tolist(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_before": load_before, "load_after": loadavg(),
            "wall_s": time.perf_counter() - t_start,
            "records_from_earlier_runs": len(time_plan) - len(todo_times)}
    notes = ["torch: nn.LSTM over the full padded rows (no packing), the encoder's state "
             "gathered at each row's last real token; jaxvae: nn.RNN over OptimizedLSTMCell, "
             "per sentence, vmapped over the batch",
             "torch.compile: Dynamo does not trace nn.LSTM (torch._dynamo.config.allow_rnn is "
             "off by default), so the compiled step is split into graphs around the two "
             "LSTMs, which run as in eager mode"]
    if not args.torch_compile:
        notes.append("torch.compile skipped (--quick or --no-compile)")
    if not args.one_thread:
        notes.append("torch eager with 1 thread skipped (--quick or --no-one-thread)")
    if meta["records_from_earlier_runs"]:
        notes.append(f"{meta['records_from_earlier_runs']} of {len(time_plan)} settings were "
                     f"timed by an earlier run of this command ({store_path}); the wall time "
                     "is this run's")
    meta["notes"] = notes
    command = command_line("benchmarks/sentence_throughput.py")
    table = report(records, checks, meta, command)
    headline = {}
    for peer, label in (("torch_eager", "torch_eager"), ("torch_eager_1t", "torch_eager_1_thread"),
                        ("torch_compile", "torch_compile")):
        ratios = [r["ratio"][peer]["median"] for r in records if peer in r["ratio"]]
        if ratios:
            headline[f"min_ratio_jaxvae_over_{label}"] = min(ratios)
    faster = [min(r["ratio"][n]["median"] for n in ("torch_eager", "torch_eager_1t")
                  if n in r["ratio"]) for r in records if "torch_eager" in r["ratio"]]
    if faster:   # against the faster of the two eager thread counts, per setting
        headline["min_ratio_jaxvae_over_faster_torch_eager"] = min(faster)
    if checks:
        headline["self_check_max_loss_rel_err"] = max(c["loss_rel_err"] for c in checks)
        headline["self_check_max_grad_rel_err"] = max(c["grad_max_rel_err"] for c in checks)
    res = {"command": command, "meta": meta, "self_check": checks, "records": records,
           "headline": headline}
    write_results(args.out, table, res, headline, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
