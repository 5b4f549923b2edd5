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


def _check_integer(value, name, minimum, condition=""):
    """``value`` as an ``int`` if it is an integer >= ``minimum``; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer >= {minimum}"
            f"{condition}. Received: {name}={value!r}"
        )
    return int(value)


def _check_num_bins(num_bins):
    return _check_integer(num_bins, "num_bins", 1)


def _probabilities(y_pred, from_logits, validate_args):
    """``(probs, valid)``: probabilities in the compute dtype and, when they were given as
    such (``from_logits=False``), per row whether it is a distribution (else ``None``)."""
    y_pred, valid = _numerics.predictions(y_pred, from_logits, validate_args)
    return (ops.softmax(y_pred, axis=-1) if from_logits else y_pred), valid


def _check_one_hot(rows):
    if _numerics.is_concrete(rows) and not bool(
        ops.convert_to_numpy(ops.all(_numerics.one_hot_rows_valid(rows)))
    ):
        raise ValueError(
            "Invalid value in `y_true`: rows of the shape of `y_pred` must be one-hot "
            "(calibration is measured against one true class per sample); pass integer "
            "class ids otherwise."
        )


class _MergedWeights(keras.losses.Loss):
    """Keras' own merge of ``y_pred``'s mask with ``sample_weight``, per sample.

    ``keras.losses.Loss.__call__`` reads the mask Keras attaches to ``y_pred``
    (``Masking``, ``Embedding(mask_zero=True)``), merges it with
    ``sample_weight`` and brings a weight of shape ``(N, 1)`` to the rank of
    the per-sample values, exactly as for Keras' own losses and metrics. With
    ``reduction=None`` and per-sample values of 1 the result *is* that weight.
    """

    def __init__(self, dtype):
        super().__init__(name="merged_weights", reduction=None, dtype=dtype)

    def call(self, y_true, y_pred):
        return ops.ones_like(y_pred[..., 0])


_MERGED_WEIGHTS = {}


def _merged_weights(y_pred, sample_weight, dtype):
    """Per-sample weights ``y_pred.shape[:-1]`` from the mask and ``sample_weight``."""
    if dtype not in _MERGED_WEIGHTS:
        _MERGED_WEIGHTS[dtype] = _MergedWeights(dtype)
    return _MERGED_WEIGHTS[dtype](0.0, y_pred, sample_weight=sample_weight)


def _prepare(y_true, y_pred, sample_weight, from_logits, validate_args=False):
    """Flatten to ``labels (N,)``, ``probs (N, K)``, ``weights (N,)``.

    ``y_true`` holds integer class ids (shape ``y_pred.shape[:-1]``, optionally
    with a trailing 1) or one-hot rows (shape ``y_pred.shape``), told apart by
    rank. The weights merge ``y_pred``'s Keras mask with ``sample_weight`` (as
    Keras' metrics do). A sample whose prediction row is not a distribution
    (``from_logits=False``), whose label is not a class id or whose one-hot
    row is not one-hot gets the weight NaN: every result it enters is NaN, in
    compiled steps too. Masked samples (weight 0) are never poisoned.
    """
    # A backend tensor carries its mask (convert_to_tensor returns it as it is); an array
    # has none and is converted once only.
    if isinstance(y_pred, (np.ndarray, np.generic, list, tuple, int, float)):
        y_pred = _numerics.as_tensor(y_pred)
    dtype = _numerics.compute_dtype(y_pred.dtype)
    weights = _merged_weights(y_pred, sample_weight, dtype)
    probs, valid = _probabilities(y_pred, from_logits, validate_args)
    num_classes = probs.shape[-1]
    y_true = _numerics.as_tensor(y_true)
    if len(y_true.shape) == len(probs.shape) and y_true.shape[-1] == num_classes != 1:
        y_true = ops.cast(y_true, dtype)
        _numerics.check_dense_shapes(y_true, probs)
        if validate_args:
            _check_one_hot(y_true)
        target_valid = _numerics.one_hot_rows_valid(y_true)
        labels = ops.cast(ops.argmax(y_true, axis=-1), "int32")
    else:
        labels, target_valid = _numerics.sparse_targets(y_true, probs, validate_args)
    valid = _numerics.all_valid(target_valid, valid)
    # Keras brings a weight of shape (..., 1) to rank (..., 1) too: flatten both.
    weights, valid = ops.reshape(weights, (-1,)), ops.reshape(valid, (-1,))
    weights = ops.where(
        ops.logical_or(valid, ops.equal(weights, 0.0)),
        weights,
        ops.full_like(weights, float("nan")),
    )
    return ops.reshape(labels, (-1,)), ops.reshape(probs, (-1, num_classes)), weights


def _bin_index(confidence, num_bins):
    # Confidences are >= 0, so the cast's truncation is the floor. Not ops.floor: Keras'
    # torch backend rounds a float64 argument to float32 first (0.4 - 1e-9 lands in bin 6).
    index = ops.cast(confidence * num_bins, "int32")
    return ops.clip(index, 0, num_bins - 1)


def _bin_sums(confidence, correct, weights, num_bins):
    """Per-bin (weight, summed confidence, summed correctness), three segment sums."""
    index = _bin_index(confidence, num_bins)
    return tuple(
        _numerics.segment_sum(values, index, num_bins)
        for values in (weights, weights * confidence, weights * correct)
    )


def _top_label(labels, probs):
    """``(confidence, correct)``: ``max_k p_k`` and whether ``argmax_k p_k`` (the lowest
    index on ties) is the label, in ``probs``' dtype."""
    confidence, predicted = _numerics.max_and_argmax(probs)
    return confidence, ops.cast(ops.equal(predicted, labels), probs.dtype)


def _top_label_bins(labels, probs, weights, num_bins):
    """Per-bin (weight, summed confidence, summed correctness), each ``(num_bins,)``."""
    return _bin_sums(*_top_label(labels, probs), weights, num_bins)


def _classwise_bins(labels, probs, weights, num_bins, num_classes):
    """Per (class, bin) weight, summed ``p_k`` and summed ``[y = k]``, each ``(K, num_bins)``.

    Every sample enters each class' curve with ``p_k`` at bin ``b(p_k)``; only its
    label's curve counts it as a hit, so the hit sums take ``N`` entries, not ``N K``.
    ``probs`` must have the ``num_classes`` columns the metric's state was built for.
    """
    k = probs.shape[-1]
    if k != num_classes:
        raise ValueError(
            f"`y_pred` has {k} classes but the metric was built with num_classes={num_classes}."
        )
    offsets = ops.arange(k, dtype="int32") * num_bins
    cells = ops.reshape(offsets + _bin_index(probs, num_bins), (-1,))
    spread = ops.broadcast_to(weights[:, None], ops.shape(probs))
    label_cells = labels * num_bins + _bin_index(_numerics.gather_class(probs, labels), num_bins)
    sums = (
        _numerics.segment_sum(ops.reshape(spread, (-1,)), cells, k * num_bins),
        _numerics.segment_sum(ops.reshape(spread * probs, (-1,)), cells, k * num_bins),
        _numerics.segment_sum(weights, label_cells, k * num_bins),
    )
    return tuple(ops.reshape(v, (k, num_bins)) for v in sums)


def _safe_divide(numerator, denominator):
    """``numerator / denominator``, 0 where the denominator is exactly 0.

    A NaN denominator stays NaN. Not ``ops.divide_no_nan``: Keras' torch
    backend computes it in float32.
    """
    nonzero = ops.not_equal(denominator, 0.0)
    safe = ops.where(nonzero, denominator, ops.ones_like(denominator))
    return ops.where(nonzero, numerator / safe, ops.zeros_like(numerator))


def _nan_if_poisoned(value, weight):
    """NaN wherever a bin weight of the same calibration curve is NaN.

    Reductions such as ``max`` need not propagate NaN on every backend; this
    makes a metric that saw an invalid sample NaN, never a finite number.
    """
    poisoned = ops.any(ops.isnan(weight), axis=-1)
    return ops.where(poisoned, ops.full_like(value, float("nan")), value)


def _ece_from_bins(weight, confidence, correct):
    """``sum_b (n_b / N) |acc_b - conf_b| = sum_b |correct_b - confidence_b| / N``."""
    ece = _safe_divide(ops.sum(ops.abs(correct - confidence), axis=-1), ops.sum(weight, axis=-1))
    return _nan_if_poisoned(ece, weight)


def _mce_from_bins(weight, confidence, correct):
    """``max_b |acc_b - conf_b|`` over the non-empty bins."""
    mce = ops.max(_safe_divide(ops.abs(correct - confidence), weight), axis=-1)
    return _nan_if_poisoned(mce, weight)


def expected_calibration_error(y_true, probs, num_bins=15, sample_weight=None):
    """Top-label expected calibration error of predicted probabilities (arrays in, float out).

    With confidence ``c_i = max_k p_ik``, prediction ``argmax_k p_ik`` and bin
    ``b(i) = min(floor(c_i B), B - 1)``:

        ECE = sum_b (n_b / N) |acc_b - conf_b|

    Args:
        y_true: Integer class ids ``(N,)`` or one-hot rows ``(N, K)`` (told
            apart by rank).
        probs: Predicted probabilities ``(N, K)``; rows must lie in [0, 1] and
            sum to 1 within 1e-3 (checked: a ``ValueError`` otherwise).
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
    labels, probs, weights = _prepare(
        y_true, probs, sample_weight, from_logits=False, validate_args=True
    )
    return float(_ece_from_bins(*_top_label_bins(labels, probs, weights, num_bins)))


class _BinnedCalibrationMetric(keras.metrics.Metric):
    """State: per-bin weight, summed confidence and summed correctness over ``num_cells`` bins."""

    def __init__(self, num_cells, from_logits, validate_args, name, dtype, state_shape=()):
        super().__init__(name=name, dtype=dtype)
        self.num_cells = num_cells
        self.from_logits = bool(from_logits)
        self.validate_args = bool(validate_args)
        shape = (*state_shape, self.num_cells)
        for state in ("bin_weight", "bin_confidence", "bin_correct"):
            variable = self.add_variable(
                shape=shape, initializer="zeros", dtype=self.dtype, aggregation="sum", name=state
            )
            setattr(self, state, variable)

    def _bins(self, labels, probs, weights):
        return _top_label_bins(labels, probs, weights, self.num_cells)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, probs, weights = _prepare(
            y_true, y_pred, sample_weight, self.from_logits, self.validate_args
        )
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
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "validate_args": self.validate_args,
        }


class _EqualWidthMetric(_BinnedCalibrationMetric):
    """One state bin per equal-width bin."""

    def __init__(self, num_bins, from_logits, validate_args, name, dtype, state_shape=()):
        self.num_bins = _check_num_bins(num_bins)
        super().__init__(self.num_bins, from_logits, validate_args, name, dtype, state_shape)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


@_SERIALIZABLE
class ExpectedCalibrationError(_EqualWidthMetric):
    """Top-label expected calibration error (Guo et al., 2017), streaming.

        ECE = sum_b (n_b / N) |acc_b - conf_b|,   b(i) = min(floor(c_i B), B - 1)

    with confidence ``c_i = max_k p_ik`` and accuracy of the arg-max
    prediction. The state is three ``(num_bins,)`` sums, so the value does not
    depend on batching and aggregates across replicas by summation.

    Args:
        num_bins: Number of equal-width bins (the paper: 15).
        from_logits: Whether ``y_pred`` holds logits (a softmax is applied).
            Default ``False``, as every loss and metric of Keras and of this
            package: ``y_pred`` must then hold probabilities, and a batch
            with a row that is not a distribution (entries in [0, 1] summing
            to 1 within ``max(1e-3, 4 eps)`` of its dtype) makes the result
            NaN, in compiled ``fit``/``evaluate`` steps too: a logits model
            measured without ``from_logits=True`` reports ``ece: nan``, never
            a finite wrong number. The same holds for labels outside
            ``[0, K)`` and one-hot rows that are not one-hot.
        validate_args: Also raise ``ValueError`` on such inputs in eager
            calls (reads values on the host; off by default so that ``fit``
            never synchronises; on in ``expected_calibration_error``).
        name: Metric name (``"ece"``: ``History`` gets ``ece``/``val_ece``).
        dtype: Dtype of the state.

    Shapes: ``y_pred`` is ``(..., K)``; ``y_true`` integer ids ``(...)`` or
    ``(..., 1)``, or one-hot ``(..., K)``; ``sample_weight`` of shape
    ``(...)`` or ``(..., 1)``. A Keras mask on ``y_pred`` (``Masking``,
    ``Embedding(mask_zero=True)``) is merged into the weights as in Keras'
    own metrics: masked samples are not counted.

    Example:
    >>> m = ExpectedCalibrationError(num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.45
    """

    def __init__(self, num_bins=15, from_logits=False, validate_args=False, name="ece", dtype=None):
        super().__init__(num_bins, from_logits, validate_args, name, dtype)

    def result(self):
        return _ece_from_bins(*self._state())


@_SERIALIZABLE
class MaximumCalibrationError(_EqualWidthMetric):
    """Top-label maximum calibration error: ``max_b |acc_b - conf_b|`` over non-empty bins.

    Same binning and state as ``ExpectedCalibrationError``.

    Args:
        num_bins: Number of equal-width bins.
        from_logits: Whether ``y_pred`` holds logits (default ``False``;
            rows that are not distributions make the result NaN, see
            ``ExpectedCalibrationError``).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = MaximumCalibrationError(num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.8
    """

    def __init__(self, num_bins=15, from_logits=False, validate_args=False, name="mce", dtype=None):
        super().__init__(num_bins, from_logits, validate_args, name, dtype)

    def result(self):
        return _mce_from_bins(*self._state())


@_SERIALIZABLE
class ClasswiseExpectedCalibrationError(_EqualWidthMetric):
    """Classwise (marginal) ECE: the ECE of every class' probability, averaged.

        cwECE = (1 / K) sum_k sum_b (n_kb / N) |acc_kb - conf_kb|

    where for class ``k`` every sample's ``p_k`` is binned, ``conf_kb`` is the
    mean ``p_k`` in bin ``b`` and ``acc_kb`` the fraction of those samples whose
    label is ``k`` (Kull et al., 2019). State: three ``(K, num_bins)`` sums.

    Args:
        num_classes: Number of classes ``K``.
        num_bins: Number of equal-width bins.
        from_logits: Whether ``y_pred`` holds logits (default ``False``;
            rows that are not distributions make the result NaN, see
            ``ExpectedCalibrationError``).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = ClasswiseExpectedCalibrationError(num_classes=2, num_bins=10)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.45
    """

    def __init__(
        self,
        num_classes,
        num_bins=15,
        from_logits=False,
        validate_args=False,
        name="classwise_ece",
        dtype=None,
    ):
        self.num_classes = _check_integer(num_classes, "num_classes", 2)
        super().__init__(
            num_bins, from_logits, validate_args, name, dtype, state_shape=(self.num_classes,)
        )

    def _bins(self, labels, probs, weights):
        return _classwise_bins(labels, probs, weights, self.num_bins, self.num_classes)

    def result(self):
        return ops.mean(_ece_from_bins(*self._state()))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def brier_score(y_true, y_pred, from_logits=False, validate_args=False):
    """Multi-class Brier score per sample: ``sum_k (p_k - y_k)^2``.

    Args:
        y_true: Integer class ids ``(...)`` or target rows ``(..., K)`` (one-hot
            or soft), told apart by rank.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        from_logits: Whether ``y_pred`` holds logits. With ``False`` (the
            default) a row of ``y_pred`` that is not a distribution gets the
            score NaN (compiled or eager), as does an invalid label or target row.
        validate_args: Raise ``ValueError`` on such inputs in eager mode.

    Returns:
        Per-sample scores in [0, 2], shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> np.round(np.asarray(brier_score([0, 1], np.array([[0.9, 0.1], [0.8, 0.2]], "float32"))), 4)
    array([0.02, 1.28], dtype=float32)
    """
    probs, valid = _probabilities(y_pred, from_logits, validate_args)
    y_true = ops.convert_to_tensor(y_true)
    num_classes = probs.shape[-1]
    if len(y_true.shape) == len(probs.shape) and y_true.shape[-1] == num_classes != 1:
        y_true, target_valid = _numerics.dense_targets(y_true, probs, validate_args)
        score = ops.sum(ops.square(probs - y_true), axis=-1)
    else:
        labels, target_valid = _numerics.sparse_targets(y_true, probs, validate_args)
        # sum_k (p_k - e_y)^2 = sum_k p_k^2 - 2 p_y + 1, without a one-hot tensor.
        score = (
            ops.sum(ops.square(probs), axis=-1) - 2.0 * _numerics.gather_class(probs, labels) + 1.0
        )
    return _numerics.nan_where_invalid(score, _numerics.all_valid(target_valid, valid))


@_SERIALIZABLE
class BrierScore(keras.metrics.MeanMetricWrapper):
    """Mean multi-class Brier score ``sum_k (p_k - y_k)^2`` (Brier, 1950).

    Masks and ``sample_weight`` are handled by Keras' ``MeanMetricWrapper``.

    Args:
        from_logits: Whether ``y_pred`` holds logits (default ``False``; rows
            that are not distributions make the result NaN, see
            ``ExpectedCalibrationError``).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = BrierScore()
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.65
    """

    def __init__(self, from_logits=False, validate_args=False, name="brier_score", dtype=None):
        super().__init__(
            brier_score,
            name=name,
            dtype=dtype,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )
        self.from_logits = bool(from_logits)
        self.validate_args = bool(validate_args)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "from_logits": self.from_logits,
            "validate_args": self.validate_args,
        }
