"""The statistical core (metrics.statistics) against independent references and simulations.

References: SciPy's paired t-test and root finder, Holm's adjusted p-values written
from their definition, explicit loops. Simulations (seeded, so each test is
deterministic and can fail): synthetic models with a known calibration function
(tests/simulation.py). Monte-Carlo error is stated at each threshold; the
larger runs are benchmarks/bench_statistics.py (BENCHMARKS.md).
"""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from keras_label_relaxation.experiments import comparison_marks
from keras_label_relaxation.metrics import statistics
from tests import simulation


def test_wilson_interval_inverts_the_score_test():
    # Wilson's interval is the set of p whose score test |p_hat - p| <= z sqrt(p (1 - p) / n)
    # accepts: its ends are the roots, found here with brentq.
    z = stats.norm.ppf(0.975)
    for p_hat, n in [(0.9, 100), (0.5, 37), (1.0, 50), (0.0, 12), (0.987, 300)]:

        def score(p, p_hat=p_hat, n=n):
            return abs(p_hat - p) - z * math.sqrt(p * (1 - p) / n)

        # The score is 0 at p = p_hat in {0, 1} itself: search the other side of the root.
        low = 0.0 if p_hat == 0 else optimize.brentq(score, 1e-12, min(p_hat, 1 - 1e-12))
        high = 1.0 if p_hat == 1 else optimize.brentq(score, max(p_hat, 1e-12), 1 - 1e-12)
        assert statistics.wilson_interval(p_hat, n) == pytest.approx((low, high), abs=1e-9)


def test_paired_t_test_matches_scipy_and_applies_the_correction():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.1, 0.01, 5), rng.normal(0.11, 0.01, 5)
    assert statistics.paired_t_test(a - b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # Nadeau-Bengio: t divided by sqrt(1 + J r).
    d, r = a - b, 1 / 6
    t = d.mean() / math.sqrt((1 / 5 + r) * d.var(ddof=1))
    expected = 2 * stats.t.sf(abs(t), 4)
    assert statistics.paired_t_test(d, test_train_ratio=r) == pytest.approx(expected)
    assert math.isnan(statistics.paired_t_test([0.01]))
    assert math.isnan(statistics.paired_t_test([0.01, float("nan"), 0.02]))


def test_holm_matches_adjusted_p_values():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.uniform(0, 0.1, rng.integers(1, 9))
        order = np.argsort(p)
        m = len(p)
        adjusted = np.maximum.accumulate([min(1.0, (m - i) * p[j]) for i, j in enumerate(order)])
        expected = np.empty(m, bool)
        expected[order] = adjusted <= 0.05
        got = statistics.holm(dict(enumerate(p)), 0.05)
        assert [got[i] for i in range(m)] == expected.tolist()
    assert statistics.holm({"a": float("nan"), "b": 0.04}) == {"a": False, "b": True}


def test_ece_interval_ends_against_loops():
    rng = np.random.default_rng(2)
    outcomes = [simulation.draw(rng, 500, simulation.CALIBRATION["overconfident"])]
    ece, low, high = statistics.ece_interval(outcomes, n_bootstrap=50, seed=4)
    confidence, correct = outcomes[0]

    # The estimate and the upper end by explicit loops over the same draws.
    def loop_ece(weights):
        total = 0.0
        for b in range(15):
            members = [i for i in range(500) if min(int(confidence[i] * 15), 14) == b]
            total += abs(sum(weights[i] * (correct[i] - confidence[i]) for i in members))
        return total / sum(weights)

    assert ece == pytest.approx(loop_ece(np.ones(500)), abs=1e-12)
    counts = np.random.default_rng(4).multinomial(500, np.full(500, 1 / 500), size=50)
    replicates = [loop_ece(c) for c in counts]
    assert high == pytest.approx(max(ece, np.quantile(replicates, 0.975)), abs=1e-12)
    # The lower end: Clopper-Pearson per non-empty bin at 0.025 / bins, by loops.
    bins = np.minimum((confidence * 15).astype(int), 14)
    filled = np.unique(bins)
    bound = 0.0
    for b in filled:
        k, n = correct[bins == b].sum(), (bins == b).sum()
        lo = stats.beta.ppf(0.025 / len(filled), k, n - k + 1) if k > 0 else 0.0
        hi = stats.beta.ppf(1 - 0.025 / len(filled), k + 1, n - k) if k < n else 1.0
        mean_conf = confidence[bins == b].mean()
        bound += n * max(0.0, lo - mean_conf, mean_conf - hi)
    assert low == pytest.approx(min(ece, bound / 500), abs=1e-9)
    assert 0.0 <= low <= ece <= high <= 1.0


def test_intervals_stay_in_range_and_contain_the_estimate():
    # Before: 0.987 [0.977, 1.003] for an accuracy, [-0.000, 0.029] and low = -0.056 (40
    # calibrated examples) for an ECE.
    rng = np.random.default_rng(3)
    for n in (40, 300, 16000):
        for f in simulation.CALIBRATION.values():
            outcomes = [simulation.draw(rng, n, f) for _ in range(2)]
            ece, low, high = statistics.ece_interval(outcomes, n_bootstrap=50)
            assert 0.0 <= low <= ece <= high <= 1.0
            accuracy, low, high = statistics.accuracy_interval([y for _, y in outcomes])
            assert 0.0 <= low <= accuracy <= high <= 1.0
    accuracy, low, high = statistics.accuracy_interval([np.r_[np.ones(296), np.zeros(4)]])
    assert low < accuracy < high < 1.0 and accuracy == pytest.approx(296 / 300)


@pytest.mark.parametrize("n", [300, 2000, 10000])
@pytest.mark.parametrize("model", sorted(simulation.CALIBRATION))
def test_accuracy_intervals_cover_the_true_accuracy(n, model):
    # 2000 test sets: Monte-Carlo standard error 0.5% around 95%; the band is 93-97%.
    f = simulation.CALIBRATION[model]
    accuracy, _ = simulation.truth(f)
    rng = np.random.default_rng(10)
    covered = 0
    for _ in range(2000):
        _, correct = simulation.draw(rng, n, f)
        _, low, high = statistics.accuracy_interval([correct])
        covered += low <= accuracy <= high
    assert 0.93 <= covered / 2000 <= 0.97


@pytest.mark.parametrize("n", [300, 2000])
@pytest.mark.parametrize("model", ["calibrated", "overconfident"])
def test_ece_intervals_cover_the_true_ece(n, model):
    # Before: basic bootstrap intervals covered a calibrated model's ECE (0) in about 60% of
    # test sets. 120 test sets with 100 replicates each: at a true coverage of 90% the
    # chance to see >= 90% is about half, so 0.9 is asserted for the >= 95% the benchmark
    # measures (BENCHMARKS.md, 400 test sets and N = 10,000 too).
    f = simulation.CALIBRATION[model]
    _, ece = simulation.truth(f)
    rng = np.random.default_rng(11)
    covered = 0
    for index in range(120):
        _, low, high = statistics.ece_interval(
            [simulation.draw(rng, n, f)], n_bootstrap=100, seed=index
        )
        covered += low <= ece <= high
    assert covered / 120 >= 0.9


def _family_wise_rate(tables, effects=None, ratio=0.0, seeds=5):
    rng = np.random.default_rng(12)
    losses = ["LR", "CE", "LS", "CP", "FL", "CE+TS"]
    any_mark, marked = 0, 0
    for _ in range(tables):
        scores = simulation.seed_scores(rng, losses, seeds, 2000, effects)
        marks = comparison_marks(scores, test_train_ratio=ratio)
        flags = [marks[m][loss][1] for m in marks for loss in losses if loss != "LR"]
        any_mark += any(flags)
        marked += bool(marks["ece"]["CE"][1])
    return any_mark / tables, marked / tables


def test_marks_keep_the_family_wise_false_positive_rate():
    # All six rows from one distribution of training runs (5 seeds): some loss was marked in
    # 82-99% of such tables before (example-level bootstrap, no multiplicity correction).
    # 600 tables: Monte-Carlo standard error 0.9% at 5%; asserted <= 5% + 2 SE.
    rate, _ = _family_wise_rate(600)
    assert rate <= 0.068
    corrected, _ = _family_wise_rate(600, ratio=1 / 6)
    assert corrected <= rate


def test_marks_find_a_real_difference():
    # CE's ECE worse by 0.04 (ten seed standard deviations): marked in most tables. Smaller
    # differences: the power table of BENCHMARKS.md.
    _, power = _family_wise_rate(100, effects={"CE": 0.04})
    assert power >= 0.8
