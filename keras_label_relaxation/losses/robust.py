"""Losses robust to noisy labels: generalized and symmetric cross-entropy.

* ``GeneralizedCrossEntropy`` / ``SparseGeneralizedCrossEntropy``: the
  ``L_q`` loss ``(1 - p(y)^q) / q`` of Zhang & Sabuncu, "Generalized Cross
  Entropy Loss for Training Deep Neural Networks with Noisy Labels"
  (NeurIPS 2018). ``q -> 0`` is cross-entropy, ``q = 1`` is ``1 - p(y)``,
  half the mean absolute error ``sum_k |y_k - p_k|`` of a one-hot target.
* ``SymmetricCrossEntropy`` / ``SparseSymmetricCrossEntropy``:
  ``alpha CE + beta RCE`` of Wang et al., "Symmetric Cross Entropy for
  Robust Learning with Noisy Labels" (ICCV 2019), with the reverse
  cross-entropy ``RCE = -sum_k p_k log y_k`` and ``log 0`` replaced by
  ``A = log_floor``.

As everywhere in the package, log-probabilities come from
``_numerics.log_probabilities`` (``log_softmax`` of logits; probabilities
renormalised and clipped at ``keras.backend.epsilon()`` as Keras'
cross-entropy does), invalid targets and prediction rows give NaN for their
sample, half precision is computed in float32 and float64 stays float64.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.losses._base import FunctionLoss

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))


def check_q(q):
    """Check the GCE exponent ``q``, a Python number in (0, 1]; return it as float."""
    if not _is_number(q) or not 0.0 < float(q) <= 1.0:
        raise ValueError(
            f"Invalid value for argument `q`. Expected a float in (0, 1]. Received: q={q!r}"
        )
    return float(q)


def check_symmetric_parameters(alpha, beta, log_floor):
    """Check SCE's ``alpha, beta`` (finite, >= 0, not both 0) and ``log_floor`` (finite,
    < 0); return them as floats."""
    alpha = _validation.check_non_negative_parameter(alpha, "alpha")
    beta = _validation.check_non_negative_parameter(beta, "beta")
    if alpha == 0.0 and beta == 0.0:
        raise ValueError(
            "Invalid value for arguments `alpha` and `beta`. Expected at least one > 0. "
            f"Received: alpha={alpha!r}, beta={beta!r}"
        )
    if not _is_number(log_floor) or not math.isfinite(log_floor) or not float(log_floor) < 0.0:
        raise ValueError(
            "Invalid value for argument `log_floor`. Expected a finite float < 0. "
            f"Received: log_floor={log_floor!r}"
        )
    return alpha, beta, float(log_floor)


def _one_minus_power(log_p, q):
    """``(1 - p^q) / q = -expm1(q log p) / q``, accurate for ``p`` near 1."""
    # q as a tensor of the compute dtype, so that float64 stays exact on every backend.
    q = ops.convert_to_tensor(q, dtype=log_p.dtype)
    return -ops.expm1(q * log_p) / q


def generalized_cross_entropy(y_true, y_pred, q=0.7, from_logits=False, validate_args=False):
    """Generalized cross-entropy (the ``L_q`` loss) for one-hot or soft targets.

        L = sum_k y_k (1 - p_k^q) / q,   0 < q <= 1

    For a one-hot target this is Zhang & Sabuncu's ``(1 - p(y)^q) / q``:
    cross-entropy ``-log p(y)`` as ``q -> 0``, ``1 - p(y)`` (half the mean
    absolute error ``sum_k |y_k - p_k|``) at ``q = 1``. ``p_k^q`` is
    ``exp(q log p_k)`` with ``log p_k`` from ``log_softmax`` of logits or,
    from probabilities, from the rows renormalised and clipped to
    ``[epsilon, 1 - epsilon]`` as Keras' cross-entropy does; ``1 - p^q`` is
    ``-expm1(q log p)``.

    Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep
    Neural Networks with Noisy Labels", NeurIPS 2018 (paper setting
    ``q = 0.7``; the truncated ``L_q`` loss is not implemented).

    Args:
        y_true: One-hot or soft targets, shape ``(..., K)``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        q: Float in (0, 1], the exponent.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> y_true = np.array([[1.0, 0.0, 0.0]])
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(generalized_cross_entropy(y_true, logits, 0.7, from_logits=True)), 4)
    array([0.2220], dtype=float32)
    """
    q = check_q(q)
    y_true, valid, y_pred = _validation.dense_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    loss = ops.sum(y_true * _one_minus_power(log_p, q), axis=-1)
    return _validation.nan_where_invalid(loss, valid)


def sparse_generalized_cross_entropy(y_true, y_pred, q=0.7, from_logits=False, validate_args=False):
    """``generalized_cross_entropy`` for integer class ids: ``(1 - p(y)^q) / q``.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        q: Float in (0, 1], the exponent.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(sparse_generalized_cross_entropy([0], logits, 0.7, True)), 4)
    array([0.2220], dtype=float32)
    """
    q = check_q(q)
    labels, valid, y_pred = _validation.sparse_inputs(y_true, y_pred, from_logits, validate_args)
    log_p_y = _numerics.gather_class(_numerics.log_probabilities(y_pred, from_logits), labels)
    return _validation.nan_where_invalid(_one_minus_power(log_p_y, q), valid)


def _probabilities(y_pred, log_p, from_logits):
    """``p`` for the reverse cross-entropy: ``exp(log_softmax)`` of logits, else the
    renormalised rows, not clipped (the reverse cross-entropy is linear in ``p``)."""
    if from_logits:
        return ops.exp(log_p)
    return y_pred / ops.sum(y_pred, axis=-1, keepdims=True)


def symmetric_cross_entropy(
    y_true,
    y_pred,
    alpha=0.1,
    beta=1.0,
    log_floor=-4.0,
    from_logits=False,
    validate_args=False,
):
    """Symmetric cross-entropy ``alpha CE + beta RCE`` for one-hot or soft targets.

        CE  = -sum_k y_k log p_k
        RCE = -sum_k p_k log max(y_k, exp(A)),   A = log_floor < 0

    so ``log 0 = A`` and, for a one-hot target, ``RCE = -A (1 - p(y))``.
    ``log p_k`` in ``CE`` comes from ``log_softmax`` of logits or, from
    probabilities, from the rows renormalised and clipped at
    ``keras.backend.epsilon()`` as Keras' cross-entropy does. ``p_k`` in
    ``RCE`` is the softmax (or the renormalised rows) itself: we do not
    clamp predictions at 1e-7 as Wang et al.'s code does, since ``p`` lies in
    [0, 1] already and ``RCE`` is linear in ``p``; the formula stays exact.

    Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
    Labels", ICCV 2019. The defaults are the paper's CIFAR-10 setting
    (``alpha = 0.1``, ``beta = 1``, ``A = -4``). Their released code clips
    the targets at 1e-4 instead, i.e. ``log_floor = log(1e-4) = -9.21``.

    Args:
        y_true: One-hot or soft targets, shape ``(..., K)``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        alpha: Float >= 0, the weight of ``CE``.
        beta: Float >= 0, the weight of ``RCE`` (not both 0).
        log_floor: Float < 0, ``A``, the value that replaces ``log 0``.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> y_true = np.array([[1.0, 0.0, 0.0]])
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(symmetric_cross_entropy(y_true, logits, from_logits=True)), 4)
    array([0.8817], dtype=float32)
    """
    alpha, beta, log_floor = check_symmetric_parameters(alpha, beta, log_floor)
    y_true, valid, y_pred = _validation.dense_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    p = _probabilities(y_pred, log_p, from_logits)
    # log max(y, exp(A)), exactly A wherever y <= exp(A) (ops.where, not ops.maximum: Keras'
    # torch backend returns float32 from the maximum of float64 tensors).
    floor = math.exp(log_floor)
    above = y_true > floor
    log_y = ops.where(
        above,
        ops.log(ops.where(above, y_true, ops.ones_like(y_true))),
        ops.full_like(y_true, log_floor),
    )
    ce = -ops.sum(y_true * log_p, axis=-1)
    rce = -ops.sum(p * log_y, axis=-1)
    return _validation.nan_where_invalid(alpha * ce + beta * rce, valid)


def sparse_symmetric_cross_entropy(
    y_true,
    y_pred,
    alpha=0.1,
    beta=1.0,
    log_floor=-4.0,
    from_logits=False,
    validate_args=False,
):
    """``symmetric_cross_entropy`` for integer class ids:
    ``-alpha log p(y) - beta A (1 - p(y))``.

    ``1 - p(y)`` is summed over the other classes, ``sum_{k != y} p_k``, so it
    keeps its relative accuracy when ``p(y)`` is close to 1.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]``.
        y_pred: Probabilities, or logits with ``from_logits=True``, ``(..., K)``.
        alpha: Float >= 0, the weight of ``CE``.
        beta: Float >= 0, the weight of ``RCE`` (not both 0).
        log_floor: Float < 0, ``A``, the value that replaces ``log 0``.
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise ``ValueError`` on invalid targets in eager mode
            (off by default; invalid targets give NaN losses either way).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0]], dtype="float32")
    >>> np.round(np.asarray(sparse_symmetric_cross_entropy([0], logits, from_logits=True)), 4)
    array([0.8817], dtype=float32)
    """
    alpha, beta, log_floor = check_symmetric_parameters(alpha, beta, log_floor)
    labels, valid, y_pred = _validation.sparse_inputs(y_true, y_pred, from_logits, validate_args)
    log_p = _numerics.log_probabilities(y_pred, from_logits)
    p = _probabilities(y_pred, log_p, from_logits)
    ce = -_numerics.gather_class(log_p, labels)
    classes = ops.arange(y_pred.shape[-1], dtype="int32")
    others = ops.not_equal(ops.expand_dims(labels, axis=-1), classes)
    one_minus_p_y = ops.sum(ops.where(others, p, ops.zeros_like(p)), axis=-1)
    loss = alpha * ce - (beta * log_floor) * one_minus_p_y
    return _validation.nan_where_invalid(loss, valid)


@_SERIALIZABLE
class GeneralizedCrossEntropy(FunctionLoss):
    """Generalized cross-entropy: ``sum_k y_k (1 - p_k^q) / q``.

    Zhang & Sabuncu, NeurIPS 2018. See ``generalized_cross_entropy``.

    Args:
        q: Float in (0, 1], the exponent (paper: 0.7).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = GeneralizedCrossEntropy(q=0.7, from_logits=True)
    >>> round(float(loss(np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, 0.5, -1.0]]))), 4)
    0.2220
    """

    def __init__(
        self,
        q=0.7,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="generalized_cross_entropy",
        dtype=None,
    ):
        super().__init__(
            generalized_cross_entropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            q=check_q(q),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SparseGeneralizedCrossEntropy(FunctionLoss):
    """Generalized cross-entropy for integer class ids: ``(1 - p(y)^q) / q``.

    Zhang & Sabuncu, NeurIPS 2018. See ``generalized_cross_entropy``.

    Args:
        q: Float in (0, 1], the exponent (paper: 0.7).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SparseGeneralizedCrossEntropy(q=0.7, from_logits=True)
    >>> round(float(loss([0], np.array([[2.0, 0.5, -1.0]]))), 4)
    0.2220
    """

    def __init__(
        self,
        q=0.7,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_generalized_cross_entropy",
        dtype=None,
    ):
        super().__init__(
            sparse_generalized_cross_entropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            q=check_q(q),
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SymmetricCrossEntropy(FunctionLoss):
    """Symmetric cross-entropy: ``alpha CE + beta RCE``, ``log 0 = log_floor``.

    Wang et al., ICCV 2019. See ``symmetric_cross_entropy``.

    Args:
        alpha: Float >= 0, the weight of ``CE`` (CIFAR-10 setting: 0.1).
        beta: Float >= 0, the weight of ``RCE`` (CIFAR-10 setting: 1.0; not both 0).
        log_floor: Float < 0, ``A``, the value that replaces ``log 0`` (paper: -4).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SymmetricCrossEntropy(from_logits=True)
    >>> round(float(loss(np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, 0.5, -1.0]]))), 4)
    0.8817
    """

    def __init__(
        self,
        alpha=0.1,
        beta=1.0,
        log_floor=-4.0,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="symmetric_cross_entropy",
        dtype=None,
    ):
        alpha, beta, log_floor = check_symmetric_parameters(alpha, beta, log_floor)
        super().__init__(
            symmetric_cross_entropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=alpha,
            beta=beta,
            log_floor=log_floor,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SparseSymmetricCrossEntropy(FunctionLoss):
    """Symmetric cross-entropy for integer class ids: ``-alpha log p(y) - beta A (1 - p(y))``.

    Wang et al., ICCV 2019. See ``symmetric_cross_entropy``.

    Args:
        alpha: Float >= 0, the weight of ``CE`` (CIFAR-10 setting: 0.1).
        beta: Float >= 0, the weight of ``RCE`` (CIFAR-10 setting: 1.0; not both 0).
        log_floor: Float < 0, ``A``, the value that replaces ``log 0`` (paper: -4).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = SparseSymmetricCrossEntropy(from_logits=True)
    >>> round(float(loss([0], np.array([[2.0, 0.5, -1.0]]))), 4)
    0.8817
    """

    def __init__(
        self,
        alpha=0.1,
        beta=1.0,
        log_floor=-4.0,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_symmetric_cross_entropy",
        dtype=None,
    ):
        alpha, beta, log_floor = check_symmetric_parameters(alpha, beta, log_floor)
        super().__init__(
            sparse_symmetric_cross_entropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=alpha,
            beta=beta,
            log_floor=log_floor,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )
