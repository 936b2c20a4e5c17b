#!/usr/bin/env python
"""Train-step throughput of jaxvae's IWAE against hand-written JAX, PyTorch and NumPyro.

Model: the IWAE paper's one-stochastic-layer MLP (Burda et al. 2015): 784-200-200-50 tanh
Gaussian encoder with exp-parameterized variance, 50-200-200-784 tanh Bernoulli decoder,
loss = -mean_batch(logsumexp_k log w - log k), Adam(1e-3). Shapes (batch, k):
(20, 1), (20, 50), (100, 5). Contenders:

* ``jaxvae``          - ``jaxvae.make_train_step(jaxvae.make_loss(iwae_mlp(), "iwae", k), adam)``
* ``jax_handwritten`` - ``peers/jax_handwritten.py``: dicts of weights, one jit, donated state
* ``torch_eager``     - ``peers/torch_iwae.py``: torch.nn + torch.optim.Adam
* ``torch_eager_1t``  - the same with ``torch.set_num_threads(1)``: on a shared 2-core machine
  OpenMP's barriers make 2-thread torch up to 100x slower whenever another process holds
  a core; ``torch_eager_best`` is the faster of the two in each repeat
* ``torch_compile``   - the same step function under ``torch.compile`` (``dynamic=False``);
  ``torch_compile_1t`` compiled and run with 1 thread; ``torch_compile_best`` as above
* ``numpyro``         - ``peers/numpyro_iwae.py``: SVI + RenyiELBO(alpha=0, num_particles=k),
  flax modules via ``flax_module``, ``jax.jit(svi.update)``

Method: all contenders start from the same jaxvae parameters and train on the same fixed
binary batch. Before timing, a self-check asserts that jaxvae, the hand-written step and
torch give the same loss (and gradients) at identical weights and noise (k = 1 and 5), and
that NumPyro's RenyiELBO / B agrees with jaxvae's loss in expectation. Per shape: the first
call of each contender is timed apart (compile time); then R repeats, in each of which
every contender runs N steps (N calibrated to ~``--target`` seconds) followed by one
device sync, round-robin in an order rotated every repeat. Ratios are paired per repeat
(same repeat, adjacent in time) and summarized by the median and [min, max] over repeats.
The large-matmul FLOP rate (jitted float32 2048^3 ``jnp.dot``) is a contender in the
(20, 50) round-robin, so ``flop_fraction`` is paired too. The k = 5000 evaluation runs in
subprocesses (one per setting) so that its peak RSS is its own.

Usage (from the repository root, after ``pip install -e '.[bench]'``)::

    python benchmarks/throughput.py [--quick] [--json PATH] [--repeats R] [--data npz:PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

SHAPES = ((20, 1), (20, 50), (100, 5))
FLOP_SHAPE = (20, 50)
CONTENDERS = ("jaxvae", "jax_handwritten", "torch_eager", "torch_eager_1t", "torch_compile",
              "torch_compile_1t", "numpyro")
PEERS = CONTENDERS[1:]
# Derived per repeat: the faster of torch_eager (all cores) and torch_eager_1t (1 thread).
TORCH_BEST = "torch_eager_best"
TORCH_COMPILE_BEST = "torch_compile_best"
DERIVED = {TORCH_BEST: ("torch_eager", "torch_eager_1t"),
           TORCH_COMPILE_BEST: ("torch_compile", "torch_compile_1t")}
MATMUL_N = 2048
LATENT, HIDDEN, DATA_DIM = 50, (200, 200), 784
LR = 1e-3
EVAL_K = 5000
EVAL_FULL_N = 10000
# (sample_chunk, batch_size) candidates for the k=5000 evaluation; the first one is used
# in --quick mode (on the reference machine all four were within 10 %, i.e. within noise,
# and all stayed near 0.5 GB).
EVAL_SETTINGS = ((500, 20), (100, 100), (500, 4), (1000, 10))
TARGETS = {"torch_ratio": 2.5, "numpyro_ratio": 1.1, "overhead": 0.05, "flop_fraction": 0.60,
           "eval_seconds": 180.0, "eval_peak_mb": 2048.0}
DEFAULT_DATA = "npz:../shared/data/mnist.npz"


# ------------------------------------------------------------------------------ helpers


def resolve_data(name: str) -> str:
    """``npz:`` paths are relative to the repository root."""
    if name.startswith("npz:"):
        path = os.path.expanduser(name[4:])
        if not os.path.isabs(path):
            path = os.path.normpath(os.path.join(REPO, path))
        return "npz:" + path
    return name


def summary(values):
    """median, min, max, IQR (inclusive quartiles) of a list of floats."""
    vals = sorted(float(v) for v in values)
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1],
            "q1": q1, "q3": q3, "n": len(vals)}


def step_flops(batch: int, k: int) -> dict:
    """Matmul FLOPs of one train step (forward + backward), our convention:

    a dense layer with M rows, fan-in n and fan-out p costs 2*M*n*p forward, 2*M*n*p for the
    weight gradient and 2*M*n*p for the input gradient (6*M*n*p in all), except the first
    encoder layer, whose input (the data) needs no gradient (4*M*n*p). Encoder rows M = B
    (run once per example), decoder rows M = B*k (the decoder's first layer *does* need its
    input gradient: z is reparameterized). Elementwise work (tanh, exp, softplus,
    logsumexp, Adam) is not counted.
    """
    enc = [(DATA_DIM, HIDDEN[0]), (HIDDEN[0], HIDDEN[1]), (HIDDEN[1], LATENT), (HIDDEN[1], LATENT)]
    dec = [(LATENT, HIDDEN[1]), (HIDDEN[1], HIDDEN[0]), (HIDDEN[0], DATA_DIM)]
    enc_flops = sum((4 if i == 0 else 6) * batch * n * p for i, (n, p) in enumerate(enc))
    dec_flops = sum(6 * batch * k * n * p for n, p in dec)
    fwd = 2 * batch * sum(n * p for n, p in enc) + 2 * batch * k * sum(n * p for n, p in dec)
    return {"total": enc_flops + dec_flops, "encoder": enc_flops, "decoder": dec_flops,
            "forward_only": fwd}


def eval_flops(num_images: int, k: int = EVAL_K) -> int:
    """Forward matmul FLOPs of the k-sample evaluation (decoder k times, encoder once)."""
    dec = LATENT * HIDDEN[1] + HIDDEN[1] * HIDDEN[0] + HIDDEN[0] * DATA_DIM
    enc = DATA_DIM * HIDDEN[0] + HIDDEN[0] * HIDDEN[1] + 2 * HIDDEN[1] * LATENT
    return 2 * num_images * (k * dec + enc)


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    import jax
    import numpy as np

    info.update(jax=jax.__version__, numpy=np.__version__,
                jax_device=str(jax.devices()[0]), jax_backend=jax.default_backend())
    for mod in ("jaxlib", "flax", "optax", "distrax", "torch", "numpyro"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001 - report whatever went wrong
            info[mod] = f"unavailable ({type(err).__name__})"
    return info


def git_state() -> str:
    """``COMMIT`` or ``COMMIT+dirty`` of the repository (the library benchmarked), if known."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "jaxvae"], cwd=REPO,
                               text=True, capture_output=True, timeout=10).stdout.strip()
        return (commit + ("+dirty (uncommitted changes under jaxvae/)" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def loadavg() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# ---------------------------------------------------------------------------- contenders


class Runner:
    """``first()``: the first step (trace + compile + run); ``run(n)``: n steps, then a sync.
    ``before()`` runs untimed before each (e.g. to set torch's thread count)."""

    def __init__(self, step, sync, before=None, loss=None):
        self._step, self._sync, self._before = step, sync, before
        self.loss = loss   # () -> the last step's loss, nats per example (mean over the batch)

    def first(self) -> float:
        if self._before is not None:
            self._before()
        t = time.perf_counter()
        self._step()
        self._sync()
        return time.perf_counter() - t

    def run(self, n: int) -> float:
        step = self._step
        if self._before is not None:
            self._before()
        t = time.perf_counter()
        for _ in range(n):
            step()
        self._sync()
        return time.perf_counter() - t


def _copy_tree(tree):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), tree)


def make_jaxvae(params0, x, k):
    import jax
    import optax

    import jaxvae

    model = jaxvae.iwae_mlp()
    loss = jaxvae.make_loss(model, "iwae", k)
    tx = optax.adam(LR)
    step = jaxvae.make_train_step(loss, tx)
    box = {"state": jaxvae.create_train_state(_copy_tree(params0), tx, jax.random.PRNGKey(0))}

    def one():
        box["state"], box["metrics"] = step(box["state"], x)

    return Runner(one, lambda: jax.block_until_ready((box["state"], box["metrics"])),
                  loss=lambda: float(box["metrics"]["loss"]))


def make_handwritten(params0, x, k):
    import jax
    import optax
    from peers import jax_handwritten as hw

    tx = optax.adam(LR)
    step = hw.make_step(tx, k)
    box = {"state": hw.init_state(_copy_tree(hw.from_jaxvae(params0)), tx, jax.random.PRNGKey(0))}

    def one():
        box["state"], box["loss"] = step(box["state"], x)

    return Runner(one, lambda: jax.block_until_ready((box["state"], box["loss"])),
                  loss=lambda: float(box["loss"]))


def make_torch(params0, x_np, k, compile: bool, threads: int):
    import torch
    from peers import torch_iwae

    torch.set_num_threads(threads)
    model = torch_iwae.from_jaxvae(params0)
    trainer = torch_iwae.Trainer(model, k, lr=LR, compile=compile)
    x = torch.from_numpy(x_np.reshape(x_np.shape[0], -1).copy())
    box = {}

    def one():
        box["loss"] = trainer.step(x)

    def before():
        torch.set_num_threads(threads)
        if compile:
            # Inductor bakes the thread count into its C++ kernels; make it part of the
            # config (and so of its cache key) so the 1-thread variant gets its own kernels.
            import torch._dynamo.config as dynamo_config
            import torch._inductor.config as inductor_config

            inductor_config.cpp.threads = threads
            dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, 32)
            if hasattr(dynamo_config, "recompile_limit"):
                dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 32)

    # CPU tensors: every op has finished when step() returns, so no sync is needed.
    return Runner(one, lambda: None, before=before, loss=lambda: float(box["loss"]))


def make_numpyro(params0, x, k):
    import jax
    from peers import numpyro_iwae as npi

    xf = x.reshape(x.shape[0], -1)
    svi = npi.make_svi(k, LR)
    update = npi.make_update(svi)
    box = {"state": npi.init_state(svi, jax.random.PRNGKey(0), xf, params0)}

    def one():
        box["state"], box["loss"] = update(box["state"], xf)

    # RenyiELBO sums over the batch plate; divide by B for jaxvae's per-example mean.
    return Runner(one, lambda: jax.block_until_ready((box["state"], box["loss"])),
                  loss=lambda: float(box["loss"]) / x.shape[0])


def make_matmul():
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(1), (MATMUL_N, MATMUL_N), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(2), (MATMUL_N, MATMUL_N), jnp.float32)
    dot = jax.jit(jnp.dot)
    box = {}

    def one():
        box["c"] = dot(a, b)

    return Runner(one, lambda: jax.block_until_ready(box["c"]))


# ----------------------------------------------------------------------------- self-check


def _loc_scale(q):
    """(loc, scale) of a diagonal Gaussian: MultivariateNormalDiag or Independent(Normal)."""
    if hasattr(q, "scale_diag"):
        return q.loc, q.scale_diag
    inner = getattr(q, "distribution", None)
    if inner is not None and hasattr(inner, "loc") and hasattr(inner, "scale"):
        return inner.loc, inner.scale
    raise TypeError(f"cannot read loc and scale of a {type(q).__name__} posterior")


def _eps_candidates(model, params, x, key, k):
    """The noise jaxvae's loss uses for ``key``, under the sampling conventions we know:
    the current one (one key per example from ``split(key, B)``, then distrax's
    ``q.sample(seed=key_i, sample_shape=(k,))``), and one ``normal(key, (B, k, L))``."""
    import jax

    import jaxvae

    def per_example(xi, ki):
        q = jaxvae.bind(model, params).posterior(xi)
        z = q.sample(seed=ki, sample_shape=(k,))
        loc, scale = _loc_scale(q)
        return (z - loc) / scale

    def per_example_convention(key):
        return jax.vmap(per_example)(x, jax.random.split(key, x.shape[0]))

    yield "split(key, B) + distrax sample per example", jax.jit(per_example_convention)(key)
    yield "one normal(key, (B, k, L))", jax.random.normal(key, (x.shape[0], k, LATENT))


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def _flat_grads_jaxvae_layout(tree_hw):
    """Concatenates hand-written-layout grads (dict of {"w","b"}) in a fixed order."""
    import numpy as np

    names = ("enc1", "enc2", "loc", "raw_scale", "dec1", "dec2", "out")
    return np.concatenate([np.ravel(np.asarray(tree_hw[n][p])) for n in names for p in ("w", "b")])


def self_check(params0, x_np, have_torch: bool, have_numpyro: bool, tol: float = 1e-3,
               ks=(1, 5), numpyro_keys: int = 16) -> dict:
    """Asserts that the contenders compute the same loss (and gradient) at identical
    weights and noise; returns the numbers."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from peers import jax_handwritten as hw

    import jaxvae

    model = jaxvae.iwae_mlp()
    x = jnp.asarray(x_np)
    out = {"tolerance": tol}
    for k in ks:
        key = jax.random.PRNGKey(1234 + k)
        loss_fn = jaxvae.make_loss(model, "iwae", k)
        (l_jv, _), g_jv = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params0, x, key)
        hw_params = hw.from_jaxvae(params0)
        hw_vg = jax.jit(jax.value_and_grad(hw.loss_fn))
        matched = None
        for convention, eps in _eps_candidates(model, params0, x, key, k):
            l_hw, g_hw = hw_vg(hw_params, x, eps)
            if abs(float(l_hw) - float(l_jv)) <= tol * abs(float(l_jv)):
                matched = convention
                break
        if matched is None:
            raise AssertionError(
                f"self-check failed (k={k}): the hand-written loss does not reproduce jaxvae's "
                f"loss {float(l_jv):.6f} under any known noise convention (last: "
                f"{float(l_hw):.6f}); did jaxvae change how it draws the noise?")
        g_rel = _rel(_flat_grads_jaxvae_layout(hw.from_jaxvae(g_jv)),
                     _flat_grads_jaxvae_layout(g_hw))
        rec = {"jaxvae": float(l_jv), "jax_handwritten": float(l_hw),
               "noise_convention": matched, "grad_rel_diff_handwritten": g_rel}
        assert g_rel < tol, f"self-check failed (k={k}): gradient rel. diff {g_rel:.2e} (hand-written)"
        if have_torch:
            import torch
            from peers import torch_iwae

            tm = torch_iwae.from_jaxvae(params0)
            xt = torch.from_numpy(np.asarray(x_np).reshape(x_np.shape[0], -1).copy())
            l_t = tm.loss(xt, torch.from_numpy(np.asarray(eps).copy()))
            l_t.backward()
            l_t = l_t.detach()
            g_t = {n: {"w": getattr(tm, n).weight.grad.numpy().T, "b": getattr(tm, n).bias.grad.numpy()}
                   for n in ("enc1", "enc2", "loc", "raw_scale", "dec1", "dec2", "out")}
            rel_t = abs(float(l_t) - float(l_jv)) / abs(float(l_jv))
            g_rel_t = _rel(_flat_grads_jaxvae_layout(hw.from_jaxvae(g_jv)),
                           _flat_grads_jaxvae_layout(g_t))
            rec.update(torch=float(l_t), grad_rel_diff_torch=g_rel_t)
            assert rel_t < tol, (f"self-check failed (k={k}): torch loss {float(l_t):.6f} vs "
                                 f"jaxvae {float(l_jv):.6f}")
            assert g_rel_t < tol, f"self-check failed (k={k}): gradient rel. diff {g_rel_t:.2e} (torch)"
        out[f"k={k}"] = rec
    if have_numpyro and numpyro_keys:
        # NumPyro's noise cannot be fed in; compare expectations over many keys instead.
        from peers import numpyro_iwae as npi

        k, reps = 5, numpyro_keys
        svi = npi.make_svi(k, LR)
        xf = x.reshape(x.shape[0], -1)
        np_loss = jax.jit(lambda key: npi.loss_fn(svi, params0, xf, key))
        jv_loss = jax.jit(lambda key: jaxvae.make_loss(model, "iwae", k)(params0, x, key)[0])
        keys = jax.random.split(jax.random.PRNGKey(99), reps)
        a = np.array([float(np_loss(kk)) for kk in keys])
        b = np.array([float(jv_loss(kk)) for kk in keys])
        rel = abs(a.mean() - b.mean()) / abs(b.mean())
        out["numpyro_expectation"] = {"k": k, "keys": reps, "numpyro_loss_over_B": float(a.mean()),
                                      "jaxvae_loss": float(b.mean()), "rel_diff": float(rel)}
        assert rel < 0.02, (f"self-check failed: NumPyro's RenyiELBO/B {a.mean():.3f} vs jaxvae "
                            f"{b.mean():.3f} (k={k}, mean of {reps} keys)")
    return out


# ----------------------------------------------------------------------------- timing


def time_shape(batch, k, params0, x_np, names, repeats, target, rotate_offset=0,
               with_matmul=False, torch_threads=None, log=print):
    """Compile times and per-repeat seconds per step for each contender at one shape."""
    import jax.numpy as jnp

    x = jnp.asarray(x_np)
    factories = {
        "jaxvae": lambda: make_jaxvae(params0, x, k),
        "jax_handwritten": lambda: make_handwritten(params0, x, k),
        "torch_eager": lambda: make_torch(params0, x_np, k, compile=False, threads=torch_threads),
        "torch_eager_1t": lambda: make_torch(params0, x_np, k, compile=False, threads=1),
        "torch_compile": lambda: make_torch(params0, x_np, k, compile=True, threads=torch_threads),
        "torch_compile_1t": lambda: make_torch(params0, x_np, k, compile=True, threads=1),
        "numpyro": lambda: make_numpyro(params0, x, k),
    }
    runners, compile_s, errors, first_loss = {}, {}, {}, {}
    order = [n for n in names]
    if with_matmul:
        order.append("matmul")
        factories["matmul"] = make_matmul
    for name in order:
        try:
            runner = factories[name]()
            compile_s[name] = runner.first()
            runners[name] = runner
            if runner.loss is not None:
                first_loss[name] = runner.loss()
        except Exception as err:  # noqa: BLE001 - e.g. torch.compile without a toolchain
            msg = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
            errors[name] = msg
            log(f"  ! {name} failed at B={batch}, k={k}: {msg}")
    live = [n for n in order if n in runners]
    # Calibrate N (steps per measurement) from a short warm run.
    steps = {}
    for name in live:
        n_try = 2
        t = runners[name].run(n_try) / n_try
        steps[name] = max(1, min(2000, int(round(target / max(t, 1e-6)))))
    seconds = {name: [] for name in live}
    for r in range(repeats):
        shift = (r + rotate_offset) % len(live)
        for name in live[shift:] + live[:shift]:
            n = steps[name]
            seconds[name].append(runners[name].run(n) / n)
    # Every contender's first step evaluates the loss at the same initial weights (own
    # noise): they must agree up to Monte Carlo error. This also checks NumPyro's scale.
    if "jaxvae" in first_loss:
        ref = first_loss["jaxvae"]
        for name, value in first_loss.items():
            if abs(value - ref) > 0.02 * abs(ref):
                raise AssertionError(
                    f"first-step loss of {name} ({value:.3f}) differs from jaxvae's ({ref:.3f}) by "
                    f"more than 2% at B={batch}, k={k}: the contenders do not compute the same loss")
    return {"compile_s": compile_s, "seconds": seconds, "steps_per_repeat": steps,
            "errors": errors, "first_step_loss": first_loss}


# ------------------------------------------------------------------------------- eval


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
    cmd = [sys.executable, os.path.abspath(__file__), "--_eval-worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"eval worker failed (rc={proc.returncode}): {proc.stderr.strip()[-800:]}")


# ------------------------------------------------------------------------------- report


def fmt_rate(s):
    return f"{s['median']:,.0f} [{s['min']:,.0f}–{s['max']:,.0f}]"


def fmt_frac(s):
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"


def fmt_ratio(s, pct=False):
    if pct:
        return f"{100 * s['median']:+.1f}% [{100 * s['min']:+.1f}, {100 * s['max']:+.1f}]"
    return f"{s['median']:.2f}× [{s['min']:.2f}–{s['max']:.2f}]"


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
    torch_key = TORCH_BEST if any(TORCH_BEST in r["ratio_jaxvae_over"] for r in per_shape.values()) \
        else "torch_eager"
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


def markdown(per_shape, head, ev, info, command, meta, check=None) -> str:
    shapes = list(per_shape)
    lines = []
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
    fs = per_shape.get(f"B{FLOP_SHAPE[0]}_k{FLOP_SHAPE[1]}", {})
    if "flop_fraction" in fs:
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
            lines.append(f"* hand-written step flop_fraction: {fmt_frac(fs['handwritten_flop_fraction'])}")
    if ev:
        lines.append("")
        lines.append(f"## k={EVAL_K} evaluation (jaxvae.evaluate.log_likelihood, untrained "
                     "iwae_mlp params, fixed binarization seed 0)")
        lines.append("")
        lines.append("| sample_chunk | batch_size | images | run s | s / 10k images | peak MB | GFLOP/s |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in ev.get("tuning", []):
            if "error" in r:
                lines.append(f"| {r['sample_chunk']} | {r['batch_size']} | – | failed: {r['error'][:80]} | | | |")
                continue
            lines.append(f"| {r['sample_chunk']} | {r['batch_size']} | {r['n']} | {r['run_s']:.1f} | "
                         f"{r['seconds_10k']:.0f} (extrapolated) | {r['peak_mb']:.0f} | {r['gflops']:.1f} |")
        fin = ev.get("final")
        if fin:
            label = "EXTRAPOLATED from %d images" % fin["n"] if fin["extrapolated"] else "measured"
            lines.append("")
            lines.append(f"* chosen setting: sample_chunk={fin['sample_chunk']}, "
                         f"batch_size={fin['batch_size']}")
            lines.append(f"* eval_seconds for 10,000 images: **{fin['seconds_10k']:.0f} s** ({label}; "
                         f"compile ≈ {fin['compile_est_s']:.1f} s included), peak RSS "
                         f"**{fin['peak_mb']:.0f} MB** (subprocess doing only this evaluation), "
                         f"{fin['gflops']:.1f} GFLOP/s of decoder/encoder matmuls; targets ≤ 180 s, < 2048 MB")
            lower = eval_flops(EVAL_FULL_N) / 1e9
            if "flop_fraction" in fs:
                mm = fs["matmul_gflops"]["median"]
                lines.append(f"* floor at the large-matmul rate: {lower:,.0f} GFLOP / {mm:.0f} GFLOP/s "
                             f"= {lower / mm:.0f} s (forward matmuls only)")
    if check:
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
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    lines.append(f"* {info['cpu']}, {info['cores']} cores, {info.get('mem_gb', '?')} GB RAM, "
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
    return "\n".join(lines)


# --------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
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

    if args.eval_worker is not None:
        print(json.dumps(eval_worker(json.loads(args.eval_worker))), flush=True)
        return 0

    t_start = time.perf_counter()
    load_before = loadavg()
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    target = args.target or (0.06 if quick else 0.4)
    use_compile = (not quick) if args.torch_compile is None else args.torch_compile
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = set(names) - set(CONTENDERS)
    if unknown or "jaxvae" not in names:
        parser.error(f"--contenders must include jaxvae and only {CONTENDERS}; got {names}")
    data_name = resolve_data(args.data)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    import jax
    import numpy as np

    import jaxvae

    skipped = {}
    have_torch = have_numpyro = True
    torch_threads = None
    try:
        import torch

        torch_threads = args.torch_threads or os.cpu_count()
        torch.set_num_threads(torch_threads)
    except ImportError as err:
        have_torch = False
        for n in ("torch_eager", "torch_eager_1t", "torch_compile", "torch_compile_1t"):
            skipped[n] = f"torch not importable ({err}); pip install -e '.[bench]'"
    try:
        import numpyro  # noqa: F401
    except ImportError as err:
        have_numpyro = False
        skipped["numpyro"] = f"numpyro not importable ({err}); pip install -e '.[bench]'"
    if not use_compile:
        for n in ("torch_compile", "torch_compile_1t"):
            if n in names:
                skipped.setdefault(n, "--quick mode (its first call alone takes 10-60 s per "
                                      "shape); pass --compile to include it")
    names = [n for n in names if n not in skipped]

    inductor_cache_warm = None
    if have_torch and use_compile:
        try:
            from torch._inductor.runtime.cache_dir_utils import cache_dir

            inductor_cache_warm = os.path.isdir(cache_dir()) and bool(os.listdir(cache_dir()))
        except Exception:  # noqa: BLE001 - private API; only informational
            pass
    info = machine_info()
    log(f"machine: {info['cpu']}, {info['cores']} cores; load {load_before}")
    data = jaxvae.load(data_name, "train")
    max_batch = max(b for b, _ in SHAPES)
    x_all = jaxvae.binarize_fixed(data.images[:max_batch], seed=0)
    model = jaxvae.iwae_mlp()
    params0 = jax.jit(model.init_params)(jax.random.PRNGKey(0))  # jit: eager init is slow

    log("self-check: identical weights and noise ...")
    check = self_check(params0, x_all[:20], have_torch, have_numpyro,
                       ks=(1,) if quick else (1, 5), numpyro_keys=0 if quick else 16)
    log("  ok: " + json.dumps(check))
    log(f"  done at {time.perf_counter() - t_start:.0f} s")

    timings = {}
    for i, (batch, k) in enumerate(SHAPES):
        log(f"timing B={batch}, k={k} ...")
        timings[(batch, k)] = time_shape(
            batch, k, params0, np.ascontiguousarray(x_all[:batch]), names, repeats, target,
            rotate_offset=i, with_matmul=(batch, k) == FLOP_SHAPE, torch_threads=torch_threads,
            log=log)
        timings[(batch, k)]["load"] = loadavg()
        log(f"  done at {time.perf_counter() - t_start:.0f} s; load {loadavg()}")
    per_shape = build_results(timings)
    head = headline(per_shape)

    ev = None
    if not args.no_eval:
        ev = {"tuning": []}
        n_final = args.eval_images or (200 if quick else EVAL_FULL_N)
        if args.eval_setting:
            chunk, bs = (int(v) for v in args.eval_setting.split(","))
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

    wall = time.perf_counter() - t_start
    meta = {"repeats": repeats, "target_s": target, "quick": quick, "skipped": skipped,
            "torch_threads": torch_threads, "load_before": load_before,
            "load_after": loadavg(), "wall_s": wall, "data": data_name,
            "batch_source": f"first B train images of {data_name}, binarize_fixed(seed=0)",
            "torchinductor_cache_was_warm": inductor_cache_warm, "git": git_state()}
    command = "python " + " ".join(shlex.quote(a) for a in
                                   [os.path.relpath(os.path.abspath(__file__), REPO)]
                                   + list(sys.argv[1:] if argv is None else argv))
    print(markdown(per_shape, head, ev, info, command, meta, check))

    if args.json:
        final = (ev or {}).get("final") or {}
        out = {**head,
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
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
