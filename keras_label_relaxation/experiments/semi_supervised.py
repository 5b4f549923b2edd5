"""Supervised-only vs hard pseudo-labels vs credal self-training with few labels.

Per seed: the images are shuffled; ``test_size`` of them are the test split; of
the rest, ``labels_per_class`` per class keep their labels and all others are
unlabelled. Each method trains the same small CNN from the same initial weights
for the same number of steps on the same batches (``SemiSupervisedBatches``:
``batch_size`` labelled and ``unlabelled_ratio * batch_size`` unlabelled
examples per step), with the same weak and strong augmentations; only the
unlabelled term differs (``SelfTraining``). Test accuracy and ECE (15 bins)
of the classifier's softmax are reported as mean ± std over seeds.

Differences to CSSL's CIFAR setting (github.com/julilien/CSSL), for CPU-sized
runs on grayscale digits: a 2-conv CNN instead of WRN-28-2; no flip (digits
are not mirror-invariant); strong views from Keras' random translation,
rotation, zoom, contrast and erasing instead of CTAugment + Cutout; thousands
of steps instead of 2**20; Keras' ``CosineDecay`` to 0.2 of the learning rate
instead of ``cos(7 pi t / 16 T)``; no EMA of the weights.
"""

import json
import os
import time

import keras
import numpy as np

from keras_label_relaxation.experiments.evaluation import evaluate_logits
from keras_label_relaxation.experiments.outputs import format_mean_std
from keras_label_relaxation.models import small_cnn
from keras_label_relaxation.semi_supervised import SelfTraining, SemiSupervisedBatches

METHODS = ("supervised", "hard", "credal")
METHOD_LABELS = {
    "supervised": "supervised only",
    "hard": "hard pseudo-labels (FixMatch, tau = 0.95)",
    "credal": "credal self-training (CSSL)",
}
#: Where the project's data lies, relative to the working directory (the MNIST test set):
#: from the repository root, from its parent, and from ``examples/`` (a notebook's kernel).
SHARED_MNIST = (
    "../shared/data/mnist-test",
    "shared/data/mnist-test",
    "../../shared/data/mnist-test",
)


def load_images(source="auto"):
    """``(x, y)``: all images ``(N, H, W, 1)`` float32 in [0, 1] and int64 labels, pooled.

    ``source``: what ``datasets.load`` takes (an IDX directory, ``"digits"``,
    ...), or ``"auto"``: the MNIST test set of ``SHARED_MNIST`` where it
    exists, else scikit-learn's 8x8 digits.
    """
    from keras_label_relaxation.datasets import load

    if source == "auto":
        source = next((path for path in SHARED_MNIST if os.path.isdir(path)), "digits")
    data = load(source)
    return np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])


def split(x, y, seed, labels_per_class=10, test_size=None):
    """``(labelled, unlabelled, test)``: ``(x, y)`` pairs (unlabelled: x only)."""
    order = np.random.default_rng(seed).permutation(len(y))
    test_size = len(y) // 2 if test_size is None else int(test_size)
    test, rest = order[:test_size], order[test_size:]
    labelled = np.concatenate([rest[y[rest] == c][:labels_per_class] for c in np.unique(y)])
    if len(labelled) < labels_per_class * len(np.unique(y)):
        raise ValueError(
            f"Fewer than {labels_per_class} examples of some class outside the test split."
        )
    unlabelled = np.setdiff1d(rest, labelled)
    return (x[labelled], y[labelled]), x[unlabelled], (x[test], y[test])


def augmentations(seed):
    """``(weak, strong)`` for grayscale digits in [0, 1] (see the module docstring)."""
    layers = keras.layers
    shift = dict(height_factor=0.125, width_factor=0.125, fill_mode="constant", fill_value=0.0)
    weak = keras.Sequential([layers.RandomTranslation(**shift, seed=seed)], name="weak")
    strong = keras.Sequential(
        [
            layers.RandomTranslation(**shift, seed=seed + 1),
            layers.RandomRotation(0.08, fill_mode="constant", fill_value=0.0, seed=seed + 2),
            layers.RandomZoom(0.2, fill_mode="constant", fill_value=0.0, seed=seed + 3),
            layers.RandomContrast(0.5, value_range=(0.0, 1.0), seed=seed + 4),
            layers.RandomErasing(
                factor=1.0, scale=(0.1, 0.25), fill_value=0.0, value_range=(0.0, 1.0),
                seed=seed + 5,
            ),
        ],
        name="strong",
    )  # fmt: skip
    return weak, strong


def train_one(method, data, seed, steps, batch_size=16, unlabelled_ratio=7, learning_rate=0.03):
    """Train one method on one seed's split; return its test scores and seconds."""
    (x_l, y_l), x_u, (x_t, y_t) = data
    keras.utils.set_random_seed(seed)  # the same initial weights for every method
    classifier = small_cnn(x_l.shape[1:], int(max(y_l.max(), y_t.max())) + 1)
    weak, strong = augmentations(seed)
    model = SelfTraining(classifier, method=method, weak=weak, strong=strong)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.2)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batches = SemiSupervisedBatches(
        x_l, y_l, x_u, batch_size, unlabelled_ratio, steps_per_epoch=steps, seed=seed
    )
    start = time.perf_counter()
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    scores = evaluate_logits(classifier.predict(x_t, batch_size=512, verbose=0), y_t)
    return {"accuracy": scores["accuracy"], "ece": scores["ece"], "seconds": seconds}


def run(
    source="auto",
    seeds=3,
    steps=1000,
    labels_per_class=10,
    batch_size=16,
    unlabelled_ratio=7,
    test_size=None,
    methods=METHODS,
    out_dir=None,
    progress=print,
):
    """Every method on every seed; returns ``{"config", "records", "summary"}`` (and writes
    ``results.json`` and ``table.md`` to ``out_dir`` if given)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown methods: {unknown}. Valid methods: {', '.join(METHODS)}")
    x, y = load_images(source)
    records = []
    for seed in range(seeds):
        data = split(x, y, seed, labels_per_class, test_size)
        for method in methods:
            record = {"seed": seed, "method": method}
            record.update(train_one(method, data, seed, steps, batch_size, unlabelled_ratio))
            records.append(record)
            if progress:
                progress(
                    f"seed {seed}, {method}: accuracy {record['accuracy']:.4f}, "
                    f"ECE {record['ece']:.4f} ({record['seconds']:.0f} s)"
                )
    (x_l, _), x_u, (x_t, _) = data
    config = {
        "images": list(x.shape), "labelled": len(x_l), "unlabelled": len(x_u), "test": len(x_t),
        "seeds": seeds, "steps": steps, "batch_size": batch_size,
        "unlabelled_ratio": unlabelled_ratio, "labels_per_class": labels_per_class,
    }  # fmt: skip
    summary = {}
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        summary[method] = {
            key: (float(np.mean([r[key] for r in rows])),
                  float(np.std([r[key] for r in rows], ddof=1)) if len(rows) > 1 else None)
            for key in ("accuracy", "ece", "seconds")
        }  # fmt: skip
    results = {"config": config, "records": records, "summary": summary}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(out_dir, "table.md"), "w") as f:
            f.write(to_markdown(results) + "\n")
    return results


def to_markdown(results):
    """The summary as a Markdown table (mean ± std over seeds)."""
    c = results["config"]
    lines = [
        f"{c['labelled']} labelled ({c['labels_per_class']} per class), {c['unlabelled']} "
        f"unlabelled, {c['test']} test images; {c['steps']} steps of {c['batch_size']} + "
        f"{c['unlabelled_ratio'] * c['batch_size']}; {c['seeds']} seed(s)",
        "",
        "| method | test accuracy | test ECE | seconds per run |",
        "| --- | --- | --- | --- |",
    ]
    for method, s in results["summary"].items():
        lines.append(
            f"| {METHOD_LABELS[method]} | {format_mean_std(*s['accuracy'])} | "
            f"{format_mean_std(*s['ece'])} | {s['seconds'][0]:.0f} |"
        )
    return "\n".join(lines)
