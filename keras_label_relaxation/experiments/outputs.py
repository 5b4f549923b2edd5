"""A comparison's results: the summary table and the files written next to the state."""

import dataclasses
import json
import os

import numpy as np

from keras_label_relaxation.experiments.evaluation import NUM_BINS
from keras_label_relaxation.metrics import ExpectedCalibrationError
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


@dataclasses.dataclass
class ComparisonResults:
    """Per-(seed, loss) records and their summary per loss.

    ``records``: one dict per finished unit (``seed``, ``loss``, ``param``,
    ``accuracy``, ``ece``, ``nll``, ``brier``, ``search_scores`` (``None``
    for a diverged trial, also listed in ``diverged``), ``bins``).
    ``summary``: one dict per loss with the mean over seeds, the standard
    deviation (``None`` with one seed) and the ranks. ``augment``: whether the
    models trained with the paper's augmentation.
    """

    dataset: str
    optimize_for: str
    records: list
    summary: list
    augment: bool = False

    def to_markdown(self):
        """The table shaped like the paper's Table 1 (one data set)."""
        setting = f"{self.dataset}, optimised for {self.optimize_for}"
        if self.augment:
            setting += ", augmented"
        lines = [
            f"| Loss ({setting}) | Acc. | ECE | NLL | Brier | Rank Acc. | Rank ECE |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in self.summary:
            lines.append(
                f"| {row['loss']}{_param_note(row)} | "
                f"{format_mean_std(row['accuracy'], row['accuracy_std'])} | "
                f"{format_mean_std(row['ece'], row['ece_std'])} | {row['nll']:.3f} | "
                f"{row['brier']:.3f} | {row['rank_accuracy']:g} | {row['rank_ece']:g} |"
            )
        return "\n".join(lines)


def _param_note(row):
    values = row.get("params") or []
    if row.get("param_name") is None or not values:
        return ""
    shown = ", ".join(f"{v:g}" for v in values)
    return f" ({row['param_name']} = {shown})"


def write_outputs(out_dir, results):
    """``results.json``, ``results.csv``, ``table.md`` and ``reliability_<loss>.png``."""
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(
            {"dataset": results.dataset, "optimize_for": results.optimize_for,
             "augment": results.augment, "summary": results.summary,
             "records": results.records},
            f, indent=2, allow_nan=True,
        )  # fmt: skip
    columns = ["seed", "loss", "param_name", "param", "accuracy", "ece", "nll", "brier", "seconds"]
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
