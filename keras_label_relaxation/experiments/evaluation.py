"""Test-set scores of a trained model's logits: accuracy, NLL, Brier and every calibration error."""

import keras
import numpy as np

from keras_label_relaxation.metrics import (
    ExpectedCalibrationError,
    brier_score,
    calibration_error,
    ks_calibration_error,
    smooth_calibration_error,
)

#: Bins of the reported ECE (the paper's 15).
NUM_BINS = 15

#: Every score ``evaluate_logits`` reports: name -> (table heading, whether higher is better).
METRICS = {
    "accuracy": ("Acc.", True),
    "ece": ("ECE", False),
    "nll": ("NLL", False),
    "brier": ("Brier", False),
    "rms": ("RMS CE", False),
    "mce": ("MCE", False),
    # Top-label ECE with equal-mass bins (netcal's ACE); Nixon et al.'s ACE is class-wise.
    "equal_mass_ece": ("emECE", False),
    "debiased_ece": ("dECE", False),
    "classwise_ece": ("cwECE", False),
    "ks": ("KS", False),
    "smece": ("smECE", False),
}
#: The columns of the results table unless chosen otherwise (``klr compare --metrics``).
TABLE_METRICS = ("accuracy", "ece", "nll", "brier")


def _calibration_errors(labels, probs, num_bins):
    """The estimators beyond the paper's ECE (``metrics.calibration_error`` and friends)."""
    scores = {
        "rms": calibration_error(labels, probs, num_bins, norm="l2"),
        "mce": calibration_error(labels, probs, num_bins, norm="max"),
        "equal_mass_ece": calibration_error(labels, probs, num_bins, binning="equal_mass"),
        "debiased_ece": calibration_error(labels, probs, num_bins, debiased=True),
        "classwise_ece": calibration_error(labels, probs, num_bins, mode="classwise"),
        "ks": ks_calibration_error(labels, probs),
    }
    scores["smece"], scores["smece_bandwidth"] = smooth_calibration_error(
        labels, probs, return_bandwidth=True
    )
    return scores


def top_label_outcomes(logits, labels):
    """Per test example: the top-label confidence and whether the arg-max is right.

    What the bootstrap intervals and the smoothed reliability curves resample
    (``(N,)`` float64 and bool; NaN confidences for non-finite logits).
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    confidence = 1.0 / np.exp(shifted).sum(-1)
    return confidence, logits.argmax(-1) == np.asarray(labels)


def evaluate_logits(logits, labels, num_bins=NUM_BINS):
    """Every score of ``METRICS`` and the ECE bins of test logits, in float64.

    Logits with a non-finite entry (a diverged model) give NaN for every score,
    not the accuracy of an argmax over NaN.

    Args:
        logits: ``(N, K)`` logits.
        labels: ``(N,)`` integer class ids.
        num_bins: ECE bins (the paper: 15).

    Returns:
        ``{name: float for name in METRICS, "smece_bandwidth": float, "bins": {"bin_weight",
        "bin_confidence", "bin_correct": list}}``.

    Example:
    >>> scores = evaluate_logits(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
    >>> round(scores["accuracy"], 3), round(scores["nll"], 3)
    (0.5, 0.72)
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    probs = np.exp(log_probs)
    metric = ExpectedCalibrationError(num_bins=num_bins)
    metric.update_state(labels, probs)
    bins = {
        name: keras.ops.convert_to_numpy(getattr(metric, name)).astype(float).tolist()
        for name in ("bin_weight", "bin_confidence", "bin_correct")
    }
    scores = {
        "accuracy": float(np.mean(probs.argmax(-1) == labels)),
        "ece": float(metric.result()),
        "nll": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
        "brier": float(np.mean(keras.ops.convert_to_numpy(brier_score(labels, probs)))),
    }
    if not np.isfinite(logits).all():
        scores = dict.fromkeys([*METRICS, "smece_bandwidth"], float("nan"))
    else:
        scores.update(_calibration_errors(labels, probs, num_bins))
    return {**scores, "bins": bins}
