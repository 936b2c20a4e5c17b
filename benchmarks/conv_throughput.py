"""Train-step throughput of jaxvae's convolutional VAE against PyTorch, eager and compiled.

The model is the ``conv`` preset for 28 x 28 MNIST as ``jaxvae.train_and_evaluate`` builds
it (``conv_vae``: widths 32, 64, hidden 256, latent 32, output bias = logit of the batch's
mean), with each of the three decoders (transposed, depth-to-space, unpool), in two
settings: the ELBO (k = 1, Monte Carlo KL) and the IWAE bound with k = 5, batch 100, Adam
1e-3. jaxvae is timed through its own train step (``jaxvae.make_train_step`` with the
preprocess ``train_and_evaluate`` uses for Bernoulli data: dynamic binarization inside
the step); PyTorch through the same step written plainly (:mod:`benchmarks.peers.
torch_conv`: fresh ``torch.bernoulli`` binarization and ``torch.randn`` noise each step,
``loss.backward()``, ``Adam.step()``), eager and under ``torch.compile`` (default mode).

1. Self-check, per decoder and objective: the same parameters, the same binarized batch
   and the same noise eps give the same loss (relative error < 1e-4) and every gradient
   leaf the same values (relative L2 error < 1e-3). Nothing is timed if it fails.
2. Timing, interleaved in one process: per setting every contender's first call (jax:
   trace + compile + run; torch.compile: compilation) is timed on its own, then R rounds
   of N steps each (N calibrated to ``--target`` seconds) in a rotating order; medians and
   [min, max] over the rounds, ratios paired per round.
3. The physical limit: the FLOPs of one step (convolutions and matmuls, forward x ~3) and
   this CPU's sustained rate on a 2048^2 matmul (``jnp.dot`` and ``torch.mm``, timed in the
   same rounds) give an upper bound on steps per second.

    python benchmarks/conv_throughput.py                 # all three decoders, k = 1 and 5
    python benchmarks/conv_throughput.py --quick         # < 1 min smoke test, no compile

Writes OUT/table.md and OUT/results.json (default benchmarks/results/conv_throughput/,
``quick/`` below it with --quick).
"""

from __future__ import annotations

import argparse
import math
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
    loadavg,
    log,
    machine,
    markdown_table,
    resolve_common,
    summary,
    write_results,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "conv_throughput")
DECODERS = ("transposed", "depth-to-space", "unpool")
SETTINGS = {"elbo": ("elbo", 1), "iwae5": ("iwae", 5)}
BATCH, CHECK_BATCH = 100, 20
LR = 1e-3
MATMUL_N = 2048
LOSS_TOL, GRAD_TOL = 1e-4, 1e-3
GRAD_TOL_F32 = 3e-2          # float32 gradients: relu units at rounding distance from 0 may flip
TARGET_RATIO = 1.5            # jaxvae / torch.compile steps per second




# ------------------------------------------------------------------------------ the model

def build_model(decoder: str, data_mean):
    """The ``conv`` preset as ``train_and_evaluate`` builds it for Bernoulli data."""
    import jaxvae

    config = jaxvae.Config(model="conv", decoder=decoder)
    return jaxvae.presets.get_preset("conv").build(config, (28, 28), data_mean), config


def init_params(model, seed: int):
    import jax

    return jax.jit(model.init_params)(jax.random.PRNGKey(seed))


def jax_loss(model, objective: str, k: int):
    import jaxvae

    return jaxvae.make_loss(model, objective, k)


# ----------------------------------------------------------------------------- self-check

def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def jaxvae_noise(model, params, x, key, k: int):
    """The eps ``[B, k, L]`` jaxvae's loss draws for ``key``: one key per example from
    ``split(key, B)``, then ``q.sample(seed=key_i, sample_shape=(k,))``, eps = (z - mu) / s."""
    import jax

    import jaxvae

    def per_example(xi, ki):
        q = jaxvae.bind(model, params).posterior(xi)
        z = q.sample(seed=ki, sample_shape=(k,))
        inner = q.distribution
        return (z - inner.loc) / inner.scale

    keys = jax.random.split(key, x.shape[0])
    return jax.jit(jax.vmap(per_example))(x, keys)


def _compare(decoder, objective, k, params, model, x_bin, key, dtype) -> dict:
    """Loss and gradients of jaxvae and of the torch model in ``dtype`` (float32 / float64)."""
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks.peers import torch_conv

    x = jnp.asarray(x_bin, dtype)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    (loss_j, _), grads_j = jax.jit(jax.value_and_grad(jax_loss(model, objective, k),
                                                      has_aux=True))(params, x, key)
    eps = np.asarray(jaxvae_noise(model, params, x, key, k))
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tm = torch_conv.from_jaxvae(params, decoder).to(tdtype)
    xt = torch.from_numpy(np.ascontiguousarray(x_bin)).unsqueeze(1).to(tdtype)
    loss_t = tm.loss(xt, torch.from_numpy(eps.copy()).to(tdtype))
    loss_t.backward()
    ref = torch_conv.torch_layout(grads_j, decoder)
    grad_err = {name: rel_err(ref[name], p.grad.double().numpy())
                for name, p in tm.named_parameters()}
    worst = max(grad_err, key=grad_err.get)
    lj, lt = float(loss_j), float(loss_t.detach())
    return {"loss_jaxvae": lj, "loss_torch": lt, "loss_rel_err": abs(lt - lj) / abs(lj),
            "grad_max_rel_err": grad_err[worst], "grad_worst_leaf": worst,
            "grad_rel_err": grad_err}


def self_check(decoder: str, objective: str, k: int, params, model, x_bin: np.ndarray,
               seed: int, precisions=("float32", "float64")) -> dict:
    """jaxvae vs the torch model at identical weights, binarized batch and noise eps, in
    float32 (the benchmarked precision) and in float64 (jax x64 mode, torch ``double``).

    Passing needs: float32 loss within ``LOSS_TOL``; float64 loss within ``LOSS_TOL`` and
    every float64 gradient leaf within ``GRAD_TOL`` (relative L2); every float32 gradient
    leaf within ``GRAD_TOL_F32``. In float32 a relu whose input is within rounding
    (~1e-7) of zero can switch off in one implementation and not the other; among the
    ~10^6-10^7 relu units of a batch a few do, and each moves the gradients upstream of it
    by up to ~1e-2 relative. In float64 no unit is that close to zero, so the float64
    comparison is the exact test that both compute the same function and gradient.
    """
    import jax

    key = jax.random.PRNGKey(seed + 1000 + k)
    rec = {"decoder": decoder, "objective": objective, "k": k, "batch": int(x_bin.shape[0])}
    rec["ok"] = True
    if "float32" in precisions:
        f32 = rec["float32"] = _compare(decoder, objective, k, params, model, x_bin, key,
                                        np.float32)
        rec["ok"] &= f32["loss_rel_err"] < LOSS_TOL and f32["grad_max_rel_err"] < GRAD_TOL_F32
    if "float64" in precisions:
        with jax.enable_x64(True):
            f64 = rec["float64"] = _compare(decoder, objective, k, params, model, x_bin, key,
                                            np.float64)
        rec["ok"] &= f64["loss_rel_err"] < LOSS_TOL and f64["grad_max_rel_err"] < GRAD_TOL
    return rec


# -------------------------------------------------------------------------------- runners

class Runner:
    """``first()``: the first step, timed alone (compilation); ``run(n)``: n steps + sync."""

    def __init__(self, step, sync=lambda: None, loss=None):
        self.step, self.sync, self.loss = step, sync, loss

    def first(self) -> float:
        t = time.perf_counter()
        self.step()
        self.sync()
        return time.perf_counter() - t

    def run(self, n: int) -> float:
        step = self.step
        t = time.perf_counter()
        for _ in range(n):
            step()
        self.sync()
        return time.perf_counter() - t


def jaxvae_step_runner(loss, params0, x, lr: float = LR, preprocess=None):
    """``(Runner, step, box)`` for jaxvae's own train step ``make_train_step(loss,
    adam(lr), preprocess)`` on a copy of ``params0`` and the fixed batch ``x``; ``box``
    holds the live state and the last metrics (shared by the throughput scripts)."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxvae

    tx = optax.adam(lr)
    step = jaxvae.make_train_step(loss, tx, preprocess=preprocess)
    copy = jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), params0)
    box = {"state": jaxvae.create_train_state(copy, tx, jax.random.PRNGKey(0))}
    x = jnp.asarray(x)

    def one():
        box["state"], box["metrics"] = step(box["state"], x)

    return Runner(one, lambda: jax.block_until_ready((box["state"], box["metrics"])),
                  loss=lambda: float(box["metrics"]["loss"])), step, box


def make_jaxvae(model, config, params0, x_grey, objective: str, k: int):
    """jaxvae's own train step: ``make_train_step(loss, adam, preprocess=...)``."""
    from jaxvae import run_steps

    return jaxvae_step_runner(jax_loss(model, objective, k), params0, x_grey,
                              preprocess=run_steps.train_preprocess(config))


def make_torch(params0, decoder: str, x_grey, k: int, compile: bool, threads: int):
    import torch

    from benchmarks.peers import torch_conv

    torch.set_num_threads(threads)
    model = torch_conv.from_jaxvae(params0, decoder)
    trainer = torch_conv.Trainer(model, k, lr=LR, compile=compile)
    x = torch.from_numpy(np.ascontiguousarray(x_grey)).unsqueeze(1)
    return trainer_runner(trainer, x)


def trainer_runner(trainer, x) -> Runner:
    """A Runner of a PyTorch peer's ``trainer.step(x)`` (the loss it returns is the step's;
    CPU tensors: every op has finished when step() returns). Shared by the throughput
    scripts."""
    box = {}

    def one():
        box["loss"] = trainer.step(x)

    return Runner(one, loss=lambda: float(box["loss"]))


def make_matmul_jax():
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(1), (MATMUL_N, MATMUL_N), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(2), (MATMUL_N, MATMUL_N), jnp.float32)
    dot = jax.jit(jnp.dot)
    box = {}

    def one():
        box["c"] = dot(a, b)

    return Runner(one, lambda: jax.block_until_ready(box["c"]))


def make_matmul_torch():
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_N, MATMUL_N, generator=g)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=g)
    box = {}

    def one():
        box["c"] = torch.mm(a, b)

    return Runner(one)


# ----------------------------------------------------------------------------------- FLOPs

def step_flops(params, decoder: str, batch: int, k: int) -> dict:
    """Multiply-add FLOPs (2 per MAC) of one train step, from the parameter shapes.

    Forward: every convolution as the implementations compute it (2 * output pixels *
    kh * kw * C_in * C_out; the unpool convolution multiplies the inserted zeros too), the
    transposed convolution as a scatter of each input pixel through the 4 x 4 kernel
    (2 * input pixels * 16 * C_in * C_out, what a GEMM + col2im implementation does; a
    zero-inserting implementation does 4x that), and every dense layer (2 * n * p).
    Backward: 2x forward (input gradient + weight gradient), except the first encoder
    convolution, whose input (the data) needs no gradient. Encoder rows: B; decoder rows:
    B * k. Elementwise work (relu, exp, softplus, logsumexp, Adam) is not counted.
    """
    p = params["params"]
    enc, dec = p["encoder"], p["decoder"]
    side = 28
    layers = []                   # (name, forward FLOPs per row, rows, needs input grad)
    n_levels = sum(1 for n in enc if n.startswith("Conv_"))
    s = side
    for i in range(n_levels):
        kh, kw, ci, co = np.shape(enc[f"Conv_{i}"]["kernel"])
        s //= 2
        layers.append((f"encoder/Conv_{i}", 2 * s * s * kh * kw * ci * co, batch, i > 0))
    for name in ("Dense_0", "loc", "raw_scale"):
        n, m = np.shape(enc[name]["kernel"])
        layers.append((f"encoder/{name}", 2 * n * m, batch, True))
    rows = batch * k
    for name in ("Dense_0", "Dense_1"):
        n, m = np.shape(dec[name]["kernel"])
        layers.append((f"decoder/{name}", 2 * n * m, rows, True))
    for i in range(n_levels):
        up = dec[f"Upsample_{i}"]
        if decoder == "transposed":
            kh, kw, ci, co = np.shape(up["ConvTranspose_0"]["kernel"])
            fl = 2 * s * s * kh * kw * ci * co            # s = input side
        else:
            kh, kw, ci, co = np.shape(up["Conv_0"]["kernel"])
            conv_side = s if decoder == "depth-to-space" else 2 * s
            fl = 2 * conv_side * conv_side * kh * kw * ci * co
        layers.append((f"decoder/Upsample_{i}", fl, rows, True))
        s *= 2
    kh, kw, ci, co = np.shape(dec["out"]["kernel"])
    layers.append(("decoder/out", 2 * s * s * kh * kw * ci * co, rows, True))
    forward = sum(f * r for _, f, r, _ in layers)
    total = sum(f * r * (3 if grad_in else 2) for _, f, r, grad_in in layers)
    return {"forward": int(forward), "total": int(total),
            "per_layer_forward": {n: int(f * r) for n, f, r, _ in layers}}


def xla_cost(step, state, x) -> dict:
    """XLA's cost analysis of the lowered (not yet optimized) train step: FLOPs as XLA counts
    them, e.g. a transposed convolution as a convolution over the zero-dilated input."""
    try:
        cost = step.lower(state, x).cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return {k: float(cost[k]) for k in ("flops", "bytes accessed") if k in cost}
    except Exception as err:  # noqa: BLE001 - informational only
        return {"error": f"{type(err).__name__}: {err}"}


# ---------------------------------------------------------------------------------- timing

def time_runners(makers: dict, names, repeats: int, target: float, rotate: int) -> dict:
    """Times the contenders ``makers[name]() -> Runner`` for ``names``, interleaved.

    Each one's first call is timed alone (compilation); a contender that fails to build or
    run is recorded in ``errors`` and left out. The steps per round are calibrated to
    ``target`` seconds; then ``repeats`` rounds run every live contender in an order
    rotated by ``rotate + round``. Returns ``first_call_s``, ``seconds`` (per step, one per
    round), ``steps_per_round``, ``first_step_loss``, ``errors`` and ``live`` (the names
    that ran).
    """
    runners, first_s, first_loss, errors = {}, {}, {}, {}
    for name in names:
        try:
            runner = makers[name]()
            first_s[name] = runner.first()
            runners[name] = runner
            if runner.loss is not None:
                first_loss[name] = runner.loss()
            log(f"    {name}: first call {first_s[name]:.2f} s")
        except Exception as err:  # noqa: BLE001 - e.g. torch.compile without a compiler
            text = str(err).strip()
            errors[name] = f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"
            log(f"  ! {name} failed: {errors[name]}")
    live = [n for n in names if n in runners]
    steps = {}
    for name in live:
        runners[name].run(1)                                   # second call: warm caches
        t = runners[name].run(2) / 2
        steps[name] = max(1, min(1000, int(round(target / max(t, 1e-6)))))
    seconds = {name: [] for name in live}
    for r in range(repeats):
        shift = (r + rotate) % len(live)
        for name in live[shift:] + live[:shift]:
            seconds[name].append(runners[name].run(steps[name]) / steps[name])
    return {"first_call_s": first_s, "seconds": seconds, "steps_per_round": steps,
            "first_step_loss": first_loss, "errors": errors, "live": live}


def time_setting(decoder, objective, k, model, config, params0, x_grey, names, repeats, target,
                 threads, rotate) -> dict:
    makers = {
        "jaxvae": lambda: make_jaxvae(model, config, params0, x_grey, objective, k)[0],
        "torch_eager": lambda: make_torch(params0, decoder, x_grey, k, False, threads),
        "torch_compile": lambda: make_torch(params0, decoder, x_grey, k, True, threads),
        "matmul_jax": make_matmul_jax,
        "matmul_torch": make_matmul_torch,
    }
    timed = time_runners(makers, names, repeats, target, rotate)
    live = timed.pop("live")
    xla = {}
    if "jaxvae" in live:
        _, step, box = make_jaxvae(model, config, params0, x_grey, objective, k)
        import jax.numpy as jnp
        xla = xla_cost(step, box["state"], jnp.asarray(x_grey))
    return {**timed, "xla_cost": xla}


def build_record(decoder, setting, objective, k, batch, tm, flops) -> dict:
    sec = tm["seconds"]
    rec = {"decoder": decoder, "setting_name": setting, "objective": objective, "k": k,
           "batch": batch, "first_call_s": tm["first_call_s"], "errors": tm["errors"],
           "steps_per_round": tm["steps_per_round"], "first_step_loss": tm["first_step_loss"],
           "flops": flops, "xla_cost": tm["xla_cost"], "steps_per_s": {}, "ratio": {}}
    for name, vals in sec.items():
        if not name.startswith("matmul"):
            rec["steps_per_s"][name] = summary([1.0 / v for v in vals])
    if "jaxvae" in sec:
        for peer in ("torch_compile", "torch_eager"):
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

def fmt_spread(s, digits=3) -> str:
    return f"{s['median']:.{digits}g} [{s['min']:.{digits}g}–{s['max']:.{digits}g}]"


def report(records, checks, meta, command) -> str:
    lines = ["# Conv VAE train-step throughput: jaxvae vs PyTorch (CPU)", "",
             f"Batch {meta['batch']}, Adam {LR:g}, 28x28 MNIST (dynamic binarization inside "
             "the step). "
             f"Steps per second, median [min–max] over {meta['repeats']} interleaved rounds; "
             "ratios are jaxvae's steps/s over the peer's, paired per round "
             f"(target: jaxvae >= {TARGET_RATIO}x torch.compile).", ""]
    header = ["decoder", "setting", "jaxvae", "torch eager", "torch.compile",
              "jaxvae / compile", "jaxvae / eager", "best possible", "jax first call (s)",
              "compile first call (s)"]
    rows = []
    for rec in records:
        sp = rec["steps_per_s"]
        cell = lambda n: fmt_spread(sp[n]) if n in sp else "–"
        ratio = lambda n: fmt_spread(rec["ratio"][n]) if n in rec["ratio"] else "–"
        rows.append([rec["decoder"], f"{rec['objective']} k={rec['k']}", cell("jaxvae"),
                     cell("torch_eager"), cell("torch_compile"), ratio("torch_compile"),
                     ratio("torch_eager"),
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–",
                     f"{rec['first_call_s'].get('jaxvae', float('nan')):.1f}",
                     f"{rec['first_call_s']['torch_compile']:.1f}"
                     if "torch_compile" in rec["first_call_s"] else "–"])
    lines.append(markdown_table(header, rows))
    lines += ["", "## The physical limit", "",
              "FLOPs of one step: convolutions and dense layers, 2 per multiply-add, backward "
              "= 2x forward except the first convolution (no data gradient). Best possible = "
              "the best sustained 2048^2 matmul rate (jnp.dot or torch.mm, same rounds) / "
              "step FLOPs; convolutions rarely reach the matmul rate, so it is an upper "
              "bound.", ""]
    header = ["decoder", "setting", "GFLOP/step", "XLA cost analysis GFLOP", "matmul GFLOP/s "
              "(jax / torch)", "jaxvae GFLOP/s", "torch.compile GFLOP/s", "best steps/s"]
    rows = []
    for rec in records:
        g = rec.get("gflops", {})
        mj, mt = rec.get("matmul_jax_gflops"), rec.get("matmul_torch_gflops")
        rows.append([rec["decoder"], f"{rec['objective']} k={rec['k']}",
                     f"{rec['flops']['total'] / 1e9:.2f}",
                     f"{rec['xla_cost']['flops'] / 1e9:.2f}" if "flops" in rec["xla_cost"]
                     else "–",
                     (f"{mj['median']:.0f} / {mt['median']:.0f}" if mj and mt else "–"),
                     f"{g['jaxvae']:.1f}" if "jaxvae" in g else "–",
                     f"{g['torch_compile']:.1f}" if "torch_compile" in g else "–",
                     f"{rec['best_steps_per_s']:.3g}" if "best_steps_per_s" in rec else "–"])
    lines.append(markdown_table(header, rows))
    lines += ["", "## Self-check (same weights, binarized batch and noise eps)", ""]
    rows = []
    for c in checks:
        a, b = c.get("float32"), c.get("float64")
        rows.append([c["decoder"], f"{c['objective']} k={c['k']}", c["batch"],
                     f"{a['loss_jaxvae']:.4f} / {a['loss_torch']:.4f}" if a else "–",
                     f"{a['loss_rel_err']:.1e}" if a else "–",
                     f"{a['grad_max_rel_err']:.1e} ({a['grad_worst_leaf']})" if a else "–",
                     f"{b['loss_rel_err']:.1e}" if b else "–",
                     f"{b['grad_max_rel_err']:.1e} ({b['grad_worst_leaf']})" if b else "–",
                     "ok" if c["ok"] else "FAILED"])
    lines.append(markdown_table(["decoder", "setting", "B", "f32 loss jaxvae / torch",
                                 "f32 loss rel. err", "f32 max grad rel. err (leaf)",
                                 "f64 loss rel. err", "f64 max grad rel. err (leaf)", ""],
                                rows))
    lines += ["", f"Tolerances: loss {LOSS_TOL:g} (both precisions); gradients, relative L2 "
              f"per leaf, {GRAD_TOL:g} in float64 and {GRAD_TOL_F32:g} in float32. In float32 "
              "a relu input within rounding (~1e-7) of zero can switch off in one "
              "implementation and not in the other; a few of the ~10^6 units of a batch do, "
              "and each moves the gradients upstream of it by up to ~1e-2. The float64 run "
              "(jax x64 mode, torch double) is the exact test.", "", "## Run", "",
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

def default_decoder() -> str:
    """``jaxvae.conv_vae``'s default decoder (the one a quick smoke test times)."""
    import inspect

    from jaxvae.models import conv

    return inspect.signature(conv.conv_vae).parameters["decoder"].default


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "data", "seed", "out", "json", "quick")
    parser.add_argument("--decoders", default=None,
                        help="comma-separated subset of " + ",".join(DECODERS)
                        + " (default all; quick: conv_vae's default decoder)")
    parser.add_argument("--settings", default=None,
                        help="comma-separated subset of elbo,iwae5 (default both; quick: elbo)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds R (default 5, quick 2)")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds per measurement (default 0.5, quick 0.15)")
    parser.add_argument("--compile", dest="torch_compile", action="store_true", default=None,
                        help="include torch.compile in --quick mode too")
    parser.add_argument("--no-compile", dest="torch_compile", action="store_false",
                        help="skip torch.compile")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the number of cores)")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"batch size of the timed step (default {BATCH}, quick 20)")
    parser.add_argument("--check-batch", type=int, default=None,
                        help=f"examples in the self-check (default {CHECK_BATCH}, quick 8)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard OUT/runs.jsonl (finished settings are skipped otherwise)")
    parser.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    resolve_common(args, DEFAULT_OUT)
    decoders = args.decoders or (default_decoder() if args.quick else ",".join(DECODERS))
    args.decoder_list = [d.strip() for d in decoders.split(",") if d.strip()]
    if set(args.decoder_list) - set(DECODERS):
        parser.error(f"--decoders must be among {DECODERS}")
    settings = args.settings or ("elbo" if args.quick else ",".join(SETTINGS))
    args.setting_list = [s.strip() for s in settings.split(",") if s.strip()]
    if set(args.setting_list) - set(SETTINGS):
        parser.error(f"--settings must be among {tuple(SETTINGS)}")
    args.batch = args.batch or (20 if args.quick else BATCH)
    args.check_batch = min(args.batch, args.check_batch or (8 if args.quick else CHECK_BATCH))
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.target = args.target or (0.15 if args.quick else 0.5)
    if args.torch_compile is None:
        args.torch_compile = not args.quick
    return args


def _setting_key(args, decoder, setting, threads) -> dict:
    """What one timing record depends on (the results store's key)."""
    objective, k = SETTINGS[setting]
    return {"kind": "timing", "decoder": decoder, "objective": objective, "k": k,
            "batch": args.batch, "seed": args.seed, "data": args.data,
            "torch_compile": args.torch_compile, "repeats": args.repeats,
            "target_s": args.target, "torch_threads": threads,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _check_key(args, decoder, setting, precisions) -> dict:
    objective, k = SETTINGS[setting]
    return {"kind": "self_check", "decoder": decoder, "objective": objective, "k": k,
            "check_batch": args.check_batch, "seed": args.seed, "data": args.data,
            "precisions": list(precisions)}


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
    store_path = os.path.join(args.out, "runs.jsonl")
    if args.fresh and os.path.exists(store_path):
        os.remove(store_path)
    store = ResultsStore(store_path)
    # --quick: the float64 comparison alone (the exact one), to save two compilations
    precisions = ("float64",) if args.quick else ("float32", "float64")
    check_plan = [] if args.no_check else [
        _check_key(args, d, s, precisions) for d in args.decoder_list for s in args.setting_list]
    time_plan = [_setting_key(args, d, s, threads)
                 for d in args.decoder_list for s in args.setting_list]
    todo_checks, todo_times = store.missing(check_plan), store.missing(time_plan)
    if len(store):
        log(f"{store_path}: {len(check_plan) + len(time_plan) - len(todo_checks) - len(todo_times)}"
            f" of {len(check_plan) + len(time_plan)} records already done (--fresh redoes them)")

    data = jaxvae.load(args.data, "train")
    x_grey = np.asarray(data.images[:args.batch], np.float32)
    x_bin = jaxvae.binarize_fixed(x_grey[:args.check_batch], seed=args.seed)
    data_mean = np.asarray(data.images, np.float32).mean(axis=0)
    models = {}

    def model_of(decoder):
        if decoder not in models:
            model, config = build_model(decoder, data_mean)
            models[decoder] = (model, config, init_params(model, args.seed))
        return models[decoder]

    if todo_checks:
        log("self-check: same weights, binarized batch and noise ...")
    for key in todo_checks:
        decoder, objective, k = key["decoder"], key["objective"], key["k"]
        model, _, params = model_of(decoder)
        c = self_check(decoder, objective, k, params, model, x_bin, args.seed, precisions)
        log(f"  {decoder:15s} {objective} k={k}: " + "; ".join(
            f"{prec} loss rel. err {c[prec]['loss_rel_err']:.1e}, max grad rel. err "
            f"{c[prec]['grad_max_rel_err']:.1e} ({c[prec]['grad_worst_leaf']})"
            for prec in precisions)
            + ("" if c["ok"] else "  FAILED") + f"  [{time.perf_counter() - t_start:.0f} s]")
        if not c["ok"]:
            log("self-check FAILED: refusing to time (nothing is stored)")
            return 1
        store.add({"setting": key, **c})
    checks = [store.get(key) for key in check_plan]
    if any(not c["ok"] for c in checks):
        log("a stored self-check failed; refusing to time")
        return 1

    names = ["jaxvae", "torch_eager"] + (["torch_compile"] if args.torch_compile else []) \
        + ["matmul_jax", "matmul_torch"]
    for i, key in enumerate(todo_times):
        decoder, objective, k = key["decoder"], key["objective"], key["k"]
        setting = next(s for s, v in SETTINGS.items() if v == (objective, k))
        model, config, params0 = model_of(decoder)
        log(f"timing {decoder}, {objective} k={k} ...")
        load0 = loadavg()
        tm = time_setting(decoder, objective, k, model, config, params0, x_grey, names,
                          args.repeats, args.target, threads, rotate=i)
        rec = build_record(decoder, setting, objective, k, args.batch, tm,
                           step_flops(params0, decoder, args.batch, k))
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

    meta = {"machine": machine(), "torch": torch.__version__, "torch_threads": threads,
            "repeats": args.repeats, "target_s": args.target, "quick": args.quick,
            "torch_compile": args.torch_compile, "data": args.data,
            "batch": args.batch, "check_batch": args.check_batch,
            "batch_source": f"first {args.batch} train images (grey levels; binarized inside "
                            f"each step); self-check: the first {args.check_batch}, "
                            f"binarize_fixed(seed={args.seed})",
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_before": load_before, "load_after": loadavg(),
            "wall_s": time.perf_counter() - t_start,
            "records_from_earlier_runs": len(time_plan) - len(todo_times)}
    notes = []
    if not args.torch_compile:
        notes.append("torch.compile skipped (--quick or --no-compile)")
    if meta["records_from_earlier_runs"]:
        notes.append(f"{meta['records_from_earlier_runs']} of {len(time_plan)} settings were "
                     f"timed by an earlier run of this command ({store_path}); the wall time "
                     "is this run's")
    meta["notes"] = notes
    command = command_line("benchmarks/conv_throughput.py")
    table = report(records, checks, meta, command)
    ratios = [r["ratio"]["torch_compile"]["median"] for r in records
              if "torch_compile" in r["ratio"]]
    eager = [r["ratio"]["torch_eager"]["median"] for r in records if "torch_eager" in r["ratio"]]
    headline = {}
    if ratios:
        headline["min_ratio_jaxvae_over_torch_compile"] = min(ratios)
        headline["geomean_ratio_jaxvae_over_torch_compile"] = \
            math.exp(sum(math.log(v) for v in ratios) / len(ratios))
    if eager:
        headline["min_ratio_jaxvae_over_torch_eager"] = min(eager)
    for prec in ("float32", "float64"):
        if checks and all(prec in c for c in checks):
            headline[f"self_check_{prec}_max_loss_rel_err"] = \
                max(c[prec]["loss_rel_err"] for c in checks)
            headline[f"self_check_{prec}_max_grad_rel_err"] = \
                max(c[prec]["grad_max_rel_err"] for c in checks)
    res = {"command": command, "meta": meta, "self_check": checks, "records": records,
           "headline": headline}
    write_results(args.out, table, res, headline, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
