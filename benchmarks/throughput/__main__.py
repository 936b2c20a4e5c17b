"""``python -m benchmarks.throughput``: parse the flags, check, time, evaluate, report."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from . import __doc__ as package_doc
from .check import self_check
from .config import CONTENDERS, DEFAULT_DATA, EVAL_K, FLOP_SHAPE, SHAPES, resolve_data
from .contenders import availability
from .environment import git_state, loadavg, machine_info
from .evaluation import eval_worker, run_evaluation
from .report import markdown
from .results import build_results, headline, json_summary
from .timing import time_shape


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=package_doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and steps, no torch.compile, eval on 200 images "
                             "(extrapolated); finishes in under a minute")
    parser.add_argument("--json", metavar="PATH", help="write all figures as JSON")
    parser.add_argument("--repeats", type=int, default=None, help="R (default 7, quick 3)")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds per measurement (N steps) (default 0.4, quick 0.06)")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="data set for the batch and the eval: npz:PATH (relative to the "
                             f"repository root), 'embedded', ... (default {DEFAULT_DATA})")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated subset of " + ",".join(CONTENDERS))
    parser.add_argument("--compile", dest="torch_compile", action="store_true", default=None,
                        help="include torch.compile in --quick mode too")
    parser.add_argument("--no-compile", dest="torch_compile", action="store_false",
                        help="skip torch.compile (its first call takes 10-60 s per shape)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the number of cores)")
    parser.add_argument("--eval-images", type=int, default=None,
                        help=f"images for the final k={EVAL_K} eval (default 10000, quick 200)")
    parser.add_argument("--eval-setting", default=None, metavar="CHUNK,BATCH",
                        help="skip the eval tuning and use this (sample_chunk, batch_size)")
    parser.add_argument("--no-eval", action="store_true", help="skip the k=5000 evaluation")
    parser.add_argument("--_eval-worker", dest="eval_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    if set(args.names) - set(CONTENDERS) or "jaxvae" not in args.names:
        parser.error(f"--contenders must include jaxvae and only {CONTENDERS}; got {args.names}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.eval_worker is not None:
        print(json.dumps(eval_worker(json.loads(args.eval_worker))), flush=True)
        return 0
    t_start = time.perf_counter()
    load_before = loadavg()
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    target = args.target or (0.06 if quick else 0.4)
    use_compile = (not quick) if args.torch_compile is None else args.torch_compile
    data_name = resolve_data(args.data)

    import jax
    import numpy as np

    import jaxvae
    from benchmarks.common import log

    av = availability(args.names, use_compile, args.torch_threads)
    info = machine_info()
    log(f"machine: {info['machine']}; load {load_before}")
    data = jaxvae.load(data_name, "train")
    x_all = jaxvae.binarize_fixed(data.images[:max(b for b, _ in SHAPES)], seed=0)
    model = jaxvae.iwae_mlp()
    params0 = jax.jit(model.init_params)(jax.random.PRNGKey(0))  # jit: eager init is slow

    log("self-check: identical weights and noise ...")
    check = self_check(params0, x_all[:20], av.have_torch, av.have_numpyro,
                       ks=(1,) if quick else (1, 5), numpyro_keys=0 if quick else 16)
    log("  ok: " + json.dumps(check))
    log(f"  done at {time.perf_counter() - t_start:.0f} s")

    timings = {}
    for i, (batch, k) in enumerate(SHAPES):
        log(f"timing B={batch}, k={k} ...")
        timings[(batch, k)] = time_shape(
            batch, k, params0, np.ascontiguousarray(x_all[:batch]), av.names, repeats, target,
            rotate_offset=i, with_matmul=(batch, k) == FLOP_SHAPE,
            torch_threads=av.torch_threads, log=log)
        timings[(batch, k)]["load"] = loadavg()
        log(f"  done at {time.perf_counter() - t_start:.0f} s; load {loadavg()}")
    per_shape = build_results(timings)
    head = headline(per_shape)
    ev = None if args.no_eval else run_evaluation(data_name, quick, args.eval_images,
                                                  args.eval_setting, log, t_start)

    meta = {"repeats": repeats, "target_s": target, "quick": quick, "skipped": av.skipped,
            "torch_threads": av.torch_threads, "load_before": load_before,
            "load_after": loadavg(), "wall_s": time.perf_counter() - t_start, "data": data_name,
            "batch_source": f"first B train images of {data_name}, binarize_fixed(seed=0)",
            "torchinductor_cache_was_warm": av.inductor_cache_warm, "git": git_state()}
    command = "python " + " ".join(shlex.quote(a) for a in ["-m", "benchmarks.throughput"]
                                   + list(sys.argv[1:] if argv is None else argv))
    print(markdown(per_shape, head, ev, info, command, meta, check))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(json_summary(head, ev, per_shape, check, info, meta, command), f, indent=2)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
