"""Command line: ``python -m jaxvae train | eval | sample``.

A run directory holds everything a run needs to be evaluated, sampled or resumed:
``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``results.json`` and PNG pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

EPILOG = """\
examples:
  python -m jaxvae train                          # IWAE (k=5) on the embedded MNIST subset, ~1 min
  python -m jaxvae train --objective elbo -k 1 --epochs 50 --out runs/vae
  python -m jaxvae train --data npz:../shared/data/mnist.npz --split train+valid
  python -m jaxvae train --model iwae-2layer --protocol iwae-paper --passes-scale 0.01
  python -m jaxvae train --out runs/vae --resume   # continue an interrupted run
  python -m jaxvae eval runs/vae --k 5000          # test log-likelihood (IWAE bound, k=5000)
  python -m jaxvae sample runs/vae --num 100       # a grid of prior samples
"""

MODELS = ("iwae", "iwae-2layer", "kingma-welling", "nf")
FLOWS = ("planar", "radial", "nice", "iaf")
PROTOCOLS = ("adam", "iwae-paper")


class UsageError(ValueError):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jaxvae", description="Train and evaluate variational autoencoders.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,sample}")

    t = sub.add_parser("train", help="train a VAE/IWAE and write a run directory",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", default="embedded",
                   help="'embedded' (MNIST subset shipped with jaxvae), 'npz:PATH' or 'tfds:NAME'")
    t.add_argument("--split", default="train", help="training split: train or train+valid")
    t.add_argument("--eval-split", default="test", help="split for the final bounds")
    t.add_argument("--model", choices=MODELS, default="iwae",
                   help="iwae: 784-200-200-50 tanh (Burda et al.); iwae-2layer: two stochastic "
                        "layers (100 and 50 units); kingma-welling: 500 hidden units; nf: "
                        "784-400-40 with --num-flows steps of --flow in q(z|x) (Rezende & "
                        "Mohamed)")
    t.add_argument("--flow", choices=FLOWS, default="planar", help="flow type (--model nf)")
    t.add_argument("--num-flows", type=int, default=10, help="flow steps (--model nf)")
    t.add_argument("--latent-dim", type=int, default=None, help="default: the preset's")
    t.add_argument("--objective", choices=("elbo", "iwae"), default="iwae")
    t.add_argument("-k", "--num-samples", type=int, default=5,
                   help="samples per example in the training objective")
    t.add_argument("--beta", type=float, default=1.0, help="KL weight (ELBO only)")
    t.add_argument("--analytic-kl", action="store_true", help="closed-form KL (ELBO only)")
    t.add_argument("--protocol", choices=PROTOCOLS, default="adam",
                   help="adam: constant --lr for --epochs; iwae-paper: Adam(eps=1e-4) in 8 "
                        "stages of 3^i passes at 1e-3*10^(-i/7), batch 20 (Burda et al.)")
    t.add_argument("--passes-scale", type=float, default=1.0,
                   help="iwae-paper protocol: fraction of the paper's 3280 passes")
    t.add_argument("--epochs", type=int, default=30, help="passes (adam protocol)")
    t.add_argument("--batch-size", type=int, default=None,
                   help="default 100 (adam) or 20 (iwae-paper)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (adam protocol)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-k", type=int, default=500, help="k of the final IWAE bound")
    t.add_argument("--out", default=None, help="run directory (default: runs/DATE-TIME)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="test log-likelihood of a trained run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("run_dir")
    e.add_argument("--k", type=int, default=5000, help="importance samples per example")
    e.add_argument("--data", default=None, help="default: the run's data set")
    e.add_argument("--split", default="test")
    e.add_argument("--limit", type=int, default=None, help="evaluate the first N examples")
    e.add_argument("--seed", type=int, default=0, help="binarization and sampling seed")
    e.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="a PNG grid of samples from the prior",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("run_dir")
    s.add_argument("--num", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="default: RUN_DIR/samples-seedS.png")
    return parser


def build_model(config: dict, data_mean=None):
    """The model a run's ``config`` describes (``data_mean`` sets the output bias)."""
    import jaxvae

    kwargs = {"event_shape": tuple(config["event_shape"])}
    if config.get("latent_dim"):
        kwargs["latent_dim"] = config["latent_dim"]
    if data_mean is not None:
        kwargs["output_bias_init"] = jaxvae.mean_logit_init(data_mean)
    if config["model"] == "iwae":
        return jaxvae.iwae_mlp(**kwargs)
    if config["model"] == "iwae-2layer":
        kwargs.pop("latent_dim", None)
        return jaxvae.iwae_two_layer(**kwargs)
    if config["model"] == "kingma-welling":
        return jaxvae.kingma_welling_mlp(**kwargs)
    if config["model"] == "nf":
        return jaxvae.flow_vae(flow=config["flow"], num_flows=config["num_flows"], **kwargs)
    raise UsageError(f"unknown model {config['model']!r}; expected one of {MODELS}")


def make_optimizer(config: dict):
    """``(tx, num_steps)`` for a run's config; ``num_steps`` None means ``epochs`` passes."""
    import optax

    from jaxvae import schedules

    if config.get("protocol", "adam") == "iwae-paper":
        steps_per_pass = config["num_train"] // config["batch_size"]
        protocol = schedules.iwae_paper_optimizer(steps_per_pass, config["passes_scale"])
        return protocol.tx, protocol.num_steps
    return optax.adam(config["lr"]), None


def _check_train_args(args) -> None:
    if args.num_samples < 1:
        raise UsageError(f"-k must be >= 1, got {args.num_samples}")
    if args.eval_k < 1:
        raise UsageError(f"--eval-k must be >= 1, got {args.eval_k}")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.num_flows < 0:
        raise UsageError(f"--num-flows must be >= 0, got {args.num_flows}")
    if args.model == "nf" and args.num_flows and args.analytic_kl:
        raise UsageError("--analytic-kl needs a Gaussian q(z|x); a flow posterior has no "
                         "closed-form KL")
    if args.objective == "iwae" and (args.beta != 1.0 or args.analytic_kl):
        raise UsageError("--beta and --analytic-kl apply to --objective elbo only")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if not args.passes_scale > 0:
        raise UsageError(f"--passes-scale must be positive, got {args.passes_scale}")
    if args.batch_size is None:
        args.batch_size = 20 if args.protocol == "iwae-paper" else 100


def _prepare_run_dir(args) -> str:
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    has_run = os.path.exists(os.path.join(out, "config.json")) or \
        os.path.isdir(os.path.join(out, "checkpoints"))
    if args.resume and not has_run:
        raise UsageError(f"--resume: {out} holds no run to continue")
    if has_run and not (args.resume or args.overwrite):
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or "
                         "--overwrite to replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    return out


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _restore_params(run_dir: str):
    """(config, model, params) of a run directory."""
    import jax

    from jaxvae import train

    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{run_dir} is not a jaxvae run directory (no config.json)")
    try:
        with open(config_path) as f:
            config = json.load(f)
        model = build_model(config)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UsageError(f"{config_path} is not a valid jaxvae config ({err})") from err
    tx, _ = make_optimizer(config)
    like = train.create_train_state(model.init_params(jax.random.PRNGKey(0)), tx,
                                    jax.random.PRNGKey(0))
    checkpointer = train.Checkpointer(os.path.join(run_dir, "checkpoints"))
    try:
        state = checkpointer.restore(like)
    finally:
        checkpointer.close()
    return config, model, state.params


def _eval_set(data_name: str, split: str, seed: int, limit: int | None = None):
    from jaxvae import data

    images = data.load(data_name, split).images
    if limit is not None:
        images = images[:limit]
    return data.binarize_fixed(images, seed=seed)


def _final_bounds(model, params, x, key, eval_k: int, progress: bool) -> dict:
    import jax
    import numpy as np

    from jaxvae import evaluate

    k1, k2 = jax.random.split(key)
    elbo = evaluate.log_likelihood(model, params, x, k1, num_samples=1, progress=False)
    iwae = evaluate.log_likelihood(model, params, x, k2, num_samples=eval_k, progress=progress)
    active, _ = evaluate.active_units(model, params, x, key=jax.random.fold_in(key, 2))
    return {"test_elbo": float(np.mean(elbo)), f"test_iwae_k{eval_k}": float(np.mean(iwae)),
            "active_units": int(active), "num_test": int(x.shape[0])}


def cmd_train(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxvae
    from jaxvae import data, plots, train

    _check_train_args(args)
    train_set = data.load(args.data, args.split)
    test_x = _eval_set(args.data, args.eval_split, args.seed)
    out = _prepare_run_dir(args)
    x = train_set.images
    config = {k: v for k, v in vars(args).items() if k not in ("command", "no_progress")}
    config.update(out=out, event_shape=list(x.shape[1:]), num_train=int(x.shape[0]))
    model = build_model(config, data_mean=x.mean(axis=0))
    kwargs = {"beta": args.beta, "analytic_kl": args.analytic_kl} \
        if args.objective == "elbo" else {}
    loss_fn = jaxvae.make_loss(model, args.objective, args.num_samples, **kwargs)
    tx, num_steps = make_optimizer(config)
    key_init, key_train, key_eval = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    state = train.create_train_state(model.init_params(key_init), tx, key_train)
    mesh = train.data_mesh() if jax.device_count() > 1 and \
        args.batch_size % jax.device_count() == 0 else None
    step = train.make_train_step(loss_fn, tx, preprocess=data.dynamic_binarization, mesh=mesh)
    valid_x = jnp.asarray(test_x[:1000])
    elbo_fn = jax.jit(jaxvae.make_objective(model, "elbo", 1))
    eval_fn = lambda s: {"eval_elbo": jnp.mean(elbo_fn(s.params, valid_x, key_eval))}
    if not args.resume:
        _write_json(os.path.join(out, "config.json"), config)
    print(f"training {args.model} with {args.objective} (k={args.num_samples}) on "
          f"{train_set.name} [{args.split}, {x.shape[0]} examples]; run directory {out}")
    start = time.time()
    state = train.fit(state, step, x, batch_size=args.batch_size, num_epochs=args.epochs,
                      num_steps=num_steps, seed=args.seed, eval_fn=eval_fn, workdir=out,
                      resume=args.resume,
                      overwrite=args.overwrite, mesh=mesh, progress=not args.no_progress)
    train_seconds = time.time() - start
    results = _final_bounds(model, state.params, test_x, key_eval, args.eval_k,
                            not args.no_progress)
    results.update(train_seconds=round(train_seconds, 1), steps=int(state.step),
                   test_binarization=f"fixed, seed {args.seed}")
    _write_json(os.path.join(out, "results.json"), results)
    pkey = jax.random.PRNGKey(args.seed + 1)
    plots.save_samples(model, state.params, pkey, os.path.join(out, "samples.png"))
    plots.save_reconstructions(model, state.params, test_x[:32],
                               os.path.join(out, "reconstructions.png"),
                               key=jax.random.fold_in(pkey, 1))
    plots.save_interpolation(model, state.params, test_x[0], test_x[1],
                             os.path.join(out, "interpolation.png"),
                             key=jax.random.fold_in(pkey, 2))
    print(f"test ELBO {results['test_elbo']:.2f} nats, IWAE (k={args.eval_k}) "
          f"{results[f'test_iwae_k{args.eval_k}']:.2f} nats, active units "
          f"{results['active_units']}, on {results['num_test']} test images "
          f"({np.round(train_seconds, 1)} s training)")
    print(f"wrote {out}/: config.json metrics.jsonl checkpoints/ results.json samples.png "
          "reconstructions.png interpolation.png")
    return results


def cmd_eval(args) -> dict:
    import jax
    import numpy as np

    from jaxvae import evaluate

    if args.k < 1:
        raise UsageError(f"--k must be >= 1, got {args.k}")
    config, model, params = _restore_params(args.run_dir)
    x = _eval_set(args.data or config["data"], args.split, args.seed, args.limit)
    start = time.time()
    ll = evaluate.log_likelihood(model, params, x, jax.random.PRNGKey(args.seed),
                                 num_samples=args.k, progress=not args.no_progress)
    seconds = time.time() - start
    active, _ = evaluate.active_units(model, params, x,
                                      key=jax.random.fold_in(jax.random.PRNGKey(args.seed), 2))
    results = {"split": args.split, "num_examples": int(x.shape[0]), "k": args.k,
               "log_likelihood": float(np.mean(ll)), "nll": float(-np.mean(ll)),
               "stderr": float(np.std(ll) / np.sqrt(len(ll))), "active_units": int(active),
               "seconds": round(seconds, 1), "binarization": f"fixed, seed {args.seed}"}
    _write_json(os.path.join(args.run_dir, f"eval-{args.split}-k{args.k}.json"), results)
    print(f"test NLL {results['nll']:.2f} ± {results['stderr']:.2f} nats (IWAE bound, k={args.k}, "
          f"{x.shape[0]} {args.split} images, {seconds:.1f} s); active units {active}")
    return results


def cmd_sample(args) -> str:
    import jax

    from jaxvae import plots

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}")
    _, model, params = _restore_params(args.run_dir)
    out = args.out or os.path.join(args.run_dir, f"samples-seed{args.seed}.png")
    plots.save_samples(model, params, jax.random.PRNGKey(args.seed), out, num=args.num)
    print(f"wrote {out}")
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample}
    try:
        commands[args.command](args)
    except (ValueError, OSError) as err:
        # Bad input ends in one readable line; JAXVAE_DEBUG=1 shows the traceback.
        if os.environ.get("JAXVAE_DEBUG"):
            raise
        print(f"jaxvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0
