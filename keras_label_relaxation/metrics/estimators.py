"""Calibration estimators beyond 15-bin ECE, as exact functions and streaming metrics.

The estimators' formulas and their one implementation live in
``metrics.functional`` (see its docstring): ECE, RMS and maximum calibration
error with equal-width or equal-mass bins, top-label or classwise, debiased
(Kumar et al., 2019) with weights of any scale; the KS calibration error
(Gupta et al., 2021); the smooth ECE (Błasiok & Nakkiran, 2024). This module
gives them two faces: exact functions of arrays (one unit per sample, with
bootstrap intervals from ``metrics.statistics``) and streaming metrics, which
keep one unit per cell of a fine confidence histogram (``resolution``
equal-width cells ``[j/R, (j+1)/R)``, four ``O(resolution)`` sums that add
across batches and replicas).

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

import keras
import numpy as np
from keras import ops

from keras_label_relaxation import _validation
from keras_label_relaxation.metrics import functional as F
from keras_label_relaxation.metrics import statistics
from keras_label_relaxation.metrics.calibration_error import BinnedCalibrationMetric

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_label_relaxation")

CalibrationEstimate = collections.namedtuple("CalibrationEstimate", ["value", "low", "high"])
CalibrationEstimate.__doc__ = """An estimate with an interval ``[low, high]`` for the estimator's
expectation at this sample size (``metrics.statistics.normal_interval``)."""


def _check_estimator(norm, binning, debiased, mode):
    _validation.check_choice(norm, "norm", F.NORMS)
    _validation.check_choice(binning, "binning", F.BINNINGS)
    _validation.check_choice(mode, "mode", F.MODES)
    if debiased and norm == "max":
        raise ValueError(
            "Invalid value for argument `debiased`: there is no debiased estimator for "
            f"norm='max'. Received: debiased={debiased!r}, norm={norm!r}"
        )


# --- exact functions on samples ---------------------------------------------------------------


def _estimate(estimator, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed):
    """The estimate on all samples; with ``n_bootstrap``, also a bootstrap interval.

    Each replicate draws ``N`` samples with replacement
    (``statistics.bootstrap_replicates``) and reweights: the replicate's weight
    of sample ``i`` is its weight times its draw count. The interval is
    ``statistics.normal_interval``: the estimate plus or minus ``z`` bootstrap
    standard deviations, in [0, 1]; it covers the estimator's expectation at
    this ``N`` (BENCHMARKS.md measures it), not the true calibration error,
    which a binned estimator overestimates.
    """
    labels, probs, weights = F.samples(y_true, probs, sample_weight)
    value = float(estimator(labels, probs, weights))
    if n_bootstrap is None:
        return value
    # bootstrap_replicates checks n_bootstrap before drawing.
    confidence_level = statistics.check_level(confidence_level)
    base = ops.convert_to_numpy(weights)

    def replicate(counts):
        return [
            float(estimator(labels, probs, ops.convert_to_tensor(base * c, dtype=weights.dtype)))
            for c in counts[0]
        ]

    replicates = statistics.bootstrap_replicates(
        replicate, [probs.shape[0]], n_bootstrap=n_bootstrap, seed=seed
    )
    return CalibrationEstimate(
        value, *statistics.normal_interval(value, replicates, confidence_level)
    )


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
            ``CalibrationEstimate(value, low, high)``: an interval in [0, 1] for the
            estimator's expectation at this ``N`` (``statistics.normal_interval``).
        confidence_level: Coverage of the bootstrap interval (default 0.95).
        seed: Seed of the bootstrap draws (NumPy ``default_rng``).

    Returns:
        A float, or a ``CalibrationEstimate`` with ``n_bootstrap``.

    Example:
    >>> round(calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]], num_bins=10, norm="l2"), 4)
    0.5701
    """
    num_bins = _validation.check_integer(num_bins, "num_bins", 1)
    _check_estimator(norm, binning, debiased, mode)

    def estimator(labels, probs, weights):
        return F.binned_error_of_samples(
            labels, probs, weights, num_bins, norm, binning, debiased, mode
        )

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
        F.ks_error_of_samples, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed
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
        value, sigma = F.smooth_error_of_samples(labels, probs, weights, bandwidth)
        used.append(sigma)
        return value

    estimate = _estimate(
        estimator, y_true, probs, sample_weight, n_bootstrap, confidence_level, seed
    )
    return (estimate, float(used[0])) if return_bandwidth else estimate


# --- streaming metrics on a fine histogram ----------------------------------------------------


class _HistogramMetric(BinnedCalibrationMetric):
    """State: per-cell weight, confidence sum and outcome sum over ``resolution`` cells."""

    def __init__(
        self, resolution, from_logits, validate_args, name, dtype, state_shape=(), squared=False
    ):
        self.resolution = _validation.check_integer(resolution, "resolution", 1)
        super().__init__(
            self.resolution, from_logits, validate_args, name, dtype, state_shape, squared
        )

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
        self.num_bins = _validation.check_integer(num_bins, "num_bins", 1)
        self.norm, self.binning, self.debiased, self.mode = norm, binning, bool(debiased), mode
        state_shape = ()
        if mode == "classwise":
            num_classes = _validation.check_integer(
                num_classes, "num_classes", 2, " with mode='classwise'"
            )
            state_shape = (int(num_classes),)
        self.num_classes = None if num_classes is None else int(num_classes)
        # Squared weights only for the debiased estimators (their effective bin sizes).
        super().__init__(
            resolution, from_logits, validate_args, name, dtype, state_shape, self.debiased
        )

    def _bins(self, labels, probs, weights):
        if self.mode == "top_label":
            return F.top_label_bins(labels, probs, weights, self.resolution, self.squared)
        return F.classwise_bins(
            labels, probs, weights, self.resolution, self.num_classes, self.squared
        )

    def result(self):
        n, s, a, q = self._state()
        if self.binning == "equal_width":
            cells = ops.arange(self.resolution, dtype="int32")
            ids = ops.broadcast_to((cells * self.num_bins) // self.resolution, n.shape)
        else:
            ids = F.equal_mass_bins(n, self.num_bins)
        n, s, a, q = (
            None if v is None else F.rowwise_segment_sum(v, ids, self.num_bins)
            for v in (n, s, a, q)
        )
        return F.reduce_classes(
            F.binned_error(n, s, a, self.norm, self.debiased, q), self.norm, self.mode
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
        n, s, a, q = self._state()
        return F.ks_from_sorted(n, s - a)


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
        n, s, a, q = self._state()
        centres = (ops.cast(ops.arange(self.resolution), n.dtype) + 0.5) / self.resolution
        position = ops.where(ops.greater(n, 0.0), F.safe_divide(s, n), centres)
        value, _ = F.smooth_ece(position, s - a, n, self.bandwidth)
        return value

    def get_config(self):
        return {**super().get_config(), "bandwidth": self.bandwidth}
