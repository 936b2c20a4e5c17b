"""Variational dropout on MNIST with the three weight-noise estimators.

Trains a classifier of variational-dropout layers (q(w) = N(theta, alpha theta^2), alpha
learned per weight; Kingma, Salimans & Welling 2015) with the SGVB bound, once per
estimator, and reports the test error of the posterior-mean network and the time per
step:

* ``local``: local reparameterization (noise on the pre-activations, per example);
* ``shared``: one weight sample per minibatch;
* ``separate``: one weight sample per example (slow: batch x weights random numbers per
  step; opt in with --estimators local,shared,separate).

    python examples/variational_dropout.py --data npz:../shared/data/mnist.npz --epochs 3
    python examples/variational_dropout.py              # embedded 10k subset, 1 epoch
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import jaxvae
from jaxvae import data
from jaxvae.models import bayesian


def train_classifier(model, x, y, *, steps: int, batch_size: int = 100, lr: float = 1e-3,
                     seed: int = 0, params=None, progress: bool = True):
    """Adam on the SGVB bound of ``model`` (a :class:`BayesianMLP`) with the library's train
    step, over shuffled ``(x, y)`` minibatches; returns (params, seconds per steady-state
    step). ``params`` continues from earlier training."""
    loss = bayesian.classification_loss(model, len(x))
    tx = optax.adam(lr)
    key_init, key_train = jax.random.split(jax.random.PRNGKey(seed))
    if params is None:
        params = model.init({"params": key_init, "noise": key_init}, jnp.zeros((1, *x.shape[1:])))
    state = jaxvae.create_train_state(params, tx, key_train)
    step = jaxvae.make_train_step(loss, tx)
    epochs = itertools.chain.from_iterable(
        data.batches((x, y), batch_size, seed=seed, epoch=e) for e in itertools.count())
    bar = tqdm(total=steps, disable=not progress, desc=f"train ({model.estimator})")
    start = None
    for t, batch in enumerate(itertools.islice(epochs, steps)):
        state, metrics = step(state, batch)
        if t == 0:
            jax.block_until_ready(state)
            start = time.perf_counter()       # time steady-state steps only
        if t % 50 == 0:
            bar.set_postfix(loss=f"{float(metrics['loss']):.3f}",
                            acc=f"{float(metrics['accuracy']):.3f}")
        bar.update(1)
    bar.close()
    jax.block_until_ready(state)
    seconds = (time.perf_counter() - start) / (steps - 1) if steps > 1 else float("nan")
    return state.params, seconds


def test_error(model, params, x, y, batch_size: int = 1000) -> float:
    """Error rate of the posterior-mean network (weights = theta, no noise)."""
    mean_model = model.clone(estimator="mean")
    predict = jax.jit(lambda p, xb: jnp.argmax(mean_model.apply(p, xb), -1))
    wrong = 0
    for start in range(0, len(x), batch_size):
        wrong += int(np.sum(np.asarray(predict(params, x[start:start + batch_size]))
                            != y[start:start + batch_size]))
    return wrong / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--hidden", default="1024,1024")
    parser.add_argument("--estimators", default="local,shared")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    train = data.load(args.data, "train")
    test = data.load(args.data, "test")
    if train.labels is None:
        parser.error(f"{args.data} has no labels")
    hidden = tuple(int(h) for h in args.hidden.split(","))
    steps = int(args.epochs * len(train.images) // args.batch_size)
    print("| estimator | test error | s / step | steps |\n| --- | --- | --- | --- |")
    for estimator in args.estimators.split(","):
        model = bayesian.BayesianMLP(hidden=hidden, layer="dropout", estimator=estimator)
        params, seconds = train_classifier(model, train.images, train.labels, steps=steps,
                                           batch_size=args.batch_size, seed=args.seed,
                                           progress=not args.no_progress)
        err = test_error(model, params, test.images, test.labels)
        print(f"| {estimator} | {100 * err:.2f} % | {seconds:.4f} | {steps} |", flush=True)


if __name__ == "__main__":
    main()
