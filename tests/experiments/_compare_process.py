"""One process of a distributed ``compare`` for tests/experiments/test_distributed_compare.py.

Usage: ``python _compare_process.py OUT_DIR LEASE_SECONDS [fail]``. The role comes from
keras-tuner's environment variables. With ``fail``, every training this process runs raises
(a callback), to check that the chief refuses loudly; the configuration stays the chief's.
"""

import sys

import keras

from keras_label_relaxation import datasets, models
from keras_label_relaxation.experiments import compare


class _Fail(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise RuntimeError("deliberate failure of a unit")


def main(out_dir, lease_seconds, fail=False):
    data = datasets.subset(datasets.load("digits"), 300)
    results = compare(
        lambda shape, classes: models.get_model("simple_dense", shape, classes),
        data,
        losses=("ce", "lr"),
        grids={"lr": [0.05, 0.2]},
        epochs=1,
        out_dir=out_dir,
        callbacks=(lambda: [_Fail()]) if fail else None,
        lease_seconds=lease_seconds,
        progress=lambda line: print(line, flush=True),
    )
    if results is not None:
        print(results.to_markdown(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), fail=sys.argv[3:] == ["fail"])
