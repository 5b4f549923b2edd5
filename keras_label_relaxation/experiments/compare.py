"""The paper's comparison protocol as one function: tune, retrain, evaluate, per seed and loss.

For each seed the data are resampled (train and test pooled and split again);
for each loss its parameter is grid-searched on a hold-out of 1/6 of the
training data (scored by the final epoch's validation accuracy or ECE), the
best value is retrained on the full training data and evaluated on the test
split (accuracy, ECE with 15 bins, NLL, Brier score). "CE+TS" is
cross-entropy trained on 85% of the training data with a temperature fitted on
the other 15% over the paper's grid. Every model's inputs are centred on the
per-pixel mean of the data it is fitted on (the authors' code); CIFAR models
train with the paper's augmentation (random horizontal flips, shifts of 0.1).
Every finished (seed, loss) unit is appended to ``out_dir/trials.jsonl`` at
once and every search trial lives in ``out_dir/tuner``, so an interrupted run
resumes where it stopped.
"""

import hashlib
import inspect
import math
import os
import tempfile
import time

import keras
import keras_tuner
import numpy as np

from keras_label_relaxation import distribute
from keras_label_relaxation.calibration import TemperatureScaling
from keras_label_relaxation.datasets.pipeline import AUGMENTED_DATASETS, augmentation
from keras_label_relaxation.datasets.protocol import (
    CALIBRATION_FRACTION,
    HOLDOUT_FRACTION,
    ClassificationData,
    from_arrays,
    resample,
    split_holdout,
    subtract_pixel_mean,
)
from keras_label_relaxation.experiments.evaluation import (
    METRICS,
    TABLE_METRICS,
    evaluate_logits,
    top_label_outcomes,
)
from keras_label_relaxation.experiments.outputs import ComparisonResults, write_outputs
from keras_label_relaxation.experiments.paper import paper_sgd
from keras_label_relaxation.experiments.ranks import average_ranks
from keras_label_relaxation.experiments.store import RunStore
from keras_label_relaxation.experiments.uncertainty import bootstrap_intervals
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS, canonical_loss_name
from keras_label_relaxation.tuning import (
    LossHyperModel,
    get_objective,
    replica_batch_size,
    search,
)

#: The paper's abbreviations.
LOSS_LABELS = {
    "cross_entropy": "CE",
    "label_smoothing": "LS",
    "confidence_penalty": "CP",
    "focal": "FL",
    "label_relaxation": "LR",
}
#: Label of cross-entropy with temperature scaling.
TS_LABEL = "CE+TS"
DEFAULT_LOSSES = tuple(LOSS_LABELS)


def _as_data(data):
    if isinstance(data, ClassificationData):
        return data
    if isinstance(data, dict):
        data = tuple(data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return from_arrays("data", *data)


def _model_factory(build_model, data, augment, seed):
    """Fresh models of ``build_model``, behind the paper's augmentation if ``augment``.

    The augmentation layers act in training only (``fit``), so the search, the
    retraining and the CE+TS model train on augmented images and are
    evaluated on the images as they are.
    """
    takes_shape = len(inspect.signature(build_model).parameters) >= 2

    def build():
        model = build_model(data.input_shape, data.num_classes) if takes_shape else build_model()
        if not augment:
            return model
        inputs = keras.Input(data.input_shape)
        outputs = model(augmentation(seed)(inputs))
        return keras.Model(inputs, outputs, name=f"augmented_{model.name}")

    return build


def compare(
    build_model,
    data,
    losses=DEFAULT_LOSSES,
    seeds=1,
    optimize_for="acc",
    epochs=10,
    batch_size=64,
    optimizer=paper_sgd,
    grids=None,
    temperature_scaling=True,
    callbacks=None,
    out_dir=None,
    config=None,
    verbose=0,
    progress=print,
    test_fraction=None,
    augment=None,
    metrics=TABLE_METRICS,
):
    """Run the paper's protocol for several losses and seeds; return the results table.

    Args:
        build_model: Callable returning a fresh, uncompiled model that outputs
            logits; either without arguments or as ``build_model(input_shape,
            num_classes)``.
        data: A ``ClassificationData`` (not standardised), a tuple ``(x_train,
            y_train, x_test, y_test)`` or a dict with those keys; labels are
            integer class ids, images already scaled as wanted. Each model's
            inputs are centred on the per-pixel mean of its own fit data.
        losses: Loss names or aliases (``ce``, ``ls``, ``cp``, ``fl``, ``lr``).
        seeds: Number of seeds (0, 1, ..., seeds - 1), each its own resampling.
        optimize_for: ``"acc"`` (``val_accuracy``) or ``"ece"`` (``val_ece``).
        epochs, batch_size: Training of every model (search and retraining).
        optimizer: Callable returning a fresh optimizer (default: the paper's
            SGD with Nesterov momentum, learning rate 0.05).
        grids: ``{loss name: values}`` replacing the paper's grids.
        temperature_scaling: Add the "CE+TS" row.
        callbacks: Callable returning a list of Keras callbacks for every
            ``fit`` (e.g. a learning-rate schedule).
        out_dir: Directory for the state and the outputs (``results.json``,
            ``results.csv``, ``table.md``, ``reliability_<loss>.png``); rerunning
            with the same directory resumes. ``None``: a temporary directory.
        config: Extra description of the run stored with the results; a rerun
            into the same ``out_dir`` must match it.
        verbose: Keras' ``fit`` verbosity.
        progress: Callable receiving progress lines (``None`` to silence).
        test_fraction: Share of the pooled data each seed tests on; ``None``
            keeps the size of ``data``'s test split (which must then exist).
        augment: Train with the paper's augmentation (``datasets.augmentation``:
            random horizontal flips, width/height shifts of 0.1). ``None``: as
            the paper, on for the data sets in ``datasets.AUGMENTED_DATASETS``
            (CIFAR-10/100), off otherwise. Recorded in ``config.json`` and
            the table's header.
        metrics: The table's score columns, from ``experiments.METRICS``
            (default: accuracy, ECE, NLL, Brier). Every score is computed and
            kept in ``results.json`` either way; accuracy and ECE carry 95%
            bootstrap intervals and marks for losses that differ from LR.

    Returns:
        A ``ComparisonResults``.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(
            "Invalid value for argument `seeds`. Expected an integer >= 1. "
            f"Received: seeds={seeds!r}"
        )
    if augment not in (None, True, False):
        raise ValueError(
            "Invalid value for argument `augment`. Expected None, True or False. "
            f"Received: augment={augment!r}"
        )
    get_objective(optimize_for)  # checks the value
    metrics = _check_metrics(metrics)
    names = [canonical_loss_name(loss) for loss in losses]
    if not names:
        raise ValueError("Invalid value for argument `losses`: no loss to compare.")
    grids = {canonical_loss_name(k): [float(v) for v in vs] for k, vs in (grids or {}).items()}
    data = _as_data(data)
    augment = data.name in AUGMENTED_DATASETS if augment is None else augment
    callbacks = callbacks or list
    progress = progress or (lambda line: None)
    run_config = {
        **(config or {}),
        "dataset": data.name,
        "losses": names,
        "seeds": seeds,
        "optimize_for": optimize_for,
        "epochs": epochs,
        "batch_size": batch_size,
        "grids": {k: v for k, v in sorted(grids.items())},
        "temperature_scaling": bool(temperature_scaling),
        "augment": augment,
        "data_fingerprint": _fingerprint(data),
    }
    if test_fraction is not None:
        run_config["test_fraction"] = float(test_fraction)
    elif len(data.y_test) == 0:
        raise ValueError(
            f"Data set {data.name!r} has no test split: pass `test_fraction` (the share of the "
            "data each seed tests on; `klr compare --test-fraction`)."
        )
    out_dir = out_dir or tempfile.mkdtemp(prefix="klr-compare-")
    store = RunStore(out_dir, run_config)
    units = [(seed, name) for seed in range(seeds) for name in names]
    if temperature_scaling:
        units += [(seed, TS_LABEL) for seed in range(seeds)]
    units.sort(key=lambda u: u[0])
    started, finished_here = time.monotonic(), 0
    for index, (seed, name) in enumerate(units, start=1):
        label = name if name == TS_LABEL else LOSS_LABELS[name]
        if (seed, label) in store.done:
            progress(f"[{index}/{len(units)}] seed {seed}, {label}: done before, reused")
            continue
        remaining = len(units) - index + 1
        eta = ""
        if finished_here:
            eta = f", ETA {_duration((time.monotonic() - started) / finished_here * remaining)}"
        progress(f"[{index}/{len(units)}] seed {seed}, {label}: running{eta}")
        seed_data = resample(data, seed, test_fraction)
        model_factory = _model_factory(build_model, seed_data, augment, seed)
        unit_start = time.monotonic()
        if name == TS_LABEL:
            record = _run_temperature_scaling(
                model_factory, seed_data, seed, epochs, batch_size, optimizer, callbacks, verbose
            )
        else:
            record = _run_loss(
                model_factory, seed_data, name, grids.get(name), seed, optimize_for, epochs,
                batch_size, optimizer, callbacks, verbose, os.path.join(out_dir, "tuner"),
            )  # fmt: skip
        record.update(seed=seed, loss=label, seconds=time.monotonic() - unit_start)
        store.save_outcomes(seed, label, *record.pop("outcomes"))
        store.add(record)
        finished_here += 1
        progress(
            f"[{index}/{len(units)}] seed {seed}, {label}: accuracy {record['accuracy']:.4f}, "
            f"ECE {record['ece']:.4f}"
        )
    outcomes = {}
    for s, n in units:
        outcomes.setdefault(_label(n), {})[s] = store.outcomes(s, _label(n))
    if any(o is None for per_seed in outcomes.values() for o in per_seed.values()):
        outcomes = None  # a unit from a run before outcomes were kept: no intervals, no figure
    results = _summarise(
        data.name, optimize_for, [store.done[(s, _label(n))] for s, n in units], augment, outcomes
    )
    results.metrics = metrics
    write_outputs(out_dir, results, outcomes)
    return results


def _check_metrics(metrics):
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"Invalid value for argument `metrics`. Expected names from {tuple(METRICS)}. "
            f"Received: metrics={metrics!r}"
        )
    return metrics


def _label(name):
    return name if name == TS_LABEL else LOSS_LABELS[name]


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _fingerprint(data):
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _fit(loss_hypermodel, param, x, y, epochs, batch_size, seed, callbacks, verbose):
    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    if loss_hypermodel.param_name is not None:
        hp.Choice(loss_hypermodel.param_name, list(loss_hypermodel.grid))
        hp.values[loss_hypermodel.param_name] = param
    model = loss_hypermodel.build(hp)
    batch_size = replica_batch_size(batch_size, len(y))
    distribute.fit(
        model, x, y, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks()
    )
    return model


def _run_loss(
    model_factory, data, name, grid, seed, optimize_for, epochs, batch_size, optimizer,
    callbacks, verbose, tuner_dir,
):  # fmt: skip
    hypermodel = LossHyperModel(
        model_factory, name, grid=grid, optimizer=optimizer, sparse=True, from_logits=True
    )
    # The search's models fit on 5/6 of the training data: centre on that part's mean.
    (x_fit, y_fit), (x_val, y_val) = split_holdout(
        data.x_train, data.y_train, HOLDOUT_FRACTION, seed
    )
    _, x_fit, x_val = subtract_pixel_mean(x_fit, x_val)
    param, scores = search(
        hypermodel, x_fit, y_fit, optimize_for=optimize_for, epochs=epochs,
        batch_size=batch_size, seed=seed, directory=tuner_dir, project_name=f"seed{seed}_{name}",
        callbacks=callbacks(), verbose=verbose, validation_data=(x_val, y_val),
    )  # fmt: skip
    _, x_train, x_test = subtract_pixel_mean(data.x_train, data.x_test)
    model = _fit(hypermodel, param, x_train, data.y_train, epochs, batch_size, seed, callbacks,
                 verbose)  # fmt: skip
    logits = distribute.predict(model, x_test)
    record = evaluate_logits(logits, data.y_test)
    record.update(
        outcomes=top_label_outcomes(logits, data.y_test),
        param_name=LOSS_PARAMETERS[name],
        param=param,
        search_scores={f"{k:g}": v if math.isfinite(v) else None for k, v in scores.items()},
        diverged=[f"{k:g}" for k, v in scores.items() if not math.isfinite(v)],
    )
    return record


def _run_temperature_scaling(
    model_factory, data, seed, epochs, batch_size, optimizer, callbacks, verbose
):
    (x_fit, y_fit), (x_cal, y_cal) = split_holdout(
        data.x_train, data.y_train, CALIBRATION_FRACTION, seed
    )
    _, x_fit, x_cal, x_test = subtract_pixel_mean(x_fit, x_cal, data.x_test)
    hypermodel = LossHyperModel(
        model_factory, "cross_entropy", optimizer=optimizer, sparse=True, from_logits=True
    )
    model = _fit(hypermodel, None, x_fit, y_fit, epochs, batch_size, seed,
                 callbacks, verbose)  # fmt: skip
    scaling = TemperatureScaling()
    temperature = scaling.fit(distribute.predict(model, x_cal), y_cal, method="grid")
    logits = distribute.predict(model, x_test) / temperature
    record = evaluate_logits(logits, data.y_test)
    record.update(
        outcomes=top_label_outcomes(logits, data.y_test),
        param_name="temperature",
        param=temperature,
        search_scores={},
        diverged=[],
    )
    return record


def _summarise(dataset, optimize_for, records, augment=False, outcomes=None):
    by_loss = {}
    for record in records:
        by_loss.setdefault(record["loss"], []).append(record)
    summary = []
    for label, group in by_loss.items():
        row = {"loss": label, "seeds": len(group), "param_name": group[0]["param_name"]}
        row["params"] = [r["param"] for r in group if r["param"] is not None]
        for metric in METRICS:
            if any(r.get(metric) is None for r in group):  # a run from before it was kept
                row[metric] = row[f"{metric}_std"] = None
                continue
            values = np.array([r[metric] for r in group])
            row[metric] = float(values.mean())
            # One seed has no spread: None, not a standard deviation of 0.
            row[f"{metric}_std"] = float(values.std()) if len(values) > 1 else None
        summary.append(row)
    if outcomes:
        intervals = bootstrap_intervals(outcomes)
        for row in summary:
            row.update(intervals[row["loss"]])
    for metric, higher in (("accuracy", True), ("ece", False)):
        ranks = average_ranks(
            [{"dataset": dataset, "loss": r["loss"], metric: r[metric]} for r in summary],
            metric,
            higher_is_better=higher,
        )
        for row in summary:
            row[f"rank_{metric}"] = ranks[row["loss"]]
    return ComparisonResults(dataset, optimize_for, records, summary, augment)
