"""Timing: the round-robin over contenders at one shape, summaries and FLOP counts."""

from __future__ import annotations

import statistics

from .config import DATA_DIM, EVAL_K, HIDDEN, LATENT
from .contenders import factories, make_matmul


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


def time_shape(batch, k, params0, x_np, names, repeats, target, rotate_offset=0,
               with_matmul=False, torch_threads=None, log=print):
    """Compile times and per-repeat seconds per step for each contender at one shape."""
    import jax.numpy as jnp

    x = jnp.asarray(x_np)
    makers = factories(params0, x, x_np, k, torch_threads)
    runners, compile_s, errors, first_loss = {}, {}, {}, {}
    order = [n for n in names]
    if with_matmul:
        order.append("matmul")
        makers["matmul"] = make_matmul
    for name in order:
        try:
            runner = makers[name]()
            compile_s[name] = runner.first()
            runners[name] = runner
            if runner.loss is not None:
                first_loss[name] = runner.loss()
        except Exception as err:  # noqa: BLE001 - e.g. torch.compile without a toolchain
            text = str(err).strip()
            msg = f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"
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
                    f"first-step loss of {name} ({value:.3f}) differs from jaxvae's ({ref:.3f}) "
                    f"by more than 2% at B={batch}, k={k}: the contenders do not compute the "
                    "same loss")
    return {"compile_s": compile_s, "seconds": seconds, "steps_per_repeat": steps,
            "errors": errors, "first_step_loss": first_loss}
