"""Train-step throughput of jaxvae's DRAW against PyTorch, eager and compiled.

The model is ``jaxvae.models.draw.draw`` at the paper's MNIST sizes (Gregor et al., 2015):
28 x 28 binary images, T = 64 steps, latent 100 per step, both LSTMs 256 wide, without
attention (read the whole image and error image, write a dense canvas update) and with
attention (read N = 2, write N = 5); the negative ELBO with one z per image and the Monte
Carlo KL (``jaxvae.make_loss(model, "elbo", 1)``), Adam 1e-3, at batch 100 and at a small
batch (16) where the per-op overhead of eager PyTorch matters. jaxvae is timed through its
own train step (``jaxvae.make_train_step``) on a fixed binarized batch; PyTorch through the
same step written plainly (:mod:`benchmarks.peers.torch_draw`: ``nn.LSTMCell`` in a Python
loop over the T steps, the whole batch per step, fresh ``torch.randn`` noise each step,
``loss.backward()``, ``Adam.step()``), eager with ``--torch-threads`` threads (default: the
number of cores) and with one thread, and under ``torch.compile`` (default mode).

1. Self-check, per setting (attention off and on): at the same parameters, binary batch
   and latents z (drawn by jaxvae's q from the key its loss uses), jaxvae's log q(z|x)
   (``q.log_prob(z)`` with ``q`` from ``jaxvae.model_terms``), log p(x|z) and the log-weight
   log p(x|z) + log p(z) - log q(z|x) agree with the torch model's teacher-forced
   recurrence (relative error < 1e-4), and so does every gradient leaf of the batch-mean
   log-weight at fixed z (relative L2 error < 1e-3); so do the training loss and its
   gradients (reparameterized: torch gets the noise eps = (z - mu) / sigma of the same
   z), all in float32. Nothing is timed if it fails.
2. Timing, interleaved in one process: per setting and batch every contender's first call
   (jax: trace + compile + run; torch.compile: compilation) is timed on its own, then R
   rounds of N steps each (N calibrated to ``--target`` seconds) in a rotating order;
   medians and [min, max] over the rounds, ratios paired per round.
3. The physical limit: the matmul FLOPs of one step (forward x 3) and this CPU's
   sustained rate on a 2048^2 matmul (``jnp.dot`` and ``torch.mm``, timed in the same
   rounds) give an upper bound on steps per second. The number of decoder recurrences
   jaxvae's loss runs is read off its traced program; where it runs two (one inside
   q(z|x), whose encoder reads the decoder's state, one in p(x|z)), jaxvae's FLOPs count
   both.

    python benchmarks/draw_throughput.py                 # attention off and on, B = 100, 16
    python benchmarks/draw_throughput.py --quick         # smoke test: attention, T = 4,
                                                         # hidden 16, B = 16, no compile
    python benchmarks/draw_throughput.py --check-only    # the self-checks alone

Writes OUT/table.md and OUT/results.json (default benchmarks/results/draw_throughput/,
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
    fmt_spread,
    jaxvae_step_runner,
    loadavg,
    make_matmul_jax,
    make_matmul_torch,
    rel_err,
    summary,
    time_runners,
    trainer_runner,
)
from benchmarks.sentence_throughput import TorchThreads  # noqa: E402

DEFAULT_OUT = os.path.join("benchmarks", "results", "draw_throughput")
SETTINGS = {"plain": False, "attention": True}
IMAGE_SHAPE = (28, 28)
STEPS, HIDDEN, LATENT = 64, 256, 100
READ_SIZE, WRITE_SIZE = 2, 5
BATCHES = (100, 16)
CHECK_BATCH = 16
QUICK = {"steps": 4, "hidden": 16, "latent": 8, "batches": (16,), "check_batch": 4,
         "settings": ("attention",)}
LR = 1e-3
MATMUL_N = 2048
VALUE_TOL, GRAD_TOL = 1e-4, 1e-3


# ------------------------------------------------------------------------------ the model

def build_model(attention: bool, steps: int = STEPS, hidden: int = HIDDEN,
                latent: int = LATENT, image_shape=IMAGE_SHAPE):
    from jaxvae.models.draw import draw

    return draw(tuple(image_shape), steps=steps, latent_dim=latent, hidden=hidden,
                attention=attention, read_size=READ_SIZE, write_size=WRITE_SIZE)


def init_params(model, seed: int):
    import jax

    return jax.jit(model.init_params)(jax.random.PRNGKey(seed))


def jax_loss(model):
    import jaxvae

    return jaxvae.make_loss(model, "elbo", 1)


def _count_scans(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            count += 1
            continue
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)          # a ClosedJaxpr holds a Jaxpr
                if hasattr(inner, "eqns"):
                    count += _count_scans(inner)
    return count


def param_signature(model) -> str:
    """A short hash of the model's parameter names and shapes (part of the results store's
    keys, so that records of a model with other parameters are not reused)."""
    import hashlib

    import jax

    shapes = jax.eval_shape(model.init_params, jax.random.PRNGKey(0))
    leaves = jax.tree_util.tree_leaves_with_path(shapes)
    text = ";".join(f"{jax.tree_util.keystr(path)}:{leaf.shape}" for path, leaf in leaves)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def decoder_passes(model) -> int:
    """How many recurrences over the T steps jaxvae's training loss runs for one image (the
    ``lax.scan`` s of its traced forward program; each runs the decoder): 2 while q(z|x)
    and p(x|z) each run their own, 1 once p(x|z) reuses q's canvas."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    params = jax.eval_shape(model.init_params, key)
    x = jax.ShapeDtypeStruct((1, *model.event_shape), jnp.float32)
    return _count_scans(jax.make_jaxpr(jax_loss(model))(params, x, key).jaxpr)


# ----------------------------------------------------------------------------- self-check

def jaxvae_terms(model):
    """``f(params, x, key) -> (z, (log p(x|z), log p(z), log q(z|x)), grads, loss,
    loss_grads)``, to be jitted: z ``[B, T, D]`` is what jaxvae's loss samples for ``key``
    (one key per example from ``split(key, B)``, then ``jaxvae.terms.training_rngs`` and
    ``q.sample(seed=key_i, sample_shape=(1,))``); the three terms ``[B]`` are evaluated
    at that z held fixed (``q.log_prob(z)``, the likelihood's and the prior's log_prob),
    ``grads`` is the gradient of their batch-mean log-weight at fixed z, and ``loss`` and
    ``loss_grads`` are jaxvae's training loss and its gradient."""
    import jax
    import jax.numpy as jnp

    import jaxvae

    def sample_z(params, xi, ki):
        ki, rngs = jaxvae.terms.training_rngs(model, ki)
        q = jaxvae.model_terms(model, params, xi, rngs=rngs)[0]
        return q.sample(seed=ki, sample_shape=(1,))[0]

    def terms_at(params, xi, zi):
        q, prior, log_likelihood = jaxvae.model_terms(model, params, xi)
        return log_likelihood(zi), prior.log_prob(zi), q.log_prob(zi)

    def run(params, x, key):
        keys = jax.random.split(key, x.shape[0])
        z = jax.lax.stop_gradient(jax.vmap(sample_z, (None, 0, 0))(params, x, keys))

        def mean_log_w(params):
            log_px, log_pz, log_q = jax.vmap(terms_at, (None, 0, 0))(params, x, z)
            return jnp.mean(log_px + log_pz - log_q), (log_px, log_pz, log_q)

        (_, terms), grads = jax.value_and_grad(mean_log_w, has_aux=True)(params)
        (loss, _), loss_grads = jax.value_and_grad(jax_loss(model), has_aux=True)(
            params, x, key)
        return z, terms, grads, loss, loss_grads

    return run


def _grad_errors(ref: dict, named: dict) -> dict:
    return {name: rel_err(ref[name], p.grad.double().numpy()) for name, p in named.items()}


def self_check(setting: str, params, model, x_bin: np.ndarray, seed: int) -> dict:
    """jaxvae vs the torch model at identical weights, binary batch and latents, in
    float32 (the benchmarked precision). Passing needs log q(z|x), log p(x|z), the
    log-weight (each ``[B]``, relative L2) and the training loss within ``VALUE_TOL``, and
    every gradient leaf (of the batch-mean log-weight at fixed z, and of the training
    loss) within ``GRAD_TOL`` (relative L2)."""
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks.peers import torch_draw

    attention = bool(model.read_size)
    key = jax.random.PRNGKey(seed + 1000)
    x = jnp.asarray(x_bin, jnp.float32)
    z, terms_j, grads_j, loss_j, loss_grads_j = jax.jit(jaxvae_terms(model))(params, x, key)
    log_px_j, log_pz_j, log_q_j = (np.asarray(a, np.float64) for a in terms_j)

    tm = torch_draw.from_jaxvae(params, attention, model.image_shape, model.steps)
    named = torch_draw.trainable(tm)
    xt = torch.from_numpy(np.ascontiguousarray(x_bin, np.float32))
    zt = torch.from_numpy(np.array(z, np.float32))
    log_px_t, log_pz_t, log_q_t = tm.log_weight_terms(xt, zt, given=True)
    log_w_t = log_px_t + log_pz_t - log_q_t
    log_w_t.mean().backward()
    grad_err = _grad_errors(torch_draw.torch_layout(grads_j), named)

    with torch.no_grad():      # the noise that gives z: eps = (z - mu) / sigma, teacher-forced
        _, loc, scale, _ = tm.run(xt, zt, given=True)
        eps = (zt - loc) / scale
    tm.zero_grad(set_to_none=True)
    loss_t = tm.loss(xt, eps)
    loss_t.backward()
    loss_grad_err = _grad_errors(torch_draw.torch_layout(loss_grads_j), named)

    t = lambda a: a.detach().double().numpy()
    log_w_j = log_px_j + log_pz_j - log_q_j
    lj, lt = float(loss_j), float(loss_t.detach())
    values = {"log_q": (log_q_j, t(log_q_t)), "log_px": (log_px_j, t(log_px_t)),
              "log_w": (log_w_j, t(log_w_t))}
    rec = {"setting_name": setting, "attention": attention, "batch": int(x_bin.shape[0]),
           "steps": model.steps, "hidden": model.hidden, "latent": model.latent_dim,
           "mean": {n: [float(np.mean(a)), float(np.mean(b))] for n, (a, b) in values.items()},
           "rel_err": {n: rel_err(a, b) for n, (a, b) in values.items()},
           "loss_jaxvae": lj, "loss_torch": lt}
    rec["rel_err"]["loss"] = abs(lt - lj) / abs(lj)
    for prefix, errs in (("grad", grad_err), ("loss_grad", loss_grad_err)):
        worst = max(errs, key=errs.get)
        rec.update({f"{prefix}_rel_err": errs, f"{prefix}_max_rel_err": errs[worst],
                    f"{prefix}_worst_leaf": worst})
    rec["value_max_rel_err"] = max(rec["rel_err"].values())
    rec["ok"] = bool(rec["value_max_rel_err"] < VALUE_TOL and rec["grad_max_rel_err"] < GRAD_TOL
                     and rec["loss_grad_max_rel_err"] < GRAD_TOL)
    return rec


# -------------------------------------------------------------------------------- runners

def make_jaxvae(model, params0, x_bin):
    """jaxvae's own train step: ``make_train_step(make_loss(model, "elbo", 1), adam)``."""
    return jaxvae_step_runner(jax_loss(model), params0, np.asarray(x_bin, np.float32), LR)[0]


def make_torch(model, params0, x_bin, compile: bool, threads: int):
    import torch

    from benchmarks.peers import torch_draw

    torch.set_num_threads(threads)
    tm = torch_draw.from_jaxvae(params0, bool(model.read_size), model.image_shape, model.steps)
    trainer = torch_draw.Trainer(tm, lr=LR, compile=compile)
    x = torch.from_numpy(np.ascontiguousarray(x_bin, np.float32))
    return TorchThreads(trainer_runner(trainer, x), threads)


# ----------------------------------------------------------------------------------- FLOPs

def step_flops(params, batch: int, steps: int, image_shape=IMAGE_SHAPE,
               passes: int = 1) -> dict:
    """Multiply-add FLOPs (2 per MAC) of one train step, from the parameter shapes.

    Forward, per image and step: the encoder's LSTM (one ``[inputs + hidden] x [4
    hidden]`` matmul) and head, and with attention the read's Linear(h^dec) -> 5 and its
    filterbank products F_Y x F_X^T for x and x^ (2 N H W + 2 N N W each); the decoder's
    LSTM and write layer, and with attention the write's Linear -> 5 and F_Y^T w F_X
    (2 H N N + 2 H N W). ``forward`` counts each network once per step (the model, as
    the torch peer computes it); ``jaxvae_forward`` counts the decoder ``passes`` times
    (jaxvae's loss runs its recurrence in q(z|x) and again in p(x|z) while ``passes`` is
    2). Backward = 2x forward; elementwise work (gates, filters' exp and softmax, the
    likelihood, Adam) is not counted.
    """
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    height, width = image_shape
    size = lambda a: int(np.prod(np.shape(a)))
    hidden = np.shape(enc["lstm"]["gates"]["kernel"])[1] // 4
    enc_layers = {"encoder/lstm": 2 * size(enc["lstm"]["gates"]["kernel"]),
                  "encoder/head": 2 * size(enc["head"]["kernel"])}
    dec_layers = {"decoder/lstm": 2 * size(dec["lstm"]["gates"]["kernel"]),
                  "decoder/write": 2 * size(dec["write"]["kernel"])}
    if "read_attention" in enc:
        n_r = int(round(np.sqrt((np.shape(enc["lstm"]["gates"]["kernel"])[0] - 2 * hidden) / 2)))
        n_w = int(round(np.sqrt(np.shape(dec["write"]["kernel"])[1])))
        enc_layers["encoder/read_attention"] = 2 * size(enc["read_attention"]["kernel"])
        enc_layers["encoder/read_filters"] = 2 * (2 * n_r * height * width
                                                  + 2 * n_r * n_r * width)
        dec_layers["decoder/write_attention"] = 2 * size(dec["write_attention"]["kernel"])
        dec_layers["decoder/write_filters"] = 2 * height * n_w * n_w + 2 * height * n_w * width
    rows = batch * steps
    enc_f = sum(enc_layers.values()) * rows
    dec_f = sum(dec_layers.values()) * rows
    forward, jax_forward = enc_f + dec_f, enc_f + passes * dec_f
    return {"forward": int(forward), "total": int(3 * forward),
            "jaxvae_forward": int(jax_forward), "jaxvae_total": int(3 * jax_forward),
            "decoder_passes": passes,
            "per_layer_forward": {n: int(f * rows) for n, f in {**enc_layers,
                                                                  **dec_layers}.items()}}


# ---------------------------------------------------------------------------------- timing

def time_setting(model, params0, x_bin, names, repeats, target, threads, rotate) -> dict:
    makers = {
        "jaxvae": lambda: make_jaxvae(model, params0, x_bin),
        "torch_eager": lambda: make_torch(model, params0, x_bin, False, threads),
        "torch_eager_1t": lambda: make_torch(model, params0, x_bin, False, 1),
        "torch_compile": lambda: make_torch(model, params0, x_bin, True, threads),
        "matmul_jax": make_matmul_jax,
        "matmul_torch": lambda: TorchThreads(make_matmul_torch(), threads),
    }
    timed = time_runners(makers, names, repeats, target, rotate)
    timed.pop("live")
    return timed


def build_record(setting, attention, batch, tm, flops) -> dict:
    sec = tm["seconds"]
    rec = {"setting_name": setting, "attention": attention, "batch": batch,
           "first_call_s": tm["first_call_s"], "errors": tm["errors"],
           "steps_per_round": tm["steps_per_round"], "first_step_loss": tm["first_step_loss"],
           "flops": flops, "steps_per_s": {}, "ratio": {}}
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
        rec["best_jaxvae_steps_per_s"] = peak * 1e9 / flops["jaxvae_total"]
        for name, s in rec["steps_per_s"].items():
            work = flops["jaxvae_total"] if name == "jaxvae" else flops["total"]
            rec.setdefault("gflops", {})[name] = s["median"] * work / 1e9
            rec.setdefault("fraction_of_matmul", {})[name] = s["median"] * work / (peak * 1e9)
    return rec


# ---------------------------------------------------------------------------------- report

def _label(rec) -> str:
    return "attention" if rec["attention"] else "no attention"


def report(records, checks, meta, command) -> str:
    passes = meta["decoder_passes"]
    sizes = (f"T = {meta['steps']} steps, latent {meta['latent']} per step, LSTMs "
             f"{meta['hidden']} wide; attention: read N = {READ_SIZE}, write N = {WRITE_SIZE}")
    lines = ["# DRAW train-step throughput: jaxvae vs PyTorch (CPU)", "",
             f"28x28 binary {meta['data']} images ({meta['batch_source']}), {sizes}; negative "
             f"ELBO (one z per image, Monte Carlo KL), Adam {LR:g}. Steps per second, median "
             f"[min–max] over {meta['repeats']} interleaved rounds; ratios are jaxvae's "
             "steps/s over the peer's, paired per round. torch runs with "
             f"{meta['torch_threads']} threads"
             + (", and eager also with 1 thread: on a shared machine an OpenMP thread that "
                "waits for a descheduled sibling wastes its core, so more threads can be "
                "slower." if any("torch_eager_1t" in r["steps_per_s"] for r in records)
                else "."), ""]
    header = ["setting", "B", "jaxvae", "torch eager", "torch eager, 1 thread", "torch.compile",
              "jaxvae / eager", "jaxvae / eager 1 thread", "jaxvae / compile",
              "best possible", "jax first call (s)", "compile first call (s)"]
    rows = []
    for rec in records:
        sp = rec["steps_per_s"]
        cell = lambda n: fmt_spread(sp[n]) if n in sp else "–"
        ratio = lambda n: fmt_spread(rec["ratio"][n]) if n in rec["ratio"] else "–"
        first = rec["first_call_s"]
        rows.append([_label(rec), rec["batch"], cell("jaxvae"), cell("torch_eager"),
                     cell("torch_eager_1t"), cell("torch_compile"), ratio("torch_eager"),
                     ratio("torch_eager_1t"), ratio("torch_compile"),
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–",
                     f"{first['jaxvae']:.1f}" if "jaxvae" in first else "–",
                     f"{first['torch_compile']:.1f}" if "torch_compile" in first else "–"])
    lines.append(markdown_table(header, rows))
    for rec in records:
        for name, err in rec["errors"].items():
            lines.append(f"\n{_label(rec)}, B = {rec['batch']}: {name} failed: {err}")
    twice = (f"jaxvae's ELBO runs the decoder recurrence {passes} times per step: once "
             "inside q(z|x) (whose encoder reads the decoder's state h^dec, so sampling z "
             "runs the whole recurrence and draws the canvas) and again in p(x|z) from the "
             "sampled z; its FLOPs count both passes, the torch peer's and the best "
             "possible count one." if passes > 1 else
             "jaxvae's ELBO runs the decoder recurrence once per step, as the torch peer does.")
    lines += ["", "## The physical limit", "",
              "FLOPs of one step: the matmuls of the T steps (both LSTMs, the head, the "
              "dense write or the attention's Linear -> 5 layers, filterbank products and "
              "patch write), 2 per multiply-add, backward = 2x forward. " + twice + " Best "
              "possible = the best sustained 2048^2 matmul rate (jnp.dot or torch.mm, same "
              "rounds) / step FLOPs; an LSTM step is a small matmul and rarely reaches "
              "that rate, so it is an upper bound.", ""]
    header = ["setting", "B", "GFLOP/step", "jaxvae GFLOP/step",
              "matmul GFLOP/s (jax / torch)", "jaxvae GFLOP/s", "torch eager GFLOP/s",
              "torch eager 1 thread GFLOP/s", "torch.compile GFLOP/s", "best steps/s",
              "best steps/s, jaxvae's FLOPs"]
    rows = []
    for rec in records:
        g = rec.get("gflops", {})
        gf = lambda n: f"{g[n]:.3g}" if n in g else "–"
        mj, mt = rec.get("matmul_jax_gflops"), rec.get("matmul_torch_gflops")
        rows.append([_label(rec), rec["batch"], f"{rec['flops']['total'] / 1e9:.3g}",
                     f"{rec['flops']['jaxvae_total'] / 1e9:.3g}",
                     (f"{mj['median']:.0f} / {mt['median']:.0f}" if mj and mt else "–"),
                     gf("jaxvae"), gf("torch_eager"), gf("torch_eager_1t"),
                     gf("torch_compile"),
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–",
                     f"{rec['best_jaxvae_steps_per_s']:.3g}"
                     if "best_jaxvae_steps_per_s" in rec else "–"])
    lines.append(markdown_table(header, rows))
    lines += ["", "## Self-check (same weights, binary batch and latents z)", ""]
    rows = []
    for c in checks:
        m, e = c["mean"], c["rel_err"]
        rows.append([_label(c), c["batch"],
                     f"{m['log_q'][0]:.2f} / {m['log_q'][1]:.2f} ({e['log_q']:.1e})",
                     f"{m['log_px'][0]:.2f} / {m['log_px'][1]:.2f} ({e['log_px']:.1e})",
                     f"{m['log_w'][0]:.2f} / {m['log_w'][1]:.2f} ({e['log_w']:.1e})",
                     f"{c['grad_max_rel_err']:.1e} ({c['grad_worst_leaf']})",
                     f"{c['loss_jaxvae']:.3f} / {c['loss_torch']:.3f} ({e['loss']:.1e})",
                     f"{c['loss_grad_max_rel_err']:.1e} ({c['loss_grad_worst_leaf']})",
                     "ok" if c["ok"] else "FAILED"])
    lines.append(markdown_table(
        ["setting", "B", "log q(z|x) jaxvae / torch (rel. err)", "log p(x|z)", "log w",
         "max grad rel. err of mean log w at z (leaf)", "loss jaxvae / torch",
         "max loss grad rel. err (leaf)", ""], rows))
    lines += ["", f"Means over the batch; tolerances: values {VALUE_TOL:g} (relative L2 over "
              f"the batch), gradients {GRAD_TOL:g} (relative L2 per leaf; each jaxvae LSTM "
              "kernel compared as torch's weight_ih and weight_hh), float32. z is what "
              "jaxvae's loss samples for the check's key; the torch model evaluates it by "
              "teacher forcing, and its training loss gets the noise eps = (z - mu) / sigma.",
              "", "## Run", "", f"- command: `{command}`", f"- machine: {meta['machine']}",
              f"- torch {meta.get('torch', '?')}, threads {meta['torch_threads']}; "
              f"XLA_FLAGS={meta['xla_flags'] or '(none)'}",
              f"- rounds {meta['repeats']}, {meta['target_s']} s per measurement; "
              f"load average before {meta['load_before']}, after {meta['load_after']}; "
              f"wall {meta['wall_s']:.0f} s"]
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ main

def _int_list(text: str) -> tuple:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "data", "seed", "steps", "out", "json", "quick",
                     helps={"steps": f"T, DRAW's steps (default {STEPS}, quick "
                                     f"{QUICK['steps']})"})
    parser.add_argument("--settings", default=None,
                        help="comma-separated subset of " + ",".join(SETTINGS)
                        + " (default both; quick: " + ",".join(QUICK["settings"]) + ")")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"the main batch size (default {BATCHES[0]}); with --batches "
                        "unset, time it and the small batch")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes to time (default: --batch and "
                        f"{BATCHES[1]}; quick: {QUICK['batches'][0]})")
    parser.add_argument("--hidden", type=int, default=None,
                        help=f"LSTM width (default {HIDDEN}, quick {QUICK['hidden']})")
    parser.add_argument("--latent", type=int, default=None,
                        help=f"latent size per step (default {LATENT}, quick {QUICK['latent']})")
    parser.add_argument("--repeats", type=int, default=None, help="rounds R (default 5, quick 2)")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds per measurement (default 2, quick 0.3)")
    parser.add_argument("--compile", dest="torch_compile", action="store_true", default=None,
                        help="include torch.compile in --quick mode too")
    parser.add_argument("--no-compile", dest="torch_compile", action="store_false",
                        help="skip torch.compile")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the number of cores)")
    parser.add_argument("--one-thread", dest="one_thread", action="store_true", default=True,
                        help="also time torch eager with 1 thread (the default)")
    parser.add_argument("--no-one-thread", dest="one_thread", action="store_false",
                        help="skip torch eager with 1 thread")
    parser.add_argument("--check-batch", type=int, default=None,
                        help=f"images in the self-check (default {CHECK_BATCH}, quick "
                        f"{QUICK['check_batch']})")
    parser.add_argument("--check-only", action="store_true",
                        help="run the self-checks (stored in OUT/runs.jsonl, so a later run "
                        "skips them) and stop before timing")
    parser.add_argument("--fresh", action="store_true",
                        help="discard OUT/runs.jsonl (finished settings are skipped otherwise)")
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    resolve_common(args, DEFAULT_OUT)
    settings = args.settings or ",".join(QUICK["settings"] if args.quick else SETTINGS)
    args.setting_list = [s.strip() for s in settings.split(",") if s.strip()]
    if not args.setting_list or set(args.setting_list) - set(SETTINGS):
        parser.error(f"--settings must be among {tuple(SETTINGS)}")
    q = args.quick
    if args.batches:
        args.batch_list = _int_list(args.batches)
    elif args.batch:
        args.batch_list = tuple(dict.fromkeys((args.batch, BATCHES[1])))
    else:
        args.batch_list = QUICK["batches"] if q else BATCHES
    if not args.batch_list or min(args.batch_list) < 1:
        parser.error("--batches must be positive ints")
    args.steps = args.steps or (QUICK["steps"] if q else STEPS)
    args.hidden = args.hidden or (QUICK["hidden"] if q else HIDDEN)
    args.latent = args.latent or (QUICK["latent"] if q else LATENT)
    args.check_batch = min(max(args.batch_list),
                           args.check_batch or (QUICK["check_batch"] if q else CHECK_BATCH))
    args.repeats = args.repeats or (2 if q else 5)
    args.target = args.target or (0.3 if q else 2.0)
    if args.torch_compile is None:
        args.torch_compile = not q
    return args


def _sizes(args) -> dict:
    return {"steps": args.steps, "hidden": args.hidden, "latent": args.latent,
            "read_size": READ_SIZE, "write_size": WRITE_SIZE}


def _setting_key(args, setting, batch, threads, model_id) -> dict:
    """What one timing record depends on (the results store's key); ``model_id``: the
    jaxvae loss's decoder passes and the parameter signature."""
    return {"kind": "timing", "setting": setting, "attention": SETTINGS[setting],
            "batch": batch, **_sizes(args), "seed": args.seed, "data": args.data,
            **model_id, "torch_compile": args.torch_compile,
            "one_thread": args.one_thread, "repeats": args.repeats, "target_s": args.target,
            "torch_threads": threads, "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _check_key(args, setting, model_id) -> dict:
    return {"kind": "self_check", "setting": setting, "attention": SETTINGS[setting],
            **_sizes(args), "check_batch": args.check_batch, "seed": args.seed,
            "data": args.data, **model_id}


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_before = loadavg()
    import torch

    import jaxvae

    threads = args.torch_threads or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    log(f"machine: {machine()}; torch {torch.__version__}, {threads} threads; "
        f"load {load_before}")
    models, params = {}, {}

    def model_of(setting):
        if setting not in models:
            models[setting] = build_model(SETTINGS[setting], args.steps, args.hidden,
                                          args.latent)
        return models[setting]

    def params_of(setting):
        if setting not in params:
            params[setting] = init_params(model_of(setting), args.seed)
        return params[setting]

    passes = {s: decoder_passes(model_of(s)) for s in args.setting_list}
    model_id = {s: {"decoder_passes": passes[s], "params": param_signature(model_of(s))}
                for s in args.setting_list}
    log("decoder recurrences per jaxvae loss: "
        + ", ".join(f"{s} {n}" for s, n in passes.items()))
    store_path = os.path.join(args.out, "runs.jsonl")
    if args.fresh and os.path.exists(store_path):
        os.remove(store_path)
    store = ResultsStore(store_path)
    check_plan = [] if args.no_check else [_check_key(args, s, model_id[s])
                                           for s in args.setting_list]
    time_plan = [_setting_key(args, s, b, threads, model_id[s])
                 for s in args.setting_list for b in args.batch_list]
    todo_checks = store.missing(check_plan)
    todo_times = store.missing(time_plan)
    if len(store):
        log(f"{store_path}: {len(check_plan) + len(time_plan) - len(todo_checks) - len(todo_times)}"
            f" of {len(check_plan) + len(time_plan)} records already done (--fresh redoes them)")

    data = jaxvae.load(args.data, "train")
    x_bin = jaxvae.binarize_fixed(np.asarray(data.images[:max(args.batch_list)], np.float32),
                                  seed=args.seed)
    if todo_checks:
        log("self-check: same weights, binary batch and latents ...")
    for key in todo_checks:
        setting = key["setting"]
        c = self_check(setting, params_of(setting), model_of(setting),
                       x_bin[:args.check_batch], args.seed)
        e = c["rel_err"]
        log(f"  {setting}: rel. err log q {e['log_q']:.1e}, log p(x|z) {e['log_px']:.1e}, "
            f"log w {e['log_w']:.1e}, loss {e['loss']:.1e}; max grad rel. err "
            f"{c['grad_max_rel_err']:.1e} ({c['grad_worst_leaf']}), loss grad "
            f"{c['loss_grad_max_rel_err']:.1e} ({c['loss_grad_worst_leaf']})"
            + ("" if c["ok"] else "  FAILED") + f"  [{time.perf_counter() - t_start:.0f} s]")
        if not c["ok"]:
            log("self-check FAILED: refusing to time (nothing is stored)")
            return 1
        store.add({"setting": key, **c})
    if args.check_only:
        log(f"self-checks done ({len(check_plan) - len(todo_checks)} of {len(check_plan)} "
            f"from {store_path}); --check-only: nothing is timed")
        return 0
    checks = [store.get(key) for key in check_plan]
    if any(not c["ok"] for c in checks):
        log("a stored self-check failed; refusing to time")
        return 1

    names = ["jaxvae", "torch_eager"] \
        + (["torch_eager_1t"] if args.one_thread and threads > 1 else []) \
        + (["torch_compile"] if args.torch_compile else []) + ["matmul_jax", "matmul_torch"]
    for i, key in enumerate(todo_times):
        setting, batch = key["setting"], key["batch"]
        model, params0 = model_of(setting), params_of(setting)
        log(f"timing {setting}, batch {batch} ...")
        load0 = loadavg()
        tm = time_setting(model, params0, x_bin[:batch], names, args.repeats, args.target,
                          threads, rotate=i)
        rec = build_record(setting, SETTINGS[setting], batch, tm,
                           step_flops(params0, batch, args.steps, IMAGE_SHAPE, passes[setting]))
        rec.update(load_before=load0, load_after=loadavg(), when=time.strftime("%Y-%m-%d %H:%M"))
        sp = rec["steps_per_s"]
        log("  steps/s: " + ", ".join(f"{n} {v['median']:.3g}" for n, v in sp.items())
            + f"; load {rec['load_after']}; at {time.perf_counter() - t_start:.0f} s")
        ref = tm["first_step_loss"].get("jaxvae")
        for name, value in tm["first_step_loss"].items():
            if ref is not None and abs(value - ref) > 0.05 * abs(ref):
                raise AssertionError(f"first-step loss of {name} ({value:.3f}) differs "
                                     f"from jaxvae's ({ref:.3f}) by more than 5%")
        store.add({"setting": key, **rec})
    records = [store.get(key) for key in time_plan]

    meta = {"machine": machine(), "torch": torch.__version__, "torch_threads": threads,
            "repeats": args.repeats, "target_s": args.target, "quick": args.quick,
            "torch_compile": args.torch_compile, "data": args.data, **_sizes(args),
            "batches": list(args.batch_list), "check_batch": args.check_batch,
            "decoder_passes": max(passes.values()), "decoder_passes_by_setting": passes,
            "batch_source": f"the first B train images, binarize_fixed(seed={args.seed}); "
                            f"self-check: the first {args.check_batch}",
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_before": load_before, "load_after": loadavg(),
            "wall_s": time.perf_counter() - t_start,
            "records_from_earlier_runs": len(time_plan) - len(todo_times)}
    notes = ["torch: nn.LSTMCell in a Python loop over the T steps, the whole batch per step; "
             "jaxvae: one lax.scan over the steps per image, vmapped over the batch",
             "torch.compile traces the Python loop, so its graph holds the T steps unrolled "
             "(the compile time grows with T)"]
    if not args.torch_compile:
        notes.append("torch.compile skipped (--quick or --no-compile)")
    if not args.one_thread:
        notes.append("torch eager with 1 thread skipped (--no-one-thread)")
    if args.quick:
        notes.append(f"--quick: T = {args.steps}, hidden {args.hidden}, latent {args.latent} "
                     "(a smoke test, not the paper's sizes)")
    if meta["records_from_earlier_runs"]:
        notes.append(f"{meta['records_from_earlier_runs']} of {len(time_plan)} settings were "
                     f"timed by an earlier run of this command ({store_path}); the wall time "
                     "is this run's")
    meta["notes"] = notes
    command = command_line("benchmarks/draw_throughput.py")
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
        headline["self_check_max_value_rel_err"] = max(c["value_max_rel_err"] for c in checks)
        headline["self_check_max_grad_rel_err"] = max(
            max(c["grad_max_rel_err"], c["loss_grad_max_rel_err"]) for c in checks)
    res = {"command": command, "meta": meta, "self_check": checks, "records": records,
           "headline": headline}
    write_results(args.out, table, res, headline, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
