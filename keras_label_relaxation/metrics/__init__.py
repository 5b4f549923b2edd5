"""Calibration metrics and reliability diagrams."""

from keras_label_relaxation.metrics.calibration_error import (
    BrierScore,
    ClasswiseExpectedCalibrationError,
    ExpectedCalibrationError,
    MaximumCalibrationError,
    brier_score,
    expected_calibration_error,
)
from keras_label_relaxation.metrics.reliability import reliability_diagram

__all__ = [
    "BrierScore",
    "ClasswiseExpectedCalibrationError",
    "ExpectedCalibrationError",
    "MaximumCalibrationError",
    "brier_score",
    "expected_calibration_error",
    "reliability_diagram",
]
