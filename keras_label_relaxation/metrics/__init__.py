"""Calibration metrics and reliability diagrams."""

from keras_label_relaxation.metrics.calibration_error import (
    BrierScore,
    ClasswiseExpectedCalibrationError,
    ExpectedCalibrationError,
    MaximumCalibrationError,
    brier_score,
    expected_calibration_error,
)
from keras_label_relaxation.metrics.estimators import (
    CalibrationError,
    CalibrationEstimate,
    KSCalibrationError,
    SmoothCalibrationError,
    calibration_error,
    ks_calibration_error,
    smooth_calibration_error,
)
from keras_label_relaxation.metrics.reliability import reliability_diagram

__all__ = [
    "BrierScore",
    "CalibrationError",
    "CalibrationEstimate",
    "ClasswiseExpectedCalibrationError",
    "ExpectedCalibrationError",
    "KSCalibrationError",
    "MaximumCalibrationError",
    "SmoothCalibrationError",
    "brier_score",
    "calibration_error",
    "expected_calibration_error",
    "ks_calibration_error",
    "reliability_diagram",
    "smooth_calibration_error",
]
