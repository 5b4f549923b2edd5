"""keras-label-relaxation: label relaxation (Lienen & Huellermeier, AAAI 2021) for Keras 3.

>>> import keras_label_relaxation as klr
>>> loss = klr.LabelRelaxation(alpha=0.1)
"""

# The subpackages, so that `klr.models.get_model(...)`, `klr.datasets.load(...)` work.
from keras_label_relaxation import (
    calibration,
    datasets,
    experiments,
    losses,
    metrics,
    models,
    tuning,
)
from keras_label_relaxation.calibration import PAPER_TEMPERATURE_GRID, TemperatureScaling, calibrate
from keras_label_relaxation.losses import (
    LOSS_ALIASES,
    LOSS_PARAMETERS,
    BinaryLabelRelaxation,
    ConfidencePenalty,
    LabelRelaxation,
    SparseCategoricalFocalCrossentropy,
    SparseConfidencePenalty,
    SparseLabelRelaxation,
    SparseLabelSmoothing,
    binary_label_relaxation,
    canonical_loss_name,
    confidence_penalty,
    get_loss,
    label_relaxation,
    sparse_categorical_focal_crossentropy,
    sparse_confidence_penalty,
    sparse_label_relaxation,
    sparse_label_smoothing,
)
from keras_label_relaxation.metrics import (
    BrierScore,
    ClasswiseExpectedCalibrationError,
    ExpectedCalibrationError,
    MaximumCalibrationError,
    brier_score,
    expected_calibration_error,
    reliability_diagram,
)

__version__ = "0.1.0"

__all__ = [
    "LOSS_ALIASES",
    "LOSS_PARAMETERS",
    "PAPER_TEMPERATURE_GRID",
    "BinaryLabelRelaxation",
    "BrierScore",
    "ClasswiseExpectedCalibrationError",
    "ExpectedCalibrationError",
    "MaximumCalibrationError",
    "TemperatureScaling",
    "ConfidencePenalty",
    "LabelRelaxation",
    "SparseCategoricalFocalCrossentropy",
    "SparseConfidencePenalty",
    "SparseLabelRelaxation",
    "SparseLabelSmoothing",
    "__version__",
    "calibration",
    "datasets",
    "experiments",
    "losses",
    "metrics",
    "models",
    "tuning",
    "binary_label_relaxation",
    "brier_score",
    "calibrate",
    "canonical_loss_name",
    "confidence_penalty",
    "expected_calibration_error",
    "get_loss",
    "label_relaxation",
    "reliability_diagram",
    "sparse_categorical_focal_crossentropy",
    "sparse_confidence_penalty",
    "sparse_label_relaxation",
    "sparse_label_smoothing",
]
