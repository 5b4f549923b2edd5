"""The protocol of one comparison run: what a (seed, loss) unit trains, tunes and evaluates.

``Run`` holds what every unit of a run needs (the model, the data, the
training settings) and runs one unit: a loss' grid search on a hold-out of 1/6
of the seed's training split, its retraining at the best value on the whole
split and its test record; or "CE+TS", cross-entropy trained on 85% with a
temperature fitted on the other 15% over the paper's grid. ``compare`` runs
the units in one process; ``experiments.units`` spreads them over workers.
"""

import dataclasses
import inspect
import math
import os
import time
import warnings

import keras
import numpy as np

from keras_label_relaxation import distribute
from keras_label_relaxation.calibration import GridEdgeWarning, TemperatureScaling
from keras_label_relaxation.datasets.noise import corrupt_labels, noise_record
from keras_label_relaxation.datasets.pipeline import augmentation
from keras_label_relaxation.datasets.protocol import (
    CALIBRATION_FRACTION,
    HOLDOUT_FRACTION,
    ClassificationData,
    from_arrays,
    resample,
    split_holdout,
    subtract_pixel_mean,
)
from keras_label_relaxation.experiments.evaluation import evaluate_logits, top_label_outcomes
from keras_label_relaxation.losses.registry import LOSS_PARAMETERS
from keras_label_relaxation.tuning import LossHyperModel, get_objective, replica_batch_size, search
from keras_label_relaxation.tuning.search import best_value, search_trial

#: The paper's abbreviations.
LOSS_LABELS = {
    "cross_entropy": "CE",
    "label_smoothing": "LS",
    "confidence_penalty": "CP",
    "focal": "FL",
    "label_relaxation": "LR",
    "data_ambiguation": "RDA",
    "generalized_cross_entropy": "GCE",
    "symmetric_cross_entropy": "SCE",
}
#: Label of cross-entropy with temperature scaling.
TS_LABEL = "CE+TS"
#: The paper's losses (the label-noise losses RDA, GCE and SCE are there on request).
DEFAULT_LOSSES = ("cross_entropy", "label_smoothing", "confidence_penalty", "focal",
                  "label_relaxation")  # fmt: skip


def loss_label(name):
    """The table's label of a canonical loss name, or of ``TS_LABEL``.

    Example:
    >>> loss_label("label_relaxation"), loss_label(TS_LABEL)
    ('LR', 'CE+TS')
    """
    return name if name == TS_LABEL else LOSS_LABELS[name]


def as_data(data):
    """``data`` as a ``ClassificationData`` (from a tuple or a dict of the four arrays)."""
    if isinstance(data, ClassificationData):
        return data
    if isinstance(data, dict):
        data = tuple(data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return from_arrays("data", *data)


def model_factory(build_model, data, augment, seed):
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


def fit_temperature(logits, labels):
    """``TemperatureScaling`` fitted over the paper's grid: ``(temperature, warnings)``.

    A temperature on the edge of the grid (``calibration.GridEdgeWarning``:
    the best one may lie beyond it) is not an error: its warning is caught and
    its message returned, for the unit's record and the progress lines; other
    warnings pass as they would.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GridEdgeWarning)
        temperature = TemperatureScaling().fit(logits, labels, method="grid")
    messages = []
    for warning in caught:
        if issubclass(warning.category, GridEdgeWarning):
            messages.append(str(warning.message))
        else:  # caught only because ``record`` catches every warning shown: show it
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno,
                warning.file, warning.line,
            )  # fmt: skip
    return temperature, messages


@dataclasses.dataclass
class Run:
    """What every unit of a run needs: the model, the data and the training settings.

    A unit is a (seed, loss) pair, ``loss`` a canonical loss name or
    ``TS_LABEL``; ``unit`` runs one in this process and returns its record.
    """

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
    label_noise: object = None
    _seed_data: dict = dataclasses.field(default_factory=dict)

    def seed_data(self, seed):
        """The data resampled for ``seed`` (kept for the seed's next unit), with the run's
        ``label_noise`` (a ``datasets.LabelNoise``) on the training split's labels only:
        the search's validation part and CE+TS's calibration part, split from it, are
        noisy too; the test labels stay clean."""
        if seed not in self._seed_data:
            data = resample(self.data, seed, self.test_fraction)
            if self.label_noise is not None:
                noisy = corrupt_labels(
                    data.y_train, data.num_classes, self.label_noise, seed, self.data.name
                )
                data = dataclasses.replace(data, y_train=noisy)
            self._seed_data = {seed: data}
        return self._seed_data[seed]

    def noise_record(self, seed):
        """The seed's noise draw as recorded with its units (``None`` without noise)."""
        if self.label_noise is None:
            return None
        clean = resample(self._labels_only(), seed, self.test_fraction).y_train
        return {"noise": str(self.label_noise), **noise_record(clean, self.seed_data(seed).y_train)}

    def _labels_only(self):
        """The data without images (resampled as the data: same splits, cheaply)."""
        return dataclasses.replace(
            self.data,
            x_train=np.empty((len(self.data.y_train), 0)),
            x_test=np.empty((len(self.data.y_test), 0)),
        )

    def fit_sizes(self, names):
        """``{what: examples}`` of every training set a seed's units fit a model on.

        The same for every seed; computed from the labels alone, by the same
        splits the units make (``names``: canonical loss names or ``TS_LABEL``).
        """
        train = resample(self._labels_only(), 0, self.test_fraction)
        n_train = len(train.y_train)

        def rest(fraction):
            return len(split_holdout(train.x_train, train.y_train, fraction, 0)[0][1])

        sizes = {}
        if any(name != TS_LABEL and self.grid(name) is not None for name in names):
            sizes["a search trial's fit part (5/6 of the training split)"] = rest(HOLDOUT_FRACTION)
        if any(name != TS_LABEL for name in names):
            sizes["a retraining (the whole training split)"] = n_train
        if TS_LABEL in names:
            sizes["CE+TS's fit part (85% of the training split)"] = rest(CALIBRATION_FRACTION)
        return sizes

    def hypermodel(self, name, seed):
        factory = model_factory(self.build_model, self.seed_data(seed), self.augment, seed)
        return LossHyperModel(
            factory,
            name,
            grid=self.grids.get(name),
            optimizer=self.optimizer,
            sparse=True,
            from_logits=True,
            epochs=self.epochs,
        )

    def grid(self, name):
        """The grid ``name`` is searched over (``None`` for a loss without parameter)."""
        return LossHyperModel(self.build_model, name, grid=self.grids.get(name)).grid

    def fit(self, hypermodel, param, x, y, seed):
        keras.utils.set_random_seed(seed)
        model = hypermodel.build(hypermodel.hyperparameters(param))
        batch_size = replica_batch_size(self.batch_size, len(y))
        hypermodel.fit(
            None, model, x, y, epochs=self.epochs, batch_size=batch_size, verbose=self.verbose,
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
        """CE on 85% of the training split, its temperature fitted on the rest; its record.

        The record's ``warnings`` lists the messages of the fit's
        ``GridEdgeWarning`` (none when the temperature lies inside the grid).
        """
        data = self.seed_data(seed)
        (x_fit, y_fit), (x_cal, y_cal) = split_holdout(
            data.x_train, data.y_train, CALIBRATION_FRACTION, seed
        )
        _, x_fit, x_cal, x_test = subtract_pixel_mean(x_fit, x_cal, data.x_test)
        model = self.fit(self.hypermodel("cross_entropy", seed), None, x_fit, y_fit, seed)
        temperature, caught = fit_temperature(distribute.predict(model, x_cal), y_cal)
        logits = distribute.predict(model, x_test) / temperature
        record = evaluate_logits(logits, data.y_test)
        record.update(
            outcomes=top_label_outcomes(logits, data.y_test),
            param_name="temperature",
            param=temperature,
            search_scores={},
            diverged=[],
            warnings=caught,
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
        record.update(seed=seed, loss=loss_label(name), seconds=time.monotonic() - started)
        if self.label_noise is not None:
            record["label_noise"] = self.noise_record(seed)
        return record


def warning_lines(record):
    """The progress lines of a unit's caught warnings (``record["warnings"]``), if any."""
    return [f"warning: {message}" for message in record.get("warnings") or ()]
