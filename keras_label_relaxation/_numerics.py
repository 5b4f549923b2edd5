"""Numerics shared by every loss: compute dtype, epsilons, stable log-probabilities.

Everything that turns predictions into log-probabilities lives here, so the
losses agree with each other (and with Keras' own cross-entropy) to the last
bit:

* ``compute_dtype``: float64 stays float64, every other float (float16,
  bfloat16, float32) is computed in float32.
* ``log_probabilities``: one pass of ``log_softmax`` for logits; for
  probabilities the rows are renormalised and clipped to
  ``[epsilon, 1 - epsilon]`` with ``keras.backend.epsilon()`` (the losses), or
  floored at the dtype's smallest normal number (temperature scaling): the
  only place a probability is clipped.
* ``cross_entropy``: Keras' own fused, stable cross-entropy op, per sample.
  Label relaxation with a one-hot or integer target is a scalar function of it,
  so that op supplies ``log p(y)`` and its gradient.
* ``log1mexp``: ``log(1 - exp(x))`` for ``x < 0`` without cancellation.
* ``mean``: an average that keeps float64 on every backend.
* ``relax_log_probability``: the closed form of the label relaxation loss as
  a function of ``log p(y)``.
"""

import math

import keras
import numpy as np
from keras import ops


def compute_dtype(dtype):
    """Return the dtype the losses compute in for inputs of ``dtype``."""
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"


def as_tensor(x):
    """``ops.convert_to_tensor(x)``, sharing a NumPy array's memory where the backend can.

    Keras' torch backend copies every NumPy array first (``np.array(x)``):
    4 ms per 100,000 x 100 float32 batch, a quarter of an eager ECE update. A
    writable, C-contiguous array of a dtype torch takes is wrapped instead
    (``torch.from_numpy``; moved only if Keras' device is not the CPU).
    TensorFlow and JAX copy into buffers of their own in any case.
    """
    if (
        keras.backend.backend() == "torch"
        and isinstance(x, np.ndarray)
        and x.flags.c_contiguous
        and x.flags.writeable
        and x.dtype in _TORCH_SHARED_DTYPES
    ):
        import torch

        x = torch.from_numpy(x)
    return ops.convert_to_tensor(x)


#: NumPy dtypes ``torch.from_numpy`` wraps as the same dtype (Keras' torch backend maps
#: uint32, for one, to int64).
_TORCH_SHARED_DTYPES = tuple(
    np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "int32", "int64", "float16",
                          "float32", "float64")
)  # fmt: skip


def cast_prediction(y_pred):
    """Convert ``y_pred`` to a tensor in its compute dtype (float32 or float64)."""
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.cast(y_pred, compute_dtype(y_pred.dtype))


def log_probabilities(y_pred, from_logits, axis=-1, floor="epsilon"):
    """Log-probabilities of the last axis of ``y_pred``.

    From logits this is ``log_softmax``. From probabilities the rows are
    renormalised, ``p = y_pred / sum(y_pred)``, and then

        floor="epsilon":  log(clip(p, eps, 1 - eps)),  eps = keras.backend.epsilon()
        floor="tiny":     log(max(p, tiny)),           tiny = smallest normal number of the dtype

    ``"epsilon"`` (default) is what Keras' cross-entropy does, so the losses
    agree with it bit for bit. ``"tiny"`` serves what *recovers* logits from
    probabilities (temperature scaling): ``eps = 1e-7`` erases the tail of a
    confident softmax (``log p`` of -30 becomes -16.1), ``tiny`` (1.18e-38 in
    float32, 2.23e-308 in float64) only keeps ``log 0`` finite; NaN stays NaN.

    Args:
        y_pred: Logits or probabilities, float32 or float64.
        from_logits: Whether ``y_pred`` holds logits.
        axis: The class axis.
        floor: ``"epsilon"`` or ``"tiny"``; used only with ``from_logits=False``.

    Returns:
        ``log p`` of the shape and dtype of ``y_pred``.

    Example:
    >>> import numpy as np
    >>> p = np.array([[1.0, 1e-30]])
    >>> np.asarray(log_probabilities(p, from_logits=False)).round(1)
    array([[ -0. , -16.1]])
    >>> np.asarray(log_probabilities(p, from_logits=False, floor="tiny")).round(1)
    array([[  0. , -69.1]])
    """
    if floor not in ("epsilon", "tiny"):
        raise ValueError(
            "Invalid value for argument `floor`. Expected 'epsilon' or 'tiny'. "
            f"Received: floor={floor!r}"
        )
    if from_logits:
        return ops.log_softmax(y_pred, axis=axis)
    y_pred = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    if floor == "tiny":
        tiny = float(np.finfo(keras.backend.standardize_dtype(y_pred.dtype)).tiny)
        # ops.where rather than ops.maximum/clip: keeps NaN and the dtype on every backend.
        return ops.log(ops.where(y_pred < tiny, ops.full_like(y_pred, tiny), y_pred))
    eps = keras.backend.epsilon()
    return ops.log(ops.clip(y_pred, eps, 1.0 - eps))


def cross_entropy(y_true, y_pred, from_logits, sparse):
    """Per-sample cross-entropy ``-sum_k y_k log p_k`` from Keras' fused op.

    For an integer or one-hot target this is ``-log p(y)``, in ``y_pred``'s
    dtype (JAX with 64-bit types enabled builds its one-hot in float64).
    """
    if sparse:
        loss = ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits)
    else:
        loss = ops.categorical_crossentropy(y_true, y_pred, from_logits=from_logits)
    return ops.cast(loss, y_pred.dtype)


def gather_class(values, labels):
    """``values[..., labels]`` along the last axis without a one-hot tensor."""
    labels = ops.expand_dims(ops.cast(labels, "int32"), axis=-1)
    return ops.squeeze(ops.take_along_axis(values, labels, axis=-1), axis=-1)


def mean(x, axis=None):
    """``sum / count``: Keras' torch and JAX backends average float64 tensors in float32."""
    count = x.shape[axis] if axis is not None else ops.size(x)
    return ops.sum(x, axis=axis) / ops.cast(count, x.dtype)


def cumsum(x):
    """Cumulative sum along the last axis in the dtype of ``x``.

    Keras' torch backend (3.12) accumulates a float64 ``ops.cumsum`` in float32.
    """
    if keras.backend.backend() == "torch" and keras.backend.standardize_dtype(x.dtype) == "float64":
        import torch

        return torch.cumsum(x, dim=-1)
    return ops.cumsum(x, axis=-1)


def segment_sum(data, segment_ids, num_segments):
    """Sums of the entries of the 1-D ``data`` per id in ``segment_ids`` (ids in ``[0,
    num_segments)``), shape ``(num_segments,)``.

    Exact in the dtype of ``data`` on every backend, and the fastest exact op of
    each: Keras' torch ``segment_sum`` and ``bincount`` accumulate float64 in
    float32 and its ``scatter`` takes seconds for a million ids, so torch adds
    with ``index_add_``; TensorFlow's weighted ``DenseBincount`` is 2-4x its
    ``unsorted_segment_sum`` on CPU, and with its size a constant (unlike
    ``tf.math.bincount``/``ops.bincount``) it compiles under XLA.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        out = torch.zeros((num_segments,), dtype=data.dtype, device=data.device)
        return out.index_add_(0, ops.cast(segment_ids, "int64"), data)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.raw_ops.DenseBincount(
            input=ops.cast(segment_ids, "int32"),
            size=num_segments,
            weights=data,
            binary_output=False,
        )
    return ops.segment_sum(data, ops.cast(segment_ids, "int32"), num_segments)


def max_and_argmax(x):
    """``(max, argmax)`` over the last axis of a 2-D ``x``; ties go to the lowest index.

    One pass: ``top_k(k=1)`` (documented to put the lower index first), or on
    torch ``torch.max(x, dim)`` (documented to return the first maximal index;
    25% faster than ``topk`` there).
    """
    if keras.backend.backend() == "torch":
        import torch

        values, indices = torch.max(x, dim=-1)
        return values, ops.cast(indices, "int32")
    values, indices = ops.top_k(x, k=1)
    return values[:, 0], ops.cast(indices[:, 0], "int32")


def log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0``, accurate everywhere (Maechler, 2012).

    Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` below.
    Both branches are finite for every ``x < 0``, so gradients stay finite.
    """
    return ops.where(x > -math.log(2.0), ops.log(-ops.expm1(x)), ops.log1p(-ops.exp(x)))


def relax_log_probability(log_p, alpha):
    """Label relaxation loss as a function of the true class' log-probability.

    ``L = 0`` if ``p >= 1 - alpha``, else
    ``(1 - alpha) log((1 - alpha) / p) + alpha log(alpha / (1 - p))``:
    the Bernoulli KL divergence from ``1 - alpha`` to ``p``. The loss is
    evaluated at ``max(log p, log(1 - alpha))`` so that its unused branch is
    finite; loss *and* gradient are exactly zero inside the set and ``NaN``
    propagates (``NaN >= t`` is false). The loss is C1 across the boundary
    (its derivative vanishes there), so the clamp of rounding noise at 0 just
    outside the set changes neither value nor gradient beyond rounding.

    Args:
        log_p: ``log p(y)``, any shape, float32 or float64.
        alpha: float or tensor broadcastable to ``log_p``.
    """
    alpha = ops.cast(alpha, log_p.dtype)
    log_keep = ops.log1p(-alpha)
    inside = ops.greater_equal(log_p, log_keep)
    safe = ops.where(inside, log_keep, log_p)
    divergence = (1.0 - alpha) * (log_keep - safe) + alpha * (ops.log(alpha) - log1mexp(safe))
    # Near the boundary the two terms cancel to O((log p - log(1 - alpha))^2): clamp
    # rounding noise at 0 (the KL divergence is >= 0; NaN < 0 is false, so NaN stays). Not
    # ops.maximum: Keras' torch backend returns float32 from maximum of two float64 tensors.
    divergence = ops.where(divergence < 0.0, ops.zeros_like(divergence), divergence)
    return ops.where(inside, ops.zeros_like(divergence), divergence)
