"""Reliability diagrams (DeGroot & Fienberg, 1983; Guo et al., 2017)."""

import numpy as np
from keras import ops

from keras_label_relaxation import _validation
from keras_label_relaxation.metrics import functional


def _bins_from_arrays(y_true, probs, num_bins, sample_weight):
    labels, probs, weights = functional.prepare(
        y_true,
        np.asarray(probs, dtype=np.float64),
        sample_weight,
        from_logits=False,
        validate_args=True,
    )
    return [
        ops.convert_to_numpy(v)
        for v in functional.top_label_bins(labels, probs, weights, num_bins)[:3]
    ]


def reliability_diagram(
    y_true=None,
    probs=None,
    *,
    metric=None,
    num_bins=15,
    sample_weight=None,
    title=None,
    path=None,
):
    """Plot per-bin accuracy against confidence, with the confidence histogram below.

    The upper panel shows each bin's accuracy as a bar, the gap to the bin's
    mean confidence shaded, and the diagonal of perfect calibration; the lower
    panel the share of samples per bin. The title carries the ECE.

    Args:
        y_true: Integer labels ``(N,)`` or one-hot rows ``(N, K)`` (with ``probs``).
        probs: Predicted probabilities ``(N, K)``.
        metric: Instead of arrays, an ``ExpectedCalibrationError`` (or another
            metric of this package with top-label bins): its state is plotted.
        num_bins: Number of bins for arrays (a metric brings its own).
        sample_weight: Optional weights ``(N,)`` for arrays.
        title: Title prefix (default: "Reliability diagram").
        path: If given, the figure is also written there as PNG.

    Returns:
        A ``matplotlib.figure.Figure``.

    Example:
    >>> import numpy as np
    >>> fig = reliability_diagram([0, 1, 1], np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    if metric is not None:
        if y_true is not None or probs is not None:
            raise ValueError("Pass either `y_true` and `probs`, or `metric`, not both.")
        state = getattr(metric, "bin_weight", None)
        if state is None or len(state.shape) != 1:
            raise ValueError(
                "`metric` must be an ExpectedCalibrationError or MaximumCalibrationError. "
                f"Received: {type(metric).__name__}"
            )
        weight, confidence, correct = (
            ops.convert_to_numpy(v).astype(np.float64)
            for v in (metric.bin_weight, metric.bin_confidence, metric.bin_correct)
        )
        num_bins = metric.num_bins
    else:
        if y_true is None or probs is None:
            raise ValueError("Pass `y_true` and `probs` (arrays), or `metric`.")
        num_bins = _validation.check_integer(num_bins, "num_bins", 1)
        weight, confidence, correct = _bins_from_arrays(y_true, probs, num_bins, sample_weight)
    if not (np.isfinite(weight).all() and np.isfinite(confidence).all()):
        raise ValueError(
            "Invalid value for argument `metric`: its state is NaN, so it has seen "
            "predictions that are not probabilities (logits without `from_logits=True`?) "
            "or invalid labels since its last `reset_state`."
        )
    total = weight.sum()
    if total <= 0:
        raise ValueError("Nothing to plot: the metric has seen no samples.")
    ece = float(functional.binned_error(weight, confidence, correct, "l1"))
    filled = weight > 0
    safe = np.where(filled, weight, 1.0)
    accuracy = np.where(filled, correct / safe, 0.0)
    mean_conf = np.where(filled, confidence / safe, 0.0)

    edges = np.linspace(0.0, 1.0, num_bins + 1)
    width = 1.0 / num_bins
    fig = Figure(figsize=(5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(edges[:-1], accuracy, width=width, align="edge", color="tab:blue",
            edgecolor="black", label="accuracy")  # fmt: skip
    gap_low = np.minimum(accuracy, mean_conf)
    top.bar(
        edges[:-1][filled],
        np.abs(mean_conf - accuracy)[filled],
        bottom=gap_low[filled],
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.35,
        hatch="//",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left")
    top.set_title(f"{title or 'Reliability diagram'} (ECE = {100 * ece:.2f}%)")
    bottom.bar(edges[:-1], weight / total, width=width, align="edge", color="tab:gray",
               edgecolor="black")  # fmt: skip
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
