"""The contenders: one ``Runner`` per train-step implementation, and which ones can run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .config import LR, MATMUL_N, TORCH_CONTENDERS


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

    from benchmarks.peers import jax_handwritten as hw

    tx = optax.adam(LR)
    step = hw.make_step(tx, k)
    box = {"state": hw.init_state(_copy_tree(hw.from_jaxvae(params0)), tx, jax.random.PRNGKey(0))}

    def one():
        box["state"], box["loss"] = step(box["state"], x)

    return Runner(one, lambda: jax.block_until_ready((box["state"], box["loss"])),
                  loss=lambda: float(box["loss"]))


def make_torch(params0, x_np, k, compile: bool, threads: int):
    import torch

    from benchmarks.peers import torch_iwae

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

    from benchmarks.peers import numpyro_iwae as npi

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


def factories(params0, x, x_np, k, torch_threads) -> dict:
    """Contender name -> () -> a fresh ``Runner`` at batch ``x`` (``x_np`` for torch) and k."""
    return {
        "jaxvae": lambda: make_jaxvae(params0, x, k),
        "jax_handwritten": lambda: make_handwritten(params0, x, k),
        "torch_eager": lambda: make_torch(params0, x_np, k, compile=False, threads=torch_threads),
        "torch_eager_1t": lambda: make_torch(params0, x_np, k, compile=False, threads=1),
        "torch_compile": lambda: make_torch(params0, x_np, k, compile=True, threads=torch_threads),
        "torch_compile_1t": lambda: make_torch(params0, x_np, k, compile=True, threads=1),
        "numpyro": lambda: make_numpyro(params0, x, k),
    }


@dataclass
class Availability:
    """Which of the requested contenders can run here, and why the others are skipped."""

    names: list
    skipped: dict = field(default_factory=dict)
    have_torch: bool = True
    have_numpyro: bool = True
    torch_threads: int | None = None
    inductor_cache_warm: bool | None = None


def availability(names, use_compile: bool, torch_threads: int | None) -> Availability:
    """Imports torch and numpyro if they can be (setting torch's thread count) and drops the
    contenders that cannot run: torch or numpyro missing, torch.compile not wanted."""
    av = Availability(names=list(names))
    try:
        import torch

        av.torch_threads = torch_threads or os.cpu_count()
        torch.set_num_threads(av.torch_threads)
    except ImportError as err:
        av.have_torch = False
        for n in TORCH_CONTENDERS:
            av.skipped[n] = f"torch not importable ({err}); pip install -e '.[bench]'"
    try:
        import numpyro  # noqa: F401
    except ImportError as err:
        av.have_numpyro = False
        av.skipped["numpyro"] = f"numpyro not importable ({err}); pip install -e '.[bench]'"
    if not use_compile:
        for n in ("torch_compile", "torch_compile_1t"):
            if n in av.names:
                av.skipped.setdefault(n, "--quick mode (its first call alone takes 10-60 s per "
                                         "shape); pass --compile to include it")
    av.names = [n for n in av.names if n not in av.skipped]
    if av.have_torch and use_compile:
        try:
            from torch._inductor.runtime.cache_dir_utils import cache_dir

            av.inductor_cache_warm = os.path.isdir(cache_dir()) and bool(os.listdir(cache_dir()))
        except Exception:  # noqa: BLE001 - private API; only informational
            pass
    return av
