"""Expected calibration error (Guo et al., 2017) with the paper's binning."""

import numpy as np


def _check_num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(
            "Invalid value for argument `num_bins`. Expected an integer >= 1. "
            f"Received: num_bins={num_bins!r}"
        )
    return int(num_bins)


def expected_calibration_error(y_true, probs, num_bins=15):
    """Top-label expected calibration error of predicted probabilities (NumPy).

    With confidence ``c_i = max_k p_ik``, prediction ``argmax_k p_ik`` and
    equal-width bins ``b = min(floor(c_i B), B - 1)`` (bins are ``[lo, hi)``;
    a confidence of exactly 1.0 falls into the last bin):

        ECE = sum_b (n_b / N) |acc_b - conf_b|

    Args:
        y_true: Integer class ids of shape ``(N,)`` or one-hot rows ``(N, K)``
            (told apart by rank).
        probs: Predicted probabilities, shape ``(N, K)``; rows must lie in
            [0, 1] and sum to 1 within 1e-3.
        num_bins: Number of equal-width bins ``B`` (the paper uses 15).

    Returns:
        The ECE as a Python float in [0, 1].

    Example:
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], num_bins=10)
    0.45
    """
    num_bins = _check_num_bins(num_bins)
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(y_true)
    if probs.ndim != 2:
        raise ValueError(f"`probs` must have shape (N, K). Received: probs.shape={probs.shape}")
    if labels.ndim == 2:
        labels = labels.argmax(axis=-1)
    if labels.shape != probs.shape[:1]:
        raise ValueError(
            "`y_true` must hold one class id (or one-hot row) per row of `probs`. "
            f"Received: y_true.shape={np.shape(y_true)}, probs.shape={probs.shape}"
        )
    if probs.shape[0] == 0:
        raise ValueError("`probs` is empty: the ECE of no predictions is undefined.")
    if (probs < 0).any() or (probs > 1).any() or (np.abs(probs.sum(-1) - 1) > 1e-3).any():
        raise ValueError(
            "`probs` must hold probabilities: entries in [0, 1], rows summing to 1 (within 1e-3)."
        )
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
    bins = np.minimum(np.floor(confidence * num_bins).astype(np.int64), num_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=num_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=num_bins)
    return float(np.abs(correct_sum - conf_sum).sum() / probs.shape[0])
