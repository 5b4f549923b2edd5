"""Experiments: the runs that reproduce the paper's comparisons."""

from keras_label_relaxation.experiments.demo import run_demo

__all__ = ["run_demo"]
