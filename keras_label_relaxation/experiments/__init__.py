"""Experiments: the runs that reproduce the paper's comparisons."""

from keras_label_relaxation.experiments.compare import (
    DEFAULT_LOSSES,
    LOSS_LABELS,
    TS_LABEL,
    compare,
)
from keras_label_relaxation.experiments.evaluation import evaluate_logits
from keras_label_relaxation.experiments.outputs import ComparisonResults, format_mean_std
from keras_label_relaxation.experiments.paper import PaperLearningRate, paper_sgd
from keras_label_relaxation.experiments.ranks import average_ranks, competition_ranks
from keras_label_relaxation.experiments.reproduction import Reproduction, reproduce

__all__ = [
    "DEFAULT_LOSSES",
    "LOSS_LABELS",
    "TS_LABEL",
    "ComparisonResults",
    "PaperLearningRate",
    "Reproduction",
    "average_ranks",
    "compare",
    "competition_ranks",
    "evaluate_logits",
    "format_mean_std",
    "paper_sgd",
    "reproduce",
]
