"""Post-hoc calibration: temperature scaling."""

from keras_label_relaxation.calibration.temperature import (
    PAPER_TEMPERATURE_GRID,
    GridEdgeWarning,
    TemperatureScaling,
    calibrate,
)

__all__ = ["PAPER_TEMPERATURE_GRID", "GridEdgeWarning", "TemperatureScaling", "calibrate"]
