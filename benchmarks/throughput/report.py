"""The markdown report: rates, ratios, compile times, FLOPs, evaluation, self-check,
headline and machine."""

from __future__ import annotations

from .config import (
    CONTENDERS,
    DERIVED,
    EVAL_FULL_N,
    EVAL_K,
    FLOP_SHAPE,
    MATMUL_N,
    PEERS,
    TORCH_BEST,
    TORCH_COMPILE_BEST,
)
from .timing import eval_flops


def fmt_rate(s):
    return f"{s['median']:,.0f} [{s['min']:,.0f}–{s['max']:,.0f}]"


def fmt_frac(s):
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"


def fmt_ratio(s, pct=False):
    if pct:
        return f"{100 * s['median']:+.1f}% [{100 * s['min']:+.1f}, {100 * s['max']:+.1f}]"
    return f"{s['median']:.2f}× [{s['min']:.2f}–{s['max']:.2f}]"


def markdown(per_shape, head, ev, info, command, meta, check=None) -> str:
    """The whole report, as printed on stdout."""
    shapes = list(per_shape)
    fs = per_shape.get(f"B{FLOP_SHAPE[0]}_k{FLOP_SHAPE[1]}", {})
    lines = []
    _speed_tables(lines, per_shape, shapes, meta)
    if "flop_fraction" in fs:
        _flops(lines, fs)
    if ev:
        _evaluation(lines, ev, fs)
    if check:
        _self_check(lines, check, per_shape, shapes)
    _headline(lines, head, ev)
    _machine(lines, info, meta, command)
    return "\n".join(lines)


def _speed_tables(lines, per_shape, shapes, meta):
    """Examples/s, the paired ratios, compile seconds, failures and skips."""
    lines.append("## Train-step throughput: examples/s, median [min–max] over "
                 f"{meta['repeats']} repeats")
    lines.append("")
    lines.append("| contender | " + " | ".join(
        f"B={per_shape[s]['batch']}, k={per_shape[s]['k']}" for s in shapes) + " |")
    lines.append("|---|" + "---|" * len(shapes))
    for name in CONTENDERS + tuple(DERIVED):
        cells = []
        for s in shapes:
            rec = per_shape[s]
            if name in DERIVED and name not in rec["examples_per_s"]:
                cells.append("–")
            elif name in rec["examples_per_s"]:
                cells.append(fmt_rate(rec["examples_per_s"][name]))
            elif name in rec["errors"]:
                cells.append("failed (see below)")
            else:
                cells.append("skipped")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## jaxvae / peer throughput ratio = t_peer / t_jaxvae per step, paired per "
                 "repeat: median [min–max]")
    lines.append("")
    lines.append("| ratio | " + " | ".join(
        f"B={per_shape[s]['batch']}, k={per_shape[s]['k']}" for s in shapes) + " | target |")
    lines.append("|---|" + "---|" * (len(shapes) + 1))
    tgt = {"torch_eager": "(≥ 2.5×)", "torch_eager_1t": "(≥ 2.5×)", TORCH_BEST: "≥ 2.5×",
           "numpyro": "≥ 1.1×", "torch_compile": "–", "torch_compile_1t": "–",
           TORCH_COMPILE_BEST: "–", "jax_handwritten": "≥ 0.95×"}
    for peer in PEERS + tuple(DERIVED):
        cells = [fmt_ratio(per_shape[s]["ratio_jaxvae_over"][peer])
                 if peer in per_shape[s]["ratio_jaxvae_over"] else "–" for s in shapes]
        lines.append(f"| jaxvae / {peer} | " + " | ".join(cells) + f" | {tgt[peer]} |")
    cells = [fmt_ratio(per_shape[s]["overhead_vs_handwritten"], pct=True)
             if "overhead_vs_handwritten" in per_shape[s] else "–" for s in shapes]
    lines.append("| overhead = t_jaxvae / t_handwritten − 1 | " + " | ".join(cells) + " | ≤ +5% |")
    lines.append("")
    lines.append("## Compile / first-call seconds")
    lines.append("")
    lines.append("| contender | " + " | ".join(
        f"B={per_shape[s]['batch']}, k={per_shape[s]['k']}" for s in shapes) + " |")
    lines.append("|---|" + "---|" * len(shapes))
    for name in CONTENDERS:
        cells = [f"{per_shape[s]['compile_s'][name]:.2f}" if name in per_shape[s]["compile_s"]
                 else "–" for s in shapes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    errs = {(s, n): e for s in shapes for n, e in per_shape[s]["errors"].items()}
    skipped = meta.get("skipped", {})
    warm = meta.get("torchinductor_cache_was_warm")
    if errs or skipped or warm is not None:
        lines.append("")
        for (s, n), e in errs.items():
            lines.append(f"* {n} at {s} failed: `{e}`")
        for n, why in skipped.items():
            lines.append(f"* {n} skipped: {why}")
    if warm is not None:
        state = "warm (kernels of earlier runs may be reused)" if warm else "empty (cold compile)"
        lines.append(f"* torch_compile first call: TorchInductor's on-disk cache was {state}")


def _flops(lines, fs):
    """FLOPs of the step at FLOP_SHAPE against the large matmul."""
    fl = fs["flops_per_step"]
    lines.append("")
    lines.append(f"## FLOPs (B={FLOP_SHAPE[0]}, k={FLOP_SHAPE[1]})")
    lines.append("")
    lines.append(
        f"* step = {fl['total'] / 1e9:.4f} GFLOP (encoder {fl['encoder'] / 1e6:.1f} MFLOP once, "
        f"decoder {fl['decoder'] / 1e9:.4f} GFLOP for B·k rows). Convention: 2·M·n·p per dense "
        "layer forward, 2·M·n·p for the weight gradient and 2·M·n·p for the input gradient "
        "(6·M·n·p), except 4·M·n·p for the first encoder layer (no data gradient); "
        "elementwise ops and Adam not counted.")
    lines.append(f"* large matmul (jitted f32 {MATMUL_N}³ jnp.dot, same process, interleaved): "
                 f"{fmt_rate(fs['matmul_gflops'])} GFLOP/s")
    lines.append(f"* jaxvae step: {fmt_rate(fs['jaxvae_gflops'])} GFLOP/s → "
                 f"flop_fraction {fmt_frac(fs['flop_fraction'])} (target ≥ 0.60; paired "
                 "per repeat with the matmul)")
    if "handwritten_flop_fraction" in fs:
        lines.append("* hand-written step flop_fraction: "
                     f"{fmt_frac(fs['handwritten_flop_fraction'])}")


def _evaluation(lines, ev, fs):
    """The k = 5000 evaluation: tuning runs and the chosen setting."""
    lines.append("")
    lines.append(f"## k={EVAL_K} evaluation (jaxvae.evaluate.log_likelihood, untrained "
                 "iwae_mlp params, fixed binarization seed 0)")
    lines.append("")
    lines.append("| sample_chunk | batch_size | images | run s | s / 10k images | peak MB | "
                 "GFLOP/s |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in ev.get("tuning", []):
        if "error" in r:
            lines.append(f"| {r['sample_chunk']} | {r['batch_size']} | – | "
                         f"failed: {r['error'][:80]} | | | |")
            continue
        lines.append(f"| {r['sample_chunk']} | {r['batch_size']} | {r['n']} | {r['run_s']:.1f} | "
                     f"{r['seconds_10k']:.0f} (extrapolated) | {r['peak_mb']:.0f} | "
                     f"{r['gflops']:.1f} |")
    fin = ev.get("final")
    if fin:
        label = f"EXTRAPOLATED from {fin['n']:d} images" if fin["extrapolated"] else "measured"
        lines.append("")
        lines.append(f"* chosen setting: sample_chunk={fin['sample_chunk']}, "
                     f"batch_size={fin['batch_size']}")
        lines.append(f"* eval_seconds for 10,000 images: **{fin['seconds_10k']:.0f} s** ({label}; "
                     f"compile ≈ {fin['compile_est_s']:.1f} s included), peak RSS "
                     f"**{fin['peak_mb']:.0f} MB** (subprocess doing only this evaluation), "
                     f"{fin['gflops']:.1f} GFLOP/s of decoder/encoder matmuls; "
                     "targets ≤ 180 s, < 2048 MB")
        lower = eval_flops(EVAL_FULL_N) / 1e9
        if "flop_fraction" in fs:
            mm = fs["matmul_gflops"]["median"]
            lines.append(f"* floor at the large-matmul rate: {lower:,.0f} GFLOP / {mm:.0f} GFLOP/s "
                         f"= {lower / mm:.0f} s (forward matmuls only)")


def _self_check(lines, check, per_shape, shapes):
    """What the self-check compared, and the first-step losses."""
    lines.append("")
    lines.append("## Self-check (before timing)")
    lines.append("")
    for key, rec in check.items():
        if key.startswith("k="):
            lines.append(
                f"* {key}, identical weights and noise ({rec['noise_convention']}): loss jaxvae "
                f"{rec['jaxvae']:.4f}, hand-written {rec['jax_handwritten']:.4f}"
                + (f", torch {rec['torch']:.4f}" if "torch" in rec else "")
                + f"; gradient rel. diff hand-written {rec['grad_rel_diff_handwritten']:.1e}"
                + (f", torch {rec['grad_rel_diff_torch']:.1e}" if "torch" in rec else "")
                + f" (tolerance {check['tolerance']:g})")
    if "numpyro_expectation" in check:
        r = check["numpyro_expectation"]
        lines.append(f"* NumPyro RenyiELBO(α=0)/B vs jaxvae IWAE loss, k={r['k']}, mean over "
                     f"{r['keys']} keys: {r['numpyro_loss_over_B']:.3f} vs {r['jaxvae_loss']:.3f} "
                     f"(rel. diff {r['rel_diff']:.1e})")
    for sk in shapes:
        fl = per_shape[sk].get("first_step_loss_at_init", {})
        if fl:
            lines.append(f"* first-step loss at the shared initial weights (own noise), "
                         f"B={per_shape[sk]['batch']}, k={per_shape[sk]['k']}: "
                         + ", ".join(f"{n} {v:.2f}" for n, v in fl.items()))


def _headline(lines, head, ev):
    """The headline figures (min over shapes for the ratios)."""
    lines.append("")
    lines.append("## Headline")
    lines.append("")
    for key in ("torch_ratio", "torch_eager_default_threads_ratio", "torch_eager_1thread_ratio",
                "torch_compile_ratio", "torch_compile_default_threads_ratio",
                "torch_compile_1thread_ratio", "numpyro_ratio", "overhead", "flop_fraction"):
        v = head.get(key)
        note = f" (vs {head['torch_ratio_basis']}, min over shapes)" if key == "torch_ratio" else ""
        lines.append(f"* {key}: {'–' if v is None else f'{v:.3f}'}{note}")
    if ev and ev.get("final"):
        lines.append(f"* eval_seconds: {ev['final']['seconds_10k']:.1f}"
                     f"{' (extrapolated)' if ev['final']['extrapolated'] else ''}; "
                     f"eval_peak_mb: {ev['final']['peak_mb']:.0f}")


def _machine(lines, info, meta, command):
    """Machine, versions, load, git state and the command."""
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    lines.append(f"* {info['machine']}, {info.get('mem_gb', '?')} GB RAM, "
                 f"{info['platform']}; python {info['python']}")
    lines.append(f"* jax {info['jax']} (jaxlib {info['jaxlib']}, device {info['jax_device']}), "
                 f"flax {info['flax']}, optax {info['optax']}, distrax {info['distrax']}, "
                 f"torch {info['torch']} (torch_eager, torch_compile: "
                 f"torch.set_num_threads({meta.get('torch_threads')}), the default = cores; "
                 "*_1t: 1 thread; *_best: the faster of the two in each repeat), "
                 f"numpyro {info['numpyro']}")
    lines.append(f"* load average before {meta['load_before']} / after {meta['load_after']}; "
                 f"wall time {meta['wall_s']:.0f} s")
    lines.append(f"* jaxvae source: git {meta.get('git')}")
    lines.append(f"* reproduce: `{command}` (from the repository root)")
