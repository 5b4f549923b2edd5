"""Simulation study of the runner's statistics: false positives, power and coverage.

Synthetic trained models with a known calibration function (tests/simulation.py)
go through the same functions as ``klr compare`` (``experiments.comparison_marks``,
``metrics.statistics.accuracy_interval`` and ``ece_interval``):

(a) family-wise false-positive rate of a table's ``*`` marks when all six rows
    (LR, CE, LS, CP, FL, CE+TS) come from one distribution of training runs, 5
    seeds x N test examples, with the plain paired t-test and with the runner's
    Nadeau-Bengio correction (test/train ratio 1/6); and, for contrast, the
    example-level paired bootstrap without multiplicity correction that the
    runner used before;
(b) power: how often CE is marked when its ECE is worse by 1, 2 or 4 seed
    standard deviations;
(c) coverage of the accuracy and ECE intervals at N = 300, 2,000 and 10,000 on
    calibrated and miscalibrated models, against their true accuracy and true
    15-bin ECE.

Usage: python benchmarks/bench_statistics.py [--parts a,b,c,d] [--tables 2000] [--test-sets 300]
(about 45 minutes on 2 cores; (d) checks the accuracy intervals alone on 10,000 test sets).
Prints markdown tables for BENCHMARKS.md; Monte-Carlo standard errors are stated.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_label_relaxation.experiments import comparison_marks  # noqa: E402
from keras_label_relaxation.metrics import statistics  # noqa: E402
from tests import simulation  # noqa: E402

LOSSES = ["LR", "CE", "LS", "CP", "FL", "CE+TS"]


def _old_marks(rng, losses, seeds, n, effects):
    """The runner before: paired example-level bootstrap of the seed mean, no correction."""
    outcomes = {loss: [] for loss in losses}
    for _ in range(seeds):
        confidence = 0.3 + 0.7 * rng.beta(5.0, 1.5, n)
        bins = np.minimum((confidence * 15).astype(int), 14)
        uniform = rng.uniform(size=n)
        for loss in losses:
            delta = rng.normal(effects.get(loss, 0.0) + 0.01, 0.004)
            offset = rng.normal(0.0, 0.002)
            correct = uniform < np.clip(confidence - delta - offset, 0, 1)
            outcomes[loss].append((bins, confidence, correct.astype(float)))

    def statistic(counts):
        values = {}
        for loss in losses:
            ece = 0.0
            for (bins, confidence, correct), w in zip(outcomes[loss], counts):
                members = np.zeros((n, 15))
                members[np.arange(n), bins] = 1
                ece += np.abs(w @ (members * (correct - confidence)[:, None])).sum(-1) / n
            values[loss] = ece / seeds
        return np.stack([values[loss] - values["LR"] for loss in losses[1:]], -1)

    estimate = statistic([np.ones((1, n))] * seeds)[0]
    replicates = statistics.bootstrap_replicates(statistic, [n] * seeds, n_bootstrap=200)
    low, high = np.quantile(replicates, [0.025, 0.975], axis=0)
    basic_low, basic_high = 2 * estimate - high, 2 * estimate - low
    return bool(np.any((basic_low > 0) | (basic_high < 0)))


def family_wise(tables, n, ratio, effects=None):
    rng = np.random.default_rng(0)
    any_mark = ce_marked = 0
    spread = {"accuracy": [], "ece": []}
    for _ in range(tables):
        scores = simulation.seed_scores(rng, LOSSES, 5, n, effects)
        for metric in spread:
            spread[metric].append(np.std(list(scores[metric]["LR"].values()), ddof=1))
        marks = comparison_marks(scores, test_train_ratio=ratio)
        any_mark += any(marks[m][loss][1] for m in marks for loss in LOSSES[1:])
        ce_marked += bool(marks["ece"]["CE"][1])
    return any_mark / tables, ce_marked / tables, {k: np.mean(v) for k, v in spread.items()}


def coverage(test_sets, n, model, n_bootstrap):
    f = simulation.CALIBRATION[model]
    accuracy, ece = simulation.truth(f)
    rng = np.random.default_rng(1)
    accuracy_hits = ece_hits = 0
    widths = []
    for index in range(test_sets):
        outcome = simulation.draw(rng, n, f)
        _, low, high = statistics.accuracy_interval([outcome[1]])
        accuracy_hits += low <= accuracy <= high
        estimate, low, high = statistics.ece_interval(
            [outcome], n_bootstrap=n_bootstrap, seed=index
        )
        ece_hits += low <= ece <= high
        widths.append(high - low)
    return accuracy, ece, accuracy_hits / test_sets, ece_hits / test_sets, float(np.mean(widths))


def _se(p, count):
    return math.sqrt(p * (1 - p) / count)


def accuracy_coverage(test_sets, n, model):
    f = simulation.CALIBRATION[model]
    accuracy, _ = simulation.truth(f)
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(test_sets):
        _, low, high = statistics.accuracy_interval([simulation.draw(rng, n, f)[1]])
        hits += low <= accuracy <= high
    return accuracy, hits / test_sets


def false_positives(args):
    print(f"## (a) False positives: all rows one distribution, 5 seeds ({args.tables} tables)\n")
    print("| N | marks | family-wise false-positive rate (± MC s.e.) | seed sd acc / ECE |")
    print("| --- | --- | --- | --- |")
    for n in (2000, 10000):
        for name, ratio in (
            ("t-test + Holm", 0.0),
            ("t-test (Nadeau-Bengio, r = 1/6) + Holm", 1 / 6),
        ):
            rate, _, spread = family_wise(args.tables, n, ratio)
            print(
                f"| {n} | {name} | {rate:.3f} ± {_se(rate, args.tables):.3f} | "
                f"{spread['accuracy']:.4f} / {spread['ece']:.4f} |",
                flush=True,
            )
        rng = np.random.default_rng(2)
        old = np.mean([_old_marks(rng, LOSSES, 5, n, {}) for _ in range(args.old_tables)])
        print(
            f"| {n} | before: example-level paired bootstrap, no correction (ECE column only) | "
            f"{old:.3f} ± {_se(old, args.old_tables):.3f} | |",
            flush=True,
        )


def power(args):
    tables = args.tables // 2
    print(f"\n## (b) Power: CE's ECE worse, 5 seeds, N = 10,000 ({tables} tables)\n")
    print("| CE's extra miscalibration | plain t-test + Holm | Nadeau-Bengio (r = 1/6) + Holm |")
    print("| --- | --- | --- |")
    for effect in (0.004, 0.008, 0.016):
        cells = []
        for ratio in (0.0, 1 / 6):
            _, rate, _ = family_wise(tables, 10000, ratio, {"CE": effect})
            cells.append(f"{rate:.3f} ± {_se(rate, tables):.3f}")
        print(f"| +{effect} ({effect / 0.004:g} seed sd) | " + " | ".join(cells) + " |", flush=True)


def interval_coverage(args):
    print(f"\n## (c) Coverage of the 95% intervals ({args.test_sets} test sets each)\n")
    print("| model | N | true acc | acc coverage | true ECE | ECE coverage | mean ECE width |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for model in ("calibrated", "slightly_over", "overconfident"):
        for n in (300, 2000, 10000):
            acc, ece, acc_cov, ece_cov, width = coverage(args.test_sets, n, model, args.n_bootstrap)
            print(
                f"| {model} | {n} | {acc:.4f} | {acc_cov:.3f} ± {_se(acc_cov, args.test_sets):.3f}"
                f" | {ece:.4f} | {ece_cov:.3f} ± {_se(ece_cov, args.test_sets):.3f} | "
                f"{width:.4f} |",
                flush=True,
            )


def accuracy_coverage_table(args):
    sets = args.accuracy_sets
    print(f"\n## (d) Coverage of the accuracy intervals alone ({sets} test sets each)\n")
    print("| model | true acc | N = 300 | N = 2,000 | N = 10,000 |")
    print("| --- | --- | --- | --- | --- |")
    for model in ("calibrated", "slightly_over", "overconfident"):
        cells = []
        for n in (300, 2000, 10000):
            accuracy, rate = accuracy_coverage(sets, n, model)
            cells.append(f"{rate:.3f} ± {_se(rate, sets):.3f}")
        print(f"| {model} | {accuracy:.4f} | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--old-tables", type=int, default=200)
    parser.add_argument("--test-sets", type=int, default=300)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--accuracy-sets", type=int, default=10000)
    parser.add_argument(
        "--parts",
        default="a,b,c,d",
        help="a: false positives, b: power, c: coverage of both intervals, d: accuracy alone",
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    started = time.time()
    for part, run in (
        ("a", false_positives),
        ("b", power),
        ("c", interval_coverage),
        ("d", accuracy_coverage_table),
    ):
        if part in parts:
            run(args)
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
