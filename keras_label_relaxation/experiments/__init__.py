"""Experiments: the runs that reproduce the paper's comparisons."""

from keras_label_relaxation.experiments.compare import compare
from keras_label_relaxation.experiments.evaluation import (
    METRICS,
    TABLE_METRICS,
    evaluate_logits,
    top_label_outcomes,
)
from keras_label_relaxation.experiments.outputs import (
    ComparisonResults,
    format_mean_std,
    format_score,
    reliability_figure,
    smoothed_reliability,
)
from keras_label_relaxation.experiments.paper import PaperLearningRate, paper_sgd
from keras_label_relaxation.experiments.protocol import DEFAULT_LOSSES, LOSS_LABELS, TS_LABEL
from keras_label_relaxation.experiments.ranks import average_ranks, competition_ranks
from keras_label_relaxation.experiments.reproduction import Reproduction, reproduce
from keras_label_relaxation.experiments.summary import comparison_marks, summarise

__all__ = [
    "DEFAULT_LOSSES",
    "LOSS_LABELS",
    "METRICS",
    "TABLE_METRICS",
    "TS_LABEL",
    "ComparisonResults",
    "PaperLearningRate",
    "Reproduction",
    "average_ranks",
    "compare",
    "comparison_marks",
    "competition_ranks",
    "evaluate_logits",
    "format_mean_std",
    "format_score",
    "paper_sgd",
    "reliability_figure",
    "reproduce",
    "smoothed_reliability",
    "summarise",
    "top_label_outcomes",
]
