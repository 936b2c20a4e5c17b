"""The numbers: per-shape rates and paired ratios, the headline and the JSON summary."""

from __future__ import annotations

from .config import DERIVED, MATMUL_N, PEERS, TARGETS, TORCH_BEST, TORCH_COMPILE_BEST
from .timing import step_flops, summary


def build_results(timings) -> dict:
    per_shape = {}
    for (batch, k), tm in timings.items():
        key = f"B{batch}_k{k}"
        sec = tm["seconds"]
        rec = {"batch": batch, "k": k, "compile_s": tm["compile_s"], "errors": tm["errors"],
               "first_step_loss_at_init": tm["first_step_loss"], "load_after": tm.get("load"),
               "steps_per_repeat": tm["steps_per_repeat"], "seconds_per_step": {},
               "examples_per_s": {}, "ratio_jaxvae_over": {}}
        for name, vals in sec.items():
            if name == "matmul":
                continue
            rec["seconds_per_step"][name] = {"values": vals, **summary(vals)}
            rec["examples_per_s"][name] = summary([batch / v for v in vals])
        for derived, (a_name, b_name) in DERIVED.items():
            if a_name in sec and b_name in sec:
                best = [min(a, b) for a, b in zip(sec[a_name], sec[b_name])]
                sec = {**sec, derived: best}
                rec["examples_per_s"][derived] = summary([batch / v for v in best])
        if "jaxvae" in sec:
            jv = sec["jaxvae"]
            for peer in PEERS + tuple(DERIVED):
                if peer in sec:
                    # jaxvae throughput / peer throughput = t_peer / t_jaxvae, paired per repeat
                    rec["ratio_jaxvae_over"][peer] = summary([p / j for p, j in zip(sec[peer], jv)])
            if "jax_handwritten" in sec:
                rec["overhead_vs_handwritten"] = summary(
                    [j / h - 1.0 for j, h in zip(jv, sec["jax_handwritten"])])
            if "matmul" in sec:
                fl = step_flops(batch, k)
                mm = 2.0 * MATMUL_N ** 3
                rec["flops_per_step"] = fl
                rec["matmul_gflops"] = summary([mm / t / 1e9 for t in sec["matmul"]])
                rec["jaxvae_gflops"] = summary([fl["total"] / t / 1e9 for t in jv])
                rec["flop_fraction"] = summary(
                    [(fl["total"] / t) / (mm / m) for t, m in zip(jv, sec["matmul"])])
                if "jax_handwritten" in sec:
                    rec["handwritten_flop_fraction"] = summary(
                        [(fl["total"] / t) / (mm / m) for t, m in zip(sec["jax_handwritten"],
                                                                    sec["matmul"])])
        per_shape[key] = rec
    return per_shape


def headline(per_shape) -> dict:
    def agg(peer, fn):
        vals = [rec["ratio_jaxvae_over"][peer]["median"] for rec in per_shape.values()
                if peer in rec["ratio_jaxvae_over"]]
        return fn(vals) if vals else None

    overheads = [rec["overhead_vs_handwritten"]["median"] for rec in per_shape.values()
                 if "overhead_vs_handwritten" in rec]
    ff = [rec["flop_fraction"]["median"] for rec in per_shape.values() if "flop_fraction" in rec]
    has_best = any(TORCH_BEST in r["ratio_jaxvae_over"] for r in per_shape.values())
    torch_key = TORCH_BEST if has_best else "torch_eager"
    return {"torch_ratio": agg(torch_key, min), "torch_ratio_basis": torch_key,
            "torch_eager_default_threads_ratio": agg("torch_eager", min),
            "torch_eager_1thread_ratio": agg("torch_eager_1t", min),
            "torch_compile_ratio": agg(TORCH_COMPILE_BEST, min) if any(
                TORCH_COMPILE_BEST in r["ratio_jaxvae_over"] for r in per_shape.values())
            else agg("torch_compile", min),
            "torch_compile_default_threads_ratio": agg("torch_compile", min),
            "torch_compile_1thread_ratio": agg("torch_compile_1t", min),
            "numpyro_ratio": agg("numpyro", min),
            "overhead": max(overheads) if overheads else None,
            "flop_fraction": ff[0] if ff else None}


def json_summary(head, ev, per_shape, check, info, meta, command) -> dict:
    """What ``--json PATH`` writes: the headline, the evaluation, targets met, everything."""
    final = (ev or {}).get("final") or {}
    return {**head,
            "eval_seconds": final.get("seconds_10k"),
            "eval_seconds_extrapolated": final.get("extrapolated"),
            "eval_peak_mb": final.get("peak_mb"),
            "eval_setting": ({"sample_chunk": final["sample_chunk"],
                              "batch_size": final["batch_size"]} if final else None),
            "eval": ev, "targets": TARGETS,
            "meets_targets": {
                "torch_ratio": head["torch_ratio"] is not None and head["torch_ratio"] >= 2.5,
                "numpyro_ratio": head["numpyro_ratio"] is not None and head["numpyro_ratio"] >= 1.1,
                "overhead": head["overhead"] is not None and head["overhead"] <= 0.05,
                "flop_fraction": head["flop_fraction"] is not None and head["flop_fraction"] >= 0.6,
                "eval_seconds": bool(final) and final["seconds_10k"] <= 180,
                "eval_peak_mb": bool(final) and final["peak_mb"] < 2048},
            "per_shape": per_shape, "self_check": check, "machine": info, "meta": meta,
            "command": command,
            "flop_convention": step_flops.__doc__.strip()}
