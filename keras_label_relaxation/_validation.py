"""Argument and data checks shared by the losses, metrics and calibration.

Two kinds, so that every result is right or loud on every backend:

* Guards (``*_rows_valid``, ``class_ids_valid``, ``nan_where_invalid``) are
  tensor ops: they work inside compiled steps, never copy data to the host,
  and turn the affected per-sample values into NaN. They always run.
* Checks (``check_*``) read values on the host and raise a ``ValueError``
  that names the argument and the value. They run only when asked
  (``validate_args=True``) and only on concrete (eager) values, so they never
  sit on the per-step path of ``fit`` (Keras' torch backend runs ``fit``
  eagerly); argument checks of Python values (``check_integer``,
  ``check_choice``, ``check_probability_parameter``) run at construction.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics

#: Allowed deviation of a target row's sum from 1 before it is rejected.
DISTRIBUTION_TOLERANCE = 1e-3


def probability_tolerance(dtype):
    """How far a row of probabilities of ``dtype`` may sum off 1 (and still count).

    ``max(1e-3, 4 eps)``: 1e-3 for float32/float64, 3.9e-3 for float16 and
    0.031 for bfloat16 (whose own rounding moves a softmax row's sum that far).
    """
    dtype = keras.backend.standardize_dtype(dtype)
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}.get(dtype, 0.0)
    return max(DISTRIBUTION_TOLERANCE, 4.0 * eps)


def probability_rows_valid(probs, tolerance=DISTRIBUTION_TOLERANCE):
    """Per row (last axis): no negative entry and the sum within ``tolerance`` of 1.

    Such a row has no entry above ``1 + tolerance`` either, so two row
    reductions do (a minimum and a sum; the sum turns NaN entries into an
    invalid row). Returns a boolean tensor of shape ``probs.shape[:-1]``.
    """
    nonnegative = ops.min(probs, axis=-1) >= 0.0
    return ops.logical_and(nonnegative, ops.abs(ops.sum(probs, axis=-1) - 1.0) <= tolerance)


def one_hot_rows_valid(rows):
    """Per row: entries 0 or 1 with exactly one 1 (boolean, shape ``rows.shape[:-1]``)."""
    binary = ops.all(ops.logical_or(ops.equal(rows, 0.0), ops.equal(rows, 1.0)), axis=-1)
    return ops.logical_and(binary, ops.equal(ops.sum(rows, axis=-1), 1.0))


def class_ids_valid(y_true, num_classes):
    """Per entry: an integer in ``[0, num_classes)`` (boolean, shape of ``y_true``)."""
    valid = ops.logical_and(y_true >= 0, y_true < num_classes)
    if not keras.backend.standardize_dtype(y_true.dtype).startswith(("int", "uint", "bool")):
        valid = ops.logical_and(valid, ops.equal(y_true, ops.round(y_true)))
    return valid


def probability_parameter_valid(value):
    """Per entry: a number in the open interval (0, 1)."""
    return ops.logical_and(value > 0.0, value < 1.0)


def nan_where_invalid(values, valid):
    """``values`` where ``valid``, NaN elsewhere (``valid`` broadcasts to ``values``; ``None``
    means all valid)."""
    if valid is None:
        return values
    return ops.where(valid, values, ops.full_like(values, float("nan")))


def check_probability_parameter(value, name):
    """Check a Python number in the open interval (0, 1); return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float in (0, 1). "
            f"Received: {name}={value!r}"
        )
    if not 0.0 < float(value) < 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float in (0, 1). "
            f"Received: {name}={value}"
        )
    return float(value)


def check_non_negative_parameter(value, name):
    """Check a finite Python number >= 0; return it as float."""
    valid = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
    if not valid or not math.isfinite(float(value)) or float(value) < 0.0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite float >= 0. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def is_concrete(*tensors):
    """Whether the values of ``tensors`` can be read now (eager, not tracing).

    Data-dependent checks run only then; inside a compiled training step
    (``tf.function``, ``jax.jit``, ``torch.compile``) they are skipped.
    """
    if any(isinstance(t, keras.KerasTensor) for t in tensors):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not any(isinstance(t, jax.core.Tracer) for t in tensors)
    if backend == "torch":
        import torch

        # Keras' torch backend infers output shapes by calling the loss on "meta" tensors
        # (no values) filled in as ones: not data to check.
        on_meta = any(getattr(getattr(t, "device", None), "type", None) == "meta" for t in tensors)
        return not (on_meta or torch.compiler.is_compiling())
    return True


def check_probability_entries(values, name):
    """Every entry of the NumPy array ``values`` in (0, 1); else a ValueError naming the first
    bad entries and their (flat) indices."""
    values = np.asarray(values)
    bad = ~((values > 0.0) & (values < 1.0))
    if bad.any():
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected every entry in (0, 1). "
            f"Received: entries {values[bad][:5].tolist()} at indices "
            f"{np.flatnonzero(bad)[:5].tolist()}"
        )


def prepare_alpha(alpha, dtype, name="alpha", validate_args=False):
    """Validate ``alpha`` (a float or a per-sample tensor); return ``(alpha, valid)``.

    A Python number is checked always (``ValueError``), and ``valid`` is
    ``None``. For a tensor, ``valid`` says per entry whether it lies in (0, 1)
    (the losses turn the others' losses into NaN); with ``validate_args`` its
    concrete (eager) values are also checked (``ValueError``).
    """
    if isinstance(alpha, (bool, int, float, np.floating, np.integer)):
        # Straight to ``dtype``: ops.cast would round a Python float to float32 first.
        return ops.convert_to_tensor(check_probability_parameter(alpha, name), dtype=dtype), None
    alpha = ops.convert_to_tensor(alpha)
    if validate_args and is_concrete(alpha):
        check_probability_entries(ops.convert_to_numpy(alpha), name)
    alpha = ops.cast(alpha, dtype)
    return alpha, probability_parameter_valid(alpha)


def squeeze_sparse_labels(y_true, y_pred):
    """Drop a trailing axis of size 1 from integer labels of rank ``y_pred.ndim``."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    return y_true


def _compatible(shape_a, shape_b):
    return len(shape_a) == len(shape_b) and all(
        a is None or b is None or a == b for a, b in zip(shape_a, shape_b)
    )


def check_dense_shapes(y_true, y_pred):
    """``y_true`` and ``y_pred`` must have the same (static) shape."""
    if len(y_pred.shape) < 1 or not _compatible(tuple(y_true.shape), tuple(y_pred.shape)):
        raise ValueError(
            "Arguments `y_true` and `y_pred` must have the same shape. "
            f"Received: y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )


def check_sparse_shapes(y_true, y_pred):
    """``y_true`` must have the shape of ``y_pred`` without its last (class) axis."""
    if len(y_pred.shape) < 1 or not _compatible(tuple(y_true.shape), tuple(y_pred.shape[:-1])):
        raise ValueError(
            "Argument `y_true` must have the shape of `y_pred` without its last (class) "
            f"axis. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )


def check_class_ids(y_true, num_classes):
    """In eager mode, every label must be an integer in ``[0, num_classes)``."""
    if not is_concrete(y_true) or num_classes is None:
        return
    labels = ops.convert_to_numpy(y_true)
    bad = ~((labels >= 0) & (labels < num_classes) & (labels == np.round(labels)))
    if bad.any():
        raise ValueError(
            f"Invalid value in `y_true`: class ids must be integers in [0, {num_classes}). "
            f"Received: {labels[bad][:5].tolist()}"
        )


def check_distributions(y_true):
    """In eager mode, every row of ``y_true`` must be a probability distribution."""
    if not is_concrete(y_true):
        return
    rows = ops.convert_to_numpy(y_true).astype(np.float64)
    negative = (rows < 0).any(axis=-1)
    sums = rows.sum(axis=-1)
    off = np.abs(sums - 1.0) > DISTRIBUTION_TOLERANCE
    bad = negative | off | ~np.isfinite(sums)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            "Invalid value in `y_true`: every row must be a probability distribution "
            f"(entries >= 0, summing to 1 within {DISTRIBUTION_TOLERANCE}). "
            f"Received: row {index} = {np.round(rows[index], 6).tolist()}"
        )


def predictions(y_pred, from_logits, validate_args=False):
    """``(y_pred, valid)``: ``y_pred`` in its compute dtype and, for probabilities, per row
    whether it is a distribution (``None`` for logits).

    Keras' own cross-entropy renormalises any row it is given as probabilities,
    so logits passed without ``from_logits=True`` give a finite, wrong loss;
    here such rows give NaN (``validate_args``: a ``ValueError`` in eager mode).
    The tolerance is ``probability_tolerance`` of the input dtype.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    tolerance = probability_tolerance(y_pred.dtype)
    y_pred = ops.cast(y_pred, _numerics.compute_dtype(y_pred.dtype))
    if from_logits:
        return y_pred, None
    valid = probability_rows_valid(y_pred, tolerance)
    if validate_args and is_concrete(valid):
        if not bool(ops.convert_to_numpy(ops.all(valid))):
            raise ValueError(
                "Invalid value for `y_pred`: with `from_logits=False` every row must hold "
                f"probabilities in [0, 1] summing to 1 (within {tolerance:g}). Pass "
                "`from_logits=True` for logits."
            )
    return y_pred, valid


def all_valid(*masks):
    """Logical and of the boolean masks that are not ``None`` (``None`` if all are)."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    valid = masks[0]
    for mask in masks[1:]:
        valid = ops.logical_and(valid, mask)
    return valid


def sparse_targets(y_true, y_pred, validate_args=False):
    """Integer targets for ``y_pred``: ``(labels, valid)``.

    Drops a trailing axis of size 1, checks the static shape, raises on ids
    outside ``[0, K)`` when ``validate_args`` (eager values only), and returns
    int32 ``labels`` with invalid ids replaced by 0 (so that no gather fails)
    together with the boolean ``valid`` to turn their losses into NaN.
    """
    y_true = squeeze_sparse_labels(y_true, y_pred)
    check_sparse_shapes(y_true, y_pred)
    num_classes = y_pred.shape[-1]
    if validate_args:
        check_class_ids(y_true, num_classes)
    valid = class_ids_valid(y_true, num_classes)
    labels = ops.where(valid, y_true, ops.zeros_like(y_true))
    return ops.cast(labels, "int32"), valid


def dense_targets(y_true, y_pred, validate_args=False):
    """Target rows for ``y_pred``: ``(rows, valid)``, ``valid`` per row.

    A row is valid when its entries are >= 0 and sum to 1 within
    ``DISTRIBUTION_TOLERANCE``; ``validate_args`` raises on the first invalid
    row (eager values only).
    """
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    check_dense_shapes(y_true, y_pred)
    if validate_args:
        check_distributions(y_true)
    nonnegative = ops.all(y_true >= 0.0, axis=-1)
    sums_to_one = ops.abs(ops.sum(y_true, axis=-1) - 1.0) <= DISTRIBUTION_TOLERANCE
    return y_true, ops.logical_and(nonnegative, sums_to_one)


def check_binary_targets(y_true):
    """In eager mode, every entry of ``y_true`` must be 0 or 1."""
    if not is_concrete(y_true):
        return
    values = ops.convert_to_numpy(y_true)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        raise ValueError(
            "Invalid value in `y_true`: binary targets must be 0 or 1. "
            f"Received: {values[bad][:5].tolist()}"
        )


def check_integer(value, name, minimum, condition=""):
    """``value`` as an ``int`` if it is an integer >= ``minimum``; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer >= {minimum}"
            f"{condition}. Received: {name}={value!r}"
        )
    return int(value)


def check_choice(value, name, choices):
    """``value`` if it is one of ``choices``; else a ValueError naming it."""
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of {choices}. "
            f"Received: {name}={value!r}"
        )
    return value


def sparse_inputs(y_true, y_pred, from_logits, validate_args):
    """``(labels, valid, y_pred)`` of a loss on integer ids: invalid ids (and, from
    probabilities, prediction rows that are not distributions) get NaN losses."""
    y_pred, rows_valid = predictions(y_pred, from_logits, validate_args)
    labels, valid = sparse_targets(y_true, y_pred, validate_args)
    return labels, all_valid(valid, rows_valid), y_pred


def dense_inputs(y_true, y_pred, from_logits, validate_args):
    """``(rows, valid, y_pred)`` of a loss on target rows: rows (and, from probabilities,
    prediction rows) that are not distributions get NaN losses."""
    y_pred, rows_valid = predictions(y_pred, from_logits, validate_args)
    y_true, valid = dense_targets(y_true, y_pred, validate_args)
    return y_true, all_valid(valid, rows_valid), y_pred
