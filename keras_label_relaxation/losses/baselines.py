"""The paper's baseline losses that Keras does not have.

Keras already has cross-entropy (``CategoricalCrossentropy``,
``SparseCategoricalCrossentropy``), label smoothing for one-hot targets
(``CategoricalCrossentropy(label_smoothing=alpha)``) and the paper's focal
loss for one-hot targets (``CategoricalFocalCrossentropy(alpha=1.0,
gamma=gamma)`` is ``sum_k -(1 - p_k)^gamma y_k log p_k``); they are reused as
they are. This module adds the rest:

* ``SparseLabelSmoothing``: label smoothing for integer class ids;
* ``ConfidencePenalty`` / ``SparseConfidencePenalty`` (Pereyra et al., 2017);
* ``SparseCategoricalFocalCrossentropy``: the focal loss for integer class ids.
"""

import keras
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.losses._base import FunctionLoss

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def sparse_label_smoothing(y_true, y_pred, alpha=0.1, from_logits=False, validate_args=False):
    """Cross-entropy with label smoothing for integer class ids.

    The target is ``(1 - alpha) e_y + alpha / K`` as in Keras'
    ``CategoricalCrossentropy(label_smoothing=alpha)``:

        L = -(1 - alpha) log p(y) - (alpha / K) sum_k log p(k)

    computed without a one-hot tensor.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        alpha: Float in (0, 1), the smoothing degree.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(sparse_label_smoothing([0], logits, 0.1, from_logits=True)), 4)
    array([0.3913], dtype=float32)
    """
    alpha = _validation.check_probability_parameter(alpha, "alpha")
    labels, valid, y_pred = _validation.sparse_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    nll = -_numerics.gather_class(log_p, labels)
    loss = (1.0 - alpha) * nll - alpha * _numerics.mean(log_p, axis=-1)
    return _validation.nan_where_invalid(loss, valid)


def _entropy(log_p):
    return -ops.sum(ops.exp(log_p) * log_p, axis=-1)


def confidence_penalty(y_true, y_pred, beta=1.0, from_logits=False, validate_args=False):
    """Cross-entropy minus ``beta`` times the prediction's entropy.

        L = -sum_k y_k log p(k) - beta H(p),   H(p) = -sum_k p(k) log p(k)

    (Pereyra et al., "Regularizing Neural Networks by Penalizing Confident
    Output Distributions", 2017).

    Args:
        y_true: One-hot or soft targets, shape ``(..., K)``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        beta: Float >= 0, the penalty weight (paper grid: 0.1 ... 8).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> y_true = np.array([[1.0, 0.0, 0.0]])
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(confidence_penalty(y_true, logits, 0.5, from_logits=True)), 4)
    array([-0.0695], dtype=float32)
    """
    beta = _validation.check_non_negative_parameter(beta, "beta")
    y_true, valid, y_pred = _validation.dense_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    loss = -ops.sum(y_true * log_p, axis=-1) - beta * _entropy(log_p)
    return _validation.nan_where_invalid(loss, valid)


def sparse_confidence_penalty(y_true, y_pred, beta=1.0, from_logits=False, validate_args=False):
    """``confidence_penalty`` for integer class ids: ``-log p(y) - beta H(p)``.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        beta: Float >= 0, the penalty weight.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(sparse_confidence_penalty([0], logits, 0.5, from_logits=True)), 4)
    array([-0.0695], dtype=float32)
    """
    beta = _validation.check_non_negative_parameter(beta, "beta")
    labels, valid, y_pred = _validation.sparse_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    loss = -_numerics.gather_class(log_p, labels) - beta * _entropy(log_p)
    return _validation.nan_where_invalid(loss, valid)


def sparse_categorical_focal_crossentropy(
    y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, validate_args=False
):
    """Focal loss for integer class ids: ``-alpha (1 - p(y))^gamma log p(y)``.

    The sparse twin of Keras' ``categorical_focal_crossentropy`` (same
    ``alpha`` weighting factor and defaults); ``alpha=1.0`` is the paper's
    focal loss (Lin et al., 2020). ``log p(y)`` comes from Keras' fused
    sparse cross-entropy and ``1 - p(y) = -expm1(log p(y))``, clipped below
    at ``keras.backend.epsilon()`` as Keras' categorical version does, so
    ``gamma < 1`` keeps a finite gradient.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        alpha: Float >= 0, the weighting factor.
        gamma: Float >= 0, the focusing parameter (paper grid: 0.1 ... 5).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> loss = sparse_categorical_focal_crossentropy([0], logits, 1.0, 2.0, from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.0111], dtype=float32)
    """
    alpha = _validation.check_non_negative_parameter(alpha, "alpha")
    gamma = _validation.check_non_negative_parameter(gamma, "gamma")
    labels, valid, y_pred = _validation.sparse_inputs(y_true, y_pred, from_logits, validate_args)
    log_p_y = -_numerics.cross_entropy(labels, y_pred, from_logits, sparse=True)
    one_minus_p = -ops.expm1(log_p_y)
    eps = keras.backend.epsilon()
    one_minus_p = ops.where(one_minus_p < eps, ops.full_like(one_minus_p, eps), one_minus_p)
    # gamma as a tensor of the compute dtype: Keras' torch backend rounds a Python float
    # exponent to float32 (gamma=0.1 would carry a 1.5e-8 relative error).
    gamma = ops.convert_to_tensor(gamma, dtype=one_minus_p.dtype)
    return _validation.nan_where_invalid(-alpha * ops.power(one_minus_p, gamma) * log_p_y, valid)


@_SERIALIZABLE
class SparseLabelSmoothing(FunctionLoss):
    """Label smoothing cross-entropy for integer class ids.

    ``L = -(1 - alpha) log p(y) - (alpha / K) sum_k log p(k)``, equal to Keras'
    ``CategoricalCrossentropy(label_smoothing=alpha)`` on one-hot targets
    (which Keras' ``SparseCategoricalCrossentropy`` cannot do).

    Args:
        alpha: Float in (0, 1), the smoothing degree.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SparseLabelSmoothing(alpha=0.1, from_logits=True)
    >>> round(float(loss([0], np.array([[2.0, 0.5, -1.0]]))), 4)
    0.3913
    """

    def __init__(
        self,
        alpha=0.1,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_label_smoothing",
        dtype=None,
    ):
        super().__init__(
            sparse_label_smoothing,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=_validation.check_probability_parameter(alpha, "alpha"),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class ConfidencePenalty(FunctionLoss):
    """Cross-entropy with a confidence penalty: ``-sum_k y_k log p(k) - beta H(p)``.

    Pereyra et al., 2017. See ``confidence_penalty``.

    Args:
        beta: Float >= 0, the penalty weight.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = ConfidencePenalty(beta=0.5, from_logits=True)
    >>> round(float(loss(np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, 0.5, -1.0]]))), 4)
    -0.0695
    """

    def __init__(
        self,
        beta=1.0,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="confidence_penalty",
        dtype=None,
    ):
        super().__init__(
            confidence_penalty,
            name=name,
            reduction=reduction,
            dtype=dtype,
            beta=_validation.check_non_negative_parameter(beta, "beta"),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SparseConfidencePenalty(FunctionLoss):
    """Confidence penalty for integer class ids: ``-log p(y) - beta H(p)``.

    Args:
        beta: Float >= 0, the penalty weight.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SparseConfidencePenalty(beta=0.5, from_logits=True)
    >>> round(float(loss([0], np.array([[2.0, 0.5, -1.0]]))), 4)
    -0.0695
    """

    def __init__(
        self,
        beta=1.0,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_confidence_penalty",
        dtype=None,
    ):
        super().__init__(
            sparse_confidence_penalty,
            name=name,
            reduction=reduction,
            dtype=dtype,
            beta=_validation.check_non_negative_parameter(beta, "beta"),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SparseCategoricalFocalCrossentropy(FunctionLoss):
    """Focal loss for integer class ids: ``-alpha (1 - p(y))^gamma log p(y)``.

    The sparse twin of ``keras.losses.CategoricalFocalCrossentropy``;
    ``alpha=1.0`` is the focal loss of the paper.

    Args:
        alpha: Float >= 0, the weighting factor (Keras' default 0.25).
        gamma: Float >= 0, the focusing parameter.
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SparseCategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, from_logits=True)
    >>> round(float(loss([0], np.array([[2.0, 0.5, -1.0]]))), 4)
    0.0111
    """

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_categorical_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            sparse_categorical_focal_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=_validation.check_non_negative_parameter(alpha, "alpha"),
            gamma=_validation.check_non_negative_parameter(gamma, "gamma"),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )
