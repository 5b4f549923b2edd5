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
import math
import numbers
import tempfile
import time

import numpy as np

from keras_label_relaxation import distribute
from keras_label_relaxation.datasets.noise import LabelNoise, corrupt_labels
from keras_label_relaxation.datasets.pipeline import AUGMENTED_DATASETS
from keras_label_relaxation.experiments import workers
from keras_label_relaxation.experiments.evaluation import METRICS, TABLE_METRICS
from keras_label_relaxation.experiments.outputs import write_outputs
from keras_label_relaxation.experiments.paper import paper_sgd
from keras_label_relaxation.experiments.protocol import (
    DEFAULT_LOSSES,
    LOSS_LABELS,
    TS_LABEL,
    Run,
    as_data,
    loss_label,
    warning_lines,
)
from keras_label_relaxation.experiments.store import RunStore
from keras_label_relaxation.experiments.summary import summarise
from keras_label_relaxation.experiments.units import run_as_chief, run_as_worker
from keras_label_relaxation.losses.registry import canonical_loss_name
from keras_label_relaxation.tuning import get_objective

__all__ = ["DEFAULT_LOSSES", "LOSS_LABELS", "TS_LABEL", "compare"]


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
    label_noise=None,
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
        losses: Loss names or aliases (the paper's ``ce``, ``ls``, ``cp``,
            ``fl``, ``lr``; for noisy labels also ``rda``, ``gce``, ``sce``).
        seeds: Number of seeds (0, 1, ..., seeds - 1), each its own resampling.
        optimize_for: ``"acc"`` (``val_accuracy``) or ``"ece"`` (``val_ece``).
        epochs, batch_size: Training of every model (search and retraining).
            Under ``distribute.data_parallel`` the global batch must split
            over the devices and fit in the smallest training set; checked
            before any training.
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
        label_noise: ``None``, or label noise on every seed's training split
            (so also on the search's validation part and CE+TS's calibration
            part; never on the test split): ``"symmetric:0.4"``,
            ``"asymmetric:0.4"`` or a ``datasets.LabelNoise`` (see
            ``datasets.corrupt_labels``). Drawn from the seed; each unit's
            record keeps the share of labels changed and a digest of the
            noisy labels; recorded in ``config.json`` and the table's header.

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
    ``None``. Only the chief claims ``out_dir`` (``config.json``); a worker
    of another configuration, backend, dtype policy or strategy ends with an
    error (``experiments.units``): at once when ``out_dir`` holds another
    configuration or the chief says it trains otherwise, otherwise after
    ``2 * lease_seconds + 60`` seconds of its chief serving another run.

    Returns:
        A ``ComparisonResults`` (``None`` on a worker of a distributed run).
    """
    _check_arguments(seeds, augment, lease_seconds, optimize_for)
    metrics = _check_metrics(metrics)
    names = [canonical_loss_name(loss) for loss in losses]
    if not names:
        raise ValueError("Invalid value for argument `losses`: no loss to compare.")
    grids = {canonical_loss_name(k): [float(v) for v in vs] for k, vs in (grids or {}).items()}
    data = as_data(data)
    augment = data.name in AUGMENTED_DATASETS if augment is None else augment
    if label_noise is not None:
        label_noise = LabelNoise.parse(label_noise)
        if label_noise.kind == "asymmetric":  # refuse a data set without a pattern up front
            corrupt_labels(data.y_train[:0], data.num_classes, label_noise, 0, data.name)
    run_config = _run_config(config, data, names, seeds, optimize_for, epochs, batch_size, grids,
                             temperature_scaling, augment, test_fraction)  # fmt: skip
    if label_noise is not None:
        run_config["label_noise"] = str(label_noise)
    out_dir = out_dir or tempfile.mkdtemp(prefix="klr-compare-")
    run = Run(
        build_model, data, augment, grids, optimize_for, epochs, batch_size, optimizer,
        callbacks or list, verbose, test_fraction, out_dir, label_noise,
    )  # fmt: skip
    units = _units(names, seeds, temperature_scaling)
    _check_batch_size(run, units)
    progress = progress or (lambda line: None)
    role = workers.role()
    if role == "worker":
        ran = run_as_worker(run, run_config, lease_seconds, progress)
        progress(f"This worker ran {len(ran)} unit(s); the chief writes the results.")
        return None
    store = RunStore(run.out_dir, run_config)  # a single process or the chief claims out_dir
    if role is None:
        _run_here(run, units, store, progress)
    else:
        run_as_chief(run, units, store, run_config, lease_seconds, progress)
    return _results(run, units, store, metrics)


def _check_arguments(seeds, augment, lease_seconds, optimize_for):
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


def _check_metrics(metrics):
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"Invalid value for argument `metrics`. Expected names from {tuple(METRICS)}. "
            f"Received: metrics={metrics!r}"
        )
    return metrics


def _check_batch_size(run, units):
    """Under ``DataParallel``, refuse a batch no model of the run can train with, up front.

    ``distribute.fit`` refuses it too, but only once a model trains: in the
    first search trial, which keras-tuner reports as a failed trial.
    """
    if not distribute.active():
        return
    import jax

    devices, processes = jax.device_count(), jax.process_count()
    batch_size = run.batch_size
    integer = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not integer or batch_size < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`: data-parallel training needs the global "
            f"batch size, an integer >= 1. Received: batch_size={batch_size!r}"
        )
    if batch_size % devices:
        raise ValueError(
            f"Invalid value for argument `batch_size` (--batch-size): under DataParallel the "
            f"global batch must split evenly over the {devices} devices ({processes} "
            f"process(es)). Received: batch_size={batch_size}"
        )
    sizes = run.fit_sizes(sorted({name for _, name in units}))
    what, smallest = min(sizes.items(), key=lambda item: item[1])
    if batch_size > smallest:
        raise ValueError(
            f"Invalid value for argument `batch_size` (--batch-size): data-parallel training "
            f"keeps full batches only, and {what} has {smallest} examples. "
            f"Received: batch_size={batch_size}"
        )


def _run_config(config, data, names, seeds, optimize_for, epochs, batch_size, grids,
                temperature_scaling, augment, test_fraction):  # fmt: skip
    """What the run is (``config.json``): a rerun into the same ``out_dir`` must match it."""
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
    return run_config


def _fingerprint(data):
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _units(names, seeds, temperature_scaling):
    """The run's (seed, loss) units, seed by seed; CE+TS last in each seed."""
    units = [(seed, name) for seed in range(seeds) for name in names]
    if temperature_scaling:
        units += [(seed, TS_LABEL) for seed in range(seeds)]
    units.sort(key=lambda u: u[0])
    return units


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _run_here(run, units, store, progress):
    """Every (seed, loss) unit in this process, in order; each stored as it finishes."""
    started, finished_here = time.monotonic(), 0
    for index, (seed, name) in enumerate(units, start=1):
        label = loss_label(name)
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
        for line in warning_lines(record):
            progress(f"[{index}/{len(units)}] seed {seed}, {label}: {line}")


def _results(run, units, store, metrics):
    """The stored units' ``ComparisonResults``, written to ``out_dir``'s outputs."""
    data, test_fraction = run.data, run.test_fraction
    outcomes = {}
    for s, n in units:
        outcomes.setdefault(loss_label(n), {})[s] = store.outcomes(s, loss_label(n))
    if any(o is None for per_seed in outcomes.values() for o in per_seed.values()):
        outcomes = None  # a unit from a run before outcomes were kept: no intervals, no figure
    if test_fraction is not None:
        test_train_ratio = float(test_fraction) / (1.0 - float(test_fraction))
    else:
        test_train_ratio = len(data.y_test) / len(data.y_train)
    results = summarise(
        data.name, run.optimize_for, [store.done[(s, loss_label(n))] for s, n in units],
        run.augment, outcomes, test_train_ratio=test_train_ratio,
    )  # fmt: skip
    results.metrics = metrics
    results.label_noise = None if run.label_noise is None else str(run.label_noise)
    write_outputs(run.out_dir, results, outcomes)
    return results
