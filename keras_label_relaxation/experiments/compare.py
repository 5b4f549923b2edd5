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

import dataclasses
import hashlib
import inspect
import json
import math
import os
import tempfile
import time
import traceback

import keras
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
from keras_label_relaxation.experiments import workers
from keras_label_relaxation.experiments.evaluation import (
    METRICS,
    TABLE_METRICS,
    evaluate_logits,
    top_label_outcomes,
)
from keras_label_relaxation.experiments.outputs import write_outputs
from keras_label_relaxation.experiments.paper import paper_sgd
from keras_label_relaxation.experiments.store import RunStore, write_atomically
from keras_label_relaxation.experiments.summary import summarise
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS, canonical_loss_name
from keras_label_relaxation.tuning import (
    LossHyperModel,
    get_objective,
    replica_batch_size,
    search,
)
from keras_label_relaxation.tuning.search import best_value, search_trial

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
    lease_seconds=60.0,
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
            intervals and, with two seeds or more, marks for losses that differ
            from LR (``experiments.summary``).
        lease_seconds: In a distributed run, a worker silent this long (no
            heartbeat) loses its unit to the next worker that asks.

    Distributed run: with keras-tuner's environment variables set
    (``KERASTUNER_TUNER_ID``: ``"chief"`` or a worker id such as ``"tuner0"``;
    ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``: the chief's
    address), the same call in a chief and in N workers runs every unit of
    work once somewhere: each search trial (seed, loss, grid value), each
    retraining and each CE+TS fit. The chief serves the units as keras-tuner
    trials (``experiments.workers``), the workers run them and write
    their results under ``out_dir``, which must be one directory for all
    (one machine, or a shared file system); a unit whose worker stops sending
    heartbeats goes to another worker. The chief stores the results and
    writes the outputs, the same as a run in one process; a worker returns
    ``None``.

    Returns:
        A ``ComparisonResults`` (``None`` on a worker of a distributed run).
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
    if not (isinstance(lease_seconds, (int, float)) and 0 < lease_seconds < math.inf):
        raise ValueError(
            "Invalid value for argument `lease_seconds`. Expected a positive number of seconds. "
            f"Received: lease_seconds={lease_seconds!r}"
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
    run = _Run(
        build_model, data, augment, grids, optimize_for, epochs, batch_size, optimizer,
        callbacks, verbose, test_fraction, out_dir,
    )  # fmt: skip
    role = workers.role()
    if role is None:
        _run_here(run, units, store, progress)
    else:
        # What the configuration does not hold but the numbers depend on must match too.
        keyed = dict(run_config, backend=keras.backend.backend(),
                     dtype_policy=keras.config.dtype_policy().name,
                     strategy=_strategy_name())  # fmt: skip
        key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
        if role == "worker":
            ran = _run_as_worker(run, key, lease_seconds, progress)
            progress(f"This worker ran {len(ran)} unit(s); the chief writes the results.")
            return None
        _run_as_chief(run, units, store, key, lease_seconds, progress)
    outcomes = {}
    for s, n in units:
        outcomes.setdefault(_label(n), {})[s] = store.outcomes(s, _label(n))
    if any(o is None for per_seed in outcomes.values() for o in per_seed.values()):
        outcomes = None  # a unit from a run before outcomes were kept: no intervals, no figure
    if test_fraction is not None:
        test_train_ratio = float(test_fraction) / (1.0 - float(test_fraction))
    else:
        test_train_ratio = len(data.y_test) / len(data.y_train)
    results = summarise(
        data.name, optimize_for, [store.done[(s, _label(n))] for s, n in units], augment,
        outcomes, test_train_ratio=test_train_ratio,
    )  # fmt: skip
    results.metrics = metrics
    write_outputs(out_dir, results, outcomes)
    return results


def _strategy_name():
    """How this process trains: ``DataParallel`` (JAX), a ``tf.distribute`` strategy, or neither."""
    if distribute.active():
        return "DataParallel"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        return f"{type(strategy).__name__}x{strategy.num_replicas_in_sync}"
    return "default"


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


@dataclasses.dataclass
class _Run:
    """What every unit of a run needs: the model, the data and the training settings."""

    build_model: object
    data: ClassificationData
    augment: bool
    grids: dict
    optimize_for: str
    epochs: int
    batch_size: int
    optimizer: object
    callbacks: object
    verbose: int
    test_fraction: object
    out_dir: str
    _seed_data: dict = dataclasses.field(default_factory=dict)

    def seed_data(self, seed):
        """The data resampled for ``seed`` (kept for the seed's next unit)."""
        if seed not in self._seed_data:
            self._seed_data = {seed: resample(self.data, seed, self.test_fraction)}
        return self._seed_data[seed]

    def hypermodel(self, name, seed):
        factory = _model_factory(self.build_model, self.seed_data(seed), self.augment, seed)
        return LossHyperModel(
            factory,
            name,
            grid=self.grids.get(name),
            optimizer=self.optimizer,
            sparse=True,
            from_logits=True,
        )

    def grid(self, name):
        """The grid ``name`` is searched over (``None`` for a loss without parameter)."""
        return LossHyperModel(self.build_model, name, grid=self.grids.get(name)).grid

    def fit(self, hypermodel, param, x, y, seed):
        keras.utils.set_random_seed(seed)
        model = hypermodel.build(hypermodel.hyperparameters(param))
        batch_size = replica_batch_size(self.batch_size, len(y))
        distribute.fit(
            model, x, y, epochs=self.epochs, batch_size=batch_size, verbose=self.verbose,
            callbacks=self.callbacks(),
        )  # fmt: skip
        return model

    def search_split(self, seed):
        """The search's fit and validation parts, centred on the fit part's per-pixel mean."""
        data = self.seed_data(seed)
        (x_fit, y_fit), (x_val, y_val) = split_holdout(
            data.x_train, data.y_train, HOLDOUT_FRACTION, seed
        )
        _, x_fit, x_val = subtract_pixel_mean(x_fit, x_val)
        return (x_fit, y_fit), (x_val, y_val)

    def search(self, name, seed):
        """The whole grid search of ``name`` in this process: ``(best value, scores)``."""
        (x_fit, y_fit), validation = self.search_split(seed)
        return search(
            self.hypermodel(name, seed), x_fit, y_fit, optimize_for=self.optimize_for,
            epochs=self.epochs, batch_size=self.batch_size, seed=seed,
            directory=os.path.join(self.out_dir, "tuner"), project_name=f"seed{seed}_{name}",
            callbacks=self.callbacks(), verbose=self.verbose, validation_data=validation,
        )  # fmt: skip

    def search_trial(self, name, seed, value):
        """One value of ``name``'s grid search (a unit of a distributed run): its score."""
        (x_fit, y_fit), validation = self.search_split(seed)
        return search_trial(
            self.hypermodel(name, seed), value, x_fit, y_fit, validation,
            optimize_for=self.optimize_for, epochs=self.epochs, batch_size=self.batch_size,
            seed=seed, callbacks=self.callbacks(), verbose=self.verbose,
        )  # fmt: skip

    def retrain(self, name, seed, param, scores):
        """Train ``name`` at ``param`` on the whole training split; its test record."""
        data = self.seed_data(seed)
        _, x_train, x_test = subtract_pixel_mean(data.x_train, data.x_test)
        model = self.fit(self.hypermodel(name, seed), param, x_train, data.y_train, seed)
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

    def temperature_scaling(self, seed):
        """CE on 85% of the training split, its temperature fitted on the rest; its record."""
        data = self.seed_data(seed)
        (x_fit, y_fit), (x_cal, y_cal) = split_holdout(
            data.x_train, data.y_train, CALIBRATION_FRACTION, seed
        )
        _, x_fit, x_cal, x_test = subtract_pixel_mean(x_fit, x_cal, data.x_test)
        model = self.fit(self.hypermodel("cross_entropy", seed), None, x_fit, y_fit, seed)
        temperature = TemperatureScaling().fit(
            distribute.predict(model, x_cal), y_cal, method="grid"
        )
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

    def unit(self, seed, name, scores=None):
        """The record of the (seed, loss) unit, with its ``seed``, ``loss`` label and ``seconds``.

        A loss is searched in this process, or, given the ``scores`` of a
        distributed search, retrained at their best value (as ``search`` picks it).
        """
        started = time.monotonic()
        if name == TS_LABEL:
            record = self.temperature_scaling(seed)
        else:
            if scores is None:
                param, scores = self.search(name, seed)
            else:
                grid = self.grid(name)
                direction = get_objective(self.optimize_for).direction
                param = None
                if grid is not None:
                    param = best_value({v: scores[v] for v in grid}, direction)
            record = self.retrain(name, seed, param, scores)
        record.update(seed=seed, loss=_label(name), seconds=time.monotonic() - started)
        return record


def _run_here(run, units, store, progress):
    """Every (seed, loss) unit in this process, in order; each stored as it finishes."""
    started, finished_here = time.monotonic(), 0
    for index, (seed, name) in enumerate(units, start=1):
        label = _label(name)
        if (seed, label) in store.done:
            progress(f"[{index}/{len(units)}] seed {seed}, {label}: done before, reused")
            continue
        remaining = len(units) - index + 1
        eta = ""
        if finished_here:
            eta = f", ETA {_duration((time.monotonic() - started) / finished_here * remaining)}"
        progress(f"[{index}/{len(units)}] seed {seed}, {label}: running{eta}")
        record = run.unit(seed, name)
        store.save_outcomes(seed, label, *record.pop("outcomes"))
        store.add(record)
        finished_here += 1
        progress(
            f"[{index}/{len(units)}] seed {seed}, {label}: accuracy {record['accuracy']:.4f}, "
            f"ECE {record['ece']:.4f}"
        )


# A distributed run's units: every search trial, every retraining, every CE+TS fit. Their
# results are files in out_dir/units, written by the worker that ran them, read by the chief.


def _unit_plan(run, units):
    """``({unit id: fields}, {unit id: [unit ids it needs]})`` of (seed, loss) ``units``."""
    plan, needs = {}, {}
    for seed, name in units:
        searches = []
        if name != TS_LABEL:
            for value in run.grid(name) or ():
                fields = {"kind": "search", "seed": seed, "loss": name, "value": value}
                plan[_unit_name(fields)] = fields
                searches.append(_unit_name(fields))
        fields = {"kind": "train", "seed": seed, "loss": name}
        plan[_unit_name(fields)] = fields
        needs[_unit_name(fields)] = searches
    return plan, needs


def _unit_path(out_dir, unit, suffix=".json"):
    return os.path.join(out_dir, "units", unit.replace(" ", "_").replace("+", "_") + suffix)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _search_scores(run, seed, name):
    """``{value: score}`` (NaN for a diverged trial) of the search units of (seed, loss)."""
    scores = {}
    for unit, fields in _unit_plan(run, [(seed, name)])[0].items():
        if fields["kind"] == "search":
            score = _read_json(_unit_path(run.out_dir, unit))["score"]
            scores[fields["value"]] = math.nan if score is None else score
    return dict(sorted(scores.items()))


def _run_as_worker(run, key, lease_seconds, progress):
    """Ask the chief for units and run them until it says the run is over; the units run."""

    def run_unit(fields):
        seed, name = fields["seed"], fields["loss"]
        unit = _unit_name(fields)
        progress(f"{unit}: running")
        try:
            if fields["kind"] == "search":
                score = run.search_trial(name, seed, fields["value"])
                result = {"score": score if math.isfinite(score) else None}
            else:
                scores = None if name == TS_LABEL else _search_scores(run, seed, name)
                result = run.unit(seed, name, scores)
                RunStore.write_outcomes(run.out_dir, seed, _label(name), *result.pop("outcomes"))
            write_atomically(
                _unit_path(run.out_dir, unit), lambda f: f.write(json.dumps(result).encode())
            )
            if os.path.exists(_unit_path(run.out_dir, unit, ".error")):  # from an earlier try
                os.remove(_unit_path(run.out_dir, unit, ".error"))
        except Exception:
            text = traceback.format_exc()
            write_atomically(
                _unit_path(run.out_dir, unit, ".error"), lambda f: f.write(text.encode())
            )
            raise
        progress(f"{unit}: done")

    worker = workers.UnitWorker(
        run_unit, key, tempfile.mkdtemp(prefix="klr-worker-"), lease_seconds
    )
    worker.run()
    return worker.ran


def _unit_name(fields):
    label = _label(fields["loss"])
    if fields["kind"] == "train":
        return f"train seed {fields['seed']} {label}"
    param = LOSS_PARAMETERS[fields["loss"]]
    return f"search seed {fields['seed']} {label} {param}={fields['value']!r}"


def _run_as_chief(run, units, store, key, lease_seconds, progress):
    """Serve the units not done before to the workers; store every finished (seed, loss)."""
    plan, needs = _unit_plan(run, units)
    todo = {}
    for unit, fields in plan.items():
        seed, label = fields["seed"], _label(fields["loss"])
        path = _unit_path(run.out_dir, unit)
        if fields["kind"] == "train" and (seed, label) not in store.done and os.path.exists(path):
            if store.outcomes(seed, label) is not None:  # written, but the chief stopped first
                store.add(_read_json(path))
        if (seed, label) in store.done:
            continue
        if fields["kind"] == "search" and os.path.exists(path):
            continue
        todo[unit] = fields
    needs = {u: [d for d in needs.get(u, ()) if d in todo] for u in todo}

    def on_done(unit, worker):
        fields = plan[unit]
        result = _read_json(_unit_path(run.out_dir, unit))  # raises if the worker wrote none
        if fields["kind"] == "train":
            if store.outcomes(result["seed"], result["loss"]) is None:
                raise RuntimeError(f"{unit}: {worker} reported it done but wrote no outcomes.")
            store.add(result)
            progress(
                f"seed {result['seed']}, {result['loss']}: accuracy {result['accuracy']:.4f}, "
                f"ECE {result['ece']:.4f}"
            )

    def on_failed(unit, worker):
        path = _unit_path(run.out_dir, unit, ".error")
        text = open(path).read() if os.path.exists(path) else "(no traceback written)"
        return RuntimeError(f"Unit {unit!r} failed on {worker}:\n{text}")

    progress(
        f"Chief of run {key}: {len(todo)} of {len(plan)} units to run, served at "
        f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    )
    oracle = workers.UnitOracle(
        todo, needs, key, on_done, on_failed, lease_seconds=lease_seconds, progress=progress
    )
    chief = workers.UnitWorker(
        None, key, tempfile.mkdtemp(prefix="klr-chief-"), lease_seconds, oracle=oracle
    )
    chief.run()
    if oracle.error is not None:
        raise oracle.error
