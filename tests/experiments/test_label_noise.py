"""Label noise: the draws against their definitions, and the runner's --label-noise and rda."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from keras_label_relaxation import datasets, models
from keras_label_relaxation.cli import main
from keras_label_relaxation.datasets import LabelNoise, corrupt_labels, noise_record
from keras_label_relaxation.experiments import compare
from keras_label_relaxation.experiments.protocol import Run


def test_symmetric_noise_replaces_each_label_with_probability_rate_uniformly_over_all_classes():
    # The authors' definition: with probability r the label is redrawn from all K classes.
    y = np.repeat(np.arange(10), 5000)
    noisy = corrupt_labels(y, 10, "symmetric:0.4", seed=3)
    changed = noisy != y
    # P(changed) = r (K - 1) / K = 0.36: a two-sided binomial test at 1e-4 (fails if e.g. the
    # redraw excluded the true class, 0.40, or the rate were applied twice).
    assert stats.binomtest(int(changed.sum()), len(y), 0.36).pvalue > 1e-4
    # The new labels of changed examples are uniform over the other 9 classes of their class.
    for c in (0, 7):
        counts = np.bincount(noisy[(y == c) & changed], minlength=10)
        assert counts[c] == 0
        assert stats.chisquare(np.delete(counts, c)).pvalue > 1e-4
    np.testing.assert_array_equal(noisy, corrupt_labels(y, 10, "symmetric:0.4", seed=3))
    assert not np.array_equal(noisy, corrupt_labels(y, 10, "symmetric:0.4", seed=4))
    np.testing.assert_array_equal(corrupt_labels(y, 10, "symmetric:0", seed=3), y)


@pytest.mark.parametrize(
    "dataset, flips",
    [
        ("mnist", {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}),
        ("mnist-test", {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}),  # an IDX directory of MNIST
        ("digits", {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}),
        ("cifar10", {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}),
    ],
)
def test_asymmetric_noise_flips_exactly_ceil_rate_of_each_source_class(dataset, flips):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    noisy = corrupt_labels(y, 10, "asymmetric:0.3", seed=1, dataset=dataset)
    for c in range(10):
        members = y == c
        if c in flips:
            assert np.sum(noisy[members] == flips[c]) == math.ceil(0.3 * members.sum())
            assert set(np.unique(noisy[members])) == {c, flips[c]}
        else:
            np.testing.assert_array_equal(noisy[members], c)


def test_asymmetric_cifar100_noise_moves_to_the_next_class_of_the_block_of_five():
    y = np.repeat(np.arange(100), 10)
    noisy = corrupt_labels(y, 100, "asymmetric:0.2", seed=0, dataset="cifar100")
    moved = noisy != y
    assert moved.sum() == 100 * 2
    np.testing.assert_array_equal(noisy[moved] // 5, y[moved] // 5)  # same block
    np.testing.assert_array_equal(noisy[moved] % 5, (y[moved] % 5 + 1) % 5)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("symmetric:1", r"rate.*\[0, 1\).*rate=1"),
        ("symmetric:-0.1", r"rate=-0.1"),
        ("symmetric:1.5", r"rate=1.5"),
        ("symmetric", r"label_noise='symmetric'"),
        ("symmetric:nan", r"label_noise='symmetric:nan'"),
        ("uniform:0.2", r"kind='uniform'"),
    ],
)
def test_bad_noise_specs_are_refused_by_name(spec, match):
    with pytest.raises(ValueError, match=match):
        corrupt_labels(np.arange(4), 4, spec, seed=0)


def test_asymmetric_noise_without_a_pattern_is_refused():
    with pytest.raises(ValueError, match=r"no class pattern for data set 'fashion_mnist'"):
        corrupt_labels(np.arange(4), 4, "asymmetric:0.2", seed=0, dataset="fashion_mnist")


def test_noise_record_and_spelling():
    assert str(LabelNoise.parse("asymmetric:0.40")) == "asymmetric:0.4"
    record = noise_record(np.array([0, 1, 2, 3]), np.array([0, 1, 1, 3]))
    assert record["changed"] == 0.25 and len(record["digest"]) == 16


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def test_runner_noises_training_labels_only_and_records_the_draw(digits, tmp_path):
    out = tmp_path / "run"
    results = compare(models.simple_dense, digits, losses=["rda"], grids={"rda": [0.1]},
                      seeds=2, epochs=2, out_dir=str(out), progress=None,
                      label_noise="symmetric:0.4")  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["label_noise"] == "symmetric:0.4"
    saved = json.loads((out / "results.json").read_text())
    assert saved["label_noise"] == "symmetric:0.4"
    assert "label noise symmetric:0.4 on train/validation, clean test" in results.to_markdown()
    for seed in (0, 1):
        clean = datasets.resample(digits, seed)
        noisy = corrupt_labels(clean.y_train, 10, "symmetric:0.4", seed, "digits")
        records = [r for r in saved["records"] if r["seed"] == seed]
        assert {r["loss"] for r in records} == {"RDA", "CE+TS"}
        for record in records:
            assert record["label_noise"] == {
                "noise": "symmetric:0.4",
                **noise_record(clean.y_train, noisy),
            }
            assert 0.25 < record["label_noise"]["changed"] < 0.47
        # The units trained on the noisy labels and tested on the clean ones.
        run = Run(models.simple_dense, digits, False, {}, "acc", 2, 64, None, list, 0, None,
                  str(out), LabelNoise.parse("symmetric:0.4"))  # fmt: skip
        np.testing.assert_array_equal(run.seed_data(seed).y_train, noisy)
        np.testing.assert_array_equal(run.seed_data(seed).y_test, clean.y_test)
        with np.load(out / "outcomes" / f"seed{seed}_RDA.npz") as outcomes:
            assert len(outcomes["correct"]) == len(clean.y_test)
    # A rerun with another noise into the same directory is refused.
    with pytest.raises(ValueError, match="label_noise"):
        compare(models.simple_dense, digits, losses=["rda"], grids={"rda": [0.1]}, seeds=2,
                epochs=2, out_dir=str(out), progress=None, label_noise="symmetric:0.2")  # fmt: skip


def test_runner_rda_follows_the_threshold_schedule_in_search_and_retraining(digits, tmp_path):
    seen = []

    class Record:  # a callback factory recording the threshold the loss reads every epoch
        def __call__(self):
            import keras

            class Beta(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None):
                    seen.append(round(float(logs["beta"]), 6))

            return [Beta()]

    compare(models.simple_dense, digits, losses=["rda"], grids={"rda": [0.1]}, seeds=1,
            epochs=3, out_dir=str(tmp_path), progress=None, temperature_scaling=False,
            callbacks=Record())  # fmt: skip
    cosine = [round(0.6 + 0.075 * (1 + math.cos(math.pi * e / 3)), 6) for e in range(3)]
    assert seen == cosine * 2  # the search trial, then the retraining


def test_cli_label_noise(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--label-noise", "symmetric:1.2", "--out", str(tmp_path)])
    assert "rate=1.2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no class pattern for data set 'toy'"):
        compare(models.simple_dense, datasets.from_arrays(
            "toy", np.zeros((20, 2, 2)), np.arange(20) % 4, np.zeros((4, 2, 2)), np.arange(4)),
            losses=["ce"], out_dir=str(tmp_path / "toy"), progress=None,
            label_noise="asymmetric:0.2")  # fmt: skip
    assert not (tmp_path / "toy" / "config.json").exists()  # refused before anything ran
