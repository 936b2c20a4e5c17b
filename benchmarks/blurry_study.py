"""Why are VAE samples blurry? The same conv VAE under seven likelihoods, and an RD autoencoder.

One convolutional VAE (preset ``conv``: latent 32, strided-conv encoder, depth-to-space
decoder, widths (16, 32), dense 256) is trained with the ELBO (analytic KL, k = 1) under

* L2: ``gaussian`` with a fixed σ in {0.03, 0.1, 0.3};
* L1: ``laplace`` with b = 0.1 / √2 (the Laplace with the variance of the σ = 0.1 Gaussian);
* a learned σ per pixel (``learned-gaussian-pixel``);
* the discretized logistic on the 8-bit levels (``logistic``);
* ``bernoulli`` on dynamically binarized images;

on MNIST and Fashion-MNIST, every run with the same budget (steps, batch, seed, optimizer).
A fixed-σ L2 ELBO with a KL weight β equals, up to a constant, the β = 1 ELBO at
σ' = σ √β (divide the loss by β), so a β sweep at σ0 = 0.1 (MNIST) traces the same
rate–distortion curve as the σ sweep: β = σ'^2 / σ0^2 (β = 2σ'^2 relative to σ0 = 1/√2);
β = 0.1 (σ' = 0.032) checks this against the σ = 0.03 run, β = 3 (σ' = 0.17) adds a point.
The rate–distortion autoencoder (:mod:`jaxvae.models.rd_autoencoder`, the same decoder,
one quantized code per image) is trained on MNIST at λ = 1/σ^2 for the three σ.

Per run: the test ELBO / NLL in the likelihood's own units, bits/dim, the rate E[KL]
(nats, analytic), the distortion as E_q[-log p(x|z)] (nats) and as the MSE of the
reconstruction (decoder mean at the posterior mean, against the grey-level test image in
[0, 1]), and the sharpness (:mod:`jaxvae.image_metrics`) of 64 prior samples (decoder
means) and of the reconstructions, beside the test images' own.

    python benchmarks/blurry_study.py                    # the published study (~25 min)
    python benchmarks/blurry_study.py --quick            # < 1 min: embedded data, 2 runs
    python benchmarks/blurry_study.py --table-only       # tables and figures from OUT

Finished runs are stored in OUT/runs.jsonl (resumable); grids in OUT/grids/, the figures
in --figures (default docs/images/blurry).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxvae
from jaxvae import image_metrics, plots, run_steps, terms
from jaxvae.data import dequantize
from jaxvae.models import rd_autoencoder as rd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    DEFAULT_DATA,
    ResultsStore,
    add_common_flags,
    atomic_write,
    command_line,
    log,
    machine,
    markdown_table,
    save_figure,
    write_json,
    write_table,
)

DEFAULT_OUT = os.path.join("benchmarks", "results", "blurry_study")
DEFAULT_FIGURES = os.path.join("docs", "images", "blurry")
DATASETS = {"mnist": DEFAULT_DATA, "fashion-mnist": "fashion-mnist"}
ARCH = {"latent_dim": 32, "decoder": "depth-to-space", "channels": (16, 32), "hidden": 256}
SIGMAS = (0.03, 0.1, 0.3)
SIGMA0 = 0.1
#: (label, likelihood, likelihood_scale) of the main grid
HEADS = ([(f"L2 σ={s:g}", "gaussian", s) for s in SIGMAS]
         + [("L1 b=0.0707", "laplace", round(0.1 / math.sqrt(2), 4)),
            ("learned σ/pixel", "learned-gaussian-pixel", None),
            ("logistic", "logistic", None), ("Bernoulli", "bernoulli", None)])
BETAS = (0.1, 3.0)
NUM_SAMPLES = 64


# ------------------------------------------------------------------------------ the plan

def vae_config(args, data: str, likelihood: str, scale, beta: float = 1.0) -> jaxvae.Config:
    """The Config of one VAE run (same architecture, optimizer and budget for all)."""
    arch = dict(ARCH, channels=args.channels, hidden=(ARCH["hidden"],))
    return jaxvae.Config(model="conv", likelihood=likelihood, likelihood_scale=scale,
                         objective="elbo", k=1, analytic_kl=True, beta=beta, protocol="adam",
                         lr=args.lr, batch_size=args.batch_size, steps=args.steps,
                         seed=args.seed, data=data, split="train", eval_k=args.eval_k,
                         eval_limit=args.test_limit, **arch)


def rd_setting(args, dataset: str, lam: float) -> dict:
    """The setting of one RD-autoencoder run (a plain dict)."""
    return {"model": "rd-autoencoder", "data": DATASETS[dataset] if not args.quick
            else "embedded", "lam": lam, "steps": args.steps, "batch_size": args.batch_size,
            "lr": args.lr, "seed": args.seed, "test_limit": args.test_limit,
            "channels": list(args.channels), "prior": "logistic"}


def make_plan(args) -> list[tuple[str, str, object]]:
    """``[(dataset, label, setting)]``: VAE Configs and RD dicts, in run order."""
    plan = []
    for dataset in args.datasets:
        data = "embedded" if args.quick else DATASETS[dataset]
        for label, likelihood, scale in HEADS:
            if args.heads is None or label in args.heads:
                plan.append((dataset, label, vae_config(args, data, likelihood, scale)))
    for dataset in args.datasets[:1]:
        data = "embedded" if args.quick else DATASETS[dataset]
        for beta in args.betas:
            plan.append((dataset, f"L2 σ0={SIGMA0:g} β={beta:g}",
                         vae_config(args, data, "gaussian", SIGMA0, beta)))
    for dataset in args.datasets[:args.rd_datasets]:
        for sigma in args.rd_sigmas:
            plan.append((dataset, f"RD-AE λ={1 / sigma ** 2:.4g}",
                         rd_setting(args, dataset, 1 / sigma ** 2)))
    return plan


# ------------------------------------------------------------------------ measurements

def _chunks(n: int, size: int = 250):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def vae_measurements(results, grey, key) -> tuple[dict, dict]:
    """Rate, distortions and sharpness of a trained VAE; and the images for its grids.

    Args: ``results`` of :func:`jaxvae.train_and_evaluate`; ``grey: [M, H, W]`` the test
      images in [0, 1] (the first ``eval_limit``); ``key``.
    """
    config, model, params = results.config, results.model, results.params
    head = model.decoder.head
    dtype = run_steps.data_dtype(config)
    images = jaxvae.data.load(config.data, config.eval_split, dtype=dtype).images[:len(grey)]
    x, _ = run_steps.evaluation_images(config, images, config.seed)
    bound = terms.bind(model, params)

    @jax.jit
    def per_image(xb, kb):
        def one(x_i, k_i):
            q, prior, log_lik = terms.model_terms(model, params, x_i)
            z_bar = q.mean()
            kl = jaxvae.kl_divergence(q, prior)
            dist = bound.likelihood(z_bar)
            return (kl, -log_lik(q.sample(seed=k_i)), -dist.log_prob(x_i),
                    head.to_unit(dist.mean()))
        return jax.vmap(one)(xb, jax.random.split(kb, xb.shape[0]))

    key_q, key_z, key_x = jax.random.split(key, 3)
    parts = [per_image(jnp.asarray(x[a:b]), jax.random.fold_in(key_q, a))
             for a, b in _chunks(len(x))]
    kl, dist_nll, recon_nll, recon = (np.concatenate([np.asarray(p[i]) for p in parts])
                                      for i in range(4))
    z = jax.random.normal(key_z, (NUM_SAMPLES, model.latent_dim))
    samples = np.asarray(jax.jit(jax.vmap(
        lambda z_i: head.to_unit(bound.likelihood(z_i).mean())))(z))
    out = {"rate_kl": float(kl.mean()), "distortion_nll": float(dist_nll.mean()),
           "recon_nll": float(recon_nll.mean()),
           "mse": float(np.mean((recon - grey) ** 2)),
           "mse_clipped": float(np.mean((np.clip(recon, 0, 1) - grey) ** 2)),
           "sharp_samples": image_metrics.sharpness(samples),
           "sharp_recon": image_metrics.sharpness(recon)}
    pictures = {"samples": samples, "recon": recon[:16]}
    if config.likelihood in ("logistic", "logistic-mixture", "bernoulli"):
        draw = jax.vmap(lambda z_i, k: head.to_unit(bound.likelihood(z_i).sample(seed=k)))
        drawn = np.asarray(jax.jit(draw)(z, jax.random.split(key_x, NUM_SAMPLES)))
        out["sharp_drawn"] = image_metrics.sharpness(drawn)
        pictures["drawn"] = drawn
    return out, pictures


def run_vae(config: jaxvae.Config, grey, progress: bool) -> tuple[dict, dict]:
    results = jaxvae.train_and_evaluate(config, progress=progress, pictures=False)
    start = time.time()
    extra, pictures = vae_measurements(results, grey, jax.random.PRNGKey(config.seed + 1))
    m = results.metrics
    record = {"model": "vae", "metrics": m, **extra,
              "train_seconds": m["train_seconds"],
              "eval_seconds": round(m["eval_seconds"] + time.time() - start, 1)}
    return record, pictures


def run_rd(setting: dict, grey, progress: bool) -> tuple[dict, dict]:
    import optax

    images = jaxvae.data.load(setting["data"], "train", dtype="uint8").images
    test = jaxvae.data.load(setting["data"], "test", dtype="uint8").images[:len(grey)]
    model = rd.RDAutoencoder(tuple(images.shape[1:]), ARCH["latent_dim"], ARCH["decoder"],
                             ARCH["hidden"], tuple(setting["channels"]),
                             prior=setting["prior"])
    key_init, key_train, key_eval = jax.random.split(jax.random.PRNGKey(setting["seed"]), 3)
    tx = optax.adam(setting["lr"])
    state = jaxvae.create_train_state(jax.jit(model.init_params)(key_init), tx, key_train)
    step = jaxvae.make_train_step(rd.rate_distortion_loss(model, setting["lam"]), tx,
                                  preprocess=dequantize.dynamic_dequantization)
    start = time.time()
    state = jaxvae.fit(state, step, images, batch_size=setting["batch_size"], num_epochs=1,
                       num_steps=setting["steps"], seed=setting["seed"], progress=progress)
    jax.block_until_ready(state.params)
    train_seconds = round(time.time() - start, 1)
    start = time.time()
    params = state.params
    x = dequantize.dequantize_fixed(test, seed=setting["seed"])
    m = rd.rate_distortion_metrics(model, params, x)
    decode = jax.jit(lambda xb: model.apply(params, rd.quantize(
        model.apply(params, xb, method="encode"), model.bin_width), method="decode"))
    recon = np.concatenate([np.asarray(decode(jnp.asarray(x[a:b]))) for a, b in _chunks(len(x))])
    samples = np.asarray(rd.sample(model, params, key_eval, NUM_SAMPLES))
    record = {"model": "rd-autoencoder", "metrics": m, "rate_quantized": m["rate"],
              "mse": float(np.mean((recon - grey) ** 2)),
              "mse_clipped": float(np.mean((np.clip(recon, 0, 1) - grey) ** 2)),
              "sharp_samples": image_metrics.sharpness(samples),
              "sharp_recon": image_metrics.sharpness(recon),
              "train_seconds": train_seconds, "eval_seconds": round(time.time() - start, 1)}
    return record, {"samples": samples, "recon": recon[:16]}


# ------------------------------------------------------------------------------ pictures

def tag(label: str) -> str:
    """A file-name form of a run label."""
    keep = "".join(c if c.isalnum() or c in ".=" else "-" for c in label.replace("σ", "sigma")
                   .replace("β", "beta").replace("λ", "lambda"))
    return "-".join(p for p in keep.split("-") if p)


def save_pictures(out: str, dataset: str, label: str, pictures: dict, grey) -> None:
    """OUT/grids/DATASET/TAG_{samples,recon[,drawn]}.png: 32 samples in 4 rows of 8; 8
    test images above their reconstructions, twice."""
    folder = os.path.join(out, "grids", dataset)
    os.makedirs(folder, exist_ok=True)
    for name in ("samples", "drawn"):
        if name in pictures:
            plots.save_grid(np.clip(pictures[name][:32], 0, 1),
                            os.path.join(folder, f"{tag(label)}_{name}.png"), ncols=8)
    rec = np.clip(pictures["recon"], 0, 1)
    rows = [grey[:8], rec[:8], grey[8:16], rec[8:16]]
    plots.save_grid(np.concatenate(rows), os.path.join(folder, f"{tag(label)}_recon.png"),
                    ncols=8)


def grid_figure(out: str, dataset: str, labels, path: str, scale: int = 2,
                rows_of: int = 2) -> str | None:
    """One grey PNG per data set: a row per run, its label, the first ``rows_of`` rows of
    its grids (16 prior samples, decoder means; 8 test images above their
    reconstructions; drawn samples x ~ p(x|z) in a third column where the run has them),
    magnified ``scale`` times. Built with PIL (small files); OUT/grids holds the full grids."""
    from PIL import Image, ImageDraw

    folder = os.path.join(out, "grids", dataset)
    rows = [lab for lab in labels if os.path.exists(os.path.join(folder, f"{tag(lab)}_recon.png"))]
    if not rows:
        return None
    load = lambda lab, name: np.asarray(Image.open(os.path.join(folder, f"{tag(lab)}_{name}.png")))
    gh, gw = load(rows[0], "recon").shape
    gh = min(gh, rows_of * (28 + 1) - 1)          # rows of 28-pixel images, 1-pixel gaps
    label_w, gap, head_h = 120, 8, 16
    columns = ["prior samples: decoder means", "test images / reconstructions",
               "drawn x ~ p(x|z)"]
    ncol = 3 if any(os.path.exists(os.path.join(folder, f"{tag(lab)}_drawn.png"))
                    for lab in rows) else 2
    width = label_w + ncol * (scale * gw + gap)
    height = head_h + len(rows) * (scale * gh + gap)
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    for c in range(ncol):
        draw.text((label_w + c * (scale * gw + gap), 2), columns[c], fill=0)
    for r, label in enumerate(rows):
        top = head_h + r * (scale * gh + gap)
        draw.text((4, top + scale * gh // 2 - 6), label.replace("σ", "sigma ")
                  .replace("λ", "lambda ").replace("β", "beta "), fill=0)
        for c, name in enumerate(("samples", "recon", "drawn")[:ncol]):
            file = os.path.join(folder, f"{tag(label)}_{name}.png")
            if os.path.exists(file):
                img = Image.open(file).convert("L")
                img = img.crop((0, 0, img.width, min(img.height, gh)))
                img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
                canvas.paste(img, (label_w + c * (scale * gw + gap), top))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: canvas.save(f, format="PNG", optimize=True))
    return path


def rd_figure(records_by_dataset: dict, data_sharp: dict, path: str) -> str:
    """Top: rate (nats) against reconstruction MSE; bottom: the gradient energy of prior
    samples (filled) and reconstructions (open) against rate, the data's as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in records_by_dataset if records_by_dataset[d]]
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.4 * len(datasets), 8.0),
                             squeeze=False)
    colours = {"L1": "C2", "learned": "C4", "logistic": "C5", "Bernoulli": "C7"}
    for col, dataset in enumerate(datasets):
        recs = records_by_dataset[dataset]
        sigma = sorted([r for r in recs if r["label"].startswith("L2 σ=")],
                       key=lambda r: r["rate"])
        beta = sorted([r for r in recs if r["label"].startswith("L2 σ0=")
                       or r["label"] == f"L2 σ={SIGMA0:g}"], key=lambda r: r["rate"])
        rdae = sorted([r for r in recs if r["model"] == "rd-autoencoder"],
                      key=lambda r: r["rate"])
        others = [r for r in recs if r["model"] == "vae" and not r["label"].startswith("L2 σ")]
        series = [("VAE, L2, σ = 0.03, 0.1, 0.3", sigma, "o-", "C0")]
        if len(beta) > 1:
            series.append((f"VAE, L2 σ0={SIGMA0:g}, β = 0.1, 1, 3", beta, "s--", "C1"))
        series.append(("RD-AE, λ = 1/σ² (quantized rate)", rdae, "^-", "C3"))
        top, bottom = axes[0, col], axes[1, col]
        for name, group, style, colour in series:
            if not group:
                continue
            rates = [r["rate"] for r in group]
            top.plot(rates, [r["mse"] for r in group], style, color=colour, label=name)
            bottom.plot(rates, [r["samples"]["gradient_energy"] for r in group], style,
                        color=colour, label=name + ": samples")
            bottom.plot(rates, [r["recon"]["gradient_energy"] for r in group], style,
                        color=colour, mfc="white", alpha=0.7)
        for r in others:
            colour = next(c for k, c in colours.items() if r["label"].startswith(k))
            top.plot(r["rate"], r["mse"], "D", color=colour, ms=7, label=f"VAE, {r['label']}")
            bottom.plot(r["rate"], r["samples"]["gradient_energy"], "D", color=colour, ms=7)
            bottom.plot(r["rate"], r["recon"]["gradient_energy"], "D", color=colour, ms=7,
                        mfc="white")
        bottom.axhline(data_sharp[dataset]["gradient_energy"], color="k", lw=1, ls=":",
                       label="test images")
        top.set_yscale("log")
        top.set_ylabel("reconstruction MSE per pixel")
        bottom.set_ylabel("gradient energy (filled: samples, open: reconstructions)")
        for ax in (top, bottom):
            ax.set_xlabel("rate (nats per image): VAE E[KL(q||p)], RD-AE -log P(ŷ)")
            ax.grid(alpha=0.3, which="both")
        top.set_title(dataset)
        top.legend(fontsize=7)
        bottom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------- tables

def fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"


def flatten(record: dict, label: str) -> dict:
    """The numbers one table row needs, for VAE and RD records alike."""
    m = record["metrics"]
    row = {"label": label, "model": record["model"], "mse": record["mse"],
           "samples": record["sharp_samples"], "recon": record["sharp_recon"],
           "drawn": record.get("sharp_drawn"), "train_seconds": record["train_seconds"]}
    if record["model"] == "vae":
        row.update(rate=record["rate_kl"], elbo=m["test_elbo"], nll=m["nll"],
                   passes=m["passes"], bpd=m.get("bits_per_dim"),
                   distortion_nll=record["distortion_nll"])
    else:
        row.update(rate=record["rate_quantized"], elbo=None, nll=None, bpd=None,
                   distortion_nll=None, rate_bits=m["rate_bits"])
    return row


def markdown(rows_by_dataset: dict, data_sharp: dict, args, missing) -> str:
    header = ["run", "test ELBO", "NLL (IWAE)", "bits/dim", "rate E[KL] (nats)",
              "E_q[-log p(x|z)]", "recon MSE", "samples LapVar", "samples GradE",
              "samples HF", "recon LapVar", "recon GradE", "recon HF", "train s"]
    out = []
    passes = next((r["passes"] for rows in rows_by_dataset.values() for r in rows
                   if r.get("passes") is not None), "?")
    for dataset, rows in rows_by_dataset.items():
        if not rows:
            continue
        lines = []
        for r in rows:
            s, c = r["samples"], r["recon"]
            lines.append([r["label"], fmt(r["elbo"], 5), fmt(r["nll"], 5), fmt(r["bpd"]),
                          fmt(r["rate"]), fmt(r["distortion_nll"], 5), fmt(r["mse"]),
                          fmt(s["laplacian_variance"]), fmt(s["gradient_energy"]),
                          fmt(s["high_frequency_fraction"]), fmt(c["laplacian_variance"]),
                          fmt(c["gradient_energy"]), fmt(c["high_frequency_fraction"]),
                          r["train_seconds"]])
        d = data_sharp[dataset]
        lines.append(["**test data**", "", "", "", "", "", "0", "", "", "",
                      fmt(d["laplacian_variance"]), fmt(d["gradient_energy"]),
                      fmt(d["high_frequency_fraction"]), ""])
        out += [f"### {dataset}", "", markdown_table(header, lines), ""]
        drawn = [r for r in rows if r["drawn"]]
        if drawn:
            out += ["Drawn samples x ~ p(x|z), z ~ p(z) (not the decoder mean): " + "; ".join(
                f"{r['label']}: LapVar {fmt(r['drawn']['laplacian_variance'])}, GradE "
                f"{fmt(r['drawn']['gradient_energy'])}, HF "
                f"{fmt(r['drawn']['high_frequency_fraction'])}" for r in drawn) + ".", ""]
    out += [
        "Units: test ELBO and NLL in nats per image in each likelihood's own data (Bernoulli: "
        "binarized images, fixed draw; Gaussian/Laplace: 8-bit images dequantized to [0, 1], "
        "a density, so the values can be negative; logistic: the 8-bit levels). bits/dim: "
        "8-bit bits per dimension (continuous heads: the dequantization bound "
        "(NLL + D ln 256) / (D ln 2)), comparable across all but Bernoulli (binary data). "
        f"NLL: IWAE bound with k={args.eval_k}. Rate: analytic KL(q(z|x) || N(0, I)); "
        "RD-AE: the quantized code length -sum_d log P_d(ŷ_d) (nats). MSE: decoder mean at "
        "the posterior mean (RD-AE: g_s(ŷ)), unclipped, against the grey-level test image "
        "in [0, 1]. Sharpness (jaxvae.image_metrics, images clipped to [0, 1]): LapVar = "
        "variance of the 4-neighbour Laplacian, GradE = mean squared finite difference, HF "
        f"= share of spectral power above 1/4 cycle/pixel; samples: {NUM_SAMPLES} decoder "
        f"means at z ~ N(0, I); recon and data: the first {args.test_limit} test images.",
        "",
        f"Budget per run: {args.steps} Adam steps (lr {args.lr}), batch {args.batch_size}, "
        f"seed {args.seed}, the training split ({passes} passes); conv preset with latent_dim "
        f"{ARCH['latent_dim']}, decoder "
        f"{ARCH['decoder']}, channels {tuple(args.channels)}, hidden {ARCH['hidden']}. "
        f"Machine: {machine()}.",
        "", "Command: `" + command_line("benchmarks/blurry_study.py", args.argv,
                                       drop=("--table-only",)) + "`"]
    if missing:
        out += ["", "Not run within this budget: " + ", ".join(missing) + "."]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    add_common_flags(parser, "steps", "seed", "out", "json", "quick", "no_progress",
                     defaults={"steps": 500},
                     helps={"steps": "Adam steps per run (default 500; 20 with --quick)",
                            "json": "also write all records to this path",
                            "quick": "< 60 s: embedded data, 2 small runs"})
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--channels", default="16,32", help="conv widths per level")
    parser.add_argument("--eval-k", type=int, default=5, help="samples of the IWAE bound")
    parser.add_argument("--test-limit", type=int, default=500, help="first N test images")
    parser.add_argument("--heads", default=None, help="comma-separated labels (default all)")
    parser.add_argument("--betas", default=",".join(f"{b:g}" for b in BETAS))
    parser.add_argument("--rd-sigmas", default=",".join(f"{s:g}" for s in SIGMAS),
                        help="RD autoencoder at λ = 1/σ^2")
    parser.add_argument("--rd-datasets", type=int, default=1,
                        help="run the RD autoencoder on the first N data sets")
    parser.add_argument("--figures", default=None, help=f"default {DEFAULT_FIGURES} "
                        "(OUT/figures with --quick)")
    parser.add_argument("--table-only", action="store_true",
                        help="write tables and figures from the finished runs, train nothing")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.steps = 20 if "--steps" not in args.argv else args.steps
        args.datasets, args.test_limit, args.eval_k = "mnist", min(args.test_limit, 100), 2
        args.heads = args.heads or "L2 σ=0.1"
        args.betas, args.rd_sigmas, args.channels = "", "0.1", "8,16"
        args.no_progress = True
        jax.config.update("jax_disable_most_optimizations", True)   # compile-bound
    args.out = args.out or (os.path.join(DEFAULT_OUT, "quick") if args.quick else DEFAULT_OUT)
    args.figures = args.figures or (os.path.join(args.out, "figures") if args.quick
                                    else DEFAULT_FIGURES)
    try:
        args.datasets = [d for d in args.datasets.split(",") if d]
        if not set(args.datasets) <= set(DATASETS):
            raise ValueError(f"--datasets takes {', '.join(DATASETS)}")
        args.channels = tuple(int(c) for c in args.channels.split(","))
        args.heads = None if args.heads is None else args.heads.split(",")
        args.betas = [float(b) for b in args.betas.split(",") if b]
        args.rd_sigmas = [float(s) for s in args.rd_sigmas.split(",") if s]
        plan = make_plan(args)
        for _, _, setting in plan:
            if isinstance(setting, jaxvae.Config):
                setting.validate()
    except (ValueError, jaxvae.ConfigError) as err:
        parser.error(str(err))

    store = ResultsStore(os.path.join(args.out, "runs.jsonl"))
    settings = [s for _, _, s in plan]
    log(f"{machine()}; {len(plan) - len(store.missing(settings))} of {len(plan)} runs "
        f"finished in {store.path}")
    greys = {}

    def grey(dataset):
        if dataset not in greys:
            data = "embedded" if args.quick else DATASETS[dataset]
            greys[dataset] = jaxvae.data.load(data, "test").images[:args.test_limit]
        return greys[dataset]

    for dataset, label, setting in ([] if args.table_only else plan):
        if store.done(setting):
            continue
        print(f"-- {dataset}: {label}", flush=True)
        run = run_vae if isinstance(setting, jaxvae.Config) else run_rd
        record, pictures = run(setting, grey(dataset), not args.no_progress)
        save_pictures(args.out, dataset, label, pictures, grey(dataset))
        store.add({"setting": setting, "dataset": dataset, "label": label, **record,
                   "machine": machine()})
        print(json.dumps({"label": label, "mse": record["mse"],
                          "train_seconds": record["train_seconds"]}), flush=True)

    rows = {d: [flatten(store.get(s), lab) for dd, lab, s in plan if dd == d and store.done(s)]
            for d in args.datasets}
    data_sharp = {d: image_metrics.sharpness(grey(d)) for d in args.datasets}
    missing = [f"{d} {lab}" for d, lab, s in plan if not store.done(s)]
    table = markdown(rows, data_sharp, args, missing)
    write_table(args.out, table)
    write_json(os.path.join(args.out, "data_sharpness.json"), data_sharp)
    if args.json:
        write_json(args.json, store.records())
    os.makedirs(args.figures, exist_ok=True)
    for dataset in args.datasets:
        labels = [lab for d, lab, s in plan if d == dataset and not lab.startswith("L2 σ0=")]
        grid_figure(args.out, dataset, labels,
                    os.path.join(args.figures, f"grids_{dataset}.png"))
    rd_figure(rows, data_sharp, os.path.join(args.figures, "rate_distortion.png"))
    print(table)


if __name__ == "__main__":
    main()
