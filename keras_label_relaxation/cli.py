"""The ``klr`` command line (also ``python -m keras_label_relaxation``)."""

import argparse
import os
import sys

# Keep TensorFlow's start-up chatter off the terminal unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _demo(args):
    from keras_label_relaxation.experiments.demo import format_results, run_demo

    print(
        f"Training the 2x1024 dense network on scikit-learn's digits ({args.epochs} epochs, "
        f"seed {args.seed}) with cross-entropy and label relaxation (alpha={args.alpha})...",
        flush=True,
    )
    results = run_demo(epochs=args.epochs, alpha=args.alpha, seed=args.seed, verbose=args.verbose)
    print(format_results(results))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="klr", description="Label relaxation for Keras: experiments from the paper."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="cross-entropy vs label relaxation on the bundled digits data"
    )
    demo.add_argument("--epochs", type=int, default=25)
    demo.add_argument("--alpha", type=float, default=0.1)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
