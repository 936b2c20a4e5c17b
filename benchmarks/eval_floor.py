"""The k = 5000 test log-likelihood of the ``iwae`` model against its floor on this machine.

The evaluator is :func:`jaxvae.log_likelihood` (the IWAE bound with k importance samples per
image, drawn ``sample_chunk`` at a time) on the ``iwae`` preset as ``train_and_evaluate``
builds it (784-200-200-50 tanh encoder and 50-200-200-784 decoder, Bernoulli likelihood,
output bias = logit of the training mean), with freshly initialized parameters (the time
does not depend on their values), on the first N test images (fixed binarization, seed).

1. The rate: the median of R jitted float32 2048 x 2048 x 2048 matmuls (``jnp.dot``),
   measured before and after the evaluation; also each decoder layer alone, at the
   evaluator's row count M = batch_size * sample_chunk ([M, 50] x [50, 200], [M, 200] x
   [200, 200], [M, 200] x [200, 784]).
2. The floor: the forward matrix-product FLOPs of the evaluation (2 m n p per dense layer;
   the encoder once per image, the decoder once per sample) divided by the 2048^3 rate.
3. The evaluator: one warm-up call on one batch (trace + compile + that batch), then the N
   images timed (wall and process CPU seconds); ratio = time / floor.
4. The elementwise work the floor leaves out, each timed alone on [M, width] arrays and
   scaled to the N * k samples: the Bernoulli log-likelihood of 784 pixels per sample
   (``BernoulliLogits.log_prob``), the tanh of the 2 x 200 hidden units and the 50 normal
   draws (threefry) per sample. floor + elementwise is a tighter bound.
5. With ``--runs R``: ``jaxvae.evaluate_runs.log_likelihood_runs`` on R parameter sets,
   run axis ``map`` against ``vmap`` against R separate calls, on ``--runs-images`` images.

    python benchmarks/eval_floor.py                       # full test set, k = 5000
    python benchmarks/eval_floor.py --quick               # seconds: embedded data, small N, k

Writes OUT/table.md and OUT/results.json (default benchmarks/results/eval_floor/,
``quick/`` below it with --quick); ``--json PATH`` writes the same results there.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.common import (  # noqa: E402
    add_common_flags,
    command_line,
    loadavg,
    log,
    machine,
    markdown_table,
    resolve_common,
    summary,
    write_json,
    write_table,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "eval_floor")
DATA_DIM, HIDDEN, LATENT = 784, (200, 200), 50
MATMUL_N = 2048




# --------------------------------------------------------------------------------- FLOPs

def decoder_layers() -> list[tuple[int, int]]:
    """(fan_in, fan_out) of the decoder's dense layers: 50-200-200-784."""
    widths = (LATENT, HIDDEN[1], HIDDEN[0], DATA_DIM)
    return list(zip(widths[:-1], widths[1:]))


def eval_flops(num_images: int, k: int) -> dict:
    """Forward matmul FLOPs (2 m n p per dense layer) of the k-sample evaluation."""
    dec = 2 * sum(a * b for a, b in decoder_layers())                      # per sample
    enc = 2 * (DATA_DIM * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + 2 * HIDDEN[1] * LATENT)
    return {"decoder_per_sample": dec, "encoder_per_image": enc,
            "decoder": num_images * k * dec, "encoder": num_images * enc,
            "total": num_images * (k * dec + enc)}


# ------------------------------------------------------------------------------- timings

def timed(fn, repeats: int, cpu: list | None = None) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (which blocks), after one warm-up call;
    the process CPU seconds of each call are appended to ``cpu`` if given."""
    fn()
    out = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
    return out


def matmul_rate(repeats: int, n: int = MATMUL_N) -> dict:
    """GFLOP/s of a jitted float32 n x n x n ``jnp.dot`` (median of ``repeats`` calls), and
    ``per_cpu_s``: the same FLOPs per process CPU second (all threads together)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.dot)
    cpu: list = []
    times = timed(lambda: f(a, b).block_until_ready(), repeats, cpu)
    out = summary([2 * n ** 3 / t / 1e9 for t in times])
    out["per_cpu_s"] = statistics.median(2 * n ** 3 / max(c, 1e-9) / 1e9 for c in cpu)
    return out


def layer_rates(rows: int, repeats: int) -> dict:
    """GFLOP/s of each decoder layer alone (``x @ W``, no bias or activation) at ``rows``."""
    import jax
    import jax.numpy as jnp

    out = {}
    for fan_in, fan_out in decoder_layers():
        x = jax.random.normal(jax.random.PRNGKey(0), (rows, fan_in), jnp.float32)
        w = jax.random.normal(jax.random.PRNGKey(1), (fan_in, fan_out), jnp.float32)
        f = jax.jit(jnp.dot)
        times = timed(lambda: f(x, w).block_until_ready(), repeats)
        out[f"{rows}x{fan_in}x{fan_out}"] = summary(
            [2 * rows * fan_in * fan_out / t / 1e9 for t in times])
    return out


def elementwise_rates(rows: int, repeats: int, x_row) -> dict:
    """Seconds per element of the evaluation's elementwise work, each timed alone on
    ``[rows, width]`` arrays: the Bernoulli log-likelihood (jaxvae's ``BernoulliLogits``)
    of 784 logits summed per row, tanh, and standard normal draws (threefry)."""
    import jax
    import jax.numpy as jnp

    from jaxvae import likelihoods

    logits = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (rows, DATA_DIM), jnp.float32)
    pre = jax.random.normal(jax.random.PRNGKey(1), (rows, HIDDEN[0]), jnp.float32)
    x = jnp.asarray(np.reshape(x_row, (DATA_DIM,)), jnp.float32)
    bern = jax.jit(lambda l: likelihoods.Bernoulli()(l, 1).log_prob(x))
    tanh = jax.jit(lambda h: jnp.sum(jnp.tanh(h), axis=-1))
    normal = jax.jit(lambda key: jnp.sum(jax.random.normal(key, (rows, LATENT)), axis=-1))
    key = jax.random.PRNGKey(2)
    cases = {"bernoulli_log_prob": (lambda: bern(logits).block_until_ready(), DATA_DIM),
             "tanh": (lambda: tanh(pre).block_until_ready(), HIDDEN[0]),
             "normal_draws": (lambda: normal(key).block_until_ready(), LATENT)}
    out = {}
    for name, (fn, width) in cases.items():
        out[name] = summary([t / (rows * width) for t in timed(fn, repeats)])
    return out


def build_model(data_mean):
    """The ``iwae`` preset as ``train_and_evaluate`` builds it for binary MNIST."""
    import jaxvae

    config = jaxvae.Config(model="iwae")
    return jaxvae.presets.get_preset("iwae").build(config, (28, 28), data_mean)


def time_evaluator(model, params, x, args) -> dict:
    """Warm-up on one batch (compile + run), then the N images, wall and CPU seconds."""
    import jax

    import jaxvae

    key = jax.random.PRNGKey(args.seed)
    mesh = None
    if args.devices > 1:
        if jax.device_count() < args.devices:
            raise SystemExit(f"--devices {args.devices}: jax sees {jax.device_count()} devices")
        mesh = jaxvae.train.data_mesh(jax.devices()[:args.devices])
    kw = dict(num_samples=args.eval_k, sample_chunk=args.sample_chunk,
              batch_size=args.batch_size, mesh=mesh)
    bs = min(args.batch_size, x.shape[0])
    t = time.perf_counter()
    jaxvae.log_likelihood(model, params, x[:bs], key, **kw)
    first = time.perf_counter() - t
    load0 = loadavg()
    t, c = time.perf_counter(), time.process_time()
    ll = jaxvae.log_likelihood(model, params, x, key, progress=not args.no_progress, **kw)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    per_batch = wall * bs / x.shape[0]
    return {"eval_s": wall, "eval_cpu_s": cpu, "first_call_s": first,
            "compile_s": max(0.0, first - per_batch), "load_before": load0,
            "load_after": loadavg(), "mean_log_likelihood": float(np.mean(ll)),
            "finite": bool(np.all(np.isfinite(ll)))}


def time_runs(model, params, x, args) -> dict:
    """log_likelihood_runs with run_axis map / vmap against R separate calls."""
    import jax
    import jax.numpy as jnp

    import jaxvae
    from jaxvae import evaluate_runs

    plist = [jax.tree_util.tree_map(lambda p, s=s: p * (1.0 + 0.01 * s), params)
             for s in range(args.runs)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *plist)
    key = jax.random.PRNGKey(args.seed)
    kw = dict(num_samples=args.eval_k, sample_chunk=args.sample_chunk,
              batch_size=args.batch_size)
    x = x[:args.runs_images]
    fns = {"map": lambda: evaluate_runs.log_likelihood_runs(model, stacked, x, key,
                                                            run_axis="map", **kw),
           "vmap": lambda: evaluate_runs.log_likelihood_runs(model, stacked, x, key,
                                                             run_axis="vmap", **kw),
           "separate calls": lambda: np.stack([jaxvae.log_likelihood(model, p, x, key, **kw)
                                               for p in plist])}
    results = {name: fn() for name, fn in fns.items()}            # compile each once
    for name in ("map", "vmap"):
        err = float(np.max(np.abs(results[name] - results["separate calls"])))
        if err > 1e-3:
            raise AssertionError(f"run_axis={name} differs from separate calls by {err}")
    times = {name: [] for name in fns}
    for _ in range(args.repeats):                                  # interleaved rounds
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {"runs": args.runs, "images": int(x.shape[0]),
            "seconds": {n: summary(v) for n, v in times.items()}}


# ------------------------------------------------------------------------------- report

def report(res: dict) -> str:
    r, fl, ew = res, res["flops"], res["elementwise"]
    lines = [f"# k={r['k']} evaluation of the iwae model against its floor", "",
             f"N = {r['n']} test images ({r['data']}, binarize_fixed seed {r['seed']}), "
             f"k = {r['k']}, sample_chunk = {r['sample_chunk']}, batch_size = "
             f"{r['batch_size']} ({r['rows']} decoder rows per step), "
             + (f"split over a mesh of {r['devices']} devices." if r["devices"] > 1
                else "one device."), ""]
    rows = [["matmul FLOPs (forward)", f"{fl['total'] / 1e12:.4g} TFLOP",
             f"decoder {fl['decoder_per_sample'] / 1e3:.1f} kFLOP x N k + encoder "
             f"{fl['encoder_per_image'] / 1e3:.1f} kFLOP x N"],
            ["2048^3 matmul rate", f"{r['matmul_gflops']:.0f} GFLOP/s",
             f"before {r['matmul_before']['median']:.0f}, after "
             f"{r['matmul_after']['median']:.0f} (medians of {r['matmul_before']['n']})"],
            ["floor = FLOPs / rate", f"{r['floor_s']:.2f} s", ""],
            ["evaluator (wall)", f"{r['eval_s']:.2f} s",
             f"CPU {r['eval_cpu_s']:.2f} s; compile {r['compile_s']:.2f} s (not included)"],
            ["**ratio = time / floor**", f"**{r['ratio']:.2f}**", "target <= 1.5"],
            ["evaluator matmul rate", f"{r['eval_gflops']:.0f} GFLOP/s",
             f"{r['eval_gflops'] / r['matmul_gflops']:.2f} of the 2048^3 rate"],
            ["in CPU seconds", f"ratio {r['cpu_ratio']:.2f}",
             f"evaluator CPU s / (FLOPs / {r['matmul_gflops_per_cpu_s']:.0f} GFLOP per "
             f"CPU s of the 2048^3 matmul) = {r['eval_cpu_s']:.2f} / {r['cpu_floor_s']:.2f}; "
             "less sensitive to other jobs on the cores"],
            ["elementwise work (timed alone)", f"{ew['seconds']:.2f} s",
             ", ".join(f"{name} {v['seconds']:.2f} s ({v['ns_per_element']:.2f} ns/elem)"
                       for name, v in ew["parts"].items())],
            ["floor + elementwise", f"{r['floor_plus_elementwise_s']:.2f} s",
             f"ratio to it {r['ratio_vs_floor_plus_elementwise']:.2f}"]]
    lines.append(markdown_table(["quantity", "value", "detail"], rows))
    lines += ["", "Decoder layers alone at the evaluator's row count (GFLOP/s, median):", ""]
    lines.append(markdown_table(["layer", "GFLOP/s", "share of decoder FLOPs"],
                                [[name, f"{v['median']:.0f}", f"{v['share']:.3f}"]
                                 for name, v in r["layers"].items()]))
    if r.get("runs_timing"):
        rt = r["runs_timing"]
        lines += ["", f"R = {rt['runs']} runs on {rt['images']} images "
                  "(jaxvae.evaluate_runs.log_likelihood_runs):", ""]
        lines.append(markdown_table(["layout", "median s", "min s", "max s"],
                                    [[n, f"{v['median']:.2f}", f"{v['min']:.2f}",
                                      f"{v['max']:.2f}"]
                                     for n, v in rt["seconds"].items()]))
    lines += ["", "## Run", "", f"- command: `{r['command']}`", f"- machine: {r['machine']}",
              f"- load average before {r['load_before']}, after {r['load_after']}; "
              f"mean log-likelihood {r['mean_log_likelihood']:.2f} nats (untrained)",
              f"- XLA_FLAGS={r['xla_flags'] or '(none)'}; wall {r['wall_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "data", "seed", "eval_k", "out", "json", "quick", "no_progress",
                     defaults={"eval_k": None},
                     helps={"eval_k": "importance samples k (default 5000, quick 100)"})
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate the first N test images (default all, quick 8)")
    parser.add_argument("--sample-chunk", type=int, default=None,
                        help="samples per chunk (default: jaxvae.log_likelihood's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per jitted call (default: jaxvae.log_likelihood's)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of each matmul / elementwise case (default 7, "
                             "quick 3)")
    parser.add_argument("--devices", type=int, default=1,
                        help="split each batch over D devices (jaxvae.train.data_mesh); on "
                             "CPU this sets XLA_FLAGS=--xla_force_host_platform_device_count=D "
                             "(effective only before jax starts its backend)")
    parser.add_argument("--runs", type=int, default=0,
                        help="also time log_likelihood_runs on R runs (map vs vmap)")
    parser.add_argument("--runs-images", type=int, default=100,
                        help="images of the --runs comparison")
    args = parser.parse_args(argv)
    resolve_common(args, DEFAULT_OUT)
    if args.devices > 1 and "xla_force_host_platform_device_count" not in \
            os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_"
                                   f"platform_device_count={args.devices}").strip()
    import inspect

    import jaxvae

    defaults = inspect.signature(jaxvae.log_likelihood).parameters
    args.eval_k = args.eval_k or (100 if args.quick else 5000)
    args.sample_chunk = args.sample_chunk or (50 if args.quick
                                              else defaults["sample_chunk"].default)
    args.batch_size = args.batch_size or (4 if args.quick else defaults["batch_size"].default)
    args.repeats = args.repeats or (3 if args.quick else 7)
    if args.test_limit is None and args.quick:
        args.test_limit = 8
    for name in ("eval_k", "sample_chunk", "batch_size", "repeats", "devices"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import jax

    import jaxvae

    log(f"machine: {machine()}; load {loadavg()}")
    train = jaxvae.load(args.data, "train")
    test = jaxvae.load(args.data, "test")
    images = test.images if args.test_limit is None else test.images[:args.test_limit]
    x = jaxvae.binarize_fixed(np.asarray(images, np.float32), seed=args.seed)
    n, k = x.shape[0], args.eval_k
    model = build_model(np.asarray(train.images, np.float32).mean(axis=0))
    params = jax.jit(model.init_params)(jax.random.PRNGKey(args.seed))
    rows = min(args.batch_size, n) * min(args.sample_chunk, k)

    log(f"matmul rate ({MATMUL_N}^3, {args.repeats} repeats) ...")
    before = matmul_rate(args.repeats)
    layers = layer_rates(rows, args.repeats)
    elem = elementwise_rates(rows, args.repeats, x[0])
    log(f"evaluator: N={n}, k={k}, sample_chunk={args.sample_chunk}, "
        f"batch_size={args.batch_size} ...")
    ev = time_evaluator(model, params, x, args)
    after = matmul_rate(args.repeats)
    runs = time_runs(model, params, x, args) if args.runs else None

    flops = eval_flops(n, k)
    rate = statistics.median([before["median"], after["median"]])
    floor = flops["total"] / (rate * 1e9)
    cpu_rate = statistics.median([before["per_cpu_s"], after["per_cpu_s"]])
    cpu_floor = flops["total"] / (cpu_rate * 1e9)
    widths = {"bernoulli_log_prob": DATA_DIM, "tanh": sum(HIDDEN), "normal_draws": LATENT}
    parts = {name: {"ns_per_element": v["median"] * 1e9,
                    "seconds": v["median"] * n * k * widths[name]}
             for name, v in elem.items()}
    elementwise_s = sum(p["seconds"] for p in parts.values())
    dec_total = sum(a * b for a, b in decoder_layers())
    for v, (a, b) in zip(layers.values(), decoder_layers()):
        v["share"] = a * b / dec_total
    res = {"n": n, "k": k, "sample_chunk": args.sample_chunk, "batch_size": args.batch_size,
           "devices": args.devices,
           "rows": rows, "data": test.name, "seed": args.seed, "quick": args.quick,
           "flops": flops, "matmul_gflops": rate, "matmul_before": before,
           "matmul_after": after, "layers": layers, "floor_s": floor, **ev,
           "ratio": ev["eval_s"] / floor, "eval_gflops": flops["total"] / ev["eval_s"] / 1e9,
           "matmul_gflops_per_cpu_s": cpu_rate, "cpu_floor_s": cpu_floor,
           "cpu_ratio": ev["eval_cpu_s"] / cpu_floor,
           "elementwise": {"seconds": elementwise_s, "parts": parts},
           "floor_plus_elementwise_s": floor + elementwise_s,
           "ratio_vs_floor_plus_elementwise": ev["eval_s"] / (floor + elementwise_s),
           "runs_timing": runs, "machine": machine(), "jax": jax.__version__,
           "xla_flags": os.environ.get("XLA_FLAGS", ""),
           "command": command_line("benchmarks/eval_floor.py", argv),
           "wall_s": time.perf_counter() - t_start}
    if not all(math.isfinite(v) for v in (res["ratio"], floor, rate)) or not ev["finite"]:
        raise AssertionError(f"non-finite result: {res}")
    table = report(res)
    write_table(args.out, table, res)
    print(table)
    print(f"time {res['eval_s']:.2f} s, floor {floor:.2f} s, ratio {res['ratio']:.2f}")
    if args.json:
        write_json(args.json, res)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
