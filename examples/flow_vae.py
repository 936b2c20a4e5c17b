"""A VAE whose posterior is a normalizing flow (Rezende & Mohamed, 2015; Kingma et al., 2016).

The encoder emits a diagonal Gaussian and, for each x, the parameters of K planar (or
radial) flows; or a context vector for K global IAF / NICE steps. Trained with the ELBO
(the flow's log-determinants enter through log q; Adam with a cosine decay to lr/10),
evaluated with the IWAE bound at k = 5000 on the first 1000 test images. K = 0 is the
diagonal-Gaussian VAE. One ``jaxvae.Config`` (preset ``nf``) and one
``jaxvae.train_and_evaluate`` call.

    python examples/flow_vae.py --flow planar --num-flows 10 --data npz:../shared/data/mnist.npz
    python examples/flow_vae.py                  # embedded MNIST subset, planar K=10, ~1 min
    python examples/flow_vae.py --quick          # smoke run: tiny model, 20 steps (~30 s,
                                                 # nearly all of it compilation)

``benchmarks/nf_table.py`` tabulates the test NLL for K in {0, 2, 10, 40, 80} and IAF.
"""

from __future__ import annotations

import argparse

import jaxvae

#: --quick: small widths, few steps and a small evaluation (flags given explicitly win)
QUICK = {"steps": 20, "eval_k": 10, "test_limit": 100, "latent_dim": 8, "hidden": (32,),
         "num_flows": 2}
FULL = {"steps": 1000, "eval_k": 5000, "test_limit": 1000, "latent_dim": None,
        "hidden": None, "num_flows": 10}


def make_config(args) -> jaxvae.Config:
    """The :class:`jaxvae.Config` of the parsed flags (not yet validated)."""
    return jaxvae.Config(model="nf", flow=args.flow, num_flows=args.num_flows,
                         latent_dim=args.latent_dim, hidden=args.hidden, objective="elbo",
                         k=1, protocol="cosine", lr=args.lr, batch_size=args.batch_size,
                         steps=args.steps, seed=args.seed, data=args.data,
                         eval_k=args.eval_k, eval_limit=args.test_limit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", default="planar", choices=jaxvae.flows.FLOWS)
    parser.add_argument("--num-flows", type=int, default=None, help="default 10 (2 with --quick)")
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--steps", type=int, default=None, help="default 1000 (20 with --quick)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-k", type=int, default=None, help="default 5000 (10 with --quick)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="first N test images (default 1000; 100 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 latents, 32 hidden units, K=2, 20 steps, "
                             "IWAE k=10 on 100 test images")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    config = make_config(args)
    try:
        results = jaxvae.train_and_evaluate(config, progress=not args.no_progress,
                                            pictures=False)
    except (jaxvae.ConfigError, jaxvae.DataError) as err:
        parser.error(str(err))
    m = results.metrics
    flow = args.flow if args.num_flows else "diagonal"
    print(f"{flow} K={args.num_flows}: test NLL {m['nll']:.2f} ± {m['nll_stderr']:.2f} nats "
          f"(IWAE k={m['eval_k']}, {m['num_test']} images), ELBO {m['test_elbo']:.2f}, "
          f"{m['active_units']} active units, {m['passes']} passes in {m['train_seconds']} s")
    return results


if __name__ == "__main__":
    main()
