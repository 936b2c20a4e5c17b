"""Are the samples blurry? Train one conv VAE with a chosen p(x|z) and measure sharpness.

Writes OUT/samples.png (64 prior samples, decoder means), OUT/reconstructions.png (test
images above their reconstructions at the posterior mean) and prints the sharpness
(:mod:`jaxvae.image_metrics`) of both beside the test images' own, with the test ELBO.
``benchmarks/blurry_study.py`` compares all likelihoods under one budget.

    python examples/blurry.py --likelihood gaussian --scale 0.03 --data fashion-mnist
    python examples/blurry.py --likelihood logistic --data npz:../shared/data/mnist.npz
    python examples/blurry.py --quick            # ~30 s: embedded MNIST subset, 20 steps
"""

from __future__ import annotations

import argparse
import os

import jax

import jaxvae
from jaxvae import image_metrics, plots, presets, run_steps

#: --quick: a narrow network, few steps, a small evaluation (flags given explicitly win)
QUICK = {"steps": 20, "channels": (8, 16), "test_limit": 64, "eval_k": 2}
FULL = {"steps": 2000, "channels": None, "test_limit": 1000, "eval_k": 100}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--likelihood", default="gaussian", choices=tuple(presets.LIKELIHOODS))
    parser.add_argument("--scale", type=float, default=None,
                        help="σ of gaussian (L2) or b of laplace (L1); default 0.1")
    parser.add_argument("--beta", type=float, default=1.0, help="KL weight")
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--steps", type=int, default=None, help="default 2000 (20 with --quick)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--channels", type=lambda s: tuple(map(int, s.split(","))), default=None,
                        help="conv widths per level, e.g. 16,32 (default: the preset's)")
    parser.add_argument("--eval-k", type=int, default=None, help="IWAE samples (default 100)")
    parser.add_argument("--test-limit", type=int, default=None, help="first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/blurry", help="folder for the two PNG grids")
    parser.add_argument("--quick", action="store_true", help="smoke run, about 30 s")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        jax.config.update("jax_disable_most_optimizations", True)   # compilation dominates
    config = jaxvae.Config(model="conv", decoder="depth-to-space", channels=args.channels,
                           likelihood=args.likelihood, likelihood_scale=args.scale,
                           objective="elbo", k=1, analytic_kl=True, beta=args.beta,
                           batch_size=args.batch_size, steps=args.steps, seed=args.seed,
                           data=args.data, eval_k=args.eval_k, eval_limit=args.test_limit)
    try:
        results = jaxvae.train_and_evaluate(config, progress=not args.no_progress,
                                            pictures=False)
    except (jaxvae.ConfigError, jaxvae.DataError) as err:
        parser.error(str(err))
    model, params, head = results.model, results.params, results.model.decoder.head
    loaded = jaxvae.data.load(args.data, "test", dtype=run_steps.data_dtype(config))
    x, _ = run_steps.evaluation_images(config, loaded.images[:args.test_limit], args.seed)
    grey = jaxvae.data.load(args.data, "test").images[:args.test_limit]
    key = jax.random.PRNGKey(args.seed + 1)
    samples = head.to_unit(jaxvae.sample_prior(model, params, key, 64))
    recon = head.to_unit(jaxvae.reconstruct(model, params, x))
    os.makedirs(args.out, exist_ok=True)
    plots.save_grid(samples.clip(0, 1), os.path.join(args.out, "samples.png"), ncols=8)
    pairs = [grey[:8], recon[:8].clip(0, 1), grey[8:16], recon[8:16].clip(0, 1)]
    plots.save_grid(jax.numpy.concatenate(pairs), os.path.join(args.out, "reconstructions.png"),
                    ncols=8)
    m = results.metrics
    scale = args.scale if args.scale is not None else presets.DEFAULT_SCALE
    named = args.likelihood + (f" (scale {scale:g})" if args.likelihood in
                               presets.SCALED_LIKELIHOODS else "")
    print(f"{named}, β {args.beta:g}: test ELBO "
          f"{m['test_elbo']:.2f} nats, {m['bits_per_dim']:.3f} bits/dim, recon MSE "
          f"{float(((recon - grey) ** 2).mean()):.4f}, {m['steps']} steps in "
          f"{m['train_seconds']} s")
    print("| images | Laplacian variance | gradient energy | high-frequency fraction |")
    print("| --- | --- | --- | --- |")
    for name, images in (("samples", samples), ("reconstructions", recon), ("test data", grey)):
        s = image_metrics.sharpness(images)
        print(f"| {name} | {s['laplacian_variance']:.4f} | {s['gradient_energy']:.4f} | "
              f"{s['high_frequency_fraction']:.3f} |")
    print(f"wrote {os.path.join(args.out, 'samples.png')} and reconstructions.png")
    return results


if __name__ == "__main__":
    main()
