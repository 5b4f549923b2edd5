"""Calibration metrics."""

from keras_label_relaxation.metrics.calibration_error import expected_calibration_error

__all__ = ["expected_calibration_error"]
