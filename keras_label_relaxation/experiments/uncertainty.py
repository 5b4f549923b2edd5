"""Bootstrap intervals of a comparison's accuracy and ECE, and paired tests against LR.

The test examples of one seed are the same for every loss (each seed resamples
the data once), so one draw of example counts per seed and replicate serves
all losses: the interval of a loss resamples its examples, the difference of
two losses is paired on the same resampled examples. A replicate's value of a
loss is the mean over seeds of its per-seed accuracy and 15-bin ECE on the
resampled examples (equal-width bins are fixed by the confidences, so the
resampled ECE is exact: per-bin sums weighted by the counts).

Intervals are basic (pivotal) bootstrap intervals ``[2 t - q_high, 2 t - q_low]``
around the estimate ``t`` (the quantiles ``q`` of the replicates), as
Kumar et al. (2019) report calibration errors: resampling adds noise that
raises a binned ECE, and the percentile interval would inherit that shift (it
can exclude the estimate). The lower end of an ECE interval can be negative.
"""

import numpy as np

from keras_label_relaxation.experiments.evaluation import NUM_BINS

#: Bootstrap replicates of the runner's intervals.
N_BOOTSTRAP = 1000
#: Coverage of the intervals and level of the paired tests.
CONFIDENCE_LEVEL = 0.95
#: The loss the paired tests compare against.
REFERENCE = "LR"
_CHUNK = 100


def _per_seed_replicates(confidence, correct, counts, num_bins):
    """Accuracy and ECE ``(replicates,)`` of one loss on one seed's resampled examples."""
    n = len(correct)
    if not np.isfinite(confidence).all():  # a diverged model: no interval, no test
        return np.full(len(counts), np.nan), np.full(len(counts), np.nan)
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    members = np.zeros((n, num_bins))
    members[np.arange(n), bins] = 1.0
    gap = members * (correct.astype(float) - confidence)[:, None]
    accuracy = counts @ correct.astype(float) / n
    ece = np.abs(counts @ gap).sum(-1) / n
    return accuracy, ece


def bootstrap_intervals(
    outcomes,
    n_bootstrap=N_BOOTSTRAP,
    confidence_level=CONFIDENCE_LEVEL,
    reference=REFERENCE,
    seed=0,
    num_bins=NUM_BINS,
):
    """Bootstrap intervals of accuracy and ECE per loss, and paired tests against ``reference``.

    Args:
        outcomes: ``{loss: {seed: (confidence (N_s,), correct (N_s,))}}``; every
            loss has the same seeds and, per seed, the same examples.
        n_bootstrap: Number of replicates.
        confidence_level: Coverage of the intervals and level of the tests.
        reference: The loss the others are tested against (no tests without it).
        seed: Seed of the draws (NumPy ``default_rng``).
        num_bins: ECE bins.

    Returns:
        ``{loss: {"accuracy_ci": (low, high), "ece_ci": (low, high),
        "accuracy_differs": bool or None, "ece_differs": bool or None}}``;
        ``*_differs`` is whether the interval of the paired difference to
        ``reference`` excludes 0 (``None`` for the reference itself or without it).

    Example:
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 500)
    >>> calibrated = {0: (conf, rng.uniform(size=500) < conf)}
    >>> overconfident = {0: (conf, rng.uniform(size=500) < conf - 0.3)}
    >>> result = bootstrap_intervals({"LR": calibrated, "CE": overconfident}, n_bootstrap=200)
    >>> result["CE"]["ece_differs"], result["LR"]["ece_differs"]
    (True, None)
    """
    losses = list(outcomes)
    seeds = sorted(outcomes[losses[0]])
    for loss in losses:
        if sorted(outcomes[loss]) != seeds or any(
            len(outcomes[loss][s][1]) != len(outcomes[losses[0]][s][1]) for s in seeds
        ):
            raise ValueError(
                f"Invalid value for argument `outcomes`: loss {loss!r} was not tested on the "
                f"same seeds and examples as {losses[0]!r}."
            )
    estimates = {loss: {"accuracy": 0.0, "ece": 0.0} for loss in losses}
    for s in seeds:
        n = len(outcomes[losses[0]][s][1])
        for loss in losses:
            accuracy, ece = _per_seed_replicates(*outcomes[loss][s], np.ones((1, n)), num_bins)
            estimates[loss]["accuracy"] += accuracy[0] / len(seeds)
            estimates[loss]["ece"] += ece[0] / len(seeds)
    rng = np.random.default_rng(seed)
    replicates = {loss: {"accuracy": [], "ece": []} for loss in losses}
    for start in range(0, n_bootstrap, _CHUNK):
        size = min(_CHUNK, n_bootstrap - start)
        sums = {loss: {"accuracy": 0.0, "ece": 0.0} for loss in losses}
        for s in seeds:
            n = len(outcomes[losses[0]][s][1])
            counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
            for loss in losses:
                confidence, correct = (np.asarray(v) for v in outcomes[loss][s])
                accuracy, ece = _per_seed_replicates(confidence, correct, counts, num_bins)
                sums[loss]["accuracy"] += accuracy / len(seeds)
                sums[loss]["ece"] += ece / len(seeds)
        for loss in losses:
            for metric in ("accuracy", "ece"):
                replicates[loss][metric].append(sums[loss][metric])
    tail = 50.0 * (1.0 - confidence_level)

    def interval(estimate, values):
        if not (np.isfinite(values).all() and np.isfinite(estimate)):
            return float("nan"), float("nan")
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return float(2.0 * estimate - high), float(2.0 * estimate - low)

    result = {}
    for loss in losses:
        row = {}
        for metric in ("accuracy", "ece"):
            values = np.concatenate(replicates[loss][metric])
            row[f"{metric}_ci"] = interval(estimates[loss][metric], values)
            row[f"{metric}_differs"] = None
            if reference in replicates and loss != reference:
                low, high = interval(
                    estimates[loss][metric] - estimates[reference][metric],
                    values - np.concatenate(replicates[reference][metric]),
                )
                if np.isfinite(low):
                    row[f"{metric}_differs"] = bool(low > 0.0 or high < 0.0)
        result[loss] = row
    return result
