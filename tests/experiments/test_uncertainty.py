"""The runner's bootstrap intervals, paired tests, all-metric records and combined figure."""

import json
import warnings

import numpy as np
import pytest

from keras_label_relaxation.cli import main
from keras_label_relaxation.experiments import (
    METRICS,
    bootstrap_intervals,
    evaluate_logits,
    smoothed_reliability,
)
from keras_label_relaxation.metrics import calibration_error
from tests import oracle


def _outcomes(rng, n, shift):
    """Confidences in [0.4, 1) and correctness drawn with probability ``confidence - shift``."""
    confidence = rng.uniform(0.4, 1.0, n)
    return confidence, rng.uniform(size=n) < confidence - shift


def test_intervals_are_percentiles_of_resampled_per_seed_means():
    rng = np.random.default_rng(0)
    outcomes = {
        "LR": {0: _outcomes(rng, 300, 0.0), 1: _outcomes(rng, 200, 0.0)},
        "CE": {0: _outcomes(rng, 300, 0.2), 1: _outcomes(rng, 200, 0.2)},
    }
    result = bootstrap_intervals(outcomes, n_bootstrap=60, seed=5)
    # The same draws, replayed: per chunk, per seed, one multinomial draw of counts.
    draws = np.random.default_rng(5)
    replicates = {"LR": {"accuracy": [], "ece": []}, "CE": {"accuracy": [], "ece": []}}
    counts = {s: draws.multinomial(n, np.full(n, 1 / n), size=60) for s, n in ((0, 300), (1, 200))}
    for r in range(60):
        for loss in replicates:
            accuracy = ece = 0.0
            for s in (0, 1):
                conf, correct = outcomes[loss][s]
                w = counts[s][r]
                # Three classes, class 0 on top with probability conf (> 1/3).
                probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], -1)
                labels = np.where(correct, 0, 1)
                accuracy += np.sum(w * correct) / w.sum() / 2
                ece += oracle.ece_loop(labels, probs, 15, w) / 2
            replicates[loss]["accuracy"].append(accuracy)
            replicates[loss]["ece"].append(ece)
    for loss in ("LR", "CE"):
        estimate = {
            "accuracy": np.mean([np.mean(outcomes[loss][s][1]) for s in (0, 1)]),
            "ece": np.mean(
                [
                    oracle.ece_loop(
                        np.where(outcomes[loss][s][1], 0, 1),
                        np.stack([c, (1 - c) / 2, (1 - c) / 2], -1),
                        15,
                    )
                    for s in (0, 1)
                    for c in [outcomes[loss][s][0]]
                ]
            ),
        }
        for metric in ("accuracy", "ece"):
            low, high = np.percentile(replicates[loss][metric], [2.5, 97.5])
            expected = (2 * estimate[metric] - high, 2 * estimate[metric] - low)
            assert result[loss][f"{metric}_ci"] == pytest.approx(expected, abs=1e-12)


def test_paired_tests_mark_a_real_difference_and_not_a_copy():
    rng = np.random.default_rng(1)
    lr = {0: _outcomes(rng, 1000, 0.0)}
    result = bootstrap_intervals(
        {"LR": lr, "CE": {0: _outcomes(rng, 1000, 0.25)}, "LS": {0: lr[0]}}, n_bootstrap=200
    )
    assert result["CE"]["ece_differs"] and result["CE"]["accuracy_differs"]
    assert result["LS"]["ece_differs"] is False and result["LS"]["accuracy_differs"] is False
    assert result["LR"]["ece_differs"] is None
    conf, correct = lr[0]
    ece = calibration_error(
        np.where(correct, 0, 1), np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], -1)
    )
    low, high = result["LR"]["ece_ci"]
    assert low < ece < high


def test_diverged_loss_gets_no_interval_and_no_mark():
    rng = np.random.default_rng(2)
    diverged = (np.full(100, np.nan), np.zeros(100, bool))
    result = bootstrap_intervals(
        {"LR": {0: _outcomes(rng, 100, 0.0)}, "CP": {0: diverged}}, n_bootstrap=20
    )
    assert np.isnan(result["CP"]["ece_ci"]).all() and result["CP"]["ece_differs"] is None


def test_different_examples_are_refused():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="outcomes"):
        bootstrap_intervals({"LR": {0: _outcomes(rng, 10, 0)}, "CE": {0: _outcomes(rng, 11, 0)}})


def test_smoothed_curve_is_the_kernel_regression():
    rng = np.random.default_rng(4)
    conf, correct = _outcomes(rng, 150, 0.1)
    points, curve, low, high, density = smoothed_reliability(conf, correct, 0.07, n_bootstrap=50)
    assert np.isnan(curve[10]) and np.isnan(low[10])  # no example near 0.1: no curve
    for i in (50, 70, 90):
        k = [
            sum(np.exp(-0.5 * ((points[i] - x) / 0.07) ** 2) for x in (c, -c, 2 - c)) for c in conf
        ]
        assert curve[i] == pytest.approx(np.dot(k, correct) / np.sum(k), rel=1e-12)
    drawn = ~np.isnan(curve)
    assert np.all(low[drawn] <= curve[drawn] + 1e-12) and np.all(
        curve[drawn] <= high[drawn] + 1e-12
    )
    assert np.trapezoid(density, points) == pytest.approx(1.0, abs=0.02)


def test_evaluate_logits_reports_every_metric_against_the_functions():
    rng = np.random.default_rng(5)
    logits = 2 * rng.standard_normal((400, 4))
    labels = rng.integers(0, 4, 400)
    scores = evaluate_logits(logits, labels)
    probs = oracle.softmax(logits)
    assert set(METRICS) <= set(scores)
    assert scores["rms"] == pytest.approx(
        oracle.binned_error_loop(labels, probs, 15, "l2", "equal_width", False, "top_label")
    )
    assert scores["ace"] == pytest.approx(
        oracle.binned_error_loop(labels, probs, 15, "l1", "equal_mass", False, "top_label")
    )
    assert scores["ks"] == pytest.approx(oracle.ks_loop(labels, probs))
    assert 0 < scores["smece_bandwidth"] <= 1
    logits[0, 0] = np.nan
    assert all(np.isnan(evaluate_logits(logits, labels)[m]) for m in METRICS)


def test_compare_table_intervals_marks_metrics_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["compare", "--dataset", "digits", "--losses", "ce,lr", "--seeds", "2",
            "--epochs", "2", "--out", str(out), "--limit", "600",
            "--metrics", "accuracy,ece,smece,ks"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| Loss"))
    assert "| Acc. | ECE | smECE | KS | Rank Acc." in header and "NLL" not in header
    assert "bootstrap intervals" in printed
    results = json.loads((out / "results.json").read_text())
    for row in results["summary"]:
        low, high = row["ece_ci"]
        assert low <= high and f"[{low:.3f}, {high:.3f}]" in printed
        assert (
            row["ece_differs"] is None
            if row["loss"] == "LR"
            else row["ece_differs"]
            in (
                True,
                False,
            )
        )
    for record in results["records"]:  # per seed, every metric
        assert set(METRICS) <= set(record) and record["seed"] in (0, 1)
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "outcomes").glob("*.npz"))) == 6  # 2 seeds x (CE, LR, CE+TS)


def test_unknown_table_metric_is_named(tmp_path, capsys):
    argv = ["compare", "--losses", "ce", "--metrics", "ece,sharpness", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "metrics" in capsys.readouterr().err


def test_smoothed_curve_far_from_the_data_is_nan_without_warnings():
    # A confident model: the kernel weight underflows to 0 far below its confidences.
    rng = np.random.default_rng(6)
    conf = 1 - rng.exponential(0.01, 300).clip(0, 0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points, curve, low, high, _ = smoothed_reliability(conf, rng.uniform(size=300) < conf, 0.02)
    assert np.isnan(curve[:30]).all() and np.isnan(low[:30]).all() and np.isfinite(curve[-1])
