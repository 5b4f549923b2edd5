"""Label relaxation losses and the paper's baselines, as Keras losses."""

from keras_label_relaxation.losses.baselines import (
    ConfidencePenalty,
    SparseCategoricalFocalCrossentropy,
    SparseConfidencePenalty,
    SparseLabelSmoothing,
    confidence_penalty,
    sparse_categorical_focal_crossentropy,
    sparse_confidence_penalty,
    sparse_label_smoothing,
)
from keras_label_relaxation.losses.binary import BinaryLabelRelaxation, binary_label_relaxation
from keras_label_relaxation.losses.label_relaxation import (
    LabelRelaxation,
    SparseLabelRelaxation,
    label_relaxation,
    sparse_label_relaxation,
)
from keras_label_relaxation.losses.per_sample import PerSampleAlpha, alpha_targets
from keras_label_relaxation.losses.registry import (
    LOSS_ALIASES,
    LOSS_PARAMETERS,
    canonical_loss_name,
    get_loss,
)
from keras_label_relaxation.losses.robust import (
    GeneralizedCrossEntropy,
    SparseGeneralizedCrossEntropy,
    SparseSymmetricCrossEntropy,
    SymmetricCrossEntropy,
    generalized_cross_entropy,
    sparse_generalized_cross_entropy,
    sparse_symmetric_cross_entropy,
    symmetric_cross_entropy,
)
from keras_label_relaxation.losses.schedules import (
    AlphaSchedule,
    AlphaScheduler,
    AlphaState,
    ConstantAlpha,
    CosineAlpha,
    LinearAlpha,
    StepAlpha,
)
from keras_label_relaxation.losses.set_valued import (
    AmbiguationThreshold,
    DataAmbiguation,
    SetLabelRelaxation,
    candidate_sets,
    data_ambiguation,
    set_label_relaxation,
)

__all__ = [
    "AlphaSchedule",
    "AlphaScheduler",
    "AlphaState",
    "AmbiguationThreshold",
    "ConstantAlpha",
    "CosineAlpha",
    "LinearAlpha",
    "StepAlpha",
    "LOSS_ALIASES",
    "LOSS_PARAMETERS",
    "BinaryLabelRelaxation",
    "ConfidencePenalty",
    "DataAmbiguation",
    "LabelRelaxation",
    "PerSampleAlpha",
    "SetLabelRelaxation",
    "SparseCategoricalFocalCrossentropy",
    "SparseConfidencePenalty",
    "SparseLabelRelaxation",
    "SparseLabelSmoothing",
    "alpha_targets",
    "binary_label_relaxation",
    "candidate_sets",
    "canonical_loss_name",
    "confidence_penalty",
    "data_ambiguation",
    "get_loss",
    "label_relaxation",
    "set_label_relaxation",
    "sparse_categorical_focal_crossentropy",
    "sparse_confidence_penalty",
    "sparse_label_relaxation",
    "sparse_label_smoothing",
    "GeneralizedCrossEntropy",
    "SparseGeneralizedCrossEntropy",
    "SymmetricCrossEntropy",
    "SparseSymmetricCrossEntropy",
    "generalized_cross_entropy",
    "sparse_generalized_cross_entropy",
    "symmetric_cross_entropy",
    "sparse_symmetric_cross_entropy",
]
