"""Calibration estimators beyond 15-bin ECE, as exact functions and streaming metrics.

Every estimator looks at "units" sorted by confidence: a unit has a weight
``n``, a confidence sum ``s`` and an outcome sum ``a`` (the weighted count of
correct top-label predictions, or of samples of class ``k`` in the classwise
mode). The functions use one unit per sample (exact); the metrics keep one
unit per cell of a fine confidence histogram (``resolution`` equal-width cells
``[j/R, (j+1)/R)``, three ``O(resolution)`` sums that add across batches and
replicas) and compute the same estimators from the cells.

Estimators (``W = sum n``, per bin ``b``: ``acc_b = a_b / n_b``, ``conf_b = s_b / n_b``):

- ``norm="l1"``: ``ECE = sum_b (n_b / W) |acc_b - conf_b|`` (Guo et al., 2017);
  ``"l2"``: ``RMSCE = sqrt(sum_b (n_b / W) (acc_b - conf_b)^2)``; ``"max"``:
  ``MCE = max_b |acc_b - conf_b|`` over non-empty bins.
- ``binning="equal_width"``: bin ``min(floor(c B), B - 1)``; ``"equal_mass"``
  (adaptive): units sorted by confidence, a unit whose preceding weight is
  ``C`` goes to bin ``min(floor(B C / W), B - 1)``, so every bin holds ``W / B``
  of the weight where ``B`` divides the count (samples with equal confidence
  share the bin of the first of them).
- ``debiased=True`` (Kumar et al., 2019, "Verified uncertainty calibration"):
  ``l2`` subtracts each bin's sampling variance, ``sqrt(max(0, sum_b (n_b / W)
  [(acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)]))`` (bins with
  ``n_b < 2`` add 0); ``l1`` is ``2 ECE - sum_b (n_b / W) E|N(acc_b - conf_b,
  acc_b (1 - acc_b) / n_b)|``, the limit of their Gaussian resampling correction
  as the number of resamples grows (a folded-normal mean, no random numbers).
  Weights count as repetitions there.
- ``ks_calibration_error`` (Gupta et al., ICLR 2021):
  ``max_i |sum_{j <= i} n_j (c_j - y_j)| / W`` along the sorted confidences,
  read at the end of each group of equal confidences.
- ``smooth_calibration_error`` (Błasiok & Nakkiran, ICLR 2024):
  ``smECE_sigma = sum_t |sum_i n_i (c_i - y_i) K(t, c_i)| / sum_t sum_i n_i K(t, c_i)``
  over ``t`` on 1000 equally spaced points of ``[0, 1]``, with the Gaussian
  kernel reflected at 0 and 1; without a bandwidth, ``sigma`` is relplot's
  fixed point ``sigma = smECE_sigma`` (ten bisection steps on ``[0, 1]``, the
  upper end, as ``relplot.smECE`` 1.0.3).

Metrics vs. functions: equal-width bins are exact when ``num_bins`` divides
``resolution`` (a cell lies in one bin); otherwise and for equal-mass bins a
cell goes to a bin as a whole, which moves at most the weight ``m`` of the
cells that straddle a bin edge: the l1 estimate changes by at most
``2 m / W``. The KS estimate reads the cumulative sum at cell ends only:
``KS - n_max / W <= KS_metric <= KS`` with ``n_max`` the largest cell weight.
The smooth ECE places each cell at its mean confidence, at most ``1 / R`` from
each of its samples: at a fixed ``sigma`` it changes by at most
``sqrt(2 / pi) / (sigma R)``. The histogram of a metric is its state; the
bounds are tested against the functions.
"""

import collections
import math

import numpy as np
from keras import ops

from keras_label_relaxation import _numerics
from keras_label_relaxation.metrics.calibration_error import (
    _SERIALIZABLE,
    _BinnedCalibrationMetric,
    _check_integer,
    _check_num_bins,
    _classwise_bins,
    _nan_if_poisoned,
    _prepare,
    _safe_divide,
    _top_label,
    _top_label_bins,
)

NORMS = ("l1", "l2", "max")
BINNINGS = ("equal_width", "equal_mass")
MODES = ("top_label", "classwise")
SMOOTH_POINTS = 1000
BANDWIDTH_EPSILON = 1e-3
BANDWIDTH_STEPS = 10
# A sample chunk of the exact smooth ECE: (SMOOTH_POINTS, chunk) kernel values at a time.
_SMOOTH_CHUNK = 2048

CalibrationEstimate = collections.namedtuple("CalibrationEstimate", ["value", "low", "high"])
CalibrationEstimate.__doc__ = """An estimate with a basic bootstrap interval ``[low, high]``."""


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of {choices}. "
            f"Received: {name}={value!r}"
        )
    return value


def _check_estimator(norm, binning, debiased, mode):
    _check_choice(norm, "norm", NORMS)
    _check_choice(binning, "binning", BINNINGS)
    _check_choice(mode, "mode", MODES)
    if debiased and norm == "max":
        raise ValueError(
            "Invalid value for argument `debiased`: there is no debiased estimator for "
            f"norm='max'. Received: debiased={debiased!r}, norm={norm!r}"
        )


# --- rows of units (..., U): one row per curve (the top label, or one per class) -------------


def _rowwise_segment_sum(values, ids, num_segments):
    """``values``, integer ``ids`` ``(..., U)`` -> per-row sums ``(..., num_segments)``."""
    lead = tuple(values.shape[:-1])
    rows = int(np.prod(lead)) if lead else 1
    offsets = ops.reshape(ops.arange(rows, dtype="int32") * num_segments, (*lead, 1))
    flat_ids = ops.reshape(ops.cast(ids, "int32") + offsets, (-1,))
    sums = _numerics.segment_sum(ops.reshape(values, (-1,)), flat_ids, rows * num_segments)
    return ops.reshape(sums, (*lead, num_segments))


def _take(values, index):
    return ops.take_along_axis(values, index, axis=-1)


def _tie_groups(sorted_confidence):
    """Per unit: whether it starts a group of equal confidences, and its group id."""
    first = ops.ones_like(sorted_confidence[..., :1], dtype="bool")
    new = ops.concatenate(
        [first, ops.not_equal(sorted_confidence[..., 1:], sorted_confidence[..., :-1])], axis=-1
    )
    return new, _numerics.cumsum(ops.cast(new, "int32")) - 1


def _group_first(values, new, group):
    """Every unit gets the value of the first unit of its group (one ``new`` per group)."""
    units = values.shape[-1]
    firsts = _rowwise_segment_sum(ops.where(new, values, ops.zeros_like(values)), group, units)
    return _take(firsts, group)


def _equal_mass_bins(weight, num_bins, ties=None):
    """Bin ids of sorted units: preceding weight ``C`` -> ``min(floor(B C / W), B - 1)``."""
    before = _numerics.cumsum(weight) - weight
    if ties is not None:
        before = _group_first(before, *ties)
    total = ops.sum(weight, axis=-1, keepdims=True)
    # The cast truncates (>= 0): the floor. Not ops.floor (float32 on Keras' torch backend).
    ids = ops.cast(_safe_divide(num_bins * before, total), "int32")
    return ops.clip(ids, 0, num_bins - 1)


def _norm_from_bins(n, s, a, norm, debiased):
    """The estimator from per-bin weight ``n``, confidence sum ``s``, outcome sum ``a``."""
    total = ops.sum(n, axis=-1)
    gap = a - s
    if norm == "max":
        return _nan_if_poisoned(ops.max(ops.abs(_safe_divide(gap, n)), axis=-1), n)
    accuracy = _safe_divide(a, n)
    if norm == "l2":
        square = _safe_divide(ops.sum(_safe_divide(ops.square(gap), n), axis=-1), total)
        if debiased:
            several = ops.greater(n, 1.0)
            variance = _safe_divide(
                accuracy * (1.0 - accuracy), ops.where(several, n - 1.0, ops.zeros_like(n))
            )
            square = square - _safe_divide(ops.sum(n * variance, axis=-1), total)
            square = ops.where(square > 0.0, square, ops.zeros_like(square))
        return _nan_if_poisoned(ops.sqrt(square), n)
    ece = _safe_divide(ops.sum(ops.abs(gap), axis=-1), total)
    if debiased:
        mean = _safe_divide(gap, n)
        std = ops.sqrt(_safe_divide(accuracy * (1.0 - accuracy), n))
        positive = ops.greater(std, 0.0)
        safe_std = ops.where(positive, std, ops.ones_like(std))
        folded = ops.where(
            positive,
            safe_std * math.sqrt(2.0 / math.pi) * ops.exp(-0.5 * ops.square(mean / safe_std))
            + mean * ops.erf(mean / (safe_std * math.sqrt(2.0))),
            ops.abs(mean),
        )
        ece = 2.0 * ece - _safe_divide(ops.sum(n * folded, axis=-1), total)
    return _nan_if_poisoned(ece, n)


def _reduce_rows(values, norm, mode):
    """Top label: the one row; classwise: mean (l1), root mean square (l2) or max over classes."""
    if mode == "top_label":
        return values
    if norm == "l2":
        return ops.sqrt(_numerics.mean(ops.square(values), axis=-1))
    if norm == "max":
        return ops.max(values, axis=-1)
    return _numerics.mean(values, axis=-1)


def _ks_from_sorted(weight, gap_sum, ends=None):
    """``max |cumsum(gap)| / W`` at the ends of groups (every unit where ``ends`` is None)."""
    path = ops.abs(_numerics.cumsum(gap_sum))
    if ends is not None:
        path = ops.where(ends, path, ops.zeros_like(path))
    ks = _safe_divide(ops.max(path, axis=-1), ops.sum(weight, axis=-1))
    return _nan_if_poisoned(ks, weight)


def _kernel(points, position, sigma):
    """Reflected Gaussian kernel ``(T, U)`` (unnormalised: the constant cancels)."""
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
        kernel = _kernel(points, position[part], sigma)
        # Products and sums, not ops.matmul: Keras' torch backend multiplies float64 in float32.
        g = g + ops.sum(kernel * residual[None, part], axis=-1)
        d = d + ops.sum(kernel * weight[None, part], axis=-1)
    return ops.sum(ops.abs(g)), ops.sum(d)


def _smooth_ece(position, residual, weight, bandwidth, chunk=None):
    """``(smECE, sigma)`` at ``bandwidth`` or, if None, at relplot's fixed point."""
    dtype = position.dtype

    def at(sigma):
        g, d = _smooth_sums(position, residual, weight, sigma, chunk)
        return _safe_divide(g, d)

    if bandwidth is not None:
        sigma = ops.convert_to_tensor(bandwidth, dtype=dtype)
        return _nan_if_poisoned(at(sigma), weight), sigma

    def smaller_than_fixed_point(sigma):
        return ops.logical_or(sigma < BANDWIDTH_EPSILON, sigma < at(sigma))

    high, low = ops.cast(1.0, dtype), ops.cast(0.0, dtype)
    for _ in range(BANDWIDTH_STEPS):
        middle = (high + low) / 2.0
        below = smaller_than_fixed_point(middle)
        low = ops.where(below, middle, low)
        high = ops.where(below, high, middle)
    sigma = ops.where(smaller_than_fixed_point(ops.cast(1.0, dtype)), 1.0, high)
    return _nan_if_poisoned(at(sigma), weight), sigma


# --- exact functions on samples ---------------------------------------------------------------


def _samples(y_true, probs, sample_weight):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"`probs` must have shape (N, K) with N >= 1. Received: probs.shape={probs.shape}"
        )
    return _prepare(y_true, probs, sample_weight, from_logits=False, validate_args=True)


def _curves(labels, probs, weights, mode):
    """Rows of (confidence, outcome, weight): ``(N,)`` top label or ``(K, N)`` classwise."""
    if mode == "top_label":
        return (*_top_label(labels, probs), weights)
    classes = ops.arange(probs.shape[-1], dtype="int32")
    hit = ops.cast(ops.equal(labels[None, :], classes[:, None]), probs.dtype)
    return ops.transpose(probs), hit, ops.broadcast_to(weights[None, :], hit.shape)


def _sorted_curves(confidence, outcome, weight):
    order = ops.argsort(confidence, axis=-1)
    confidence, outcome, weight = (_take(v, order) for v in (confidence, outcome, weight))
    return confidence, outcome, weight, _tie_groups(confidence)


def _binned_from_samples(labels, probs, weights, num_bins, norm, binning, debiased, mode):
    confidence, outcome, weight = _curves(labels, probs, weights, mode)
    if binning == "equal_width":
        ids = ops.clip(ops.cast(confidence * num_bins, "int32"), 0, num_bins - 1)
    else:
        confidence, outcome, weight, ties = _sorted_curves(confidence, outcome, weight)
        ids = _equal_mass_bins(weight, num_bins, ties)
    n, s, a = (
        _rowwise_segment_sum(v, ids, num_bins)
        for v in (weight, weight * confidence, weight * outcome)
    )
    return _reduce_rows(_norm_from_bins(n, s, a, norm, debiased), norm, mode)


def _ks_from_samples(labels, probs, weights):
    confidence, outcome, weight = _curves(labels, probs, weights, "top_label")
    confidence, outcome, weight, (new, _) = _sorted_curves(confidence, outcome, weight)
    ends = ops.concatenate([new[1:], ops.ones_like(new[:1])], axis=-1)
    return _ks_from_sorted(weight, weight * (confidence - outcome), ends)


def _smooth_from_samples(labels, probs, weights, bandwidth):
    confidence, outcome, weight = _curves(labels, probs, weights, "top_label")
    return _smooth_ece(
        confidence, weight * (confidence - outcome), weight, bandwidth, _SMOOTH_CHUNK
    )


def _check_level(confidence_level):
    if not 0.0 < float(confidence_level) < 1.0:
        raise ValueError(
            "Invalid value for argument `confidence_level`. Expected a number in (0, 1). "
            f"Received: confidence_level={confidence_level!r}"
        )


def _estimate(estimator, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed):
    """The estimate on all samples; with ``n_bootstrap``, also a basic bootstrap interval.

    Each replicate draws ``N`` samples with replacement (NumPy's ``default_rng(seed)``) and
    reweights: the replicate's weight of sample ``i`` is its weight times its draw count. The
    interval is ``[2 t - q_high, 2 t - q_low]`` with ``t`` the estimate and ``q`` the
    replicates' quantiles (the basic, or pivotal, bootstrap, as Kumar et al. 2019 report
    calibration errors: resampling raises a binned calibration error, and a percentile
    interval would inherit that shift). Its lower end can be below 0.
    """
    labels, probs, weights = _samples(y_true, probs, sample_weight)
    value = float(estimator(labels, probs, weights))
    if n_bootstrap is None:
        return value
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)):
        raise ValueError(
            "Invalid value for argument `n_bootstrap`. Expected an integer >= 2 or None. "
            f"Received: n_bootstrap={n_bootstrap!r}"
        )
    if n_bootstrap < 2:
        raise ValueError(
            "Invalid value for argument `n_bootstrap`. Expected an integer >= 2 or None. "
            f"Received: n_bootstrap={n_bootstrap}"
        )
    _check_level(confidence_level)
    rng = np.random.default_rng(seed)
    n = probs.shape[0]
    base = ops.convert_to_numpy(weights)
    replicates = []
    for _ in range(int(n_bootstrap)):
        counts = rng.multinomial(n, np.full(n, 1.0 / n))
        replicate = ops.convert_to_tensor(base * counts, dtype=weights.dtype)
        replicates.append(float(estimator(labels, probs, replicate)))
    tail = 50.0 * (1.0 - float(confidence_level))
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return CalibrationEstimate(value, 2.0 * value - float(high), 2.0 * value - float(low))


def calibration_error(
    y_true,
    probs,
    num_bins=15,
    norm="l1",
    binning="equal_width",
    debiased=False,
    mode="top_label",
    sample_weight=None,
    n_bootstrap=None,
    confidence_level=0.95,
    seed=0,
):
    """Binned calibration error of predicted probabilities, exact (arrays in, float out).

    ``norm`` picks ECE (``"l1"``), RMS calibration error (``"l2"``) or MCE
    (``"max"``); ``binning`` equal-width or equal-mass (adaptive) bins;
    ``debiased`` the estimators of Kumar et al. (2019); ``mode`` the top-label
    confidence or every class' probability (classwise: the mean of the per-class
    errors for l1, their root mean square for l2, their maximum for max). See
    the module docstring for the formulas.

    Args:
        y_true: Integer class ids ``(N,)`` or one-hot rows ``(N, K)``.
        probs: Predicted probabilities ``(N, K)`` (rows are checked: a
            ``ValueError`` otherwise).
        num_bins: Number of bins ``B``.
        norm: ``"l1"``, ``"l2"`` or ``"max"``.
        binning: ``"equal_width"`` or ``"equal_mass"``.
        debiased: Kumar et al.'s bias correction (l1 and l2).
        mode: ``"top_label"`` or ``"classwise"``.
        sample_weight: Optional weights ``(N,)``; an integer weight counts like
            repeating the sample.
        n_bootstrap: ``None`` (the default) returns the estimate as a float; an
            integer >= 2 also computes that many bootstrap replicates and returns a
            ``CalibrationEstimate(value, low, high)`` with the basic bootstrap interval.
        confidence_level: Coverage of the bootstrap interval (default 0.95).
        seed: Seed of the bootstrap draws (NumPy ``default_rng``).

    Returns:
        A float, or a ``CalibrationEstimate`` with ``n_bootstrap``.

    Example:
    >>> round(calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], num_bins=10, norm="l2"), 4)
    0.5701
    """
    num_bins = _check_num_bins(num_bins)
    _check_estimator(norm, binning, debiased, mode)

    def estimator(labels, probs, weights):
        return _binned_from_samples(labels, probs, weights, num_bins, norm, binning, debiased, mode)

    return _estimate(estimator, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed)


def ks_calibration_error(
    y_true, probs, sample_weight=None, n_bootstrap=None, confidence_level=0.95, seed=0
):
    """Top-label KS calibration error (Gupta et al., 2021), exact: no bins.

        KS = max_i |sum_{j <= i} w_j (c_j - y_j)| / W

    over the samples sorted by confidence ``c`` (``y``: whether the arg-max is
    right), read at the end of each group of equal confidences.

    Args:
        y_true: Integer class ids ``(N,)`` or one-hot rows ``(N, K)``.
        probs: Predicted probabilities ``(N, K)``.
        sample_weight, n_bootstrap, confidence_level, seed: As in
            ``calibration_error`` (weights, and the bootstrap interval).

    Example:
    >>> round(ks_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]]), 4)
    0.4
    """
    return _estimate(
        _ks_from_samples, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed
    )


def _check_bandwidth(bandwidth):
    if bandwidth is not None and not (
        isinstance(bandwidth, (int, float, np.floating, np.integer))
        and not isinstance(bandwidth, bool)
        and 0.0 < float(bandwidth) <= 1.0
    ):
        raise ValueError(
            "Invalid value for argument `bandwidth`. Expected None or a number in (0, 1]. "
            f"Received: bandwidth={bandwidth!r}"
        )
    return None if bandwidth is None else float(bandwidth)


def smooth_calibration_error(
    y_true,
    probs,
    bandwidth=None,
    sample_weight=None,
    n_bootstrap=None,
    confidence_level=0.95,
    seed=0,
    return_bandwidth=False,
):
    """Top-label smooth ECE (Błasiok & Nakkiran, 2024), exact in the data.

        smECE_s = sum_t |sum_i w_i (c_i - y_i) K_s(t, c_i)| / sum_t sum_i w_i K_s(t, c_i)

    with the Gaussian kernel ``K_s`` reflected at 0 and 1 and ``t`` on 1000
    points of ``[0, 1]``; ``bandwidth=None`` takes relplot's fixed point
    ``s = smECE_s``. Costs ``O(1000 N)`` per bandwidth (eleven with the
    automatic bandwidth).

    Args:
        y_true: Integer class ids ``(N,)`` or one-hot rows ``(N, K)``.
        probs: Predicted probabilities ``(N, K)``.
        bandwidth: The kernel's standard deviation in ``(0, 1]``, or None.
        sample_weight, n_bootstrap, confidence_level, seed: As in
            ``calibration_error`` (weights, and the bootstrap interval).
        return_bandwidth: Also return the bandwidth used (as ``relplot.smECE``'s
            ``return_width``): ``(estimate, bandwidth)``.

    Example:
    >>> round(smooth_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], bandwidth=0.1), 4)
    0.3496
    """
    bandwidth = _check_bandwidth(bandwidth)
    used = []

    def estimator(labels, probs, weights):
        value, sigma = _smooth_from_samples(labels, probs, weights, bandwidth)
        used.append(sigma)
        return value

    estimate = _estimate(
        estimator, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed
    )
    return (estimate, float(used[0])) if return_bandwidth else estimate


# --- streaming metrics on a fine histogram ----------------------------------------------------


class _HistogramMetric(_BinnedCalibrationMetric):
    """State: per-cell weight, confidence sum and outcome sum over ``resolution`` cells."""

    def __init__(self, resolution, from_logits, validate_args, name, dtype, state_shape=()):
        self.resolution = _check_integer(resolution, "resolution", 1)
        super().__init__(self.resolution, from_logits, validate_args, name, dtype, state_shape)

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution}


@_SERIALIZABLE
class CalibrationError(_HistogramMetric):
    """Streaming binned calibration error: ECE, RMS, MCE; equal-width or equal-mass; debiased.

    The same estimators as ``calibration_error`` (see there and the module
    docstring), computed from a histogram of ``resolution`` equal-width
    confidence cells: exact for equal-width bins when ``num_bins`` divides
    ``resolution``; otherwise (and for equal-mass bins) cells that straddle a
    bin edge go to one bin as a whole, which changes the l1 estimate by at most
    twice their weight over the total.

    Args:
        num_bins: Number of bins ``B``.
        norm: ``"l1"`` (ECE), ``"l2"`` (RMS calibration error) or ``"max"`` (MCE).
        binning: ``"equal_width"`` or ``"equal_mass"``.
        debiased: Kumar et al.'s bias correction (l1, l2).
        mode: ``"top_label"`` or ``"classwise"`` (needs ``num_classes``).
        num_classes: Number of classes, for ``mode="classwise"``.
        resolution: Number of histogram cells (default 3000; state
            ``3 resolution`` floats, ``3 K resolution`` classwise).
        from_logits: Whether ``y_pred`` holds logits (see
            ``ExpectedCalibrationError``: rows that are not distributions make
            the result NaN).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Shapes, masks and ``sample_weight`` as ``ExpectedCalibrationError``.

    Example:
    >>> m = CalibrationError(num_bins=10, norm="l2")
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.5701
    """

    def __init__(
        self,
        num_bins=15,
        norm="l1",
        binning="equal_width",
        debiased=False,
        mode="top_label",
        num_classes=None,
        resolution=3000,
        from_logits=False,
        validate_args=False,
        name="calibration_error",
        dtype=None,
    ):
        _check_estimator(norm, binning, debiased, mode)
        self.num_bins = _check_num_bins(num_bins)
        self.norm, self.binning, self.debiased, self.mode = norm, binning, bool(debiased), mode
        state_shape = ()
        if mode == "classwise":
            num_classes = _check_integer(num_classes, "num_classes", 2, " with mode='classwise'")
            state_shape = (int(num_classes),)
        self.num_classes = None if num_classes is None else int(num_classes)
        super().__init__(resolution, from_logits, validate_args, name, dtype, state_shape)

    def _bins(self, labels, probs, weights):
        if self.mode == "top_label":
            return _top_label_bins(labels, probs, weights, self.resolution)
        return _classwise_bins(labels, probs, weights, self.resolution, self.num_classes)

    def result(self):
        n, s, a = self._state()
        if self.binning == "equal_width":
            cells = ops.arange(self.resolution, dtype="int32")
            ids = ops.broadcast_to((cells * self.num_bins) // self.resolution, n.shape)
        else:
            ids = _equal_mass_bins(n, self.num_bins)
        n, s, a = (_rowwise_segment_sum(v, ids, self.num_bins) for v in (n, s, a))
        return _reduce_rows(
            _norm_from_bins(n, s, a, self.norm, self.debiased), self.norm, self.mode
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_bins": self.num_bins,
            "norm": self.norm,
            "binning": self.binning,
            "debiased": self.debiased,
            "mode": self.mode,
            "num_classes": self.num_classes,
        }


@_SERIALIZABLE
class KSCalibrationError(_HistogramMetric):
    """Streaming top-label KS calibration error (Gupta et al., 2021).

    ``ks_calibration_error`` read at the ends of ``resolution`` confidence
    cells: ``KS - n_max / W <= result <= KS`` with ``n_max`` the largest cell
    weight.

    Args:
        resolution: Number of histogram cells (default 3000).
        from_logits: Whether ``y_pred`` holds logits (see ``ExpectedCalibrationError``).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = KSCalibrationError()
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.4
    """

    def __init__(
        self, resolution=3000, from_logits=False, validate_args=False, name="ks_ce", dtype=None
    ):
        super().__init__(resolution, from_logits, validate_args, name, dtype)

    def result(self):
        n, s, a = self._state()
        return _ks_from_sorted(n, s - a)


@_SERIALIZABLE
class SmoothCalibrationError(_HistogramMetric):
    """Streaming top-label smooth ECE (Błasiok & Nakkiran, 2024).

    ``smooth_calibration_error`` with each of ``resolution`` confidence cells
    placed at its mean confidence: at a fixed bandwidth ``s`` within
    ``sqrt(2 / pi) / (s resolution)`` of the exact value. ``result()`` costs
    ``O(1000 resolution)`` per bandwidth (eleven with the automatic one), so
    it is cheaper in ``evaluate`` than logged at every ``fit`` step.

    Args:
        bandwidth: The kernel's standard deviation in ``(0, 1]``, or None for
            relplot's fixed-point rule.
        resolution: Number of histogram cells (default 1000).
        from_logits: Whether ``y_pred`` holds logits (see ``ExpectedCalibrationError``).
        validate_args: Also raise on invalid inputs in eager calls.
        name: Metric name.
        dtype: Dtype of the state.

    Example:
    >>> m = SmoothCalibrationError(bandwidth=0.1)
    >>> m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    >>> round(float(m.result()), 4)
    0.3496
    """

    def __init__(
        self,
        bandwidth=None,
        resolution=1000,
        from_logits=False,
        validate_args=False,
        name="smooth_ece",
        dtype=None,
    ):
        self.bandwidth = _check_bandwidth(bandwidth)
        super().__init__(resolution, from_logits, validate_args, name, dtype)

    def result(self):
        n, s, a = self._state()
        centres = (ops.cast(ops.arange(self.resolution), n.dtype) + 0.5) / self.resolution
        position = ops.where(ops.greater(n, 0.0), _safe_divide(s, n), centres)
        value, _ = _smooth_ece(position, s - a, n, self.bandwidth)
        return value

    def get_config(self):
        return {**super().get_config(), "bandwidth": self.bandwidth}
