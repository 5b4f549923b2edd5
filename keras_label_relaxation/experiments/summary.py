"""A comparison's summary: per loss the mean over seeds, intervals, marks and ranks.

The statistics come from ``metrics.statistics`` (their one home); this module
decides which the table shows:

- Intervals over the test examples of the trained models as they are:
  accuracy with Wilson's interval (``statistics.accuracy_interval``), which
  covers the mean over seeds of the models' true accuracies; ECE with
  ``statistics.ece_interval``, which covers the mean over seeds of the models'
  true 15-bin ECE (the estimate's limit with infinitely many test examples).
- Marks ``*`` ("differs from LR") with the training run as the unit: per seed
  the difference of a loss' score to LR's on the same split, a paired t-test
  over seeds with Nadeau & Bengio's (2003) correction for train/test splits
  resampled from one pool (``test_train_ratio``), and Holm's step-down
  procedure over every comparison the table shows (accuracy and ECE, each loss
  against LR), so that the table's family-wise false-positive rate is at most
  5%. With one seed no comparison across training runs is possible and
  nothing is marked.
- Ranks as the paper ranks; a diverged loss (NaN) ranks last and is marked.
"""

import math

import numpy as np

from keras_label_relaxation.experiments.evaluation import METRICS, NUM_BINS
from keras_label_relaxation.experiments.outputs import ComparisonResults
from keras_label_relaxation.experiments.ranks import average_ranks
from keras_label_relaxation.metrics import statistics

#: The loss the marks compare against.
REFERENCE = "LR"
#: The scores that carry intervals and marks.
COMPARED = ("accuracy", "ece")


def comparison_marks(per_seed, reference=REFERENCE, test_train_ratio=0.0, level=0.05):
    """Paired t-tests over seeds of every loss against ``reference``, Holm-adjusted together.

    Args:
        per_seed: ``{metric: {loss: {seed: value}}}``.
        reference: The loss every other is compared with.
        test_train_ratio: ``n_test / n_train`` of each seed's split
            (``statistics.paired_t_test``).
        level: Family-wise level over all comparisons.

    Returns:
        ``{metric: {loss: (p_value, differs)}}``; ``differs`` is ``None`` where
        no test ran (the reference itself, fewer than two common seeds, or a
        diverged run).

    Example:
    >>> per_seed = {"ece": {"LR": {0: .01, 1: .012, 2: .011}, "CE": {0: .05, 1: .06, 2: .055}}}
    >>> comparison_marks(per_seed)["ece"]["CE"][1]
    True
    """
    p_values, result = {}, {}
    for metric, losses in per_seed.items():
        result[metric] = {}
        base = losses.get(reference)
        for loss, values in losses.items():
            result[metric][loss] = (float("nan"), None)
            if base is None or loss == reference:
                continue
            seeds = sorted(set(values) & set(base))
            p = statistics.paired_t_test(
                [values[s] - base[s] for s in seeds], test_train_ratio=test_train_ratio
            )
            if math.isfinite(p):
                p_values[(metric, loss)] = p
    for (metric, loss), differs in statistics.holm(p_values, level).items():
        result[metric][loss] = (p_values[(metric, loss)], differs)
    return result


def _is_finite(value):
    return value is not None and math.isfinite(value)


def summarise(
    dataset,
    optimize_for,
    records,
    augment=False,
    outcomes=None,
    test_train_ratio=0.0,
    n_bootstrap=statistics.N_BOOTSTRAP,
):
    """The summary of per-(seed, loss) ``records``: one row per loss, as the table shows it.

    Args:
        dataset, optimize_for, augment: Described in the table's header.
        records: Dicts with ``seed``, ``loss``, ``param``, ``param_name`` and
            every score of ``experiments.METRICS``.
        outcomes: ``{loss: {seed: (confidence, correct)}}`` of the test
            examples, for the intervals (none without).
        test_train_ratio: ``n_test / n_train`` of each seed's split (the
            marks' variance correction).
        n_bootstrap: Bootstrap replicates of the ECE intervals.

    Returns:
        A ``ComparisonResults``. Each summary row holds the mean over seeds of
        every score, its standard deviation (``None`` with one seed),
        ``{metric}_ci``, ``{metric}_p`` and ``{metric}_differs`` for accuracy
        and ECE, ``rank_accuracy``, ``rank_ece`` and ``diverged``.
    """
    by_loss = {}
    for record in records:
        by_loss.setdefault(record["loss"], []).append(record)
    summary = []
    per_seed = {metric: {} for metric in COMPARED}
    for label, group in by_loss.items():
        row = {"loss": label, "seeds": len(group), "param_name": group[0]["param_name"]}
        row["params"] = [r["param"] for r in group if r["param"] is not None]
        for metric in METRICS:
            if any(r.get(metric) is None for r in group):  # a run from before it was kept
                row[metric] = row[f"{metric}_std"] = None
                continue
            values = np.array([r[metric] for r in group], dtype=np.float64)
            row[metric] = float(values.mean())
            # One seed has no spread: None, not a standard deviation of 0.
            row[f"{metric}_std"] = float(values.std()) if len(values) > 1 else None
        row["diverged"] = not all(_is_finite(row.get(m)) for m in COMPARED)
        for metric in COMPARED:
            per_seed[metric][label] = {r["seed"]: r[metric] for r in group}
        summary.append(row)
    marks = comparison_marks(per_seed, test_train_ratio=test_train_ratio)
    for row in summary:
        for metric in COMPARED:
            row[f"{metric}_p"], row[f"{metric}_differs"] = marks[metric][row["loss"]]
        if outcomes and row["loss"] in outcomes:
            per = [outcomes[row["loss"]][s] for s in sorted(outcomes[row["loss"]])]
            _, *accuracy_ci = statistics.accuracy_interval([y for _, y in per])
            _, *ece_ci = statistics.ece_interval(per, NUM_BINS, n_bootstrap=n_bootstrap)
            if row["diverged"]:
                accuracy_ci = ece_ci = [float("nan")] * 2
            row["accuracy_ci"], row["ece_ci"] = tuple(accuracy_ci), tuple(ece_ci)
    for metric, higher in (("accuracy", True), ("ece", False)):
        ranks = average_ranks(
            [{"dataset": dataset, "loss": r["loss"], metric: r[metric]} for r in summary],
            metric,
            higher_is_better=higher,
        )
        for row in summary:
            row[f"rank_{metric}"] = ranks[row["loss"]]
    return ComparisonResults(dataset, optimize_for, records, summary, augment)
