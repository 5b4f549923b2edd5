"""Calibration metrics: top-label ECE and MCE, classwise ECE, Brier score.

Binning rule (the paper's reference code, Guo et al. 2017): ``B`` equal-width
bins ``[lo, hi)``; a confidence ``c`` falls into bin ``min(floor(c B), B - 1)``,
so a confidence of exactly 1.0 is in the last bin.

The math lives in ``metrics.functional`` (``prepare``: labels, probabilities
and weights as flat tensors; ``top_label_bins``: per-bin sums;
``binned_error``: the estimators), shared with every other estimator, the
runner and the figures. The per-bin sums are additive, so a metric's state is ``O(num_bins)`` (``O(K
num_bins)`` for the classwise ECE): it never stores predictions, sums across
replicas under ``tf.distribute`` and does not depend on how the data was
batched.
"""

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.metrics import functional as F

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


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
    num_bins = _validation.check_integer(num_bins, "num_bins", 1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"`probs` must have shape (N, K) with N >= 1. Received: probs.shape={probs.shape}"
        )
    labels, probs, weights = F.prepare(
        y_true, probs, sample_weight, from_logits=False, validate_args=True
    )
    return float(F.binned_error(*F.top_label_bins(labels, probs, weights, num_bins)[:3], "l1"))


class BinnedCalibrationMetric(keras.metrics.Metric):
    """Base of the binned metrics: per-bin sums over ``num_cells`` bins as the state.

    The state is ``metrics.functional.bin_sums``' four sums: weight, weight
    times confidence, weight times correctness and squared weight
    (``bin_weight``, ``bin_confidence``, ``bin_correct``,
    ``bin_weight_squared``, kept only with ``squared=True``: the debiased
    estimators need it), summed across batches and replicas.
    """

    STATES = ("bin_weight", "bin_confidence", "bin_correct", "bin_weight_squared")

    def __init__(
        self, num_cells, from_logits, validate_args, name, dtype, state_shape=(), squared=False
    ):
        super().__init__(name=name, dtype=dtype)
        self.num_cells = num_cells
        self.squared = bool(squared)
        self.states = self.STATES if self.squared else self.STATES[:3]
        self.from_logits = bool(from_logits)
        self.validate_args = bool(validate_args)
        shape = (*state_shape, self.num_cells)
        for state in self.states:
            variable = self.add_variable(
                shape=shape, initializer="zeros", dtype=self.dtype, aggregation="sum", name=state
            )
            setattr(self, state, variable)

    def _bins(self, labels, probs, weights):
        return F.top_label_bins(labels, probs, weights, self.num_cells, self.squared)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, probs, weights = F.prepare(
            y_true, y_pred, sample_weight, self.from_logits, self.validate_args
        )
        for state, value in zip(self.states, self._bins(labels, probs, weights)):
            variable = getattr(self, state)
            variable.assign_add(ops.cast(value, self.dtype))

    def _state(self):
        """``(n, s, a, q)`` as tensors (JAX ops do not take Keras variables); ``q`` is None
        unless kept."""
        state = tuple(ops.convert_to_tensor(getattr(self, name)) for name in self.states)
        return state + (None,) * (4 - len(state))

    def reset_state(self):
        for variable in (getattr(self, state) for state in self.states):
            # ops.zeros, not ops.zeros_like(variable): the latter fails on JAX.
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "validate_args": self.validate_args,
        }


class _EqualWidthMetric(BinnedCalibrationMetric):
    """One state bin per equal-width bin."""

    def __init__(self, num_bins, from_logits, validate_args, name, dtype, state_shape=()):
        self.num_bins = _validation.check_integer(num_bins, "num_bins", 1)
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
        return F.binned_error(*self._state()[:3], "l1")


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
        return F.binned_error(*self._state()[:3], "max")


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
        self.num_classes = _validation.check_integer(num_classes, "num_classes", 2)
        super().__init__(
            num_bins, from_logits, validate_args, name, dtype, state_shape=(self.num_classes,)
        )

    def _bins(self, labels, probs, weights):
        return F.classwise_bins(
            labels, probs, weights, self.num_bins, self.num_classes, self.squared
        )

    def result(self):
        return F.reduce_classes(F.binned_error(*self._state()[:3], "l1"), "l1", "classwise")

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
    probs, valid = F.probabilities(y_pred, from_logits, validate_args)
    y_true = ops.convert_to_tensor(y_true)
    num_classes = probs.shape[-1]
    if len(y_true.shape) == len(probs.shape) and y_true.shape[-1] == num_classes != 1:
        y_true, target_valid = _validation.dense_targets(y_true, probs, validate_args)
        score = ops.sum(ops.square(probs - y_true), axis=-1)
    else:
        labels, target_valid = _validation.sparse_targets(y_true, probs, validate_args)
        # sum_k (p_k - e_y)^2 = sum_k p_k^2 - 2 p_y + 1, without a one-hot tensor.
        score = (
            ops.sum(ops.square(probs), axis=-1) - 2.0 * _numerics.gather_class(probs, labels) + 1.0
        )
    return _validation.nan_where_invalid(score, _validation.all_valid(target_valid, valid))


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
