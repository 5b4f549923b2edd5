"""Calibration metrics: top-label ECE and MCE, classwise ECE, Brier score.

Binning rule (the paper's reference code, Guo et al. 2017): ``B`` equal-width
bins ``[lo, hi)``; a confidence ``c`` falls into bin ``min(floor(c B), B - 1)``,
so a confidence of exactly 1.0 is in the last bin.

The math lives in three private helpers shared by the NumPy-level function and
the ``keras.metrics.Metric`` classes: ``_prepare`` (labels, probabilities and
weights as flat tensors), ``_top_label_bins`` (per-bin weight, summed
confidence, summed correctness) and ``_ece_from_bins``/``_mce_from_bins``. The
per-bin sums are additive, so a metric's state is ``O(num_bins)`` (``O(K
num_bins)`` for the classwise ECE): it never stores predictions, sums across
replicas under ``tf.distribute`` and does not depend on how the data was
batched.
"""

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def _check_num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(
            "Invalid value for argument `num_bins`. Expected an integer >= 1. "
            f"Received: num_bins={num_bins!r}"
        )
    return int(num_bins)


def _check_probabilities(probs):
    """In eager mode, rows of ``probs`` must lie in [0, 1] and sum to 1 (within 1e-3).

    The check runs as tensor ops; only its boolean verdict leaves the device.
    """
    if not _numerics.is_concrete(probs):
        return
    tolerance = _numerics.DISTRIBUTION_TOLERANCE
    in_range = ops.logical_and(ops.all(probs >= 0.0), ops.all(probs <= 1.0))
    sums_to_one = ops.all(ops.abs(ops.sum(probs, axis=-1) - 1.0) <= tolerance)
    if not bool(ops.convert_to_numpy(ops.logical_and(in_range, sums_to_one))):
        raise ValueError(
            "Invalid value for `y_pred`: with `from_logits=False` every row must hold "
            f"probabilities in [0, 1] summing to 1 (within {tolerance}). Pass "
            "`from_logits=True` for logits."
        )


def _prepare(y_true, y_pred, sample_weight, from_logits):
    """Flatten to ``labels (N,)``, ``probs (N, K)``, ``weights (N,)``.

    ``y_true`` holds integer class ids (shape ``y_pred.shape[:-1]``, optionally
    with a trailing 1) or one-hot rows (shape ``y_pred.shape``), told apart by
    rank.
    """
    y_pred = _numerics.cast_prediction(y_pred)
    num_classes = y_pred.shape[-1]
    probs = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
    if not from_logits:
        _check_probabilities(probs)
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == num_classes != 1:
        y_true = ops.argmax(y_true, axis=-1)
    else:
        y_true = _numerics.squeeze_sparse_labels(y_true, y_pred)
    _numerics.check_sparse_shapes(y_true, y_pred)
    _numerics.check_class_ids(y_true, num_classes)
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    probs = ops.reshape(probs, (-1, num_classes))
    if sample_weight is None:
        weights = ops.ones_like(probs[:, 0])
    else:
        sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), probs.dtype)
        weights = ops.reshape(ops.broadcast_to(sample_weight, ops.shape(y_true)), (-1,))
    return labels, probs, weights


def _bin_index(confidence, num_bins):
    # Confidences are >= 0, so the cast's truncation is the floor. Not ops.floor: Keras'
    # torch backend rounds a float64 argument to float32 first (0.4 - 1e-9 lands in bin 6).
    index = ops.cast(confidence * num_bins, "int32")
    return ops.clip(index, 0, num_bins - 1)


def _bin_sums(confidence, correct, weights, num_bins):
    """Per-bin (weight, summed confidence, summed correctness) as one segment sum."""
    stacked = ops.stack([weights, weights * confidence, weights * correct], axis=-1)
    sums = _numerics.segment_sum(stacked, _bin_index(confidence, num_bins), num_bins)
    return sums[:, 0], sums[:, 1], sums[:, 2]


def _top_label_bins(labels, probs, weights, num_bins):
    """Per-bin (weight, summed confidence, summed correctness), each ``(num_bins,)``.

    ``top_k(k=1)`` yields the confidence and the arg-max in one pass (ties go to
    the lowest index, as ``argmax``).
    """
    confidence, predicted = ops.top_k(probs, k=1)
    correct = ops.equal(ops.cast(predicted[:, 0], "int32"), labels)
    return _bin_sums(confidence[:, 0], ops.cast(correct, probs.dtype), weights, num_bins)


def _safe_divide(numerator, denominator):
    """``numerator / denominator``, 0 where the denominator is 0.

    Not ``ops.divide_no_nan``: Keras' torch backend computes it in float32.
    """
    nonzero = denominator > 0
    safe = ops.where(nonzero, denominator, ops.ones_like(denominator))
    return ops.where(nonzero, numerator / safe, ops.zeros_like(numerator))


def _ece_from_bins(weight, confidence, correct):
    """``sum_b (n_b / N) |acc_b - conf_b| = sum_b |correct_b - confidence_b| / N``."""
    return _safe_divide(ops.sum(ops.abs(correct - confidence), axis=-1), ops.sum(weight, axis=-1))


def _mce_from_bins(weight, confidence, correct):
    """``max_b |acc_b - conf_b|`` over the non-empty bins."""
    return ops.max(_safe_divide(ops.abs(correct - confidence), weight), axis=-1)


def expected_calibration_error(y_true, probs, num_bins=15, sample_weight=None):
    """Top-label expected calibration error of predicted probabilities (arrays in, float out).

    With confidence ``c_i = max_k p_ik``, prediction ``argmax_k p_ik`` and bin
    ``b(i) = min(floor(c_i B), B - 1)``:

        ECE = sum_b (n_b / N) |acc_b - conf_b|

    Args:
        y_true: Integer class ids ``(N,)`` or one-hot rows ``(N, K)`` (told
            apart by rank).
        probs: Predicted probabilities ``(N, K)``; rows must lie in [0, 1] and
            sum to 1 within 1e-3.
        num_bins: Number of equal-width bins ``B`` (the paper uses 15).
        sample_weight: Optional weights ``(N,)``; an integer weight counts like
            repeating the sample.

    Returns:
        The ECE as a Python float in [0, 1].

    Example:
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], num_bins=10)
    0.45
    """
    num_bins = _check_num_bins(num_bins)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"`probs` must have shape (N, K) with N >= 1. Received: probs.shape={probs.shape}"
        )
    labels, probs, weights = _prepare(y_true, probs, sample_weight, from_logits=False)
    return float(_ece_from_bins(*_top_label_bins(labels, probs, weights, num_bins)))


class _BinnedCalibrationMetric(keras.metrics.Metric):
    """State: per-bin weight, summed confidence and summed correctness."""

    def __init__(self, num_bins, from_logits, name, dtype, state_shape=()):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = _check_num_bins(num_bins)
        self.from_logits = bool(from_logits)
        shape = (*state_shape, self.num_bins)
        for state in ("bin_weight", "bin_confidence", "bin_correct"):
            variable = self.add_variable(
                shape=shape, initializer="zeros", dtype=self.dtype, aggregation="sum", name=state
            )
            setattr(self, state, variable)

    def _bins(self, labels, probs, weights):
        return _top_label_bins(labels, probs, weights, self.num_bins)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, probs, weights = _prepare(y_true, y_pred, sample_weight, self.from_logits)
        for variable, value in zip(
            (self.bin_weight, self.bin_confidence, self.bin_correct),
            self._bins(labels, probs, weights),
        ):
            variable.assign_add(ops.cast(value, self.dtype))

    def _state(self):
        """The three bin sums as tensors (JAX ops do not take Keras variables)."""
        state = (self.bin_weight, self.bin_confidence, self.bin_correct)
        return tuple(ops.convert_to_tensor(v) for v in state)

    def reset_state(self):
        for variable in (self.bin_weight, self.bin_confidence, self.bin_correct):
            # ops.zeros, not ops.zeros_like(variable): the latter fails on JAX.
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "from_logits": self.from_logits}


@_SERIALIZABLE
class ExpectedCalibrationError(_BinnedCalibrationMetric):
    """Top-label expected calibration error (Guo et al., 2017), streaming.

        ECE = sum_b (n_b / N) |acc_b - conf_b|,   b(i) = min(floor(c_i B), B - 1)

    with confidence ``c_i = max_k p_ik`` and accuracy of the arg-max
    prediction. The state is three ``(num_bins,)`` sums, so the value does not
    depend on batching and aggregates across replicas by summation.

    Args:
        num_bins: Number of equal-width bins (the paper: 15).
        from_logits: Whether ``y_pred`` holds logits (a softmax is applied).
        name: Metric name (``"ece"``: ``History`` gets ``ece``/``val_ece``).
        dtype: Dtype of the state.

    Shapes: ``y_pred`` is ``(..., K)``; ``y_true`` integer ids ``(...)`` or
    one-hot ``(..., K)``; ``sample_weight`` broadcastable to ``(...)``.

    Example:
    >>> m = ExpectedCalibrationError(num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.45
    """

    def __init__(self, num_bins=15, from_logits=False, name="ece", dtype=None):
        super().__init__(num_bins, from_logits, name, dtype)

    def result(self):
        return _ece_from_bins(*self._state())


@_SERIALIZABLE
class MaximumCalibrationError(_BinnedCalibrationMetric):
    """Top-label maximum calibration error: ``max_b |acc_b - conf_b|`` over non-empty bins.

    Same binning and state as ``ExpectedCalibrationError``.

    Args:
        num_bins: Number of equal-width bins.
        from_logits: Whether ``y_pred`` holds logits.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = MaximumCalibrationError(num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.8
    """

    def __init__(self, num_bins=15, from_logits=False, name="mce", dtype=None):
        super().__init__(num_bins, from_logits, name, dtype)

    def result(self):
        return _mce_from_bins(*self._state())


@_SERIALIZABLE
class ClasswiseExpectedCalibrationError(_BinnedCalibrationMetric):
    """Classwise (marginal) ECE: the ECE of every class' probability, averaged.

        cwECE = (1 / K) sum_k sum_b (n_kb / N) |acc_kb - conf_kb|

    where for class ``k`` every sample's ``p_k`` is binned, ``conf_kb`` is the
    mean ``p_k`` in bin ``b`` and ``acc_kb`` the fraction of those samples whose
    label is ``k`` (Kull et al., 2019). State: three ``(K, num_bins)`` sums.

    Args:
        num_classes: Number of classes ``K``.
        num_bins: Number of equal-width bins.
        from_logits: Whether ``y_pred`` holds logits.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = ClasswiseExpectedCalibrationError(num_classes=2, num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.45
    """

    def __init__(
        self, num_classes, num_bins=15, from_logits=False, name="classwise_ece", dtype=None
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an integer >= 2. "
                f"Received: num_classes={num_classes!r}"
            )
        if num_classes < 2:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an integer >= 2. "
                f"Received: num_classes={num_classes}"
            )
        self.num_classes = int(num_classes)
        super().__init__(num_bins, from_logits, name, dtype, state_shape=(self.num_classes,))

    def _bins(self, labels, probs, weights):
        k, b = self.num_classes, self.num_bins
        if probs.shape[-1] != k:
            raise ValueError(
                f"`y_pred` has {probs.shape[-1]} classes but the metric was built with "
                f"num_classes={k}."
            )
        classes = ops.arange(k, dtype="int32")
        segments = ops.reshape(classes * b + _bin_index(probs, b), (-1,))
        hit = ops.cast(ops.equal(labels[:, None], classes[None, :]), probs.dtype)
        w = ops.broadcast_to(weights[:, None], ops.shape(probs))

        def per_bin(values):
            summed = _numerics.segment_sum(ops.reshape(values, (-1,)), segments, k * b)
            return ops.reshape(summed, (k, b))

        return per_bin(w), per_bin(w * probs), per_bin(w * hit)

    def result(self):
        return ops.mean(_ece_from_bins(*self._state()))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def brier_score(y_true, y_pred, from_logits=False):
    """Multi-class Brier score per sample: ``sum_k (p_k - y_k)^2``.

    Args:
        y_true: Integer class ids ``(...)`` or target rows ``(..., K)`` (one-hot
            or soft), told apart by rank.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        from_logits: Whether ``y_pred`` holds logits.

    Returns:
        Per-sample scores in [0, 2], shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> np.round(np.asarray(brier_score([0, 1], np.array([[0.9, 0.1], [0.8, 0.2]], "float32"))), 4)
    array([0.02, 1.28], dtype=float32)
    """
    y_pred = _numerics.cast_prediction(y_pred)
    probs = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
    y_true = ops.convert_to_tensor(y_true)
    num_classes = y_pred.shape[-1]
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == num_classes != 1:
        y_true = ops.cast(y_true, probs.dtype)
        _numerics.check_dense_shapes(y_true, probs)
        return ops.sum(ops.square(probs - y_true), axis=-1)
    y_true = _numerics.squeeze_sparse_labels(y_true, y_pred)
    _numerics.check_sparse_shapes(y_true, y_pred)
    _numerics.check_class_ids(y_true, num_classes)
    # sum_k (p_k - e_y)^2 = sum_k p_k^2 - 2 p_y + 1, without a one-hot tensor.
    return ops.sum(ops.square(probs), axis=-1) - 2.0 * _numerics.gather_class(probs, y_true) + 1.0


@_SERIALIZABLE
class BrierScore(keras.metrics.MeanMetricWrapper):
    """Mean multi-class Brier score ``sum_k (p_k - y_k)^2`` (Brier, 1950).

    Args:
        from_logits: Whether ``y_pred`` holds logits.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = BrierScore()
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.65
    """

    def __init__(self, from_logits=False, name="brier_score", dtype=None):
        super().__init__(brier_score, name=name, dtype=dtype, from_logits=bool(from_logits))
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits}
