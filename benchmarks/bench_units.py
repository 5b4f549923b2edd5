"""Expected wall time of every unit of the paper's Table 2, from measured step times.

A distributed ``klr reproduce table2`` hands out units (``experiments.workers``): a search
trial (one loss, one grid value), a retraining (the best value on the whole training split)
and a CE+TS fit, per seed. Their wall time is training steps times the step time, plus the
predictions they evaluate. This script measures, for each Table 2 model (``vgg16``,
``resnet56_v2``, ``densenet_bc_100_12``; 10 and 100 classes), the median time of one compiled
training step at the paper's batch of 64 (label relaxation, the paper's SGD) and of predicting
one batch of 64, on synthetic CIFAR-shaped images (times do not depend on pixel values), and
computes each unit's expected wall time with the protocol's sizes (CIFAR: 60,000 images pooled,
10,000 tested, the search fits 5/6 of the other 50,000 and scores the rest every epoch, CE+TS
fits 85% and calibrates on 15%) and the paper's epochs (200 for CIFAR-10, 300 for CIFAR-100).

Usage: python benchmarks/bench_units.py [--steps 5] [--repeats 3] [--json out.json]
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_label_relaxation as klr  # noqa: E402
from keras_label_relaxation.datasets.protocol import (  # noqa: E402
    CALIBRATION_FRACTION,
    HOLDOUT_FRACTION,
)
from keras_label_relaxation.experiments import paper  # noqa: E402
from keras_label_relaxation.tuning import PAPER_GRIDS  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from bench_throughput import _device, _versions  # noqa: E402

BATCH = 64
TRAIN, TEST = 50_000, 10_000  # CIFAR per seed (pooled and resampled, same sizes)
LOSSES = 5  # CE, LS, CP, FL, LR


def _median_seconds(function, steps, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            function()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def measure(model_name, classes, steps, repeats):
    """``(train step, predict batch)`` seconds of ``model_name`` at batch 64."""
    keras.utils.set_random_seed(0)
    model = klr.models.get_model(model_name, (32, 32, 3), classes)
    model.compile(
        optimizer=paper.paper_sgd(0.1),
        loss=klr.SparseLabelRelaxation(alpha=0.1, from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 32, 32, 3)).astype("float32")
    y = rng.integers(0, classes, BATCH)
    for _ in range(2):  # compile and settle
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    train = _median_seconds(lambda: model.train_on_batch(x, y), steps, repeats)
    predict = _median_seconds(lambda: model.predict_on_batch(x), steps, repeats)
    return train, predict


def unit_seconds(train_step, predict_batch, epochs):
    """Expected seconds of a search trial, a retraining and a CE+TS fit."""
    steps = lambda n: math.ceil(n / BATCH)  # noqa: E731
    validation = round(TRAIN * HOLDOUT_FRACTION)
    calibration = round(TRAIN * CALIBRATION_FRACTION)
    search = epochs * (steps(TRAIN - validation) * train_step + steps(validation) * predict_batch)
    retrain = epochs * steps(TRAIN) * train_step + steps(TEST) * predict_batch
    ts = epochs * steps(TRAIN - calibration) * train_step
    ts += (steps(calibration) + steps(TEST)) * predict_batch
    return {"search trial": search, "retraining": retrain, "CE+TS": ts}


def run(steps, repeats):
    rows = []
    seeds = paper.PRESETS["table2"]["seeds"]
    trials = sum(len(grid) for grid in PAPER_GRIDS.values())
    for model_name in ("vgg16", "resnet56_v2", "densenet_bc_100_12"):
        for dataset, classes in (("cifar10", 10), ("cifar100", 100)):
            train_step, predict_batch = measure(model_name, classes, steps, repeats)
            epochs = paper.schedule(model_name, dataset)[0]
            units = unit_seconds(train_step, predict_batch, epochs)
            # Per block (one model, data set, scheme): every seed searches every grid value,
            # retrains every loss and fits CE+TS.
            block = seeds * (
                trials * units["search trial"] + LOSSES * units["retraining"] + units["CE+TS"]
            )
            rows.append(
                {
                    "model": model_name,
                    "dataset": dataset,
                    "epochs": epochs,
                    "train_step_ms": 1000 * train_step,
                    "predict_batch_ms": 1000 * predict_batch,
                    "unit_hours": {k: v / 3600 for k, v in units.items()},
                    "units_per_block": seeds * (trials + LOSSES + 1),
                    "block_hours": block / 3600,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    total = 2 * sum(r["block_hours"] for r in rows)  # both schemes
    return {"device": _device(), "versions": _versions(), "rows": rows, "total_hours": total}


def to_markdown(result):
    lines = [
        f"Device: {result['device']}; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "",
        "| model | data | epochs | step (ms) | predict (ms/64) | search trial (h) | "
        "retraining (h) | CE+TS (h) | units/block | block (h) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        u = r["unit_hours"]
        lines.append(
            f"| {r['model']} | {r['dataset']} | {r['epochs']} | {r['train_step_ms']:.0f} | "
            f"{r['predict_batch_ms']:.0f} | {u['search trial']:.1f} | {u['retraining']:.1f} | "
            f"{u['CE+TS']:.1f} | {r['units_per_block']} | {r['block_hours']:.0f} |"
        )
    lines.append("")
    lines.append(
        f"Table 2 (12 blocks: 3 models x 2 data sets x 2 schemes): "
        f"{result['total_hours']:.0f} hours of units on one such device."
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.steps, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(to_markdown(result))


if __name__ == "__main__":
    main()
