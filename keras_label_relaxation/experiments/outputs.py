"""A comparison's results: the summary table and the files written next to the state."""

import dataclasses
import json
import os
import warnings

import numpy as np
from keras import ops

from keras_label_relaxation.experiments.evaluation import METRICS, NUM_BINS, TABLE_METRICS
from keras_label_relaxation.metrics import ExpectedCalibrationError, functional, statistics
from keras_label_relaxation.metrics.reliability import reliability_diagram


def format_mean_std(mean, std=None):
    """``mean ± std`` to three decimals; the mean alone without a spread; a dash without a mean.

    One seed has no spread, so its ``std`` is ``None`` (never a printed ``± 0.000``).

    Example:
    >>> format_mean_std(0.91234, 0.0041), format_mean_std(0.91234), format_mean_std(None)
    ('0.912 ± 0.004', '0.912', '—')
    """
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def format_score(row, metric):
    """A summary cell: mean (± std over seeds), the interval and a mark if it differs from LR;
    ``diverged`` for a loss whose scores are NaN.

    Example:
    >>> row = {"ece": 0.0512, "ece_std": None, "ece_ci": (0.041, 0.062), "ece_differs": True}
    >>> format_score(row, "ece")
    '0.051 [0.041, 0.062] *'
    >>> format_score({"ece": float("nan"), "diverged": True}, "ece")
    'diverged'
    """
    value = row.get(metric)
    if row.get("diverged") and (value is None or not np.isfinite(value)):
        return "diverged"
    text = format_mean_std(value, row.get(f"{metric}_std"))
    interval = row.get(f"{metric}_ci")
    if interval is not None and np.isfinite(interval).all():
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    if row.get(f"{metric}_differs"):
        text += " *"
    return text


def interval_note(summary):
    """The table's footnote: what the brackets cover and what a ``*`` means, one sentence each.

    Example:
    >>> note = interval_note([{"loss": "LR", "seeds": 1, "ece_ci": (0.0, 0.02)}])
    >>> [line[:28] for line in note.splitlines()]
    ['Brackets: 95% intervals over', 'With 1 seed no comparison ac']
    """
    lines = []
    if any(row.get("ece_ci") is not None for row in summary):
        lines.append(
            "Brackets: 95% intervals over the test examples of these trained models: accuracy "
            "(Wilson) covers their true accuracy, ECE covers their true 15-bin ECE (its value "
            "on infinitely many test examples; the estimate itself is biased upward)."
        )
    seeds = max((row.get("seeds", 1) for row in summary), default=1)
    tests = sum(
        1
        for row in summary
        for metric in ("accuracy", "ece")
        if row.get(f"{metric}_p") is not None and np.isfinite(row[f"{metric}_p"])
    )
    if seeds < 2:
        lines.append(
            f"With {seeds} seed no comparison across training runs is possible, so no loss is "
            "marked; run several seeds (`--seeds 5`) for a verdict."
        )
    elif tests:
        lines.append(
            f"*: differs from LR (paired t-test over the {seeds} seeds, the training runs, with "
            f"Nadeau-Bengio's correction; Holm-adjusted over the {tests} comparisons of this "
            "table, family-wise false-positive rate at most 5%)."
        )
    if any(row.get("diverged") for row in summary):
        lines.append("diverged: the loss' scores are NaN (a diverged run); it ranks last.")
    return "\n".join(lines)


@dataclasses.dataclass
class ComparisonResults:
    """Per-(seed, loss) records and their summary per loss.

    ``records``: one dict per finished unit (``seed``, ``loss``, ``param``,
    ``accuracy``, ``ece``, ``nll``, ``brier``, ``search_scores`` (``None``
    for a diverged trial, also listed in ``diverged``), ``bins``).
    ``summary``: one dict per loss with the mean over seeds, the standard
    deviation (``None`` with one seed) and the ranks. ``augment``: whether the
    models trained with the paper's augmentation. ``label_noise``: the noise
    on the training labels (``"symmetric:0.4"``), ``None`` for clean labels.
    """

    dataset: str
    optimize_for: str
    records: list
    summary: list
    augment: bool = False
    metrics: tuple = TABLE_METRICS
    label_noise: str | None = None

    def to_markdown(self):
        """The table shaped like the paper's Table 1 (one data set)."""
        setting = f"{self.dataset}, optimised for {self.optimize_for}"
        if self.augment:
            setting += ", augmented"
        if self.label_noise:
            setting += f", label noise {self.label_noise} on train/validation, clean test"
        headings = [METRICS[m][0] for m in self.metrics] + ["Rank Acc.", "Rank ECE"]
        lines = [
            f"| Loss ({setting}) | " + " | ".join(headings) + " |",
            "| --- |" + " --- |" * len(headings),
        ]
        for row in self.summary:
            cells = [format_score(row, m) for m in self.metrics]
            cells += [f"{row['rank_accuracy']:g}", f"{row['rank_ece']:g}"]
            lines.append(f"| {row['loss']}{_param_note(row)} | " + " | ".join(cells) + " |")
        note = interval_note(self.summary)
        return "\n".join(lines + (["", note] if note else []))


def _param_note(row):
    values = row.get("params") or []
    if row.get("param_name") is None or not values:
        return ""
    shown = ", ".join(f"{v:g}" for v in values)
    return f" ({row['param_name']} = {shown})"


def write_outputs(out_dir, results, outcomes=None):
    """``results.json``, ``results.csv``, ``table.md``, ``reliability_<loss>.png`` and, with
    ``outcomes`` (``{loss: {seed: (confidence, correct)}}``), ``reliability.png``."""
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(
            {"dataset": results.dataset, "optimize_for": results.optimize_for,
             "augment": results.augment, "label_noise": results.label_noise,
             "summary": results.summary,
             "records": results.records},
            f, indent=2, allow_nan=True,
        )  # fmt: skip
    columns = ["seed", "loss", "param_name", "param", *METRICS, "seconds"]
    with open(os.path.join(out_dir, "results.csv"), "w") as f:
        f.write(",".join(columns) + "\n")
        for record in results.records:
            f.write(
                ",".join("" if record.get(c) is None else str(record[c]) for c in columns) + "\n"
            )
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(results.to_markdown() + "\n")
    for row in results.summary:
        metric = ExpectedCalibrationError(num_bins=NUM_BINS)
        for name in ("bin_weight", "bin_confidence", "bin_correct"):
            total = np.sum(
                [r["bins"][name] for r in results.records if r["loss"] == row["loss"]], 0
            )
            getattr(metric, name).assign(total.astype("float32"))
        if not np.isfinite(float(metric.result())):
            continue  # a diverged model: no diagram (reliability_diagram refuses NaN)
        figure = reliability_diagram(metric=metric, title=f"{row['loss']} on {results.dataset}")
        safe = row["loss"].replace("+", "_")
        figure.savefig(os.path.join(out_dir, f"reliability_{safe}.png"), format="png", dpi=100)
    if outcomes:
        figure = reliability_figure(results, outcomes)
        figure.savefig(os.path.join(out_dir, "reliability.png"), format="png", dpi=100)


#: Points of the smoothed reliability curves and replicates of their bands.
CURVE_POINTS = 101
CURVE_BOOTSTRAP = 200
#: The curve is drawn where at least this many examples lie within about one bandwidth.
CURVE_MIN_SUPPORT = 5.0


def smoothed_reliability(confidence, correct, bandwidth, n_bootstrap=CURVE_BOOTSTRAP, seed=0):
    """Kernel-smoothed accuracy against confidence with a pointwise bootstrap band.

    ``acc(t) = sum_i K(t, c_i) y_i / sum_i K(t, c_i)`` with the smooth ECE's
    reflected Gaussian kernel of standard deviation ``bandwidth`` (Błasiok &
    Nakkiran, 2024), on ``CURVE_POINTS`` points of ``[0, 1]``; the band is the
    95% percentile interval of the curve over resampled examples. Where fewer
    than ``CURVE_MIN_SUPPORT`` examples lie near ``t`` (the kernel weights
    ``sum_i K(t, c_i)``, each at most 1) the curve would only extrapolate:
    curve and band are NaN there.

    Returns:
        ``(points, curve, low, high, density)``, each ``(CURVE_POINTS,)``;
        ``density`` is the kernel density of the confidences.

    Example:
    >>> conf = np.linspace(0.5, 1.0, 200)
    >>> points, curve, low, high, density = smoothed_reliability(conf, conf > 0.7, 0.05)
    >>> bool(curve[-1] > 0.9 and curve[55] < 0.1 and np.isnan(curve[10]))
    True
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    points = np.linspace(0.0, 1.0, CURVE_POINTS)
    kernel = ops.convert_to_numpy(
        functional.reflected_kernel(
            ops.convert_to_tensor(points), ops.convert_to_tensor(confidence), bandwidth
        )
    ).astype(np.float64)
    curve = _ratio(kernel @ correct, kernel @ np.ones_like(correct))
    replicates = statistics.bootstrap_replicates(
        lambda counts: _ratio((counts[0] * correct) @ kernel.T, counts[0] @ kernel.T),
        [len(confidence)],
        n_bootstrap=n_bootstrap,
        seed=seed,
        chunk=50,
    )
    tail = 50.0 * (1.0 - statistics.CONFIDENCE_LEVEL)
    with warnings.catch_warnings():  # a point no replicate reaches: NaN, masked below
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(replicates, [tail, 100.0 - tail], axis=0)
    unsupported = kernel.sum(-1) < CURVE_MIN_SUPPORT
    curve, low, high = (np.where(unsupported, np.nan, v) for v in (curve, low, high))
    density = kernel.sum(-1) / (len(confidence) * bandwidth * np.sqrt(2.0 * np.pi))
    return points, curve, low, high, density


def _ratio(numerator, denominator):
    """``numerator / denominator``, NaN where the kernel weight underflowed to 0."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)


def reliability_figure(results, outcomes):
    """All losses side by side: binned accuracy bars, the smoothed curve and its band (top),
    the confidence density (bottom); pooled over seeds."""
    from matplotlib.figure import Figure

    rows = [row for row in results.summary if row.get("ece") is not None]
    figure = Figure(figsize=(3.2 * len(rows), 4.6))
    axes = figure.subplots(
        2, len(rows), squeeze=False, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    edges = np.linspace(0.0, 1.0, NUM_BINS + 1)
    for column, row in enumerate(rows):
        top, bottom = axes[0, column], axes[1, column]
        per_seed = outcomes[row["loss"]].values()
        confidence = np.concatenate([c for c, _ in per_seed])
        correct = np.concatenate([y for _, y in per_seed])
        top.plot([0, 1], [0, 1], "k--", linewidth=1)
        top.set_title(f"{row['loss']}: ECE {row['ece']:.3f}, smECE {row['smece'] or 0:.3f}")
        top.set_ylim(0, 1)
        bottom.set_xlim(0, 1)
        bottom.set_xlabel("confidence")
        if not np.isfinite(confidence).all():
            top.text(0.5, 0.5, "diverged", ha="center")
            continue
        count, _, hits = statistics.host_bin_sums(
            confidence, correct.astype(np.float64), np.ones_like(confidence), NUM_BINS
        )
        accuracy = np.divide(hits, count, out=np.zeros(NUM_BINS), where=count > 0)
        top.bar(edges[:-1], accuracy, width=1.0 / NUM_BINS, align="edge", color="tab:blue",
                alpha=0.35, edgecolor="black", label="binned accuracy")  # fmt: skip
        # The smooth ECE's bandwidth, averaged over seeds.
        widths = [
            r["smece_bandwidth"]
            for r in results.records
            if r["loss"] == row["loss"] and r.get("smece_bandwidth")
        ]
        bandwidth = float(np.mean(widths)) if widths else 0.05
        points, curve, low, high, density = smoothed_reliability(confidence, correct, bandwidth)
        top.fill_between(points, low, high, color="tab:red", alpha=0.25, label="95% band")
        top.plot(points, curve, color="tab:red", label="smoothed accuracy")
        top.text(0.97, 0.03, f"σ = {bandwidth:.3f}", ha="right", transform=top.transAxes)
        bottom.fill_between(points, 0, density, color="tab:gray")
        if column == 0:
            top.set_ylabel("accuracy")
            bottom.set_ylabel("density")
            top.legend(loc="upper left", fontsize="small")
    figure.suptitle(f"Reliability on {results.dataset}, pooled over seeds")
    figure.tight_layout()
    return figure
