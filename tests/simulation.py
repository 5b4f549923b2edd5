"""Synthetic trained models with a known calibration function, for the statistics' tests.

A "model" is a distribution of (confidence, correct): confidences ``c = 0.3 +
0.7 Beta(5, 1.5)`` and ``P(correct | c) = f(c)`` with a known calibration
function ``f``. Its true accuracy and true 15-bin ECE (the estimator's limit
with infinitely many test examples, ``sum_b P(b) |E[f(c) - c | b]|``) are
integrals, computed here on a fine grid in float64, independently of the
package. Shared by tests/metrics/test_statistics.py and
benchmarks/bench_statistics.py.
"""

import numpy as np
from scipy import stats

#: Calibration functions: calibrated, overconfident (acc = c^2), slightly overconfident.
CALIBRATION = {
    "calibrated": lambda c: c,
    "overconfident": lambda c: c**2,
    "slightly_over": lambda c: np.clip(c - 0.02, 0.0, 1.0),
}


def draw(rng, n, f, shift=0.0):
    """``n`` test examples of the model with calibration function ``f`` (minus ``shift``)."""
    confidence = 0.3 + 0.7 * rng.beta(5.0, 1.5, n)
    correct = rng.uniform(size=n) < np.clip(f(confidence) - shift, 0.0, 1.0)
    return confidence, correct


def truth(f, num_bins=15, points=400_000):
    """``(true accuracy, true num_bins-bin ECE)`` of the model with calibration function ``f``."""
    grid = 0.3 + 0.7 * (np.arange(points) + 0.5) / points
    density = stats.beta.pdf((grid - 0.3) / 0.7, 5.0, 1.5)
    density /= density.sum()
    bins = np.minimum((grid * num_bins).astype(int), num_bins - 1)
    gaps = np.bincount(bins, density * (f(grid) - grid), num_bins)
    return float(density @ f(grid)), float(np.abs(gaps).sum())


def seed_scores(rng, losses, seeds, n, effects=None, seed_sd=(0.002, 0.004)):
    """Per (loss, seed) accuracy and ECE of training runs, as the runner's records hold them.

    Every seed has its own test examples, shared by the losses (the runner's
    paired design); each (loss, seed) run is a model whose calibration
    function ``c - delta`` and accuracy offset vary between runs: ``delta ~
    N(effect, sd_ece)`` and the correctness shifted by ``N(0, sd_acc)``, so the
    seed-to-seed standard deviations are about ``seed_sd`` (accuracy, ECE).
    ``effects`` maps a loss to its mean ``delta`` (0 for all: the null).

    Returns:
        ``{"accuracy": {loss: {seed: value}}, "ece": {...}}``.
    """
    effects = effects or {}
    scores = {"accuracy": {}, "ece": {}}
    for seed in range(seeds):
        confidence = 0.3 + 0.7 * rng.beta(5.0, 1.5, n)
        bins = np.minimum((confidence * 15).astype(int), 14)
        uniform = rng.uniform(size=n)
        for loss in losses:
            delta = rng.normal(effects.get(loss, 0.0) + 0.01, seed_sd[1])
            offset = rng.normal(0.0, seed_sd[0])
            correct = uniform < np.clip(confidence - delta - offset, 0.0, 1.0)
            gaps = np.bincount(bins, correct - confidence, 15)
            scores["accuracy"].setdefault(loss, {})[seed] = float(correct.mean())
            scores["ece"].setdefault(loss, {})[seed] = float(np.abs(gaps).sum() / n)
    return scores
