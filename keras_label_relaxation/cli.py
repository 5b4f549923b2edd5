"""The ``klr`` command line (also ``python -m keras_label_relaxation``)."""

import argparse
import os
import sys

# Keep TensorFlow's start-up chatter off the terminal unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_LOSSES = "ce,ls,cp,fl,lr"
DEFAULT_METRICS = "accuracy,ece,nll,brier"
ALL_METRICS = "accuracy, ece, nll, brier, rms, mce, ace, debiased_ece, classwise_ece, ks, smece"


def _demo(args):
    from keras_label_relaxation import models
    from keras_label_relaxation.datasets import load
    from keras_label_relaxation.experiments import compare

    print(
        f"Training the 2x1024 dense network on scikit-learn's digits ({args.epochs} epochs, "
        f"seed 0) with cross-entropy and label relaxation (alpha={args.alpha})...",
        flush=True,
    )
    results = compare(
        models.simple_dense, load("digits"), losses=("ce", "lr"), grids={"lr": [args.alpha]},
        epochs=args.epochs, temperature_scaling=False, out_dir=args.out, verbose=args.verbose,
        progress=None,
    )  # fmt: skip
    print(results.to_markdown())
    return 0


def _scale_setup(args):
    """Apply --mixed-precision; return a context for --strategy."""
    import contextlib

    import keras

    cluster = {k: getattr(args, k) for k in ("job_addresses", "num_processes", "process_id")}
    if args.strategy != "data-parallel":
        given = [k for k, v in cluster.items() if v is not None]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise ValueError(
                f"Invalid value for option {option}: it configures --strategy data-parallel. "
                f"Received: {option}={cluster[given[0]]} with --strategy={args.strategy}"
            )
    if args.mixed_precision != "off":
        keras.config.set_dtype_policy(f"mixed_{args.mixed_precision}")
    if args.strategy == "default":
        return contextlib.nullcontext()
    if args.strategy == "data-parallel":
        from keras_label_relaxation import distribute

        return distribute.data_parallel(**cluster)
    import tensorflow as tf

    return tf.distribute.MirroredStrategy().scope()


def _augment(args):
    """``--no-augment``: False; otherwise None (the paper's choice per data set)."""
    return False if args.no_augment else None


def _compare(args):
    with _scale_setup(args):
        return _run_compare(args)


def say(line):
    """Print a progress line at once, also when the output is a file or a pipe."""
    print(line, flush=True)


def _run_compare(args):
    from keras_label_relaxation import datasets, distribute, models
    from keras_label_relaxation.experiments import compare

    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    data = datasets.subset(datasets.load(args.dataset, data_dir=args.data_dir), args.limit)
    if args.model not in models.MODEL_NAMES:
        raise ValueError(
            f"Unknown model name: {args.model!r}. Valid names: {', '.join(models.MODEL_NAMES)}"
        )
    noise = f"_noise-{args.label_noise.kind}{args.label_noise.rate:g}" if args.label_noise else ""
    out = args.out or os.path.join(
        "klr-results", f"{data.name}_{args.model}_{args.optimize_for}{noise}"
    )
    out = distribute.out_dir_of_process(out)  # data-parallel process i > 0: out/process-i
    print(
        f"Comparing {', '.join(losses)} on {data.name} ({len(data.y_train)} train, "
        f"{len(data.y_test)} test) with {args.model}: {args.seeds} seed(s), {args.epochs} epochs, "
        f"parameters tuned for {args.optimize_for}"
        + (f", label noise {args.label_noise} on train/validation" if args.label_noise else "")
        + f"; results in {out}",
        flush=True,
    )
    results = compare(
        lambda shape, classes: models.get_model(args.model, shape, classes),
        data,
        losses=losses,
        seeds=args.seeds,
        optimize_for=args.optimize_for,
        epochs=args.epochs,
        batch_size=args.batch_size,
        out_dir=out,
        config={"model": args.model, "limit": args.limit},
        verbose=args.verbose,
        test_fraction=args.test_fraction,
        augment=_augment(args),
        metrics=[name.strip() for name in args.metrics.split(",") if name.strip()],
        lease_seconds=args.lease_seconds,
        label_noise=args.label_noise,
        progress=say,
    )
    if results is not None:  # None: a worker of a distributed run (the chief prints the table)
        print(results.to_markdown())
    return 0


def _reproduce(args):
    from keras_label_relaxation import distribute
    from keras_label_relaxation.experiments.reproduction import reproduce, runs

    out_root = args.out or os.path.join(
        "klr-results", args.table + ("_quick" if args.quick else "")
    )
    with _scale_setup(args):
        out_root = distribute.out_dir_of_process(out_root)
        for dataset, model, optimize_for in runs(args.table):
            block = reproduce(
                args.table, dataset, model, optimize_for,
                out_dir=os.path.join(out_root, f"{dataset}_{model}_{optimize_for}"),
                quick=args.quick, data_dir=args.data_dir, verbose=args.verbose,
                augment=_augment(args), lease_seconds=args.lease_seconds, progress=say,
            )  # fmt: skip
            if block.results is not None:  # None: a worker of a distributed run
                print(block.to_markdown(), flush=True)
    return 0


def _semi_supervised(args):
    from keras_label_relaxation.experiments import semi_supervised

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    print(
        f"Semi-supervised on {args.data}: {', '.join(methods)}; {args.seeds} seed(s), "
        f"{args.steps} steps",
        flush=True,
    )
    results = semi_supervised.run(
        source=args.data, seeds=args.seeds, steps=args.steps,
        labels_per_class=args.labels_per_class, batch_size=args.batch_size,
        unlabelled_ratio=args.unlabelled_ratio, test_size=args.test_size, methods=methods,
        out_dir=args.out, progress=say,
    )  # fmt: skip
    print(semi_supervised.to_markdown(results))
    return 0


def _fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return value


def _label_noise(text):
    from keras_label_relaxation.datasets import LabelNoise

    try:
        return LabelNoise.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _augment_option(parser):
    parser.add_argument(
        "--no-augment", action="store_true",
        help="train CIFAR without the paper's augmentation (random flips, shifts of 0.1), "
        "which is on by default for cifar10 and cifar100",
    )  # fmt: skip


def _scale_options(parser):
    parser.add_argument(
        "--mixed-precision", choices=("off", "float16", "bfloat16"), default="off",
        help="Keras mixed-precision policy for training",
    )  # fmt: skip
    parser.add_argument(
        "--strategy", choices=("default", "mirrored", "data-parallel"), default="default",
        help="distribution of training: the default, TensorFlow's MirroredStrategy (all local "
        "GPUs) or, on the JAX backend, keras.distribution.DataParallel over all devices of one "
        "or several processes (full global batches, the ragged rest of each epoch dropped). "
        "Not MultiWorkerMirroredStrategy: Keras' fit does not run under it "
        "(keras-team/keras#20585)",
    )  # fmt: skip
    cluster = parser.add_argument_group(
        "several processes (--strategy data-parallel)",
        "Passed to keras.distribution.initialize; each falls back to Keras' environment "
        "variable (KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES, "
        "KERAS_DISTRIBUTION_PROCESS_ID). Process 0 writes to --out, process i to --out/process-i.",
    )
    cluster.add_argument(
        "--job-addresses", help="HOST:PORT of process 0, or all processes' comma-separated"
    )
    cluster.add_argument("--num-processes", type=_positive_int, help="number of processes")
    cluster.add_argument("--process-id", type=int, help="this process' index, from 0")


def _distributed_options(parser):
    parser.add_argument(
        "--lease-seconds", type=float, default=60.0,
        help="distributed runs (keras-tuner's KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
        "KERASTUNER_ORACLE_PORT set: a chief and workers): a worker silent this long loses "
        "its unit to another worker",
    )  # fmt: skip


def build_parser():
    parser = argparse.ArgumentParser(
        prog="klr", description="Label relaxation for Keras: the paper's experiments."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="cross-entropy vs label relaxation on the bundled digits data: `klr compare "
        "--losses ce,lr` with one alpha and without CE+TS",
    )
    demo.add_argument("--epochs", type=_positive_int, default=25)
    demo.add_argument("--alpha", type=float, default=0.1)
    demo.add_argument("--out", help="output directory (default: a temporary one)")
    demo.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    demo.set_defaults(run=_demo)

    compare = commands.add_parser(
        "compare",
        help="tune, retrain and evaluate losses with the paper's protocol",
        description="For each seed: resample the data, tune each loss' parameter on a 1/6 "
        "hold-out (final-epoch val_accuracy or val_ece), retrain, evaluate accuracy, ECE, NLL "
        "and Brier score on the test split; add cross-entropy with temperature scaling. "
        "Rerunning with the same --out resumes.",
    )
    compare.add_argument(
        "--dataset", default="digits",
        help="digits, mnist, fashion_mnist, cifar10, cifar100, an .npz file "
        "(x_train, y_train, x_test, y_test) or a directory of IDX files",
    )  # fmt: skip
    compare.add_argument("--model", default="simple_dense")
    compare.add_argument(
        "--losses", default=DEFAULT_LOSSES,
        help="comma-separated: ce,ls,cp,fl,lr (the paper's) and rda,gce,sce (for noisy labels)",
    )  # fmt: skip
    compare.add_argument(
        "--label-noise", type=_label_noise, metavar="KIND:RATE",
        help="corrupt the training and validation labels (never the test labels), drawn from "
        "each seed: symmetric:0.4 (each label replaced with probability 0.4 by a class drawn "
        "from all K) or asymmetric:0.4 (40%% of each source class flipped to a similar class: "
        "mnist/digits 2>7 3>8 5<>6 7>1, cifar10 truck>automobile bird>airplane deer>horse "
        "cat<>dog, cifar100 next class in its block of 5)",
    )  # fmt: skip
    compare.add_argument("--seeds", type=_positive_int, default=1)
    compare.add_argument("--optimize-for", choices=("acc", "ece"), default="acc")
    compare.add_argument("--epochs", type=_positive_int, default=10)
    compare.add_argument("--batch-size", type=_positive_int, default=64)
    compare.add_argument(
        "--limit", type=_positive_int, help="use at most this many training examples"
    )
    compare.add_argument(
        "--test-fraction", type=_fraction,
        help="share of the pooled data each seed tests on (default: the data's own test size; "
        "needed for data without a test split, e.g. an IDX directory of t10k files only)",
    )  # fmt: skip
    compare.add_argument(
        "--metrics", default=DEFAULT_METRICS,
        help=f"comma-separated table columns, from: {ALL_METRICS} (all are kept in results.json)",
    )  # fmt: skip
    compare.add_argument("--data-dir", help="tensorflow-datasets data directory")
    compare.add_argument("--out", help="output directory (default: klr-results/...)")
    compare.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    _augment_option(compare)
    _scale_options(compare)
    _distributed_options(compare)
    compare.set_defaults(run=_compare)

    reproduce = commands.add_parser(
        "reproduce", help="the paper's Table 1 or 2 with its presets, next to its numbers"
    )
    reproduce.add_argument("table", choices=("table1", "table2"))
    reproduce.add_argument(
        "--quick", action="store_true",
        help="1 seed, 5,000 training examples and a few epochs: a laptop-sized smoke run",
    )  # fmt: skip
    reproduce.add_argument("--data-dir", help="tensorflow-datasets data directory")
    reproduce.add_argument("--out", help="output directory (default: klr-results/TABLE)")
    reproduce.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    _augment_option(reproduce)
    _scale_options(reproduce)
    _distributed_options(reproduce)
    reproduce.set_defaults(run=_reproduce)

    semi = commands.add_parser(
        "semi-supervised",
        help="supervised-only vs hard pseudo-labels vs credal self-training with few labels",
        description="Per seed: split the images into test, labelled (--labels-per-class per "
        "class) and unlabelled examples, train a small CNN with each method for the same steps "
        "on the same batches and augmentations, report test accuracy and ECE.",
    )
    semi.add_argument(
        "--data", default="auto",
        help="an IDX directory, 'digits', or 'auto' (../shared/data/mnist-test if present, "
        "else digits)",
    )  # fmt: skip
    semi.add_argument("--methods", default="supervised,hard,credal")
    semi.add_argument("--seeds", type=_positive_int, default=3)
    semi.add_argument("--steps", type=_positive_int, default=1000)
    semi.add_argument("--labels-per-class", type=_positive_int, default=10)
    semi.add_argument("--batch-size", type=_positive_int, default=16)
    semi.add_argument("--unlabelled-ratio", type=_positive_int, default=7)
    semi.add_argument("--test-size", type=_positive_int, help="default: half of the images")
    semi.add_argument("--out", help="output directory for results.json and table.md")
    semi.set_defaults(run=_semi_supervised)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, RuntimeError) as error:
        print(f"klr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
