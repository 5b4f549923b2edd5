"""Experiments: the runs that reproduce the paper's comparisons."""

from keras_label_relaxation.experiments.compare import (
    DEFAULT_LOSSES,
    LOSS_LABELS,
    TS_LABEL,
    ComparisonResults,
    compare,
    default_optimizer,
)
from keras_label_relaxation.experiments.demo import run_demo
from keras_label_relaxation.experiments.ranks import average_ranks, competition_ranks

__all__ = [
    "DEFAULT_LOSSES",
    "LOSS_LABELS",
    "TS_LABEL",
    "ComparisonResults",
    "average_ranks",
    "compare",
    "competition_ranks",
    "default_optimizer",
    "run_demo",
]
