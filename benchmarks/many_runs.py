"""R training runs as one program against the same R runs in turn, on the IWAE paper's MLP.

Each setting (R runs, k samples) trains R runs of the ``iwae`` preset (784-200-200-50,
batch 20, dynamic binarization, Adam), half VAE and half IWAE at the same k, for S steps
per run. Four contenders, interleaved in one process and repeated (medians, spread):

* ``turn-step``: the runs in turn, one jitted step per dispatch (``make_train_step``, as
  ``jaxvae.fit`` runs them; the batches already on the device);
* ``turn-fused``: the runs in turn, each alone in ``jaxvae.runs.make_runs_step`` (S steps
  per dispatch, data on the device);
* ``group-vmap`` / ``group-map``: all R runs in one ``make_runs_step`` program with the run
  axis batched (``jax.vmap``) or looped inside the program (``lax.map``).

It also checks that the group runs equal the runs in turn (largest parameter difference
after S steps) and prints the arithmetic of the IWAE paper's full protocol (3,280 passes
over 60,000 images per model, 12 models) on one GPU from the step's FLOPs (XLA's count).

    python benchmarks/many_runs.py                      # full MNIST, R in 4 12, k in 1 5 50
    python benchmarks/many_runs.py --quick --json /tmp/many_runs.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    add_common_flags,
    command_line,
    log,
    machine,
    markdown_table,
    resolve_common,
    write_results,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "many_runs")
CONTENDERS = ("turn-step", "turn-fused", "group-vmap", "group-map")
PROTOCOL_PASSES, PROTOCOL_EXAMPLES, PROTOCOL_BATCH = 3280, 60000, 20
#: public peak float32 rates (dense, no sparsity) of GPUs, FLOP/s, for the arithmetic only
GPU_PEAKS = {"H100 SXM, FP32": 67e12, "H100 SXM, TF32 tensor cores": 495e12}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(p, "data", "seed", "steps", "out", "json", "quick",
                     defaults={"out": None, "steps": 50},
                     helps={"steps": "steps per run per timed call (S)"})
    p.add_argument("--runs", type=int, nargs="+", default=[4, 12], help="R values")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 50], help="k values")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per contender")
    p.add_argument("--batch-size", type=int, default=20)
    args = resolve_common(p.parse_args(argv), DEFAULT_OUT)
    if args.quick:
        args.runs, args.k, args.steps, args.repeats = [2], [1], 4, 2
    return args


def build(num_runs, k, batch_size, steps, images, seed):
    """The model, the contenders' callables and a fresh-state factory for one setting."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxvae
    from jaxvae import runs, train

    config = jaxvae.Config(model="iwae", k=k).validate().resolved()
    model = jaxvae.presets.get_preset("iwae").build(config, images.shape[1:],
                                                    images.mean(axis=0))
    tx = optax.adam(1e-3)
    iwae = np.arange(num_runs) % 2 == 1
    hparams = {"iwae": jnp.asarray(iwae), "beta": jnp.ones(num_runs)}
    losses = [jaxvae.make_loss(model, objective, k) for objective in ("elbo", "iwae")]
    group_loss = jaxvae.make_run_loss(model, k)
    prep = jaxvae.data.dynamic_binarization
    data = jnp.asarray(images)
    seeds = [seed + r for r in range(num_runs)]
    idx = jnp.asarray(runs.batch_indices(len(images), batch_size, seeds, 0, steps))  # [S, R, B]
    batches = data[idx]                                                   # [S, R, B, ...]

    def fresh():
        return runs.init_runs([model.init_params(jax.random.PRNGKey(seed + r))
                               for r in range(num_runs)], tx,
                              [jax.random.PRNGKey(100 + seed + r) for r in range(num_runs)])

    step_of = {w: train.make_train_step(losses[w], tx, preprocess=prep) for w in (False, True)}
    fused_of = {w: runs.make_runs_step(losses[w], tx, preprocess=prep, run_axis="map")
                for w in (False, True)}
    lone_steps = [step_of[bool(w)] for w in iwae]
    lone_fused = [fused_of[bool(w)] for w in iwae]
    group = {axis: runs.make_runs_step(group_loss, tx, preprocess=prep, run_axis=axis)
             for axis in runs.RUN_AXES}
    one = lambda tree, r: jax.tree_util.tree_map(lambda a: a[r:r + 1], tree)

    def turn_step(states):
        out = []
        for r in range(num_runs):
            state = runs.run_slice(states, r)
            for s in range(steps):
                state, _ = lone_steps[r](state, batches[s, r])
            out.append(state)
        return runs.stack_runs(out)

    def turn_fused(states):
        return runs.stack_runs([runs.run_slice(lone_fused[r](one(states, r), data, idx[:, r:r + 1],
                                                             {})[0], 0)
                                for r in range(num_runs)])

    calls = {"turn-step": turn_step, "turn-fused": turn_fused,
             "group-vmap": lambda s: group["vmap"](s, data, idx, hparams)[0],
             "group-map": lambda s: group["map"](s, data, idx, hparams)[0]}
    flops = jax.jit(train.step_function(losses[-1], tx, preprocess=prep)).lower(
        runs.run_slice(fresh(), 0), batches[0, 0]).compile().cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops).get("flops", float("nan"))
    return calls, fresh, flops


def measure(num_runs, k, args, images) -> dict:
    import jax

    calls, fresh, flops = build(num_runs, k, args.batch_size, args.steps, images, args.seed)
    finals, compile_s = {}, {}
    for name, call in calls.items():                    # compile and the equality check
        t = time.perf_counter()
        finals[name] = jax.block_until_ready(call(fresh()))
        compile_s[name] = time.perf_counter() - t
    leaves = lambda s: jax.tree_util.tree_leaves(s.params)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for name in ("group-vmap", "group-map")
               for a, b in zip(leaves(finals[name]), leaves(finals["turn-step"])))
    times = {name: [] for name in calls}
    for _ in range(args.repeats):                        # interleaved repeats
        for name, call in calls.items():
            states = fresh()
            jax.block_until_ready(states)
            t = time.perf_counter()
            jax.block_until_ready(call(states))
            times[name].append(time.perf_counter() - t)
    run_steps = num_runs * args.steps
    med = {n: float(np.median(v)) for n, v in times.items()}
    return {"runs": num_runs, "k": k, "steps": args.steps, "step_flops": flops,
            "max_param_diff": diff, "seconds": times, "median_seconds": med,
            "run_steps_per_s": {n: run_steps / m for n, m in med.items()},
            "speedup_vs_turn_step": {n: med["turn-step"] / m for n, m in med.items()},
            "speedup_vs_turn_fused": {n: med["turn-fused"] / m for n, m in med.items()},
            "spread": {n: [float(min(v)) / med[n], float(max(v)) / med[n]]
                       for n, v in times.items()},
            "first_call_seconds": compile_s}


def protocol_arithmetic(records) -> list[str]:
    """The full protocol on one GPU, from the measured per-step FLOPs (one-layer models)."""
    steps = PROTOCOL_PASSES * PROTOCOL_EXAMPLES // PROTOCOL_BATCH
    by_k = {r["k"]: r["step_flops"] for r in records}
    lines = [f"The IWAE paper's protocol: {PROTOCOL_PASSES} passes over {PROTOCOL_EXAMPLES} "
             f"images in batches of {PROTOCOL_BATCH} = {steps:,} sequential steps per model."]
    for k, flops in sorted(by_k.items()):
        lines.append(f"- k={k}: {flops / 1e6:.1f} MFLOP per training step (XLA's count, "
                     f"one-layer model), {flops * steps / 1e12:.0f} TFLOP per model.")
    if set(by_k) == {1, 5, 50}:
        # Table 1: VAE and IWAE, one and two stochastic layers, at each k; the two-layer
        # model is counted as the one-layer one (a proxy, stated)
        total = 4 * sum(by_k.values()) * steps
        lines.append(f"- All 12 models: about {total / 1e15:.1f} PFLOP: " + "; ".join(
            f"{total / peak / 60:.0f} min at the {name} peak" for name, peak in GPU_PEAKS.items())
            + ".")
    lines.append(f"- Latency: the {steps:,} steps of a model are sequential; one program of "
                 f"all 12 models finishes in an hour only if one fused step of the group takes "
                 f"under {3600 / steps * 1e6:.0f} µs, which is why the group runs N steps per "
                 "dispatch.")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    import jaxvae

    log(f"machine: {machine()}")
    images = np.asarray(jaxvae.load(args.data, "train").images, np.float32)
    records = []
    for num_runs in args.runs:
        for k in args.k:
            log(f"R={num_runs}, k={k}: compiling and timing {args.repeats} x {len(CONTENDERS)}")
            records.append(measure(num_runs, k, args, images))
            r = records[-1]
            log("  " + ", ".join(f"{n} {r['speedup_vs_turn_step'][n]:.2f}x" for n in CONTENDERS))
    rows = [[r["runs"], r["k"]] + [f"{r['run_steps_per_s'][n]:.1f}" for n in CONTENDERS]
            + [f"{r['speedup_vs_turn_fused']['group-map']:.2f}",
               f"{r['speedup_vs_turn_fused']['group-vmap']:.2f}",
               f"{r['speedup_vs_turn_step']['group-map']:.2f}", f"{r['max_param_diff']:.1e}"]
            for r in records]
    header = ["R", "k"] + [f"{n} (run-steps/s)" for n in CONTENDERS] + [
        "map / turn-fused", "vmap / turn-fused", "map / turn-step", "max |Δθ|"]
    table = "\n".join([
        f"# R runs as one program vs in turn ({args.steps} steps per run, batch "
        f"{args.batch_size}, {args.repeats} interleaved repeats, medians)", "",
        f"Machine: {machine()}. Data: {args.data}.", "",
        markdown_table(header, rows), "", *protocol_arithmetic(records), "",
        f"Command: `{command_line('benchmarks/many_runs.py', argv)}`"])
    best = min(r["speedup_vs_turn_fused"]["group-map"] for r in records)
    headline = {"min_map_vs_turn_fused": best,
                "min_map_vs_turn_step": min(r["speedup_vs_turn_step"]["group-map"]
                                            for r in records),
                "max_param_diff": max(r["max_param_diff"] for r in records)}
    write_results(args.out, table, {"machine": machine(), "records": records,
                                    "command": command_line("benchmarks/many_runs.py", argv)},
                  headline, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
