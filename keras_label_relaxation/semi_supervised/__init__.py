"""Semi-supervised training: credal self-training (CSSL) and the hard pseudo-label baseline."""

from keras_label_relaxation.semi_supervised.credal import credal_targets, hard_pseudo_labels
from keras_label_relaxation.semi_supervised.training import (
    METHODS,
    SelfTraining,
    SemiSupervisedBatches,
)

__all__ = [
    "METHODS",
    "SelfTraining",
    "SemiSupervisedBatches",
    "credal_targets",
    "hard_pseudo_labels",
]
