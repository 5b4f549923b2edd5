"""The label relaxation loss (Lienen & Huellermeier, AAAI 2021).

Label relaxation replaces the one-hot target of class ``y`` by the credal set
``Q = {p in the simplex : p(y) >= 1 - alpha}`` and trains with the KL
divergence from the nearest member of ``Q`` to the prediction ``p_hat``
(paper, equations 5-6):

    L = 0                                                   if p_hat(y) >= 1 - alpha
    L = (1 - alpha) log((1 - alpha) / p_hat(y)) + alpha log(alpha / (1 - p_hat(y)))

For a soft target ``q`` (MixUp, CutMix, annotator distributions) the credal set
is ``{p : p_k >= (1 - alpha) q_k for all k}``, which is the paper's set for a
one-hot ``q``.
"""

import keras
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.losses._base import RelaxationLoss

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")


def _per_sample_alpha(alpha, rank):
    """Give a per-sample ``alpha`` a trailing class axis when it has a batch shape."""
    return ops.expand_dims(alpha, axis=-1) if rank > 0 else alpha


def _reverse_exclusive_cumsum(x):
    """``out[..., j] = sum_{i > j} x[..., i]`` (suffix sums, no subtraction)."""
    suffix = ops.flip(ops.cumsum(ops.flip(x, axis=-1), axis=-1), axis=-1)
    return ops.concatenate([suffix[..., 1:], ops.zeros_like(suffix[..., :1])], axis=-1)


def _soft_relaxation(q, log_p, alpha):
    """KL projection of ``p_hat`` onto ``{p : p_k >= (1 - alpha) q_k}``, then KL.

    The projection is ``p_k = max(l_k, c p_hat_k)`` with ``l = (1 - alpha) q``
    and the scalar ``c`` fixing the sum to 1. With the classes sorted by the
    ratio ``b_k = l_k / p_hat_k`` (descending), class ``j`` is bound to its
    lower limit iff ``L_{<=j} + b_j S_{>j} > 1`` (``L`` the lower limits up to
    ``j``, ``S`` the predicted mass after ``j``). With ``A`` the bound classes:

        KL = sum_{k in A} l_k log(l_k / p_hat_k)
             + (1 - L_A) log((1 - L_A) / (1 - P_A))

    where ``1 - P_A`` is a masked ``logsumexp`` of the free classes'
    log-probabilities, and ``1 - L_A = alpha + (1 - alpha) sum_{free} q``.
    """
    alpha_k = _per_sample_alpha(alpha, len(alpha.shape))
    lower = (1.0 - alpha_k) * q
    positive = ops.greater(q, 0.0)
    log_lower = ops.log(ops.where(positive, lower, ops.ones_like(lower)))
    neg_inf = ops.full_like(log_p, -float("inf"))
    log_ratio = ops.where(positive, log_lower - log_p, neg_inf)

    order = ops.argsort(-ops.stop_gradient(log_ratio), axis=-1)
    log_ratio = ops.take_along_axis(log_ratio, order, axis=-1)
    log_p = ops.take_along_axis(log_p, order, axis=-1)
    log_lower = ops.take_along_axis(log_lower, order, axis=-1)
    lower = ops.take_along_axis(lower, order, axis=-1)
    q = ops.take_along_axis(q, order, axis=-1)

    p_after = _reverse_exclusive_cumsum(ops.exp(log_p))
    q_after = _reverse_exclusive_cumsum(q)
    bound = ops.stop_gradient(
        ops.greater(log_ratio + ops.log(p_after), ops.log(alpha_k + (1.0 - alpha_k) * q_after))
    )

    zeros = ops.zeros_like(log_p)
    bound_term = ops.sum(ops.where(bound, lower * (log_lower - log_p), zeros), axis=-1)
    free_lower = alpha + (1.0 - alpha) * ops.sum(ops.where(bound, zeros, q), axis=-1)
    log_free_p = ops.logsumexp(ops.where(bound, neg_inf, log_p), axis=-1)
    divergence = bound_term + free_lower * (ops.log(free_lower) - log_free_p)
    # Inside the set nothing is bound and the loss is exactly 0; NaN propagates.
    keep = ops.logical_or(ops.any(bound, axis=-1), ops.isnan(divergence))
    return ops.where(keep, divergence, ops.zeros_like(divergence))


def _one_hot_relaxation(y_true, y_pred, alpha, from_logits):
    log_p_y = -_numerics.cross_entropy(y_true, y_pred, from_logits, sparse=False)
    return _numerics.relax_log_probability(log_p_y, alpha)


def label_relaxation(y_true, y_pred, alpha=0.1, from_logits=False, validate_args=False):
    """Label relaxation loss for one-hot or soft targets.

    Per sample, for a one-hot target of class ``y``:

        L = 0                                              if p(y) >= 1 - alpha
        L = (1 - alpha) log((1 - alpha) / p(y)) + alpha log(alpha / (1 - p(y)))

    For a soft target ``q`` (e.g. MixUp), ``L = min KL(p || p_hat)`` over the
    credal set ``{p : p_k >= (1 - alpha) q_k}``; for a one-hot ``q`` this is
    the formula above. A batch whose targets are all 0/1 takes the one-pass
    closed form; otherwise the projection is computed exactly by sorting the
    ratios ``q_k / p_hat_k`` (``O(K log K)`` per sample).

    Args:
        y_true: Targets, shape ``(..., K)``: one-hot rows or probability
            distributions. A row with a negative entry or a sum off 1 by more
            than 1e-3 gets a NaN loss (compiled or eager); with
            ``validate_args=True`` it raises ``ValueError`` in eager mode.
        y_pred: Predictions, shape ``(..., K)``: probabilities, or logits with
            ``from_logits=True``. A row of "probabilities" that is not a
            distribution (e.g. logits without ``from_logits=True``) gets a NaN
            loss; Keras' cross-entropy would renormalise it silently.
        alpha: Float in (0, 1), or a tensor broadcastable to
            ``y_pred.shape[:-1]`` (one ``alpha`` per sample; an entry outside
            (0, 1) gives a NaN loss, or a ``ValueError`` with
            ``validate_args=True`` in eager mode).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise on invalid targets or ``alpha`` entries in eager
            mode (reads the values on the host: off by default).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``, float32 (float64 for
        float64 inputs).

    Example:
    >>> import numpy as np
    >>> y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> y_pred = np.array([[0.05, 0.9, 0.05], [0.4, 0.5, 0.1]])
    >>> np.round(np.asarray(label_relaxation(y_true, y_pred, alpha=0.2)), 4)
    array([0.    , 0.3348])

    Reference: Lienen & Huellermeier, "From Label Smoothing to Label
    Relaxation", AAAI 2021, equations (5) and (6).
    """
    y_pred, rows_valid = _validation.predictions(y_pred, from_logits, validate_args)
    y_true, valid = _validation.dense_targets(y_true, y_pred, validate_args)
    alpha, alpha_valid = _validation.prepare_alpha(alpha, y_pred.dtype, validate_args=validate_args)

    def soft():
        log_p = _numerics.log_probabilities(y_pred, from_logits)
        return _soft_relaxation(y_true, log_p, alpha)

    def one_hot():
        return _one_hot_relaxation(y_true, y_pred, alpha, from_logits)

    is_one_hot = ops.all(ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0)))
    loss = ops.cond(is_one_hot, one_hot, soft)
    return _validation.nan_where_invalid(
        loss, _validation.all_valid(valid, rows_valid, alpha_valid)
    )


def sparse_label_relaxation(y_true, y_pred, alpha=0.1, from_logits=False, validate_args=False):
    """Label relaxation loss for integer class ids.

    Per sample, with ``p = p_hat(y)`` the predicted probability of class ``y``:

        L = 0                                              if p >= 1 - alpha
        L = (1 - alpha) log((1 - alpha) / p) + alpha log(alpha / (1 - p))

    ``log p`` and its gradient come from Keras' fused sparse cross-entropy
    (``L`` is a scalar function of the per-sample cross-entropy), so no
    ``(batch, K)`` one-hot tensor is built; ``log(1 - p)`` is ``log1mexp(log
    p)``, well conditioned outside the set where ``1 - p > alpha``.

    Args:
        y_true: Integer class ids, shape ``y_pred.shape[:-1]`` (a trailing
            axis of size 1 is accepted). An id outside ``[0, K)`` (or not an
            integer) gets a NaN loss on every backend, compiled or eager; with
            ``validate_args=True`` it raises ``ValueError`` in eager mode.
        y_pred: Predictions, shape ``(..., K)``: probabilities, or logits with
            ``from_logits=True``. A row of "probabilities" that is not a
            distribution (e.g. logits without ``from_logits=True``) gets a NaN
            loss; Keras' cross-entropy would renormalise it silently.
        alpha: Float in (0, 1), or a tensor broadcastable to
            ``y_pred.shape[:-1]`` (entries outside (0, 1) give NaN).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise on invalid ids or ``alpha`` entries in eager
            mode (reads the values on the host: off by default).

    Returns:
        Per-sample losses, shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.1, 3.0]])
    >>> loss = sparse_label_relaxation([0, 1], logits, alpha=0.1, from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.0461, 2.3797])

    Reference: Lienen & Huellermeier, AAAI 2021, equation (6).
    """
    y_pred, rows_valid = _validation.predictions(y_pred, from_logits, validate_args)
    labels, valid = _validation.sparse_targets(y_true, y_pred, validate_args)
    alpha, alpha_valid = _validation.prepare_alpha(alpha, y_pred.dtype, validate_args=validate_args)
    log_p_y = -_numerics.cross_entropy(labels, y_pred, from_logits, sparse=True)
    loss = _numerics.relax_log_probability(log_p_y, alpha)
    return _validation.nan_where_invalid(
        loss, _validation.all_valid(valid, rows_valid, alpha_valid)
    )


@_SERIALIZABLE
class LabelRelaxation(RelaxationLoss):
    """Label relaxation loss for one-hot or soft targets.

    ``L = min_{p in Q} KL(p || p_hat)`` with the credal set
    ``Q = {p : p_k >= (1 - alpha) q_k}``; for a one-hot target of class ``y``
    this is ``0`` if ``p_hat(y) >= 1 - alpha`` and otherwise
    ``(1 - alpha) log((1 - alpha) / p_hat(y)) + alpha log(alpha / (1 - p_hat(y)))``.
    See ``label_relaxation`` for the computation.

    Args:
        alpha: Float in (0, 1), the imprecisiation degree (paper grid: 0.01,
            0.025, 0.05, 0.1, 0.2, 0.3, 0.4), or ``"per_sample"``: one value per
            example, carried by the targets (``PerSampleAlpha`` packs
            ``y = {"target": ..., "alpha": ...}`` for ``fit``/``evaluate``).
        from_logits: Whether ``y_pred`` holds logits (default ``False``, as
            Keras' losses).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (see ``label_relaxation``); off by default so that ``fit`` never
            reads values on the host. Invalid targets give NaN either way.
        reduction: A Keras reduction (``"sum_over_batch_size"``, ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``"none"``, ``None``).
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Shapes: ``y_true`` and ``y_pred`` are ``(..., K)``; the per-sample loss is
    ``(...)`` before reduction.

    Example:
    >>> import keras, numpy as np
    >>> loss = LabelRelaxation(alpha=0.2)
    >>> y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> y_pred = np.array([[0.05, 0.9, 0.05], [0.4, 0.5, 0.1]])
    >>> round(float(loss(y_true, y_pred)), 4)
    0.1674
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(optimizer="sgd", loss=LabelRelaxation(alpha=0.1, from_logits=True))
    """

    def __init__(
        self,
        alpha=0.1,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="label_relaxation",
        dtype=None,
    ):
        super().__init__(
            label_relaxation,
            alpha,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )


@_SERIALIZABLE
class SparseLabelRelaxation(RelaxationLoss):
    """Label relaxation loss for integer class ids.

    ``L = 0`` if ``p_hat(y) >= 1 - alpha``, else
    ``(1 - alpha) log((1 - alpha) / p_hat(y)) + alpha log(alpha / (1 - p_hat(y)))``.
    See ``sparse_label_relaxation`` for the computation.

    Args:
        alpha: Float in (0, 1), the imprecisiation degree, or
            ``"per_sample"`` (one value per example from the targets; see
            ``PerSampleAlpha``).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid class ids in eager
            calls; off by default. Invalid ids give NaN either way.
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Shapes: ``y_true`` is ``(...)`` (or ``(..., 1)``) integer ids, ``y_pred``
    is ``(..., K)``.

    Example:
    >>> import numpy as np
    >>> loss = SparseLabelRelaxation(alpha=0.1, from_logits=True)
    >>> round(float(loss([0, 1], np.array([[2.0, 0.5, -1.0], [0.0, 0.1, 3.0]]))), 4)
    1.2129
    """

    def __init__(
        self,
        alpha=0.1,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="sparse_label_relaxation",
        dtype=None,
    ):
        super().__init__(
            sparse_label_relaxation,
            alpha,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )
