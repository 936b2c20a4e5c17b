"""Command line: ``python -m jaxvae train | eval | sample``.

A run directory holds everything a run needs to be evaluated, sampled or resumed:
``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``results.json`` and PNG pictures.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from jaxvae.config import ANNEALING, PROTOCOLS, Config, ConfigError
from jaxvae.estimators import ESTIMATORS
from jaxvae.flows import FLOWS
from jaxvae.losses import OBJECTIVES
from jaxvae.presets import DECODERS, LIKELIHOODS, PRESETS, WEIGHT_NOISE

EPILOG = """\
examples:
  python -m jaxvae train                          # IWAE (k=5) on the embedded MNIST subset, ~1 min
  python -m jaxvae train --objective elbo -k 1 --epochs 50 --out runs/vae
  python -m jaxvae train --data npz:../shared/data/mnist.npz --split train+valid
  python -m jaxvae train --model iwae-2layer --protocol iwae-paper --passes-scale 0.01
  python -m jaxvae train --model conv --decoder depth-to-space --epochs 5
  python -m jaxvae train --model conv --likelihood logistic --data fashion-mnist
  python -m jaxvae train --model cvae --objective elbo -k 1   # p(x|label), Sohn et al.
  python -m jaxvae train --out runs/vae --resume   # continue an interrupted run
  python -m jaxvae eval runs/vae --k 5000          # test log-likelihood (IWAE bound, k=5000)
  python -m jaxvae sample runs/vae --num 100       # a grid of prior samples
"""


UsageError = ConfigError


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected widths like 400 or 200,200, got {text!r}") from None
    return widths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jaxvae", description="Train and evaluate variational autoencoders.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,sample}")

    t = sub.add_parser("train", help="train a VAE/IWAE and write a run directory",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", default="embedded",
                   help="'embedded' (MNIST subset shipped with jaxvae), 'npz:PATH', "
                        "'fashion-mnist' (Debian's dataset-fashion-mnist), 'idx:DIR' or "
                        "'tfds:NAME'")
    t.add_argument("--split", default="train", help="training split: train or train+valid")
    t.add_argument("--eval-split", default="test", help="split for the final bounds")
    t.add_argument("--model", choices=tuple(PRESETS), default="iwae",
                   help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    t.add_argument("--flow", choices=FLOWS, default=None, help="flow type (--model nf; planar)")
    t.add_argument("--num-flows", type=int, default=None, help="flow steps (--model nf; 10)")
    t.add_argument("--latent-dim", type=int, default=None, help="default: the preset's")
    t.add_argument("--hidden", type=_widths, default=None,
                   help="hidden layer widths, e.g. 400 or 200,200 (default: the preset's)")
    t.add_argument("--weight-noise", choices=WEIGHT_NOISE, default=None,
                   help="--model bayesian-mlp: local reparameterization, one weight sample "
                        "per batch, or per example (default local)")
    t.add_argument("--decoder", choices=DECODERS, default=None,
                   help="--model conv: up-sampling by transposed convolution, depth-to-space "
                        "(stride-1 conv to 4C channels, then a 2x2 reshape) or unpooling + "
                        "conv (default depth-to-space)")
    t.add_argument("--channels", type=_widths, default=None,
                   help="--model conv: channels per stride-2 level, e.g. 32,64 (default "
                        "32, 64, 128, 256 for as many levels as the image allows)")
    t.add_argument("--num-classes", type=int, default=None,
                   help="--model cvae: label classes 0..N-1 (default 10)")
    t.add_argument("--max-length", type=int, default=None,
                   help="words per sentence; longer ones are cut (sentence models; 20)")
    t.add_argument("--min-count", type=int, default=None,
                   help="vocabulary: words seen at least this often (sentence models; 3)")
    t.add_argument("--vocab-size", type=int, default=None,
                   help="at most this many words, <pad> <unk> <bos> <eos> included")
    t.add_argument("--embed-dim", type=int, default=None, help="word embedding width (256)")
    t.add_argument("--word-keep", type=float, default=None,
                   help="word dropout: P(the decoder sees a word) in training (1; 0 inputless)")
    t.add_argument("--draw-steps", type=int, default=None,
                   help="--model draw: glimpses T (default 64)")
    t.add_argument("--attention", type=_widths, nargs="?", const=(2, 5), default=None,
                   help="--model draw: attentive read and write; optionally the grid sizes "
                        "READ,WRITE (default 2,5)")
    t.add_argument("--likelihood", choices=tuple(LIKELIHOODS), default="bernoulli",
                   help="p(x|z); bernoulli trains on binarized images, gaussian/laplace/"
                        "learned-gaussian* on dequantized 8-bit images in [0, 1], logistic/"
                        "logistic-mixture (discretized) on the 8-bit integers")
    t.add_argument("--likelihood-scale", type=float, default=None,
                   help="fixed sigma of gaussian / b of laplace (default 0.1)")
    t.add_argument("--objective", choices=OBJECTIVES, default="iwae")
    t.add_argument("--estimator", choices=ESTIMATORS, default=None,
                   help="gradient estimator (default: the plain gradient of --objective)")
    t.add_argument("-k", "--num-samples", type=int, default=5,
                   help="samples per example in the training objective")
    t.add_argument("--beta", type=float, default=1.0, help="KL weight (ELBO only)")
    t.add_argument("--analytic-kl", action="store_true", help="closed-form KL (ELBO only)")
    t.add_argument("--free-bits", type=float, default=None,
                   help="KL floor per latent unit, nats (ELBO only; Kingma et al., 2016)")
    t.add_argument("--annealing", choices=ANNEALING, default="none",
                   help="KL annealing of beta over --annealing-steps (ELBO only)")
    t.add_argument("--annealing-steps", type=int, default=None)
    t.add_argument("--protocol", choices=PROTOCOLS, default="adam",
                   help="adam: constant --lr; cosine: --lr decayed to lr/10; iwae-paper: "
                        "Adam(eps=1e-4) in 8 stages of 3^i passes at 1e-3*10^(-i/7), batch 20 "
                        "(Burda et al.)")
    t.add_argument("--passes-scale", type=float, default=1.0,
                   help="iwae-paper protocol: fraction of the paper's 3280 passes")
    t.add_argument("--epochs", type=int, default=30, help="passes (adam and cosine protocols)")
    t.add_argument("--steps", type=int, default=None, help="exact number of steps")
    t.add_argument("--batch-size", type=int, default=None,
                   help="default 100 (adam) or 20 (iwae-paper)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-k", type=int, default=500, help="k of the final IWAE bound")
    t.add_argument("--eval-limit", type=int, default=None,
                   help="evaluate the first N examples of --eval-split")
    t.add_argument("--out", default=None, help="run directory (default: runs/DATE-TIME)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="one of several processes (hosts): join them first with "
                        "jax.distributed.initialize() (detects SLURM, TPU pods, Open MPI)")

    e = sub.add_parser("eval", help="test log-likelihood of a trained run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("run_dir")
    e.add_argument("--k", type=int, default=5000, help="importance samples per example")
    e.add_argument("--data", default=None, help="default: the run's data set")
    e.add_argument("--split", default="test")
    e.add_argument("--limit", type=int, default=None, help="evaluate the first N examples")
    e.add_argument("--seed", type=int, default=0, help="binarization and sampling seed")
    e.add_argument("--output", default=None,
                   help="result JSON path (default: RUN_DIR/eval-SPLIT-kK.json)")
    e.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="a PNG grid of samples from the prior",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("run_dir")
    s.add_argument("--num", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="default: RUN_DIR/samples-seedS.png")
    return parser


def config_from_args(args) -> Config:
    """The :class:`jaxvae.Config` that ``train``'s flags describe."""
    return Config(
        model=args.model, latent_dim=args.latent_dim, hidden=args.hidden, flow=args.flow,
        num_flows=args.num_flows, weight_noise=args.weight_noise, decoder=args.decoder,
        channels=args.channels, num_classes=args.num_classes, max_length=args.max_length,
        min_count=args.min_count, vocab_size=args.vocab_size, embed_dim=args.embed_dim,
        word_keep=args.word_keep, draw_steps=args.draw_steps, attention=args.attention,
        free_bits=args.free_bits, likelihood=args.likelihood,
        likelihood_scale=args.likelihood_scale, objective=args.objective,
        estimator=args.estimator, k=args.num_samples, beta=args.beta,
        analytic_kl=args.analytic_kl, annealing=args.annealing,
        annealing_steps=args.annealing_steps, protocol=args.protocol, lr=args.lr,
        batch_size=args.batch_size, epochs=args.epochs, steps=args.steps,
        passes_scale=args.passes_scale, seed=args.seed, data=args.data, split=args.split,
        eval_split=args.eval_split, eval_k=args.eval_k, eval_limit=args.eval_limit)


#: Config fields whose command-line flag is not ``--`` + the name with dashes
FLAGS = {"k": "-k"}


def _flag_error(err: ConfigError) -> ConfigError:
    """The same error naming the command-line flag instead of the Config field."""
    if err.field is None:
        return err
    flag = FLAGS.get(err.field, "--" + err.field.replace("_", "-"))
    message = re.sub(rf"\b{re.escape(err.field)}\b", flag, str(err), count=1)
    return ConfigError(message, err.field)


def cmd_train(args) -> dict:
    from jaxvae.experiment import train_and_evaluate

    try:
        config = config_from_args(args).validate()
    except ConfigError as err:
        raise _flag_error(err) from err
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if args.distributed and args.out is None:   # a default name would differ between hosts
        raise UsageError("--distributed needs --out, a run directory every process reaches")
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    if args.distributed:        # before anything touches jax devices
        from jaxvae import distributed

        distributed.initialize()
    results = train_and_evaluate(config, out, resume=args.resume, overwrite=args.overwrite,
                                 progress=not args.no_progress).metrics
    if args.distributed:
        import jax

        if jax.process_index() > 0:     # process 0 reports for all
            return results
    if "test_error" in results:
        print(f"test error {100 * results['test_error']:.2f} % ({results['train_seconds']} s "
              "training)")
    elif "ppl" in results:
        print(f"test NLL {results['nll']:.2f} nats per sentence (k={config.eval_k}), KL "
              f"{results['kl']:.2f}, perplexity {results['ppl']:.1f}, active units "
              f"{results['active_units']}, MI {results['mutual_information']:.2f} nats, on "
              f"{results['num_sentences']} test sentences ({results['train_seconds']} s training)")
    else:
        latent = (f"active units {results['active_units']}" if "active_units" in results
                  else f"KL {sum(results['kl_per_step']):.2f} nats over "
                       f"{len(results['kl_per_step'])} steps")
        print(f"test ELBO {results['test_elbo']:.2f} nats, IWAE (k={config.eval_k}) "
              f"{results[f'test_iwae_k{config.eval_k}']:.2f} nats, {latent}, on "
              f"{results['num_test']} test images ({results['train_seconds']} s training)")
        if config.likelihood != "bernoulli":
            print(f"{results['bits_per_dim']:.4f} bits/dim ({results['test_data']})")
    names = [n + ("/" if os.path.isdir(os.path.join(out, n)) else "")
             for n in sorted(os.listdir(out)) if not n.startswith(".")]
    print(f"wrote {out}/: {' '.join(names)}")
    return results


def _density_only(config: Config, command: str) -> None:
    if PRESETS[config.model].task != "density":
        raise UsageError(f"{command} needs a generative model; {config.model!r} is a "
                         "classifier (its test error is in results.json)")
    if PRESETS[config.model].text:
        raise UsageError(f"{command} works on image models; a sentence model's test metrics "
                         "are in results.json and its decodes in decodes.txt")


def cmd_eval(args) -> dict:
    import jax
    import numpy as np

    from jaxvae import data, evaluate, run_steps, rundir
    from jaxvae.experiment import NonFiniteResultError, restore_run

    if args.k < 1:
        raise UsageError(f"--k must be >= 1, got {args.k}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    output = args.output or os.path.join(args.run_dir, f"eval-{args.split}-k{args.k}.json")
    config, model, params, _ = restore_run(args.run_dir)
    _density_only(config, "eval")
    rundir.check_writable(os.path.dirname(os.path.abspath(output)))   # before the work
    dataset = data.load(args.data or config.data, args.split, dtype=run_steps.data_dtype(config))
    x, statement = run_steps.evaluation_images(config, dataset.images, args.seed)
    x = x[:args.limit]
    condition = None
    if PRESETS[config.model].conditional:       # log p(x|c) at each image's own label
        if dataset.labels is None:
            raise UsageError(f"{config.model!r} is conditional on the label; "
                             f"{dataset.name} has no labels")
        condition = dataset.labels[:args.limit]
    start = time.time()
    key = jax.random.PRNGKey(args.seed)
    ll = evaluate.log_likelihood(model, params, x, key, num_samples=args.k,
                                 progress=not args.no_progress, condition=condition)
    seconds = time.time() - start
    if not np.all(np.isfinite(ll)):
        raise NonFiniteResultError(f"{args.run_dir}: the IWAE bound is not finite for "
                                   f"{int(np.sum(~np.isfinite(ll)))} of {len(ll)} images")
    results = {"split": args.split, "num_examples": int(x.shape[0]), "k": args.k,
               "log_likelihood": float(np.mean(ll)), "nll": float(-np.mean(ll)),
               "stderr": float(np.std(ll) / np.sqrt(len(ll))),
               "seconds": round(seconds, 1), "test_data": statement,
               **run_steps.data_metrics(config, x.shape[1:], float(-np.mean(ll)))}
    if len(model.latent_shape) == 1:            # DRAW's z: [T, D] has no units to count
        results["active_units"], _ = evaluate.active_units(
            model, params, x, key=jax.random.fold_in(key, 2), condition=condition)
    rundir.write_json(output, results)
    print(f"test NLL {results['nll']:.2f} ± {results['stderr']:.2f} nats (IWAE bound, k={args.k}, "
          f"{x.shape[0]} {args.split} images, {seconds:.1f} s), {results['bits_per_dim']:.4f} "
          f"bits/dim" + (f"; active units {results['active_units']}"
                         if "active_units" in results else ""))
    return results


def cmd_sample(args) -> str:
    import jax

    from jaxvae import plots
    from jaxvae.experiment import restore_run

    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}")
    config, model, params, _ = restore_run(args.run_dir)
    _density_only(config, "sample")
    out = args.out or os.path.join(args.run_dir, f"samples-seed{args.seed}.png")
    if PRESETS[config.model].conditional:       # a row per label
        plots.save_conditional_samples(model, params, jax.random.PRNGKey(args.seed), out,
                                       model.condition_dim, per_condition=max(1, args.num //
                                                                               model.condition_dim))
    else:
        plots.save_samples(model, params, jax.random.PRNGKey(args.seed), out, num=args.num)
    print(f"wrote {out}")
    return out


def main(argv=None, *, exiting: bool = False) -> int:
    """Runs one command; returns the exit status (0, 2 for an error, 130 for Ctrl-C).

    ``exiting=True`` (``python -m jaxvae``) means the process ends after this call: after
    an error line, background tracebacks are then silenced (see :func:`_report`).
    """
    from jaxvae.experiment import NonFiniteResultError
    from jaxvae.train import TrainingDivergedError

    args = _parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample}
    try:
        commands[args.command](args)
    except (ValueError, OSError, TrainingDivergedError, NonFiniteResultError) as err:
        # Bad input ends in one readable line; JAXVAE_DEBUG=1 shows the traceback.
        if os.environ.get("JAXVAE_DEBUG"):
            raise
        message = " ".join(str(err).split())
        _report(f"jaxvae {args.command}: error: {message}", exiting)
        return 2
    except KeyboardInterrupt:
        _report("interrupted; the last checkpoint is kept: continue with --resume", exiting)
        return 130
    return 0


def _report(line: str, exiting: bool) -> None:
    """Prints the one error line. Orbax's and tensorstore's background tasks of a failed
    checkpoint operation may still print tracebacks (their event loop is gone); Python's
    ``sys.stderr`` is sent to /dev/null and logging switched off from here on, so they
    cannot bury the line (the command is ending)."""
    import logging

    real = sys.stderr
    if not exiting:
        print(line, file=real, flush=True)
        return
    real.flush()
    sys.stderr = open(os.devnull, "w")
    logging.disable(logging.CRITICAL)   # asyncio reports never-retrieved futures at exit
    print(line, file=real, flush=True)
