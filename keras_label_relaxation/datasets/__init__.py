"""Data sets for the paper's experiments."""

from keras_label_relaxation.datasets.digits import load_digits

__all__ = ["load_digits"]
