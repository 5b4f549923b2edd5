"""The paper's average-rank rule."""

import math

import numpy as np


def competition_ranks(values, higher_is_better):
    """Rank ``{name: value}``: 1 is best, ties share the best rank (1, 2, 2, 2, 5).

    A NaN (or ``None``) value, a diverged run, ranks last, after every number;
    several NaNs share that rank.

    Example:
    >>> competition_ranks({"a": 0.9, "b": 0.8, "c": 0.8, "d": 0.7}, higher_is_better=True)
    {'a': 1, 'b': 2, 'c': 2, 'd': 4}
    >>> competition_ranks({"CE": 0.03, "CP": float("nan"), "LR": 0.01}, higher_is_better=False)
    {'CE': 2, 'CP': 3, 'LR': 1}
    """
    sign = -1.0 if higher_is_better else 1.0
    keys = {
        name: sign * float(value) if value is not None and math.isfinite(value) else math.inf
        for name, value in values.items()
    }
    return {name: 1 + sum(other < key for other in keys.values()) for name, key in keys.items()}


def average_ranks(rows, metric, higher_is_better, group="dataset", item="loss"):
    """Rank the items within each group on ``metric``, then average each item's ranks.

    This is how the paper's "Avg. Rank" columns are made: the losses are ranked
    per data set (ties share the best rank) and the ranks averaged over the
    data sets.

    Args:
        rows: Dicts with keys ``group``, ``item`` and ``metric``.
        metric: The key of the value to rank.
        higher_is_better: ``True`` for accuracy, ``False`` for ECE.

    Returns:
        ``{item: average rank}``.

    Example:
    >>> rows = [
    ...     {"dataset": "a", "loss": "LR", "ece": 0.01},
    ...     {"dataset": "a", "loss": "CE", "ece": 0.02},
    ...     {"dataset": "b", "loss": "LR", "ece": 0.05},
    ...     {"dataset": "b", "loss": "CE", "ece": 0.03},
    ... ]
    >>> average_ranks(rows, "ece", higher_is_better=False)
    {'LR': 1.5, 'CE': 1.5}
    """
    ranks = {}
    for name in dict.fromkeys(row[group] for row in rows):
        block = {row[item]: row[metric] for row in rows if row[group] == name}
        for key, rank in competition_ranks(block, higher_is_better).items():
            ranks.setdefault(key, []).append(rank)
    return {key: float(np.mean(values)) for key, values in ranks.items()}
