"""The k = 5000 evaluation, each setting in a subprocess of its own (so that its peak RSS
is its own): the worker, the subprocess runner and the tuning over settings."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from .config import EVAL_FULL_N, EVAL_K, EVAL_SETTINGS, REPO
from .timing import eval_flops


def eval_worker(spec: dict) -> dict:
    """Runs in its own process: k=5000 log-likelihood of ``n`` fixed-binarized test images."""
    import jax

    import jaxvae

    t_load = time.perf_counter()
    data = jaxvae.load(spec["data"], "test")
    x = jaxvae.binarize_fixed(data.images[:spec["n"]], seed=0)
    t_load = time.perf_counter() - t_load
    n = x.shape[0]
    chunk, bs = spec["sample_chunk"], min(spec["batch_size"], n)
    model = jaxvae.iwae_mlp()
    params = jax.jit(model.init_params)(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(0)
    kw = dict(num_samples=spec["k"], sample_chunk=chunk, batch_size=bs)
    t = time.perf_counter()
    jaxvae.log_likelihood(model, params, x[:bs], key, **kw)  # compile + one batch
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    ll = jaxvae.log_likelihood(model, params, x, key, **kw)
    t_run = time.perf_counter() - t
    per_image = t_run / n
    compile_est = max(0.0, t_first - per_image * bs)
    return {"n": n, "sample_chunk": chunk, "batch_size": bs, "k": spec["k"],
            "data": data.name, "first_call_s": t_first, "run_s": t_run,
            "compile_est_s": compile_est, "per_image_s": per_image,
            "seconds_10k": compile_est + per_image * EVAL_FULL_N,
            "extrapolated": n < EVAL_FULL_N, "load_s": t_load,
            "peak_mb": _peak_rss_mb(),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "mean_log_likelihood": float(ll.mean()),
            "gflops": eval_flops(n, spec["k"]) / t_run / 1e9}


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries the parent's
    high-water mark across fork + exec into ru_maxrss, so a worker started from a 1.5 GB
    benchmark process would report >= 1.5 GB whatever it does."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_eval_subprocess(spec: dict, timeout: float = 1800) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--_eval-worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"eval worker failed (rc={proc.returncode}): {proc.stderr.strip()[-800:]}")


def run_evaluation(data_name: str, quick: bool, eval_images: int | None,
                   eval_setting: str | None, log, t_start: float) -> dict:
    """Picks (sample_chunk, batch_size) - given, the first in quick mode, or the fastest of
    ``EVAL_SETTINGS`` on 200 images under 2048 MB - then evaluates ``eval_images`` images."""
    ev = {"tuning": []}
    n_final = eval_images or (200 if quick else EVAL_FULL_N)
    if eval_setting:
        chunk, bs = (int(v) for v in eval_setting.split(","))
        best = (chunk, bs)
    elif quick:
        best = EVAL_SETTINGS[0]
    else:
        for chunk, bs in EVAL_SETTINGS:
            log(f"eval tuning: sample_chunk={chunk}, batch_size={bs} on 200 images ...")
            try:
                r = run_eval_subprocess({"data": data_name, "n": 200, "k": EVAL_K,
                                         "sample_chunk": chunk, "batch_size": bs})
            except Exception as err:  # noqa: BLE001
                r = {"sample_chunk": chunk, "batch_size": bs, "error": str(err)}
            ev["tuning"].append(r)
        ok = [r for r in ev["tuning"] if "error" not in r and r["peak_mb"] < 2048]
        pick = min(ok or [r for r in ev["tuning"] if "error" not in r],
                   key=lambda r: r["per_image_s"])
        best = (pick["sample_chunk"], pick["batch_size"])
    log(f"eval: sample_chunk={best[0]}, batch_size={best[1]} on {n_final} images ...")
    ev["final"] = run_eval_subprocess({"data": data_name, "n": n_final, "k": EVAL_K,
                                       "sample_chunk": best[0], "batch_size": best[1]})
    log(f"  done at {time.perf_counter() - t_start:.0f} s")
    return ev
