"""A VAE whose posterior is a normalizing flow (Rezende & Mohamed, 2015; Kingma et al., 2016).

The encoder emits a diagonal Gaussian and, for each x, the parameters of K planar (or
radial) flows; or a context vector for K global IAF / NICE steps. Trained with the ELBO
(the flow's log-determinants enter through log q), evaluated with the IWAE bound at
k = 5000 on the test set. K = 0 is the diagonal-Gaussian VAE.

    python examples/flow_vae.py --flow planar --num-flows 10 --data npz:../shared/data/mnist.npz
    python examples/flow_vae.py                  # embedded MNIST subset, planar K=10, ~1 min

``benchmarks/nf_table.py`` runs this for K in {0, 2, 10, 40, 80} and IAF.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

import jaxvae
from jaxvae import data, evaluate, train


def make_model(flow: str, num_flows: int, train_mean, latent_dim: int = 40,
               hidden=(400,), flow_hidden: int = 100):
    """``jaxvae.flow_vae`` with the output bias at the logit of the training mean."""
    return jaxvae.flow_vae(latent_dim=latent_dim, hidden=hidden, flow=flow,
                           num_flows=num_flows, flow_hidden=flow_hidden,
                           output_bias_init=jaxvae.mean_logit_init(train_mean))


def train_and_evaluate(flow: str, num_flows: int, train_x, test_x, *, steps: int,
                       batch_size: int = 100, lr: float = 1e-3, num_samples: int = 1,
                       eval_k: int = 5000, seed: int = 0, latent_dim: int = 40,
                       hidden=(400,), progress: bool = True) -> dict:
    """Trains one flow VAE with the k-sample ELBO and returns a result record.

    Args:
      train_x: ``[N, 28, 28]`` intensities in [0, 1] (dynamically binarized per step).
      test_x: ``[M, 28, 28]`` binary test images.
      steps: optimizer steps (Adam, learning rate ``lr`` decayed by cosine to lr/10).

    Returns:
      a dict with the test NLL (nats, the IWAE bound at ``eval_k``) and its standard error
      over images, the test ELBO, the number of active units, and the timings.
    """
    model = make_model(flow, num_flows, train_x.mean(axis=0), latent_dim, hidden)
    key_init, key_train, key_eval, key_elbo = jax.random.split(jax.random.PRNGKey(seed), 4)
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.1))
    state = train.create_train_state(model.init_params(key_init), tx, key_train)
    step = train.make_train_step(jaxvae.make_loss(model, "elbo", num_samples), tx,
                                 preprocess=data.dynamic_binarization)
    start = time.time()
    state = train.fit(state, step, train_x, batch_size=batch_size, num_epochs=1,
                      num_steps=steps, seed=seed, progress=progress)
    jax.block_until_ready(state.params)
    train_seconds = time.time() - start
    start = time.time()
    ll = evaluate.log_likelihood(model, state.params, test_x, key_eval, eval_k,
                                 progress=progress)
    eval_seconds = time.time() - start
    elbo = evaluate.log_likelihood(model, state.params, test_x, key_elbo, 1, progress=False)
    num_active, _ = evaluate.active_units(model, state.params, test_x, key=jax.random.key(0))
    return {"flow": flow if num_flows else "diagonal", "num_flows": num_flows,
            "nll": float(-np.mean(ll)), "stderr": float(np.std(ll) / np.sqrt(len(ll))),
            "elbo": float(np.mean(elbo)), "active_units": num_active, "steps": steps,
            "passes": round(steps * batch_size / len(train_x), 2),
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", default="planar", choices=jaxvae.flows.FLOWS)
    parser.add_argument("--num-flows", type=int, default=10)
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--test-limit", type=int, default=1000, help="first N test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_flows < 0 or args.steps < 1 or args.eval_k < 1:
        parser.error("--num-flows must be >= 0, --steps and --eval-k >= 1")
    train_x = data.load(args.data, "train").images
    test_x = data.binarize_fixed(data.load(args.data, "test").images, seed=args.seed)
    test_x = test_x[:args.test_limit]
    record = train_and_evaluate(args.flow, args.num_flows, train_x, test_x, steps=args.steps,
                                batch_size=args.batch_size, lr=args.lr, eval_k=args.eval_k,
                                seed=args.seed)
    print(f"{record['flow']} K={record['num_flows']}: test NLL {record['nll']:.2f} "
          f"± {record['stderr']:.2f} nats (IWAE k={args.eval_k}, {len(test_x)} images), "
          f"ELBO {record['elbo']:.2f}, {record['active_units']} active units, "
          f"{record['passes']} passes in {record['train_seconds']} s")


if __name__ == "__main__":
    main()
