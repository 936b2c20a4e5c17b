"""Variance and signal-to-noise ratio of VAE gradient estimators.

Three experiments, each at fixed parameters (only the estimator's noise varies):

1. SNR of the inference-network (phi) and generative-network (theta) gradients against
   the number of importance samples K for IWAE and DReG, on an MLP VAE trained for a
   short while on MNIST (Rainforth et al. 2018; Tucker et al. 2018). Expected: IWAE's
   phi-SNR falls like K^-1/2, its theta-SNR rises like K^1/2, DReG's phi-SNR does not
   fall. These are large-K laws: they hold once K exceeds the spread of the importance
   weights (roughly 1 + chi^2(p(z|x) || q(z|x))). The default model has 2 latent units,
   where that happens within K <= 1000; with the 50-unit IWAE-paper model
   (--latent-dim 50) the whole range is pre-asymptotic and the slopes are shallow.
2. Gradient variance of the score function (REINFORCE), reparameterization (MC and
   analytic KL) and STL estimators of the ELBO at the same parameters.
3. STL's variance vanishing as q approaches the exact posterior of the linear-Gaussian
   model, phi_t = phi* + t * delta, t -> 0, while the reparameterization gradient's
   variance stays.

    python benchmarks/estimator_variance.py --data npz:../shared/data/mnist.npz
    python benchmarks/estimator_variance.py --quick          # < 60 s, embedded data

Writes OUT/table.md, OUT/results.json, OUT/snr_vs_k.png and OUT/stl_variance.png
(plots need matplotlib: pip install -e '.[plots]').
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxvae
from jaxvae import data, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    add_common_flags,
    command_line,
    draw_chunk,
    log,
    machine,
    markdown_table,
    resolve_common,
    save_figure,
    write_results,
)

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "estimator_variance")
EXPECTED = {"iwae_phi_snr_slope": (-0.5, "within +-0.15"),
            "iwae_theta_snr_slope": (0.5, "within +-0.15"),
            "dreg_phi_snr_slope": (-0.15, ">=")}


def _chunk(num_draws: int, work_per_draw: int, budget: int = 60_000) -> int:
    """Draws per vmapped chunk, with chunk * work_per_draw <= budget (memory)."""
    return draw_chunk(num_draws, min(64, budget // max(work_per_draw, 1)))


# ------------------------------------------------------------------ 1. SNR against K

def train_vae(args):
    """The IWAE-paper MLP (latent_dim units) trained for args.train_steps steps."""
    train_x = data.load(args.data, "train").images
    model = jaxvae.iwae_mlp(latent_dim=args.latent_dim,
                            output_bias_init=jaxvae.mean_logit_init(train_x.mean(axis=0)))
    tx = optax.adam(1e-3)
    key_init, key_train = jax.random.split(jax.random.PRNGKey(args.seed))
    state = train.create_train_state(model.init_params(key_init), tx, key_train)
    loss = jaxvae.make_loss(model, args.train_objective, args.train_k)
    step = train.make_train_step(loss, tx, preprocess=data.dynamic_binarization)
    start = time.time()
    state = train.fit(state, step, train_x, batch_size=100, num_epochs=1,
                      num_steps=args.train_steps, seed=args.seed, progress=not args.no_progress)
    jax.block_until_ready(state.params)
    budget = {"steps": args.train_steps, "batch_size": 100,
              "passes": round(args.train_steps * 100 / len(train_x), 2),
              "train_seconds": round(time.time() - start, 1), "train_images": len(train_x)}
    return model, state.params, budget


def snr_vs_k(model, params, x, args):
    groups = jaxvae.split_params(model, params)
    rows = []
    for name in ("iwae", "dreg"):
        for k in args.ks:
            grad_fn = jaxvae.estimator_grad(jaxvae.make_estimator(model, name, k))
            start = time.time()
            stats = jaxvae.gradient_stats(grad_fn, groups, x, jax.random.PRNGKey(args.seed + k),
                                          args.draws, chunk=_chunk(args.draws, k * len(x)))
            summary = jaxvae.summarize(stats)
            rows.append({"estimator": name, "k": k, "seconds": round(time.time() - start, 1),
                         **{f"{g}_{m}": summary[g][m] for g in ("inference", "generative")
                            for m in ("mean_snr", "norm_snr", "total_variance")}})
            log(f"  {name:5s} K={k:5d}: phi SNR {rows[-1]['inference_norm_snr']:.3g}, "
                f"theta SNR {rows[-1]['generative_norm_snr']:.3g} ({rows[-1]['seconds']} s)")
    return rows


def slope(ks, values) -> float:
    """Least-squares slope of log(value) against log(K)."""
    ks, values = np.asarray(ks, float), np.asarray(values, float)
    ok = values > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(ks[ok]), np.log(values[ok]), 1)[0])


# ------------------------------------------------------- 2. estimators at one point

ELBO_ROWS = [("reparam", "reparameterization, MC KL", {}),
             ("reparam", "reparameterization, analytic KL", {"analytic_kl": True}),
             ("stl", "STL (sticking the landing)", {}),
             ("score_function", "score function (REINFORCE)", {}),
             ("score_function", "score function, leave-one-out baseline",
              {"baseline": "leave_one_out"}),
             ("wake_sleep", "wake-sleep (phi: sleep phase on dreams, not an ELBO gradient)", {})]


def estimator_variances(model, params, x, args):
    groups = jaxvae.split_params(model, params)
    rows = []
    # --quick leaves out the analytic-KL row (one compilation less)
    rows_to_run = [r for r in ELBO_ROWS if not (args.quick and r[2].get("analytic_kl"))]
    for name, label, options in rows_to_run:
        grad_fn = jaxvae.estimator_grad(jaxvae.make_estimator(model, name, args.elbo_k, **options))
        stats = jaxvae.gradient_stats(grad_fn, groups, x, jax.random.PRNGKey(args.seed),
                                      args.draws, chunk=_chunk(args.draws, args.elbo_k * len(x)))
        s = jaxvae.summarize(stats)
        rows.append({"estimator": name, "label": label, "options": options,
                     "phi_total_variance": s["inference"]["total_variance"],
                     "theta_total_variance": s["generative"]["total_variance"],
                     "phi_mean_snr": s["inference"]["mean_snr"],
                     "phi_norm_snr": s["inference"]["norm_snr"]})
        log(f"  {label}: phi variance {rows[-1]['phi_total_variance']:.4g}")
    return rows


# -------------------------------------------------- 3. STL near the exact posterior

def stl_near_posterior(args):
    model = jaxvae.LinearGaussianVAE(data_dim=20, latent_dim=5, sigma=0.5)
    exact = model.exact_params(jax.random.PRNGKey(args.seed))
    x = jax.vmap(lambda k: model.sample_x(exact, k))(jax.random.split(jax.random.PRNGKey(1), 8))
    groups = jaxvae.split_params(model, exact)
    leaves, tree = jax.tree_util.tree_flatten(groups.inference)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    delta = [0.3 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)]
    fns = {name: jaxvae.estimator_grad(jaxvae.make_estimator(model, name, 1))
           for name in ("stl", "reparam")}
    mean_kl = jax.jit(lambda p, x: jnp.mean(jax.vmap(lambda xi: model.kl_to_posterior(p, xi))(x)))
    rows = []
    for t in args.ts:
        phi = jax.tree_util.tree_unflatten(tree, [v + t * d for v, d in zip(leaves, delta)])
        g = jaxvae.ParamGroups(phi, groups.generative)
        row = {"t": t}
        for name, fn in fns.items():
            stats = jaxvae.gradient_stats(fn, g, x, jax.random.PRNGKey(3), args.draws)
            row[f"{name}_phi_variance"] = jaxvae.summarize(stats)["inference"]["total_variance"]
        row["kl_to_posterior"] = float(mean_kl(jaxvae.merge_params(g), x))
        rows.append(row)
        log(f"  t={t:g}: STL {row['stl_phi_variance']:.3g}, "
            f"reparam {row['reparam_phi_variance']:.3g}")
    return rows


# --------------------------------------------------------------------------- output

def plots(out, snr_rows, stl_rows, ks):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plots (pip install -e '.[plots]')")
        return []
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group, title in [(axes[0], "inference", "inference network (phi)"),
                             (axes[1], "generative", "generative network (theta)")]:
        # theta's gradient is the same for both estimators: one line
        names = (("iwae", "o-", "IWAE"), ("dreg", "s-", "DReG")) if group == "inference" \
            else (("iwae", "o-", "IWAE = DReG"),)
        for name, style, label in names:
            rows = [r for r in snr_rows if r["estimator"] == name]
            ax.loglog([r["k"] for r in rows], [r[f"{group}_norm_snr"] for r in rows], style,
                      label=label)
        ref = [r[f"{group}_norm_snr"] for r in snr_rows if r["estimator"] == "iwae"][0]
        k = np.asarray(ks, float)
        power = -0.5 if group == "inference" else 0.5
        ax.loglog(k, ref * k ** power, "k:", label=f"K^{power:+.1f}")
        ax.set_xlabel("K (importance samples)")
        ax.set_ylabel("SNR  ||E g|| / sqrt(tr Var g)")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out, "snr_vs_k.png"))
    save_figure(fig, paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    rows = [r for r in stl_rows if r["t"] > 0]
    for name, style in (("reparam", "o-"), ("stl", "s-")):
        ax.loglog([r["t"] for r in rows], [r[f"{name}_phi_variance"] for r in rows], style,
                  label=name.upper() if name == "stl" else "reparameterization")
    ax.set_xlabel("t  (phi = phi* + t delta; t = 0 is the exact posterior)")
    ax.set_ylabel("total variance of the phi gradient")
    ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out, "stl_variance.png"))
    save_figure(fig, paths[-1])
    plt.close(fig)
    return paths


def markdown(res) -> str:
    a = res["args"]
    lines = ["## 1. SNR against K (IWAE and DReG)", "",
             f"Model: MLP VAE 784-200-200-{a['latent_dim']} (tanh, Bernoulli) trained with "
             f"{a['train_objective'].upper()} (k={a['train_k']}) and Adam 1e-3 for "
             f"{res['budget']['steps']} steps of batch 100 ({res['budget']['passes']} passes) on "
             f"`{a['data']}`; gradients of the bound on {a['batch']} fixed test images "
             f"(fixed binarization), {a['draws']} draws per point. SNR: ||E g|| / sqrt(tr Var g) "
             "per parameter group, with ||E g||^2 estimated without the tr Var / M bias "
             "(`jaxvae.summarize`'s `norm_snr`); mean per-parameter SNR |E g_p| / std g_p "
             "beside it.", "",
             markdown_table(
                 ["estimator", "K", "phi SNR", "phi mean per-param SNR", "theta SNR",
                  "theta mean per-param SNR", "s"],
                 ([r["estimator"].upper(), r["k"], f"{r['inference_norm_snr']:.4f}",
                   f"{r['inference_mean_snr']:.4f}", f"{r['generative_norm_snr']:.4f}",
                   f"{r['generative_mean_snr']:.4f}", r["seconds"]] for r in res["snr"]))]
    s = res["slopes"]
    slope_rows = [[key, f"{s[key]:+.3f}", f"{how} {target:+.2f}"]
                  for key, (target, how) in EXPECTED.items()]
    slope_rows.append(["dreg_theta_snr_slope", f"{s['dreg_theta_snr_slope']:+.3f}", "(as IWAE)"])
    base = res["estimators"][0]["phi_total_variance"]
    lines += ["", "Log-log slopes against K (least squares over all K):", "",
              markdown_table(["slope", "measured", "expected"], slope_rows),
              "", f"Per-parameter mean SNR slopes: IWAE phi {s['iwae_phi_mean_snr_slope']:+.3f}, "
              f"DReG phi {s['dreg_phi_mean_snr_slope']:+.3f}, IWAE theta "
              f"{s['iwae_theta_mean_snr_slope']:+.3f}.", "",
              f"## 2. ELBO gradient estimators at the same parameters (k = {a['elbo_k']})", "",
              markdown_table(
                  ["estimator", "total variance of phi gradient",
                   "ratio to reparameterization (MC KL)", "total variance of theta gradient"],
                  ([r["label"], f"{r['phi_total_variance']:.4g}",
                    f"{r['phi_total_variance'] / base:.3g}", f"{r['theta_total_variance']:.4g}"]
                   for r in res["estimators"])),
              "", "## 3. STL near the exact posterior (linear-Gaussian model, D=20, d=5)", "",
              "q's parameters phi = phi* + t delta (delta ~ 0.3 N(0, I), phi* the exact "
              f"posterior); k = 1, {a['draws']} draws, 8 data points.", "",
              markdown_table(
                  ["t", "KL(q || p(z|x)) (nats)", "STL variance", "reparameterization variance"],
                  ([f"{r['t']:g}", f"{r['kl_to_posterior']:.3g}", f"{r['stl_phi_variance']:.3g}",
                    f"{r['reparam_phi_variance']:.3g}"] for r in res["stl"]))]
    lines += ["", f"Machine: {res['machine']}; wall time {res['wall_seconds']:.0f} s.", "",
              f"Command: `{res['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, "data")
    parser.add_argument("--train-steps", type=int, default=None, help="default 3000 (quick 300)")
    parser.add_argument("--ks", default=None, help="default 1,3,10,30,100,300,1000")
    parser.add_argument("--draws", type=int, default=None, help="gradient draws per point "
                        "(default 200, quick 100)")
    parser.add_argument("--batch", type=int, default=None, help="test images (default 4)")
    parser.add_argument("--elbo-k", type=int, default=2,
                        help="samples for experiment 2 (>= 2 for the leave-one-out baseline)")
    parser.add_argument("--latent-dim", type=int, default=2,
                        help="latent units of the MNIST VAE (default 2, see the docstring)")
    parser.add_argument("--train-objective", default="iwae", choices=("elbo", "iwae"))
    parser.add_argument("--train-k", type=int, default=5)
    add_common_flags(parser, "seed", "out", "json", "quick", "no_progress",
                     helps={"json": "also write the headline figures here"})
    args = parser.parse_args(argv)
    quick = args.quick
    resolve_common(args, DEFAULT_OUT)
    args.train_steps = args.train_steps or (300 if quick else 3000)
    args.ks = [int(v) for v in (args.ks or ("1,10,100" if quick else "1,3,10,30,100,300,1000"))
               .split(",")]
    args.draws = args.draws or (100 if quick else 200)
    args.batch = args.batch or (2 if quick else 4)
    args.ts = [1.0, 0.1, 0.0] if quick else [1.0, 0.3, 0.1, 0.03, 0.01, 0.0]
    if min(args.ks) < 1 or args.draws < 2 or args.batch < 1 or args.elbo_k < 2:
        parser.error("--ks >= 1, --draws >= 2, --batch >= 1 and --elbo-k >= 2 are required")
    os.makedirs(args.out, exist_ok=True)

    start = time.time()
    log(f"training the VAE ({args.train_steps} steps) on {args.data} ...")
    model, params, budget = train_vae(args)
    test = data.load(args.data, "test").images[:args.batch]
    x = jnp.asarray(data.binarize_fixed(test, seed=args.seed))
    log("1. SNR against K")
    snr_rows = snr_vs_k(model, params, x, args)
    log("2. ELBO estimators at one point")
    est_rows = estimator_variances(model, params, x, args)
    log("3. STL near the exact posterior")
    stl_rows = stl_near_posterior(args)

    def rows_of(name, key):
        rows = [r for r in snr_rows if r["estimator"] == name]
        return [r["k"] for r in rows], [r[key] for r in rows]

    slopes = {
        "iwae_phi_snr_slope": slope(*rows_of("iwae", "inference_norm_snr")),
        "dreg_phi_snr_slope": slope(*rows_of("dreg", "inference_norm_snr")),
        "iwae_theta_snr_slope": slope(*rows_of("iwae", "generative_norm_snr")),
        "dreg_theta_snr_slope": slope(*rows_of("dreg", "generative_norm_snr")),
        "iwae_phi_mean_snr_slope": slope(*rows_of("iwae", "inference_mean_snr")),
        "dreg_phi_mean_snr_slope": slope(*rows_of("dreg", "inference_mean_snr")),
        "iwae_theta_mean_snr_slope": slope(*rows_of("iwae", "generative_mean_snr")),
    }
    by_name = {(r["estimator"], bool(r["options"])): r for r in est_rows}
    score_ratio = (by_name[("score_function", False)]["phi_total_variance"]
                   / by_name[("reparam", False)]["phi_total_variance"])
    command = command_line("benchmarks/estimator_variance.py", argv)
    res = {"args": {k: v for k, v in vars(args).items()}, "budget": budget, "snr": snr_rows,
           "slopes": slopes, "estimators": est_rows, "stl": stl_rows,
           "score_over_reparam_var": score_ratio, "machine": machine(),
           "wall_seconds": time.time() - start, "command": command}
    res["plots"] = plots(args.out, snr_rows, stl_rows, args.ks)
    table = markdown(res)
    headline = {key: slopes[key] for key in EXPECTED}
    headline["score_over_reparam_var"] = score_ratio
    write_results(args.out, table, res, headline, args.json)


if __name__ == "__main__":
    main()
