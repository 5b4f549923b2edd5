"""Test-set scores of a trained model's logits: accuracy, ECE, NLL, Brier score."""

import keras
import numpy as np

from keras_label_relaxation.metrics import ExpectedCalibrationError, brier_score

#: Bins of the reported ECE (the paper's 15).
NUM_BINS = 15


def evaluate_logits(logits, labels, num_bins=NUM_BINS):
    """Accuracy, ECE, NLL, Brier score and the ECE bins of test logits, in float64.

    Logits with a non-finite entry (a diverged model) give NaN for every score,
    not the accuracy of an argmax over NaN.

    Args:
        logits: ``(N, K)`` logits.
        labels: ``(N,)`` integer class ids.
        num_bins: ECE bins (the paper: 15).

    Returns:
        ``{"accuracy", "ece", "nll", "brier": float, "bins": {"bin_weight",
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
        scores = dict.fromkeys(scores, float("nan"))
    return {**scores, "bins": bins}
