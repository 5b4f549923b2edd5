"""One set of defaults across the package (README: "Conventions"): Keras' from_logits=False
for every loss, metric, get_loss and LossHyperModel, and sparse=False for get_loss and
LossHyperModel."""

import inspect

import keras
import keras_tuner
import pytest

import keras_label_relaxation as klr

LOSS_CLASSES = [
    klr.LabelRelaxation,
    klr.SparseLabelRelaxation,
    klr.BinaryLabelRelaxation,
    klr.SparseLabelSmoothing,
    klr.ConfidencePenalty,
    klr.SparseConfidencePenalty,
    klr.SparseCategoricalFocalCrossentropy,
]
LOSS_FUNCTIONS = [
    klr.label_relaxation,
    klr.sparse_label_relaxation,
    klr.binary_label_relaxation,
    klr.sparse_label_smoothing,
    klr.confidence_penalty,
    klr.sparse_confidence_penalty,
    klr.sparse_categorical_focal_crossentropy,
]
METRICS = [
    klr.ExpectedCalibrationError,
    klr.MaximumCalibrationError,
    klr.ClasswiseExpectedCalibrationError,
    klr.BrierScore,
    klr.metrics.brier_score,
]


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


@pytest.mark.parametrize(
    "fn",
    LOSS_CLASSES + LOSS_FUNCTIONS + METRICS + [klr.get_loss, klr.tuning.LossHyperModel],
    ids=lambda fn: fn.__name__,
)
def test_from_logits_defaults_to_false_as_in_keras(fn):
    assert _default(fn, "from_logits") is False
    assert _default(keras.losses.SparseCategoricalCrossentropy, "from_logits") is False


@pytest.mark.parametrize("fn", [klr.get_loss, klr.tuning.LossHyperModel], ids=lambda f: f.__name__)
def test_sparse_defaults_to_false(fn):
    assert _default(fn, "sparse") is False


@pytest.mark.parametrize("fn", LOSS_CLASSES + LOSS_FUNCTIONS + METRICS, ids=lambda f: f.__name__)
def test_validate_args_is_off_on_per_step_objects(fn):
    assert _default(fn, "validate_args") is False


def test_hypermodel_builds_what_get_loss_builds_and_an_agreeing_metric():
    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])

    hp = keras_tuner.HyperParameters()
    model = klr.tuning.LossHyperModel(build, "lr", grid=[0.1]).build(hp)
    expected = klr.get_loss("lr", 0.1)
    assert type(model.loss) is type(expected) is klr.LabelRelaxation
    assert model.loss.get_config()["from_logits"] is False
    metrics = keras.saving.deserialize_keras_object(model.get_compile_config()["metrics"])
    ece = [m for m in metrics if isinstance(m, klr.ExpectedCalibrationError)]
    assert [m.from_logits for m in ece] == [False]
    logits_model = klr.tuning.LossHyperModel(build, "lr", grid=[0.1], sparse=True, from_logits=True)
    built = logits_model.build(keras_tuner.HyperParameters())
    assert type(built.loss) is klr.SparseLabelRelaxation
    assert built.loss.get_config()["from_logits"] is True
