"""Resampling, intervals and tests: the package's one home of inferential statistics.

Everything that turns scores into a claim about the population lives here, and
the exact functions (``calibration_error(..., n_bootstrap=...)``), the runner's
tables (``klr compare``) and the reliability figures all call it:

- ``bootstrap_replicates``: a statistic on resampled examples, stratified by
  group (one group per training run: examples are resampled within a seed,
  never across seeds).
- ``normal_interval``: ``estimate +- z sd*`` with the bootstrap standard
  deviation ``sd*``, clipped to the statistic's range. It covers the
  *estimator's expectation at this N* (the mean of the estimate over test sets
  of the same size from the same distribution): a binned calibration error is
  biased upward, so this is not an interval for the true calibration error.
- ``wilson_interval`` / ``accuracy_interval``: Wilson's score interval of a
  proportion (Wilson, 1927; Brown, Cai & DasGupta, 2001), which stays in
  [0, 1] and covers the true accuracy close to its level even near 0 and 1.
- ``ece_interval``: an interval that covers the *true* 15-bin ECE of the
  models (the value the estimator tends to with infinitely many test
  examples, ``sum_b P(b) |acc_b - conf_b|``), including 0 for a calibrated
  model, from two one-sided bounds at level ``(1 + L) / 2`` each: the upper end
  is the bootstrap percentile of the replicates (which inherit the estimator's
  upward bias, so they err high), the lower end adds per bin the distance from
  the bin's mean confidence to a Clopper-Pearson interval of its accuracy,
  Bonferroni-corrected over the non-empty bins (so it errs low). Both ends are
  conservative; the benchmark measures how much (BENCHMARKS.md).
- ``paired_t_test`` and ``holm``: comparisons with the training run (seed) as
  the unit of replication. Two losses trained on the same seed's split are a
  pair; the test asks whether the mean per-seed difference is 0, with the
  variance correction of Nadeau & Bengio (2003) for resampled train/test
  splits (``test_train_ratio``), and Holm's (1979) step-down procedure keeps
  the family-wise false-positive rate of all comparisons in a table at the
  level. The example-level bootstrap is no test between losses: it ignores
  the spread between training runs (it marked some loss in 82-99% of the
  simulated tables where all losses were alike, BENCHMARKS.md).

Every interval lies in its statistic's range and contains its estimate.
"""

import math

import numpy as np
from keras import ops
from scipy import special
from scipy import stats as scipy_stats

from keras_label_relaxation.metrics import functional

#: Coverage of intervals and complement of the family-wise level of tests.
CONFIDENCE_LEVEL = 0.95
#: Bootstrap replicates unless asked otherwise.
N_BOOTSTRAP = 1000
#: Replicates drawn (and evaluated) at a time.
CHUNK = 100


def check_level(confidence_level, name="confidence_level"):
    """``confidence_level`` as a float in (0, 1); else a ValueError naming it."""
    valid = not isinstance(confidence_level, bool) and isinstance(
        confidence_level, (int, float, np.floating, np.integer)
    )
    if not valid or not 0.0 < float(confidence_level) < 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number in (0, 1). "
            f"Received: {name}={confidence_level!r}"
        )
    return float(confidence_level)


def check_n_bootstrap(n_bootstrap):
    """``n_bootstrap`` as an int >= 2; else a ValueError naming it."""
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
    return int(n_bootstrap)


def _z(confidence_level):
    """The standard normal quantile at ``(1 + L) / 2``."""
    return float(special.ndtri(0.5 + 0.5 * confidence_level))


def bootstrap_replicates(statistic, sizes, n_bootstrap=N_BOOTSTRAP, seed=0, chunk=CHUNK):
    """A statistic on ``n_bootstrap`` resamples of the examples of every group.

    Each replicate draws, independently for every group ``g``, ``sizes[g]``
    examples of that group with replacement (NumPy's ``default_rng(seed)``,
    multinomial draw counts): a stratified bootstrap whose groups are
    typically the seeds (training runs) of a comparison.

    Args:
        statistic: Called with a list of draw-count arrays, one ``(r, sizes[g])``
            float64 array per group (``r <= chunk`` replicates at a time);
            returns the ``r`` replicate values (``(r, ...)``).
        sizes: The number of examples of each group.
        n_bootstrap: Number of replicates (>= 2).
        seed: Seed of the draws.
        chunk: Replicates drawn at a time.

    Returns:
        The replicates, ``(n_bootstrap, ...)``.

    Example:
    >>> x = np.arange(10.0)
    >>> means = bootstrap_replicates(lambda c: c[0] @ x / 10, [10], n_bootstrap=500)
    >>> means.shape, bool(abs(means.mean() - 4.5) < 0.2)
    ((500,), True)
    """
    n_bootstrap = check_n_bootstrap(n_bootstrap)
    rng = np.random.default_rng(seed)
    replicates = []
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        counts = [
            rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64) for n in sizes
        ]
        replicates.append(np.asarray(statistic(counts), dtype=np.float64))
    return np.concatenate(replicates)


def _contain(estimate, low, high, bounds):
    """``(low, high)`` widened to contain ``estimate`` and clipped to ``bounds``; NaN if any
    input is NaN (a diverged model has no interval)."""
    if not all(math.isfinite(v) for v in (estimate, low, high)):
        return float("nan"), float("nan")
    low, high = min(low, estimate), max(high, estimate)
    return float(max(low, bounds[0])), float(min(high, bounds[1]))


def normal_interval(estimate, replicates, confidence_level=CONFIDENCE_LEVEL, bounds=(0.0, 1.0)):
    """``estimate +- z sd(replicates)`` clipped to ``bounds``: covers the estimator's
    expectation at this sample size.

    Example:
    >>> normal_interval(0.01, np.array([0.0, 0.02, 0.04]))
    (0.0, 0.0492)
    """
    confidence_level = check_level(confidence_level)
    replicates = np.asarray(replicates, dtype=np.float64)
    if not np.isfinite(replicates).all():
        return float("nan"), float("nan")
    half = _z(confidence_level) * float(np.std(replicates, ddof=1))
    return _contain(float(estimate), estimate - half, estimate + half, bounds)


def wilson_interval(proportion, n, confidence_level=CONFIDENCE_LEVEL):
    """Wilson's score interval of a proportion observed on ``n`` (effective) trials.

        (p + z^2 / 2n +- z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)

    Example:
    >>> tuple(round(v, 4) for v in wilson_interval(0.9, 100))
    (0.8256, 0.9448)
    """
    confidence_level = check_level(confidence_level)
    if not (math.isfinite(proportion) and n > 0):
        return float("nan"), float("nan")
    z2 = _z(confidence_level) ** 2
    centre = (proportion + z2 / (2 * n)) / (1 + z2 / n)
    half = (
        math.sqrt(z2)
        / (1 + z2 / n)
        * math.sqrt(proportion * (1 - proportion) / n + z2 / (4 * n * n))
    )
    return _contain(proportion, centre - half, centre + half, (0.0, 1.0))


def accuracy_interval(correct, confidence_level=CONFIDENCE_LEVEL):
    """The mean over seeds of the accuracy and its Wilson interval.

    ``correct`` holds one boolean array per seed. The mean of per-seed
    accuracies ``p_s`` on ``N_s`` examples has variance ``sum_s p_s (1 - p_s) /
    (S^2 N_s) <= p (1 - p) / n`` with ``n = S^2 / sum_s 1 / N_s`` (``S N`` for
    equal sizes), so the Wilson interval on ``n`` trials covers the mean of
    the models' true accuracies.

    Returns:
        ``(accuracy, low, high)``.

    Example:
    >>> accuracy_interval([np.ones(90, bool).tolist() + [False] * 10])[0]
    0.9
    """
    sizes = np.array([len(c) for c in correct], dtype=np.float64)
    accuracy = float(np.mean([np.mean(np.asarray(c, dtype=np.float64)) for c in correct]))
    n = len(sizes) ** 2 / float(np.sum(1.0 / sizes))
    return (accuracy, *wilson_interval(accuracy, n, confidence_level))


def host_bin_sums(confidence, correct, weights, num_bins):
    """``functional.bin_sums`` (without squared weights) of NumPy arrays, as NumPy arrays.

    ``weights`` is ``(N,)`` or ``(r, N)`` (e.g. bootstrap draw counts); returns ``(n, s, a)``.
    """
    sums = functional.bin_sums(
        ops.convert_to_tensor(confidence),
        ops.convert_to_tensor(correct),
        ops.convert_to_tensor(weights),
        num_bins,
        squared=False,
    )
    return [ops.convert_to_numpy(v) for v in sums]


def _ece_replicates(confidence, correct, counts, num_bins):
    """The ECE of ``(r, N)`` draw-count weights, ``(r,)``."""
    n, s, a = host_bin_sums(confidence, correct, counts, num_bins)
    return ops.convert_to_numpy(functional.binned_error(n, s, a, "l1"))


def _ece_lower_bound(per_seed, tail):
    """Mean over seeds of ``sum_b (n_b / N) dist(conf_b, CP_b)``, ``CP_b`` a Clopper-Pearson
    interval of bin ``b``'s accuracy at level ``1 - 2 tail / (non-empty bins)``; ``per_seed``
    holds each seed's unweighted ``(n, s, a)`` bin sums."""
    alpha = tail / sum(int((n > 0).sum()) for n, _, _ in per_seed)
    bounds = []
    for count, confidence_sum, hits in per_seed:
        keep = count > 0
        n, k = count[keep], hits[keep]
        mean_confidence = confidence_sum[keep] / n
        low = np.where(k > 0, scipy_stats.beta.ppf(alpha, k, n - k + 1), 0.0)
        high = np.where(k < n, scipy_stats.beta.ppf(1.0 - alpha, k + 1, n - k), 1.0)
        distance = np.maximum(0.0, np.maximum(low - mean_confidence, mean_confidence - high))
        bounds.append(float((n * distance).sum() / count.sum()))
    return float(np.mean(bounds))


def ece_interval(
    outcomes,
    num_bins=15,
    confidence_level=CONFIDENCE_LEVEL,
    n_bootstrap=N_BOOTSTRAP,
    seed=0,
):
    """The mean over seeds of the top-label ECE, with an interval for its true value.

    The interval covers ``(1 / S) sum_s ECE_s`` where ``ECE_s = sum_b P_s(b)
    |acc_sb - conf_sb|`` is the ``num_bins``-bin ECE of seed ``s``' model at
    infinitely many test examples (0 for a calibrated model); see the module
    docstring for the construction. Examples are resampled within seeds.

    Args:
        outcomes: One ``(confidence (N_s,), correct (N_s,))`` pair per seed.
        num_bins: Equal-width bins.
        confidence_level: Coverage.
        n_bootstrap: Bootstrap replicates of the upper end.
        seed: Seed of the resampling.

    Returns:
        ``(ece, low, high)``; NaN for all three if a confidence is not finite.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> c = rng.uniform(0.5, 1.0, 2000)
    >>> ece, low, high = ece_interval([(c, rng.uniform(size=2000) < c)], n_bootstrap=200)
    >>> low == 0.0 and ece < high < 0.06
    True
    """
    confidence_level = check_level(confidence_level)
    outcomes = [
        (np.asarray(c, dtype=np.float64), np.asarray(y, dtype=np.float64)) for c, y in outcomes
    ]
    if not outcomes or not all(np.isfinite(c).all() for c, _ in outcomes):
        return float("nan"), float("nan"), float("nan")
    per_seed = [host_bin_sums(c, y, np.ones(len(c)), num_bins) for c, y in outcomes]
    estimate = float(
        np.mean([ops.convert_to_numpy(functional.binned_error(*sums, "l1")) for sums in per_seed])
    )
    tail = 0.5 * (1.0 - confidence_level)

    def statistic(counts):
        return np.mean(
            [_ece_replicates(c, y, w, num_bins) for (c, y), w in zip(outcomes, counts)], axis=0
        )

    replicates = bootstrap_replicates(
        statistic, [len(c) for c, _ in outcomes], n_bootstrap=n_bootstrap, seed=seed
    )
    high = float(np.quantile(replicates, 1.0 - tail))
    low = _ece_lower_bound(per_seed, tail)
    return (estimate, *_contain(estimate, low, high, (0.0, 1.0)))


def paired_t_test(differences, test_train_ratio=0.0):
    """Two-sided p-value of "the mean per-seed difference is 0" over paired training runs.

        t = mean(d) / sqrt((1 / J + r) var(d)),   J - 1 degrees of freedom

    with ``d`` the per-seed differences of two losses trained on the same
    seed's split and ``r = n_test / n_train`` the correction of Nadeau & Bengio
    (2003) for splits resampled from one pool (``r = 0``: the plain paired t
    test). Needs two seeds or more.

    Returns:
        The p-value; NaN with fewer than two seeds or a non-finite difference
        (a diverged run: no test).

    Example:
    >>> round(paired_t_test([0.010, 0.012, 0.009, 0.011, 0.013]), 4)
    0.0001
    """
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2 or not np.isfinite(d).all():
        return float("nan")
    mean, variance = float(d.mean()), float(d.var(ddof=1))
    if variance == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / math.sqrt((1.0 / len(d) + test_train_ratio) * variance)
    return float(2.0 * scipy_stats.t.sf(abs(t), len(d) - 1))


def holm(p_values, level=1.0 - CONFIDENCE_LEVEL):
    """Holm's step-down rejections at family-wise level ``level``.

    ``p_values`` is ``{name: p}``; NaN p-values (no test) are never rejected
    and do not count in the family.

    Example:
    >>> holm({"a": 0.001, "b": 0.02, "c": 0.04})
    {'a': True, 'b': True, 'c': True}
    >>> holm({"a": 0.001, "b": 0.03, "c": 0.04})
    {'a': True, 'b': False, 'c': False}
    """
    tested = sorted((p, name) for name, p in p_values.items() if math.isfinite(p))
    rejected = dict.fromkeys(p_values, False)
    for index, (p, name) in enumerate(tested):
        if p > level / (len(tested) - index):
            break
        rejected[name] = True
    return rejected
