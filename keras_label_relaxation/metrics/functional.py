"""The statistical core of the calibration metrics: every estimator, written once.

Functional, as ``torchmetrics.functional`` beside its modular classes and Keras'
loss functions beside their ``Loss`` classes: the streaming metrics
(``ExpectedCalibrationError``, ``CalibrationError``, ...), the exact
functions (``calibration_error``, ...), temperature scaling's grid, the
runner's tables and the reliability figures all call these functions, so a fix
lands in one place. Only ``keras.ops``: every backend, compiled or eager.

Every estimator looks at "units" sorted by confidence: a unit has a weight
``n``, a confidence sum ``s``, an outcome sum ``a`` (the weighted count of
correct top-label predictions, or of samples of class ``k`` in the classwise
mode) and a squared-weight sum ``q``. A sample is a unit (exact); a metric's
histogram cell is a unit too (the sums add).

Binning rule (the paper's reference code, Guo et al. 2017): ``B`` equal-width
bins ``[lo, hi)``; a confidence ``c`` falls into bin ``min(floor(c B), B - 1)``,
so a confidence of exactly 1.0 is in the last bin. Equal-mass (adaptive) bins:
units sorted by confidence, a unit whose preceding weight is ``C`` goes to bin
``min(floor(B C / W), B - 1)`` (samples with equal confidence share the bin of
the first of them).

Estimators (``W = sum n``, per bin ``b``: ``acc_b = a_b / n_b``, ``conf_b = s_b / n_b``,
effective size ``m_b = n_b^2 / q_b``):

- ``norm="l1"``: ``ECE = sum_b (n_b / W) |acc_b - conf_b|``; ``"l2"``:
  ``RMSCE = sqrt(sum_b (n_b / W) (acc_b - conf_b)^2)``; ``"max"``:
  ``MCE = max_b |acc_b - conf_b|`` over non-empty bins.
- ``debiased=True`` (Kumar et al., 2019, "Verified uncertainty calibration"):
  ``l2`` subtracts each bin's sampling variance, ``sqrt(max(0, sum_b (n_b / W)
  [(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (m_b - 1)]))``, where a bin of a
  single sample (``m_b = 1``) adds 0 (as their ``unbiased_l2_ce``); ``l1`` is
  ``2 ECE - sum_b (n_b / W) E|N(acc_b - conf_b, acc_b (1 - acc_b) / m_b)|``,
  the limit of their Gaussian resampling correction as the number of
  resamples grows (a folded-normal mean, no random numbers). The effective
  size ``m_b`` (Kish) makes both invariant to the scale of the weights and
  equal to the unweighted estimators for integer repetition weights' unit
  expansion only where the weights are equal; with weights all equal it is
  the bin's count.
- ``ks_from_sorted`` (Gupta et al., ICLR 2021):
  ``max_i |sum_{j <= i} n_j (c_j - y_j)| / W`` along the sorted confidences,
  read at the end of each group of equal confidences.
- ``smooth_ece`` (Błasiok & Nakkiran, ICLR 2024):
  ``smECE_sigma = sum_t |sum_i n_i (c_i - y_i) K(t, c_i)| / sum_t sum_i n_i K(t, c_i)``
  over ``t`` on 1000 equally spaced points of ``[0, 1]``, with the Gaussian
  kernel reflected at 0 and 1 (``reflected_kernel``); without a bandwidth,
  ``sigma`` is relplot's fixed point ``sigma = smECE_sigma`` (ten bisection
  steps on ``[0, 1]``, the upper end, as ``relplot.smECE`` 1.0.3).

Invalid samples carry the weight NaN (``prepare``): every estimate they enter
is NaN (``nan_if_poisoned``), never a finite wrong number.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _numerics, _validation


def probabilities(y_pred, from_logits, validate_args):
    """``(probs, valid)``: probabilities in the compute dtype and, when they were given as
    such (``from_logits=False``), per row whether it is a distribution (else ``None``)."""
    y_pred, valid = _validation.predictions(y_pred, from_logits, validate_args)
    return (ops.softmax(y_pred, axis=-1) if from_logits else y_pred), valid


def _check_one_hot(rows):
    if _validation.is_concrete(rows) and not bool(
        ops.convert_to_numpy(ops.all(_validation.one_hot_rows_valid(rows)))
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


def prepare(y_true, y_pred, sample_weight, from_logits, validate_args=False):
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
    probs, valid = probabilities(y_pred, from_logits, validate_args)
    num_classes = probs.shape[-1]
    y_true = _numerics.as_tensor(y_true)
    if len(y_true.shape) == len(probs.shape) and y_true.shape[-1] == num_classes != 1:
        y_true = ops.cast(y_true, dtype)
        _validation.check_dense_shapes(y_true, probs)
        if validate_args:
            _check_one_hot(y_true)
        target_valid = _validation.one_hot_rows_valid(y_true)
        labels = ops.cast(ops.argmax(y_true, axis=-1), "int32")
    else:
        labels, target_valid = _validation.sparse_targets(y_true, probs, validate_args)
    valid = _validation.all_valid(target_valid, valid)
    # Keras brings a weight of shape (..., 1) to rank (..., 1) too: flatten both.
    weights, valid = ops.reshape(weights, (-1,)), ops.reshape(valid, (-1,))
    weights = ops.where(
        ops.logical_or(valid, ops.equal(weights, 0.0)),
        weights,
        ops.full_like(weights, float("nan")),
    )
    return ops.reshape(labels, (-1,)), ops.reshape(probs, (-1, num_classes)), weights


def bin_index(confidence, num_bins):
    """Equal-width bin ``min(floor(c B), B - 1)`` of each confidence (int32, shape of ``c``)."""
    # Confidences are >= 0, so the cast's truncation is the floor. Not ops.floor: Keras'
    # torch backend rounds a float64 argument to float32 first (0.4 - 1e-9 lands in bin 6).
    index = ops.cast(confidence * num_bins, "int32")
    return ops.clip(index, 0, num_bins - 1)


def bin_sums(confidence, correct, weights, num_bins, squared=True):
    """Per equal-width bin: ``(n, s, a, q)``, the summed weight, weight times confidence,
    weight times correctness and squared weight.

    ``confidence`` and ``correct`` are ``(N,)``; ``weights`` ``(N,)`` gives sums
    ``(num_bins,)``, and ``(R, N)`` (e.g. ``R`` bootstrap replicates' draw
    counts) gives ``(R, num_bins)``: the bins depend on the confidences only.
    ``squared=False`` leaves out ``q`` (only the debiased estimators need it).
    """
    index = bin_index(confidence, num_bins)
    values = (weights, weights * confidence, weights * correct)
    values += (ops.square(weights),) if squared else ()
    if len(weights.shape) == 1:
        return tuple(_numerics.segment_sum(v, index, num_bins) for v in values)
    index = ops.broadcast_to(index, weights.shape)
    return tuple(rowwise_segment_sum(v, index, num_bins) for v in values)


def top_label(labels, probs):
    """``(confidence, correct)``: ``max_k p_k`` and whether ``argmax_k p_k`` (the lowest
    index on ties) is the label, in ``probs``' dtype."""
    confidence, predicted = _numerics.max_and_argmax(probs)
    return confidence, ops.cast(ops.equal(predicted, labels), probs.dtype)


def top_label_bins(labels, probs, weights, num_bins, squared=True):
    """Per-bin ``(n, s, a, q)`` of the top label (see ``bin_sums``)."""
    return bin_sums(*top_label(labels, probs), weights, num_bins, squared)


def classwise_bins(labels, probs, weights, num_bins, num_classes, squared=True):
    """Per (class, bin) weight, summed ``p_k``, summed ``[y = k]`` and summed squared weight,
    each ``(K, num_bins)``.

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
    cells = ops.reshape(offsets + bin_index(probs, num_bins), (-1,))
    spread = ops.broadcast_to(weights[:, None], ops.shape(probs))
    label_cells = labels * num_bins + bin_index(_numerics.gather_class(probs, labels), num_bins)
    sums = (
        _numerics.segment_sum(ops.reshape(spread, (-1,)), cells, k * num_bins),
        _numerics.segment_sum(ops.reshape(spread * probs, (-1,)), cells, k * num_bins),
        _numerics.segment_sum(weights, label_cells, k * num_bins),
    )
    if squared:
        squares = ops.reshape(ops.square(spread), (-1,))
        sums += (_numerics.segment_sum(squares, cells, k * num_bins),)
    return tuple(ops.reshape(v, (k, num_bins)) for v in sums)


def safe_divide(numerator, denominator):
    """``numerator / denominator``, 0 where the denominator is exactly 0.

    A NaN denominator stays NaN. Not ``ops.divide_no_nan``: Keras' torch
    backend computes it in float32.
    """
    nonzero = ops.not_equal(denominator, 0.0)
    safe = ops.where(nonzero, denominator, ops.ones_like(denominator))
    return ops.where(nonzero, numerator / safe, ops.zeros_like(numerator))


def nan_if_poisoned(value, weight):
    """NaN wherever a bin weight of the same calibration curve is NaN.

    Reductions such as ``max`` need not propagate NaN on every backend; this
    makes a metric that saw an invalid sample NaN, never a finite number.
    """
    poisoned = ops.any(ops.isnan(weight), axis=-1)
    return ops.where(poisoned, ops.full_like(value, float("nan")), value)


NORMS = ("l1", "l2", "max")


BINNINGS = ("equal_width", "equal_mass")


MODES = ("top_label", "classwise")


SMOOTH_POINTS = 1000


BANDWIDTH_EPSILON = 1e-3


BANDWIDTH_STEPS = 10


SMOOTH_CHUNK = 2048


def rowwise_segment_sum(values, ids, num_segments):
    """``values``, integer ``ids`` ``(..., U)`` -> per-row sums ``(..., num_segments)``."""
    lead = tuple(values.shape[:-1])
    rows = int(np.prod(lead)) if lead else 1
    offsets = ops.reshape(ops.arange(rows, dtype="int32") * num_segments, (*lead, 1))
    flat_ids = ops.reshape(ops.cast(ids, "int32") + offsets, (-1,))
    sums = _numerics.segment_sum(ops.reshape(values, (-1,)), flat_ids, rows * num_segments)
    return ops.reshape(sums, (*lead, num_segments))


def _take(values, index):
    return ops.take_along_axis(values, index, axis=-1)


def tie_groups(sorted_confidence):
    """Per unit: whether it starts a group of equal confidences, and its group id."""
    first = ops.ones_like(sorted_confidence[..., :1], dtype="bool")
    new = ops.concatenate(
        [first, ops.not_equal(sorted_confidence[..., 1:], sorted_confidence[..., :-1])], axis=-1
    )
    return new, _numerics.cumsum(ops.cast(new, "int32")) - 1


def _group_first(values, new, group):
    """Every unit gets the value of the first unit of its group (one ``new`` per group)."""
    units = values.shape[-1]
    firsts = rowwise_segment_sum(ops.where(new, values, ops.zeros_like(values)), group, units)
    return _take(firsts, group)


def equal_mass_bins(weight, num_bins, ties=None):
    """Bin ids of sorted units: preceding weight ``C`` -> ``min(floor(B C / W), B - 1)``."""
    before = _numerics.cumsum(weight) - weight
    if ties is not None:
        before = _group_first(before, *ties)
    total = ops.sum(weight, axis=-1, keepdims=True)
    # The cast truncates (>= 0): the floor. Not ops.floor (float32 on Keras' torch backend).
    # In float64 a share within 1e-9 (relative) below a bin edge counts as on it, so that
    # rounding in the cumulative sum of weights such as 1 / N does not move a sample.
    share = safe_divide(num_bins * before, total)
    if keras.backend.standardize_dtype(share.dtype) == "float64":
        share = share * (1.0 + 1e-9)
    ids = ops.cast(share, "int32")
    return ops.clip(ids, 0, num_bins - 1)


def binned_error(n, s, a, norm, debiased=False, q=None):
    """ECE (``"l1"``), RMS (``"l2"``) or MCE (``"max"``) from per-bin sums ``(..., B)``.

    ``n``: weight, ``s``: weight times confidence, ``a``: weight times outcome,
    ``q``: squared weight (needed with ``debiased``; see the module docstring).

    Example:
    >>> import numpy as np
    >>> n, s, a = np.array([2.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.9]), np.array([2.0, 0.0, 0.0])
    >>> round(float(binned_error(n, s, a, "l1")), 4)
    0.6333
    """
    total = ops.sum(n, axis=-1)
    gap = a - s
    if norm == "max":
        return nan_if_poisoned(ops.max(ops.abs(safe_divide(gap, n)), axis=-1), n)
    accuracy = safe_divide(a, n)
    if norm == "l2":
        square = safe_divide(ops.sum(safe_divide(ops.square(gap), n), axis=-1), total)
        if debiased:
            size = effective_size(n, q)
            several = ops.greater(size, 1.0)
            variance = safe_divide(
                accuracy * (1.0 - accuracy), ops.where(several, size - 1.0, ops.zeros_like(n))
            )
            per_bin = ops.where(
                several, safe_divide(ops.square(gap), n) - n * variance, ops.zeros_like(n)
            )
            square = safe_divide(ops.sum(per_bin, axis=-1), total)
            square = ops.where(square > 0.0, square, ops.zeros_like(square))
        return nan_if_poisoned(ops.sqrt(square), n)
    ece = safe_divide(ops.sum(ops.abs(gap), axis=-1), total)
    if debiased:
        mean = safe_divide(gap, n)
        std = ops.sqrt(safe_divide(accuracy * (1.0 - accuracy), effective_size(n, q)))
        positive = ops.greater(std, 0.0)
        safe_std = ops.where(positive, std, ops.ones_like(std))
        folded = ops.where(
            positive,
            safe_std * math.sqrt(2.0 / math.pi) * ops.exp(-0.5 * ops.square(mean / safe_std))
            + mean * ops.erf(mean / (safe_std * math.sqrt(2.0))),
            ops.abs(mean),
        )
        ece = 2.0 * ece - safe_divide(ops.sum(n * folded, axis=-1), total)
    return nan_if_poisoned(ece, n)


def effective_size(n, q):
    """Kish's effective sample size ``n^2 / q`` per bin (0 for an empty bin).

    Equals the count for equal weights, whatever their scale: the debiased
    estimators' variance terms use it, so that weights all 1 and all ``1 / N``
    give the same estimate.
    """
    if q is None:
        raise ValueError("The debiased estimators need the bins' squared-weight sums `q`.")
    return safe_divide(ops.square(n), q)


def reduce_classes(values, norm, mode):
    """Top label: the one row; classwise: mean (l1), root mean square (l2) or max over classes."""
    if mode == "top_label":
        return values
    if norm == "l2":
        return ops.sqrt(_numerics.mean(ops.square(values), axis=-1))
    if norm == "max":
        return ops.max(values, axis=-1)
    return _numerics.mean(values, axis=-1)


def ks_from_sorted(weight, gap_sum, ends=None):
    """``max |cumsum(gap)| / W`` at the ends of groups (every unit where ``ends`` is None)."""
    path = ops.abs(_numerics.cumsum(gap_sum))
    if ends is not None:
        path = ops.where(ends, path, ops.zeros_like(path))
    ks = safe_divide(ops.max(path, axis=-1), ops.sum(weight, axis=-1))
    return nan_if_poisoned(ks, weight)


def reflected_kernel(points, position, sigma):
    """Gaussian kernel reflected at 0 and 1, ``(T, U)`` for points ``(T,)`` and positions
    ``(U,)``: ``sum over images u in (c, -c, 2 - c) of exp(-(t - u)^2 / (2 sigma^2))``
    (unnormalised: the constant cancels in the smooth ECE and the smoothed curves)."""
    t = points[:, None]
    total = 0.0
    for image in (position, -position, 2.0 - position):
        total = total + ops.exp(-0.5 * ops.square((t - image[None, :]) / sigma))
    return total


def _smooth_sums(position, residual, weight, sigma, chunk=None):
    """``(sum_t |g(t)|, sum_t d(t))`` of the kernel-smoothed residual and weight."""
    dtype = position.dtype
    points = ops.cast(ops.arange(SMOOTH_POINTS), dtype) / (SMOOTH_POINTS - 1)
    units = position.shape[-1]
    chunk = chunk or units
    g = d = 0.0
    for start in range(0, units, chunk):
        part = slice(start, start + chunk)
        kernel = reflected_kernel(points, position[part], sigma)
        # Products and sums, not ops.matmul: Keras' torch backend multiplies float64 in float32.
        g = g + ops.sum(kernel * residual[None, part], axis=-1)
        d = d + ops.sum(kernel * weight[None, part], axis=-1)
    return ops.sum(ops.abs(g)), ops.sum(d)


def smooth_ece(position, residual, weight, bandwidth, chunk=None):
    """``(smECE, sigma)`` at ``bandwidth`` or, if None, at relplot's fixed point."""
    dtype = position.dtype

    def at(sigma):
        g, d = _smooth_sums(position, residual, weight, sigma, chunk)
        return safe_divide(g, d)

    if bandwidth is not None:
        sigma = ops.convert_to_tensor(bandwidth, dtype=dtype)
        return nan_if_poisoned(at(sigma), weight), sigma

    def smaller_than_fixed_point(sigma):
        return ops.logical_or(sigma < BANDWIDTH_EPSILON, sigma < at(sigma))

    high, low = ops.cast(1.0, dtype), ops.cast(0.0, dtype)
    for _ in range(BANDWIDTH_STEPS):
        middle = (high + low) / 2.0
        below = smaller_than_fixed_point(middle)
        low = ops.where(below, middle, low)
        high = ops.where(below, high, middle)
    sigma = ops.where(smaller_than_fixed_point(ops.cast(1.0, dtype)), 1.0, high)
    return nan_if_poisoned(at(sigma), weight), sigma


def samples(y_true, probs, sample_weight):
    """Checked ``(labels (N,), probs (N, K), weights (N,))`` of arrays (``prepare``, float64)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"`probs` must have shape (N, K) with N >= 1. Received: probs.shape={probs.shape}"
        )
    return prepare(y_true, probs, sample_weight, from_logits=False, validate_args=True)


def curves(labels, probs, weights, mode):
    """Rows of (confidence, outcome, weight): ``(N,)`` top label or ``(K, N)`` classwise."""
    if mode == "top_label":
        return (*top_label(labels, probs), weights)
    classes = ops.arange(probs.shape[-1], dtype="int32")
    hit = ops.cast(ops.equal(labels[None, :], classes[:, None]), probs.dtype)
    return ops.transpose(probs), hit, ops.broadcast_to(weights[None, :], hit.shape)


def _sorted_curves(confidence, outcome, weight):
    order = ops.argsort(confidence, axis=-1)
    confidence, outcome, weight = (_take(v, order) for v in (confidence, outcome, weight))
    return confidence, outcome, weight, tie_groups(confidence)


def binned_error_of_samples(labels, probs, weights, num_bins, norm, binning, debiased, mode):
    """A binned estimator on samples (one unit each; see the module docstring)."""
    confidence, outcome, weight = curves(labels, probs, weights, mode)
    if binning == "equal_width":
        ids = ops.clip(ops.cast(confidence * num_bins, "int32"), 0, num_bins - 1)
    else:
        confidence, outcome, weight, ties = _sorted_curves(confidence, outcome, weight)
        ids = equal_mass_bins(weight, num_bins, ties)
    n, s, a, q = (
        rowwise_segment_sum(v, ids, num_bins)
        for v in (weight, weight * confidence, weight * outcome, ops.square(weight))
    )
    return reduce_classes(binned_error(n, s, a, norm, debiased, q), norm, mode)


def ks_error_of_samples(labels, probs, weights):
    """The top-label KS calibration error on samples."""
    confidence, outcome, weight = curves(labels, probs, weights, "top_label")
    confidence, outcome, weight, (new, _) = _sorted_curves(confidence, outcome, weight)
    ends = ops.concatenate([new[1:], ops.ones_like(new[:1])], axis=-1)
    return ks_from_sorted(weight, weight * (confidence - outcome), ends)


def smooth_error_of_samples(labels, probs, weights, bandwidth):
    """``(smECE, sigma)`` on samples, top label."""
    confidence, outcome, weight = curves(labels, probs, weights, "top_label")
    return smooth_ece(confidence, weight * (confidence - outcome), weight, bandwidth, SMOOTH_CHUNK)
