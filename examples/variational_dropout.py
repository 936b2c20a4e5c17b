"""Variational dropout on MNIST with the three weight-noise estimators.

Trains a classifier of variational-dropout layers (q(w) = N(theta, alpha theta^2), alpha
learned per weight; Kingma, Salimans & Welling 2015) with the SGVB bound (Adam, lr 1e-3),
once per estimator, and reports the test error of the posterior-mean network and the
time per step:

* ``local``: local reparameterization (noise on the pre-activations, per example);
* ``shared``: one weight sample per minibatch;
* ``separate``: one weight sample per example (slow: batch x weights random numbers per
  step; opt in with --estimators local,shared,separate).

Each estimator is one ``jaxvae.Config`` (preset ``bayesian-mlp``, ``weight_noise`` =
the estimator) and one ``jaxvae.train_and_evaluate`` call. "s / step" is the run's
``train_seconds / steps``: the whole training time, compilation included, so short runs
overstate it (``train_seconds`` is rounded to 0.1 s).

    python examples/variational_dropout.py --data npz:../shared/data/mnist.npz --epochs 3
    python examples/variational_dropout.py              # embedded 10k subset, 1 epoch
    python examples/variational_dropout.py --quick      # smoke run: 64 hidden units, 20 steps
"""

from __future__ import annotations

import argparse

import jaxvae
from jaxvae import data


def make_config(args, estimator: str, steps: int) -> jaxvae.Config:
    """The :class:`jaxvae.Config` of one estimator's run (not yet validated)."""
    return jaxvae.Config(model="bayesian-mlp", hidden=args.hidden, weight_noise=estimator,
                         objective="elbo", k=1, protocol="adam", lr=1e-3,
                         batch_size=args.batch_size, steps=steps, seed=args.seed,
                         data=args.data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--epochs", type=float, default=None,
                        help="passes over the training data (default 1; 0.2 with --quick)")
    parser.add_argument("--hidden", default=None, help="default 1024,1024 (64 with --quick)")
    parser.add_argument("--estimators", default="local,shared")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one hidden layer of 64 units, 0.2 epochs")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 0.2 if args.quick else 1.0
    try:
        args.hidden = tuple(int(h) for h in (args.hidden or
                                             ("64" if args.quick else "1024,1024")).split(","))
    except ValueError:
        parser.error(f"--hidden must be comma-separated widths, got {args.hidden!r}")
    try:
        num_train = len(data.load(args.data, "train").images)
    except data.DataError as err:
        parser.error(str(err))
    steps = int(args.epochs * num_train // args.batch_size)
    if steps < 1:
        parser.error(f"--epochs {args.epochs} is less than one step of --batch-size "
                     f"{args.batch_size} on {num_train} examples")
    print("| estimator | test error | s / step | steps |\n| --- | --- | --- | --- |")
    results = []
    for estimator in args.estimators.split(","):
        try:
            run = jaxvae.train_and_evaluate(make_config(args, estimator, steps),
                                            progress=not args.no_progress, pictures=False)
        except (jaxvae.ConfigError, data.DataError) as err:
            parser.error(str(err))
        m = run.metrics
        print(f"| {estimator} | {100 * m['test_error']:.2f} % | "
              f"{m['train_seconds'] / m['steps']:.4f} | {m['steps']} |", flush=True)
        results.append(run)
    return results


if __name__ == "__main__":
    main()
