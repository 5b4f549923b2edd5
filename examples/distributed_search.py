"""The paper's alpha search, distributed with keras-tuner: one chief and any number of workers.

Every process runs this script with the same ``--directory``. keras-tuner reads each
process's role from ``KERASTUNER_TUNER_ID`` (``chief``, then ``tuner0``, ``tuner1``, ...)
and the chief's address from ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. The
chief hands out the grid values (each to exactly one worker) and prints the result once the
grid is done; each worker prints the scores of the trials it ran. Without those variables
the script runs the whole search in one process.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_label_relaxation as klr  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default="klr-search", help="shared by all processes")
    parser.add_argument("--optimize-for", choices=("acc", "ece"), default="ece")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    data = klr.datasets.load("digits")
    hypermodel = klr.tuning.LossHyperModel(
        lambda: klr.models.simple_dense(data.input_shape, data.num_classes),
        "label_relaxation",
        sparse=True,
        from_logits=True,
    )
    best, scores = klr.tuning.search(
        hypermodel,
        data.x_train,
        data.y_train,
        args.optimize_for,
        epochs=args.epochs,
        directory=args.directory,
        project_name="alpha",
    )
    role = os.environ.get("KERASTUNER_TUNER_ID", "chief")
    shown = ", ".join(f"{alpha:g}: {score:.4f}" for alpha, score in scores.items())
    print(f"{role}: best alpha {best}; {args.optimize_for} per alpha {{{shown}}}", flush=True)


if __name__ == "__main__":
    main()
