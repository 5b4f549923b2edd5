"""The paper's comparison protocol as one function: tune, retrain, evaluate, per seed and loss.

For each seed the data are resampled (train and test pooled and split again) and
standardised; for each loss its parameter is grid-searched on a hold-out of 1/6
of the training data (scored by the final epoch's validation accuracy or ECE),
the best value is retrained on the full training data and evaluated on the test
split (accuracy, ECE with 15 bins, NLL, Brier score). "CE+TS" is cross-entropy
trained on 85% of the training data with a temperature fitted on the other 15%
over the paper's grid. Every finished (seed, loss) unit is appended to
``out_dir/trials.jsonl`` at once and every search trial lives in
``out_dir/tuner``, so an interrupted run resumes where it stopped.
"""

import dataclasses
import hashlib
import inspect
import json
import os
import tempfile
import time

import keras
import keras_tuner
import numpy as np

from keras_label_relaxation.calibration import TemperatureScaling
from keras_label_relaxation.datasets.protocol import (
    CALIBRATION_FRACTION,
    ClassificationData,
    from_arrays,
    resample,
    split_holdout,
    standardize,
)
from keras_label_relaxation.experiments.ranks import average_ranks
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS, canonical_loss_name
from keras_label_relaxation.metrics import ExpectedCalibrationError, brier_score
from keras_label_relaxation.metrics.reliability import reliability_diagram
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


def default_optimizer():
    """SGD with Nesterov momentum 0.9 and learning rate 0.05 (the paper's MNIST setting)."""
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)


@dataclasses.dataclass
class ComparisonResults:
    """Per-(seed, loss) records and their summary per loss.

    ``records``: one dict per finished unit (``seed``, ``loss``, ``param``,
    ``accuracy``, ``ece``, ``nll``, ``brier``, ``search_scores``, ``bins``).
    ``summary``: one dict per loss with mean and std over seeds and the ranks.
    """

    dataset: str
    optimize_for: str
    records: list
    summary: list

    def to_markdown(self):
        """The table shaped like the paper's Table 1 (one data set)."""
        lines = [
            f"| Loss ({self.dataset}, optimised for {self.optimize_for}) | Acc. | ECE | NLL | "
            "Brier | Rank Acc. | Rank ECE |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in self.summary:
            lines.append(
                f"| {row['loss']}{_param_note(row)} | {row['accuracy']:.3f} ± "
                f"{row['accuracy_std']:.3f} | {row['ece']:.3f} ± {row['ece_std']:.3f} | "
                f"{row['nll']:.3f} | {row['brier']:.3f} | {row['rank_accuracy']:g} | "
                f"{row['rank_ece']:g} |"
            )
        return "\n".join(lines)


def _param_note(row):
    values = row.get("params") or []
    if row.get("param_name") is None or not values:
        return ""
    shown = ", ".join(f"{v:g}" for v in values)
    return f" ({row['param_name']} = {shown})"


def _as_data(data):
    if isinstance(data, ClassificationData):
        return data
    if isinstance(data, dict):
        data = tuple(data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return from_arrays("data", *data)


def _model_factory(build_model, data):
    if len(inspect.signature(build_model).parameters) >= 2:
        return lambda: build_model(data.input_shape, data.num_classes)
    return build_model


class _Store:
    """``trials.jsonl`` (finished units) and ``config.json`` (what they belong to)."""

    def __init__(self, out_dir, config):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        config_path = os.path.join(out_dir, "config.json")
        if os.path.exists(config_path):
            with open(config_path) as f:
                stored = json.load(f)
            if stored != config:
                differing = sorted(
                    k for k in set(stored) | set(config) if stored.get(k) != config.get(k)
                )
                raise ValueError(
                    f"{out_dir} holds results of a different configuration (differing: "
                    f"{', '.join(differing)}). Use another --out directory, or delete it to "
                    "start over."
                )
        else:
            with open(config_path, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
        self.path = os.path.join(out_dir, "trials.jsonl")
        self.done = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        self.done[(record["seed"], record["loss"])] = record

    def add(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[(record["seed"], record["loss"])] = record


def evaluate_logits(logits, labels):
    """Accuracy, ECE (15 bins), NLL, Brier score and the ECE bins of test logits."""
    logits = np.asarray(logits, dtype=np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    probs = np.exp(log_probs)
    metric = ExpectedCalibrationError(num_bins=15)
    metric.update_state(labels, probs)
    bins = {
        name: keras.ops.convert_to_numpy(getattr(metric, name)).astype(float).tolist()
        for name in ("bin_weight", "bin_confidence", "bin_correct")
    }
    return {
        "accuracy": float(np.mean(probs.argmax(-1) == labels)),
        "ece": float(metric.result()),
        "nll": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
        "brier": float(np.mean(keras.ops.convert_to_numpy(brier_score(labels, probs)))),
        "bins": bins,
    }


def _fit(loss_hypermodel, param, x, y, epochs, batch_size, seed, callbacks, verbose):
    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    if loss_hypermodel.param_name is not None:
        hp.Choice(loss_hypermodel.param_name, list(loss_hypermodel.grid))
        hp.values[loss_hypermodel.param_name] = param
    model = loss_hypermodel.build(hp)
    batch_size = replica_batch_size(batch_size, len(y))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks())
    return model


def compare(
    build_model,
    data,
    losses=DEFAULT_LOSSES,
    seeds=1,
    optimize_for="acc",
    epochs=10,
    batch_size=64,
    optimizer=default_optimizer,
    grids=None,
    temperature_scaling=True,
    callbacks=None,
    out_dir=None,
    config=None,
    verbose=0,
    progress=print,
    test_fraction=None,
):
    """Run the paper's protocol for several losses and seeds; return the results table.

    Args:
        build_model: Callable returning a fresh, uncompiled model that outputs
            logits; either without arguments or as ``build_model(input_shape,
            num_classes)``.
        data: A ``ClassificationData`` (not standardised), a tuple ``(x_train,
            y_train, x_test, y_test)`` or a dict with those keys; labels are
            integer class ids, images already scaled as wanted.
        losses: Loss names or aliases (``ce``, ``ls``, ``cp``, ``fl``, ``lr``).
        seeds: Number of seeds (0, 1, ..., seeds - 1), each its own resampling.
        optimize_for: ``"acc"`` (``val_accuracy``) or ``"ece"`` (``val_ece``).
        epochs, batch_size: Training of every model (search and retraining).
        optimizer: Callable returning a fresh optimizer.
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

    Returns:
        A ``ComparisonResults``.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(
            "Invalid value for argument `seeds`. Expected an integer >= 1. "
            f"Received: seeds={seeds!r}"
        )
    get_objective(optimize_for)  # checks the value
    names = [canonical_loss_name(loss) for loss in losses]
    if not names:
        raise ValueError("Invalid value for argument `losses`: no loss to compare.")
    grids = {canonical_loss_name(k): [float(v) for v in vs] for k, vs in (grids or {}).items()}
    data = _as_data(data)
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
    store = _Store(out_dir, run_config)
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
        seed_data = standardize(resample(data, seed, test_fraction))
        model_factory = _model_factory(build_model, seed_data)
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
        store.add(record)
        finished_here += 1
        progress(
            f"[{index}/{len(units)}] seed {seed}, {label}: accuracy {record['accuracy']:.4f}, "
            f"ECE {record['ece']:.4f}"
        )
    results = _summarise(data.name, optimize_for, [store.done[(s, _label(n))] for s, n in units])
    _write_outputs(out_dir, results)
    return results


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


def _run_loss(
    model_factory, data, name, grid, seed, optimize_for, epochs, batch_size, optimizer,
    callbacks, verbose, tuner_dir,
):  # fmt: skip
    hypermodel = LossHyperModel(
        model_factory, name, grid=grid, optimizer=optimizer, sparse=True, from_logits=True
    )
    param, scores = search(
        hypermodel, data.x_train, data.y_train, optimize_for=optimize_for, epochs=epochs,
        batch_size=batch_size, seed=seed, directory=tuner_dir, project_name=f"seed{seed}_{name}",
        callbacks=callbacks(), verbose=verbose,
    )  # fmt: skip
    model = _fit(
        hypermodel, param, data.x_train, data.y_train, epochs, batch_size, seed, callbacks, verbose
    )
    record = evaluate_logits(model.predict(data.x_test, verbose=0), data.y_test)
    record.update(
        param_name=LOSS_PARAMETERS[name],
        param=param,
        search_scores={f"{k:g}": v for k, v in scores.items()},
    )
    return record


def _run_temperature_scaling(
    model_factory, data, seed, epochs, batch_size, optimizer, callbacks, verbose
):
    (x_fit, y_fit), (x_cal, y_cal) = split_holdout(
        data.x_train, data.y_train, CALIBRATION_FRACTION, seed
    )
    hypermodel = LossHyperModel(
        model_factory, "cross_entropy", optimizer=optimizer, sparse=True, from_logits=True
    )
    model = _fit(hypermodel, None, x_fit, y_fit, epochs, batch_size, seed,
                 callbacks, verbose)  # fmt: skip
    scaling = TemperatureScaling()
    temperature = scaling.fit(model.predict(x_cal, verbose=0), y_cal, method="grid")
    record = evaluate_logits(model.predict(data.x_test, verbose=0) / temperature, data.y_test)
    record.update(param_name="temperature", param=temperature, search_scores={})
    return record


def _summarise(dataset, optimize_for, records):
    by_loss = {}
    for record in records:
        by_loss.setdefault(record["loss"], []).append(record)
    summary = []
    for label, group in by_loss.items():
        row = {"loss": label, "seeds": len(group), "param_name": group[0]["param_name"]}
        row["params"] = [r["param"] for r in group if r["param"] is not None]
        for metric in ("accuracy", "ece", "nll", "brier"):
            values = np.array([r[metric] for r in group])
            row[metric] = float(values.mean())
            row[f"{metric}_std"] = float(values.std())
        summary.append(row)
    for metric, higher in (("accuracy", True), ("ece", False)):
        ranks = average_ranks(
            [{"dataset": dataset, "loss": r["loss"], metric: r[metric]} for r in summary],
            metric,
            higher_is_better=higher,
        )
        for row in summary:
            row[f"rank_{metric}"] = ranks[row["loss"]]
    return ComparisonResults(dataset, optimize_for, records, summary)


def _write_outputs(out_dir, results):
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(
            {"dataset": results.dataset, "optimize_for": results.optimize_for,
             "summary": results.summary, "records": results.records},
            f, indent=2,
        )  # fmt: skip
    columns = ["seed", "loss", "param_name", "param", "accuracy", "ece", "nll", "brier", "seconds"]
    with open(os.path.join(out_dir, "results.csv"), "w") as f:
        f.write(",".join(columns) + "\n")
        for record in results.records:
            f.write(
                ",".join("" if record.get(c) is None else str(record[c]) for c in columns) + "\n"
            )
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(results.to_markdown() + "\n")
    for row in results.summary:
        metric = ExpectedCalibrationError(num_bins=15)
        for name in ("bin_weight", "bin_confidence", "bin_correct"):
            total = np.sum(
                [r["bins"][name] for r in results.records if r["loss"] == row["loss"]], 0
            )
            getattr(metric, name).assign(total.astype("float32"))
        figure = reliability_diagram(metric=metric, title=f"{row['loss']} on {results.dataset}")
        safe = row["loss"].replace("+", "_")
        figure.savefig(os.path.join(out_dir, f"reliability_{safe}.png"), format="png", dpi=100)
