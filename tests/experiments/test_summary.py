"""The runner's summary (intervals, marks with the seed as unit, ranks), records and figure."""

import json
import warnings

import numpy as np
import pytest
from scipy import stats

from keras_label_relaxation.cli import main
from keras_label_relaxation.experiments import (
    METRICS,
    competition_ranks,
    evaluate_logits,
    smoothed_reliability,
    summarise,
)
from keras_label_relaxation.experiments.summary import COMPARED
from keras_label_relaxation.metrics import calibration_error, statistics
from tests import oracle


def _outcomes(rng, n, shift):
    """Confidences in [0.4, 1) and correctness drawn with probability ``confidence - shift``."""
    confidence = rng.uniform(0.4, 1.0, n)
    return confidence, rng.uniform(size=n) < confidence - shift


def _records(values, metric_names=("accuracy", "ece")):
    """Records of ``{loss: [(accuracy, ece) per seed]}`` with every other score 0."""
    records = []
    for loss, per_seed in values.items():
        for seed, (accuracy, ece) in enumerate(per_seed):
            record = dict.fromkeys(METRICS, 0.0)
            record.update(seed=seed, loss=loss, param=None, param_name=None,
                          accuracy=accuracy, ece=ece)  # fmt: skip
            records.append(record)
    return records


def test_marks_are_holm_adjusted_paired_t_tests_over_seeds():
    rng = np.random.default_rng(0)
    values = {
        "LR": list(zip(rng.normal(0.9, 0.002, 5), rng.normal(0.02, 0.004, 5))),
        "CE": list(zip(rng.normal(0.9, 0.002, 5), rng.normal(0.06, 0.004, 5))),
        "LS": list(zip(rng.normal(0.9, 0.002, 5), rng.normal(0.021, 0.004, 5))),
    }
    results = summarise("digits", "acc", _records(values), test_train_ratio=0.2)
    # The oracle: SciPy's paired t statistic, the Nadeau-Bengio variance factor, Holm by hand.
    p = {}
    for loss in ("CE", "LS"):
        for index, metric in enumerate(("accuracy", "ece")):
            d = np.array([v[index] for v in values[loss]]) - [v[index] for v in values["LR"]]
            t = stats.ttest_rel(d, np.zeros(5)).statistic / np.sqrt(1 + 5 * 0.2)
            p[(loss, metric)] = 2 * stats.t.sf(abs(t), 4)
    ordered = sorted(p, key=p.get)
    rejected, still = {}, True
    for i, key in enumerate(ordered):
        still = bool(still and p[key] <= 0.05 / (len(p) - i))
        rejected[key] = still
    rows = {row["loss"]: row for row in results.summary}
    for (loss, metric), expected in rejected.items():
        assert rows[loss][f"{metric}_p"] == pytest.approx(p[(loss, metric)])
        assert rows[loss][f"{metric}_differs"] is expected
    assert rows["CE"]["ece_differs"] is True and rows["LR"]["ece_differs"] is None
    assert "Holm-adjusted over the 4 comparisons" in results.to_markdown()


def test_one_seed_marks_nothing_and_says_so():
    # Before: a paired bootstrap over test examples marked CE (ECE 0.22074) as differing
    # from LR (0.22082) with one seed.
    values = {"LR": [(0.95, 0.22082)], "CE": [(0.80, 0.22074)]}
    results = summarise("digits", "acc", _records(values))
    assert all(row[f"{m}_differs"] is None for row in results.summary for m in COMPARED)
    table = results.to_markdown()
    assert "*" not in table.split("\n\n")[0]
    assert "With 1 seed no comparison across training runs is possible" in table


def test_diverged_loss_ranks_last_and_is_marked():
    # Before: competition_ranks({"CE": .03, "CP": nan, "LR": .01}) gave CP rank 1.
    assert competition_ranks({"CE": 0.03, "CP": float("nan"), "LR": 0.01}, False) == {
        "CE": 2, "CP": 3, "LR": 1,
    }  # fmt: skip
    assert competition_ranks({"a": float("nan"), "b": 0.9, "c": None}, True) == {
        "a": 2, "b": 1, "c": 2,
    }  # fmt: skip
    values = {"LR": [(0.9, 0.01)], "CE": [(0.8, 0.03)], "CP": [(float("nan"),) * 2]}
    results = summarise("digits", "acc", _records(values))
    rows = {row["loss"]: row for row in results.summary}
    assert rows["CP"]["diverged"] and not rows["CE"]["diverged"]
    assert (rows["CP"]["rank_accuracy"], rows["CP"]["rank_ece"]) == (3, 3)
    assert "| CP | diverged | diverged |" in results.to_markdown()
    assert "diverged: the loss' scores are NaN" in results.to_markdown()


def test_intervals_come_from_the_statistical_core():
    rng = np.random.default_rng(1)
    outcomes = {
        loss: {s: _outcomes(rng, 400, shift) for s in (0, 1)}
        for loss, shift in (("LR", 0.0), ("CE", 0.2))
    }
    values = {
        loss: [(np.mean(o[s][1]), calibration_error(*_as_probs(*o[s]))) for s in (0, 1)]
        for loss, o in outcomes.items()
    }
    results = summarise("digits", "acc", _records(values), outcomes=outcomes, n_bootstrap=50)
    for row in results.summary:
        per = [outcomes[row["loss"]][s] for s in (0, 1)]
        assert row["accuracy_ci"] == statistics.accuracy_interval([y for _, y in per])[1:]
        assert row["ece_ci"] == statistics.ece_interval(per, n_bootstrap=50)[1:]
        assert 0 <= row["ece_ci"][0] <= row["ece"] <= row["ece_ci"][1] <= 1


def _as_probs(confidence, correct):
    """Labels and three-class probabilities with class 0 on top at ``confidence``."""
    probs = np.stack([confidence, (1 - confidence) / 2, (1 - confidence) / 2], -1)
    return np.where(correct, 0, 1), probs


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
    assert scores["equal_mass_ece"] == pytest.approx(
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
    assert "Brackets: 95% intervals over the test examples" in printed
    assert "*: differs from LR (paired t-test over the 2 seeds" in printed
    results = json.loads((out / "results.json").read_text())
    for row in results["summary"]:
        low, high = row["ece_ci"]
        assert 0 <= low <= row["ece"] <= high <= 1 and f"[{low:.3f}, {high:.3f}]" in printed
        expected = (None,) if row["loss"] == "LR" else (True, False)
        assert row["ece_differs"] in expected
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
