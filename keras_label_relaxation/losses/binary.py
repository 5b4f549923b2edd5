"""Label relaxation for sigmoid outputs (binary and multi-label classification)."""

import keras
from keras import ops

from keras_label_relaxation import _numerics, _validation
from keras_label_relaxation.losses._base import RelaxationLoss


def binary_label_relaxation(y_true, y_pred, alpha=0.1, from_logits=False, validate_args=False):
    """Label relaxation for each sigmoid output, averaged over the last axis.

    Each output ``p`` with target ``t`` in {0, 1} is relaxed to a credal set:
    ``{p >= 1 - alpha}`` for ``t = 1`` and ``{p <= alpha}`` for ``t = 0``.
    Inside the set the loss is 0; outside it is the Bernoulli KL divergence
    from the set's boundary to the prediction. With ``p' = p`` if ``t = 1``
    and ``p' = 1 - p`` if ``t = 0``:

        l = 0                                                  if p' >= 1 - alpha
        l = (1 - alpha) log((1 - alpha) / p') + alpha log(alpha / (1 - p'))

    which is the label relaxation loss of a two-class problem. ``-log p'`` is
    Keras' binary cross-entropy, so logits are handled stably
    (``log_sigmoid``).

    Args:
        y_true: Targets in {0, 1}, shape ``(..., D)`` like ``y_pred``. A sample
            with another value gets a NaN loss (compiled or eager); with
            ``validate_args=True`` it raises ``ValueError`` in eager mode.
        y_pred: Sigmoid probabilities, or logits with ``from_logits=True``,
            shape ``(..., D)``.
        alpha: Float in (0, 1), or a tensor broadcastable to
            ``y_pred.shape[:-1]`` (one ``alpha`` per sample).
        from_logits: Whether ``y_pred`` holds logits.
        validate_args: Raise on invalid targets or ``alpha`` entries in eager
            mode (off by default).

    Returns:
        Per-sample losses (mean over the last axis), shape ``y_pred.shape[:-1]``.

    Example:
    >>> import numpy as np
    >>> y_true = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> y_pred = np.array([[0.95, 0.3], [0.01, 0.6]], dtype="float32")
    >>> np.round(np.asarray(binary_label_relaxation(y_true, y_pred, alpha=0.1)), 4)
    array([0.0582, 0.1131], dtype=float32)
    """
    y_pred = _numerics.cast_prediction(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    # Probabilities (from_logits=False) must lie in [0, 1]; logits there give NaN.
    in_range = None
    if not from_logits:
        in_range = ops.all(ops.logical_and(y_pred >= 0.0, y_pred <= 1.0), axis=-1)
    _validation.check_dense_shapes(y_true, y_pred)
    alpha, alpha_valid = _validation.prepare_alpha(alpha, y_pred.dtype, validate_args=validate_args)
    if validate_args:
        _validation.check_binary_targets(y_true)
    valid = _validation.all_valid(
        ops.all(ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0)), axis=-1),
        alpha_valid,
        in_range,
    )
    if len(alpha.shape) > 0:
        alpha = ops.expand_dims(alpha, axis=-1)
    log_p = -ops.binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    loss = _numerics.mean(_numerics.relax_log_probability(log_p, alpha), axis=-1)
    return _validation.nan_where_invalid(loss, valid)


@keras.saving.register_keras_serializable(package="keras_label_relaxation")
class BinaryLabelRelaxation(RelaxationLoss):
    """Label relaxation for sigmoid outputs (binary and multi-label).

    A positive target relaxes to ``{p >= 1 - alpha}``, a negative one to
    ``{p <= alpha}``; outside the set the loss is the Bernoulli KL divergence
    to the set's boundary, averaged over the last axis. See
    ``binary_label_relaxation``.

    Args:
        alpha: Float in (0, 1), or ``"per_sample"`` (one value per example
            from the targets; see ``PerSampleAlpha``).
        from_logits: Whether ``y_pred`` holds logits (default ``False``).
        validate_args: Raise ``ValueError`` on invalid targets in eager calls
            (off by default; invalid targets give NaN either way).
        reduction: A Keras reduction.
        name: Name of the loss.
        dtype: Dtype of the computation; half precision is promoted to float32.

    Example:
    >>> import numpy as np
    >>> loss = BinaryLabelRelaxation(alpha=0.1, from_logits=True)
    >>> round(float(loss(np.array([[1.0], [0.0]]), np.array([[3.0], [0.0]]))), 4)
    0.184
    """

    def __init__(
        self,
        alpha=0.1,
        from_logits=False,
        validate_args=False,
        reduction="sum_over_batch_size",
        name="binary_label_relaxation",
        dtype=None,
    ):
        super().__init__(
            binary_label_relaxation,
            alpha,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=bool(from_logits),
            validate_args=bool(validate_args),
        )
