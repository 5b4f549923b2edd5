"""keras-tuner integration: the loss parameter search of the paper."""

from keras_label_relaxation.tuning.hypermodel import (
    DEFAULT_GRIDS,
    OBJECTIVES,
    PAPER_GRIDS,
    LossHyperModel,
    get_objective,
)
from keras_label_relaxation.tuning.search import (
    FinalEpochGridSearch,
    ResumableGridSearchOracle,
    best_value,
    replica_batch_size,
    search,
)

__all__ = [
    "DEFAULT_GRIDS",
    "OBJECTIVES",
    "PAPER_GRIDS",
    "FinalEpochGridSearch",
    "LossHyperModel",
    "ResumableGridSearchOracle",
    "best_value",
    "get_objective",
    "replica_batch_size",
    "search",
]
