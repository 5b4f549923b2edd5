"""The NumPy ECE against an explicit per-sample loop over the paper's binning."""

import numpy as np
import pytest

from keras_label_relaxation import expected_calibration_error
from tests.oracle import ece_loop as _ece_loop


@pytest.mark.parametrize("num_bins", [1, 10, 15])
def test_matches_loop_on_random_predictions(rng, num_bins):
    probs = rng.dirichlet(np.full(10, 0.3), size=500)
    labels = rng.integers(0, 10, 500)
    expected = _ece_loop(labels, probs, num_bins)
    assert expected_calibration_error(labels, probs, num_bins) == pytest.approx(expected, abs=1e-12)
    one_hot = np.eye(10)[labels]
    assert expected_calibration_error(one_hot, probs, num_bins) == pytest.approx(
        expected, abs=1e-12
    )


def test_adversarial_confidences_on_bin_edges():
    # Confidences exactly on edges k/15 (representable ones) and exactly 1.0.
    conf = np.array([1.0, 1.0, 0.6, 0.2, 0.4])
    probs = np.stack([conf, 1 - conf], axis=-1)
    labels = np.array([0, 1, 0, 1, 1])
    assert expected_calibration_error(labels, probs, 15) == pytest.approx(
        _ece_loop(labels, probs, 15), abs=1e-12
    )
    # All predictions in one bin.
    probs = np.full((4, 2), 0.5)
    assert expected_calibration_error([0, 0, 1, 1], probs, 15) == pytest.approx(0.0)


def test_perfect_and_worst_calibration():
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    assert expected_calibration_error([1, 0], [[1.0, 0.0], [0.0, 1.0]]) == 1.0


@pytest.mark.parametrize("num_bins", [0, -1, 1.5, True])
def test_bad_num_bins(num_bins):
    with pytest.raises(ValueError, match="`num_bins`"):
        expected_calibration_error([0], [[1.0, 0.0]], num_bins)


def test_bad_probabilities_and_shapes():
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([0], [[0.7, 0.7]])
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([0], [[1.2, -0.2]])
    with pytest.raises(ValueError, match="N >= 1"):
        expected_calibration_error(np.zeros(0, int), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="y_true.shape"):
        expected_calibration_error([0, 1], [[1.0, 0.0]])
